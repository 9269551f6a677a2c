//! [`RedisSessionStore`]: the session-cookie layer's [`SessionStore`] on Redis or Redis Cluster.
//!
//! A session is a hash at `<prefix>:s:<store key hex>` with fields `r` (the record as JSON),
//! `v` (version), `e` (expires at), `a` (absolute deadline), `l` (last seen) and `u` (user id,
//! when signed in); the key expires with the session, at the earlier of `e` and `a`. `load` is one `HMGET`; `save` and `touch` are Lua scripts that
//! compare and write on that one key. A signed-in user's sessions are also indexed on the
//! user's slot (see the crate docs for the ordering between the two).

use std::{sync::Arc, sync::LazyLock};

use crate::near_cache::{NearCache, NearCacheConfig, NearCacheStats};

use futures_util::future::try_join_all;
use portcullis_core::{SharedClock, StoreError, StoreKey, SystemClock, UserJson};
use portcullis_session::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};
use redis::Script;

use crate::{
    connection::RedisConnection,
    index::{Added, Bumped, Entry, Limit, UserIndex, ttl},
};

/// How long a listed member whose record is missing is left alone, in case its record is
/// being written right now by a `create` (which writes the index first).
const REAP_GRACE_SECS: u64 = 60;

/// ARGV: record JSON, version, expires_at, absolute_expires_at, last_seen_at, user flag
/// (`some`|`none`), user id, ttl, invalidation channel, store key hex.
///
/// Every write script publishes the store key on the invalidation channel itself, so no write
/// reaches Redis without the near-caches hearing of it (see `near_cache.rs`).
static PUT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[1], 'v', ARGV[2], 'e', ARGV[3], 'a', ARGV[4], 'l', ARGV[5])
if ARGV[6] == 'some' then redis.call('HSET', KEYS[1], 'u', ARGV[7]) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('PUBLISH', ARGV[9], ARGV[10])
return 1",
    )
});

/// ARGV: now, expected version, then as PUT (channel and key last). Returns `{status, '=' .. old user or ''}`; a
/// record expired by `now` is deleted (`missing`).
static SAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'v', 'e', 'a', 'u')
if not current[1] then return {'missing', ''} end
if math.min(tonumber(current[2]), tonumber(current[3])) <= tonumber(ARGV[1]) then
  -- Expired by the caller's clock, maybe not yet by Redis' TTL: end it for every node before
  -- the caller drops its index entry, so no node with a slower clock keeps it unindexed.
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[11], ARGV[12])
  return {'missing', ''}
end
if current[1] ~= ARGV[2] then return {'conflict', ''} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'r', ARGV[3], 'v', ARGV[4], 'e', ARGV[5], 'a', ARGV[6], 'l', ARGV[7])
if ARGV[8] == 'some' then redis.call('HSET', KEYS[1], 'u', ARGV[9]) end
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('PUBLISH', ARGV[11], ARGV[12])
local previous = ''
if current[4] then previous = '=' .. current[4] end
return {'saved', previous}",
    )
});

/// ARGV: now, expires_at, last_seen_at, invalidation channel, store key hex. Returns 1 if the live session was touched.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'e', 'a')
local now = tonumber(ARGV[1])
if not current[1] or math.min(tonumber(current[1]), tonumber(current[2])) <= now then
  return 0
end
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'l', ARGV[3])
local deadline = math.min(tonumber(ARGV[2]), tonumber(current[2]))
redis.call('EXPIRE', KEYS[1], math.max(1, math.floor(deadline - now)))
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1",
    )
});

/// ARGV: now, invalidation channel, store key hex. Deletes the session; returns `{1 if it was live, '=' .. user or ''}`.
static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HMGET', KEYS[1], 'e', 'a', 'u')
if not current[1] then return {0, ''} end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
local live = 0
if math.min(tonumber(current[1]), tonumber(current[2])) > tonumber(ARGV[1]) then live = 1 end
local user = ''
if current[3] then user = '=' .. current[3] end
return {live, user}",
    )
});

