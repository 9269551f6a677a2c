//! [`PostgresSessionStore`]: the session-cookie layer's [`SessionStore`] on PostgreSQL.
//!
//! One row per session in `<prefix>sessions`, keyed by the SHA-256 of the session secret. Every
//! operation is one statement, except a limited `create`, which is one short transaction
//! holding a per-user advisory lock so a limit is exact however many nodes log the same user
//! in at once, and `replace_user`, one transaction over the user's rows. Expiry is judged on every read by the caller's clock; expired rows are deleted
//! by [`PostgresSessionStore::sweep_expired`] in bounded batches.

use std::{sync::Arc, time::Duration};

use portcullis_core::{SharedClock, StoreError, StoreKey, SystemClock, UserJson};
use portcullis_session::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};
use sqlx::{Row, postgres::PgRow};

use crate::{
    connection::{PostgresConnection, from_sql, storable, store_error, to_sql, unstorable},
    sweep,
};

/// A [`SessionStore`] on PostgreSQL. Clones share the pool.
///
/// A read-only authenticated request costs one `SELECT` by primary key and no write: the
/// session layer calls [`SessionStore::load`] only, and [`SessionStore::touch`] only when it
/// decides the expiry must move. Saves are compare-and-set on the version in one `UPDATE`.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use portcullis_postgres::{PostgresConfig, PostgresSessionStore};
/// use portcullis_session::SessionStore;
///
/// let database = PostgresConfig::new("postgres://app@127.0.0.1/app").build()?;
/// database.migrate().await?;
/// let store = PostgresSessionStore::new(database);
/// let _sweeper = store.spawn_sweeper(Duration::from_secs(60));
/// let key = portcullis_core::SecretToken::generate().store_key();
/// assert!(store.load(&key).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresSessionStore {
    database: PostgresConnection,
    clock: SharedClock,
    sql: Arc<Statements>,
}

/// The store's SQL, with the table name filled in once.
#[derive(Debug)]
struct Statements {
    load: String,
    upsert: String,
    lock_user: &'static str,
    live_of_user: String,
    delete_keys: String,
    save: String,
    exists: String,
    touch: String,
    delete: String,
    list: String,
    delete_handle: String,
    delete_user: String,
    replace_user_rows: String,
    replace_user: String,
    sweep: String,
}

impl Statements {
    fn new(table: &str) -> Self {
        const COLUMNS: &str = "record, version, idle_expires_at, last_seen_at";
        Self {
            load: format!("SELECT {COLUMNS} FROM {table} WHERE store_key = $1 AND expires_at > $2"),
            upsert: format!(
                "INSERT INTO {table} (store_key, handle, user_id, record, version, created_at, \
                 last_seen_at, idle_expires_at, absolute_expires_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (store_key) DO UPDATE SET handle = EXCLUDED.handle, \
                 user_id = EXCLUDED.user_id, record = EXCLUDED.record, \
                 version = EXCLUDED.version, created_at = EXCLUDED.created_at, \
                 last_seen_at = EXCLUDED.last_seen_at, \
                 idle_expires_at = EXCLUDED.idle_expires_at, \
                 absolute_expires_at = EXCLUDED.absolute_expires_at, \
                 expires_at = EXCLUDED.expires_at"
            ),
            lock_user: "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            live_of_user: format!(
                "SELECT store_key, handle FROM {table} WHERE user_id = $1 AND expires_at > $2 \
                 ORDER BY created_at, handle"
            ),
            delete_keys: format!("DELETE FROM {table} WHERE store_key = ANY($1)"),
            save: format!(
                "UPDATE {table} SET handle = $3, user_id = $4, record = $5, \
                 version = $6, created_at = $7, last_seen_at = $8, idle_expires_at = $9, \
                 absolute_expires_at = $10, expires_at = $11 \
                 WHERE store_key = $1 AND version = $2 AND expires_at > $12"
            ),
            exists: format!(
                "SELECT EXISTS (SELECT 1 FROM {table} WHERE store_key = $1 AND expires_at > $2)"
            ),
            touch: format!(
                "UPDATE {table} SET last_seen_at = $2, idle_expires_at = $3, \
                 expires_at = LEAST($3, absolute_expires_at) \
                 WHERE store_key = $1 AND expires_at > $4"
            ),
            delete: format!("DELETE FROM {table} WHERE store_key = $1"),
            list: format!(
                "SELECT {COLUMNS} FROM {table} WHERE user_id = $1 AND expires_at > $2 \
                 ORDER BY created_at, handle"
            ),
            delete_handle: format!(
                "WITH gone AS (DELETE FROM {table} WHERE user_id = $1 AND handle = $2 \
                 RETURNING expires_at) SELECT count(*) FROM gone WHERE expires_at > $3"
            ),
            delete_user: format!(
                "WITH gone AS (DELETE FROM {table} WHERE user_id = $1 \
                 AND ($2::bytea IS NULL OR store_key <> $2) RETURNING expires_at) \
                 SELECT count(*) FROM gone WHERE expires_at > $3"
            ),
            replace_user_rows: format!(
                "SELECT store_key, record FROM {table} WHERE user_id = $1 AND expires_at > $2 \
                 FOR UPDATE"
            ),
            replace_user: format!(
                "UPDATE {table} SET record = new.record, version = {table}.version + 1 \
                 FROM unnest($1::bytea[], $2::text[]) AS new(store_key, record) \
                 WHERE {table}.store_key = new.store_key"
            ),
            sweep: sweep::statement(table, "store_key"),
        }
    }
}

