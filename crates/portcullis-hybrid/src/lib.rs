//! Hybrid authentication: short-lived access JWTs checked at the edge without a store read,
//! refresh tokens rotated through a central store, and revocation pushed to every node.
//!
//! | piece | what it does |
//! |---|---|
//! | [`HybridSessions`] | login, refresh (rotation, grace window, theft detection), logout, revoke |
//! | [`HybridLayer`] | the edge check: `at+jwt` signature and claims plus the [`RevocationList`] |
//! | [`CookieTransport`] | access and refresh tokens in HttpOnly cookies, optional transparent refresh |
//! | [`HybridEndpoints`], [`HybridLogin`] | the protocol's routes (refresh, logout, logout-all, sessions) and the login helper |
//! | [`RefreshStore`], [`MemoryRefreshStore`] | where sessions live (one key per session) |
//! | [`RevocationFeed`], [`InProcessFeed`] | how revocations reach every node |
//!
//! # Threat model
//!
//! - *A stolen access token* works until it expires (minutes) or its session is revoked,
//!   whichever comes first: logout and revoke publish the session id, and every node refuses
//!   its tokens from then on without a store read per request.
//! - *A stolen refresh token* is detected when both parties use it: each refresh rotates the
//!   token, and a rotated-out token replayed after a short grace window revokes the session
//!   (RFC 9700 §4.14.2). Inside the window, every racer is handed the same current token, so
//!   honest parallel refreshes never trip the check.
//! - *A store dump* yields hashes and sealed successors only: no usable token.
//! - *Someone who read a `sid`* (access tokens are readable) cannot log its owner out: an
//!   unknown secret is refused without revoking anything.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use axum::{Router, routing::get};
//! use portcullis_core::CurrentUser;
//! use portcullis_hybrid::{HybridLayer, HybridSessions, InProcessFeed, MemoryRefreshStore};
//! use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { user: String }
//!
//! let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256)?).issuer("https://ads.example");
//! let sessions = HybridSessions::builder(issuer, Validation::new().issuer("https://ads.example"))
//!     .store(MemoryRefreshStore::new())
//!     .feed(InProcessFeed::new())
//!     .build()
//!     .await?;
//! let app: Router = Router::new()
//!     .route("/me", get(|CurrentUser(user): CurrentUser<User>| async move { user.user }))
//!     .layer(HybridLayer::new(&sessions));
//!
//! let pair = sessions.login("alice", &User { user: "alice".into() }, None).await?;
//! // The client sends `Authorization: Bearer {pair.access_token()}`, and later exchanges
//! // `pair.refresh_token()` for a new pair:
//! let next = sessions.refresh(&pair.refresh_token().expose()).await?;
//! assert_eq!(next.session_id(), pair.session_id());
//! // Logout: the session's access tokens are refused at once on every node.
//! sessions.revoke(pair.session_id()).await?;
//! assert!(sessions.revocations().is_revoked(pair.session_id(), 0));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
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

mod access;
mod access_session;
mod builder;
mod config_error;
mod cookies;
mod endpoints;
mod erased;
mod error;
mod layer;
#[cfg(test)]
mod layer_tests;
#[cfg(test)]
mod limit_tests;
mod login;
mod memory;
mod refresh_token;
mod reload_user;
mod response;
mod revocation;
mod revoke;
mod rotation;
mod sessions;
mod store;
#[cfg(test)]
mod tests;
mod token_pair;
mod user_changed;

pub use access_session::AccessSession;
pub use builder::HybridSessionsBuilder;
pub use config_error::ConfigError;
pub use cookies::{CookieTransport, MAX_COOKIE_BYTES, SameSite};
pub use endpoints::{Endpoint, EndpointFuture, HybridEndpoints};
pub use error::HybridError;
pub use layer::{Hybrid, HybridLayer, ResponseFuture};
#[cfg(feature = "axum")]
pub use login::HybridLogin;
pub use login::LoginTransport;
pub use memory::MemoryRefreshStore;
pub use refresh_token::{MAX_REFRESH_TOKEN_LEN, RefreshToken};
pub use reload_user::ReloadUser;
pub use response::EndpointResponse;
pub use revocation::{InProcessFeed, Revocation, RevocationFeed, RevocationList, UserRevocation};
pub use sessions::HybridSessions;
pub use store::{
    CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, RotatedToken, SealedSecret,
    SessionLimit,
};
pub use token_pair::{SessionInfo, TokenPair};
