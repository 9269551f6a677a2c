//! The session near-cache: session records kept in this process, so a read-only request on a
//! session seen recently costs a hash lookup instead of a Redis round trip.
//!
//! What it never weakens:
//! - every write to a session (save, touch, logout, revoke, eviction, a role change) publishes
//!   the session's store key on `<prefix>:s:invalidate` from the same Lua script that writes,
//!   so no write can reach Redis without its invalidation; every node drops the entry when it
//!   hears it, the writing node before its write returns;
//! - an entry is trusted only while the invalidation subscription is proven alive: it is
//!   dropped with the whole cache when the subscription breaks, and a hit needs a heartbeat
//!   answered within the last two heartbeat intervals, so a silently stalled subscription
//!   (nothing closes) stops hits within that bound (OWASP Session Management Cheat Sheet,
//!   "Session Expiration": invalidation must take effect server-side);
//! - a read racing a write never caches the old record: a miss reserves its slot before it
//!   asks Redis, an invalidation removes the reservation, and the answer is kept only if the
//!   reservation survived;
//! - entries are found by the full 32-byte store key (the SHA-256 of the secret), so two
//!   sessions never share one; expiry is judged on every hit, as Redis' copy would be;
//! - memory is bounded by entries and bytes, and every entry by a maximum age.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use portcullis_core::StoreKey;
use portcullis_session::SessionRecord;

const SHARDS: usize = 16;
/// What an entry costs besides its record's JSON: the map slot, the record's fields, the
/// allocations' headers (measured by `bench`'s counting allocator, rounded up).
pub(crate) const ENTRY_OVERHEAD: usize = 256;
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);

/// The bounds and liveness checks of a [`RedisSessionStore`](crate::RedisSessionStore)'s
/// near-cache (see [`RedisSessionStore::near_cache`](crate::RedisSessionStore::near_cache)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_redis::NearCacheConfig;
///
/// let config = NearCacheConfig::new()
///     .max_entries(50_000)
///     .max_bytes(64 * 1024 * 1024)
///     .max_age(Duration::from_secs(10))
///     .heartbeat_interval(Duration::from_millis(500));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NearCacheConfig {
    max_entries: usize,
    max_bytes: usize,
    max_age: Duration,
    heartbeat_interval: Duration,
}

impl Default for NearCacheConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl NearCacheConfig {
    /// 10,000 sessions, 32 MiB, 30 seconds, a heartbeat every second.
    pub fn new() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 32 * 1024 * 1024,
            max_age: Duration::from_secs(30),
            heartbeat_interval: Duration::from_secs(1),
        }
    }

    /// The most sessions kept (default 10,000).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::NearCacheConfig::new().max_entries(1_000);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(SHARDS);
        self
    }

    /// The most bytes of records kept, as measured by their JSON plus a fixed overhead per
    /// entry (default 32 MiB). A record larger than a sixteenth of this is never cached.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::NearCacheConfig::new().max_bytes(8 << 20);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max.max(SHARDS * 4096);
        self
    }

    /// How long a record is served without reading Redis again, at most (default 30 s): a
    /// safety net under the invalidations, which normally end an entry within milliseconds.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::NearCacheConfig::new().max_age(std::time::Duration::from_secs(5));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// How often the invalidation subscription sends `PING`, which must answer within the
    /// same time (default 1 s, at least 100 ms). A hit needs an answer within the last two
    /// intervals, so a subscription that silently stalls stops serving hits within twice
    /// this interval, and the cache is dropped when it is found dead.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::NearCacheConfig::new()
    ///     .heartbeat_interval(std::time::Duration::from_millis(250));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(MIN_HEARTBEAT);
        self
    }

    pub(crate) fn heartbeat(&self) -> Duration {
        self.heartbeat_interval
    }
}

/// How a near-cache has done so far (see
/// [`RedisSessionStore::near_cache_stats`](crate::RedisSessionStore::near_cache_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearCacheStats {
    /// Loads answered from the cache.
    pub hits: u64,
    /// Loads that read Redis.
    pub misses: u64,
    /// Invalidation messages heard (and local writes), each dropping one entry.
    pub invalidations: u64,
    /// Times the whole cache was dropped because its subscription broke or stalled.
    pub drops: u64,
    /// Records held now.
    pub entries: usize,
    /// Bytes held now, as counted against [`NearCacheConfig::max_bytes`].
    pub bytes: usize,
    /// Whether the invalidation subscription is live and answered its last heartbeat.
    pub live: bool,
}

enum Slot {
    /// A miss is reading Redis; the number identifies it.
    Reserved(u64),
    Ready(Box<Entry>),
}

struct Entry {
    record: SessionRecord,
    cached_at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Shard {
    slots: HashMap<[u8; 32], Slot>,
    bytes: usize,
}

impl Shard {
    fn remove(&mut self, key: &[u8; 32]) {
        if let Some(Slot::Ready(entry)) = self.slots.remove(key) {
            self.bytes = self.bytes.saturating_sub(entry.bytes);
        }
    }
}

/// A reservation made by a miss, redeemed by [`NearCache::fill`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    key: [u8; 32],
    number: u64,
}

