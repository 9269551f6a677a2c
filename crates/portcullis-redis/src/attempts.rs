//! [`RedisAttemptCounter`]: the login guard's failed-login counts on Redis or Redis Cluster,
//! shared by every node, so an attacker gains nothing by spreading guesses over them.
//!
//! A key's count lives at `{<prefix>:la:<key hex>}:n` and its lock-out at
//! `{<prefix>:la:<key hex>}:l`; the hash tag keeps both on one cluster slot, so one Lua script
//! counts a failure and sets the lock-out atomically. The lock-out is a key expiring when the
//! lock-out ends (Redis's own clock judges it, so nodes need not agree on the time), and the
//! count expires a window after it.

use std::{sync::LazyLock, time::Duration};

use portcullis_core::{AttemptCounter, AttemptKey, Backoff, StoreError};
use redis::Script;

use crate::connection::RedisConnection;

/// KEYS: count, lock. ARGV: free failures, base ms, max ms, window ms. Returns the lock-out in
/// ms (0: none). The same doubling as `Backoff::lockout_after`; a longer lock-out already set
/// (by a concurrent failure) is kept.
static RECORD_FAILURE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local failures = redis.call('INCR', KEYS[1])
local lockout = 0
local free = tonumber(ARGV[1])
if failures >= free then
  local doublings = math.min(failures - free, 62)
  lockout = math.min(tonumber(ARGV[2]) * (2 ^ doublings), tonumber(ARGV[3]))
  lockout = math.floor(lockout)
  if lockout > 0 and redis.call('PTTL', KEYS[2]) < lockout then
    redis.call('SET', KEYS[2], '1', 'PX', lockout)
  end
end
redis.call('PEXPIRE', KEYS[1], lockout + tonumber(ARGV[4]))
return lockout",
    )
});

/// An [`AttemptCounter`] on Redis or Redis Cluster. Clones share the connection.
///
/// One round trip per call: `PTTL` for a lock-out check, a script for a failure, `DEL` for a
/// reset. The keys hold no username or address, only the guard's keyed hash.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_core::LoginGuard;
/// use portcullis_redis::{RedisAttemptCounter, RedisConfig};
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379").build()?;
/// // Every node: the same Redis and the same key secret.
/// let guard = LoginGuard::new(RedisAttemptCounter::new(redis)).key_secret(b"shared secret");
/// # let _ = guard;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisAttemptCounter {
    redis: RedisConnection,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl RedisAttemptCounter {
    /// A counter on `redis`.
    pub fn new(redis: RedisConnection) -> Self {
        Self { redis }
    }

    fn keys(&self, key: &AttemptKey) -> (String, String) {
        let tag = format!("{{{}:la:{}}}", self.redis.key_prefix(), key.to_hex());
        (format!("{tag}:n"), format!("{tag}:l"))
    }
}

impl AttemptCounter for RedisAttemptCounter {
    async fn lockout(&self, key: &AttemptKey) -> Result<Option<Duration>, StoreError> {
        let (_, lock) = self.keys(key);
        self.redis
            .bounded(async {
                // -2: no key, -1: no expiry (never written so); both mean "not locked".
                let left: i64 = self.redis.query(redis::cmd("PTTL").arg(&lock)).await?;
                Ok(u64::try_from(left)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .map(Duration::from_millis))
            })
            .await
    }

    async fn record_failure(
        &self,
        key: &AttemptKey,
        backoff: &Backoff,
    ) -> Result<Option<Duration>, StoreError> {
        let (count, lock) = self.keys(key);
        let mut invocation = RECORD_FAILURE.prepare_invoke();
        invocation
            .key(&count)
            .key(&lock)
            .arg(backoff.free_failures())
            .arg(millis(backoff.base_lockout()))
            .arg(millis(backoff.max_lockout()))
            .arg(millis(backoff.window_length()));
        self.redis
            .bounded(async {
                let lockout: u64 = self.redis.eval(&invocation).await?;
                Ok((lockout > 0).then(|| Duration::from_millis(lockout)))
            })
            .await
    }

    async fn reset(&self, key: &AttemptKey) -> Result<(), StoreError> {
        let (count, lock) = self.keys(key);
        self.redis
            .bounded(async {
                let _: i64 = self
                    .redis
                    .query(redis::cmd("DEL").arg(&count).arg(&lock))
                    .await?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RedisConfig;

    #[tokio::test]
    async fn an_unreachable_redis_is_a_store_error_not_a_lockout_or_a_pass() {
        let redis = RedisConfig::new("redis://127.0.0.1:1")
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let counter = RedisAttemptCounter::new(redis);
        let key = AttemptKey::from_bytes([1; 32]);
        assert!(counter.lockout(&key).await.is_err());
        assert!(
            counter
                .record_failure(&key, &Backoff::per_account())
                .await
                .is_err()
        );
        assert!(counter.reset(&key).await.is_err());
    }

    #[test]
    fn keys_share_a_slot_and_hold_only_the_hash() {
        let redis_keys = |prefix: &str| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let _entered = runtime.enter();
            let redis = RedisConfig::new("redis://127.0.0.1:1")
                .key_prefix(prefix)
                .build()
                .unwrap();
            RedisAttemptCounter::new(redis).keys(&AttemptKey::from_bytes([0xab; 32]))
        };
        let (count, lock) = redis_keys("app");
        let tag = format!("{{app:la:{}}}", "ab".repeat(32));
        assert_eq!(count, format!("{tag}:n"));
        assert_eq!(lock, format!("{tag}:l"));
    }
}
