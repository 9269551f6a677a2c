//! [`TokenError`]: why a token was refused, and the answer each reason gets.

use std::borrow::Cow;

use portcullis_core::AuthRejection;

/// Why a token was refused. The `Display` text is safe to show the client: it never echoes the
/// token or any of its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`Validation::max_token_bytes`](crate::Validation::max_token_bytes).
    #[error("the token is too large")]
    TooLarge,
    /// Not three strict base64url segments of a JSON header, a JSON object payload and a
    /// signature (RFC 7515 §7.1, RFC 7519 §7.2).
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The `alg` header is `none` or not a supported algorithm (RFC 8725 §3.1).
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The header has a `crit` parameter (even `null` or empty): no extension is understood,
    /// so RFC 7515 §4.1.11 requires refusal.
    #[error("the token uses critical header extensions that are not supported")]
    CriticalHeader,
    /// The `typ` header is not the configured type (RFC 8725 §3.11, RFC 9068 §4).
    #[error("the token is not of the expected type")]
    WrongType,
    /// No trusted key has the token's `kid` (or, without `kid`, its algorithm).
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The key named by `kid` is pinned to another algorithm (RFC 8725 §2.1, §3.1).
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// The key set that could verify the token has not been fetched yet (the issuer is
    /// unreachable): the request is answered with 503, never let in.
    #[error("the token signing keys are temporarily unavailable")]
    KeysUnavailable,
    /// A required claim is missing.
    #[error("the token has no {0} claim")]
    MissingClaim(Cow<'static, str>),
    /// A registered claim has the wrong JSON type or an impossible value (RFC 7519 §4.1).
    #[error("the token's {0} claim is invalid")]
    InvalidClaim(&'static str),
    /// `exp` has passed (RFC 7519 §4.1.4).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (RFC 7519 §4.1.5).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (RFC 7519 §4.1.6).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `auth_time` is in the future (OpenID Connect Core §2): an authentication that has not
    /// happened yet would count as recent until it does.
    #[error("the token's authentication time is in the future")]
    AuthenticatedInFuture,
    /// `iss` is not a trusted issuer, or not the issuer its key is pinned to (RFC 7519 §4.1.1).
    #[error("the token was issued by an untrusted issuer")]
    WrongIssuer,
    /// `aud` does not name this service (RFC 7519 §4.1.3).
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// The token carries `aud` but the [`Validation`](crate::Validation) names no audience, so this service cannot
    /// tell whether it is one of them and must refuse it (RFC 7519 §4.1.3). Identity providers
    /// (Auth0, Microsoft Entra ID, Keycloak, Okta) put an `aud` in every access token: configure
    /// this API's identifier with [`Validation::audience`](crate::Validation::audience). The verifier also logs a warning
    /// (at most once a minute) quoting the token's audiences.
    #[error("the token has an aud claim but no audience is configured (Validation::audience)")]
    AudienceNotConfigured,
}

impl From<TokenError> for AuthRejection {
    /// 503 (fail closed) while keys are unavailable; 401 `invalid_token` otherwise. Add the
    /// realm with [`AuthRejection::with_bearer_challenge`].
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::KeysUnavailable => AuthRejection::unavailable(error.to_string()),
            _ => AuthRejection::invalid_credentials(error.to_string()),
        }
    }
}
