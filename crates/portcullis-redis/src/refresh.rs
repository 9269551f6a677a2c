//! [`RedisRefreshStore`]: the hybrid layer's [`RefreshStore`] on Redis or Redis Cluster.
//!
//! A hybrid session is a hash at `<prefix>:r:<session id>` with fields `r` (the record as
//! JSON), `g` (generation), `e` (expires at) and `u` (user id); the key expires with the
//! session. Rotation is one Lua compare-and-swap on that key; the user's sessions are also
//! indexed on the user's slot (see the crate docs for the ordering between the two).

use std::sync::{Arc, LazyLock};

use futures_util::future::try_join_all;
use portcullis_core::{SharedClock, StoreError, SystemClock};
use portcullis_hybrid::{CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, SessionLimit};
use redis::Script;

use crate::{
    connection::RedisConnection,
    index::{Added, Cap, Entry, Limit, UserIndex, ttl},
};

/// Default [`RedisRefreshStore::max_sessions_per_user`]: the same bound, with the same
/// eviction (oldest first), as `portcullis_hybrid::MemoryRefreshStore`'s and
/// `portcullis_postgres::PostgresRefreshStore`'s defaults (the memory store's constant is
/// private, so the value is mirrored here; keep the three equal).
const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;

/// Session ids longer than this are refused before Redis is asked (the hybrid layer's own
/// tokens are far shorter).
const MAX_SESSION_ID_LEN: usize = 128;
/// An index entry whose record is missing this long after its creation is a leftover (a node
/// died between the two writes), not a login in progress: a full limit drops it and retries.
const REAP_GRACE_SECS: u64 = 60;

/// ARGV: record JSON, generation, expires_at, user id, ttl.
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'g', ARGV[2], 'e', ARGV[3], 'u', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1",
    )
});

/// ARGV: now, expected generation, then as PUT. Returns `{1 or 0, previous user}`.
static COMPARE_AND_SWAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'g', 'e', 'u')
if not current[1] or tonumber(current[2]) <= tonumber(ARGV[1]) or current[1] ~= ARGV[2] then
  return {0, ''}
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'g', ARGV[4], 'e', ARGV[5], 'u', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return {1, current[3] or ''}",
    )
});

/// ARGV: now. Deletes the session; returns `{1 if it was live, record JSON or ''}`.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'r', 'e')
if not current[1] then return {0, ''} end
redis.call('DEL', KEYS[1])
local live = 0
if tonumber(current[2]) > tonumber(ARGV[1]) then live = 1 end
return {live, current[1]}",
    )
});

/// A [`RefreshStore`] on Redis or Redis Cluster. Clones share the connection.
///
/// Each session lives on one key (the refresh token names its session id), so a rotation is a
/// single atomic compare-and-swap even on a cluster. Redis must run with
/// `maxmemory-policy noeviction` (see the crate docs).
///
/// One user holds at most [`max_sessions_per_user`](RedisRefreshStore::max_sessions_per_user)
/// live sessions (default 100, as the in-memory and PostgreSQL stores), even when the
/// application configures no [`SessionLimit`]: a client that logs in forever cannot grow one
/// user's index without bound (OWASP ASVS 5.0 V2.4 / 11.1.x, bounded resources; RFC 9700 §4.14
/// leaves the session policy to the server, which must then hold it). Past it, a new login ends
/// the user's oldest session (returned in [`CreateOutcome::Created`]'s `evicted`, so its access
/// tokens are revoked). The count, the eviction and the insert are one Lua script on the user's
/// own cluster slot (the index keys share a hash tag), so the bound is exact however many nodes
/// log one user in at once, on a single Redis and on a Redis Cluster alike. A configured limit
/// below the bound applies as configured ([`LimitPolicy::RefuseNew`] refuses only at the
/// application's limit); one above it is capped by it. Re-creating an existing session id
/// replaces it and does not count against itself.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_hybrid::RefreshStore;
/// use portcullis_redis::{RedisConfig, RedisRefreshStore};
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379").build()?;
/// let store = RedisRefreshStore::new(redis);
/// assert!(store.load("no-such-session").await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisRefreshStore {
    redis: RedisConnection,
    clock: SharedClock,
    max_per_user: usize,
}

