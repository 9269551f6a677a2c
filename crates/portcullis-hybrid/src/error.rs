//! [`HybridError`]: why a login, refresh or logout failed, and the answer each gets.

use portcullis_core::{AuthRejection, StoreError};
use portcullis_jwt::IssueError;

/// Why a login, refresh or logout failed. Converts into the matching [`AuthRejection`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HybridError {
    /// The refresh token is malformed, oversized, or not one this session ever had (401,
    /// nothing revoked).
    #[error("the refresh token is invalid")]
    InvalidRefreshToken,
    /// The session does not exist: logged out, revoked or expired (401).
    #[error("the session has ended")]
    SessionEnded,
    /// A rotated-out refresh token was presented after the grace window; the session has been
    /// revoked (401).
    #[error("the refresh token was already used; the session has been revoked")]
    TokenReuse,
    /// The reload hook found no such user any more; the session has been revoked (401).
    #[error("the user no longer exists")]
    UserGone,
    /// Too many concurrent refreshes of one session (503, retry).
    #[error("too many concurrent refreshes of this session")]
    Contention,
    /// The store or the feed failed (503), or refused input it can never hold
    /// ([`StoreError::InvalidInput`]: 400 `invalid_request` with the reason).
    #[error("the session store failed")]
    Store(#[from] StoreError),
    /// Minting the access token failed (500).
    #[error("could not issue the access token")]
    Issue(#[from] IssueError),
    /// The user does not serialize to JSON (500).
    #[error("the user does not serialize to JSON")]
    User(#[source] serde_json::Error),
    /// A cookie would pass the 4096 bytes browsers keep, which they drop without a word: the
    /// access token's user claims are too large for the cookie transport (400, saying so).
    #[error(
        "the {cookie} cookie would be {bytes} bytes, over the {max} bytes browsers keep",
        max = portcullis_core::credentials::MAX_COOKIE_BYTES
    )]
    CookieTooLarge {
        /// The cookie's name.
        cookie: String,
        /// Its size: name, value and attributes.
        bytes: usize,
    },
    /// The per-user session limit ([`HybridSessionsBuilder::max_sessions_per_user`](crate::HybridSessionsBuilder::max_sessions_per_user) with
    /// [`LimitPolicy::RefuseNew`](crate::LimitPolicy::RefuseNew)) refused the login (403).
    #[error("the user already has the maximum number of sessions")]
    LimitReached,
}

impl From<HybridError> for AuthRejection {
    fn from(error: HybridError) -> Self {
        match error {
            HybridError::InvalidRefreshToken
            | HybridError::SessionEnded
            | HybridError::TokenReuse
            | HybridError::UserGone => AuthRejection::invalid_credentials(match error {
                HybridError::TokenReuse => "the refresh token was already used; sign in again",
                HybridError::InvalidRefreshToken => "the refresh token is invalid",
                _ => "the session has ended; sign in again",
            }),
            HybridError::Contention => {
                AuthRejection::unavailable("too many concurrent refreshes; retry")
                    .with_retry_after(1)
            }
            HybridError::Store(error) => error.into(),
            HybridError::Issue(error) => {
                tracing::error!(%error, "could not issue an access token");
                AuthRejection::misconfigured("could not issue the access token")
            }
            HybridError::User(error) => {
                tracing::error!(%error, "the user does not serialize");
                AuthRejection::misconfigured("could not serialize the user")
            }
            error @ HybridError::CookieTooLarge { .. } => {
                tracing::warn!(%error, "login refused: the tokens do not fit in cookies");
                AuthRejection::invalid_request(format!(
                    "{error}: the user claims are too large for the cookie transport; \
                     use the bearer transport or a smaller user"
                ))
            }
            HybridError::LimitReached => {
                AuthRejection::forbidden("the user already has the maximum number of sessions")
            }
        }
    }
}

impl HybridError {
    /// Whether this failure means the session is over (gone, expired, revoked for token reuse,
    /// or its user deleted), so the client's cookies are of no further use.
    ///
    /// The one rule the endpoints and the transparent refresh of [`HybridLayer`](crate::HybridLayer) follow:
    /// cookies are cleared exactly when this is true. A malformed or unknown refresh token
    /// ends nothing (its `sid` half is public), and an outage says nothing about the session.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_hybrid::HybridError;
    /// assert!(HybridError::TokenReuse.ends_session());
    /// assert!(!HybridError::InvalidRefreshToken.ends_session());
    /// assert!(!HybridError::Contention.ends_session());
    /// ```
    pub fn ends_session(&self) -> bool {
        matches!(self, Self::SessionEnded | Self::TokenReuse | Self::UserGone)
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn a_store_outage_is_503_and_bad_input_is_400() {
        let outage = AuthRejection::from(HybridError::Store(StoreError::Timeout));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bad = AuthRejection::from(HybridError::Store(StoreError::invalid_input(
            "the user id contains a NUL character",
        )));
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bad.error_code(), "invalid_request");
        assert!(bad.description().contains("NUL"), "{}", bad.description());
        assert!(!HybridError::Store(StoreError::invalid_input("x")).ends_session());
    }
}
