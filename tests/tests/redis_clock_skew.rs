//! Nodes whose clocks disagree, sharing one Redis (single and Cluster): a node 120 s ahead or
//! behind must never make a live session fall out of its user's index, since a session outside
//! the index escapes "log out everywhere" (issue 18, item 6). The index judges expiry by
//! Redis' own clock; each store here runs on a `ManualClock` offset from real time.

use std::sync::Arc;

use portcullis_core::{Clock, ManualClock, SystemClock};
use portcullis_hybrid::RefreshStore;
use portcullis_redis::{RedisConfig, RedisConnection, RedisRefreshStore, RedisSessionStore};
use portcullis_session::SessionStore;
use portcullis_tests::{
    conformance::{
        refresh_store,
        session_store::{new_key, record, unique_user},
    },
    redis_server::{cluster_urls, shared_url, unique_prefix},
};

const SKEW_SECS: i64 = 120;

fn connection(cluster: bool, prefix: &str) -> RedisConnection {
    let config = if cluster {
        RedisConfig::cluster(cluster_urls())
    } else {
        RedisConfig::new(shared_url())
    };
    config.key_prefix(prefix).build().unwrap()
}

/// A clock `offset` seconds away from real time.
fn clock(offset: i64) -> ManualClock {
    let now = SystemClock.unix_seconds();
    ManualClock::at_unix_seconds(now.saturating_add_signed(offset))
}

/// Two session stores on one Redis, each with its own connection, as two nodes would have:
/// the writer's clock at `writer_offset`, the other's at `other_offset`.
fn session_nodes(
    cluster: bool,
    writer_offset: i64,
    other_offset: i64,
) -> (RedisSessionStore, ManualClock, RedisSessionStore) {
    let prefix = unique_prefix("skew");
    let writer_clock = clock(writer_offset);
    let writer = RedisSessionStore::new(connection(cluster, &prefix))
        .with_clock(Arc::new(writer_clock.clone()));
    let other = RedisSessionStore::new(connection(cluster, &prefix))
        .with_clock(Arc::new(clock(other_offset)));
    (writer, writer_clock, other)
}

/// A 60-second session created by the writer; the other node, whose clock says it has expired
/// (or will soon), operates on the user's index; then the writer touches the session and logs
/// the user out everywhere. The session must be gone.
async fn session_survives_no_logout_all(cluster: bool, writer_offset: i64, other_offset: i64) {
    let (writer, writer_clock, other) = session_nodes(cluster, writer_offset, other_offset);
    let user = unique_user("skew");
    let key = new_key();
    writer
        .create(&key, &record(&writer_clock, Some(&user), 0, 60), None)
        .await
        .unwrap();
    // The other node lists the user's sessions: before the fix this pruned the index by its
    // own clock, dropping the entry of a session the writer still serves.
    other.list_by_user(&user).await.unwrap();
    let now = writer_clock.unix_seconds();
    assert!(writer.touch(&key, now, now + 60).await.unwrap());
    assert_eq!(
        writer.delete_by_user(&user, None).await.unwrap(),
        1,
        "logout-all reached the session"
    );
    assert_eq!(
        writer.load(&key).await.unwrap(),
        None,
        "the session survived logout-all"
    );
}

#[tokio::test]
async fn a_node_ahead_does_not_prune_a_live_session_from_the_index() {
    session_survives_no_logout_all(false, 0, SKEW_SECS).await;
}

#[tokio::test]
async fn a_node_behind_does_not_leave_its_session_unindexed() {
    // The writer runs 120 s slow: its session lives 60 s by its clock, which real time has
    // already passed; the Redis TTL and the index entry must still agree.
    session_survives_no_logout_all(false, -SKEW_SECS, 0).await;
}

#[tokio::test]
async fn a_node_ahead_does_not_prune_a_live_session_on_the_cluster() {
    session_survives_no_logout_all(true, 0, SKEW_SECS).await;
}

#[tokio::test]
async fn a_node_behind_does_not_leave_its_session_unindexed_on_the_cluster() {
    session_survives_no_logout_all(true, -SKEW_SECS, 0).await;
}