impl RedisRefreshStore {
    /// A store on `redis`, judging expiry by the system clock.
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            clock: Arc::new(SystemClock),
            max_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
        }
    }

    /// The Redis handle this store uses (to ping it, or check readiness).
    pub fn connection(&self) -> &RedisConnection {
        &self.redis
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
    /// use portcullis_redis::{RedisConfig, RedisRefreshStore};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let store = RedisRefreshStore::new(redis).with_clock(Arc::new(ManualClock::new()));
    /// # let _ = store;
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The most live sessions one user holds (default 100, as
    /// `portcullis_hybrid::MemoryRefreshStore` and `portcullis_postgres::PostgresRefreshStore`;
    /// at least 1): a new login past it ends the user's oldest session, whether or not the
    /// application configured a [`SessionLimit`]. A configured limit below it applies as
    /// configured.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use portcullis_redis::{RedisConfig, RedisRefreshStore};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let store = RedisRefreshStore::new(redis).max_sessions_per_user(20);
    /// # let _ = store;
    /// # }
    /// ```
    #[must_use]
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max.max(1);
        self
    }

    fn record_key(&self, session_id: &str) -> String {
        format!("{}:r:{session_id}", self.redis.key_prefix())
    }

    fn index(&self, user_id: &str) -> UserIndex {
        UserIndex::new(self.redis.key_prefix(), "ru", user_id)
    }

    async fn fetch(&self, session_id: &str, now: u64) -> Result<Option<RefreshRecord>, StoreError> {
        Ok(self
            .fetch_stored(session_id)
            .await?
            .filter(|record| record.expires_at() > now))
    }

    /// The stored record, expired or not.
    async fn fetch_stored(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let json: Option<String> = self
            .redis
            .query(redis::cmd("HGET").arg(self.record_key(session_id)).arg("r"))
            .await?;
        let Some(json) = json else { return Ok(None) };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(StoreError::corrupt)
    }

    async fn delete_record(
        &self,
        session_id: &str,
        now: u64,
    ) -> Result<Option<(bool, RefreshRecord)>, StoreError> {
        let mut invocation = DELETE.key(self.record_key(session_id));
        invocation.arg(now);
        let (live, json): (i64, String) = self.redis.eval(&invocation).await?;
        if json.is_empty() {
            return Ok(None);
        }
        let record = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
        Ok(Some((live == 1, record)))
    }

    /// Deletes the records of doomed members, then drops them from the index; returns the
    /// records that were live.
    async fn finish(
        &self,
        index: &UserIndex,
        now: u64,
        doomed: &[String],
    ) -> Result<Vec<RefreshRecord>, StoreError> {
        let deleted = try_join_all(
            doomed
                .iter()
                .map(|session_id| self.delete_record(session_id, now)),
        )
        .await?;
        index.forget(&self.redis, now, doomed).await?;
        Ok(deleted
            .into_iter()
            .flatten()
            .filter_map(|(live, record)| live.then_some(record))
            .collect())
    }
}

impl RedisRefreshStore {
    /// Drops index entries whose records are gone or expired, so they stop counting against a
    /// limit; returns how many.
    async fn reap(&self, index: &UserIndex, now: u64) -> Result<usize, StoreError> {
        let (live, doomed) = index.list(&self.redis, now).await?;
        self.finish(index, now, &doomed).await?;
        let fetched = try_join_all(
            live.iter()
                .map(|(session_id, _)| self.fetch_stored(session_id)),
        )
        .await?;
        let gone: Vec<String> = live
            .into_iter()
            .zip(fetched)
            .filter(|((_, created), record)| match record {
                None => created.saturating_add(REAP_GRACE_SECS) <= now,
                Some(record) => record.expires_at() <= now,
            })
            .map(|((session_id, _), _)| session_id)
            .collect();
        // Expired by this node's clock but maybe not by Redis' (its entry still stands): the
        // record goes before its entry, so an entry is never dropped while its record lives.
        try_join_all(
            gone.iter()
                .map(|session_id| self.delete_record(session_id, now)),
        )
        .await?;
        index.forget(&self.redis, now, &gone).await?;
        Ok(gone.len())
    }
}

fn valid_session_id(session_id: &str) -> bool {
    !session_id.is_empty() && session_id.len() <= MAX_SESSION_ID_LEN
}

fn entry(record: &RefreshRecord) -> Entry<'_> {
    Entry {
        member: &record.session_id,
        expires_at: record.expires_at(),
        created_at: record.created_at,
        handle: "",
    }
}

fn oldest_first(records: &mut [RefreshRecord]) {
    records.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
}

