//! The in-memory [`RefreshStore`] and the in-process [`RevocationFeed`]: everything a single
//! node needs, with no infrastructure. Several nodes need a shared store and feed (Redis).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use portcullis_core::{SharedClock, StoreError, SystemClock};

use crate::{
    CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, Revocation, RevocationFeed,
    RevocationList, SessionLimit,
};

/// A [`RefreshStore`] in process memory: a map from session id to record plus a per-user
/// index. Clones share the same sessions.
///
/// Expired records (past [`RefreshRecord::expires_at`] by the store's clock) behave as absent
/// and are dropped when next touched or by [`MemoryRefreshStore::purge_expired`].
///
/// # Examples
///
/// ```
/// use portcullis_hybrid::MemoryRefreshStore;
///
/// let store = MemoryRefreshStore::new();
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Debug, Clone)]
pub struct MemoryRefreshStore {
    inner: Arc<Mutex<Sessions>>,
    clock: SharedClock,
}

#[derive(Debug, Default)]
struct Sessions {
    records: HashMap<String, RefreshRecord>,
    by_user: HashMap<String, Vec<String>>,
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
        if let Some(previous) = self.records.insert(session_id.clone(), record) {
            self.unindex(&previous.user_id, &session_id);
        }
        self.by_user.entry(user_id).or_default().push(session_id);
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
}

impl Default for MemoryRefreshStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRefreshStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            clock: Arc::new(SystemClock),
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

    /// How many records the store holds, expired ones included until purged.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired record.
    pub fn purge_expired(&self) {
        let now = self.clock.unix_seconds();
        let mut sessions = self.lock();
        let expired: Vec<String> = sessions
            .records
            .values()
            .filter(|record| record.expires_at() <= now)
            .map(|record| record.session_id.clone())
            .collect();
        for session_id in expired {
            sessions.remove(&session_id);
        }
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
        if let Some(limit) = limit {
            let max = usize::try_from(limit.max.max(1)).unwrap_or(usize::MAX);
            let live = sessions.user_sessions(&record.user_id, now);
            if live.len() >= max {
                if limit.policy == LimitPolicy::RefuseNew {
                    return Ok(CreateOutcome::LimitReached);
                }
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
        }
        sessions.insert(record.clone());
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
                    *stored = record.clone();
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
}

/// A [`RevocationFeed`] within one process: a publication reaches every subscribed
/// [`RevocationList`] before `publish` returns. Clones share subscribers.
///
/// It keeps revocations still in force, so a list subscribed later catches up. Pair it with
/// [`MemoryRefreshStore`]; nodes that share a store need a shared feed too.
///
/// # Examples
///
/// ```
/// use portcullis_hybrid::{InProcessFeed, Revocation, RevocationFeed, RevocationList};
///
/// # tokio_test_block_on(async {
/// let feed = InProcessFeed::new();
/// let list = RevocationList::new();
/// feed.subscribe(list.clone()).await.unwrap();
/// feed.publish(&Revocation { session_id: "s1".into(), until: u64::MAX }).await.unwrap();
/// assert!(list.is_revoked("s1", 0));
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct InProcessFeed {
    inner: Arc<Mutex<Feed>>,
    clock: SharedClock,
}

#[derive(Debug, Default)]
struct Feed {
    subscribers: Vec<RevocationList>,
    in_force: RevocationList,
}

impl Default for InProcessFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl InProcessFeed {
    /// A feed with no subscriber, on the system clock.
    pub fn new() -> Self {
        Self {
            inner: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Judges which revocations are still in force by `clock`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_hybrid::InProcessFeed;
    ///
    /// let feed = InProcessFeed::new().with_clock(Arc::new(ManualClock::at_unix_seconds(1_000)));
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Feed> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl RevocationFeed for InProcessFeed {
    async fn publish(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let feed = self.lock();
        feed.in_force.purge_expired(now);
        feed.in_force.insert(revocation);
        for list in &feed.subscribers {
            list.insert(revocation);
        }
        Ok(())
    }

    async fn subscribe(&self, list: RevocationList) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let mut feed = self.lock();
        feed.in_force.purge_expired(now);
        for revocation in feed.in_force.snapshot() {
            list.insert(&revocation);
        }
        feed.subscribers.push(list);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use portcullis_core::{ManualClock, SecretToken};

    use super::*;

    fn record(session_id: &str, user_id: &str, created_at: u64, expires_at: u64) -> RefreshRecord {
        RefreshRecord {
            session_id: session_id.into(),
            user_id: user_id.into(),
            user: serde_json::json!({"user": user_id}),
            created_at,
            authenticated_at: created_at,
            refreshed_at: created_at,
            idle_expires_at: expires_at,
            absolute_expires_at: expires_at + 100,
            current_hash: SecretToken::generate().store_key(),
            previous: Vec::new(),
            generation: 0,
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn crud_index_and_expiry() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let store = MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()));
        store
            .create(&record("b", "alice", 1_001, 1_100), None)
            .await
            .unwrap();
        store
            .create(&record("a", "alice", 1_000, 2_000), None)
            .await
            .unwrap();
        store
            .create(&record("c", "bob", 1_000, 2_000), None)
            .await
            .unwrap();

        let listed: Vec<_> = store.list_by_user("alice").await.unwrap();
        let ids: Vec<_> = listed.iter().map(|r| r.session_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"], "oldest first");

        // Compare-and-swap succeeds once per generation.
        let mut next = listed[0].clone();
        next.generation = 1;
        assert!(store.compare_and_swap(&next, 0).await.unwrap());
        assert!(!store.compare_and_swap(&next, 0).await.unwrap());
        assert_eq!(store.load("a").await.unwrap().unwrap().generation, 1);
        assert!(
            !store
                .compare_and_swap(&record("zz", "x", 0, 5_000), 0)
                .await
                .unwrap()
        );

        // Expired records are absent everywhere.
        clock.advance(std::time::Duration::from_secs(100));
        assert!(store.load("b").await.unwrap().is_none());
        assert_eq!(store.list_by_user("alice").await.unwrap().len(), 1);
        let mut expired = record("b", "alice", 1_001, 1_100);
        expired.generation = 1;
        assert!(!store.compare_and_swap(&expired, 0).await.unwrap());

        let deleted = store.delete_by_user("alice", None).await.unwrap();
        assert_eq!(deleted.len(), 1);
        assert!(store.load("a").await.unwrap().is_none());
        assert_eq!(store.delete("c").await.unwrap().unwrap().user_id, "bob");
        assert!(store.delete("c").await.unwrap().is_none());
        store.purge_expired();
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn feed_reaches_existing_and_late_subscribers() {
        let clock = ManualClock::at_unix_seconds(1_000);
        let feed = InProcessFeed::new().with_clock(Arc::new(clock.clone()));
        let early = RevocationList::new();
        feed.subscribe(early.clone()).await.unwrap();
        for (session_id, until) in [("s1", 1_010), ("s2", 1_100)] {
            feed.publish(&Revocation {
                session_id: session_id.into(),
                until,
            })
            .await
            .unwrap();
        }
        assert!(early.is_revoked("s1", 1_005));
        clock.advance(std::time::Duration::from_secs(20));
        let late = RevocationList::new();
        feed.subscribe(late.clone()).await.unwrap();
        assert!(late.is_revoked("s2", 1_020));
        assert_eq!(late.len(), 1, "expired revocations are not replayed");
    }
}
