//! Redis backends for portcullis: [`RedisSessionStore`] for the session-cookie layer,
//! [`RedisRefreshStore`] and [`RedisRevocationFeed`] for the hybrid layer, and
//! [`RedisAttemptCounter`] for the login guard, on a single Redis or a Redis Cluster, so
//! several application nodes share sessions, revocations and failed-login counts.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisRevocationFeed, RedisSessionStore};
//!
//! // One handle, cloned into every store; it connects lazily and reconnects by itself.
//! // `REDIS_URL` may list several comma-separated URLs: a Redis Cluster's nodes.
//! let redis = RedisConfig::from_env()
//!     .unwrap_or_else(|| RedisConfig::new("redis://127.0.0.1:6379"))
//!     .key_prefix("myapp")
//!     .build()?;
//! redis.ping().await?; // optional: fail at start-up rather than on the first request
//! assert_eq!(redis.eviction_policy().await?, "noeviction");
//!
//! let sessions = RedisSessionStore::new(redis.clone());
//! let refresh = RedisRefreshStore::new(redis.clone());
//! let revocations = RedisRevocationFeed::new(redis);
//! # let _ = (sessions, refresh, revocations);
//! # Ok(()) }
//! ```
//!
//! | feature | what it adds |
//! |---|---|
//! | `session` (default) | [`RedisSessionStore`] (with an optional near-cache, [`NearCacheConfig`]) |
//! | `hybrid` (default) | [`RedisRefreshStore`], [`RedisRevocationFeed`] |
//! | `tls` | `rediss://` URLs (rustls with `ring`): the system's roots, or a CA given to `RedisConfig::tls_root_certificates` or in `REDIS_TLS_CA_FILE` |
//!
//! Credentials go in the URL: `rediss://user:password@host:6380/0` authenticates as an ACL
//! user (Redis 6+, `AUTH user password`); `redis://:password@host` with `requirepass`. The
//! stores touch only keys that start with the key prefix or `{` and the key prefix, so a
//! least-privilege ACL for prefix `myapp` is
//! `user myapp on >password ~myapp:* ~{myapp:* &* +@all -@dangerous` (without `CONFIG`,
//! [`RedisConnection::eviction_policy`] is refused: check the policy in the console then).
//!
// docs.rs marks what each feature gates ("Available on crate feature ... only").
#![cfg_attr(docsrs, feature(doc_cfg))]
// Library code returns errors instead of panicking (issue 12): no unwrap, expect, panic or
// unchecked indexing outside tests; a documented `# Panics` case is allowed where it stands.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![doc = include_str!("docs/design.md")]

mod attempts;
mod connection;
#[cfg(any(feature = "session", feature = "hybrid"))]
mod index;
#[cfg(feature = "session")]
mod invalidation;
#[cfg(feature = "session")]
mod near_cache;
mod readiness;
#[cfg(feature = "hybrid")]
mod refresh;
mod revocation;
#[cfg(feature = "session")]
mod session;
mod tls;

pub use attempts::RedisAttemptCounter;
pub use connection::{ConfigError, RedisConfig, RedisConnection};
#[cfg(feature = "session")]
pub use near_cache::{NearCacheConfig, NearCacheStats};
#[cfg(feature = "hybrid")]
pub use refresh::RedisRefreshStore;
pub use revocation::RedisRevocationFeed;
#[cfg(feature = "session")]
pub use session::RedisSessionStore;
