//! The session-store conformance suite against the in-memory store (the same cases run against
//! Redis and Redis Cluster elsewhere).

use std::sync::Arc;

use portcullis_core::ManualClock;
use portcullis_session::{MemoryStore, MemoryStoreConfig};

fn store(clock: ManualClock) -> MemoryStore {
    MemoryStore::with_config(MemoryStoreConfig::default().clock(Arc::new(clock)))
}

/// A tiny store with many shards: per-user operations cross shards all the time.
fn tiny_store(clock: ManualClock) -> MemoryStore {
    MemoryStore::with_config(
        MemoryStoreConfig::default()
            .clock(Arc::new(clock))
            .shards(64)
            .max_sessions(10_000),
    )
}

mod default_store {
    portcullis_tests::session_store_conformance!(super::store);
}

mod many_shards {
    portcullis_tests::session_store_conformance!(super::tiny_store);
}
