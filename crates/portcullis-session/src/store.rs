//! The session store contract: what a backend (the in-memory store, Redis, your database) must
//! do for the session layer.
//!
//! Records are keyed by [`StoreKey`], the SHA-256 of the session secret, never the secret
//! itself; listings identify sessions by their public `handle`. Concurrent writers never lose
//! an update silently: [`SessionStore::save`] is a compare-and-set on [`SessionRecord::version`],
//! and the layer re-applies its changes to the fresh record when it loses the race.

use std::future::Future;

pub use portcullis_core::{LimitPolicy, SessionLimit};
use portcullis_core::{StoreError, StoreKey, UserJson};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Everything a store keeps about one session. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Public identifier for listings and revocation; not the secret.
    pub handle: String,
    /// The signed-in user's id (for per-user listing and revocation), `None` before login.
    pub user_id: Option<String>,
    /// The signed-in user as the application serialized it, `None` before login. Kept as JSON
    /// text so a read hands it to the extractors without decoding it into a tree first.
    pub user: Option<UserJson>,
    /// Auxiliary data set through the `Session` handle.
    pub data: Map<String, Value>,
    /// When the session was created.
    pub created_at: u64,
    /// When the user last proved who they are (login or re-authentication).
    pub authenticated_at: Option<u64>,
    /// When a request last used the session (moves with throttled touches).
    pub last_seen_at: u64,
    /// When the session expires: the earlier of the idle and the absolute deadline.
    pub expires_at: u64,
    /// The absolute deadline, which activity never moves.
    pub absolute_expires_at: u64,
    /// The `User-Agent` of the request that created the session, truncated.
    pub user_agent: Option<String>,
    /// Whether the cookie is persistent ("remember me") rather than a browser-session cookie.
    pub persistent: bool,
    /// Incremented by every successful [`SessionStore::save`]; touches leave it alone.
    pub version: u64,
}

/// The result of [`SessionStore::create`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// The session was created; `evicted` holds the handles of sessions removed to make room.
    Created {
        /// Handles of the user's sessions evicted by [`LimitPolicy::EvictOldest`].
        evicted: Vec<String>,
    },
    /// [`LimitPolicy::RefuseNew`] refused the session.
    LimitReached,
}

/// The result of [`SessionStore::save`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// Written; the stored version is now `expected_version + 1`.
    Saved,
    /// Another writer saved first: reload, re-apply and retry.
    Conflict,
    /// The session no longer exists (expired, logged out or revoked).
    Missing,
}

/// A backend for sessions.
///
/// Every method is atomic on its own. Expired records (`expires_at <= now`) must behave as
/// absent: `load` returns `None`, listings skip them, and the backend frees them eventually.
pub trait SessionStore: Send + Sync + 'static {
    /// The record stored under `key`, if it exists and has not expired.
    fn load(
        &self,
        key: &StoreKey,
    ) -> impl Future<Output = Result<Option<SessionRecord>, StoreError>> + Send;

    /// Stores a new record under a fresh key, indexing it under its user and enforcing `limit`
    /// atomically when the record has a user.
    fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> impl Future<Output = Result<CreateOutcome, StoreError>> + Send;

    /// Replaces the record if the stored version is still `expected_version`; the stored
    /// record then has version `expected_version + 1` (the caller sets it in `record`).
    fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> impl Future<Output = Result<SaveOutcome, StoreError>> + Send;

    /// Moves `last_seen_at` and `expires_at` only, without touching `version` or data. Returns
    /// `false` when the session no longer exists.
    fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes the record (logout). Deleting a missing record is not an error.
    fn delete(&self, key: &StoreKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's live sessions, oldest first.
    fn list_by_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<SessionRecord>, StoreError>> + Send;

    /// Deletes the user's session with this public handle; `false` if there is none.
    fn delete_by_handle(
        &self,
        user_id: &str,
        handle: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Deletes every session of the user except `keep` (the caller's own, for "log out other
    /// devices"); returns how many were deleted.
    fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Replaces the stored user of every live session of `user_id` with `user` (a role
    /// change), incrementing each record's `version` like a save does, so a request that
    /// loaded the old record loses its compare-and-set and re-applies its own changes on top:
    /// the new user is never silently undone. Returns how many sessions were rewritten.
    ///
    /// The default implementation fails with [`StoreError::Unavailable`] (fail closed: the
    /// caller answers 503 rather than pretend the change took effect); the in-memory and Redis
    /// stores implement it.
    fn replace_user(
        &self,
        user_id: &str,
        user: &UserJson,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        let _ = (user_id, user);
        async {
            Err(StoreError::unavailable(
                "this session store cannot replace the user of its sessions",
            ))
        }
    }
}
