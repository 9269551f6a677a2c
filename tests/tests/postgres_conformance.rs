//! The store conformance suites against PostgreSQL: the same cases as memory and Redis run
//! (`redis_conformance.rs`, `session_store_memory.rs`), each test in a schema of its own.
//!
//! The database comes from `PORTCULLIS_TEST_DATABASE_URL` (set by `scripts/test.sh`), else the
//! local server on port 5432 (see `portcullis_tests::postgres_server`).

use std::sync::Arc;

use portcullis_core::ManualClock;
use portcullis_postgres::{
    PostgresConfig, PostgresRefreshStore, PostgresRevocationFeed, PostgresSessionStore,
};
use portcullis_tests::postgres_server::{migrated_blocking, shared_url};

fn session_store(clock: ManualClock) -> PostgresSessionStore {
    PostgresSessionStore::new(migrated_blocking("session")).with_clock(Arc::new(clock))
}

fn refresh_store(clock: ManualClock) -> PostgresRefreshStore {
    PostgresRefreshStore::new(migrated_blocking("refresh")).with_clock(Arc::new(clock))
}

/// Nodes on one schema, each with a pool of its own, as separate processes would have.
fn feed_nodes(clock: ManualClock) -> impl Fn() -> PostgresRevocationFeed {
    let schema = migrated_blocking("feed").schema().to_owned();
    let url =
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(shared_url()));
    move || {
        let database = PostgresConfig::new(&url).schema(&schema).build().unwrap();
        PostgresRevocationFeed::new(database).with_clock(Arc::new(clock.clone()))
    }
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

/// What only the PostgreSQL refresh store promises beyond the shared suite: the per-user bound
/// that holds without a configured limit (as `MemoryRefreshStore`'s default of 100).
mod refresh_store_bound {
    use std::sync::Arc;

    use futures_util::future::join_all;
    use portcullis_core::ManualClock;
    use portcullis_hybrid::{CreateOutcome, LimitPolicy, RefreshStore, SessionLimit};
    use portcullis_postgres::PostgresRefreshStore;
    use portcullis_tests::{
        conformance::{refresh_store::record, session_store::unique_user},
        postgres_server::migrated,
    };

    async fn store(tag: &str, clock: &ManualClock) -> PostgresRefreshStore {
        PostgresRefreshStore::new(migrated(tag).await).with_clock(Arc::new(clock.clone()))
    }

    fn ids(records: &[portcullis_hybrid::RefreshRecord]) -> Vec<String> {
        records.iter().map(|r| r.session_id.clone()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted() {
        let clock = ManualClock::new();
        let store = store("bound_default", &clock).await;
        let user = unique_user("bound");
        for i in 0..100_u64 {
            let created = store
                .create(
                    &record(&clock, &format!("sid-{i:03}"), &user, 500 - i, 600),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(created, CreateOutcome::Created { evicted: vec![] });
        }
        // The 101st login ends the oldest session, and only that one.
        let created = store
            .create(&record(&clock, "sid-100", &user, 0, 600), None)
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
            .create(&record(&clock, "sid-other", &other, 0, 600), None)
            .await
            .unwrap();
        assert_eq!(created, CreateOutcome::Created { evicted: vec![] });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bound_is_configurable_and_only_live_sessions_count() {
        let clock = ManualClock::new();
        let store = store("bound_config", &clock).await.max_sessions_per_user(3);
        let user = unique_user("bound");
        // An expired session does not count against the bound.
        store
            .create(&record(&clock, "sid-expired", &user, 1_000, 0), None)
            .await
            .unwrap();
        let mut evicted = Vec::new();
        for i in 0..5_u64 {
            match store
                .create(
                    &record(&clock, &format!("sid-{i}"), &user, 100 - i, 600),
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
            .create(&record(&clock, "sid-4", &user, 0, 600), None)
            .await
            .unwrap();
        assert_eq!(created, CreateOutcome::Created { evicted: vec![] });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it() {
        let clock = ManualClock::new();
        let store = store("bound_limit", &clock).await.max_sessions_per_user(3);
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
                .create(&record(&clock, &sid, &user, 10 - i, 600), refuse(2))
                .await
                .unwrap();
        }
        let refused = store
            .create(&record(&clock, "below-2", &user, 0, 600), refuse(2))
            .await
            .unwrap();
        assert_eq!(refused, CreateOutcome::LimitReached);
        // Above the bound, the bound evicts the oldest (as the memory store does).
        let user = unique_user("above");
        for i in 0..3_u64 {
            let sid = format!("above-{i}");
            store
                .create(&record(&clock, &sid, &user, 10 - i, 600), refuse(10))
                .await
                .unwrap();
        }
        let created = store
            .create(&record(&clock, "above-3", &user, 0, 600), refuse(10))
            .await
            .unwrap();
        assert_eq!(
            created,
            CreateOutcome::Created {
                evicted: vec!["above-0".to_owned()]
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins_without_a_limit_respect_the_bound() {
        let clock = ManualClock::new();
        let store = Arc::new(store("bound_race", &clock).await.max_sessions_per_user(4));
        let user = unique_user("race");
        let results = join_all((0..16_u64).map(|i| {
            let store = Arc::clone(&store);
            let record = record(&clock, &format!("race-{i:02}"), &user, 100 - i, 600);
            tokio::spawn(async move { store.create(&record, None).await })
        }))
        .await;
        let mut evicted = 0;
        for result in results {
            match result.unwrap().unwrap() {
                CreateOutcome::Created { evicted: gone } => evicted += gone.len(),
                CreateOutcome::LimitReached => panic!("no limit was configured"),
            }
        }
        assert_eq!(store.list_by_user(&user).await.unwrap().len(), 4);
        assert_eq!(evicted, 12, "every eviction is reported, once");
    }
}
