//! The store conformance suites against every backend: the in-memory reference
//! implementations (the session store's memory run is in `session_store_memory.rs`), a single
//! Redis, and a Redis Cluster. Same cases, no copies: each module
//! only says how to build its backend.
//!
//! Redis comes from `REDIS_URL` / `REDIS_CLUSTER_URLS` (set by `scripts/test.sh`), or is started
//! by the harness; every test uses a key prefix of its own.
//!
//! Beyond the shared suites: the refresh store's own per-user bound (`refresh_store_bound`, the
//! same cases as `postgres_conformance.rs`), and session ids it cannot store refused as bad
//! input, on both deployments.

use std::sync::Arc;

use portcullis_core::ManualClock;
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisRevocationFeed, RedisSessionStore};
use portcullis_tests::redis_server::{cluster_urls, shared_url, unique_prefix};

mod memory {
    use portcullis_hybrid::{InProcessFeed, MemoryRefreshStore};

    use super::*;

    fn refresh_store(clock: ManualClock) -> MemoryRefreshStore {
        MemoryRefreshStore::new().with_clock(Arc::new(clock))
    }

    fn feed_nodes(clock: ManualClock) -> impl Fn() -> InProcessFeed {
        let feed = InProcessFeed::new().with_clock(Arc::new(clock));
        move || feed.clone()
    }

    mod refresh_store {
        portcullis_tests::refresh_store_conformance!(super::refresh_store);
    }

    mod revocation_feed {
        portcullis_tests::revocation_feed_conformance!(super::feed_nodes);
    }
}

/// Builds stores on one Redis deployment (single or cluster) under fresh prefixes.
fn config(cluster: bool, prefix: &str) -> RedisConfig {
    let config = if cluster {
        RedisConfig::cluster(cluster_urls())
    } else {
        RedisConfig::new(shared_url())
    };
    config.key_prefix(prefix)
}

fn redis_session_store(cluster: bool, clock: ManualClock) -> RedisSessionStore {
    let connection = config(cluster, &unique_prefix("session")).build().unwrap();
    RedisSessionStore::new(connection).with_clock(Arc::new(clock))
}

fn redis_refresh_store(cluster: bool, clock: ManualClock) -> RedisRefreshStore {
    let connection = config(cluster, &unique_prefix("refresh")).build().unwrap();
    RedisRefreshStore::new(connection).with_clock(Arc::new(clock))
}

fn redis_feed_nodes(cluster: bool, clock: ManualClock) -> impl Fn() -> RedisRevocationFeed {
    let prefix = unique_prefix("feed");
    move || {
        // A connection of its own per node, as separate processes would have.
        let connection = config(cluster, &prefix).build().unwrap();
        RedisRevocationFeed::new(connection).with_clock(Arc::new(clock.clone()))
    }
}

mod single {
    use super::*;

    fn session_store(clock: ManualClock) -> RedisSessionStore {
        redis_session_store(false, clock)
    }

    fn refresh_store(clock: ManualClock) -> RedisRefreshStore {
        redis_refresh_store(false, clock)
    }

    fn feed_nodes(clock: ManualClock) -> impl Fn() -> RedisRevocationFeed {
        redis_feed_nodes(false, clock)
    }

    mod session_store {
        portcullis_tests::session_store_conformance!(super::session_store);
    }

    mod refresh_store {
        portcullis_tests::refresh_store_conformance!(super::refresh_store);
    }

    mod revocation_feed {
        portcullis_tests::revocation_feed_conformance!(super::feed_nodes);
    }
}

mod cluster {
    use super::*;

    fn session_store(clock: ManualClock) -> RedisSessionStore {
        redis_session_store(true, clock)
    }

    fn refresh_store(clock: ManualClock) -> RedisRefreshStore {
        redis_refresh_store(true, clock)
    }

    fn feed_nodes(clock: ManualClock) -> impl Fn() -> RedisRevocationFeed {
        redis_feed_nodes(true, clock)
    }

    mod session_store {
        portcullis_tests::session_store_conformance!(super::session_store);
    }

    mod refresh_store {
        portcullis_tests::refresh_store_conformance!(super::refresh_store);
    }

