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

/// Runs `statement` (from [`statement`]) batch after batch until a batch is not full; returns
/// how many rows were deleted.
pub(crate) async fn sweep(
    database: &PostgresConnection,
    statement: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut freed = 0;
    for _ in 0..MAX_BATCHES {
        let deleted = database
            .bounded(async {
                sqlx::query(statement)
                    .bind(now)
                    .bind(BATCH)
                    .execute(database.pool())
                    .await
                    .map_err(store_error)
            })
            .await?
            .rows_affected();
        freed += deleted;
        if deleted < BATCH.unsigned_abs() {
            break;
        }
    }
    Ok(freed)
}
