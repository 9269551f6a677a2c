//! [`TokenPair`] (what a login or refresh hands the client) and [`SessionInfo`] (a session
//! in a listing).

use std::fmt;

use portcullis_core::Identity;
use serde::Serialize;
use serde_json::Value;

use crate::{RefreshRecord, RefreshToken};

/// What a login or refresh hands the client: an access token and the refresh token.
#[derive(Clone)]
pub struct TokenPair {
    pub(crate) access_token: String,
    pub(crate) refresh_token: RefreshToken,
    pub(crate) expires_in: u64,
    pub(crate) issued_at: u64,
    pub(crate) access_expires_at: u64,
    pub(crate) refresh_expires_at: u64,
    pub(crate) user_id: String,
    pub(crate) identity: Identity,
}

impl TokenPair {
    /// The access JWT (`typ: at+jwt`).
    ///
    /// # Security
    ///
    /// A bearer credential: never log it.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &RefreshToken {
        &self.refresh_token
    }

    /// The session id (`sid`).
    pub fn session_id(&self) -> &str {
        self.refresh_token.session_id()
    }

    /// The user's id (`sub`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Seconds until the access token expires.
    pub fn expires_in(&self) -> u64 {
        self.expires_in
    }

    /// When the pair was issued (Unix seconds, by the sessions' clock).
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// When the access token expires (Unix seconds).
    pub fn access_expires_at(&self) -> u64 {
        self.access_expires_at
    }

    /// When the session expires unless refreshed (Unix seconds): the idle deadline, capped by
    /// the absolute lifetime.
    pub fn refresh_expires_at(&self) -> u64 {
        self.refresh_expires_at
    }

    /// The caller these tokens authenticate.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The bearer-transport body: `{"access_token", "refresh_token", "token_type": "Bearer",
    /// "expires_in"}` (RFC 6749 §5.1).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "access_token": self.access_token,
            "refresh_token": self.refresh_token.expose(),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        })
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"REDACTED")
            .field("refresh_token", &self.refresh_token)
            .field("session_id", &self.session_id())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A live session as listings show it: no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session id (`sid`), usable with [`HybridSessions::revoke`](crate::HybridSessions::revoke).
    pub session_id: String,
    /// When the session was created (Unix seconds).
    pub created_at: u64,
    /// When it was last refreshed (Unix seconds).
    pub refreshed_at: u64,
    /// When it expires unless refreshed (Unix seconds).
    pub expires_at: u64,
    /// The `User-Agent` at login.
    pub user_agent: Option<String>,
}

impl From<&RefreshRecord> for SessionInfo {
    fn from(record: &RefreshRecord) -> Self {
        Self {
            session_id: record.session_id.clone(),
            created_at: record.created_at,
            refreshed_at: record.refreshed_at,
            expires_at: record.expires_at(),
            user_agent: record.user_agent.clone(),
        }
    }
}
