//! Keeps the memory a `MemoryStore` needs per session in check, with a counting global
//! allocator (the full one-million-session measurement is `examples/memory_footprint.rs`).

use std::alloc::System;

use portcullis_core::{SecretToken, UserJson, random_handle};
use portcullis_session::{MemoryStore, MemoryStoreConfig, SessionRecord, SessionStore};
use serde_json::{Map, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[tokio::test(flavor = "current_thread")]
async fn a_signed_in_session_costs_under_600_bytes() {
    const COUNT: usize = 50_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let region = Region::new(GLOBAL);
    let store = MemoryStore::with_config(MemoryStoreConfig::default().max_sessions(COUNT * 2));
    for i in 0..COUNT {
        let user = format!("user-{:07}", i % (COUNT / 4));
        let record = SessionRecord {
            handle: random_handle(),
            user_id: Some(user.clone()),
            user: Some(UserJson::new(&json!({"user": user, "role": "advertiser"})).unwrap()),
            data: Map::new(),
            created_at: now,
            authenticated_at: Some(now),
            last_seen_at: now,
            expires_at: now + 1_800,
            absolute_expires_at: now + 43_200,
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0".into()),
            persistent: false,
            version: 0,
        };
        store
            .create(&SecretToken::generate().store_key(), &record, None)
            .await
            .unwrap();
    }
    let stats = region.change();
    let held =
        stats.bytes_allocated + stats.bytes_reallocated.max(0) as usize - stats.bytes_deallocated;
    let per_session = held / COUNT;
    assert_eq!(store.len(), COUNT);
    assert!(per_session < 600, "{per_session} bytes per session");
    assert!(
        per_session > 200,
        "{per_session} bytes per session: the counter is not counting"
    );
}
