//! [`AccessSession`]: the session behind a request's verified access token, in request
//! extensions.

use std::sync::Arc;

#[cfg(feature = "axum")]
use portcullis_core::{AuthRejection, Authentication};

/// The session behind a request's access token, for handlers that act on the session itself
/// (logout, logout-all). Present in request extensions when the access token was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessSession {
    pub(crate) session_id: Arc<str>,
    pub(crate) user_id: Arc<str>,
    pub(crate) expires_at: u64,
}

impl AccessSession {
    /// The session id (`sid`).
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The user's id (`sub`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// When the access token expires (Unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for AccessSession {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Self>().cloned().ok_or_else(|| {
            let rejection = AuthRejection::missing_credentials();
            match parts.extensions.get::<Authentication>() {
                Some(authentication) => authentication.challenge(rejection),
                None => rejection,
            }
        })
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::OptionalFromRequestParts<S> for AccessSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned())
    }
}
