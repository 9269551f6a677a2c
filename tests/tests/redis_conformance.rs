//! The store conformance suites against every backend: the in-memory reference
//! implementations (the session store's memory run is in `session_store_memory.rs`), a single
//! Redis, and a Redis Cluster. Same cases, no copies: each module
//! only says how to build its backend.
//!
//! Redis comes from `REDIS_URL` / `REDIS_CLUSTER_URLS` (set by `scripts/test.sh`), or is started
//! by the harness; every test uses a key prefix of its own.

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
