//! Where failed logins are counted: the [`AttemptCounter`] trait a backend implements, and the
//! [`AttemptKey`] it counts under (a keyed hash, so a dump of the counter names no account and
//! no address).
//!
//! # Implementing a counter
//!
//! A counter keeps, per key, the number of consecutive failures and when the current lock-out
//! ends, and forgets both after [`Backoff::remember_for`]. Every method must be atomic per key
//! when several nodes share the backend. Errors fail closed: the guard answers 503.
//!
//! ```
//! use std::{collections::HashMap, sync::Mutex, time::{Duration, Instant}};
//! use portcullis_core::{AttemptCounter, AttemptKey, Backoff, StoreError};
//!
//! /// Remembers forever: fine for a test, not for production (see `MemoryAttemptCounter`).
//! #[derive(Default)]
//! struct Naive(Mutex<HashMap<[u8; 32], (u32, Instant)>>);
//!
//! impl AttemptCounter for Naive {
//!     async fn lockout(&self, key: &AttemptKey) -> Result<Option<Duration>, StoreError> {
//!         let table = self.0.lock().unwrap();
//!         Ok(table.get(key.as_bytes()).and_then(|(_, until)| {
//!             let left = until.saturating_duration_since(Instant::now());
//!             (!left.is_zero()).then_some(left)
//!         }))
//!     }
//!
//!     async fn record_failure(
//!         &self,
//!         key: &AttemptKey,
//!         backoff: &Backoff,
//!     ) -> Result<Option<Duration>, StoreError> {
//!         let mut table = self.0.lock().unwrap();
//!         let entry = table.entry(*key.as_bytes()).or_insert((0, Instant::now()));
//!         entry.0 += 1;
//!         let lockout = backoff.lockout_after(entry.0);
//!         entry.1 = Instant::now() + lockout.unwrap_or_default();
//!         Ok(lockout)
//!     }
//!
//!     async fn reset(&self, key: &AttemptKey) -> Result<(), StoreError> {
//!         self.0.lock().unwrap().remove(key.as_bytes());
//!         Ok(())
//!     }
//! }
//! ```

use std::{fmt, future::Future, net::IpAddr, time::Duration};

use sha2::{Digest, Sha256};

use crate::{StoreError, login_guard::Backoff};

/// Counts failed logins per key and says how long a key is locked out.
///
/// Implemented by [`MemoryAttemptCounter`](crate::MemoryAttemptCounter) for one node and by
/// `portcullis_redis::RedisAttemptCounter` for several nodes sharing a Redis.
pub trait AttemptCounter: Send + Sync + 'static {
    /// How much longer `key` is locked out; `None` when it may try now.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the backend cannot answer (the guard then fails closed with 503).
    fn lockout(
        &self,
        key: &AttemptKey,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// Counts one more failure of `key` and locks it out as `backoff` says; returns the new
    /// lock-out, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the failure could not be counted.
    fn record_failure(
        &self,
        key: &AttemptKey,
        backoff: &Backoff,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send;

    /// Forgets the failures of `key` (after a successful login).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when the backend cannot answer.
    fn reset(&self, key: &AttemptKey) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a counter counts under: the SHA-256 of a secret, a scope (`account` or `client`) and
/// the account name or client network. A dump of the counter reveals neither usernames nor
/// addresses to whoever lacks the secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AttemptKey([u8; 32]);

impl AttemptKey {
    /// A key from raw bytes (a counter's tests, or a backend reading keys back).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The digest as lowercase hex, for backends keyed by strings.
    pub fn to_hex(&self) -> String {
        crate::StoreKey::from_bytes(self.0).to_hex()
    }

    /// The key of an account. Names are compared case-insensitively, so `Alice` and `alice`
    /// share one counter even where the user table tells them apart.
    pub(crate) fn account(secret: &[u8; 32], name: &str) -> Self {
        Self::derive(secret, b"account", name.to_lowercase().as_bytes())
    }

    /// The key of a client address: an IPv4 address, or the /64 network of an IPv6 address
    /// (one subscriber usually holds a whole /64, so counting single IPv6 addresses would let
    /// one client rotate through 2^64 of them).
    pub(crate) fn client(secret: &[u8; 32], address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => Self::derive(secret, b"client4", &v4.octets()),
            IpAddr::V6(v6) => Self::derive(secret, b"client6", &v6.octets()[..8]),
        }
    }

    fn derive(secret: &[u8; 32], scope: &[u8], value: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"portcullis login guard\0");
        hasher.update(secret);
        hasher.update(scope);
        hasher.update([0]);
        hasher.update(value);
        Self(hasher.finalize().into())
    }
}

impl fmt::Debug for AttemptKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        write!(f, "AttemptKey({}..)", &hex[..12])
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv6Addr;

    use super::*;

    #[test]
    fn keys_hide_their_input_and_depend_on_the_secret() {
        let secret = [7; 32];
        let alice = AttemptKey::account(&secret, "alice");
        assert_eq!(alice, AttemptKey::account(&secret, "ALICE"));
        assert_ne!(alice, AttemptKey::account(&secret, "bob"));
        assert_ne!(alice, AttemptKey::account(&[8; 32], "alice"));
        assert!(!alice.to_hex().contains("616c696365"), "hex of the name");
        assert!(!format!("{alice:?}").contains("alice"));
    }

    #[test]
    fn ipv6_clients_count_per_64_network_and_mapped_ipv4_as_ipv4() {
        let secret = [0; 32];
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(
            AttemptKey::client(&secret, a),
            AttemptKey::client(&secret, b)
        );
        assert_ne!(
            AttemptKey::client(&secret, a),
            AttemptKey::client(&secret, other)
        );
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped = IpAddr::V6(Ipv6Addr::from([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0201]));
        assert_eq!(
            AttemptKey::client(&secret, v4),
            AttemptKey::client(&secret, mapped)
        );
        assert_ne!(
            AttemptKey::client(&secret, v4),
            AttemptKey::account(&secret, "192.0.2.1")
        );
    }
}
