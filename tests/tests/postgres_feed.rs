//! The PostgreSQL revocation feed under faults: its `LISTEN` connection is killed by the server
//! (`pg_terminate_backend`) and a revocation is published while it is gone; the node reconnects,
//! catches up from the table and misses nothing. Also the table's bounded retention.

use std::{sync::Arc, time::Duration};

use portcullis_core::{Clock, ManualClock};
use portcullis_hybrid::{Revocation, RevocationFeed, RevocationList};
use portcullis_postgres::{PostgresConfig, PostgresConnection, PostgresRevocationFeed, sqlx};
use portcullis_tests::{
    postgres_server::{migrated, shared_url},
    redis_server::eventually,
};

async fn node(url: &str, schema: &str, clock: &ManualClock) -> PostgresRevocationFeed {
    let database = PostgresConfig::new(url).schema(schema).build().unwrap();
    PostgresRevocationFeed::new(database).with_clock(Arc::new(clock.clone()))
}

/// The server process of the connection listening on `channel`, if any.
async fn listener_pid(admin: &PostgresConnection, channel: &str) -> Option<i32> {
    sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE query = $1")
        .bind(format!("LISTEN \"{channel}\""))
        .fetch_optional(admin.pool())
        .await
        .unwrap()
}

fn revocation(session_id: &str, until: u64) -> Revocation {
    Revocation {
        session_id: session_id.to_owned(),
        until,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_whose_listen_connection_is_killed_catches_up_on_what_it_missed() {
    let admin = migrated("feed_kill").await;
    let url = shared_url().await;
    let clock = ManualClock::new();
    let now = clock.unix_seconds();
    let publisher = node(&url, admin.schema(), &clock).await;
    let subscriber = node(&url, admin.schema(), &clock).await;
    let list = RevocationList::new();
    subscriber.subscribe(list.clone()).await.unwrap();
    assert!(subscriber.is_caught_up());

    // Live delivery first.
    publisher
        .publish(&revocation("sid-live", now + 60))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || list.is_revoked("sid-live", now))
            .await
            .is_some()
    );

    let channel = subscriber.channel().to_owned();
    let old = listener_pid(&admin, &channel)
        .await
        .expect("a listening backend");
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(old)
        .fetch_one(admin.pool())
        .await
        .unwrap();
    assert!(terminated);
    // Published while the subscriber's LISTEN connection is dead: no notification reaches it.
    publisher
        .publish(&revocation("sid-while-away", now + 60))
        .await
        .unwrap();

    let caught_up = eventually(Duration::from_secs(10), || {
        list.is_revoked("sid-while-away", now)
    })
    .await;
    assert!(
        caught_up.is_some(),
        "the revocation published while away never arrived"
    );
    eprintln!("caught up {caught_up:?} after the connection was killed");
    // It listens again on a new connection, and live delivery works again.
    let started = std::time::Instant::now();
    loop {
        if let Some(new) = listener_pid(&admin, &channel).await
            && new != old
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never listened again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publisher
        .publish(&revocation("sid-after", now + 60))
        .await
        .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || list.is_revoked("sid-after", now))
            .await
            .is_some()
    );
    assert!(subscriber.is_caught_up());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catch_up_table_keeps_only_revocations_in_force() {
    let admin = migrated("feed_retention").await;
    let url = shared_url().await;
    let clock = ManualClock::new();
    let now = clock.unix_seconds();
    let feed = node(&url, admin.schema(), &clock).await;
    for i in 0..5 {
        feed.publish(&revocation(&format!("sid-old-{i}"), now + 10))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(20));
    feed.publish(&revocation("sid-new", now + 100))
        .await
        .unwrap();
    let rows: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM \"{}\".portcullis_revocations",
        admin.schema()
    ))
    .fetch_one(admin.pool())
    .await
    .unwrap();
    assert_eq!(
        rows, 1,
        "rows past their deadline are deleted by the next publish"
    );
}
