//! The Redis session near-cache (issue 15, items 3 and 4): a node that cached a session hears
//! every change made on another node (data write, touch, role change, logout, revoke one,
//! logout-all, eviction by the session limit) within a bounded, measured delay, on a single
//! Redis and on a Redis Cluster; never serves one session's record for another; never serves
//! an expired one; drops everything when Redis restarts; stops serving hits when its
//! invalidation subscription silently stalls; and makes no Redis round trip on a hit.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use portcullis::session::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};
use portcullis_core::{Clock, ManualClock, SecretToken, StoreKey, SystemClock, UserJson};
use portcullis_redis::{NearCacheConfig, RedisConfig, RedisConnection, RedisSessionStore};
use portcullis_tests::{
    redis_server::{RedisServer, cluster_urls, command_calls, shared_url, unique_prefix},
    stall_proxy::StallProxy,
};
use serde_json::json;

const HEARTBEAT: Duration = Duration::from_millis(250);
/// What a change may take to reach another node's cache: pub/sub delivers in about a
/// millisecond on loopback; this leaves room for a loaded test machine.
const BOUND: Duration = Duration::from_secs(1);

fn connection(urls: &str, prefix: &str) -> RedisConnection {
    RedisConfig::from_urls(urls)
        .key_prefix(prefix)
        .connection_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn plain(urls: &str, prefix: &str) -> RedisSessionStore {
    RedisSessionStore::new(connection(urls, prefix))
}

fn near(urls: &str, prefix: &str) -> RedisSessionStore {
    plain(urls, prefix).near_cache(NearCacheConfig::new().heartbeat_interval(HEARTBEAT))
}

fn record(user: &str) -> SessionRecord {
    let now = SystemClock.unix_seconds();
    SessionRecord {
        handle: portcullis_core::random_handle(),
        user_id: Some(user.to_owned()),
        user: Some(UserJson::new(&json!({"user": user, "role": "advertiser"})).unwrap()),
        data: serde_json::Map::new(),
        created_at: now,
        authenticated_at: Some(now),
        last_seen_at: now,
        expires_at: now + 600,
        absolute_expires_at: now + 3_600,
        user_agent: None,
        persistent: false,
        version: 0,
    }
}

async fn create(store: &RedisSessionStore, record: &SessionRecord) -> StoreKey {
    let key = SecretToken::generate().store_key();
    let outcome = store.create(&key, record, None).await.unwrap();
    assert!(matches!(outcome, CreateOutcome::Created { .. }));
    key
}

fn hits(store: &RedisSessionStore) -> u64 {
    store.near_cache_stats().unwrap().hits
}

/// Loads `key` until the cache answers it (the subscription starts with the first load).
async fn warm(store: &RedisSessionStore, key: &StoreKey) -> SessionRecord {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let before = hits(store);
        let record = store.load(key).await.unwrap().expect("the session exists");
        if hits(store) > before {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "the near-cache never served a hit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `condition` until it holds; how long that took, or `None` after `within`.
async fn until<F, Fut>(within: Duration, mut condition: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if condition().await {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// One change made on `writer` while `reader` has the session cached: how long until the
/// reader sees it, and whether its very first load already did.
struct Seen {
    change: &'static str,
    delay: Duration,
    first: bool,
}

async fn seen<F, Fut>(
    change: &'static str,
    reader: &RedisSessionStore,
    key: &StoreKey,
    check: F,
) -> Seen
where
    F: Fn(Option<SessionRecord>) -> Fut,
    Fut: Future<Output = bool>,
{
    let first = check(reader.load(key).await.unwrap()).await;
    let delay = until(BOUND, || async {
        check(reader.load(key).await.unwrap()).await
    })
    .await
    .unwrap_or_else(|| panic!("{change}: the other node still served the old record"));
    Seen {
        change,
        delay,
        first,
    }
}

async fn every_change_reaches_the_other_nodes_cache(urls: &str) {
    let prefix = unique_prefix("near");
    let writer = plain(urls, &prefix);
    let reader = near(urls, &prefix);
    let mut seen_all = Vec::new();

    // A data write.
    let mut stored = record("alice");
    let key = create(&writer, &stored).await;
    warm(&reader, &key).await;
    stored.data.insert("cart".into(), json!(["book"]));
    stored.version = 1;
    assert_eq!(
        writer.save(&key, &stored, 0).await.unwrap(),
        SaveOutcome::Saved
    );
    seen_all.push(
        seen("data write", &reader, &key, |found| async move {
            found.is_some_and(|r| r.version == 1 && r.data.contains_key("cart"))
        })
        .await,
    );

    // A touch that moves the expiry.
    warm(&reader, &key).await;
    let later = stored.expires_at + 300;
    assert!(
        writer
            .touch(&key, stored.last_seen_at + 5, later)
            .await
            .unwrap()
    );
    seen_all.push(
        seen("touch", &reader, &key, |found| async move {
            found.is_some_and(|r| r.expires_at == later)
        })
        .await,
    );

    // A role change.
    warm(&reader, &key).await;
    let admin = UserJson::new(&json!({"user": "alice", "role": "admin"})).unwrap();
    assert_eq!(writer.replace_user("alice", &admin).await.unwrap(), 1);
    seen_all.push(
        seen("role change", &reader, &key, |found| {
            let admin = admin.clone();
            async move { found.is_some_and(|r| r.user == Some(admin)) }
        })
        .await,
    );

    // Logout.
    warm(&reader, &key).await;
    writer.delete(&key).await.unwrap();
    seen_all.push(
        seen(
            "logout",
            &reader,
            &key,
            |found| async move { found.is_none() },
        )
        .await,
    );

    // Revoke one device by its handle.
    let device = record("bob");
    let key = create(&writer, &device).await;
    warm(&reader, &key).await;
    assert!(
        writer
            .delete_by_handle("bob", &device.handle)
            .await
            .unwrap()
    );
    seen_all.push(
        seen("revoke one", &reader, &key, |found| async move {
            found.is_none()
        })
        .await,
    );

    // Log out everywhere.
    let keys = [
        create(&writer, &record("carol")).await,
        create(&writer, &record("carol")).await,
    ];
    for key in &keys {
        warm(&reader, key).await;
    }
    assert_eq!(writer.delete_by_user("carol", None).await.unwrap(), 2);
    for key in &keys {
        seen_all.push(
            seen("logout-all", &reader, key, |found| async move {
                found.is_none()
            })
            .await,
        );
    }

    // Eviction by the session limit.
    let limit = Some(SessionLimit {
        max: 1,
        policy: LimitPolicy::EvictOldest,
    });
    let oldest = SecretToken::generate().store_key();
    writer
        .create(&oldest, &record("dave"), limit)
        .await
        .unwrap();
    warm(&reader, &oldest).await;
    let newer = SecretToken::generate().store_key();
    let outcome = writer.create(&newer, &record("dave"), limit).await.unwrap();
    assert!(matches!(outcome, CreateOutcome::Created { evicted } if evicted.len() == 1));
    seen_all.push(
        seen("eviction", &reader, &oldest, |found| async move {
            found.is_none()
        })
        .await,
    );

    let first = seen_all.iter().filter(|seen| seen.first).count();
    let slowest = seen_all.iter().max_by_key(|seen| seen.delay).unwrap();
    eprintln!(
        "near-cache ({}): {first}/{} changes seen by the other node's very next load; slowest: {} after {:?}",
        if urls.contains(',') {
            "cluster"
        } else {
            "single Redis"
        },
        seen_all.len(),
        slowest.change,
        slowest.delay,
    );
    assert!(
        hits(&reader) >= 8,
        "the reader's cache served hits between changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_the_other_nodes_cache_on_a_single_redis() {
    every_change_reaches_the_other_nodes_cache(&shared_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_the_other_nodes_cache_on_a_cluster() {
    every_change_reaches_the_other_nodes_cache(&cluster_urls().join(",")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_writes_never_reads_its_own_stale_record() {
    let prefix = unique_prefix("near-self");
    let store = near(&shared_url(), &prefix);
    let mut stored = record("alice");
    let key = create(&store, &stored).await;
    warm(&store, &key).await;
    stored.version = 1;
    stored.data.insert("step".into(), json!(2));
    assert_eq!(
        store.save(&key, &stored, 0).await.unwrap(),
        SaveOutcome::Saved
    );
    // No wait at all: the writer dropped its own entry before `save` returned.
    assert_eq!(store.load(&key).await.unwrap().unwrap().version, 1);
    store.delete(&key).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_never_serves_one_sessions_record_for_another() {
    let prefix = unique_prefix("near-mix");
    let url = shared_url();
    let writer = plain(&url, &prefix);
    let reader = Arc::new(near(&url, &prefix));
    let mut sessions = Vec::new();
    for user in 0..40 {
        for _ in 0..3 {
            let stored = record(&format!("user-{user}"));
            let key = create(&writer, &stored).await;
            sessions.push((key, stored));
        }
    }
    warm(&reader, &sessions[0].0).await;
    // Many rounds of concurrent loads, misses and hits interleaved.
    for _ in 0..4 {
        let loads = sessions.iter().rev().map(|(key, stored)| {
            let reader = reader.clone();
            async move {
                let found = reader.load(key).await.unwrap().unwrap();
                assert_eq!(found.handle, stored.handle);
                assert_eq!(found.user_id, stored.user_id);
                assert_eq!(found.user, stored.user);
            }
        });
        join_all(loads).await;
    }
    assert!(hits(&reader) >= 3 * sessions.len() as u64 - 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_never_served_from_the_cache() {
    let prefix = unique_prefix("near-expiry");
    let url = shared_url();
    let writer = plain(&url, &prefix);
    let clock = Arc::new(ManualClock::at_unix_seconds(SystemClock.unix_seconds()));
    let reader = near(&url, &prefix).with_clock(clock.clone());
    let stored = record("alice");
    let key = create(&writer, &stored).await;
    warm(&reader, &key).await;
    clock.advance(Duration::from_secs(601));
    assert!(reader.load(&key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_drops_the_cache() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("near-restart");
    let store = near(&server.url(), &prefix);
    let key = create(&store, &record("alice")).await;
    warm(&store, &key).await;

    server.kill();
    // The closed subscription is noticed at once (at the latest, the missing heartbeat
    // answer ends hits within two intervals).
    let noticed = until(HEARTBEAT * 2 + Duration::from_millis(300), || async {
        !store.near_cache_stats().unwrap().live
    })
    .await
    .expect("the cache outlived its subscription");
    eprintln!("near-cache: Redis killed, cache dropped after {noticed:?}");
    // Down: an error (the layer's 503), never the cached record.
    let outage = store.load(&key).await;
    assert!(outage.is_err(), "{outage:?}");
    server.restart();
    // Up again, empty: the session was lost with the restart and no node may bring it back.
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if let Ok(found) = store.load(&key).await {
            assert!(
                found.is_none(),
                "a record lost by Redis served from the cache"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = store.near_cache_stats().unwrap();
    assert!(stats.drops >= 1, "{stats:?}");
    // And it recovers by itself.
    let key = create(&store, &record("alice")).await;
    warm(&store, &key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscription_stops_hits_within_two_heartbeats() {
    let server = RedisServer::start();
    let proxy =
        StallProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], server.port()))).await;
    let prefix = unique_prefix("near-stall");
    let reader = near(&proxy.url(), &prefix);
    let writer = plain(&server.url(), &prefix);
    let key = create(&writer, &record("alice")).await;
    warm(&reader, &key).await;

    // The subscription goes silent without closing; the command connection keeps working.
    proxy.stall_subscribers();
    writer.delete(&key).await.unwrap();
    let delay = until(Duration::from_secs(5), || async {
        matches!(reader.load(&key).await, Ok(None))
    })
    .await
    .expect("a logout behind a stalled subscription was never seen");
    eprintln!("near-cache: logout seen through a stalled subscription after {delay:?}");
    assert!(
        delay <= HEARTBEAT * 2 + Duration::from_millis(300),
        "hits outlived two heartbeats: {delay:?}"
    );
    // It subscribes again and serves hits once more.
    let key = create(&writer, &record("bob")).await;
    warm(&reader, &key).await;
    assert!(reader.near_cache_stats().unwrap().drops >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_makes_no_redis_round_trip() {
    const LOADS: u64 = 50;
    let server = RedisServer::start();
    let store = near(&server.url(), &unique_prefix("near-rtt"));
    let key = create(&store, &record("alice")).await;
    warm(&store, &key).await;
    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..LOADS {
        assert!(store.load(&key).await.unwrap().is_some());
    }
    let sent: Vec<_> = command_calls(server.port())
        .into_iter()
        .filter(|(name, _)| !name.starts_with("config") && name != "info" && name != "ping")
        .collect();
    assert_eq!(
        sent,
        [],
        "only the subscription's heartbeat may reach Redis"
    );
    assert!(hits(&store) >= LOADS);
}
