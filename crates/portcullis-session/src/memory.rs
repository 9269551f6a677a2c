//! [`MemoryStore`]: the embedded session store, for single-instance deployments and tests.
//!
//! Sessions live in N shards, each a `Mutex<HashMap>` keyed by the SHA-256 of the session
//! secret, so requests for different sessions rarely contend. Each shard keeps a min-heap of
//! expiry times: expired sessions are freed a few at a time on every write to the shard and by
//! [`MemoryStore::sweep_expired`] (run periodically by [`MemoryStore::spawn_sweeper`]), one
//! shard at a time, so there is never a global pause. The number of sessions is capped
//! ([`MemoryStoreConfig::max_sessions`]); at the cap an anonymous session is evicted first,
//! then one of the user holding the most sessions, so a flood evicts only its own.
//! A per-user index (sharded the same way) serves listings, revocation and per-user limits.
//!
//! Records are kept compactly (every string of a session in one allocation, the user and
//! auxiliary data as JSON text): about 400 bytes of heap per signed-in session at one million
//! sessions (see the crate documentation). The cap is enforced per shard, so a store at its
//! cap holds slightly fewer sessions than the configured maximum.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    fmt,
    hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState},
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use portcullis_core::{SharedClock, StoreError, StoreKey, SystemClock, UserJson};
use serde_json::{Map, Value};

use crate::store::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};

/// How many expired entries a write frees in passing from its own shard.
const SWEEP_ON_WRITE: usize = 8;
/// How many expired entries one lock acquisition of a background sweep frees at most, so a
/// shard is never held for long.
const SWEEP_BATCH: usize = 1024;

/// Settings of a [`MemoryStore`].
///
/// # Examples
///
/// ```
/// use portcullis_session::{MemoryStore, MemoryStoreConfig};
///
/// let store = MemoryStore::with_config(MemoryStoreConfig::default().max_sessions(10_000).shards(16));
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStoreConfig {
    max_sessions: usize,
    shards: usize,
    clock: SharedClock,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            max_sessions: 1_000_000,
            shards: 64,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for MemoryStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreConfig")
            .field("max_sessions", &self.max_sessions)
            .field("shards", &self.shards)
            .field("clock", &self.clock)
            .finish()
    }
}

impl MemoryStoreConfig {
    /// The most sessions the store holds (default 1,000,000); at the cap, creating a session
    /// evicts, in its shard, the anonymous session closest to expiry, or if there is none the
    /// one closest to expiry of the user holding the most sessions. Values below the shard count are raised
    /// to one session per shard.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::MemoryStoreConfig::default().max_sessions(50_000);
    /// ```
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// The number of shards (default 64, rounded up to a power of two).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::MemoryStoreConfig::default().shards(8);
    /// ```
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 1 << 16).next_power_of_two();
        self
    }

    /// The clock deciding expiry; tests pass a [`ManualClock`](portcullis_core::ManualClock)
    /// shared with the layer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let config = portcullis_session::MemoryStoreConfig::default().clock(Arc::new(clock));
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

/// The embedded, sharded, bounded in-memory session store. Cloning shares the same sessions.
///
/// # Examples
///
/// ```
/// use portcullis_session::{MemoryStore, SessionConfig, SessionLayer};
///
/// let store = MemoryStore::new();
/// let layer = SessionLayer::new(store.clone(), SessionConfig::default()).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Mutex<Shard>]>,
    users: Box<[Mutex<UserIndex>]>,
    user_hasher: RandomState,
    per_shard: usize,
    clock: SharedClock,
    evictions: AtomicU64,
}

type KeyMap = HashMap<StoreKey, Box<Entry>, BuildHasherDefault<KeyHasher>>;
/// A user's session keys, by user id.
type UserIndex = HashMap<Box<str>, Vec<StoreKey>>;

