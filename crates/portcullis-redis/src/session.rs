//! [`RedisSessionStore`]: the session-cookie layer's [`SessionStore`] on Redis or Redis Cluster.
//!
//! A session is a hash at `<prefix>:s:<store key hex>` with fields `r` (the record as JSON),
//! `v` (version), `e` (expires at), `a` (absolute deadline), `l` (last seen) and `u` (user id,
//! when signed in); the key expires with the session, at the earlier of `e` and `a`. `load` is one `HMGET`; `save` and `touch` are Lua scripts that
//! compare and write on that one key. A signed-in user's sessions are also indexed on the
//! user's slot (see the crate docs for the ordering between the two).

use std::sync::Arc;

use crate::near_cache::{NearCache, NearCacheConfig, NearCacheStats};

use futures_util::future::try_join_all;
use portcullis_core::{SharedClock, StoreError, StoreKey, SystemClock, UserJson};
use portcullis_session::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};

use crate::{
    connection::RedisConnection,
    index::{Added, Bumped, Cap, Entry, Limit, UserIndex, ttl},
};

/// How long a listed member whose record is missing is left alone, in case its record is
/// being written right now by a `create` (which writes the index first).
const REAP_GRACE_SECS: u64 = 60;

mod scripts;
mod store;

use scripts::{DELETE, PUT, SAVE, TOUCH};

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
