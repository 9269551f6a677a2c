//! [`SessionInfo`]: one of a user's sessions, as listed by
//! [`Session::sessions`](crate::Session::sessions).

use serde::Serialize;

/// One of the signed-in user's sessions, as [`Session::sessions`](crate::Session::sessions) lists them. Times are Unix
/// seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The public handle, for [`Session::revoke`](crate::Session::revoke); not the secret.
    pub handle: String,
    /// When the session started (the login).
    pub created_at: u64,
    /// When a request last used it (moved by throttled touches).
    pub last_seen_at: u64,
    /// When it expires unless used again.
    pub expires_at: u64,
    /// The `User-Agent` of the login request, truncated.
    pub user_agent: Option<String>,
    /// Whether it has a persistent ("remember me") cookie.
    pub persistent: bool,
    /// Whether it is the session of the current request.
    pub current: bool,
}