#[derive(Default)]
struct Shard {
    entries: KeyMap,
    /// (expiry, key): every live entry has an item no later than its expiry.
    expiry: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

/// A session kept compactly: its strings (handle, user id, user JSON, data JSON, user agent)
/// back to back in one allocation, boxed so the hash table's empty slots stay small.
struct Entry {
    text: Box<str>,
    /// Byte length of each part of `text`, [`ABSENT`] for `None`.
    lengths: [u32; PARTS],
    created_at: u64,
    authenticated_at: Option<u64>,
    last_seen_at: u64,
    expires_at: u64,
    absolute_expires_at: u64,
    version: u64,
    persistent: bool,
}

const PARTS: usize = 5;
const ABSENT: u32 = u32::MAX;
const HANDLE: usize = 0;
const USER_ID: usize = 1;
const USER: usize = 2;
const DATA: usize = 3;
const USER_AGENT: usize = 4;

/// Keys are SHA-256 digests of random secrets that only this process generates, so their
/// first bytes are already a uniform hash: no need for SipHash (and no flooding risk, since
/// clients cannot choose which keys are inserted).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        for (slot, byte) in word.iter_mut().zip(bytes) {
            *slot = *byte;
        }
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _: usize) {
        // The length prefix of the digest is always 32: it carries no information.
    }
}

fn to_json_text(value: &impl serde::Serialize) -> Result<Box<str>, StoreError> {
    serde_json::to_string(value)
        .map(String::into_boxed_str)
        .map_err(StoreError::corrupt)
}

impl Entry {
    fn from_record(record: &SessionRecord) -> Result<Box<Self>, StoreError> {
        let user = record.user.as_ref().map(UserJson::as_str);
        let data = if record.data.is_empty() {
            None
        } else {
            Some(to_json_text(&record.data)?)
        };
        let parts: [Option<&str>; PARTS] = [
            Some(record.handle.as_str()),
            record.user_id.as_deref(),
            user,
            data.as_deref(),
            record.user_agent.as_deref(),
        ];
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let mut lengths = [ABSENT; PARTS];
        for (length, part) in lengths.iter_mut().zip(parts) {
            if let Some(part) = part {
                *length = u32::try_from(part.len())
                    .ok()
                    .filter(|&n| n != ABSENT)
                    .ok_or_else(|| StoreError::corrupt("a session record part exceeds 4 GiB"))?;
                text.push_str(part);
            }
        }
        Ok(Box::new(Self {
            text: text.into_boxed_str(),
            lengths,
            created_at: record.created_at,
            authenticated_at: record.authenticated_at,
            last_seen_at: record.last_seen_at,
            expires_at: record.expires_at,
            absolute_expires_at: record.absolute_expires_at,
            version: record.version,
            persistent: record.persistent,
        }))
    }

    fn part(&self, index: usize) -> Option<&str> {
        let length = *self.lengths.get(index)?;
        if length == ABSENT {
            return None;
        }
        let start: usize = self
            .lengths
            .get(..index)?
            .iter()
            .filter(|&&n| n != ABSENT)
            .map(|&n| n as usize)
            .sum();
        self.text.get(start..start + length as usize)
    }

    fn handle(&self) -> &str {
        self.part(HANDLE).unwrap_or_default()
    }

    fn user_id(&self) -> Option<&str> {
        self.part(USER_ID)
    }

    fn to_record(&self) -> Result<SessionRecord, StoreError> {
        let user = match self.part(USER) {
            Some(text) => Some(UserJson::from_text(text).map_err(StoreError::corrupt)?),
            None => None,
        };
        let data = match self.part(DATA) {
            Some(text) => {
                serde_json::from_str::<Map<String, Value>>(text).map_err(StoreError::corrupt)?
            }
            None => Map::new(),
        };
        Ok(SessionRecord {
            handle: self.handle().to_owned(),
            user_id: self.user_id().map(str::to_owned),
            user,
            data,
            created_at: self.created_at,
            authenticated_at: self.authenticated_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            absolute_expires_at: self.absolute_expires_at,
            user_agent: self.part(USER_AGENT).map(str::to_owned),
            persistent: self.persistent,
            version: self.version,
        })
    }

    fn is_live(&self, now: u64) -> bool {
        self.expires_at > now && self.absolute_expires_at > now
    }
}

/// A session removed from a key shard whose user index entry must be dropped once no shard
/// lock is held (lock order: user shard, then key shard).
type Orphan = (Box<str>, StoreKey);

