use portcullis_core::SecretToken;

use super::*;

fn record(user: &str, expires_at: u64) -> SessionRecord {
    SessionRecord {
        handle: format!("h-{user}"),
        user_id: Some(user.to_owned()),
        user: None,
        data: serde_json::Map::new(),
        created_at: 0,
        authenticated_at: Some(0),
        last_seen_at: 0,
        expires_at,
        absolute_expires_at: expires_at,
        user_agent: None,
        persistent: false,
        version: 1,
    }
}

fn live_cache(config: NearCacheConfig) -> NearCache {
    let cache = NearCache::new(config);
    cache.confirm_alive();
    cache
}

fn cached(cache: &NearCache, user: &str, expires_at: u64) -> StoreKey {
    let key = SecretToken::generate().store_key();
    let ticket = cache.reserve(&key).unwrap();
    cache.fill(ticket, &record(user, expires_at), 100);
    key
}

#[test]
fn a_filled_record_is_a_hit_for_its_own_key_only() {
    let cache = live_cache(NearCacheConfig::new());
    let alice = cached(&cache, "alice", 100);
    let bob = cached(&cache, "bob", 100);
    assert_eq!(
        cache.get(&alice, 10).unwrap().user_id.as_deref(),
        Some("alice")
    );
    assert_eq!(cache.get(&bob, 10).unwrap().user_id.as_deref(), Some("bob"));
    assert!(
        cache
            .get(&SecretToken::generate().store_key(), 10)
            .is_none()
    );
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (2, 1, 2));
}

#[test]
fn an_invalidation_during_a_miss_keeps_the_old_record_out() {
    let cache = live_cache(NearCacheConfig::new());
    let key = SecretToken::generate().store_key();
    let ticket = cache.reserve(&key).unwrap();
    // A write elsewhere is heard while this miss still waits for Redis' (old) answer.
    cache.invalidate(key.as_bytes());
    cache.fill(ticket, &record("alice", 100), 100);
    assert!(cache.get(&key, 10).is_none());
    // A later reservation supersedes an earlier one.
    let first = cache.reserve(&key).unwrap();
    let second = cache.reserve(&key).unwrap();
    cache.fill(first, &record("old", 100), 100);
    assert!(cache.get(&key, 10).is_none());
    cache.fill(second, &record("new", 100), 100);
    assert_eq!(cache.get(&key, 10).unwrap().user_id.as_deref(), Some("new"));
}

#[test]
fn nothing_is_served_or_kept_unless_the_subscription_is_alive() {
    let cache = NearCache::new(NearCacheConfig::new());
    let key = SecretToken::generate().store_key();
    assert!(cache.reserve(&key).is_none(), "never confirmed alive");
    cache.confirm_alive();
    let key = cached(&cache, "alice", 100);
    let pending = SecretToken::generate().store_key();
    let ticket = cache.reserve(&pending).unwrap();
    cache.drop_all();
    assert!(cache.get(&key, 10).is_none());
    cache.fill(ticket, &record("alice", 100), 100);
    cache.confirm_alive();
    assert!(
        cache.get(&key, 10).is_none(),
        "dropped entries stay dropped"
    );
    assert!(
        cache.get(&pending, 10).is_none(),
        "a miss across a drop keeps nothing"
    );
    assert_eq!(cache.stats().drops, 1);
}

#[test]
fn a_heartbeat_not_renewed_stops_hits() {
    let cache = live_cache(NearCacheConfig::new().heartbeat_interval(MIN_HEARTBEAT));
    let key = cached(&cache, "alice", 100);
    assert!(cache.get(&key, 10).is_some());
    std::thread::sleep(MIN_HEARTBEAT * 2 + Duration::from_millis(20));
    assert!(cache.get(&key, 10).is_none());
    assert!(!cache.stats().live);
}

#[test]
fn entries_end_with_the_session_and_with_max_age() {
    let cache = live_cache(NearCacheConfig::new());
    let key = cached(&cache, "alice", 100);
    assert!(cache.get(&key, 99).is_some());
    assert!(cache.get(&key, 100).is_none());
    assert!(
        cache.get(&key, 10).is_none(),
        "an expired entry is gone for good"
    );

    let cache = live_cache(NearCacheConfig::new().max_age(Duration::ZERO));
    let key = cached(&cache, "alice", 100);
    assert!(cache.get(&key, 10).is_none());
}

#[test]
fn memory_is_bounded_by_entries_and_bytes() {
    let cache = live_cache(NearCacheConfig::new().max_entries(32));
    for _ in 0..500 {
        cached(&cache, "alice", 100);
    }
    assert!(cache.stats().entries <= 32, "{:?}", cache.stats());

    let cache = live_cache(NearCacheConfig::new().max_bytes(0));
    let limit = SHARDS * 4096;
    for _ in 0..5_000 {
        cached(&cache, "alice", 100);
    }
    assert!(cache.stats().bytes <= limit, "{:?}", cache.stats());
    // A record larger than a shard's share is never kept.
    let key = SecretToken::generate().store_key();
    let ticket = cache.reserve(&key).unwrap();
    cache.fill(ticket, &record("alice", 100), 4096);
    assert!(cache.get(&key, 10).is_none());
}