/// A [`SessionStore`] on Redis or Redis Cluster. Clones share the connection.
///
/// A read-only authenticated request costs one `HMGET` and no write: the session layer
/// calls [`SessionStore::load`] only, and [`SessionStore::touch`] only when it decides the
/// expiry must move. Every write is atomic on its key; limits are enforced atomically on the
/// user's index. Redis must run with `maxmemory-policy noeviction` (see the crate docs).
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_redis::{RedisConfig, RedisSessionStore};
/// use portcullis_session::SessionStore;
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379").key_prefix("myapp").build()?;
/// let store = RedisSessionStore::new(redis);
/// let key = portcullis_core::SecretToken::generate().store_key();
/// assert!(store.load(&key).await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisSessionStore {
    redis: RedisConnection,
    clock: SharedClock,
    /// Off unless [`RedisSessionStore::near_cache`] turned it on.
    near: Option<Arc<NearCache>>,
}

impl RedisSessionStore {
    /// A store on `redis`, judging expiry by the system clock.
    pub fn new(redis: RedisConnection) -> Self {
        Self {
            redis,
            clock: Arc::new(SystemClock),
            near: None,
        }
    }

    /// The Redis handle this store uses (to ping it, or check readiness).
    pub fn connection(&self) -> &RedisConnection {
        &self.redis
    }

    /// Judges expiry by `clock` (tests pass a [`ManualClock`](portcullis_core::ManualClock)).
    /// Redis still drops keys on its own clock, a little after the records expire.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_redis::{RedisConfig, RedisSessionStore};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let store = RedisSessionStore::new(redis).with_clock(Arc::new(ManualClock::new()));
    /// # let _ = store;
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Keeps recently read session records in this process, so a read-only request on a
    /// session read recently makes no Redis round trip. Off by default.
    ///
    /// Every write to a session, on any node, publishes its store key on
    /// `<prefix>:s:invalidate` from the script that writes it; every node with a near-cache
    /// drops the record when it hears that (the writing node before the write returns, the
    /// others usually within a millisecond). A subscription that breaks drops the whole cache,
    /// and one that stops answering its heartbeat stops hits within two heartbeat intervals;
    /// nothing is cached again until it is subscribed anew.
    ///
    /// The subscription starts with the first `load` (this call does no I/O).
    ///
    /// # Security
    ///
    /// Only writes made through a `RedisSessionStore` (of this version or later, on any
    /// node) are heard: a session changed or deleted behind its back (by hand in
    /// `redis-cli`, say) is still served from the cache for up to
    /// [`NearCacheConfig::max_age`]. Nodes running an older version publish nothing: turn the
    /// near-cache on only once every node runs this one.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use portcullis_redis::{NearCacheConfig, RedisConfig, RedisSessionStore};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let store = RedisSessionStore::new(redis).near_cache(NearCacheConfig::new());
    /// assert!(store.near_cache_stats().is_some());
    /// # }
    /// ```
    #[must_use]
    pub fn near_cache(mut self, config: NearCacheConfig) -> Self {
        self.near = Some(Arc::new(NearCache::new(config)));
        self
    }

    /// How the near-cache has done so far; `None` when it is off.
    pub fn near_cache_stats(&self) -> Option<NearCacheStats> {
        self.near.as_ref().map(|near| near.stats())
    }

    /// A hit from the near-cache, starting its subscription on first use.
    fn near_hit(&self, near: &Arc<NearCache>, key: &StoreKey, now: u64) -> Option<SessionRecord> {
        if near.claim_start() {
            let channel = crate::invalidation::channel(self.redis.key_prefix());
            tokio::spawn(crate::invalidation::run(
                Arc::downgrade(near),
                self.redis.clone(),
                channel,
            ));
        }
        near.get(key, now)
    }

    fn record_key(&self, key: &StoreKey) -> String {
        format!("{}:s:{}", self.redis.key_prefix(), key.to_hex())
    }

    /// Adds the invalidation channel and the store key hex a write script publishes.
    fn publish_args(&self, invocation: &mut redis::ScriptInvocation<'_>, record_key: &str) {
        invocation
            .arg(crate::invalidation::channel(self.redis.key_prefix()))
            .arg(member_of(record_key));
    }

