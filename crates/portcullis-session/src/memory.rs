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
    collections::HashMap,
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex, MutexGuard, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use portcullis_core::{SharedClock, StoreError, StoreKey, UserJson};

use crate::store::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};

/// How many expired entries a write frees in passing from its own shard.
const SWEEP_ON_WRITE: usize = 8;
/// How many expired entries one lock acquisition of a background sweep frees at most, so a
/// shard is never held for long.
const SWEEP_BATCH: usize = 1024;

mod config;
mod entry;
mod shard;

pub use config::MemoryStoreConfig;
use entry::Entry;
use shard::{Orphan, Shard};

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

/// A user's session keys, by user id.
type UserIndex = HashMap<Box<str>, Vec<StoreKey>>;

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
mod tests;
