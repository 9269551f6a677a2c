use portcullis_core::{ManualClock, SecretToken};

use super::*;

fn record(session_id: &str, user_id: &str, created_at: u64, expires_at: u64) -> RefreshRecord {
    RefreshRecord {
        session_id: session_id.into(),
        user_id: user_id.into(),
        user: serde_json::json!({"user": user_id}),
        created_at,
        authenticated_at: created_at,
        refreshed_at: created_at,
        idle_expires_at: expires_at,
        absolute_expires_at: expires_at + 100,
        current_hash: SecretToken::generate().store_key(),
        previous: Vec::new(),
        generation: 0,
        family_hash: None,
        user_agent: None,
    }
}

#[tokio::test]
async fn crud_index_and_expiry() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()));
    store
        .create(&record("b", "alice", 1_001, 1_100), None)
        .await
        .unwrap();
    store
        .create(&record("a", "alice", 1_000, 2_000), None)
        .await
        .unwrap();
    store
        .create(&record("c", "bob", 1_000, 2_000), None)
        .await
        .unwrap();

    let listed: Vec<_> = store.list_by_user("alice").await.unwrap();
    let ids: Vec<_> = listed.iter().map(|r| r.session_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"], "oldest first");

    // Compare-and-swap succeeds once per generation.
    let mut next = listed[0].clone();
    next.generation = 1;
    assert!(store.compare_and_swap(&next, 0).await.unwrap());
    assert!(!store.compare_and_swap(&next, 0).await.unwrap());
    assert_eq!(store.load("a").await.unwrap().unwrap().generation, 1);
    assert!(
        !store
            .compare_and_swap(&record("zz", "x", 0, 5_000), 0)
            .await
            .unwrap()
    );

    // Expired records are absent everywhere.
    clock.advance(std::time::Duration::from_secs(100));
    assert!(store.load("b").await.unwrap().is_none());
    assert_eq!(store.list_by_user("alice").await.unwrap().len(), 1);
    let mut expired = record("b", "alice", 1_001, 1_100);
    expired.generation = 1;
    assert!(!store.compare_and_swap(&expired, 0).await.unwrap());

    let deleted = store.delete_by_user("alice", None).await.unwrap();
    assert_eq!(deleted.len(), 1);
    assert!(store.load("a").await.unwrap().is_none());
    assert_eq!(store.delete("c").await.unwrap().unwrap().user_id, "bob");
    assert!(store.delete("c").await.unwrap().is_none());
    store.purge_expired();
    assert!(store.is_empty());
}

#[tokio::test]
async fn the_cap_purges_then_evicts_the_session_closest_to_expiry() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = MemoryRefreshStore::new()
        .with_clock(Arc::new(clock.clone()))
        .max_sessions(3);
    store
        .create(&record("a", "u1", 1_000, 1_010), None)
        .await
        .unwrap();
    store
        .create(&record("b", "u2", 1_000, 1_500), None)
        .await
        .unwrap();
    store
        .create(&record("c", "u3", 1_000, 1_200), None)
        .await
        .unwrap();
    // "a" expires; at the cap it is purged rather than a live session evicted.
    clock.advance(std::time::Duration::from_secs(20));
    store
        .create(&record("d", "u4", 1_020, 1_900), None)
        .await
        .unwrap();
    assert_eq!(store.len(), 3);
    assert!(store.load("b").await.unwrap().is_some());
    // Full of live sessions: the one closest to expiry ("c") goes, even after a
    // rotation moved "b" later than it was.
    let mut b = store.load("b").await.unwrap().unwrap();
    b.idle_expires_at = 1_100;
    b.generation = 1;
    assert!(store.compare_and_swap(&b, 0).await.unwrap());
    store
        .create(&record("e", "u5", 1_020, 1_900), None)
        .await
        .unwrap();
    assert_eq!(store.len(), 3);
    assert!(
        store.load("b").await.unwrap().is_none(),
        "closest to expiry"
    );
    assert!(store.load("c").await.unwrap().is_some());
    assert!(store.list_by_user("u2").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_past_the_limit_loses_their_oldest_session() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = MemoryRefreshStore::new()
        .with_clock(Arc::new(clock.clone()))
        .max_sessions_per_user(2);
    store
        .create(&record("old", "alice", 1_000, 2_000), None)
        .await
        .unwrap();
    store
        .create(&record("mid", "alice", 1_001, 2_000), None)
        .await
        .unwrap();
    store
        .create(&record("bob", "bob", 999, 2_000), None)
        .await
        .unwrap();
    store
        .create(&record("new", "alice", 1_002, 2_000), None)
        .await
        .unwrap();
    let ids: Vec<_> = store
        .list_by_user("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.session_id)
        .collect();
    assert_eq!(ids, ["mid", "new"]);
    assert!(store.load("old").await.unwrap().is_none());
    assert!(
        store.load("bob").await.unwrap().is_some(),
        "other users untouched"
    );
}

#[tokio::test]
async fn purge_frees_expired_records_and_their_queue() {
    let clock = ManualClock::at_unix_seconds(1_000);
    let store = MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()));
    for i in 0..200 {
        store
            .create(
                &record(&format!("s{i}"), &format!("u{i}"), 1_000, 1_010 + i),
                None,
            )
            .await
            .unwrap();
    }
    // Records 0..100 expire at 1_010..=1_109.
    clock.advance(std::time::Duration::from_secs(109));
    assert_eq!(RefreshStore::purge_expired(&store).await.unwrap(), 100);
    assert_eq!(store.len(), 100);
    assert!(store.lock().expiry.len() <= 2 * 100 + 64);
}