    mod revocation_feed {
        portcullis_tests::revocation_feed_conformance!(super::feed_nodes);
    }
}

/// What the Redis refresh store promises beyond the shared suite, as the PostgreSQL one does
/// (`postgres_conformance::refresh_store_bound`): the per-user bound that holds without a
/// configured limit (as `MemoryRefreshStore`'s default of 100), and session ids no key can
/// carry refused as bad input (400), not as an outage (503).
mod refresh_store_bound {
    use std::sync::Arc;

    use futures_util::future::join_all;
    use portcullis_core::{AuthRejection, ManualClock, StoreError};
    use portcullis_hybrid::{
        CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, SessionLimit,
    };
    use portcullis_redis::RedisRefreshStore;
    use portcullis_tests::conformance::{refresh_store::record, session_store::unique_user};

    fn ids(records: &[RefreshRecord]) -> Vec<String> {
        records.iter().map(|r| r.session_id.clone()).collect()
    }

    pub(crate) async fn without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted(
        store: RedisRefreshStore,
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

    pub(crate) async fn the_bound_is_configurable_and_only_live_sessions_count(
        store: RedisRefreshStore,
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

    pub(crate) async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it(
        store: RedisRefreshStore,
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

    pub(crate) async fn concurrent_logins_without_a_limit_respect_the_bound(
        store: RedisRefreshStore,
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

    pub(crate) async fn a_session_id_it_cannot_store_is_bad_input_not_an_outage(
        store: RedisRefreshStore,
        clock: &ManualClock,
    ) {
        let user = unique_user("bad-id");
        for session_id in [String::new(), "x".repeat(129)] {
            let error = store
                .create(&record(clock, &session_id, &user, 0, 600), None)
                .await
                .unwrap_err();
            let StoreError::InvalidInput(reason) = &error else {
                panic!("bad input, not an outage: {error:?}");
            };
            assert!(reason.contains("session id"), "{reason}");
            assert!(!error.is_outage());
            let rejection = AuthRejection::from(error);
            assert_eq!(rejection.status(), http::StatusCode::BAD_REQUEST);
            assert_eq!(rejection.error_code(), "invalid_request");
        }
        // Nothing was written for the user.
        assert!(store.list_by_user(&user).await.unwrap().is_empty());
    }
}

/// Runs every `refresh_store_bound` case on a fresh store built by `$store`.
macro_rules! refresh_store_bound_tests {
    ($store:path) => {
        use portcullis_core::ManualClock;

        async fn run<F, Fut>(case: F)
        where
            F: FnOnce(portcullis_redis::RedisRefreshStore, ManualClock) -> Fut,
            Fut: std::future::Future<Output = ()>,
        {
            let clock = ManualClock::new();
            let store = tokio::task::block_in_place(|| $store(clock.clone()));
            case(store, clock).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted() {
            run(|store, clock| async move {
                crate::refresh_store_bound::without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_bound_is_configurable_and_only_live_sessions_count() {
            run(|store, clock| async move {
                crate::refresh_store_bound::the_bound_is_configurable_and_only_live_sessions_count(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it() {
            run(|store, clock| async move {
                crate::refresh_store_bound::a_configured_limit_applies_below_the_bound_and_is_capped_by_it(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_logins_without_a_limit_respect_the_bound() {
            run(|store, clock| async move {
                crate::refresh_store_bound::concurrent_logins_without_a_limit_respect_the_bound(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_session_id_it_cannot_store_is_bad_input_not_an_outage() {
            run(|store, clock| async move {
                crate::refresh_store_bound::a_session_id_it_cannot_store_is_bad_input_not_an_outage(store, &clock).await;
            })
            .await;
        }
    };
}

mod single_refresh_store_bound {
    refresh_store_bound_tests!(super::single_refresh_store);
}

mod cluster_refresh_store_bound {
    refresh_store_bound_tests!(super::cluster_refresh_store);
}

fn single_refresh_store(clock: ManualClock) -> RedisRefreshStore {
    redis_refresh_store(false, clock)
}

fn cluster_refresh_store(clock: ManualClock) -> RedisRefreshStore {
    redis_refresh_store(true, clock)
}
