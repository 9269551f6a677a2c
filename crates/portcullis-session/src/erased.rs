//! [`ErasedStore`]: an object-safe mirror of [`SessionStore`], so the layer has no store type
//! parameter.

use std::{future::Future, pin::Pin};

use portcullis_core::{StoreError, StoreKey, UserJson};

use crate::store::{CreateOutcome, SaveOutcome, SessionLimit, SessionRecord, SessionStore};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStore`] with boxed futures, so the per-request state is not generic over the store
/// and `Session` is one type whatever the backend.
pub(crate) trait ErasedStore: Send + Sync + 'static {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>>;
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>>;
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<SaveOutcome, StoreError>>;
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>>;
    fn list_by_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>>;
    fn delete_by_handle<'a>(
        &'a self,
        user_id: &'a str,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete_by_user<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a StoreKey>,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    fn replace_user<'a>(
        &'a self,
        user_id: &'a str,
        user: &'a UserJson,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

impl<S: SessionStore> ErasedStore for S {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(SessionStore::load(self, key))
    }
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>> {
        Box::pin(SessionStore::create(self, key, record, limit))
    }
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<SaveOutcome, StoreError>> {
        Box::pin(SessionStore::save(self, key, record, expected_version))
    }
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::touch(self, key, last_seen_at, expires_at))
    }
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::delete(self, key))
    }
    fn list_by_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(SessionStore::list_by_user(self, user_id))
    }
    fn delete_by_handle<'a>(
        &'a self,
        user_id: &'a str,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::delete_by_handle(self, user_id, handle))
    }
    fn delete_by_user<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a StoreKey>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(SessionStore::delete_by_user(self, user_id, keep))
    }
    fn replace_user<'a>(
        &'a self,
        user_id: &'a str,
        user: &'a UserJson,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(SessionStore::replace_user(self, user_id, user))
    }
}
