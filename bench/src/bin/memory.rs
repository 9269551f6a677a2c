//! Memory measurements with a counting global allocator:
//! `cargo run --release -p portcullis-bench --bin memory [-- COUNT ...]`.
//!
//! 1. Bytes per session in the session stores at each COUNT (default 10,000, 100,000 and
//!    1,000,000): every session is made by a real `POST /login` through the layer, with an
//!    80-character `User-Agent`, in a fresh store; "heap" is the bytes the store holds
//!    (requested sizes, without allocator overhead), "RSS" the growth of the resident set.
//! 2. Allocations per authenticated `GET /me` on every stack (Redis stacks when `REDIS_URL`, or
//!    a Redis on 127.0.0.1:6379, answers).
//! 3. Heap bytes per entry of the Redis session store's near-cache (5,000 sessions of the scale
//!    benchmark's shape), against what the cache counts towards its byte bound.

use std::{alloc::System, io::Write as _};

use axum::{body::Body, extract::Request, http::header};
use portcullis_bench::{App, RedisTarget, Stack, USER_AGENT, build, check, session_record};
use portcullis_core::{Clock, SecretToken, SystemClock};
use portcullis_redis::{NearCacheConfig, RedisConfig, RedisSessionStore};
use portcullis_session::{MemoryStore, MemoryStoreConfig, SessionStore};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::ServiceExt;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn resident_bytes() -> i64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn held(region: &Region<'_, System>) -> i64 {
    let stats = region.change();
    // stats_alloc already books a realloc's growth under bytes_allocated (and a shrink under
    // bytes_deallocated); adding bytes_reallocated as well would count every realloc twice.
    stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
}

async fn login_many(router: &axum::Router, count: usize) {
    for _ in 0..count {
        let response = router
            .clone()
            .oneshot(
                Request::post("/login")
                    .header(header::USER_AGENT, USER_AGENT)
                    .body(Body::empty())
                    .expect("valid"),
            )
            .await
            .expect("infallible");
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// Heap and RSS growth of `count` sessions; `make` builds a fresh app whose `/login` creates one.
async fn per_session(count: usize, router: axum::Router) -> (i64, i64) {
    let rss = resident_bytes();
    let region = Region::new(GLOBAL);
    login_many(&router, count).await;
    let heap = held(&region);
    let rss = resident_bytes() - rss;
    drop(router);
    (heap / count as i64, rss / count as i64)
}

/// Heap bytes the near-cache holds per entry, and what it counts per entry; `None` without a
/// Redis.
async fn near_cache_bytes_per_entry(
    redis: &RedisTarget,
) -> Result<Option<(i64, usize)>, Box<dyn std::error::Error>> {
    const COUNT: usize = 5_000;
    let connection = RedisConfig::new(redis.url.clone())
        .key_prefix(format!("{}-near", redis.prefix))
        .build()?;
    if connection.ping().await.is_err() {
        return Ok(None);
    }
    let store = RedisSessionStore::new(connection)
        .near_cache(NearCacheConfig::new().max_entries(2 * COUNT));
    let now = SystemClock.unix_seconds();
    let mut keys = Vec::with_capacity(COUNT);
    for i in 0..COUNT {
        let key = SecretToken::generate().store_key();
        store.create(&key, &session_record(i, now), None).await?;
        keys.push(key);
    }
    // The subscription starts with the first load; nothing is cached until it is live.
    let probe = SecretToken::generate().store_key();
    for _ in 0..500 {
        store.load(&probe).await?;
        if store.near_cache_stats().is_some_and(|stats| stats.live) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let region = Region::new(GLOBAL);
    for key in &keys {
        store.load(key).await?;
    }
    let heap = held(&region);
    let stats = store.near_cache_stats().ok_or("near-cache off")?;
    if stats.entries == 0 {
        return Err("the near-cache kept nothing".into());
    }
    for key in &keys {
        store.delete(key).await?;
    }
    Ok(Some((
        heap / stats.entries as i64,
        stats.bytes / stats.entries,
    )))
}

async fn allocations_per_request(app: &App) -> (f64, f64) {
    const REQUESTS: usize = 2_000;
    for _ in 0..100 {
        let _ = app.router.clone().oneshot(app.request("/me")).await;
    }
    let region = Region::new(GLOBAL);
    for _ in 0..REQUESTS {
        let response = app.router.clone().oneshot(app.request("/me")).await;
        drop(response);
    }
    let stats = region.change();
    (
        (stats.allocations + stats.reallocations) as f64 / REQUESTS as f64,
        stats.bytes_allocated as f64 / REQUESTS as f64,
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let counts: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .filter_map(|a| a.parse().ok())
            .collect();
        if given.is_empty() {
            vec![10_000, 100_000, 1_000_000]
        } else {
            given
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut out = std::io::stdout().lock();
    runtime.block_on(async {
        writeln!(out, "## Bytes per signed-in session\n")?;
        writeln!(
            out,
            "| store | sessions | heap bytes/session | RSS bytes/session |\n|---|---:|---:|---:|"
        )?;
        for &count in &counts {
            // Twice the count: the cap is per shard, and no session may be evicted here.
            let store =
                MemoryStore::with_config(MemoryStoreConfig::default().max_sessions(2 * count));
            let app = portcullis_bench::session_app_over(store.clone()).await?;
            // The helper signed one session in already; it is part of the count.
            let (heap, rss) = per_session(count - 1, app.router).await;
            assert_eq!(store.len(), count);
            writeln!(out, "| portcullis MemoryStore | {count} | {heap} | {rss} |")?;
            drop(store);
            let (heap, rss) = per_session(
                count,
                portcullis_bench::tower_sessions_memory_router(
                    tower_sessions::MemoryStore::default(),
                ),
            )
            .await;
            writeln!(
                out,
                "| tower-sessions MemoryStore | {count} | {heap} | {rss} |"
            )?;
            out.flush()?;
        }

        writeln!(out, "\n## Allocations per authenticated GET /me\n")?;
        writeln!(
            out,
            "| stack | allocations | bytes allocated |\n|---|---:|---:|"
        )?;
        let redis = RedisTarget::from_env();
        for stack in Stack::ALL {
            let app = match build(stack, &redis).await {
                Ok(app) => app,
                Err(e) if stack.needs_redis() => {
                    writeln!(out, "| {stack} | skipped: {e} | |")?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            check(&app).await?;
            let (allocations, bytes) = allocations_per_request(&app).await;
            writeln!(out, "| {stack} | {allocations:.1} | {bytes:.0} |")?;
            out.flush()?;
        }

        writeln!(out, "\n## Near-cache bytes per entry\n")?;
        match near_cache_bytes_per_entry(&redis).await? {
            Some((heap, counted)) => writeln!(
                out,
                "heap {heap} bytes per cached session; counted against max_bytes: {counted}"
            )?,
            None => writeln!(out, "skipped: no Redis")?,
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