impl PostgresSessionStore {
    /// A store on `database`'s `<prefix>sessions` table, judging expiry by the system clock.
    /// The table must exist: run [`PostgresConnection::migrate`] first (or its SQL).
    pub fn new(database: PostgresConnection) -> Self {
        let sql = Arc::new(Statements::new(&database.tables().sessions));
        Self {
            database,
            clock: Arc::new(SystemClock),
            sql,
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
    /// use portcullis_postgres::{PostgresConfig, PostgresSessionStore};
    ///
    /// let database = PostgresConfig::new("postgres://127.0.0.1/app").build().unwrap();
    /// let store = PostgresSessionStore::new(database).with_clock(Arc::new(ManualClock::new()));
    /// # let _ = store;
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn now(&self) -> i64 {
        to_sql(self.clock.unix_seconds())
    }

    /// Deletes expired rows, in batches of 1,000 (at most 100 batches); returns how many.
    /// Reads already treat them as absent; this frees the space.
    pub async fn sweep_expired(&self) -> Result<u64, StoreError> {
        sweep::sweep(&self.database, &self.sql.sweep, self.now()).await
    }

    /// Runs [`PostgresSessionStore::sweep_expired`] every `period` in a background task
    /// (logging failures: a database outage only delays the sweep). Abort the handle to stop.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(store: portcullis_postgres::PostgresSessionStore) {
    /// let sweeper = store.spawn_sweeper(std::time::Duration::from_secs(60));
    /// sweeper.abort();
    /// # }
    /// ```
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period.max(Duration::from_millis(10)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                match store.sweep_expired().await {
                    Ok(0) => {}
                    Ok(freed) => tracing::debug!(freed, "swept expired sessions"),
                    Err(error) => tracing::warn!(%error, "session sweep failed; will retry"),
                }
            }
        })
    }

    async fn insert(
        &self,
        executor: impl sqlx::PgExecutor<'_>,
        key: &StoreKey,
        record: &SessionRecord,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
        sqlx::query(&self.sql.upsert)
            .bind(key.as_bytes().as_slice())
            .bind(&record.handle)
            .bind(record.user_id.as_deref())
            .bind(json)
            .bind(to_sql(record.version))
            .bind(to_sql(record.created_at))
            .bind(to_sql(record.last_seen_at))
            .bind(to_sql(record.expires_at))
            .bind(to_sql(record.absolute_expires_at))
            .bind(to_sql(expiry(record)))
            .execute(executor)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// The limited create of a signed-in session: lock the user, count, evict or refuse,
    /// insert, in one transaction. The advisory lock serializes creates of one user across
    /// every node (OWASP Session Management Cheat Sheet: simultaneous session limits must hold
    /// under concurrency); other users never wait on it.
    async fn create_limited(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        user_id: &str,
        limit: SessionLimit,
    ) -> Result<CreateOutcome, StoreError> {
        let mut transaction = self.database.pool().begin().await.map_err(store_error)?;
        sqlx::query(self.sql.lock_user)
            .bind(format!("{}:{user_id}", self.database.tables().sessions))
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        let live = sqlx::query(&self.sql.live_of_user)
            .bind(user_id)
            .bind(self.now())
            .fetch_all(&mut *transaction)
            .await
            .map_err(store_error)?;
        let max = usize::try_from(limit.max).unwrap_or(usize::MAX);
        let excess = (live.len() + 1).saturating_sub(max);
        let mut evicted = Vec::new();
        if excess > 0 {
            if limit.policy == LimitPolicy::RefuseNew {
                transaction.rollback().await.map_err(store_error)?;
                return Ok(CreateOutcome::LimitReached);
            }
            let mut keys: Vec<Vec<u8>> = Vec::with_capacity(excess);
            for row in live.iter().take(excess) {
                keys.push(row.try_get(0).map_err(store_error)?);
                evicted.push(row.try_get::<String, _>(1).map_err(store_error)?);
            }
            sqlx::query(&self.sql.delete_keys)
                .bind(keys)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
        }
        self.insert(&mut *transaction, key, record).await?;
        transaction.commit().await.map_err(store_error)?;
        Ok(CreateOutcome::Created { evicted })
    }
}