    /// Drops the record from this node's near-cache (other nodes hear the script's message).
    fn forget_locally(&self, record_key: &str) {
        if let (Some(near), Some(key)) = (&self.near, StoreKey::from_hex(member_of(record_key))) {
            near.invalidate(key.as_bytes());
        }
    }

    fn member_key(&self, member: &str) -> String {
        format!("{}:s:{member}", self.redis.key_prefix())
    }

    fn index(&self, user_id: &str) -> UserIndex {
        UserIndex::new(self.redis.key_prefix(), "su", user_id)
    }

    async fn fetch(&self, record_key: &str, now: u64) -> Result<Fetched, StoreError> {
        Ok(self.fetch_sized(record_key, now).await?.0)
    }

    /// As `fetch`, with the length of the record's JSON (what the near-cache counts).
    async fn fetch_sized(
        &self,
        record_key: &str,
        now: u64,
    ) -> Result<(Fetched, usize), StoreError> {
        let fields: Vec<Option<String>> = self
            .redis
            .query(
                redis::cmd("HMGET")
                    .arg(record_key)
                    .arg(&["r", "v", "e", "l"]),
            )
            .await?;
        let [Some(json), Some(version), Some(expires), Some(seen)] =
            <[Option<String>; 4]>::try_from(fields).unwrap_or_default()
        else {
            return Ok((Fetched::Missing, 0));
        };
        let mut record: SessionRecord = serde_json::from_str(&json).map_err(StoreError::corrupt)?;
        record.version = parse(&version)?;
        record.expires_at = parse(&expires)?;
        record.last_seen_at = parse(&seen)?;
        if expiry(&record) <= now {
            return Ok((Fetched::Expired, 0));
        }
        Ok((Fetched::Live(Box::new(record)), json.len()))
    }

    async fn put(
        &self,
        record_key: &str,
        record: &SessionRecord,
        now: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
        let mut invocation = PUT.key(record_key);
        invocation
            .arg(json)
            .arg(record.version)
            .arg(record.expires_at)
            .arg(record.absolute_expires_at)
            .arg(record.last_seen_at);
        user_args(&mut invocation, record.user_id.as_deref());
        invocation.arg(ttl(expiry(record), now));
        self.publish_args(&mut invocation, record_key);
        let result: Result<i64, _> = self.redis.eval(&invocation).await;
        self.forget_locally(record_key);
        result?;
        Ok(())
    }

    /// Deletes one record; returns whether it was live and its user.
    async fn delete_record(
        &self,
        record_key: &str,
        now: u64,
    ) -> Result<(bool, Option<String>), StoreError> {
        let mut invocation = DELETE.key(record_key);
        invocation.arg(now);
        self.publish_args(&mut invocation, record_key);
        let result = self.redis.eval(&invocation).await;
        self.forget_locally(record_key);
        let (live, user): (i64, String) = result?;
        Ok((live == 1, user.strip_prefix('=').map(str::to_owned)))
    }

    /// Deletes the records of doomed members, then drops them from the index. Returns, for
    /// each member, whether its record was live.
    async fn finish(
        &self,
        index: &UserIndex,
        now: u64,
        doomed: &[String],
    ) -> Result<Vec<bool>, StoreError> {
        let live = try_join_all(doomed.iter().map(|member| async move {
            let (live, _) = self.delete_record(&self.member_key(member), now).await?;
            Ok::<_, StoreError>(live)
        }))
        .await?;
        index.forget(&self.redis, now, doomed).await?;
        Ok(live)
    }

    /// Puts `user_id`'s live record back in their index with the expiry of `entry`; false
    /// when the record is gone, belongs to someone else now, or is being deleted.
    async fn reindex(
        &self,
        user_id: &str,
        record_key: &str,
        now: u64,
        entry: &Entry<'_>,
    ) -> Result<bool, StoreError> {
        let Fetched::Live(record) = self.fetch(record_key, now).await? else {
            return Ok(false);
        };
        if record.user_id.as_deref() != Some(user_id) {
            return Ok(false);
        }
        let full = Entry {
            expires_at: entry.expires_at,
            ..self::entry(entry.member, &record)
        };
        let bumped = self
            .index(user_id)
            .bump(&self.redis, now, &full, true)
            .await?;
        Ok(bumped == Bumped::Held)
    }

