//! [`PostgresRefreshStore`]: the hybrid layer's [`RefreshStore`] on PostgreSQL.
//!
//! One row per hybrid session in `<prefix>refresh_sessions`, keyed by the public session id and
//! holding only hashes of refresh secrets. A rotation is one conditional `UPDATE` on the
//! generation (the compare-and-swap the rotation rules of the refresh service build on); a
//! login is one short transaction under a per-user advisory lock, so a limit (the
//! application's, or the store's own per-user bound) is exact however many nodes log one user
//! in at once.

use std::sync::Arc;

use portcullis_core::{SharedClock, StoreError, SystemClock};
use portcullis_hybrid::{CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, SessionLimit};
use sqlx::{Row, postgres::PgRow};

use crate::{
    connection::{PostgresConnection, storable, store_error, to_sql, unstorable},
    sweep,
};

/// Default [`PostgresRefreshStore::max_sessions_per_user`]: the same bound, with the same
/// eviction (oldest first), as `portcullis_hybrid::MemoryRefreshStore`'s default (its constant
/// is private, so the value is mirrored here; keep the two equal).
const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;

/// A [`RefreshStore`] on PostgreSQL. Clones share the pool.
///
/// Expired rows are absent to every read and deleted by
/// [`RefreshStore::purge_expired`], which the hybrid layer's `HybridSessions` runs every minute,
/// in batches of 1,000.
///
/// One user holds at most [`max_sessions_per_user`](PostgresRefreshStore::max_sessions_per_user)
/// live sessions (default 100, as the in-memory store), even when the application configures
/// no [`SessionLimit`]: a client that logs in forever cannot grow one user's rows without bound
/// (OWASP ASVS 5.0 V2.4 / 11.1.x, bounded resources). Past it, a new login ends the user's
/// oldest session (returned in [`CreateOutcome::Created`]'s `evicted`, so its access tokens are
/// revoked). Every login therefore counts the user's sessions in one short transaction under a
/// per-user advisory lock, the same one a configured limit uses; a configured limit below the
/// bound applies as configured, one above it is capped by it.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_hybrid::RefreshStore;
/// use portcullis_postgres::{PostgresConfig, PostgresRefreshStore};
///
/// let database = PostgresConfig::new("postgres://app@127.0.0.1/app").build()?;
/// database.migrate().await?;
/// let store = PostgresRefreshStore::new(database);
/// assert!(store.load("no-such-session").await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresRefreshStore {
    database: PostgresConnection,
    clock: SharedClock,
    sql: Arc<Statements>,
    max_per_user: usize,
}

#[derive(Debug)]
struct Statements {
    upsert: String,
    live_of_user: String,
    delete_ids: String,
    load: String,
    swap: String,
    delete: String,
    list: String,
    delete_user: String,
    sweep: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        Self {
            upsert: format!(
                "INSERT INTO {table} (session_id, user_id, record, generation, created_at, \
                 expires_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (session_id) DO UPDATE SET user_id = EXCLUDED.user_id, \
                 record = EXCLUDED.record, generation = EXCLUDED.generation, \
                 created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at"
            ),
            live_of_user: format!(
                "SELECT session_id FROM {table} WHERE user_id = $1 AND expires_at > $2 \
                 ORDER BY created_at, session_id"
            ),
            delete_ids: format!("DELETE FROM {table} WHERE session_id = ANY($1)"),
            load: format!("SELECT record FROM {table} WHERE session_id = $1 AND expires_at > $2"),
            swap: format!(
                "UPDATE {table} SET user_id = $3, record = $4, generation = $5, \
                 created_at = $6, expires_at = $7 \
                 WHERE session_id = $1 AND generation = $2 AND expires_at > $8"
            ),
            delete: format!(
                "DELETE FROM {table} WHERE session_id = $1 RETURNING record, expires_at"
            ),
            list: format!(
                "SELECT record FROM {table} WHERE user_id = $1 AND expires_at > $2 \
                 ORDER BY created_at, session_id"
            ),
            delete_user: format!(
                "DELETE FROM {table} WHERE user_id = $1 AND ($2::text IS NULL OR session_id <> $2) \
                 RETURNING record, expires_at"
            ),
            sweep: sweep::statement(table, "session_id"),
        }
    }
}

