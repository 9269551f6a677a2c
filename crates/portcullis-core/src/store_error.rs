//! The error every store (session, refresh, revocation feed) reports, whatever its backend.
//! Layers turn an outage into 503 with `Retry-After` (a store outage never lets anyone in), and
//! input no store could hold into 400 `invalid_request` with the reason.

use std::{borrow::Cow, error::Error};

type Source = Box<dyn Error + Send + Sync + 'static>;

/// A store could not answer, or was given input it can never hold.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend is unreachable or refused the command (connection refused, reset, loading).
    #[error("the store is unavailable")]
    Unavailable(#[source] Source),
    /// The backend did not answer within the configured timeout.
    #[error("the store did not answer in time")]
    Timeout,
    /// A record could not be encoded or decoded.
    #[error("a stored record is corrupt")]
    Corrupt(#[source] Source),
    /// The caller asked the store to write a value it can never hold (a user id containing
    /// NUL for PostgreSQL, a session id the store's keys cannot carry): bad input, not an
    /// outage. The store was not asked and nothing was written or lost.
    ///
    /// Layers answer it with 400 `invalid_request` carrying the reason, not 503: retrying the
    /// same request can never succeed, and counting it as an outage would let any client page
    /// the operators (OWASP Input Validation Cheat Sheet: reject bad input early, with a clear
    /// error; OWASP Logging Cheat Sheet: keep client errors apart from system failures). The
    /// reason reaches the client, so it names the field and the rule, never the value.
    #[error("the store cannot hold this input: {0}")]
    InvalidInput(Cow<'static, str>),
}

impl StoreError {
    /// An outage caused by `source`.
    pub fn unavailable(source: impl Into<Source>) -> Self {
        Self::Unavailable(source.into())
    }

    /// A record that does not decode.
    pub fn corrupt(source: impl Into<Source>) -> Self {
        Self::Corrupt(source.into())
    }

    /// Input the store can never hold, and why (shown to the client: name the field and the
    /// rule, never the value).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{AuthRejection, StoreError};
    ///
    /// let error = StoreError::invalid_input("the user id contains a NUL character");
    /// assert!(!error.is_outage());
    /// assert_eq!(AuthRejection::from(error).status(), http::StatusCode::BAD_REQUEST);
    /// ```
    pub fn invalid_input(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidInput(reason.into())
    }

    /// Whether this is a failure of the store (unreachable, slow, corrupt: 503 and counted in
    /// `portcullis_store_errors_total`), as opposed to bad input from the caller
    /// ([`StoreError::InvalidInput`]: 400, not counted as an outage).
    pub fn is_outage(&self) -> bool {
        !matches!(self, Self::InvalidInput(_))
    }
}

impl From<StoreError> for crate::AuthRejection {
    fn from(error: StoreError) -> Self {
        if let StoreError::InvalidInput(reason) = error {
            // A client error: no outage log, no store-error metric; the rejection itself is
            // logged at debug and counted as a 400 like any malformed request.
            return crate::AuthRejection::invalid_request(reason);
        }
        // Log the cause for operators; the client learns only that it should retry.
        tracing::error!(error = %error, cause = ?error.source(), "store error: failing closed");
        crate::observe::store_error(&error);
        crate::AuthRejection::unavailable("the authentication store is temporarily unavailable")
    }
}

#[cfg(test)]
mod tests {
    use http::StatusCode;

    use super::*;
    use crate::AuthRejection;

    #[test]
    fn invalid_input_is_a_400_invalid_request_with_the_reason() {
        let error = StoreError::invalid_input("the user id contains a NUL character");
        assert!(!error.is_outage());
        let rejection = AuthRejection::from(error);
        assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
        assert_eq!(rejection.error_code(), "invalid_request");
        assert!(
            rejection
                .description()
                .contains("the user id contains a NUL character"),
            "{}",
            rejection.description()
        );
    }

    #[test]
    fn outages_stay_503() {
        for error in [
            StoreError::Timeout,
            StoreError::unavailable("connection refused"),
            StoreError::corrupt("bad json"),
        ] {
            assert!(error.is_outage());
            let rejection = AuthRejection::from(error);
            assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        }
    }

    #[test]
    fn invalid_input_is_not_counted_as_a_store_error() {
        use metrics_util::debugging::DebuggingRecorder;

        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let _ = AuthRejection::from(StoreError::invalid_input("empty id"));
        });
        let counted = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .any(|(key, ..)| key.key().name() == crate::observe::STORE_ERRORS_TOTAL);
        assert!(!counted, "bad input is not a store outage");
    }
}
