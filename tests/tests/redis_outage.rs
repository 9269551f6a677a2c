//! Redis outages against private `redis-server` processes on loopback: killed, restarted,
//! paused. Stores fail with `StoreError` in bounded time (never hang, never allow), recover
//! without being rebuilt, and the revocation feed catches up on what it missed.

use std::time::{Duration, Instant};

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode, header};
use portcullis::{
    CurrentUser, StoreError,
    session::{SessionConfig, SessionLayer, SessionRecord, SessionStore},
};
use portcullis_core::{Clock, SecretToken, SystemClock, UserJson};
use portcullis_hybrid::{RefreshStore, Revocation, RevocationFeed, RevocationList};
use portcullis_redis::{
    RedisConfig, RedisConnection, RedisRefreshStore, RedisRevocationFeed, RedisSessionStore,
};
use portcullis_tests::{
    conformance::refresh_store::record,
    redis_server::{RedisServer, eventually, unique_prefix},
};
use serde_json::json;
use tower::ServiceExt;

const COMMAND_TIMEOUT: Duration = Duration::from_millis(400);
/// Generous slack over the command timeout for a loaded CI machine.
const BOUND: Duration = Duration::from_millis(1_500);

fn connect(url: &str) -> RedisConnection {
    RedisConfig::new(url)
        .key_prefix(unique_prefix("outage"))
        .connection_timeout(Duration::from_millis(300))
        .command_timeout(COMMAND_TIMEOUT)
        .build()
        .unwrap()
}

fn session_record(user: &str) -> SessionRecord {
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

fn is_outage(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Timeout)
}

/// Retries `operation` until it succeeds (Redis back) or `within` passes.
async fn until_ok<T, F, Fut>(within: Duration, mut operation: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let started = Instant::now();
    loop {
        match operation().await {
            Ok(value) => return value,
            Err(error) if started.elapsed() < within => {
                assert!(is_outage(&error), "{error:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("still failing after {within:?}: {error:?}"),
        }
    }
}

#[tokio::test]
async fn stores_fail_in_bounded_time_while_redis_is_down_and_recover_after_a_restart() {
    let mut server = RedisServer::start();
    let redis = connect(&server.url());
    let sessions = RedisSessionStore::new(redis.clone());
    let refresh = RedisRefreshStore::new(redis.clone());
    let key = SecretToken::generate().store_key();
    sessions
        .create(&key, &session_record("alice"), None)
        .await
        .unwrap();
    let clock = portcullis_core::ManualClock::new();
    refresh
        .create(&record(&clock, "sid-1", "alice", 0, 600), None)
        .await
        .unwrap();
    assert!(sessions.load(&key).await.unwrap().is_some());

    server.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let error = sessions.load(&key).await.unwrap_err();
        assert!(is_outage(&error), "{error:?}");
        assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
        let started = Instant::now();
        let error = refresh.load("sid-1").await.unwrap_err();
        assert!(is_outage(&error), "{error:?}");
        assert!(started.elapsed() < BOUND, "took {:?}", started.elapsed());
        let error = sessions
            .create(
                &SecretToken::generate().store_key(),
                &session_record("bob"),
                None,
            )
            .await
            .unwrap_err();
        assert!(is_outage(&error), "{error:?}");
    }

    // Same stores, same connection handle: they reconnect by themselves. The restarted server
    // has no persistence, so the old session is gone (a lost session, never a resurrected one).
    server.restart();
    let loaded = until_ok(Duration::from_secs(5), || sessions.load(&key)).await;
    assert_eq!(loaded, None);
    let key = SecretToken::generate().store_key();
    sessions
        .create(&key, &session_record("alice"), None)
        .await
        .unwrap();
    assert!(sessions.load(&key).await.unwrap().is_some());
    assert_eq!(sessions.list_by_user("alice").await.unwrap().len(), 1);
    refresh
        .create(&record(&clock, "sid-2", "alice", 0, 600), None)
        .await
        .unwrap();
    assert!(refresh.load("sid-2").await.unwrap().is_some());
}

#[tokio::test]
async fn an_application_can_start_before_redis_does() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let redis = connect(&url);
    let started = Instant::now();
    assert!(is_outage(&redis.ping().await.unwrap_err()));
    assert!(started.elapsed() < BOUND);
    server.restart();
    until_ok(Duration::from_secs(5), || redis.ping()).await;
}

