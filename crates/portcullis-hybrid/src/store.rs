//! The refresh store contract: one record per hybrid session, the session a refresh-token
//! family belongs to.
//!
//! A refresh token is `<session_id>.<secret>`. The record is keyed by the public session id
//! (the `sid` of access tokens) and holds only SHA-256 hashes of the current and recently
//! rotated-out secrets, so a dump of the store grants nothing. Keying by session id rather than
//! by token hash keeps every operation on a single key: atomic with a compare-and-swap, and on
//! one slot of a Redis Cluster. The rotation rules (grace window, reuse detection) live once,
//! in the refresh service, on top of [`RefreshStore::compare_and_swap`].

use std::future::Future;

pub use portcullis_core::{LimitPolicy, SessionLimit};
use portcullis_core::{StoreError, StoreKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A refresh secret that was rotated out, kept to tell a racing tab from a thief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedToken {
    /// SHA-256 of the rotated-out secret.
    pub hash: StoreKey,
    /// When it was rotated out (Unix seconds); it is honoured until `rotated_at + grace`.
    pub rotated_at: u64,
    /// The secret that replaced it, sealed with a key only the rotated-out secret yields, so
    /// a client racing inside the grace window is handed the *same* current token as the
    /// winner (and no store dump reveals it). Dropped once the grace window has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successor: Option<SealedSecret>,
}

/// A refresh secret encrypted under a key derived from its predecessor: opaque to the store.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedSecret(pub(crate) [u8; 32]);

impl SealedSecret {
    /// The raw sealed bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Sealed bytes as read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedSecret(REDACTED)")
    }
}

impl Serialize for SealedSecret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Reuse the store key's hex codec: same width, same alphabet.
        StoreKey::from_bytes(self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SealedSecret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        StoreKey::deserialize(deserializer).map(|key| Self(*key.as_bytes()))
    }
}

/// Everything the store keeps about one hybrid session. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The session id: public, carried as `sid` in access tokens and in the refresh token.
    pub session_id: String,
    /// The user's id, for per-user listing and logout-all.
    pub user_id: String,
    /// The user as the application serialized it.
    pub user: Value,
    /// When the session was created (login).
    pub created_at: u64,
    /// When the user last proved who they are.
    pub authenticated_at: u64,
    /// When the session was last refreshed.
    pub refreshed_at: u64,
    /// The idle deadline: a refresh must happen before it.
    pub idle_expires_at: u64,
    /// The absolute deadline, which refreshes never move.
    pub absolute_expires_at: u64,
    /// SHA-256 of the current refresh secret.
    pub current_hash: StoreKey,
    /// Recently rotated-out secrets, newest last, bounded in number.
    pub previous: Vec<RotatedToken>,
    /// Incremented by every rotation; the compare-and-swap token.
    pub generation: u64,
    /// SHA-256 of the family key every refresh token of this session carries: proves that a
    /// presented token that is neither current nor recently rotated out is a retired one of
    /// this session (reuse: revoke), however many rotations ago, rather than a guess (refuse,
    /// revoke nothing). `None` for records written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_hash: Option<StoreKey>,
    /// The `User-Agent` at login, truncated.
    pub user_agent: Option<String>,
}

impl RefreshRecord {
    /// When the record stops existing: the earlier of the idle and absolute deadlines.
    pub fn expires_at(&self) -> u64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }
}

/// The result of [`RefreshStore::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The session was created; `evicted` holds the ids of the user's sessions removed to make
    /// room under [`LimitPolicy::EvictOldest`], oldest first.
    Created {
        /// Session ids evicted by [`LimitPolicy::EvictOldest`]: the caller revokes their access
        /// tokens.
        evicted: Vec<String>,
    },
    /// [`LimitPolicy::RefuseNew`] refused the session: nothing was stored.
    LimitReached,
}

/// A backend for hybrid sessions.
///
/// Every method is atomic on its own. A record whose [`RefreshRecord::expires_at`] has passed
/// behaves as absent.
pub trait RefreshStore: Send + Sync + 'static {
    /// Stores a new session record (login), indexing it under its user and enforcing `limit`
    /// atomically: parallel logins of one user, on any number of nodes, never leave more than
    /// `limit.max` live sessions.
    fn create(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;

    /// The session record, if it exists and has not expired.
    fn load(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<RefreshRecord>, StoreError>> + Send;

    /// Replaces the record if its stored generation is still `expected_generation`. Returns
    /// `false` when another writer got there first or the record is gone.
    fn compare_and_swap(
        &self,
        record: &RefreshRecord,
        expected_generation: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the session (logout, revocation, theft); returns the record it deleted.
    fn delete(
        &self,
        session_id: &str,
    ) -> impl Future<Output = Result<Option<RefreshRecord>, StoreError>> + Send;

    /// The user's live sessions, oldest first.
    fn list_by_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<RefreshRecord>, StoreError>> + Send;

    /// Deletes every session of the user except the one with session id `keep` (logout-all,
    /// or "sign out other devices" with the caller's own session kept); returns the records it
    /// deleted.
    fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> impl Future<Output = Result<Vec<RefreshRecord>, StoreError>> + Send;

    /// Frees the memory of expired records; returns how many. [`HybridSessions`] calls it
    /// every minute. The default does nothing, for stores that expire records themselves
    /// (Redis key expiry).
    ///
    /// [`HybridSessions`]: crate::HybridSessions
    fn purge_expired(&self) -> impl Future<Output = Result<usize, StoreError>> + Send {
        async { Ok(0) }
    }
}
