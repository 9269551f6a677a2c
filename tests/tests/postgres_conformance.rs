//! The store conformance suites against PostgreSQL: the same cases as memory and Redis run
//! (`redis_conformance.rs`, `session_store_memory.rs`), each test in a schema of its own.
//!
//! The database comes from `PORTCULLIS_TEST_DATABASE_URL` (set by `scripts/test.sh`), else the
//! local server on port 5432 (see `portcullis_tests::postgres_server`).

use std::sync::Arc;

use portcullis_core::ManualClock;
use portcullis_postgres::{PostgresRefreshStore, PostgresSessionStore};
use portcullis_tests::postgres_server::migrated_blocking;

fn session_store(clock: ManualClock) -> PostgresSessionStore {
    PostgresSessionStore::new(migrated_blocking("session")).with_clock(Arc::new(clock))
}

fn refresh_store(clock: ManualClock) -> PostgresRefreshStore {
    PostgresRefreshStore::new(migrated_blocking("refresh")).with_clock(Arc::new(clock))
}

mod session_store {
    portcullis_tests::session_store_conformance!(super::session_store);
}

mod refresh_store {
    portcullis_tests::refresh_store_conformance!(super::refresh_store);
}