impl Shard {
    /// Frees up to `budget` expired entries; returns the user-index entries to drop.
    fn sweep(&mut self, now: u64, budget: usize, orphans: &mut Vec<Orphan>) -> usize {
        let mut freed = 0;
        while freed < budget {
            let Some(Reverse((at, bytes))) = self.expiry.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            self.expiry.pop();
            let key = StoreKey::from_bytes(bytes);
            match self.entries.get(&key) {
                None => {}
                Some(entry) if entry.is_live(now) => {
                    let real = entry.expires_at.min(entry.absolute_expires_at);
                    self.expiry.push(Reverse((real, bytes)));
                }
                Some(_) => {
                    if let Some(entry) = self.entries.remove(&key)
                        && let Some(user_id) = entry.user_id().map(Box::from)
                    {
                        orphans.push((user_id, key));
                    }
                    freed += 1;
                }
            }
        }
        self.compact_heap();
        freed
    }

    /// Removes one live entry to make room at the cap, chosen so that whoever creates
    /// sessions fastest evicts their own: anonymous sessions first (they cost an attacker
    /// nothing to make), then the sessions of the user holding the most in this shard; within
    /// either, the one closest to expiry. A flood of anonymous requests, or one account signing
    /// in again and again, never pushes other users' sessions out (OWASP Session Management
    /// Cheat Sheet, "Session ID Life Cycle": the store must not let one client end others'
    /// sessions).
    fn evict_one(&mut self, orphans: &mut Vec<Orphan>) -> bool {
        let mut anonymous: Option<(u64, StoreKey)> = None;
        // Per user: (sessions in this shard, soonest expiry, its key).
        let mut users: HashMap<&str, (usize, u64, StoreKey)> = HashMap::new();
        for (key, entry) in &self.entries {
            let expiry = entry.expires_at.min(entry.absolute_expires_at);
            match entry.user_id() {
                None => {
                    if anonymous.is_none_or(|(soonest, _)| expiry < soonest) {
                        anonymous = Some((expiry, *key));
                    }
                }
                Some(user_id) => {
                    let slot = users.entry(user_id).or_insert((0, expiry, *key));
                    slot.0 += 1;
                    if expiry < slot.1 {
                        (slot.1, slot.2) = (expiry, *key);
                    }
                }
            }
        }
        let victim = anonymous.map(|(_, key)| key).or_else(|| {
            users
                .values()
                .max_by_key(|(count, expiry, _)| (*count, Reverse(*expiry)))
                .map(|(_, _, key)| *key)
        });
        let Some(key) = victim else {
            return false;
        };
        if let Some(entry) = self.entries.remove(&key)
            && let Some(user_id) = entry.user_id().map(Box::from)
        {
            orphans.push((user_id, key));
        }
        true
    }

    /// Deleted sessions leave their heap items behind; rebuild the heap when they dominate.
    fn compact_heap(&mut self) {
        if self.expiry.len() > 2 * self.entries.len() + 64 {
            self.expiry = self
                .entries
                .iter()
                .map(|(key, entry)| {
                    Reverse((
                        entry.expires_at.min(entry.absolute_expires_at),
                        *key.as_bytes(),
                    ))
                })
                .collect();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard leaves it consistent (every mutation is a single map
    // operation), so a poisoned lock is still safe to use.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.inner.shards.len())
            .field("per_shard", &self.inner.per_shard)
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// A store with the default settings: 64 shards, at most 1,000,000 sessions, system clock.
    pub fn new() -> Self {
        Self::with_config(MemoryStoreConfig::default())
    }

    /// A store with the given settings.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        let shards = config.shards.max(1).next_power_of_two();
        let per_shard = config.max_sessions.div_ceil(shards).max(1);
        Self {
            inner: Arc::new(Inner {
                shards: (0..shards).map(|_| Mutex::default()).collect(),
                users: (0..shards).map(|_| Mutex::default()).collect(),
                user_hasher: RandomState::new(),
                per_shard,
                clock: config.clock,
                evictions: AtomicU64::new(0),
            }),
        }
    }

    /// The number of sessions held, including expired ones not yet swept.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| lock(shard).entries.len())
            .sum()
    }

    /// Whether the store holds no sessions at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many live sessions were evicted because the store was full.
    pub fn evictions(&self) -> u64 {
        self.inner.evictions.load(Ordering::Relaxed)
    }

    /// Frees every expired session, one shard (and at most a batch) at a time, so concurrent
    /// requests wait at most for one small batch. Returns how many were freed.
    pub fn sweep_expired(&self) -> usize {
        self.inner.sweep_all()
    }

    /// Runs [`MemoryStore::sweep_expired`] every `period` on the current tokio runtime, until
    /// every clone of the store is dropped.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn spawn_sweeper(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(period.max(Duration::from_millis(10)));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let freed = inner.sweep_all();
                if freed > 0 {
                    tracing::debug!(freed, "swept expired sessions");
                }
            }
        })
    }
}

