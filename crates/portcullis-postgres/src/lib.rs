//! PostgreSQL backends for portcullis on [`sqlx`]: [`PostgresSessionStore`] for the
//! session-cookie layer and [`PostgresRefreshStore`] and [`PostgresRevocationFeed`] (`LISTEN`/`NOTIFY` with a catch-up table)
//! for the hybrid layer, in the database most
//! axum applications already run, so several application nodes share sessions without adding
//! Redis.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use portcullis_postgres::{PostgresConfig, PostgresSessionStore};
//!
//! // One pool, cloned into every store; it connects lazily and reconnects by itself.
//! let database = PostgresConfig::from_env() // DATABASE_URL, DATABASE_SCHEMA, DATABASE_TABLE_PREFIX
//!     .unwrap_or_else(|| PostgresConfig::new("postgres://app@127.0.0.1/app"))
//!     .schema("auth")
//!     .build()?;
//! database.migrate().await?; // or apply `database.migration_script()` with your own tool
//!
//! let sessions = PostgresSessionStore::new(database);
//! let _sweeper = sessions.spawn_sweeper(Duration::from_secs(60));
//! # Ok(()) }
//! ```
//!
//! | feature | what it adds |
//! |---|---|
//! | `session` (default) | [`PostgresSessionStore`] |
//! | `hybrid` (default) | [`PostgresRefreshStore`], [`PostgresRevocationFeed`] |
//!
// docs.rs marks what each feature gates ("Available on crate feature ... only").
#![cfg_attr(docsrs, feature(doc_cfg))]
// Library code returns errors instead of panicking: no unwrap, expect, panic or unchecked
// indexing outside tests.
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

mod connection;
mod migrate;
mod readiness;
#[cfg(feature = "hybrid")]
mod refresh;
#[cfg(feature = "hybrid")]
mod revocation;
#[cfg(feature = "session")]
mod session;
#[cfg(any(feature = "session", feature = "hybrid"))]
mod sweep;

pub use connection::{ConfigError, PostgresConfig, PostgresConnection};
#[cfg(feature = "hybrid")]
pub use refresh::PostgresRefreshStore;
#[cfg(feature = "hybrid")]
pub use revocation::PostgresRevocationFeed;
#[cfg(feature = "session")]
pub use session::PostgresSessionStore;
pub use sqlx;
