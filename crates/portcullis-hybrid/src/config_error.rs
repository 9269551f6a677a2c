//! [`ConfigError`]: why [`HybridSessionsBuilder::build`](crate::HybridSessionsBuilder::build)
//! or [`CookieTransport::validate`](crate::CookieTransport::validate) refused a configuration.

use portcullis_core::StoreError;

/// A configuration [`HybridSessionsBuilder::build`] refused, or a feed it could not join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration is out of range; the message says which and why.
    #[error("invalid hybrid session setting: {0}")]
    Invalid(&'static str),
    /// No [`RefreshStore`] was given.
    #[error("no refresh store configured: call .store(..)")]
    MissingStore,
    /// No [`RevocationFeed`] was given.
    #[error("no revocation feed configured: call .feed(..)")]
    MissingFeed,
    /// Subscribing to the revocation feed failed.
    #[error("could not subscribe to the revocation feed")]
    Feed(#[source] StoreError),
    /// A cookie setting breaks the rules of the cookie transport.
    #[error("invalid cookie setting: {0}")]
    Cookie(&'static str),
    /// A cookie name, path or attribute a browser would reject (RFC 6265bis).
    #[error(transparent)]
    CookieAttributes(#[from] portcullis_core::credentials::CookieError),
}