pub(crate) struct NearCache {
    config: NearCacheConfig,
    hasher: RandomState,
    shards: [Mutex<Shard>; SHARDS],
    /// Milliseconds since `origin` until which the subscription counts as alive.
    alive_until_ms: AtomicU64,
    origin: Instant,
    /// Whether the background subscription was spawned.
    started: AtomicBool,
    next_ticket: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    drops: AtomicU64,
}

impl NearCache {
    pub(crate) fn new(config: NearCacheConfig) -> Self {
        Self {
            config,
            hasher: RandomState::new(),
            shards: std::array::from_fn(|_| Mutex::default()),
            alive_until_ms: AtomicU64::new(0),
            origin: Instant::now(),
            started: AtomicBool::new(false),
            next_ticket: AtomicU64::new(1),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            drops: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> NearCacheConfig {
        self.config
    }

    /// True once: the caller spawns the subscription.
    pub(crate) fn claim_start(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }

    fn shard(&self, key: &[u8; 32]) -> &Mutex<Shard> {
        // The store key is already a uniform digest, but a keyed hash keeps a client from
        // choosing which shard it lands in.
        let hash = self.hasher.hash_one(key);
        #[allow(clippy::cast_possible_truncation)]
        let index = (hash as usize) % SHARDS;
        // `index < SHARDS`, so this never falls back.
        self.shards.get(index).unwrap_or(&self.shards[0])
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn is_live(&self) -> bool {
        self.now_ms() < self.alive_until_ms.load(Ordering::Acquire)
    }

    /// The subscription answered (or just caught up): trust entries for two more heartbeats.
    pub(crate) fn confirm_alive(&self) {
        let until = self.now_ms().saturating_add(
            u64::try_from(self.config.heartbeat_interval.as_millis() * 2).unwrap_or(u64::MAX),
        );
        self.alive_until_ms.store(until, Ordering::Release);
    }

    /// The subscription broke or stalled: nothing held can be trusted any more.
    pub(crate) fn drop_all(&self) {
        self.alive_until_ms.store(0, Ordering::Release);
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shard.slots.clear();
            shard.bytes = 0;
        }
        self.drops.fetch_add(1, Ordering::Relaxed);
    }

    /// The record under `key`, if cached, live at `now` (Unix seconds) and younger than the
    /// maximum age, and the subscription is alive.
    pub(crate) fn get(&self, key: &StoreKey, now: u64) -> Option<SessionRecord> {
        let found = if self.is_live() {
            let key = key.as_bytes();
            let mut shard = self
                .shard(key)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match shard.slots.get(key) {
                Some(Slot::Ready(entry))
                    if entry.cached_at.elapsed() < self.config.max_age
                        && entry
                            .record
                            .expires_at
                            .min(entry.record.absolute_expires_at)
                            > now =>
                {
                    Some(entry.record.clone())
                }
                Some(Slot::Ready(_)) => {
                    shard.remove(key);
                    None
                }
                _ => None,
            }
        } else {
            None
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Reserves `key`'s slot before a miss reads Redis; `None` while the subscription is not
    /// alive (nothing read now may be kept).
    pub(crate) fn reserve(&self, key: &StoreKey) -> Option<Ticket> {
        if !self.is_live() {
            return None;
        }
        let number = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let key = *key.as_bytes();
        let mut shard = self
            .shard(&key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        shard.remove(&key);
        shard.slots.insert(key, Slot::Reserved(number));
        Some(Ticket { key, number })
    }

    /// Keeps what a miss read, unless an invalidation (or a drop) came in since it reserved.
    /// `json_len` is the size of the record's JSON, which stands for its size in memory.
    pub(crate) fn fill(&self, ticket: Ticket, record: &SessionRecord, json_len: usize) {
        let bytes = json_len.saturating_add(ENTRY_OVERHEAD);
        let max_entries = self.config.max_entries / SHARDS;
        let max_bytes = self.config.max_bytes / SHARDS;
        let mut shard = self
            .shard(&ticket.key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !matches!(shard.slots.get(&ticket.key), Some(Slot::Reserved(number)) if *number == ticket.number)
        {
            return;
        }
        shard.slots.remove(&ticket.key);
        if bytes > max_bytes || !self.is_live() {
            return;
        }
        // Full: drop arbitrary entries (the map's order is keyed-random, so a client cannot
        // steer which), reservations included (their misses then keep nothing).
        while shard.slots.len() >= max_entries || shard.bytes.saturating_add(bytes) > max_bytes {
            let Some(victim) = shard.slots.keys().next().copied() else {
                break;
            };
            shard.remove(&victim);
        }
        shard.bytes = shard.bytes.saturating_add(bytes);
        shard.slots.insert(
            ticket.key,
            Slot::Ready(Box::new(Entry {
                record: record.clone(),
                cached_at: Instant::now(),
                bytes,
            })),
        );
    }

    /// Drops `key`'s entry or reservation: it changed somewhere.
    pub(crate) fn invalidate(&self, key: &[u8; 32]) {
        self.shard(key)
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> NearCacheStats {
        let (entries, bytes) = self.shards.iter().fold((0, 0), |(entries, bytes), shard| {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let ready = shard
                .slots
                .values()
                .filter(|slot| matches!(slot, Slot::Ready(_)))
                .count();
            (entries + ready, bytes + shard.bytes)
        });
        NearCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            entries,
            bytes,
            live: self.is_live(),
        }
    }
}

impl fmt::Debug for NearCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NearCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests;