impl Inner {
    fn now(&self) -> u64 {
        self.clock.unix_seconds()
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "the index is masked by len - 1 of a non-empty power-of-two table"
    )]
    fn shard(&self, key: &StoreKey) -> &Mutex<Shard> {
        let mut word = [0u8; 8];
        for (slot, byte) in word.iter_mut().zip(key.as_bytes().iter().skip(8)) {
            *slot = *byte;
        }
        let index = (u64::from_le_bytes(word) as usize) & (self.shards.len() - 1);
        &self.shards[index]
    }

    #[allow(
        clippy::indexing_slicing,
        reason = "the index is masked by len - 1 of a non-empty power-of-two table"
    )]
    fn user_shard(&self, user_id: &str) -> &Mutex<UserIndex> {
        let index = (self.user_hasher.hash_one(user_id) as usize) & (self.users.len() - 1);
        &self.users[index]
    }

    fn unindex(&self, orphans: Vec<Orphan>) {
        for (user_id, key) in orphans {
            let mut users = lock(self.user_shard(&user_id));
            if let Some(keys) = users.get_mut(&*user_id) {
                keys.retain(|k| *k != key);
                if keys.is_empty() {
                    users.remove(&*user_id);
                }
            }
        }
    }

    fn sweep_all(&self) -> usize {
        let mut total = 0;
        for shard in &*self.shards {
            loop {
                let mut orphans = Vec::new();
                let freed = lock(shard).sweep(self.now(), SWEEP_BATCH, &mut orphans);
                self.unindex(orphans);
                total += freed;
                if freed < SWEEP_BATCH {
                    break;
                }
            }
        }
        total
    }

    /// Inserts a new entry into its shard, making room at the cap; returns orphans to unindex.
    fn insert(&self, key: &StoreKey, entry: Box<Entry>, now: u64, orphans: &mut Vec<Orphan>) {
        let mut shard = lock(self.shard(key));
        shard.sweep(now, SWEEP_ON_WRITE, orphans);
        if shard.entries.len() >= self.per_shard && !shard.entries.contains_key(key) {
            shard.sweep(now, usize::MAX, orphans);
            while shard.entries.len() >= self.per_shard {
                if !shard.evict_one(orphans) {
                    break;
                }
                self.evictions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "memory session store is full: evicted an anonymous session, or one of the user holding the most"
                );
            }
        }
        let expiry = entry.expires_at.min(entry.absolute_expires_at);
        shard.expiry.push(Reverse((expiry, *key.as_bytes())));
        shard.entries.insert(*key, entry);
    }

    /// The user's live keys with their records' creation times, pruning dead index entries.
    fn live_keys(&self, keys: &mut Vec<StoreKey>, now: u64) -> Vec<(StoreKey, u64)> {
        let mut live = Vec::with_capacity(keys.len());
        keys.retain(|key| {
            let shard = lock(self.shard(key));
            match shard.entries.get(key) {
                Some(entry) if entry.is_live(now) => {
                    live.push((*key, entry.created_at));
                    true
                }
                _ => false,
            }
        });
        live
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.inner.now();
        let shard = lock(self.inner.shard(key));
        match shard.entries.get(key) {
            Some(entry) if entry.is_live(now) => entry.to_record().map(Some),
            _ => Ok(None),
        }
    }

    async fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        let entry = Entry::from_record(record)?;
        let now = self.inner.now();
        let mut orphans = Vec::new();
        let mut evicted = Vec::new();
        match &record.user_id {
            None => self.inner.insert(key, entry, now, &mut orphans),
            Some(user_id) => {
                // The user shard stays locked until the new key is indexed, so two logins of
                // one user cannot both squeeze under the limit.
                let mut users = lock(self.inner.user_shard(user_id));
                let keys = users.entry(user_id.as_str().into()).or_default();
                if let Some(limit) = limit {
                    let mut live = self.inner.live_keys(keys, now);
                    let max = usize::try_from(limit.max.max(1)).unwrap_or(usize::MAX);
                    if live.len() >= max {
                        if limit.policy == LimitPolicy::RefuseNew {
                            if keys.is_empty() {
                                users.remove(user_id.as_str());
                            }
                            return Ok(CreateOutcome::LimitReached);
                        }
                        live.sort_by_key(|&(_, created_at)| created_at);
                        let excess = live.len() + 1 - max;
                        for (old, _) in live.into_iter().take(excess) {
                            if let Some(entry) = lock(self.inner.shard(&old)).entries.remove(&old) {
                                evicted.push(entry.handle().to_owned());
                            }
                            keys.retain(|k| *k != old);
                        }
                    }
                }
                keys.push(*key);
                self.inner.insert(key, entry, now, &mut orphans);
            }
        }
        self.inner.unindex(orphans);
        Ok(CreateOutcome::Created { evicted })
    }

    async fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        let mut new_entry = Entry::from_record(record)?;
        let now = self.inner.now();
        let previous_user = {
            let mut shard = lock(self.inner.shard(key));
            let Some(entry) = shard.entries.get_mut(key).filter(|e| e.is_live(now)) else {
                return Ok(SaveOutcome::Missing);
            };
            if entry.version != expected_version {
                return Ok(SaveOutcome::Conflict);
            }
            if entry.user_id() == new_entry.user_id() {
                let old_expiry = entry.expires_at.min(entry.absolute_expires_at);
                let new_expiry = new_entry.expires_at.min(new_entry.absolute_expires_at);
                *entry = new_entry;
                if new_expiry < old_expiry {
                    shard.expiry.push(Reverse((new_expiry, *key.as_bytes())));
                }
                return Ok(SaveOutcome::Saved);
            }
            entry.user_id().map(Box::<str>::from)
        };
        // The record moves to another user: take the locks in order (user, then key) and
        // check the version again.
        let outcome = {
            let mut users = record
                .user_id
                .as_deref()
                .map(|u| lock(self.inner.user_shard(u)));
            let mut shard = lock(self.inner.shard(key));
            match shard.entries.get_mut(key).filter(|e| e.is_live(now)) {
                None => SaveOutcome::Missing,
                Some(entry)
                    if entry.version != expected_version
                        || entry.user_id() != previous_user.as_deref() =>
                {
                    SaveOutcome::Conflict
                }
                Some(entry) => {
                    std::mem::swap(entry, &mut new_entry);
                    if let (Some(users), Some(user_id)) = (users.as_mut(), &record.user_id) {
                        users.entry(user_id.as_str().into()).or_default().push(*key);
                    }
                    let expiry = entry.expires_at.min(entry.absolute_expires_at);
                    shard.expiry.push(Reverse((expiry, *key.as_bytes())));
                    SaveOutcome::Saved
                }
            }
        };
        if outcome == SaveOutcome::Saved
            && let Some(previous) = previous_user
        {
            self.inner.unindex(vec![(previous, *key)]);
        }
        Ok(outcome)
    }

    async fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        let now = self.inner.now();
        let mut shard = lock(self.inner.shard(key));
        let mut orphans = Vec::new();
        shard.sweep(now, SWEEP_ON_WRITE, &mut orphans);
        let touched = match shard.entries.get_mut(key).filter(|e| e.is_live(now)) {
            None => false,
            Some(entry) => {
                let old_expiry = entry.expires_at.min(entry.absolute_expires_at);
                entry.last_seen_at = last_seen_at;
                entry.expires_at = expires_at;
                let new_expiry = entry.expires_at.min(entry.absolute_expires_at);
                if new_expiry < old_expiry {
                    shard.expiry.push(Reverse((new_expiry, *key.as_bytes())));
                }
                true
            }
        };
        drop(shard);
        self.inner.unindex(orphans);
        Ok(touched)
    }

    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        let removed = lock(self.inner.shard(key)).entries.remove(key);
        if let Some(user_id) = removed.and_then(|entry| entry.user_id().map(Box::from)) {
            self.inner.unindex(vec![(user_id, *key)]);
        }
        Ok(())
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let now = self.inner.now();
        let mut users = lock(self.inner.user_shard(user_id));
        let Some(keys) = users.get_mut(user_id) else {
            return Ok(Vec::new());
        };
        let mut records = Vec::with_capacity(keys.len());
        let mut failure = None;
        keys.retain(|key| {
            let shard = lock(self.inner.shard(key));
            match shard.entries.get(key) {
                Some(entry) if entry.is_live(now) => {
                    match entry.to_record() {
                        Ok(record) => records.push(record),
                        Err(error) => failure = Some(error),
                    }
                    true
                }
                _ => false,
            }
        });
        if keys.is_empty() {
            users.remove(user_id);
        }
        if let Some(error) = failure {
            return Err(error);
        }
        records.sort_by_key(|record| record.created_at);
        Ok(records)
    }

    async fn replace_user(&self, user_id: &str, user: &UserJson) -> Result<u64, StoreError> {
        let now = self.inner.now();
        // The user's index lock keeps logins and moves of this user out while we rewrite.
        let users = lock(self.inner.user_shard(user_id));
        let Some(keys) = users.get(user_id) else {
            return Ok(0);
        };
        let mut rewritten = 0;
        for key in keys {
            let mut shard = lock(self.inner.shard(key));
            let Some(entry) = shard.entries.get_mut(key).filter(|e| e.is_live(now)) else {
                continue;
            };
            if entry.user_id() != Some(user_id) {
                continue;
            }
            let mut record = entry.to_record()?;
            record.user = Some(user.clone());
            record.version = record.version.wrapping_add(1);
            // Same expiry: the expiry heap needs no new item.
            *entry = Entry::from_record(&record)?;
            rewritten += 1;
        }
        Ok(rewritten)
    }

    async fn delete_by_handle(&self, user_id: &str, handle: &str) -> Result<bool, StoreError> {
        let now = self.inner.now();
        let mut users = lock(self.inner.user_shard(user_id));
        let Some(keys) = users.get_mut(user_id) else {
            return Ok(false);
        };
        let mut found = false;
        keys.retain(|key| {
            let mut shard = lock(self.inner.shard(key));
            let matches = match shard.entries.get(key) {
                None => return false,
                Some(entry) => !found && entry.is_live(now) && entry.handle() == handle,
            };
            if matches {
                shard.entries.remove(key);
                found = true;
            }
            !matches
        });
        if keys.is_empty() {
            users.remove(user_id);
        }
        Ok(found)
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> Result<u64, StoreError> {
        let now = self.inner.now();
        let mut users = lock(self.inner.user_shard(user_id));
        let Some(keys) = users.get_mut(user_id) else {
            return Ok(0);
        };
        let mut deleted = 0;
        keys.retain(|key| {
            if keep == Some(key) {
                return true;
            }
            if let Some(entry) = lock(self.inner.shard(key)).entries.remove(key)
                && entry.is_live(now)
            {
                deleted += 1;
            }
            false
        });
        if keys.is_empty() {
            users.remove(user_id);
        }
        Ok(deleted)
    }
}

