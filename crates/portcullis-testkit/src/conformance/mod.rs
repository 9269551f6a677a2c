//! Store contracts written once as test suites, run against every implementation (memory,
//! Redis, Redis Cluster) by the files in `tests/tests/`.
//!
//! Each suite is a set of `pub async fn` cases taking the implementation under test and the
//! [`ManualClock`] it was built with, plus a macro that expands to one `#[tokio::test]` per case
//! for a given constructor, so a new backend is one macro call.

pub use portcullis_core::ManualClock;

#[cfg(feature = "hybrid")]
pub mod refresh_store;
#[cfg(feature = "session")]
pub mod session_store;
