//! The ordering argument of the Redis stores (crate docs, "Atomicity and Redis Cluster"),
//! tested by leaving Redis in the states a crash between two steps can leave behind, and
//! checking what the next operations make of them. Private `redis-server` per test.

use portcullis::session::{LimitPolicy, SessionLimit, SessionRecord, SessionStore};
use portcullis_core::{Clock, SecretToken, StoreKey, SystemClock, UserJson};
use portcullis_hybrid::RefreshStore;
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisSessionStore};
use portcullis_tests::{
    conformance::refresh_store,
    redis_server::{RedisServer, unique_prefix},
};
use serde_json::json;

struct Fixture {
    server: RedisServer,
    prefix: String,
    sessions: RedisSessionStore,
}

fn fixture() -> Fixture {
    let server = RedisServer::start();
    let prefix = unique_prefix("crash");
    let redis = RedisConfig::new(server.url())
        .key_prefix(&prefix)
        .build()
        .unwrap();
    Fixture {
        sessions: RedisSessionStore::new(redis),
        prefix,
        server,
    }
}

impl Fixture {
    fn cli(&self, args: &[&str]) -> String {
        self.server.cli(args).trim().to_owned()
    }

    fn index_key(&self, user: &str, part: &str) -> String {
        format!("{{{}:su:{user}}}:{part}", self.prefix)
    }

    fn record_key(&self, key: &StoreKey) -> String {
        format!("{}:s:{}", self.prefix, key.to_hex())
    }

    /// Moves a member from `live` to `doomed`, as a logout-all that died after its first step.
    fn doom(&self, user: &str, key: &StoreKey) {
        let member = key.to_hex();
        let live = self.index_key(user, "live");
        let score = self.cli(&["ZSCORE", &live, &member]);
        self.cli(&["ZADD", &self.index_key(user, "doomed"), &score, &member]);
        self.cli(&["ZREM", &live, &member]);
    }

    async fn login(&self, user: &str, created_ago: u64) -> StoreKey {
        let key = SecretToken::generate().store_key();
        self.sessions
            .create(&key, &record(user, created_ago), None)
            .await
            .unwrap();
        key
    }
}

fn record(user: &str, created_ago: u64) -> SessionRecord {
    let now = SystemClock.unix_seconds();
    SessionRecord {
        handle: portcullis_core::random_handle(),
        user_id: Some(user.to_owned()),
        user: Some(UserJson::new(&json!({"user": user, "role": "advertiser"})).unwrap()),
        data: serde_json::Map::new(),
        created_at: now - created_ago,
        authenticated_at: Some(now - created_ago),
        last_seen_at: now,
        expires_at: now + 600,
        absolute_expires_at: now + 3_600,
        user_agent: None,
        persistent: false,
        version: 0,
    }
}

#[tokio::test]
async fn an_interrupted_logout_all_is_finished_by_the_next_operation_on_the_user() {
    let f = fixture();
    let (a, b) = (f.login("alice", 20).await, f.login("alice", 10).await);
    // The logout-all moved both to `doomed`, then its node died before deleting the records.
    f.doom("alice", &a);
    f.doom("alice", &b);
    // Listing (or any per-user operation) finishes the deletions first.
    assert!(f.sessions.list_by_user("alice").await.unwrap().is_empty());
    assert_eq!(f.sessions.load(&a).await.unwrap(), None);
    assert_eq!(f.sessions.load(&b).await.unwrap(), None);
    assert_eq!(f.cli(&["EXISTS", &f.record_key(&a)]), "0");
    assert_eq!(f.cli(&["EXISTS", &f.index_key("alice", "doomed")]), "0");

    // So does a login.
    let c = f.login("alice", 5).await;
    f.doom("alice", &c);
    let d = f.login("alice", 0).await;
    assert_eq!(f.sessions.load(&c).await.unwrap(), None);
    assert!(f.sessions.load(&d).await.unwrap().is_some());
}

#[tokio::test]
async fn a_doomed_session_is_never_put_back_by_a_save_or_touch() {
    let f = fixture();
    let key = f.login("alice", 0).await;
    f.doom("alice", &key);
    // A save and a touch racing the interrupted logout-all still land on the record...
    let mut changed = record("alice", 0);
    changed.version = 1;
    let now = SystemClock.unix_seconds();
    let _ = f.sessions.save(&key, &changed, 0).await.unwrap();
    let _ = f.sessions.touch(&key, now, now + 900).await.unwrap();
    // ...but the entry stays doomed, so the next per-user operation deletes the session.
    let member = key.to_hex();
    assert_eq!(
        f.cli(&["ZSCORE", &f.index_key("alice", "live"), &member]),
        ""
    );
    assert!(f.sessions.list_by_user("alice").await.unwrap().is_empty());
    assert_eq!(f.sessions.load(&key).await.unwrap(), None);
}

