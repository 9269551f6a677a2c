//! The per-user refresh-session bound on the in-memory store: the same cases the Redis and
//! PostgreSQL stores run (`portcullis_tests::conformance::refresh_bound`).

use std::sync::Arc;

use portcullis_core::ManualClock;
use portcullis_hybrid::MemoryRefreshStore;
use portcullis_tests::conformance::refresh_bound;

fn store(clock: &ManualClock) -> MemoryRefreshStore {
    MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted() {
    let clock = ManualClock::new();
    refresh_bound::without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted(
        store(&clock),
        &clock,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bound_is_configurable_and_only_live_sessions_count() {
    let clock = ManualClock::new();
    refresh_bound::the_bound_is_configurable_and_only_live_sessions_count(store(&clock), &clock)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it() {
    let clock = ManualClock::new();
    refresh_bound::a_configured_limit_applies_below_the_bound_and_is_capped_by_it(
        store(&clock),
        &clock,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_without_a_limit_respect_the_bound() {
    let clock = ManualClock::new();
    refresh_bound::concurrent_logins_without_a_limit_respect_the_bound(store(&clock), &clock).await;
}