/// Always ready: the sessions live in this process.
impl portcullis_core::Readiness for MemoryStore {
    async fn check(&self) -> Result<(), portcullis_core::NotReady> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::{ManualClock, SecretToken, random_handle};

    use super::*;

    fn record(user: Option<&str>, now: u64, ttl: u64) -> SessionRecord {
        SessionRecord {
            handle: random_handle(),
            user_id: user.map(str::to_owned),
            user: user.map(|u| UserJson::new(&serde_json::json!({ "user": u })).unwrap()),
            data: Map::new(),
            created_at: now,
            authenticated_at: user.map(|_| now),
            last_seen_at: now,
            expires_at: now + ttl,
            absolute_expires_at: now + ttl * 10,
            user_agent: Some("test".into()),
            persistent: false,
            version: 0,
        }
    }

    fn store(clock: &ManualClock, max: usize, shards: usize) -> MemoryStore {
        MemoryStore::with_config(
            MemoryStoreConfig::default()
                .clock(Arc::new(clock.clone()))
                .max_sessions(max)
                .shards(shards),
        )
    }

    #[tokio::test]
    async fn expired_sessions_are_absent_and_swept() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let store = store(&clock, 1_000, 4);
        let mut keys = Vec::new();
        for _ in 0..100 {
            let key = SecretToken::generate().store_key();
            store
                .create(&key, &record(Some("u1"), 1_000, 10), None)
                .await
                .unwrap();
            keys.push(key);
        }
        assert!(store.load(&keys[0]).await.unwrap().is_some());
        // Keep one alive by touching it.
        clock.advance(Duration::from_secs(5));
        assert!(store.touch(&keys[0], 1_005, 1_015).await.unwrap());
        clock.advance(Duration::from_secs(6));
        assert!(store.load(&keys[1]).await.unwrap().is_none());
        assert_eq!(store.len(), 100, "nothing swept yet");
        assert_eq!(store.sweep_expired(), 99);
        assert_eq!(store.len(), 1);
        assert!(store.load(&keys[0]).await.unwrap().is_some());
        assert_eq!(store.list_by_user("u1").await.unwrap().len(), 1);
        let users: usize = store
            .inner
            .users
            .iter()
            .map(|u| lock(u).values().map(Vec::len).sum::<usize>())
            .sum();
        assert_eq!(users, 1, "the user index forgets swept sessions");
    }

    #[tokio::test]
    async fn the_cap_evicts_the_session_closest_to_expiry() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let store = store(&clock, 4, 1);
        let mut keys = Vec::new();
        for ttl in [50, 10, 40, 30] {
            let key = SecretToken::generate().store_key();
            store
                .create(&key, &record(None, 1_000, ttl), None)
                .await
                .unwrap();
            keys.push(key);
        }
        let newcomer = SecretToken::generate().store_key();
        store
            .create(&newcomer, &record(None, 1_000, 60), None)
            .await
            .unwrap();
        assert_eq!(store.len(), 4);
        assert_eq!(store.evictions(), 1);
        assert!(
            store.load(&keys[1]).await.unwrap().is_none(),
            "ttl 10 goes first"
        );
        assert!(store.load(&newcomer).await.unwrap().is_some());
    }

    /// Issue 18: eviction at the cap favoured whoever created sessions fastest. A flood of
    /// anonymous sessions, or one account signing in again and again, must evict only its own.
    #[tokio::test]
    async fn a_flood_at_the_cap_evicts_only_its_own_sessions() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let store = store(&clock, 6, 1);
        // Real users, idle and close to expiry.
        let mut users = Vec::new();
        for user in ["alice", "bob"] {
            let key = SecretToken::generate().store_key();
            store
                .create(&key, &record(Some(user), 1_000, 5), None)
                .await
                .unwrap();
            users.push(key);
        }
        // An anonymous flood with fresh, long expiries.
        for _ in 0..100 {
            let key = SecretToken::generate().store_key();
            store
                .create(&key, &record(None, 1_000, 3_600), None)
                .await
                .unwrap();
        }
        for key in &users {
            assert!(
                store.load(key).await.unwrap().is_some(),
                "a user was evicted"
            );
        }
        // One account signing in over and over.
        for _ in 0..100 {
            let key = SecretToken::generate().store_key();
            store
                .create(&key, &record(Some("mallory"), 1_000, 3_600), None)
                .await
                .unwrap();
        }
        for key in &users {
            assert!(
                store.load(key).await.unwrap().is_some(),
                "a user was evicted"
            );
        }
        assert_eq!(store.len(), 6);
        assert!(store.evictions() >= 196);
    }

    #[tokio::test]
    async fn deleted_sessions_do_not_grow_the_heap_without_bound() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let store = store(&clock, 1_000, 1);
        for _ in 0..10_000 {
            let key = SecretToken::generate().store_key();
            store
                .create(&key, &record(None, 1_000, 1_000), None)
                .await
                .unwrap();
            store.delete(&key).await.unwrap();
        }
        let heap = lock(&store.inner.shards[0]).expiry.len();
        assert!(heap < 200, "heap holds {heap} stale items");
    }
}