impl PostgresRefreshStore {
    /// A store on `database`'s `<prefix>refresh_sessions` table, judging expiry by the system
    /// clock. The table must exist: run [`PostgresConnection::migrate`] first (or its SQL).
    pub fn new(database: PostgresConnection) -> Self {
        let sql = Arc::new(Statements::new(&database.tables().refresh_sessions));
        Self {
            database,
            clock: Arc::new(SystemClock),
            sql,
            max_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
        }
    }

    /// The database handle this store uses (to migrate it, or check readiness).
    pub fn connection(&self) -> &PostgresConnection {
        &self.database
    }

    /// Judges expiry by `clock` (tests pass a [`ManualClock`](portcullis_core::ManualClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_postgres::{PostgresConfig, PostgresRefreshStore};
    ///
    /// let database = PostgresConfig::new("postgres://127.0.0.1/app").build().unwrap();
    /// let store = PostgresRefreshStore::new(database).with_clock(Arc::new(ManualClock::new()));
    /// # let _ = store;
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The most live sessions one user holds (default 100, as
    /// `portcullis_hybrid::MemoryRefreshStore`; at least 1): a new login past it ends the
    /// user's oldest session, whether or not the application configured a [`SessionLimit`].
    /// A configured limit below it applies as configured.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use portcullis_postgres::{PostgresConfig, PostgresRefreshStore};
    ///
    /// let database = PostgresConfig::new("postgres://127.0.0.1/app").build().unwrap();
    /// let store = PostgresRefreshStore::new(database).max_sessions_per_user(20);
    /// # let _ = store;
    /// # }
    /// ```
    #[must_use]
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max.max(1);
        self
    }

    fn now(&self) -> i64 {
        to_sql(self.clock.unix_seconds())
    }

    async fn insert(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        record: &RefreshRecord,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
        sqlx::query(&self.sql.upsert)
            .bind(&record.session_id)
            .bind(&record.user_id)
            .bind(json)
            .bind(to_sql(record.generation))
            .bind(to_sql(record.created_at))
            .bind(to_sql(record.expires_at()))
            .execute(executor)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Lock the user, count, evict or refuse, insert: one transaction. The advisory lock
    /// serializes logins of one user on every node (RFC 9700 §4.14 leaves the session policy
    /// to the server; the limit it sets must hold under concurrency). `limit` is the
    /// application's; the store's own per-user bound applies on top of it, as in
    /// `MemoryRefreshStore::create` (refuse only by the application's limit, else evict the
    /// oldest past the smaller of the two).
    async fn create_bounded(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        let lock = format!(
            "{}:{}",
            self.database.tables().refresh_sessions,
            record.user_id
        );
        let mut transaction = self.database.pool().begin().await.map_err(store_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&lock)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        let mut live: Vec<String> = sqlx::query_scalar(&self.sql.live_of_user)
            .bind(&record.user_id)
            .bind(self.now())
            .fetch_all(&mut *transaction)
            .await
            .map_err(store_error)?;
        // Re-creating an existing id replaces it (upsert): it does not count against itself.
        live.retain(|id| *id != record.session_id);
        let mut max = self.max_per_user;
        if let Some(limit) = limit {
            let wanted = usize::try_from(limit.max.max(1)).unwrap_or(usize::MAX);
            if live.len() >= wanted && limit.policy == LimitPolicy::RefuseNew {
                transaction.rollback().await.map_err(store_error)?;
                return Ok(CreateOutcome::LimitReached);
            }
            max = max.min(wanted);
        }
        // `live` is oldest first (`created_at, session_id`), as the memory store sorts it.
        let excess = (live.len() + 1).saturating_sub(max);
        let mut evicted = Vec::new();
        if excess > 0 {
            evicted = live.into_iter().take(excess).collect();
            sqlx::query(&self.sql.delete_ids)
                .bind(&evicted)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
        }
        self.insert(&mut *transaction, record).await?;
        transaction.commit().await.map_err(store_error)?;
        Ok(CreateOutcome::Created { evicted })
    }
}

/// A record's bound text, checked before a write (see [`storable`]). The record itself is
/// JSON, whose encoder escapes U+0000 as `\u0000`, so only the columns need the check.
fn check_storable(record: &RefreshRecord) -> Result<(), StoreError> {
    if !storable(&record.session_id) {
        return Err(unstorable("session id"));
    }
    if !storable(&record.user_id) {
        return Err(unstorable("user id"));
    }
    Ok(())
}

fn decode(row: &PgRow) -> Result<RefreshRecord, StoreError> {
    let json: &str = row.try_get(0).map_err(store_error)?;
    serde_json::from_str(json).map_err(StoreError::corrupt)
}

/// Deleted rows (`record, expires_at`) that were still live at `now`, decoded.
fn live_records(rows: &[PgRow], now: i64) -> Result<Vec<RefreshRecord>, StoreError> {
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let expires_at: i64 = row.try_get(1).map_err(store_error)?;
        if expires_at > now {
            records.push(decode(row)?);
        }
    }
    Ok(records)
}

