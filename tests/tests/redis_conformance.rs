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

/// What the Redis refresh store promises beyond the shared suite: the per-user bound that
/// holds without a configured limit (`portcullis_tests::conformance::refresh_bound`, shared
/// with the memory and PostgreSQL stores), and session ids no key can carry refused as bad
/// input (400), not as an outage (503).
mod refresh_store_bound {
    use portcullis_core::{AuthRejection, ManualClock, StoreError};
    use portcullis_hybrid::RefreshStore;
    use portcullis_redis::RedisRefreshStore;
    use portcullis_tests::conformance::{refresh_store::record, session_store::unique_user};

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
                portcullis_tests::conformance::refresh_bound::without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn the_bound_is_configurable_and_only_live_sessions_count() {
            run(|store, clock| async move {
                portcullis_tests::conformance::refresh_bound::the_bound_is_configurable_and_only_live_sessions_count(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it() {
            run(|store, clock| async move {
                portcullis_tests::conformance::refresh_bound::a_configured_limit_applies_below_the_bound_and_is_capped_by_it(store, &clock).await;
            })
            .await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_logins_without_a_limit_respect_the_bound() {
            run(|store, clock| async move {
                portcullis_tests::conformance::refresh_bound::concurrent_logins_without_a_limit_respect_the_bound(store, &clock).await;
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
