//! Store contracts written once as test suites, run against every implementation (memory,
//! Redis, Redis Cluster) by the files in `tests/tests/`. The session-store and refresh-store
//! suites live in the published `portcullis-testkit` crate, so people writing their own store
//! can run them too; the revocation-feed suite needs this package's Redis harness.

pub use portcullis_testkit::conformance::{ManualClock, refresh_store, session_store};

pub mod refresh_bound;
pub mod revocation_feed;
