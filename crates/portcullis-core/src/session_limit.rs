//! The per-user session limit shared by the session-cookie and hybrid mechanisms, so both
//! offer "at most N devices per user" with the same two policies.

/// What to do when a user already has the maximum number of sessions.
///
/// # Examples
///
/// ```
/// use portcullis_core::LimitPolicy;
///
/// let policy = LimitPolicy::EvictOldest;
/// assert_ne!(policy, LimitPolicy::RefuseNew);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitPolicy {
    /// Remove the user's oldest sessions to make room.
    EvictOldest,
    /// Refuse the new session.
    RefuseNew,
}

/// A cap on the number of live sessions per user, enforced atomically by the store.
///
/// # Examples
///
/// ```
/// use portcullis_core::{LimitPolicy, SessionLimit};
///
/// // At most two devices; a third login signs the oldest one out.
/// let limit = SessionLimit { max: 2, policy: LimitPolicy::EvictOldest };
/// assert_eq!(limit.max, 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimit {
    /// The largest number of sessions a user may have (at least 1).
    pub max: u32,
    /// What happens to the next one.
    pub policy: LimitPolicy,
}
