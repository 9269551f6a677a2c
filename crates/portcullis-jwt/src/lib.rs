//! JWT bearer authentication for tower and axum: the stateless mechanism of portcullis.
//!
//! - [`BearerLayer`] reads a token from the `Authorization: Bearer` header or a cookie
//!   ([`TokenSources`]), verifies it with a [`TokenVerifier`] and puts the claims in the request
//!   for `CurrentUser<U>` / `Authorized<U, P>` (the application's `U` is decoded from the claims
//!   object). No token: the request passes anonymous; a bad token: 401 `invalid_token`.
//! - [`KeySet`]: trusted keys, each pinned to one [`Algorithm`]: HMAC secrets, PEM, JWK and JWKS
//!   JSON or files, JWKS URLs refreshed in the background (feature `jwks-url`), OpenID Connect
//!   issuers found by discovery ([`KeySet::from_oidc`], same feature), token issuers.
//! - [`Validation`]: issuer, audience, bounded leeway, `typ`, required claims, size limit.
//! - [`TokenIssuer`] mints tokens and publishes its public keys; [`SigningKey`] holds a private
//!   key or HMAC secret.
//!
//! Built on `jsonwebtoken` with its `aws_lc_rs` backend (key parsing, JWKs, signing); tokens are
//! verified against aws-lc-rs keys parsed once when the set is built. The checks follow
//! RFC 8725 (JWT Best Current Practices), RFC 7519 (JWT), RFC 7515 (JWS) and RFC 6750 (bearer).
//!
//! # Threat model
//!
//! | attack | defence |
//! |---|---|
//! | `alg: none`, in any casing (RFC 8725 §2.1) | not an [`Algorithm`]: refused before any key is looked at |
//! | key confusion: HS256 signed with the server's RSA/EC public key | every key is pinned to one algorithm; a token's `alg` must equal its key's ([`TokenError::AlgorithmMismatch`]) |
//! | forged keys via `jku`, `x5u`, `jwk`, `x5c` headers (RFC 8725 §3.10) | never read: keys come from the [`KeySet`] only |
//! | replay of expired or premature tokens | `exp` required, `nbf`/`iat` checked, leeway bounded (≤ 5 min, default 30 s) |
//! | tokens for another service or from another issuer | `iss`/`aud` required when configured, a token with an `aud` refused when none is; keys can be pinned to an issuer |
//! | a token of another kind (ID token as access token) | `typ` checked when configured (RFC 9068 `at+jwt`) |
//! | parser differentials | exactly three strict base64url segments, JSON objects only, duplicate registered claims refused, `exp`/`nbf` must be numbers, unknown `crit` refused |
//! | resource exhaustion | token and header size limits before decoding; signature checked before the payload is parsed; unknown-`kid` JWKS refetches rate-limited |
//! | a JWKS outage | the last good set is kept; a set never loaded answers 503, never "allow" |
//! | token leakage | tokens are never logged; `Debug` of secrets prints `REDACTED`; no query-string tokens |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use portcullis_core::{Authorized, CurrentUser, Policy};
//! use portcullis_jwt::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { user: String, role: String }
//!
//! #[derive(Default)]
//! struct IsAdmin;
//! impl Policy<User> for IsAdmin {
//!     fn allows(&self, user: &User) -> bool { user.role == "admin" }
//! }
//!
//! let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::EdDSA).unwrap())
//!     .issuer("https://auth.example")
//!     .audience("https://api.example")
//!     .ttl(Duration::from_secs(600));
//! let verifier = TokenVerifier::new(
//!     issuer.key_set(),
//!     Validation::new().issuer("https://auth.example").audience("https://api.example"),
//! );
//! let app: Router = Router::new()
//!     .route("/me", get(|CurrentUser(user): CurrentUser<User>| async move { user.user }))
//!     .route("/admin", get(|_: Authorized<User, IsAdmin>| async { "welcome" }))
//!     .layer(BearerLayer::new(verifier).realm("api"));
//!
//! let token = issuer.issue("alice", &User { user: "alice".into(), role: "advertiser".into() }).unwrap();
//! assert!(token.expires_in == 600);
//! ```
// Library code returns errors instead of panicking (issue 12): no unwrap, expect, panic or
// unchecked indexing outside tests; a documented `# Panics` case is allowed where it stands.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
// docs.rs marks what each feature gates ("Available on crate feature ... only").
#![cfg_attr(docsrs, feature(doc_cfg))]

mod algorithm;
mod audience;
mod cache;
mod claims;
mod compact;
mod dynamic_keys;
mod issue;
mod key_error;
mod keys;
mod layer;
#[cfg(feature = "jwks-url")]
mod oidc;
#[cfg(feature = "jwks-url")]
mod remote;
mod revocation;
mod signing_key;
mod sources;
mod token_error;
mod validation;
mod verified_token;
mod verify;
mod verifying_key;

pub use algorithm::{Algorithm, UnknownAlgorithm};
pub use cache::{TOKEN_CACHE_LOOKUPS_TOTAL, TokenCacheConfig, TokenCacheStats};
pub use issue::{DEFAULT_TTL, IssueError, IssueOptions, IssuedToken, TokenIssuer};
pub use key_error::KeyError;
pub use keys::KeySet;
pub use layer::{Bearer, BearerLayer, DEFAULT_REALM, ResponseFuture};
#[cfg(feature = "jwks-url")]
pub use remote::JwksOptions;
pub use revocation::{issued_at_ms_claim, token_revocation};
pub use signing_key::SigningKey;
pub use sources::{TokenOrigin, TokenSources};
pub use token_error::TokenError;
pub use validation::{DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_BYTES, MAX_LEEWAY, Validation};
pub use verified_token::VerifiedToken;
pub use verify::{Attempt, TokenVerifier};