    /// Drops index members whose record no longer exists (left by an interrupted delete),
    /// sparing recent ones whose `create` may still be writing, and ends records this node
    /// judges expired (as `SAVE` does). Returns how many were dropped.
    async fn reap(&self, index: &UserIndex, now: u64) -> Result<usize, StoreError> {
        let (live, doomed) = index.list(&self.redis, now).await?;
        self.finish(index, now, &doomed).await?;
        let fetched = try_join_all(
            live.iter()
                .map(|(member, _)| async move { self.fetch(&self.member_key(member), now).await }),
        )
        .await?;
        let mut gone = Vec::new();
        let mut expired = Vec::new();
        for ((member, created), fetched) in live.into_iter().zip(fetched) {
            match fetched {
                Fetched::Missing if created.saturating_add(REAP_GRACE_SECS) <= now => {
                    gone.push(member);
                }
                Fetched::Expired => expired.push(member),
                _ => {}
            }
        }
        // Expired by this node's clock but maybe not by Redis' (its index entry still stands):
        // the record goes first, so its entry is never dropped while it lives.
        try_join_all(
            expired.iter().map(|member| async move {
                self.delete_record(&self.member_key(member), now).await
            }),
        )
        .await?;
        gone.extend(expired);
        index.forget(&self.redis, now, &gone).await?;
        Ok(gone.len())
    }
}

enum Fetched {
    Missing,
    Expired,
    Live(Box<SessionRecord>),
}

/// The store key hex at the end of a record key (`<prefix>:s:<hex>`).
fn member_of(record_key: &str) -> &str {
    record_key
        .rsplit_once(':')
        .map_or(record_key, |(_, member)| member)
}

fn parse(text: &str) -> Result<u64, StoreError> {
    text.parse().map_err(StoreError::corrupt)
}

fn user_args(invocation: &mut redis::ScriptInvocation<'_>, user_id: Option<&str>) {
    match user_id {
        Some(user) => invocation.arg("some").arg(user),
        None => invocation.arg("none").arg(""),
    };
}

/// When the session stops existing: its (idle) expiry, capped by the absolute deadline.
fn expiry(record: &SessionRecord) -> u64 {
    record.expires_at.min(record.absolute_expires_at)
}

fn entry<'a>(member: &'a str, record: &'a SessionRecord) -> Entry<'a> {
    Entry {
        member,
        expires_at: expiry(record),
        created_at: record.created_at,
        handle: &record.handle,
    }
}

