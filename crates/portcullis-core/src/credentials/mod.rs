//! The credential edge every layer shares: finding the auth cookie, writing `Set-Cookie`,
//! checking cookie settings, and parsing `Authorization: Bearer`. One rule per question, so the
//! session, bearer and hybrid layers answer a hostile request the same way.
//!
//! | request | answer |
//! |---|---|
//! | no auth cookie, no `Authorization` | anonymous |
//! | the auth cookie twice with one value | that value |
//! | the auth cookie several times with different values (cookie tossing, RFC 6265bis §8.5) | anonymous, nothing cleared |
//! | a cookie pair that is not valid text or has characters a cookie value cannot hold | that pair is skipped |
//! | `Authorization` with another scheme (`Basic`) | anonymous (another layer may handle it) |
//! | empty `Authorization`, `Bearer` alone, extra parts, two `Authorization` headers, non-visible characters, over 8 KiB | 400 `invalid_request` (RFC 6750 §3.1) |
//! | a credential body (login, refresh token) without `Content-Type`, with two, or not JSON / a form where one is read | 400 `invalid_request` ([`body_format`]) |

mod bearer;
mod body_format;
mod cookie_attributes;
mod cookie_header;
mod no_store;

pub use bearer::{MAX_AUTHORIZATION_BYTES, bearer_token};
pub use body_format::{BodyFormat, body_format};
pub use cookie_attributes::{CookieAttributes, CookieError, MAX_COOKIE_BYTES, SameSite};
pub use cookie_header::{PresentedCookie, find_cookie};
pub use no_store::add_no_store;
