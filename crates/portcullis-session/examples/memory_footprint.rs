//! Measures the memory a [`MemoryStore`] needs per signed-in session, with a counting global
//! allocator: `cargo run --release -p portcullis-session --example memory_footprint [-- COUNT]`
//! (default 1,000,000 sessions).
//!
//! Each session is what session-app stores after a login: a user id, a small user object, an
//! 80-byte user agent and no auxiliary data. The report gives the bytes the store holds on the
//! heap (requested sizes, excluding allocator overhead) and the growth of the resident set.

use std::{alloc::System, io::Write as _};

use portcullis_core::{SecretToken, UserJson, random_handle};
use portcullis_session::{MemoryStore, MemoryStoreConfig, SessionRecord, SessionStore};
use serde_json::{Map, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0";

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn record(i: usize, now: u64) -> SessionRecord {
    let user = format!("user-{:07}", i % 250_000);
    SessionRecord {
        handle: random_handle(),
        user_id: Some(user.clone()),
        user: Some(UserJson::new(&json!({"user": user, "role": "advertiser"})).unwrap()),
        data: Map::new(),
        created_at: now,
        authenticated_at: Some(now),
        last_seen_at: now,
        expires_at: now + 1_800,
        absolute_expires_at: now + 43_200,
        user_agent: Some(USER_AGENT.to_owned()),
        persistent: false,
        version: 0,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rss_before = resident_bytes();
    let region = Region::new(GLOBAL);
    let store = MemoryStore::with_config(
        MemoryStoreConfig::default().max_sessions(count.saturating_mul(2)),
    );
    for i in 0..count {
        let key = SecretToken::generate().store_key();
        store
            .create(&key, &record(i, now), None)
            .await
            .expect("the memory store does not fail");
    }
    let stats = region.change();
    let held = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
        + stats.bytes_reallocated as i64;
    let rss_after = resident_bytes();
    let mut out = std::io::stderr();
    let _ = writeln!(out, "sessions:               {}", store.len());
    let _ = writeln!(
        out,
        "heap held (requested):  {held} bytes = {} bytes/session",
        held / count as i64
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let _ = writeln!(
            out,
            "resident set growth:    {} bytes = {} bytes/session",
            after - before,
            (after - before) / count as u64
        );
    }
    drop(store);
}
