//! Hybrid authentication: short-lived access JWTs checked at the edge without a store read,
//! refresh tokens rotated through a central store, and revocation pushed to every node.

mod memory;
mod refresh_token;
mod revocation;
mod rotation;
mod store;

pub use memory::{InProcessFeed, MemoryRefreshStore};
pub use refresh_token::{MAX_REFRESH_TOKEN_LEN, RefreshToken};
pub use revocation::{Revocation, RevocationFeed, RevocationList};
pub use store::{RefreshRecord, RefreshStore, RotatedToken, SealedSecret};
