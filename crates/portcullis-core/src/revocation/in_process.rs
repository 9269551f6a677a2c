//! [`InProcessFeed`]: the [`RevocationFeed`] of a single process, for one node (or tests).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::{SharedClock, StoreError, SystemClock};

use super::{Revocation, RevocationFeed, RevocationList, UserRevocation};

/// A [`RevocationFeed`] within one process: a publication reaches every subscribed
/// [`RevocationList`] before `publish` returns. Clones share subscribers.
///
/// It keeps revocations still in force, so a list subscribed later catches up. Pair it with
/// an in-memory store; nodes that share a store need a shared feed too.
///
/// # Examples
///
/// ```
/// use portcullis_core::revocation::{InProcessFeed, Revocation, RevocationFeed, RevocationList};
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
    /// use portcullis_core::revocation::InProcessFeed;
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

    async fn publish_user(&self, revocation: &UserRevocation) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let feed = self.lock();
        feed.in_force.purge_expired(now);
        feed.in_force.insert_user(revocation);
        for list in &feed.subscribers {
            list.insert_user(revocation);
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
        for revocation in feed.in_force.user_snapshot() {
            list.insert_user(&revocation);
        }
        feed.subscribers.push(list);
        Ok(())
    }
}

/// Always ready: revocations never leave this process.
impl crate::Readiness for InProcessFeed {
    async fn check(&self) -> Result<(), crate::NotReady> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ManualClock;

    use super::*;

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
