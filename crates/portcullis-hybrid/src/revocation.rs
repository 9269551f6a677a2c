//! Revocation at the edge: revoked session ids are published on a feed, and every node keeps
//! them in a [`RevocationList`] until the longest access token of the session could have
//! expired, so a revoked access token is refused without a store read per request.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, RwLock},
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

/// The session-id prefix of a user-change mark: `~user:<changed_at>:<user_id>`. Session ids are
/// URL-safe base64 and never contain `~`, so a mark cannot be mistaken for a session. Marks
/// travel on the same feed as session revocations, so every feed carries them unchanged.
// Role change (issue 14). Unify with the per-user "not before" entry of logout-all at merge:
// both refuse a user's access tokens issued up to a given second.
const USER_MARK_PREFIX: &str = "~user:";

impl Revocation {
    /// A mark refusing every access token of `user_id` issued at or before `changed_at` (Unix
    /// seconds), in force until `until`, when all of them have expired. Published when the
    /// user's roles change: the edge refuses their older tokens, and a refresh mints new ones
    /// from the updated session.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_hybrid::{Revocation, RevocationList};
    ///
    /// let list = RevocationList::new();
    /// list.insert(&Revocation::user_changed("alice", 100, 700));
    /// assert_eq!(list.user_changed_at("alice", 200), Some(100));
    /// assert_eq!(list.user_changed_at("alice", 701), None);
    /// assert!(!list.is_revoked("alice", 200));
    /// ```
    pub fn user_changed(user_id: &str, changed_at: u64, until: u64) -> Self {
        Self {
            session_id: format!("{USER_MARK_PREFIX}{changed_at}:{user_id}"),
            until,
        }
    }

    /// `(changed_at, user_id)` when this is a user-change mark.
    fn as_user_mark(&self) -> Option<(u64, &str)> {
        let (changed_at, user_id) = self
            .session_id
            .strip_prefix(USER_MARK_PREFIX)?
            .split_once(':')?;
        Some((changed_at.parse().ok()?, user_id))
    }
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
    /// the background. Returns once the catch-up is complete.
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
    /// User-change marks: user id → (changed at, in force until).
    changed_users: Arc<RwLock<HashMap<String, (u64, u64)>>>,
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a revocation (keeping the later deadline if the session is already listed).
    pub fn insert(&self, revocation: &Revocation) {
        if let Some((changed_at, user_id)) = revocation.as_user_mark() {
            let mut users = self
                .changed_users
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mark = users.entry(user_id.to_owned()).or_insert((0, 0));
            *mark = (mark.0.max(changed_at), mark.1.max(revocation.until));
            return;
        }
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

    /// The last time (Unix seconds) the user changed, while access tokens issued before it
    /// may still be unexpired: the edge refuses the user's tokens issued at or before it.
    pub fn user_changed_at(&self, user_id: &str, now: u64) -> Option<u64> {
        let users = self
            .changed_users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if users.is_empty() {
            return None;
        }
        users
            .get(user_id)
            .filter(|(_, until)| *until >= now)
            .map(|(changed_at, _)| *changed_at)
    }

    /// Forgets revocations whose access tokens have all expired.
    pub fn purge_expired(&self, now: u64) {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, until| *until >= now);
        self.changed_users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, (_, until)| *until >= now);
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
            .chain(
                self.changed_users
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .iter()
                    .map(|(user_id, (changed_at, until))| {
                        Revocation::user_changed(user_id, *changed_at, *until)
                    }),
            )
            .collect()
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

    #[test]
    fn user_marks_keep_the_latest_change_and_survive_a_snapshot() {
        let list = RevocationList::new();
        list.insert(&Revocation::user_changed("alice", 50, 200));
        list.insert(&Revocation::user_changed("alice", 40, 300));
        assert_eq!(list.user_changed_at("alice", 100), Some(50));
        assert_eq!(list.user_changed_at("bob", 100), None);
        // A user id with a colon stays whole; a mark never revokes a session.
        list.insert(&Revocation::user_changed("a:b", 7, 200));
        assert_eq!(list.user_changed_at("a:b", 100), Some(7));
        assert!(list.is_empty());
        let copy = RevocationList::new();
        for revocation in list.snapshot() {
            copy.insert(&revocation);
        }
        assert_eq!(copy.user_changed_at("alice", 100), Some(50));
        list.purge_expired(301);
        assert_eq!(list.user_changed_at("alice", 0), None);
    }
}
