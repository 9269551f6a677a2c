//! Session-cookie authentication: an opaque random ID in a cookie, the state in a store.

mod store;

pub use store::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};
