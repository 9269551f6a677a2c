//! Revocation at the edge: revoked session ids are published on a feed, and every node keeps
//! them in a [`RevocationList`] until the longest access token of the session could have
//! expired, so a revoked access token is refused without a store read per request.

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
};

use portcullis_core::StoreError;
use serde::{Deserialize, Serialize};

/// One revoked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The revoked session id (the `sid` claim of its access tokens).
    pub session_id: String,
    /// Until when (Unix seconds) access tokens of this session may still be unexpired.
    pub until: u64,
}

/// Distributes revocations between nodes.
///
/// A feed must deliver every revocation to every subscribed node, including those published
/// while the node was disconnected, as long as they are still in force (`until` in the future).
pub trait RevocationFeed: Send + Sync + 'static {
    /// Publishes a revocation to every node, this one included.
    fn publish(
        &self,
        revocation: &Revocation,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Delivers into `list` every revocation still in force, and keeps delivering new ones in
    /// the background. Returns once the catch-up is complete, or, for a feed that keeps trying
    /// in the background while its backend is unreachable, once it has marked the list as not
    /// caught up ([`RevocationList::set_caught_up`]) until it is.
    fn subscribe(
        &self,
        list: RevocationList,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The revoked session ids a node knows of, each until its access tokens could have expired.
/// Clones share the same list.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    revoked: Arc<RwLock<HashMap<String, u64>>>,
    /// Set while the feed has not yet delivered every revocation in force.
    behind: Arc<AtomicBool>,
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a revocation (keeping the later deadline if the session is already listed).
    pub fn insert(&self, revocation: &Revocation) {
        let mut revoked = self
            .revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = revoked.entry(revocation.session_id.clone()).or_insert(0);
        *until = (*until).max(revocation.until);
    }

    /// Whether `session_id` is revoked at `now` (Unix seconds).
    pub fn is_revoked(&self, session_id: &str, now: u64) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(session_id)
            .is_some_and(|until| *until >= now)
    }

    /// Forgets revocations whose access tokens have all expired.
    pub fn purge_expired(&self, now: u64) {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, until| *until >= now);
    }

    /// Every listed revocation, for handing them on (a feed catching a late subscriber up).
    pub fn snapshot(&self) -> Vec<Revocation> {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(session_id, until)| Revocation {
                session_id: session_id.clone(),
                until: *until,
            })
            .collect()
    }

    /// Whether the list holds every revocation in force on its feed: true for a new list, and
    /// false from when a feed that could not reach its backend marks it so until that feed has
    /// caught up. The hybrid edge refuses access tokens with 503 while it is false: a
    /// revocation this node never heard of must not let a token in (fail closed). An
    /// application's readiness check can report it.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_hybrid::RevocationList;
    ///
    /// let list = RevocationList::new();
    /// assert!(list.is_caught_up());
    /// list.set_caught_up(false); // a feed whose backend is down at start-up
    /// assert!(!list.is_caught_up());
    /// ```
    pub fn is_caught_up(&self) -> bool {
        !self.behind.load(Ordering::Acquire)
    }

    /// For [`RevocationFeed`] implementations: marks the list as missing revocations
    /// (`false`), or as holding every revocation in force once they are all delivered (`true`).
    /// See [`RevocationList::is_caught_up`].
    pub fn set_caught_up(&self, caught_up: bool) {
        self.behind.store(!caught_up, Ordering::Release);
    }

    /// How many revocations are listed.
    pub fn len(&self) -> usize {
        self.revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no revocation is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_until_deadline_then_purged() {
        let list = RevocationList::new();
        list.insert(&Revocation {
            session_id: "s1".into(),
            until: 100,
        });
        list.insert(&Revocation {
            session_id: "s1".into(),
            until: 50,
        });
        assert!(list.is_revoked("s1", 100));
        assert!(!list.is_revoked("s1", 101));
        assert!(!list.is_revoked("s2", 0));
        list.purge_expired(101);
        assert!(list.is_empty());
    }
}
