//! The in-memory [`RefreshStore`]: with the in-process feed
//! ([`InProcessFeed`](crate::InProcessFeed)), everything a single node needs, with no
//! infrastructure. Several nodes need a shared store and feed (Redis).

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use portcullis_core::{SharedClock, StoreError, SystemClock};

use crate::{CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, SessionLimit};

/// Default [`MemoryRefreshStore::max_sessions`].
const DEFAULT_MAX_SESSIONS: usize = 1_000_000;
/// Default [`MemoryRefreshStore::max_sessions_per_user`].
const DEFAULT_MAX_SESSIONS_PER_USER: usize = 100;

/// A [`RefreshStore`] in process memory: a map from session id to record plus a per-user
/// index. Clones share the same sessions.
///
/// Expired records (past [`RefreshRecord::expires_at`] by the store's clock) behave as absent
/// and are dropped when next touched or by [`MemoryRefreshStore::purge_expired`], which
/// [`HybridSessionsBuilder::build`](crate::HybridSessionsBuilder::build) runs every minute.
///
/// The store is bounded, so logins cannot grow it without limit (OWASP ASVS 5.0 V2.4 / 11.1.x,
/// bounded resources): at [`max_sessions`](MemoryRefreshStore::max_sessions) expired records
/// are purged first, then the session closest to expiry is evicted; a user past
/// [`max_sessions_per_user`](MemoryRefreshStore::max_sessions_per_user) loses their oldest
/// session. An evicted session cannot refresh; its access tokens live until they expire.
///
/// # Examples
///
/// ```
/// use portcullis_hybrid::MemoryRefreshStore;
///
/// let store = MemoryRefreshStore::new().max_sessions(10_000).max_sessions_per_user(20);
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRefreshStore {
    inner: Arc<Mutex<Sessions>>,
    clock: SharedClock,
    max_sessions: usize,
    max_per_user: usize,
}

#[derive(Debug, Default)]
struct Sessions {
    records: HashMap<String, RefreshRecord>,
    by_user: HashMap<String, Vec<String>>,
    /// Expiry of every record (lazily updated: an item whose record has moved on is skipped
    /// and requeued), to evict the session closest to expiry at the cap without a scan.
    expiry: BinaryHeap<Reverse<(u64, String)>>,
}

impl Sessions {
    /// The live record, dropping it if it has expired.
    fn live(&mut self, session_id: &str, now: u64) -> Option<&mut RefreshRecord> {
        let expired = self.records.get(session_id)?.expires_at() <= now;
        if expired {
            self.remove(session_id);
            return None;
        }
        self.records.get_mut(session_id)
    }

    fn insert(&mut self, record: RefreshRecord) {
        let session_id = record.session_id.clone();
        let user_id = record.user_id.clone();
        self.expiry
            .push(Reverse((record.expires_at(), session_id.clone())));
        if let Some(previous) = self.records.insert(session_id.clone(), record) {
            self.unindex(&previous.user_id, &session_id);
        }
        self.by_user.entry(user_id).or_default().push(session_id);
    }

    /// Replaces a stored record of the same user in place (a rotation).
    fn replace(&mut self, record: &RefreshRecord) {
        if let Some(stored) = self.records.get_mut(&record.session_id) {
            if stored.expires_at() != record.expires_at() {
                self.expiry
                    .push(Reverse((record.expires_at(), record.session_id.clone())));
            }
            *stored = record.clone();
        }
        self.compact_expiry();
    }

    fn remove(&mut self, session_id: &str) -> Option<RefreshRecord> {
        let record = self.records.remove(session_id)?;
        self.unindex(&record.user_id, session_id);
        Some(record)
    }

    fn unindex(&mut self, user_id: &str, session_id: &str) {
        if let Some(ids) = self.by_user.get_mut(user_id) {
            ids.retain(|id| id != session_id);
            if ids.is_empty() {
                self.by_user.remove(user_id);
            }
        }
    }

    fn user_sessions(&mut self, user_id: &str, now: u64) -> Vec<String> {
        let ids = self.by_user.get(user_id).cloned().unwrap_or_default();
        ids.into_iter()
            .filter(|id| self.live(id, now).is_some())
            .collect()
    }

    /// Drops every expired record; returns how many.
    fn purge(&mut self, now: u64) -> usize {
        let expired: Vec<String> = self
            .records
            .values()
            .filter(|record| record.expires_at() <= now)
            .map(|record| record.session_id.clone())
            .collect();
        for session_id in &expired {
            self.remove(session_id);
        }
        self.compact_expiry();
        expired.len()
    }

    /// Removes the session closest to expiry; `false` when there is none.
    fn evict_soonest(&mut self) -> bool {
        while let Some(Reverse((at, session_id))) = self.expiry.pop() {
            let Some(real) = self.records.get(&session_id).map(RefreshRecord::expires_at) else {
                continue;
            };
            if real != at {
                // Moved since this item was pushed: requeue it at its real expiry.
                self.expiry.push(Reverse((real, session_id)));
                continue;
            }
            self.remove(&session_id);
            return true;
        }
        false
    }

    /// Rebuilds the expiry queue when stale items outnumber live ones.
    fn compact_expiry(&mut self) {
        if self.expiry.len() > 2 * self.records.len() + 64 {
            self.expiry = self
                .records
                .values()
                .map(|record| Reverse((record.expires_at(), record.session_id.clone())))
                .collect();
        }
    }
}