/// A record's bound text, checked before a write (see [`storable`]). The record itself is
/// JSON, whose encoder escapes U+0000 as `\u0000`, so only the columns need the check.
fn check_storable(record: &SessionRecord) -> Result<(), StoreError> {
    if !storable(&record.handle) {
        return Err(unstorable("session handle"));
    }
    if !record.user_id.as_deref().is_none_or(storable) {
        return Err(unstorable("user id"));
    }
    Ok(())
}

/// When the session stops existing: its (idle) expiry, capped by the absolute deadline.
fn expiry(record: &SessionRecord) -> u64 {
    record.expires_at.min(record.absolute_expires_at)
}

/// A row of `record, version, idle_expires_at, last_seen_at`; the columns win over the
/// copies inside the JSON (touches move only the columns).
fn decode(row: &PgRow) -> Result<SessionRecord, StoreError> {
    let json: &str = row.try_get(0).map_err(store_error)?;
    let mut record: SessionRecord = serde_json::from_str(json).map_err(StoreError::corrupt)?;
    record.version = from_sql(row.try_get(1).map_err(store_error)?)?;
    record.expires_at = from_sql(row.try_get(2).map_err(store_error)?)?;
    record.last_seen_at = from_sql(row.try_get(3).map_err(store_error)?)?;
    Ok(record)
}

