//! The per-user bound of the refresh stores: without a configured limit a user keeps at most
//! 100 live sessions (oldest evicted), as `MemoryRefreshStore` does. The cases are written once
//! and run against the memory, Redis (single node and Cluster) and PostgreSQL stores. The bound
//! is each store's own setting, not part of the `RefreshStore` trait, so it lives here rather
//! than in the published test kit.

use std::sync::Arc;

use futures_util::future::join_all;
use portcullis_core::ManualClock;
use portcullis_hybrid::{
    CreateOutcome, LimitPolicy, MemoryRefreshStore, RefreshRecord, RefreshStore, SessionLimit,
};
use portcullis_postgres::PostgresRefreshStore;
use portcullis_redis::RedisRefreshStore;

use super::{refresh_store::record, session_store::unique_user};

/// A refresh store whose per-user bound can be set.
pub trait BoundedRefreshStore: RefreshStore + Sized {
    /// The same store, bounding each user to `max` live sessions.
    #[must_use]
    fn max_sessions_per_user(self, max: usize) -> Self;
}

impl BoundedRefreshStore for MemoryRefreshStore {
    fn max_sessions_per_user(self, max: usize) -> Self {
        MemoryRefreshStore::max_sessions_per_user(self, max)
    }
}

impl BoundedRefreshStore for RedisRefreshStore {
    fn max_sessions_per_user(self, max: usize) -> Self {
        RedisRefreshStore::max_sessions_per_user(self, max)
    }
}

impl BoundedRefreshStore for PostgresRefreshStore {
    fn max_sessions_per_user(self, max: usize) -> Self {
        PostgresRefreshStore::max_sessions_per_user(self, max)
    }
}

fn ids(records: &[RefreshRecord]) -> Vec<String> {
    records.iter().map(|r| r.session_id.clone()).collect()
}

/// The default bound: the 101st login of one user ends their oldest session, and only it.
pub async fn without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted(
    store: impl BoundedRefreshStore,
    clock: &ManualClock,
) {
    let user = unique_user("bound");
    for i in 0..100_u64 {
        let created = store
            .create(
                &record(clock, &format!("sid-{i:03}"), &user, 500 - i, 600),
                None,
            )
            .await
            .unwrap();
        assert_eq!(created, CreateOutcome::Created { evicted: vec![] });
    }
    // The 101st login ends the oldest session, and only that one.
    let created = store
        .create(&record(clock, "sid-100", &user, 0, 600), None)
        .await
        .unwrap();
    assert_eq!(
        created,
        CreateOutcome::Created {
            evicted: vec!["sid-000".to_owned()]
        }
    );
    let listed = ids(&store.list_by_user(&user).await.unwrap());
    assert_eq!(listed.len(), 100);
    assert_eq!(listed.first().map(String::as_str), Some("sid-001"));
    assert_eq!(listed.last().map(String::as_str), Some("sid-100"));
    assert_eq!(store.load("sid-000").await.unwrap(), None);
    // Another user is not affected.
    let other = unique_user("bound-other");
    let created = store
        .create(&record(clock, "sid-other", &other, 0, 600), None)
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created { evicted: vec![] });
}

/// A bound of 3: expired sessions do not count, the oldest live ones go, re-creating an id
/// evicts nothing.
pub async fn the_bound_is_configurable_and_only_live_sessions_count(
    store: impl BoundedRefreshStore,
    clock: &ManualClock,
) {
    let store = store.max_sessions_per_user(3);
    let user = unique_user("bound");
    // An expired session does not count against the bound (its index entry outlives it
    // by a margin: the store drops it before evicting a live session).
    store
        .create(&record(clock, "sid-expired", &user, 1_000, 0), None)
        .await
        .unwrap();
    let mut evicted = Vec::new();
    for i in 0..5_u64 {
        match store
            .create(
                &record(clock, &format!("sid-{i}"), &user, 100 - i, 600),
                None,
            )
            .await
            .unwrap()
        {
            CreateOutcome::Created { evicted: gone } => evicted.extend(gone),
            CreateOutcome::LimitReached => panic!("no limit was configured"),
        }
    }
    assert_eq!(evicted, ["sid-0", "sid-1"]);
    assert_eq!(
        ids(&store.list_by_user(&user).await.unwrap()),
        ["sid-2", "sid-3", "sid-4"]
    );
    // Re-creating an existing id replaces it and evicts nothing.
    let created = store
        .create(&record(clock, "sid-4", &user, 0, 600), None)
        .await
        .unwrap();
    assert_eq!(created, CreateOutcome::Created { evicted: vec![] });
    assert_eq!(store.list_by_user(&user).await.unwrap().len(), 3);
}

/// An application limit below the bound refuses as configured; above it, the bound evicts.
pub async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it(
    store: impl BoundedRefreshStore,
    clock: &ManualClock,
) {
    let store = store.max_sessions_per_user(3);
    let refuse = |max| {
        Some(SessionLimit {
            max,
            policy: LimitPolicy::RefuseNew,
        })
    };
    // Below the bound, the application's limit refuses as configured.
    let user = unique_user("below");
    for i in 0..2_u64 {
        let sid = format!("below-{i}");
        store
            .create(&record(clock, &sid, &user, 10 - i, 600), refuse(2))
            .await
            .unwrap();
    }
    let refused = store
        .create(&record(clock, "below-2", &user, 0, 600), refuse(2))
        .await
        .unwrap();
    assert_eq!(refused, CreateOutcome::LimitReached);
    // Above the bound, the bound evicts the oldest (as the memory store does).
    let user = unique_user("above");
    for i in 0..3_u64 {
        let sid = format!("above-{i}");
        store
            .create(&record(clock, &sid, &user, 10 - i, 600), refuse(10))
            .await
            .unwrap();
    }
    let created = store
        .create(&record(clock, "above-3", &user, 0, 600), refuse(10))
        .await
        .unwrap();
    assert_eq!(
        created,
        CreateOutcome::Created {
            evicted: vec!["above-0".to_owned()]
        }
    );
    assert_eq!(
        ids(&store.list_by_user(&user).await.unwrap()),
        ["above-1", "above-2", "above-3"]
    );
}

/// 16 parallel logins under a bound of 4: 4 remain, 12 evictions reported, none twice.
pub async fn concurrent_logins_without_a_limit_respect_the_bound(
    store: impl BoundedRefreshStore,
    clock: &ManualClock,
) {
    let store = Arc::new(store.max_sessions_per_user(4));
    let user = unique_user("race");
    // Created within the last minute, as real logins are: an index entry whose record is
    // still being written is then a login in progress, not a leftover to drop.
    let results = join_all((0..16_u64).map(|i| {
        let store = Arc::clone(&store);
        let record = record(clock, &format!("race-{i:02}"), &user, 30 - i, 600);
        tokio::spawn(async move { store.create(&record, None).await })
    }))
    .await;
    let mut evicted = Vec::new();
    for result in results {
        match result.unwrap().unwrap() {
            CreateOutcome::Created { evicted: gone } => evicted.extend(gone),
            CreateOutcome::LimitReached => panic!("no limit was configured"),
        }
    }
    let live = store.list_by_user(&user).await.unwrap();
    assert_eq!(live.len(), 4);
    assert_eq!(evicted.len(), 12, "every eviction is reported, once");
    evicted.sort();
    evicted.dedup();
    assert_eq!(evicted.len(), 12, "no session is evicted twice");
    assert!(live.iter().all(|r| !evicted.contains(&r.session_id)));
}