impl RefreshStore for PostgresRefreshStore {
    async fn create(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        check_storable(record)?;
        // Always under the per-user lock: with no limit configured, the store's own per-user
        // bound still holds.
        self.database
            .bounded(self.create_bounded(record, limit))
            .await
    }

    async fn load(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        // No row can hold such an id (see `storable`).
        if !storable(session_id) {
            return Ok(None);
        }
        let now = self.now();
        self.database
            .bounded(async {
                let row = sqlx::query(&self.sql.load)
                    .bind(session_id)
                    .bind(now)
                    .fetch_optional(self.database.pool())
                    .await
                    .map_err(store_error)?;
                row.as_ref().map(decode).transpose()
            })
            .await
    }

    async fn compare_and_swap(
        &self,
        record: &RefreshRecord,
        expected_generation: u64,
    ) -> Result<bool, StoreError> {
        // No stored session has such an id: nothing to swap, as for any missing session.
        if !storable(&record.session_id) {
            return Ok(false);
        }
        check_storable(record)?;
        let now = self.now();
        let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
        self.database
            .bounded(async {
                // Of two rotations of one generation, the second waits on the row lock,
                // re-checks the generation and updates nothing: exactly one winner.
                let swapped = sqlx::query(&self.sql.swap)
                    .bind(&record.session_id)
                    .bind(to_sql(expected_generation))
                    .bind(&record.user_id)
                    .bind(json)
                    .bind(to_sql(record.generation))
                    .bind(to_sql(record.created_at))
                    .bind(to_sql(record.expires_at()))
                    .bind(now)
                    .execute(self.database.pool())
                    .await
                    .map_err(store_error)?
                    .rows_affected();
                Ok(swapped == 1)
            })
            .await
    }

    async fn delete(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        if !storable(session_id) {
            return Ok(None);
        }
        let now = self.now();
        self.database
            .bounded(async {
                let rows = sqlx::query(&self.sql.delete)
                    .bind(session_id)
                    .fetch_all(self.database.pool())
                    .await
                    .map_err(store_error)?;
                Ok(live_records(&rows, now)?.into_iter().next())
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        if !storable(user_id) {
            return Ok(Vec::new());
        }
        let now = self.now();
        self.database
            .bounded(async {
                let rows = sqlx::query(&self.sql.list)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(self.database.pool())
                    .await
                    .map_err(store_error)?;
                rows.iter().map(decode).collect()
            })
            .await
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<RefreshRecord>, StoreError> {
        if !storable(user_id) {
            return Ok(Vec::new());
        }
        // A `keep` no row can hold keeps nothing, exactly as an unknown id would.
        let keep = keep.filter(|keep| storable(keep));
        let now = self.now();
        self.database
            .bounded(async {
                let rows = sqlx::query(&self.sql.delete_user)
                    .bind(user_id)
                    .bind(keep)
                    .fetch_all(self.database.pool())
                    .await
                    .map_err(store_error)?;
                live_records(&rows, now)
            })
            .await
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        let freed = sweep::sweep(&self.database, &self.sql.sweep, self.now()).await?;
        Ok(usize::try_from(freed).unwrap_or(usize::MAX))
    }
}
