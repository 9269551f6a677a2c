//! Workspace-level integration tests live in `tests/`; shared helpers and the store
//! conformance suites live here.

pub mod binary;
pub mod conformance;
pub mod http;
pub mod logs;
pub mod oidc_provider;
pub mod postgres_server;
pub mod redis_server;
pub mod redis_tls;
pub mod stall_proxy;
pub mod switch_proxy;

pub use portcullis_testkit::{refresh_store_conformance, session_store_conformance};
