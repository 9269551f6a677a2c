//! Revocation at the edge: revoked session ids (and per-user "not before" instants) are
//! published on a feed, and every node keeps them in a [`RevocationList`] until the longest
//! access token they cover could have expired, so a revoked access token is refused without a
//! store read per request.
//!
//! The same feed carries "user changed" announcements (a per-user [`UserRevocation`]): the
//! session layer's user loader drops its cached copy of that user on every node
//! ([`RevocationList::change_mark`], [`RevocationList::user_changed_since`]), and a bearer
//! layer given the list refuses the user's older tokens. The hybrid crate re-exports these
//! types.

mod in_process;

pub use in_process::InProcessFeed;

use std::{
    collections::HashMap,
    future::Future,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use crate::StoreError;
use serde::{Deserialize, Serialize};

/// One revoked session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The revoked session id (the `sid` claim of its access tokens).
    pub session_id: String,
    /// Until when (Unix seconds) access tokens of this session may still be unexpired.
    pub until: u64,
}

/// Every access token of one user issued before an instant, refused on every node: the
/// revocation behind logout-all, which also reaches tokens whose sessions had already expired
/// (so a store deletion could not find them), and the way to make a change to the user (a new
/// role) take effect before their tokens expire: clients refresh, and the refresh mints a
/// token from the user as they are now.
///
/// The instant has millisecond precision and the comparison is strict, so a login right after
/// a logout-all is not caught by it (RFC 9700 §4.14.2 leaves the mechanism open; sub-second
/// precision keeps it from being a one-second blackout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRevocation {
    /// The user (the `sub` claim of their access tokens).
    pub user_id: String,
    /// Access tokens issued before this instant (Unix milliseconds) are refused.
    pub not_before_ms: u64,
    /// Until when (Unix seconds) the entry is kept: when the last token issued before
    /// `not_before_ms` could have expired.
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

    /// Publishes a per-user revocation to every node, this one included. Delivery follows
    /// the same rules as [`RevocationFeed::publish`], catch-up included.
    fn publish_user(
        &self,
        revocation: &UserRevocation,
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

/// Per user: (not before, Unix ms; until, Unix s; change number).
type UserEntry = (u64, u64, u64);

/// The revoked session ids a node knows of, each until its access tokens could have expired,
/// and the per-user [`UserRevocation`]s. Clones share the same list.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    revoked: Arc<RwLock<HashMap<String, u64>>>,
    /// Set while the feed has not yet delivered every revocation in force.
    behind: Arc<AtomicBool>,
    users: Arc<RwLock<HashMap<String, UserEntry>>>,
    /// How many per-user entries were ever recorded: each gets the next number, so a cache
    /// can tell whether a user changed after it read them without comparing clocks of nodes.
    changes: Arc<AtomicU64>,
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

    /// Records a per-user revocation, keeping the later instant and the later deadline.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::revocation::{RevocationList, UserRevocation};
    ///
    /// let list = RevocationList::new();
    /// list.insert_user(&UserRevocation { user_id: "alice".into(), not_before_ms: 5_000, until: 100 });
    /// assert!(list.is_user_revoked("alice", 4_999, 50));
    /// assert!(!list.is_user_revoked("alice", 5_000, 50), "issued at the instant: not before it");
    /// assert!(!list.is_user_revoked("bob", 0, 50));
    /// ```
    pub fn insert_user(&self, revocation: &UserRevocation) {
        let mut users = self
            .users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let change = self
            .changes
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let entry = users.entry(revocation.user_id.clone()).or_insert((0, 0, 0));
        entry.0 = entry.0.max(revocation.not_before_ms);
        entry.1 = entry.1.max(revocation.until);
        entry.2 = change;
    }

    /// A mark to take *before* reading a user from its source: afterwards,
    /// [`RevocationList::user_changed_since`] tells whether a change of that user was announced
    /// since, so the copy read may be stale. Marks are local to this list (no clock involved).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::revocation::{RevocationList, UserRevocation};
    ///
    /// let list = RevocationList::new();
    /// let mark = list.change_mark();
    /// assert!(!list.user_changed_since("alice", mark));
    /// list.insert_user(&UserRevocation { user_id: "alice".into(), not_before_ms: 1, until: u64::MAX });
    /// assert!(list.user_changed_since("alice", mark));
    /// assert!(!list.user_changed_since("bob", mark));
    /// assert!(!list.user_changed_since("alice", list.change_mark()));
    /// ```
    pub fn change_mark(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Whether a change of `user_id` (a [`UserRevocation`] still listed) arrived after `mark`
    /// was taken with [`RevocationList::change_mark`].
    pub fn user_changed_since(&self, user_id: &str, mark: u64) -> bool {
        self.users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(user_id)
            .is_some_and(|(_, _, change)| *change > mark)
    }

    /// Whether a token of `user_id` issued at `issued_at_ms` (Unix milliseconds) is refused at
    /// `now` (Unix seconds).
    pub fn is_user_revoked(&self, user_id: &str, issued_at_ms: u64, now: u64) -> bool {
        self.users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(user_id)
            .is_some_and(|(not_before_ms, until, _)| *until >= now && issued_at_ms < *not_before_ms)
    }

    /// Forgets revocations whose access tokens have all expired.
    pub fn purge_expired(&self, now: u64) {
        self.revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, until| *until >= now);
        self.users
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, (_, until, _)| *until >= now);
    }

    /// Every listed per-user revocation, for handing them on.
    pub fn user_snapshot(&self) -> Vec<UserRevocation> {
        self.users
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(user_id, (not_before_ms, until, _))| UserRevocation {
                user_id: user_id.clone(),
                not_before_ms: *not_before_ms,
                until: *until,
            })
            .collect()
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
    /// use portcullis_core::revocation::RevocationList;
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

    /// How many revocations are listed, per-session and per-user.
    pub fn len(&self) -> usize {
        let sessions = self
            .revoked
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        sessions
            + self
                .users
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
    fn user_revocations_refuse_only_earlier_tokens_until_their_deadline() {
        let list = RevocationList::new();
        let entry = |not_before_ms, until| UserRevocation {
            user_id: "alice".into(),
            not_before_ms,
            until,
        };
        list.insert_user(&entry(10_500, 100));
        list.insert_user(&entry(9_000, 50));
        // Same second, earlier millisecond: refused; the instant itself and later: not.
        assert!(list.is_user_revoked("alice", 10_499, 10));
        assert!(!list.is_user_revoked("alice", 10_500, 10));
        assert!(!list.is_user_revoked("alice", 10_501, 10));
        assert!(!list.is_user_revoked("bob", 0, 10));
        assert!(list.is_user_revoked("alice", 0, 100));
        assert!(!list.is_user_revoked("alice", 0, 101));
        assert_eq!(list.user_snapshot(), [entry(10_500, 100)]);
        assert_eq!(list.len(), 1);
        list.purge_expired(101);
        assert!(list.is_empty());
    }
}
