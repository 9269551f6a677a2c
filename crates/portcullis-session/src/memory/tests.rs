use portcullis_core::{ManualClock, SecretToken, random_handle};

use serde_json::Map;

use super::*;

fn record(user: Option<&str>, now: u64, ttl: u64) -> SessionRecord {
    SessionRecord {
        handle: random_handle(),
        user_id: user.map(str::to_owned),
        user: user.map(|u| UserJson::new(&serde_json::json!({ "user": u })).unwrap()),
        data: Map::new(),
        created_at: now,
        authenticated_at: user.map(|_| now),
        last_seen_at: now,
        expires_at: now + ttl,
        absolute_expires_at: now + ttl * 10,
        user_agent: Some("test".into()),
        persistent: false,
        version: 0,
    }
}

fn store(clock: &ManualClock, max: usize, shards: usize) -> MemoryStore {
    MemoryStore::with_config(
        MemoryStoreConfig::default()
            .clock(Arc::new(clock.clone()))
            .max_sessions(max)
            .shards(shards),
    )
}

#[tokio::test]
async fn expired_sessions_are_absent_and_swept() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = store(&clock, 1_000, 4);
    let mut keys = Vec::new();
    for _ in 0..100 {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(Some("u1"), 1_000, 10), None)
            .await
            .unwrap();
        keys.push(key);
    }
    assert!(store.load(&keys[0]).await.unwrap().is_some());
    // Keep one alive by touching it.
    clock.advance(Duration::from_secs(5));
    assert!(store.touch(&keys[0], 1_005, 1_015).await.unwrap());
    clock.advance(Duration::from_secs(6));
    assert!(store.load(&keys[1]).await.unwrap().is_none());
    assert_eq!(store.len(), 100, "nothing swept yet");
    assert_eq!(store.sweep_expired(), 99);
    assert_eq!(store.len(), 1);
    assert!(store.load(&keys[0]).await.unwrap().is_some());
    assert_eq!(store.list_by_user("u1").await.unwrap().len(), 1);
    let users: usize = store
        .inner
        .users
        .iter()
        .map(|u| lock(u).values().map(Vec::len).sum::<usize>())
        .sum();
    assert_eq!(users, 1, "the user index forgets swept sessions");
}

#[tokio::test]
async fn the_cap_evicts_the_session_closest_to_expiry() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = store(&clock, 4, 1);
    let mut keys = Vec::new();
    for ttl in [50, 10, 40, 30] {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(None, 1_000, ttl), None)
            .await
            .unwrap();
        keys.push(key);
    }
    let newcomer = SecretToken::generate().store_key();
    store
        .create(&newcomer, &record(None, 1_000, 60), None)
        .await
        .unwrap();
    assert_eq!(store.len(), 4);
    assert_eq!(store.evictions(), 1);
    assert!(
        store.load(&keys[1]).await.unwrap().is_none(),
        "ttl 10 goes first"
    );
    assert!(store.load(&newcomer).await.unwrap().is_some());
}

/// Issue 18: eviction at the cap favoured whoever created sessions fastest. A flood of
/// anonymous sessions, or one account signing in again and again, must evict only its own.
#[tokio::test]
async fn a_flood_at_the_cap_evicts_only_its_own_sessions() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = store(&clock, 6, 1);
    // Real users, idle and close to expiry.
    let mut users = Vec::new();
    for user in ["alice", "bob"] {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(Some(user), 1_000, 5), None)
            .await
            .unwrap();
        users.push(key);
    }
    // An anonymous flood with fresh, long expiries.
    for _ in 0..100 {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(None, 1_000, 3_600), None)
            .await
            .unwrap();
    }
    for key in &users {
        assert!(
            store.load(key).await.unwrap().is_some(),
            "a user was evicted"
        );
    }
    // One account signing in over and over.
    for _ in 0..100 {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(Some("mallory"), 1_000, 3_600), None)
            .await
            .unwrap();
    }
    for key in &users {
        assert!(
            store.load(key).await.unwrap().is_some(),
            "a user was evicted"
        );
    }
    assert_eq!(store.len(), 6);
    assert!(store.evictions() >= 196);
}

#[tokio::test]
async fn deleted_sessions_do_not_grow_the_heap_without_bound() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = store(&clock, 1_000, 1);
    for _ in 0..10_000 {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(None, 1_000, 1_000), None)
            .await
            .unwrap();
        store.delete(&key).await.unwrap();
    }
    let heap = lock(&store.inner.shards[0]).expiry.len();
    assert!(heap < 200, "heap holds {heap} stale items");
}
