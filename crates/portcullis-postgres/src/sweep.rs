//! Deleting expired rows in bounded batches: reads already treat them as absent, the sweep
//! only frees the space, without long locks (each batch is one short statement that skips
//! rows another transaction holds).

use portcullis_core::StoreError;

use crate::connection::{PostgresConnection, store_error};

/// Rows deleted per statement.
pub(crate) const BATCH: i64 = 1_000;
/// Batches per sweep at most, so one sweep is bounded too; the next one goes on.
const MAX_BATCHES: usize = 100;

/// `DELETE` of at most `$2` rows of `table` whose `expires_at <= $1`, keyed by `key`.
pub(crate) fn statement(table: &str, key: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} \
         WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
    )
}

/// SQLSTATE `undefined_table`.
const UNDEFINED_TABLE: &str = "42P01";

/// Whether `error` is PostgreSQL's "relation does not exist" (SQLSTATE 42P01): on a fresh
/// database whose migrations have not run yet, the table to sweep is simply not there.
pub(crate) fn is_undefined_table(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|database| database.code())
        .is_some_and(|code| code == UNDEFINED_TABLE)
}

/// Runs `statement` (from [`statement`]) batch after batch until a batch is not full; returns
/// how many rows were deleted.
///
/// A table that does not exist yet (the first sweep of a fresh database, before
/// [`PostgresConnection::migrate`] ran) has no expired rows: the sweep logs it at debug level
/// and frees nothing, instead of failing, so a background sweeper does not warn about a normal
/// start-up order. Every other failure is still a [`StoreError`] (and a warning in the
/// sweepers); requests on the same missing table still fail closed, since only the sweep
/// treats it as empty.
pub(crate) async fn sweep(
    database: &PostgresConnection,
    statement: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut freed = 0;
    for _ in 0..MAX_BATCHES {
        let deleted = database
            .bounded(async {
                match sqlx::query(statement)
                    .bind(now)
                    .bind(BATCH)
                    .execute(database.pool())
                    .await
                {
                    Ok(done) => Ok(Some(done.rows_affected())),
                    Err(error) if is_undefined_table(&error) => Ok(None),
                    Err(error) => Err(store_error(error)),
                }
            })
            .await?;
        let Some(deleted) = deleted else {
            tracing::debug!("nothing to sweep: the table does not exist yet (migrations not run)");
            return Ok(freed);
        };
        freed += deleted;
        if deleted < BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use std::{borrow::Cow, fmt};

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::is_undefined_table;

    /// A server error with a given SQLSTATE, as the driver reports one.
    #[derive(Debug)]
    struct ServerError(&'static str);

    impl fmt::Display for ServerError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for ServerError {}

    impl DatabaseError for ServerError {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    #[test]
    fn only_an_undefined_table_is_a_table_not_migrated_yet() {
        let error = |code| sqlx::Error::Database(Box::new(ServerError(code)));
        assert!(is_undefined_table(&error("42P01")));
        // undefined column, undefined schema object, insufficient privilege, connection
        // failure, admin shutdown: real failures, still warned about.
        for code in ["42703", "42704", "42501", "08006", "57P01"] {
            assert!(!is_undefined_table(&error(code)), "{code}");
        }
        assert!(!is_undefined_table(&sqlx::Error::PoolTimedOut));
        assert!(!is_undefined_table(&sqlx::Error::Io(
            std::io::Error::other("connection refused")
        )));
    }
}
