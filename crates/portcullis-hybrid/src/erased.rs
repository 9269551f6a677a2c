//! Object-safe mirrors of the store, feed and reload traits, so [`HybridSessions`] has no type
//! parameters.
//!
//! [`HybridSessions`]: crate::HybridSessions

use std::{future::Future, pin::Pin};

use portcullis_core::{SessionLimit, StoreError};
use serde_json::Value;

use crate::{
    CreateOutcome, RefreshRecord, RefreshStore, ReloadUser, Revocation, RevocationFeed,
    RevocationList, UserRevocation,
};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

// Object-safe mirrors of the store traits, so `HybridSessions` has no type parameters and the
// backend can be chosen at run time (memory or Redis, from configuration).
pub(crate) trait DynRefreshStore: Send + Sync {
    fn create<'a>(
        &'a self,
        record: &'a RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>>;
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>>;
    fn compare_and_swap<'a>(
        &'a self,
        record: &'a RefreshRecord,
        expected: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>>;
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>>;
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>>;
    fn purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
}

impl<T: RefreshStore> DynRefreshStore for T {
    fn create<'a>(
        &'a self,
        record: &'a RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>> {
        Box::pin(RefreshStore::create(self, record, limit))
    }
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::load(self, id))
    }
    fn compare_and_swap<'a>(
        &'a self,
        record: &'a RefreshRecord,
        expected: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(RefreshStore::compare_and_swap(self, record, expected))
    }
    fn delete<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::delete(self, id))
    }
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::list_by_user(self, user))
    }
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::delete_by_user(self, user, keep))
    }
    fn purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(RefreshStore::purge_expired(self))
    }
}

pub(crate) trait DynRevocationFeed: Send + Sync {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>>;
    fn publish_user<'a>(
        &'a self,
        revocation: &'a UserRevocation,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn subscribe(&self, list: RevocationList) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<T: RevocationFeed> DynRevocationFeed for T {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(RevocationFeed::publish(self, revocation))
    }
    fn publish_user<'a>(
        &'a self,
        revocation: &'a UserRevocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(RevocationFeed::publish_user(self, revocation))
    }
    fn subscribe(&self, list: RevocationList) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(RevocationFeed::subscribe(self, list))
    }
}

pub(crate) trait DynReloadUser: Send + Sync {
    fn reload(
        &self,
        user_id: String,
        user: Value,
    ) -> BoxFuture<'_, Result<Option<Value>, StoreError>>;
}

impl<T: ReloadUser> DynReloadUser for T {
    fn reload(
        &self,
        user_id: String,
        user: Value,
    ) -> BoxFuture<'_, Result<Option<Value>, StoreError>> {
        Box::pin(ReloadUser::reload(self, user_id, user))
    }
}