impl Default for MemoryRefreshStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRefreshStore {
    /// An empty store on the system clock, holding at most 1,000,000 sessions and 100 per
    /// user.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            clock: Arc::new(SystemClock),
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_per_user: DEFAULT_MAX_SESSIONS_PER_USER,
        }
    }

    /// Judges expiry by `clock` (tests pass a [`ManualClock`](portcullis_core::ManualClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_hybrid::MemoryRefreshStore;
    ///
    /// let store = MemoryRefreshStore::new().with_clock(Arc::new(ManualClock::at_unix_seconds(1_000)));
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The most sessions the store holds (default 1,000,000, at least 1). At the cap, a new
    /// session first purges expired ones, then evicts the session closest to expiry.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = portcullis_hybrid::MemoryRefreshStore::new().max_sessions(50_000);
    /// ```
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// The most sessions one user holds (default 100, at least 1): a new login past it ends
    /// the user's oldest session.
    ///
    /// # Examples
    ///
    /// ```
    /// let store = portcullis_hybrid::MemoryRefreshStore::new().max_sessions_per_user(10);
    /// ```
    #[must_use]
    pub fn max_sessions_per_user(mut self, max: usize) -> Self {
        self.max_per_user = max.max(1);
        self
    }

    /// How many records the store holds, expired ones included until purged.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired record; returns how many. The hybrid builder runs it every minute.
    pub fn purge_expired(&self) -> usize {
        let now = self.clock.unix_seconds();
        self.lock().purge(now)
    }

    fn lock(&self) -> MutexGuard<'_, Sessions> {
        // The map is consistent after every statement, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RefreshStore for MemoryRefreshStore {
    async fn create(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        let now = self.clock.unix_seconds();
        // One lock for the count and the insert: two logins of one user cannot both squeeze
        // under the limit.
        let mut sessions = self.lock();
        let mut evicted = Vec::new();
        let mut live = sessions.user_sessions(&record.user_id, now);
        live.retain(|id| *id != record.session_id);
        // The application's limit, then the store's own bound on one user's sessions.
        let mut max = self.max_per_user;
        if let Some(limit) = limit {
            let wanted = usize::try_from(limit.max.max(1)).unwrap_or(usize::MAX);
            if live.len() >= wanted && limit.policy == LimitPolicy::RefuseNew {
                return Ok(CreateOutcome::LimitReached);
            }
            max = max.min(wanted);
        }
        if live.len() >= max {
            let mut aged: Vec<(u64, String)> = live
                .into_iter()
                .filter_map(|id| Some((sessions.records.get(&id)?.created_at, id)))
                .collect();
            aged.sort();
            let excess = aged.len() + 1 - max;
            for (_, id) in aged.into_iter().take(excess) {
                sessions.remove(&id);
                evicted.push(id);
            }
        }
        let mut at_capacity = 0_usize;
        if sessions.records.len() >= self.max_sessions
            && !sessions.records.contains_key(&record.session_id)
        {
            sessions.purge(now);
            while sessions.records.len() >= self.max_sessions && sessions.evict_soonest() {
                at_capacity += 1;
            }
        }
        sessions.insert(record.clone());
        drop(sessions);
        if at_capacity > 0 {
            tracing::warn!(
                evicted = at_capacity,
                "memory refresh store at its cap: ended the sessions closest to expiry"
            );
        }
        Ok(CreateOutcome::Created { evicted })
    }

    async fn load(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        Ok(self
            .lock()
            .live(session_id, now)
            .map(|record| record.clone()))
    }

    async fn compare_and_swap(
        &self,
        record: &RefreshRecord,
        expected_generation: u64,
    ) -> Result<bool, StoreError> {
        let now = self.clock.unix_seconds();
        let mut sessions = self.lock();
        match sessions.live(&record.session_id, now) {
            Some(stored) if stored.generation == expected_generation => {
                if stored.user_id == record.user_id {
                    sessions.replace(record);
                } else {
                    sessions.insert(record.clone());
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let mut sessions = self.lock();
        let record = sessions.remove(session_id);
        Ok(record.filter(|record| record.expires_at() > now))
    }

    async fn list_by_user(&self, user_id: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let mut sessions = self.lock();
        let mut records: Vec<RefreshRecord> = sessions
            .user_sessions(user_id, now)
            .iter()
            .filter_map(|id| sessions.records.get(id).cloned())
            .collect();
        records.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
        Ok(records)
    }

    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<RefreshRecord>, StoreError> {
        let now = self.clock.unix_seconds();
        let mut sessions = self.lock();
        let ids = sessions.user_sessions(user_id, now);
        let mut deleted: Vec<RefreshRecord> = ids
            .iter()
            .filter(|id| Some(id.as_str()) != keep)
            .filter_map(|id| sessions.remove(id))
            .collect();
        deleted.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
        Ok(deleted)
    }

    async fn purge_expired(&self) -> Result<usize, StoreError> {
        Ok(MemoryRefreshStore::purge_expired(self))
    }
}

/// Always ready: the sessions live in this process.
impl portcullis_core::Readiness for MemoryRefreshStore {
    async fn check(&self) -> Result<(), portcullis_core::NotReady> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