impl RefreshStore for RedisRefreshStore {
    async fn create(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        if !valid_session_id(&record.session_id) {
            // Input no key of this store can carry: the caller's mistake, not an outage
            // (400, not 503). The hybrid layer's own ids are far shorter, never empty.
            return Err(StoreError::invalid_input(format!(
                "the session id is empty or longer than {MAX_SESSION_ID_LEN} bytes"
            )));
        }
        let now = self.clock.unix_seconds();
        let index = self.index(&record.user_id);
        let record_key = self.record_key(&record.session_id);
        let limit = limit.map(|limit| Limit {
            max: limit.max,
            refuse: limit.policy == LimitPolicy::RefuseNew,
        });
        let bound = u64::try_from(self.max_per_user).unwrap_or(u64::MAX);
        self.redis
            .bounded(async {
                // 1. The index first: a record never exists without its index entry. The
                //    count, the eviction and the insert are one script on the user's slot, so
                //    the limit and the store's own bound are exact across nodes.
                let ask = Cap {
                    bound,
                    ask_when_full: true,
                };
                let mut added = index
                    .add(&self.redis, now, &entry(record), limit, ask)
                    .await?;
                // At the cap, entries of expired or half-written sessions must not cost a live
                // session its place: drop them first, then add (evicting if still full).
                let reaped = match added {
                    Added::Refused | Added::Full => self.reap(&index, now).await?,
                    Added::Inserted { .. } => 0,
                };
                if matches!(added, Added::Full) || (matches!(added, Added::Refused) && reaped > 0) {
                    let evict = Cap {
                        bound,
                        ask_when_full: false,
                    };
                    added = index
                        .add(&self.redis, now, &entry(record), limit, evict)
                        .await?;
                }
                let (evicted, doomed) = match added {
                    Added::Inserted { evicted, doomed } => (evicted, doomed),
                    Added::Refused => return Ok(CreateOutcome::LimitReached),
                    // Not asked the second time: the script evicts instead.
                    Added::Full => {
                        return Err(StoreError::corrupt("the index script asked twice"));
                    }
                };
                // 2. The record.
                let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
                let mut invocation = PUT.key(&record_key);
                invocation
                    .arg(json)
                    .arg(record.generation)
                    .arg(record.expires_at())
                    .arg(&record.user_id)
                    .arg(ttl(record.expires_at(), now));
                let _: i64 = self.redis.eval(&invocation).await?;
                // 3. A logout-all that ran between 1 and 2 removed the entry before the record
                //    existed: finish its job rather than leave an unindexed session.
                if !index.contains(&self.redis, &record.session_id).await? {
                    self.delete_record(&record.session_id, now).await?;
                }
                // 4. The evicted records, and deletions an interrupted operation left behind.
                self.finish(&index, now, &doomed).await?;
                Ok(CreateOutcome::Created {
                    evicted: evicted
                        .into_iter()
                        .map(|(session_id, _)| session_id)
                        .collect(),
                })
            })
            .await
    }

    async fn load(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        if !valid_session_id(session_id) {
            return Ok(None);
        }
        let now = self.clock.unix_seconds();
        self.redis.bounded(self.fetch(session_id, now)).await
    }

    async fn compare_and_swap(
        &self,
        record: &RefreshRecord,
        expected_generation: u64,
    ) -> Result<bool, StoreError> {
        if !valid_session_id(&record.session_id) {
            return Ok(false);
        }
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(&record.session_id);
        self.redis
            .bounded(async {
                // The index entry covers the new expiry before the record does.
                self.index(&record.user_id)
                    .bump(&self.redis, now, &entry(record), true)
                    .await?;
                let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
                let mut invocation = COMPARE_AND_SWAP.key(&record_key);
                invocation
                    .arg(now)
                    .arg(expected_generation)
                    .arg(json)
                    .arg(record.generation)
                    .arg(record.expires_at())
                    .arg(&record.user_id)
                    .arg(ttl(record.expires_at(), now));
                let (swapped, previous_user): (i64, String) = self.redis.eval(&invocation).await?;
                if swapped == 1 && previous_user != record.user_id {
                    self.index(&previous_user)
                        .forget(&self.redis, now, std::slice::from_ref(&record.session_id))
                        .await?;
                }
                Ok(swapped == 1)
            })
            .await
    }

    async fn delete(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        if !valid_session_id(session_id) {
            return Ok(None);
        }
        let now = self.clock.unix_seconds();
        self.redis
            .bounded(async {
                // The record first: once it is gone, a leftover index entry is harmless.
                let Some((live, record)) = self.delete_record(session_id, now).await? else {
                    return Ok(None);
                };
                self.index(&record.user_id)
                    .forget(&self.redis, now, std::slice::from_ref(&record.session_id))
                    .await?;
                Ok(live.then_some(record))
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        self.redis
            .bounded(async {
                let (live, doomed) = index.list(&self.redis, now).await?;
                self.finish(&index, now, &doomed).await?;
                let fetched = try_join_all(
                    live.iter()
                        .map(|(session_id, _)| self.fetch(session_id, now)),
                )
                .await?;
                let mut records: Vec<RefreshRecord> = fetched
                    .into_iter()
                    .flatten()
                    .filter(|record| record.user_id == user_id)
                    .collect();
                oldest_first(&mut records);
                Ok(records)
            })
            .await
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<RefreshRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        self.redis
            .bounded(async {
                let doomed = index.take_all(&self.redis, now, keep).await?;
                let mut deleted = self.finish(&index, now, &doomed).await?;
                oldest_first(&mut deleted);
                Ok(deleted)
            })
            .await
    }
}
