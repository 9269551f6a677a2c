//! The error every store (session, refresh, revocation feed) reports, whatever its backend.
//! Layers turn it into 503 with `Retry-After`: a store outage never lets anyone in.

use std::error::Error;

type Source = Box<dyn Error + Send + Sync + 'static>;

/// A store could not answer.
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
}

impl From<StoreError> for crate::AuthRejection {
    fn from(error: StoreError) -> Self {
        // Log the cause for operators; the client learns only that it should retry.
        tracing::error!(error = %error, cause = ?error.source(), "store error: failing closed");
        crate::observe::store_error(&error);
        crate::AuthRejection::unavailable("the authentication store is temporarily unavailable")
    }
}
