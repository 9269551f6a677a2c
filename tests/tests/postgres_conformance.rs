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
