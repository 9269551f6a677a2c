//! [`DynamicKeys`]: verification keys that change while a key set is in use (an issuer's
//! rotating keys).

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicU64, Ordering},
};

use crate::verifying_key::VerifyingKey;

/// Keys that change while the set is in use: an issuer's rotating keys.
pub(crate) struct DynamicKeys {
    keys: RwLock<Arc<[Arc<VerifyingKey>]>>,
    /// Counts replacements, so caches of verified tokens can tell the keys changed.
    pub(crate) epoch: AtomicU64,
}

impl DynamicKeys {
    pub(crate) fn new(keys: Vec<Arc<VerifyingKey>>) -> Self {
        Self {
            keys: RwLock::new(keys.into()),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn replace(&self, keys: Vec<Arc<VerifyingKey>>) {
        let mut guard = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let same = guard.len() == keys.len()
            && guard
                .iter()
                .zip(&keys)
                .all(|(old, new)| Arc::ptr_eq(old, new));
        if !same {
            *guard = keys.into();
            self.epoch.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<[Arc<VerifyingKey>]> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on the current keys under the read lock (no reference count traffic).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&[Arc<VerifyingKey>]) -> T) -> T {
        f(&self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}