/// The same for hybrid sessions: the refresh store's index.
async fn refresh_session_survives_no_logout_all(cluster: bool, writer_offset: i64) {
    let prefix = unique_prefix("skew-refresh");
    let writer_clock = clock(writer_offset);
    let writer = RedisRefreshStore::new(connection(cluster, &prefix))
        .with_clock(Arc::new(writer_clock.clone()));
    let other = RedisRefreshStore::new(connection(cluster, &prefix))
        .with_clock(Arc::new(clock(writer_offset + SKEW_SECS)));
    let user = unique_user("skew-refresh");
    let session = refresh_store::record(
        &writer_clock,
        &portcullis_core::random_handle(),
        &user,
        0,
        60,
    );
    writer.create(&session, None).await.unwrap();
    other.list_by_user(&user).await.unwrap();
    let revoked = writer.delete_by_user(&user, None).await.unwrap();
    assert_eq!(revoked.len(), 1, "logout-all reached the session");
    assert_eq!(writer.load(&session.session_id).await.unwrap(), None);
}

#[tokio::test]
async fn a_node_ahead_does_not_prune_a_live_hybrid_session() {
    refresh_session_survives_no_logout_all(false, 0).await;
}

#[tokio::test]
async fn a_node_ahead_does_not_prune_a_live_hybrid_session_on_the_cluster() {
    refresh_session_survives_no_logout_all(true, 0).await;
}

/// A touch that finds the session's index entry gone (here removed by hand, as a lost write
/// would) puts it back before extending the record, so logout-all still reaches it.
async fn touch_reindexes_a_live_session(cluster: bool) {
    let prefix = unique_prefix("skew-touch");
    let redis = connection(cluster, &prefix);
    let clock = clock(0);
    let store = RedisSessionStore::new(redis).with_clock(Arc::new(clock.clone()));
    let user = unique_user("touch");
    let key = new_key();
    let original = record(&clock, Some(&user), 0, 60);
    store.create(&key, &original, None).await.unwrap();

    let raw = if cluster {
        let urls = cluster_urls();
        redis::cluster::ClusterClient::new(urls)
            .unwrap()
            .get_async_connection()
            .await
            .map(RawConnection::Cluster)
    } else {
        redis::Client::open(shared_url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .map(RawConnection::Single)
    }
    .unwrap();
    let live_key = format!("{{{prefix}:su:{user}}}:live");
    let removed: i64 = raw
        .query(redis::cmd("ZREM").arg(&live_key).arg(key.to_hex()))
        .await;
    assert_eq!(removed, 1, "the test removed the index entry");

    let now = clock.unix_seconds();
    assert!(store.touch(&key, now, now + 60).await.unwrap());
    let listed = store.list_by_user(&user).await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the touch put the session back in the index"
    );
    assert_eq!(listed[0].handle, original.handle, "with its handle");
    assert_eq!(store.delete_by_user(&user, None).await.unwrap(), 1);
    assert_eq!(store.load(&key).await.unwrap(), None);
}

enum RawConnection {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RawConnection {
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        match self {
            Self::Single(connection) => cmd.query_async(&mut connection.clone()).await,
            Self::Cluster(connection) => cmd.query_async(&mut connection.clone()).await,
        }
        .unwrap()
    }
}

#[tokio::test]
async fn touch_puts_a_lost_index_entry_back() {
    touch_reindexes_a_live_session(false).await;
}

#[tokio::test]
async fn touch_puts_a_lost_index_entry_back_on_the_cluster() {
    touch_reindexes_a_live_session(true).await;
}

/// Redis drops the index keys with their last entry, on its own clock: a node far ahead
/// neither shortens nor lengthens that.
#[tokio::test]
async fn index_keys_expire_by_redis_time_whatever_the_node_clock() {
    let prefix = unique_prefix("skew-ttl");
    let redis = connection(false, &prefix);
    let clock = clock(10 * SKEW_SECS);
    let store = RedisSessionStore::new(redis).with_clock(Arc::new(clock.clone()));
    let user = unique_user("ttl");
    store
        .create(&new_key(), &record(&clock, Some(&user), 0, 60), None)
        .await
        .unwrap();
    let raw = redis::Client::open(shared_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{{{prefix}:su:{user}}}:live"))
        .query_async(&mut raw.clone())
        .await
        .unwrap();
    // 60 s of session, plus the margin (command timeout + 2 s) and rounding.
    assert!((60..=66).contains(&ttl), "index TTL {ttl} s");
}