#[tokio::test]
async fn a_paused_redis_times_out_within_the_command_timeout() {
    let server = RedisServer::start();
    let redis = connect(&server.url());
    let sessions = RedisSessionStore::new(redis.clone());
    let key = SecretToken::generate().store_key();
    sessions
        .create(&key, &session_record("alice"), None)
        .await
        .unwrap();

    assert_eq!(server.cli(&["CLIENT", "PAUSE", "2000", "ALL"]).trim(), "OK");
    let started = Instant::now();
    let error = sessions.load(&key).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(error, StoreError::Timeout), "{error:?}");
    assert!(
        took >= COMMAND_TIMEOUT - Duration::from_millis(50),
        "{took:?}"
    );
    assert!(took < BOUND, "took {took:?}");
    let error = sessions
        .touch(&key, 1, SystemClock.unix_seconds() + 900)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Timeout), "{error:?}");

    // Once the pause ends the same store answers again.
    let loaded = until_ok(Duration::from_secs(5), || sessions.load(&key)).await;
    assert!(loaded.is_some());
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    user: String,
    role: String,
}

#[tokio::test]
async fn session_routes_answer_503_with_retry_after_during_an_outage() {
    let mut server = RedisServer::start();
    let store = RedisSessionStore::new(connect(&server.url()));
    let key_secret = SecretToken::generate();
    store
        .create(&key_secret.store_key(), &session_record("alice"), None)
        .await
        .unwrap();
    let app = Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .route("/public", get(|| async { "hello" }))
        .layer(SessionLayer::new(store, SessionConfig::default()).unwrap());
    let request = |path: &str| {
        Request::get(path)
            .header(
                header::COOKIE,
                format!("__Host-session={}", key_secret.expose()),
            )
            .body(Body::empty())
            .unwrap()
    };
    let ok = app.clone().oneshot(request("/me")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);

    server.kill();
    let started = Instant::now();
    let down = app.clone().oneshot(request("/me")).await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(down.headers().contains_key(header::RETRY_AFTER));
    assert!(started.elapsed() < BOUND);
    // A route that does not ask for the user never touches the store.
    let public = app.clone().oneshot(request("/public")).await.unwrap();
    assert_eq!(public.status(), StatusCode::OK);
}

fn feed(redis: RedisConnection) -> RedisRevocationFeed {
    RedisRevocationFeed::new(redis).resync_interval(Duration::from_secs(60))
}

fn revocation(session_id: &str) -> Revocation {
    Revocation {
        session_id: session_id.to_owned(),
        until: SystemClock.unix_seconds() + 600,
    }
}

#[tokio::test]
async fn the_feed_catches_up_on_revocations_published_while_it_was_disconnected() {
    let server = RedisServer::start();
    let url = server.url();
    let prefix = unique_prefix("feed-gap");
    let node = |prefix: &str| {
        RedisConfig::new(&url)
            .key_prefix(prefix)
            .command_timeout(COMMAND_TIMEOUT)
            .build()
            .unwrap()
    };
    let (publisher, listener) = (feed(node(&prefix)), feed(node(&prefix)));
    let list = RevocationList::new();
    listener.subscribe(list.clone()).await.unwrap();

    // Cut the listener's pub/sub connection and publish at once, before it can resubscribe:
    // pub/sub drops these messages; the catch-up after resubscribing must still find them.
    for round in 0..3 {
        let killed = server.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
        assert_eq!(killed.trim(), "1", "one subscriber connection killed");
        let missed: Vec<String> = (0..5).map(|i| format!("sid-{round}-{i}")).collect();
        for session_id in &missed {
            publisher.publish(&revocation(session_id)).await.unwrap();
        }
        let caught_up = eventually(Duration::from_secs(5), || {
            missed
                .iter()
                .all(|id| list.is_revoked(id, SystemClock.unix_seconds()))
        })
        .await;
        assert!(
            caught_up.is_some(),
            "round {round}: missed revocations never arrived"
        );
    }
}

#[tokio::test]
async fn the_feed_resubscribes_after_redis_restarts() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("feed-restart");
    let url = server.url();
    let node = || {
        RedisConfig::new(&url)
            .key_prefix(&prefix)
            .command_timeout(COMMAND_TIMEOUT)
            .build()
            .unwrap()
    };
    let (publisher, listener) = (feed(node()), feed(node()));
    let list = RevocationList::new();
    listener.subscribe(list.clone()).await.unwrap();
    publisher.publish(&revocation("before")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || list.is_revoked("before", 0))
            .await
            .is_some()
    );

    server.kill();
    assert!(is_outage(
        &publisher.publish(&revocation("during")).await.unwrap_err()
    ));
    // Revocations the node already knows stay enforced during the outage.
    assert!(list.is_revoked("before", SystemClock.unix_seconds()));

    server.restart();
    let after = revocation("after");
    until_ok(Duration::from_secs(5), || publisher.publish(&after)).await;
    assert!(
        eventually(Duration::from_secs(10), || list.is_revoked("after", 0))
            .await
            .is_some(),
        "the listener never resubscribed"
    );
}

#[tokio::test]
async fn the_eviction_policy_can_be_checked_at_start_up() {
    let server = RedisServer::start();
    let redis = connect(&server.url());
    assert_eq!(redis.eviction_policy().await.unwrap(), "noeviction");
    server.cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    assert_eq!(redis.eviction_policy().await.unwrap(), "allkeys-lru");
}