#[tokio::test]
async fn an_index_entry_left_by_an_interrupted_create_is_harmless_and_reaped() {
    let f = fixture();
    let real = f.login("alice", 100).await;
    // A create that died after its first step: an index entry, no record. Old enough to be
    // past the grace period that spares creates in flight.
    let ghost = SecretToken::generate().store_key().to_hex();
    let old = (SystemClock.unix_seconds() - 120).to_string();
    let expires = (SystemClock.unix_seconds() + 600).to_string();
    f.cli(&["ZADD", &f.index_key("alice", "live"), &expires, &ghost]);
    f.cli(&[
        "HSET",
        &f.index_key("alice", "info"),
        &ghost,
        &format!("{old}:ghost-handle"),
    ]);

    let listed = f.sessions.list_by_user("alice").await.unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the entry without a record is not a session"
    );
    assert_eq!(
        f.cli(&["ZSCORE", &f.index_key("alice", "live"), &ghost]),
        ""
    );
    assert!(
        !f.sessions
            .delete_by_handle("alice", "ghost-handle")
            .await
            .unwrap()
    );

    // Under a refuse-new limit of 2 the ghost would have blocked the next login: it is reaped
    // and the login goes through.
    f.cli(&["ZADD", &f.index_key("alice", "live"), &expires, &ghost]);
    f.cli(&[
        "HSET",
        &f.index_key("alice", "info"),
        &ghost,
        &format!("{old}:ghost-handle"),
    ]);
    let limit = SessionLimit {
        max: 2,
        policy: LimitPolicy::RefuseNew,
    };
    let key = SecretToken::generate().store_key();
    let outcome = f
        .sessions
        .create(&key, &record("alice", 0), Some(limit))
        .await
        .unwrap();
    assert!(matches!(
        outcome,
        portcullis::session::CreateOutcome::Created { .. }
    ));
    assert_eq!(f.sessions.list_by_user("alice").await.unwrap().len(), 2);
    assert!(f.sessions.load(&real).await.unwrap().is_some());
}

#[tokio::test]
async fn the_index_score_never_trails_the_record_expiry() {
    let f = fixture();
    let key = f.login("alice", 0).await;
    let member = key.to_hex();
    let check = || {
        let score: u64 = f
            .cli(&["ZSCORE", &f.index_key("alice", "live"), &member])
            .parse()
            .unwrap();
        let expiry: u64 = f.cli(&["HGET", &f.record_key(&key), "e"]).parse().unwrap();
        assert!(score >= expiry, "index {score} < record {expiry}");
        expiry
    };
    let first = check();
    let now = SystemClock.unix_seconds();
    assert!(f.sessions.touch(&key, now, now + 1_800).await.unwrap());
    assert!(check() > first);
    let mut saved = f.sessions.load(&key).await.unwrap().unwrap();
    saved.expires_at = now + 2_400;
    saved.version += 1;
    f.sessions
        .save(&key, &saved, saved.version - 1)
        .await
        .unwrap();
    assert_eq!(check(), now + 2_400);
}

#[tokio::test]
async fn every_key_expires_with_what_it_holds() {
    let f = fixture();
    let key = f.login("alice", 0).await;
    let ttl = |redis_key: &str| -> i64 { f.cli(&["TTL", redis_key]).parse().unwrap() };
    // The index keys outlive the record by the margin its score carries (command timeout of
    // 2 s + 2 s), never the reverse.
    for (redis_key, margin) in [
        (f.record_key(&key), 0),
        (f.index_key("alice", "live"), 4),
        (f.index_key("alice", "info"), 4),
    ] {
        let left = ttl(&redis_key);
        assert!(
            (590 + margin..=601 + margin).contains(&left),
            "{redis_key}: TTL {left}"
        );
    }
    f.sessions.delete(&key).await.unwrap();
    for part in ["live", "info", "doomed"] {
        assert_eq!(
            f.cli(&["EXISTS", &f.index_key("alice", part)]),
            "0",
            "{part}"
        );
    }
}

#[tokio::test]
async fn a_session_that_changes_user_leaves_the_old_index() {
    let f = fixture();
    let key = f.login("alice", 0).await;
    let mut moved = f.sessions.load(&key).await.unwrap().unwrap();
    moved.user_id = Some("bob".into());
    moved.version += 1;
    f.sessions
        .save(&key, &moved, moved.version - 1)
        .await
        .unwrap();
    assert!(f.sessions.list_by_user("alice").await.unwrap().is_empty());
    assert_eq!(f.sessions.list_by_user("bob").await.unwrap().len(), 1);
    assert_eq!(f.sessions.delete_by_user("alice", None).await.unwrap(), 0);
    assert!(f.sessions.load(&key).await.unwrap().is_some());
    assert_eq!(f.sessions.delete_by_user("bob", None).await.unwrap(), 1);
}

#[tokio::test]
async fn an_interrupted_refresh_logout_all_is_finished_too() {
    let f = fixture();
    let redis = RedisConfig::new(f.server.url())
        .key_prefix(&f.prefix)
        .build()
        .unwrap();
    let store = RedisRefreshStore::new(redis);
    let clock = portcullis_core::ManualClock::new();
    store
        .create(
            &refresh_store::record(&clock, "sid-1", "alice", 0, 600),
            None,
        )
        .await
        .unwrap();
    let live = format!("{{{}:ru:alice}}:live", f.prefix);
    let score = f.cli(&["ZSCORE", &live, "sid-1"]);
    f.cli(&[
        "ZADD",
        &format!("{{{}:ru:alice}}:doomed", f.prefix),
        &score,
        "sid-1",
    ]);
    f.cli(&["ZREM", &live, "sid-1"]);
    // The record is still there until the next operation on the user.
    assert!(store.load("sid-1").await.unwrap().is_some());
    let deleted = store.delete_by_user("alice", None).await.unwrap();
    assert_eq!(
        deleted.len(),
        1,
        "the leftover deletion is finished and reported"
    );
    assert_eq!(store.load("sid-1").await.unwrap(), None);
}
