//! [`Readiness`] for the database handle and stores, so an application's `GET /readyz` reports
//! a database outage (or tables not yet migrated) with 503 instead of letting requests find it.

use portcullis_core::{NotReady, Readiness, StoreError};

use crate::{PostgresConnection, connection::store_error};

/// Ready when the database answers within the command timeout and the tables exist (so an
/// instance that started while the database was down reports not ready until its migrations
/// have run).
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use portcullis_core::ReadinessChecks;
/// use portcullis_postgres::PostgresConfig;
///
/// let database = PostgresConfig::new("postgres://127.0.0.1/app").build().unwrap();
/// let checks = ReadinessChecks::new().check("store", database);
/// # let _ = checks;
/// # }
/// ```
impl Readiness for PostgresConnection {
    async fn check(&self) -> Result<(), NotReady> {
        let table = self.tables().sessions.clone();
        let migrated = self
            .bounded(async {
                sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
                    .bind(table)
                    .fetch_one(self.pool())
                    .await
                    .map_err(store_error)
            })
            .await;
        // The reason is for anyone who can reach /readyz: no URL, no server message.
        match migrated {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotReady::new("database tables not migrated yet")),
            Err(StoreError::Timeout) => Err(NotReady::new("database did not answer in time")),
            Err(_) => Err(NotReady::new("database unreachable")),
        }
    }
}

#[cfg(feature = "session")]
impl Readiness for crate::PostgresSessionStore {
    async fn check(&self) -> Result<(), NotReady> {
        self.connection().check().await
    }
}

#[cfg(feature = "hybrid")]
impl Readiness for crate::PostgresRefreshStore {
    async fn check(&self) -> Result<(), NotReady> {
        self.connection().check().await
    }
}

/// Ready when every subscription of the feed is listening and caught up
/// ([`PostgresRevocationFeed::is_caught_up`](crate::PostgresRevocationFeed::is_caught_up)).
#[cfg(feature = "hybrid")]
impl Readiness for crate::PostgresRevocationFeed {
    async fn check(&self) -> Result<(), NotReady> {
        if self.is_caught_up() {
            Ok(())
        } else {
            Err(NotReady::new(
                "revocation feed not subscribed or catching up",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis_core::ReadinessChecks;

    use crate::PostgresConfig;

    #[tokio::test]
    async fn an_unreachable_database_is_not_ready_with_a_reason() {
        let database = PostgresConfig::new("postgres://postgres@127.0.0.1:1/x")
            .connection_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let report = ReadinessChecks::new().check("store", database).run().await;
        assert!(!report.is_ready());
        let reason = report.reason().unwrap();
        assert!(
            reason == "store: database unreachable"
                || reason == "store: database did not answer in time",
            "{reason}"
        );
    }
}
