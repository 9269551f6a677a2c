//! [`SessionError`]: why a session operation failed, and the answer each gets.

use portcullis_core::{AuthRejection, StoreError};

/// Why a session operation failed. Converts into the matching [`AuthRejection`] (and, with the
/// `axum` feature, into a response), so handlers can use `?`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store could not answer: 503 with `Retry-After`; or it refused input it can never
    /// hold ([`StoreError::InvalidInput`]): 400 `invalid_request` with the reason.
    #[error("the session store failed")]
    Store(#[from] StoreError),
    /// A value could not be converted to or from JSON: 500 (a bug in the application).
    #[error("a session value could not be converted to or from JSON")]
    Serialization(#[source] serde_json::Error),
    /// The per-user session limit refused the login: 403.
    #[error("the user already has the maximum number of sessions")]
    LimitReached,
    /// A login from another site (login CSRF): 403.
    #[error("the request came from another site")]
    CrossSite,
    /// The session ended (logout elsewhere, revocation, expiry) while this request used it:
    /// 401. Its changes were not saved.
    #[error("the session ended while this request was using it")]
    Ended,
    /// Concurrent requests kept winning the race to save the session: 503, try again.
    #[error("too many concurrent writes to the session")]
    Contention,
    /// The operation needs a signed-in user: 401.
    #[error("no user is signed in")]
    NotSignedIn,
}

impl From<SessionError> for AuthRejection {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(error) => error.into(),
            SessionError::Serialization(error) => {
                tracing::error!(%error, "a session value does not fit its type");
                AuthRejection::misconfigured("a session value could not be converted")
            }
            SessionError::LimitReached => {
                AuthRejection::forbidden("the user already has the maximum number of sessions")
            }
            SessionError::CrossSite => {
                AuthRejection::cross_site("the request came from another site")
            }
            SessionError::Ended => AuthRejection::invalid_credentials("the session has ended"),
            SessionError::Contention => {
                AuthRejection::unavailable("the session is busy, try again")
            }
            SessionError::NotSignedIn => AuthRejection::missing_credentials(),
        }
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        AuthRejection::from(self).to_response()
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;

    #[test]
    fn a_store_outage_is_503_and_bad_input_is_400() {
        let outage = AuthRejection::from(SessionError::Store(StoreError::Timeout));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        let bad = AuthRejection::from(SessionError::Store(StoreError::invalid_input(
            "the user id contains a NUL character",
        )));
        assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
        assert_eq!(bad.error_code(), "invalid_request");
        assert!(bad.description().contains("NUL"), "{}", bad.description());
    }
}
