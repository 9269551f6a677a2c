//! Sessions and revocations in PostgreSQL (`DATABASE_URL`): the refresh store and the
//! `LISTEN`/`NOTIFY` revocation feed of `portcullis-postgres`, so several instances sharing one
//! database behave as one service without Redis.

use std::time::Duration;

use portcullis_core::ReadinessChecks;
use portcullis_hybrid::HybridSessionsBuilder;
use portcullis_postgres::{PostgresConfig, PostgresRefreshStore, PostgresRevocationFeed};

use crate::SetupError;

/// The builder on PostgreSQL, with the readiness checks of the store (database answers, tables
/// migrated) and the feed (listening and caught up). The tables are created in the background,
/// retried every second, so the app starts while the database is unreachable: logins and
/// refreshes answer 503 until it answers, and the edge refuses access tokens with 503 while the
/// feed has not caught up (fail closed).
///
/// # Errors
///
/// [`SetupError::Database`] when the configuration is unusable.
pub fn with_postgres(
    builder: HybridSessionsBuilder,
    config: &PostgresConfig,
) -> Result<(HybridSessionsBuilder, ReadinessChecks), SetupError> {
    let database = config.clone().build()?;
    tracing::info!("sessions and revocations in PostgreSQL (DATABASE_URL)");
    // Detached on purpose: it ends once the tables exist.
    let _migrations = database.spawn_migrations(Duration::from_secs(1));
    let store = PostgresRefreshStore::new(database.clone());
    let feed = PostgresRevocationFeed::new(database);
    let checks = ReadinessChecks::new()
        .check("session store", store.clone())
        .check("revocation feed", feed.clone());
    Ok((builder.store(store).feed(feed), checks))
}