impl SessionStore for PostgresSessionStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.now();
        self.database
            .bounded(async {
                let row = sqlx::query(&self.sql.load)
                    .bind(key.as_bytes().as_slice())
                    .bind(now)
                    .fetch_optional(self.database.pool())
                    .await
                    .map_err(store_error)?;
                row.as_ref().map(decode).transpose()
            })
            .await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        check_storable(record)?;
        self.database
            .bounded(async {
                match (record.user_id.as_deref(), limit) {
                    (Some(user_id), Some(limit)) => {
                        self.create_limited(key, record, user_id, limit).await
                    }
                    _ => {
                        self.insert(self.database.pool(), key, record).await?;
                        Ok(CreateOutcome::Created {
                            evicted: Vec::new(),
                        })
                    }
                }
            })
            .await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        check_storable(record)?;
        let now = self.now();
        self.database
            .bounded(async {
                let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
                // One conditional UPDATE: of two concurrent saves of one version, the second
                // waits for the first's row lock, re-checks `version` and matches nothing.
                let saved = sqlx::query(&self.sql.save)
                    .bind(key.as_bytes().as_slice())
                    .bind(to_sql(expected_version))
                    .bind(&record.handle)
                    .bind(record.user_id.as_deref())
                    .bind(json)
                    .bind(to_sql(record.version))
                    .bind(to_sql(record.created_at))
                    .bind(to_sql(record.last_seen_at))
                    .bind(to_sql(record.expires_at))
                    .bind(to_sql(record.absolute_expires_at))
                    .bind(to_sql(expiry(record)))
                    .bind(now)
                    .execute(self.database.pool())
                    .await
                    .map_err(store_error)?
                    .rows_affected();
                if saved == 1 {
                    return Ok(SaveOutcome::Saved);
                }
                let live: bool = sqlx::query_scalar(&self.sql.exists)
                    .bind(key.as_bytes().as_slice())
                    .bind(now)
                    .fetch_one(self.database.pool())
                    .await
                    .map_err(store_error)?;
                Ok(if live {
                    SaveOutcome::Conflict
                } else {
                    SaveOutcome::Missing
                })
            })
            .await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        self.database
            .bounded(async {
                let touched = sqlx::query(&self.sql.touch)
                    .bind(key.as_bytes().as_slice())
                    .bind(to_sql(last_seen_at))
                    .bind(to_sql(expires_at))
                    .bind(now)
                    .execute(self.database.pool())
                    .await
                    .map_err(store_error)?
                    .rows_affected();
                Ok(touched == 1)
            })
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.database
            .bounded(async {
                sqlx::query(&self.sql.delete)
                    .bind(key.as_bytes().as_slice())
                    .execute(self.database.pool())
                    .await
                    .map_err(store_error)?;
                Ok(())
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        // No row can hold such an id (see `storable`).
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

    async fn delete_by_handle(&self, user_id: &str, handle: &str) -> Result<bool, StoreError> {
        // The handle comes from a request path (`DELETE /sessions/{handle}`): one with a NUL
        // names no session, which is a 404, not an outage.
        if !storable(user_id) || !storable(handle) {
            return Ok(false);
        }
        let now = self.now();
        self.database
            .bounded(async {
                let live: i64 = sqlx::query_scalar(&self.sql.delete_handle)
                    .bind(user_id)
                    .bind(handle)
                    .bind(now)
                    .fetch_one(self.database.pool())
                    .await
                    .map_err(store_error)?;
                Ok(live > 0)
            })
            .await
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> Result<u64, StoreError> {
        if !storable(user_id) {
            return Ok(0);
        }
        let now = self.now();
        self.database
            .bounded(async {
                let live: i64 = sqlx::query_scalar(&self.sql.delete_user)
                    .bind(user_id)
                    .bind(keep.map(|key| key.as_bytes().as_slice()))
                    .bind(now)
                    .fetch_one(self.database.pool())
                    .await
                    .map_err(store_error)?;
                from_sql(live)
            })
            .await
    }

    /// A role change, in one transaction: every live session of the user is locked, gets the
    /// new user and a new version, so a request holding the old record loses its
    /// compare-and-set and re-applies its change on top.
    async fn replace_user(&self, user_id: &str, user: &UserJson) -> Result<u64, StoreError> {
        if !storable(user_id) {
            return Ok(0);
        }
        let now = self.now();
        self.database
            .bounded(async {
                let mut transaction = self.database.pool().begin().await.map_err(store_error)?;
                let rows = sqlx::query(&self.sql.replace_user_rows)
                    .bind(user_id)
                    .bind(now)
                    .fetch_all(&mut *transaction)
                    .await
                    .map_err(store_error)?;
                let mut keys: Vec<Vec<u8>> = Vec::with_capacity(rows.len());
                let mut records = Vec::with_capacity(rows.len());
                for row in &rows {
                    keys.push(row.try_get(0).map_err(store_error)?);
                    let json: &str = row.try_get(1).map_err(store_error)?;
                    let mut record: SessionRecord =
                        serde_json::from_str(json).map_err(StoreError::corrupt)?;
                    record.user = Some(user.clone());
                    records.push(serde_json::to_string(&record).map_err(StoreError::corrupt)?);
                }
                let rewritten = sqlx::query(&self.sql.replace_user)
                    .bind(keys)
                    .bind(records)
                    .execute(&mut *transaction)
                    .await
                    .map_err(store_error)?
                    .rows_affected();
                transaction.commit().await.map_err(store_error)?;
                Ok(rewritten)
            })
            .await
    }
}
