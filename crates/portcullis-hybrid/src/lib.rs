//! Hybrid authentication: short-lived access JWTs checked at the edge without a store read,
//! refresh tokens rotated through a central store, and revocation pushed to every node.

mod revocation;
mod store;

pub use revocation::{Revocation, RevocationFeed, RevocationList};
pub use store::{RefreshRecord, RefreshStore, RotatedToken};