impl SessionStore for RedisSessionStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let ticket = match &self.near {
            Some(near) => {
                if let Some(record) = self.near_hit(near, key, now) {
                    return Ok(Some(record));
                }
                near.reserve(key)
            }
            None => None,
        };
        let record_key = self.record_key(key);
        self.redis
            .bounded(async {
                Ok(match self.fetch_sized(&record_key, now).await? {
                    (Fetched::Live(record), json_len) => {
                        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
                            near.fill(ticket, &record, json_len);
                        }
                        Some(*record)
                    }
                    (Fetched::Missing | Fetched::Expired, _) => None,
                })
            })
            .await
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                let Some(user_id) = record.user_id.as_deref() else {
                    self.put(&record_key, record, now).await?;
                    return Ok(CreateOutcome::Created {
                        evicted: Vec::new(),
                    });
                };
                let index = self.index(user_id);
                let limit = limit.map(|limit| Limit {
                    max: limit.max,
                    refuse: limit.policy == LimitPolicy::RefuseNew,
                });
                let entry = entry(&member, record);
                // 1. The index first: a record never exists without its index entry.
                let mut added = index.add(&self.redis, now, &entry, limit).await?;
                if matches!(added, Added::Refused) && self.reap(&index, now).await? > 0 {
                    added = index.add(&self.redis, now, &entry, limit).await?;
                }
                let Added::Added { evicted, doomed } = added else {
                    return Ok(CreateOutcome::LimitReached);
                };
                // 2. The record.
                self.put(&record_key, record, now).await?;
                // 3. A logout-all that ran between 1 and 2 removed the entry before the record
                //    existed: finish its job rather than leave an unindexed session.
                if !index.contains(&self.redis, &member).await? {
                    self.delete_record(&record_key, now).await?;
                }
                // 4. Delete the evicted (and any left over) records, then their index entries.
                self.finish(&index, now, &doomed).await?;
                Ok(CreateOutcome::Created {
                    evicted: evicted.into_iter().map(|(_, handle)| handle).collect(),
                })
            })
            .await
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                // The index entry covers the new expiry before the record does.
                if let Some(user_id) = record.user_id.as_deref() {
                    self.index(user_id)
                        .bump(&self.redis, now, &entry(&member, record), true)
                        .await?;
                }
                let json = serde_json::to_string(record).map_err(StoreError::corrupt)?;
                let mut invocation = SAVE.key(&record_key);
                invocation
                    .arg(now)
                    .arg(expected_version)
                    .arg(json)
                    .arg(record.version)
                    .arg(record.expires_at)
                    .arg(record.absolute_expires_at)
                    .arg(record.last_seen_at);
                user_args(&mut invocation, record.user_id.as_deref());
                invocation.arg(ttl(expiry(record), now));
                self.publish_args(&mut invocation, &record_key);
                let result = self.redis.eval(&invocation).await;
                self.forget_locally(&record_key);
                let (status, previous): (String, String) = result?;
                match status.as_str() {
                    "saved" => {
                        // The session left its previous user: drop it from that index, now
                        // that the record no longer names them.
                        if let Some(previous) = previous.strip_prefix('=')
                            && record.user_id.as_deref() != Some(previous)
                        {
                            self.index(previous)
                                .forget(&self.redis, now, std::slice::from_ref(&member))
                                .await?;
                        }
                        Ok(SaveOutcome::Saved)
                    }
                    "conflict" => Ok(SaveOutcome::Conflict),
                    _ => {
                        // The record is gone (deleted or expired), but the bump above may have
                        // raised its index entry: drop it, or it would count against the
                        // user's session limit until the new expiry passes.
                        if let Some(user_id) = record.user_id.as_deref() {
                            self.index(user_id)
                                .forget(&self.redis, now, std::slice::from_ref(&member))
                                .await?;
                        }
                        Ok(SaveOutcome::Missing)
                    }
                }
            })
            .await
    }

    async fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                let fields: Vec<Option<String>> = self
                    .redis
                    .query(redis::cmd("HMGET").arg(&record_key).arg(&["e", "a", "u"]))
                    .await?;
                let mut fields = fields.into_iter();
                let (Some(stored_expiry), Some(absolute)) =
                    (fields.next().flatten(), fields.next().flatten())
                else {
                    return Ok(false);
                };
                let absolute = parse(&absolute)?;
                if parse(&stored_expiry)?.min(absolute) <= now {
                    return Ok(false);
                }
                // Raise the index score before the record's expiry, so the index never lets go
                // of a live session.
                if let Some(user_id) = fields.next().flatten() {
                    let entry = Entry {
                        member: &member,
                        expires_at: expires_at.min(absolute),
                        created_at: 0,
                        handle: "",
                    };
                    match self
                        .index(&user_id)
                        .bump(&self.redis, now, &entry, false)
                        .await?
                    {
                        Bumped::Held => {}
                        // A logout-all, revoke or eviction is deleting it: never extend it.
                        Bumped::Doomed => return Ok(false),
                        // Live but unindexed (an index write lost in a failover): index it
                        // again before extending it, or logout-all could never reach it.
                        Bumped::Absent => {
                            if !self.reindex(&user_id, &record_key, now, &entry).await? {
                                return Ok(false);
                            }
                        }
                    }
                }
                let mut invocation = TOUCH.key(&record_key);
                invocation.arg(now).arg(expires_at).arg(last_seen_at);
                self.publish_args(&mut invocation, &record_key);
                let result = self.redis.eval(&invocation).await;
                self.forget_locally(&record_key);
                let touched: i64 = result?;
                Ok(touched == 1)
            })
            .await
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let record_key = self.record_key(key);
        let member = key.to_hex();
        self.redis
            .bounded(async {
                // The record first: once it is gone, a leftover index entry is harmless.
                let (_, user) = self.delete_record(&record_key, now).await?;
                if let Some(user_id) = user {
                    self.index(&user_id)
                        .forget(&self.redis, now, std::slice::from_ref(&member))
                        .await?;
                }
                Ok(())
            })
            .await
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        self.redis
            .bounded(async {
                let (live, doomed) = index.list(&self.redis, now).await?;
                self.finish(&index, now, &doomed).await?;
                let fetched = try_join_all(live.iter().map(|(member, _)| async move {
                    self.fetch(&self.member_key(member), now).await
                }))
                .await?;
                let mut records = Vec::with_capacity(live.len());
                let mut gone = Vec::new();
                for ((member, created), fetched) in live.into_iter().zip(fetched) {
                    match fetched {
                        // A session that changed hands is listed under its new user only.
                        Fetched::Live(record) if record.user_id.as_deref() == Some(user_id) => {
                            records.push(*record);
                        }
                        Fetched::Missing if created.saturating_add(REAP_GRACE_SECS) <= now => {
                            gone.push(member);
                        }
                        _ => {}
                    }
                }
                index.forget(&self.redis, now, &gone).await?;
                records.sort_by(|a, b| (a.created_at, &a.handle).cmp(&(b.created_at, &b.handle)));
                Ok(records)
            })
            .await
    }

    async fn delete_by_handle(&self, user_id: &str, handle: &str) -> Result<bool, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        self.redis
            .bounded(async {
                let (found, doomed) = index.take_handle(&self.redis, now, handle).await?;
                let live = self.finish(&index, now, &doomed).await?;
                Ok(found.is_some_and(|found| {
                    doomed
                        .iter()
                        .zip(live)
                        .any(|(member, live)| live && *member == found)
                }))
            })
            .await
    }

    /// Each session is rewritten by the same compare-and-set as a save (so the index and
    /// expiry rules hold), retried when a concurrent save wins.
    async fn replace_user(&self, user_id: &str, user: &UserJson) -> Result<u64, StoreError> {
        const MAX_ATTEMPTS: usize = 8;
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        let (live, _) = self.redis.bounded(index.list(&self.redis, now)).await?;
        let mut rewritten = 0;
        for (member, _) in live {
            let Some(key) = StoreKey::from_hex(&member) else {
                continue;
            };
            let mut attempts = 0;
            loop {
                let Some(mut record) = self.load(&key).await? else {
                    break;
                };
                // A session that changed hands belongs to its new user now.
                if record.user_id.as_deref() != Some(user_id) {
                    break;
                }
                let expected = record.version;
                record.user = Some(user.clone());
                record.version = expected.wrapping_add(1);
                match self.save(&key, &record, expected).await? {
                    SaveOutcome::Saved => {
                        rewritten += 1;
                        break;
                    }
                    SaveOutcome::Missing => break,
                    SaveOutcome::Conflict => {
                        attempts += 1;
                        if attempts == MAX_ATTEMPTS {
                            // Fail closed: the caller must not report a change half made.
                            return Err(StoreError::unavailable(
                                "concurrent saves kept winning over a user replacement",
                            ));
                        }
                    }
                }
            }
        }
        Ok(rewritten)
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> Result<u64, StoreError> {
        let now = self.clock.unix_seconds();
        let index = self.index(user_id);
        let keep = keep.map(StoreKey::to_hex);
        self.redis
            .bounded(async {
                let doomed = index.take_all(&self.redis, now, keep.as_deref()).await?;
                let live = self.finish(&index, now, &doomed).await?;
                Ok(live.into_iter().filter(|live| *live).count() as u64)
            })
            .await
    }
}
