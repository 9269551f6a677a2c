//! Session-cookie authentication for tower and axum: an opaque random ID in a cookie, the state
//! in a store.
//!
//! - [`SessionLayer`] reads the `__Host-session` cookie (HttpOnly, Secure, SameSite=Lax, Path=/
//!   by default, see [`SessionConfig`]), refuses cross-site unsafe requests that carry it, and
//!   makes `CurrentUser<U>`, `Authorized<U, P>` and [`Session`] work. Nothing touches the store
//!   unless a handler or guard asks, and then once per request.
//! - [`Session`] holds auxiliary data (typed `get`/`insert`/`remove`), signs users in and out
//!   with a new ID on every login ([`Session::login`], [`Session::cycle_id`]), and lists and
//!   revokes the user's sessions.
//! - [`SessionStore`] is the backend contract; [`MemoryStore`] is the embedded one.
//!
//! # Lifetimes
//!
//! Every session has an idle (rolling) and an absolute deadline (OWASP Session Management Cheat
//! Sheet, "Session Expiration"). A request that only reads the session writes to the store only
//! when the idle deadline would move by the touch interval; a request that changed data writes
//! once after the handler. The cookie is a browser-session cookie, or persistent until the
//! absolute deadline for a "remember me" login ([`LoginOptions::remember_me`]).
//!
//! # Concurrent requests
//!
//! Saves are compare-and-set on the record's version. A request that loses the race reloads
//! the record, re-applies only the keys it changed and tries again (a bounded number of times,
//! then 503), so two requests writing different keys of one session both land.
//!
//! # Failures
//!
//! A forged, malformed, oversized, expired or revoked cookie is anonymous and gets cleared
//! (`Max-Age=0` with the same name, Path and Secure). A store error is a 503 with
//! `Retry-After`, never a 500 and never an open door.
//!
//! # Memory
//!
//! [`MemoryStore`] at one million signed-in sessions (user id, a small user object, an 80-byte
//! user agent, no auxiliary data, four sessions per user) holds 401 bytes per session on the
//! heap (requested sizes) and grows the resident set by 492 bytes per session, so the default
//! cap of one million sessions needs about 500 MB. Measure your own shape with
//! `cargo run --release -p portcullis-session --example memory_footprint [-- COUNT]`.
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

mod config;
mod erased;
mod error;
mod handle;
mod layer;
mod loader;
#[cfg(all(test, feature = "axum"))]
mod loader_tests;
mod login_options;
mod memory;
mod session;
mod session_info;
mod store;

pub use config::{ConfigError, SameSite, SessionConfig};
pub use error::SessionError;
pub use handle::Session;
pub use layer::{ResponseFuture, SessionLayer, SessionService};
pub use loader::{DEFAULT_CAPACITY, DEFAULT_MAX_AGE, LoadUser, UserLoader, UserLoaderBuilder};
pub use login_options::LoginOptions;
pub use memory::{MemoryStore, MemoryStoreConfig};
pub use session_info::SessionInfo;
pub use store::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};
