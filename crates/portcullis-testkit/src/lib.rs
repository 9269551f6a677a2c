//! Conformance suites for portcullis stores: the [`SessionStore`] and [`RefreshStore`]
//! contracts written once as test cases, so a new backend (a database, a key-value service) is
//! checked against exactly the rules the built-in memory and Redis stores pass.
//!
//! | feature | suite |
//! |---|---|
//! | `session` (default) | [`conformance::session_store`], [`session_store_conformance!`] |
//! | `hybrid` (default) | [`conformance::refresh_store`], [`refresh_store_conformance!`] |
//!
//! Each suite is a set of `pub async fn case(store, clock)` functions, a macro that expands to
//! one `#[tokio::test]` per case for your constructor (put it in a test file), and a `run_all`
//! that runs them in turn. The constructor is handed a [`ManualClock`](portcullis_core::ManualClock):
//! the store must judge expiry by it, so the cases can move time without sleeping. Cases use
//! user and session ids of their own and never flush anything, so one shared database is fine.
//!
//! ```
//! // tests/conformance.rs of your store's crate (here the built-in memory store)
//! # #[cfg(feature = "hybrid")]
//! # mod conformance {
//! use std::sync::Arc;
//!
//! fn store(clock: portcullis_core::ManualClock) -> portcullis_hybrid::MemoryRefreshStore {
//!     portcullis_hybrid::MemoryRefreshStore::new().with_clock(Arc::new(clock))
//! }
//! portcullis_testkit::refresh_store_conformance!(store);
//! # }
//! # fn main() {}
//! ```
//!
//! # Example: a toy refresh store, checked
//!
//! A [`RefreshStore`] over one mutex-guarded map, the smallest store that passes the suite:
//!
//! ```
//! # #[cfg(feature = "hybrid")] {
//! use std::{collections::BTreeMap, sync::{Arc, Mutex}};
//!
//! use portcullis_core::{Clock, ManualClock, StoreError};
//! use portcullis_hybrid::{CreateOutcome, LimitPolicy, RefreshRecord, RefreshStore, SessionLimit};
//!
//! #[derive(Clone)]
//! struct ToyStore {
//!     clock: ManualClock,
//!     records: Arc<Mutex<BTreeMap<String, RefreshRecord>>>,
//! }
//!
//! impl ToyStore {
//!     /// The live records, the expired ones dropped first.
//!     fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RefreshRecord>> {
//!         let now = self.clock.unix_seconds();
//!         let mut records = self.records.lock().unwrap();
//!         records.retain(|_, record| record.expires_at() > now);
//!         records
//!     }
//!
//!     /// The user's records, oldest first.
//!     fn of_user(records: &BTreeMap<String, RefreshRecord>, user_id: &str) -> Vec<RefreshRecord> {
//!         let mut mine: Vec<_> = records.values().filter(|r| r.user_id == user_id).cloned().collect();
//!         mine.sort_by(|a, b| (a.created_at, &a.session_id).cmp(&(b.created_at, &b.session_id)));
//!         mine
//!     }
//! }
//!
//! impl RefreshStore for ToyStore {
//!     async fn create(&self, record: &RefreshRecord, limit: Option<SessionLimit>)
//!         -> Result<CreateOutcome, StoreError> {
//!         // One lock for the count and the insert: parallel logins cannot both fit.
//!         let mut records = self.live();
//!         let mut evicted = Vec::new();
//!         if let Some(limit) = limit {
//!             let mine = Self::of_user(&records, &record.user_id);
//!             let max = limit.max.max(1) as usize;
//!             if mine.len() >= max {
//!                 if limit.policy == LimitPolicy::RefuseNew {
//!                     return Ok(CreateOutcome::LimitReached);
//!                 }
//!                 for old in mine.iter().take(mine.len() + 1 - max) {
//!                     records.remove(&old.session_id);
//!                     evicted.push(old.session_id.clone());
//!                 }
//!             }
//!         }
//!         records.insert(record.session_id.clone(), record.clone());
//!         Ok(CreateOutcome::Created { evicted })
//!     }
//!
//!     async fn load(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
//!         Ok(self.live().get(session_id).cloned())
//!     }
//!
//!     async fn compare_and_swap(&self, record: &RefreshRecord, expected_generation: u64)
//!         -> Result<bool, StoreError> {
//!         let mut records = self.live();
//!         match records.get_mut(&record.session_id) {
//!             Some(stored) if stored.generation == expected_generation => {
//!                 *stored = record.clone();
//!                 Ok(true)
//!             }
//!             _ => Ok(false),
//!         }
//!     }
//!
//!     async fn delete(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
//!         Ok(self.live().remove(session_id))
//!     }
//!
//!     async fn list_by_user(&self, user_id: &str) -> Result<Vec<RefreshRecord>, StoreError> {
//!         Ok(Self::of_user(&self.live(), user_id))
//!     }
//!
//!     async fn delete_by_user(&self, user_id: &str, keep: Option<&str>)
//!         -> Result<Vec<RefreshRecord>, StoreError> {
//!         let mut records = self.live();
//!         let doomed: Vec<_> = Self::of_user(&records, user_id)
//!             .into_iter()
//!             .filter(|r| Some(r.session_id.as_str()) != keep)
//!             .collect();
//!         for record in &doomed {
//!             records.remove(&record.session_id);
//!         }
//!         Ok(doomed)
//!     }
//! }
//!
//! tokio::runtime::Runtime::new().unwrap().block_on(
//!     portcullis_testkit::conformance::refresh_store::run_all(|clock| ToyStore {
//!         clock,
//!         records: Arc::default(),
//!     }),
//! );
//! # }
//! ```
//!
//! The [`SessionStore`] suite is used the same way, with [`session_store_conformance!`] or
//! [`conformance::session_store::run_all`].
//!
//! [`SessionStore`]: https://docs.rs/portcullis-session/latest/portcullis_session/trait.SessionStore.html
//! [`RefreshStore`]: https://docs.rs/portcullis-hybrid/latest/portcullis_hybrid/trait.RefreshStore.html

// Unlike the other library crates, this one does not deny `clippy::panic` and friends: its
// cases are assertions, and a failed one panics on purpose, as in any test.

pub mod conformance;
