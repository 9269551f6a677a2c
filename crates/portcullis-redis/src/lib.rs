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
//! | `session` (default) | [`RedisSessionStore`] |
//! | `hybrid` (default) | [`RedisRefreshStore`], [`RedisRevocationFeed`] |
//!
#![doc = include_str!("docs/design.md")]

mod attempts;
mod connection;
#[cfg(any(feature = "session", feature = "hybrid"))]
mod index;
mod readiness;
#[cfg(feature = "hybrid")]
mod refresh;
mod revocation;
#[cfg(feature = "session")]
mod session;

pub use attempts::RedisAttemptCounter;
pub use connection::{ConfigError, RedisConfig, RedisConnection};
#[cfg(feature = "hybrid")]
pub use refresh::RedisRefreshStore;
pub use revocation::RedisRevocationFeed;
#[cfg(feature = "session")]
pub use session::RedisSessionStore;
