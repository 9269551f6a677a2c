//! portcullis: authentication and authorization middleware for tower and axum.
//!
//! Three mechanisms, one interface. A layer authenticates the request (a session cookie, a
//! bearer JWT, or a short-lived access token backed by a revocable refresh session) and handlers
//! ask for [`CurrentUser<U>`](crate::CurrentUser) or [`Authorized<U, P>`](crate::Authorized)
//! without knowing which one is underneath.
//!
//! A [`LoginGuard`] wraps the application's own password check: a cap on
//! concurrent checks and back-off per account and per client address ([`login_guard`]); with
//! `redis`, `redis::RedisAttemptCounter` shares the counts between nodes. The [`Credentials`]
//! extractor reads a login (JSON or form, bounded); with `argon2`, `PasswordCheck` runs the
//! whole password step (argon2, decoy for unknown usernames, the guard) given the stored hash.
//!
//! | feature | what it adds |
//! |---|---|
//! | `axum` (default) | extractors and `IntoResponse` for rejections |
//! | `session` (default) | [`session`]: `SessionLayer`, `Session`, `MemoryStore` |
//! | `jwt` | [`jwt`]: `BearerLayer`, key sets, `TokenIssuer` |
//! | `hybrid` | [`hybrid`]: `HybridLayer`, refresh and revocation |
//! | `redis` | [`redis`]: the Redis backends of the mechanisms enabled (session store with `session`; refresh store and revocation feed with `hybrid`) and the login attempt counter |
//! | `postgres` | [`postgres`]: the PostgreSQL (sqlx) backends of the mechanisms enabled (session store with `session`; refresh store and revocation feed with `hybrid`) |
//! | `redis-tls` | `rediss://` URLs for those backends (rustls on `ring`) |
//! | `argon2` | `PasswordCheck` and `Argon2Verifier`: argon2 checks reusing a pool of hashing memory |
//! | `testing` | `testing::AuthenticateAsLayer` |
//!
//! `session` + `redis` (+ `redis-tls`) compiles no JWT code, no aws-lc-rs and no HTTP client:
//! `portcullis = { version = "0.1", default-features = false, features = ["axum", "session", "redis"] }`.
//!
//! The project README follows; its examples are compiled as doctests of this crate.
//!
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
// The README's snippets use every layer and the Redis and PostgreSQL stores: include it (and so compile them)
// when all are on, as on docs.rs and in CI (`--all-features`).
#![cfg_attr(
    all(
        feature = "session",
        feature = "jwt",
        feature = "hybrid",
        feature = "redis",
        feature = "postgres",
        feature = "axum"
    ),
    doc = include_str!("../../../README.md")
)]

#[doc(inline)]
pub use portcullis_core::*;

#[cfg(feature = "session")]
#[doc(inline)]
pub use portcullis_session as session;

#[cfg(feature = "jwt")]
#[doc(inline)]
pub use portcullis_jwt as jwt;

#[cfg(feature = "hybrid")]
#[doc(inline)]
pub use portcullis_hybrid as hybrid;

#[cfg(feature = "redis")]
#[doc(inline)]
pub use portcullis_redis as redis;

#[cfg(feature = "postgres")]
#[doc(inline)]
pub use portcullis_postgres as postgres;
