//! The core of portcullis: how authentication layers hand the caller to the request, and how
//! handlers ask for it without knowing which mechanism found it.
//!
//! - A layer (session cookie, bearer JWT, hybrid) records what it found in the request's
//!   [`Authentication`] extension: an [`Identity`] it already verified, or an
//!   [`IdentitySource`] that loads it on first use and caches it for the rest of the request.
//! - Handlers ask for [`CurrentUser<U>`] (401 without a caller), `Option<CurrentUser<U>>`, or
//!   [`Authorized<U, P>`] (403 when policy `P` refuses); [`RequireLayer`] applies the same
//!   policies to a router.
//! - Every refusal is an [`AuthRejection`], rendered with the right status, RFC 6750 challenge
//!   and `Cache-Control: no-store`, and replaceable with [`MapRejectionLayer`].
//! - A [`LoginGuard`] wraps the application's password check: a cap on concurrent checks and
//!   back-off per account and per client address ([`login_guard`]).
//!
//! # Example
//!
//! ```
//! # #[cfg(all(feature = "axum", feature = "testing"))] {
//! use axum::{Router, routing::get};
//! use portcullis_core::{Authorized, CurrentUser, Policy, testing::AuthenticateAsLayer};
//!
//! #[derive(Clone, serde::Serialize, serde::Deserialize)]
//! struct User { user: String, role: String }
//!
//! impl User {
//!     fn is_admin(&self) -> bool { self.role == "admin" }
//! }
//!
//! #[derive(Default)]
//! struct IsAdmin;
//! impl Policy<User> for IsAdmin {
//!     fn allows(&self, user: &User) -> bool { user.is_admin() }
//! }
//!
//! async fn me(CurrentUser(user): CurrentUser<User>) -> String { user.user }
//! async fn admin(_: Authorized<User, IsAdmin>) -> &'static str { "welcome" }
//!
//! // In production the layer is a SessionLayer, BearerLayer or HybridLayer; the handlers
//! // stay the same.
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .route("/admin", get(admin))
//!     .layer(AuthenticateAsLayer::new(&User { user: "alice".into(), role: "advertiser".into() }));
//! # }
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

mod authentication;
mod clock;
pub mod credentials;
mod cross_site;
mod edge_future;
#[cfg(feature = "axum")]
mod extract;
mod identity;
pub mod login_guard;
pub mod observe;
mod policy;
mod provider_claims;
mod readiness;
mod rejection;
mod render;
mod require;
pub mod revocation;
mod secret;
mod session_limit;
mod store_error;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod user_json;

pub use authentication::{Authentication, IdentityFuture, IdentitySource, resolve_user};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use cross_site::{CrossSiteCheck, InvalidOrigin};
pub use edge_future::{EdgeFinish, EdgeFuture, FinishHook};
#[cfg(feature = "axum")]
pub use extract::{Authorized, CurrentUser, RecentlyAuthenticated};
pub use identity::{Identity, Mechanism};
#[cfg(feature = "argon2")]
pub use login_guard::{Argon2Verifier, InvalidDecoy, PasswordCheck};
pub use login_guard::{
    AttemptCounter, AttemptKey, Backoff, ClientAddress, Credentials, LoginAttempt, LoginGuard,
    MemoryAttemptCounter,
};
pub use policy::{AllOf, AnyOf, Authenticated, Not, Policy, PolicyExt};
pub use provider_claims::{
    ClientRole, HasPermission, HasRole, HasScope, ProviderClaims, RealmRole, RoleList,
};
pub use readiness::{
    AlwaysReady, DEFAULT_READINESS_TIMEOUT, NotReady, Readiness, ReadinessChecks, ReadinessReport,
};
pub use rejection::{AuthRejection, RejectionKind};
pub use render::{MapRejection, MapRejectionFuture, MapRejectionLayer, login_redirect, safe_next};
pub use require::{Require, RequireLayer};
pub use secret::{SecretToken, StoreKey, constant_time_eq, random_handle};
pub use session_limit::{LimitPolicy, SessionLimit};
pub use store_error::StoreError;
pub use user_json::UserJson;
