//! Revocation at the edge: the feed and list live in `portcullis_core::revocation`, shared
//! with the session layer's user loader and the bearer layer; re-exported here.

pub use portcullis_core::revocation::{
    InProcessFeed, Revocation, RevocationFeed, RevocationList, UserRevocation,
};
