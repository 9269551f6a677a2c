//! The login guard every password check runs in (README, "Failed logins"): a few argon2 checks
//! at once, back-off per account and per client address, counted in memory or, with
//! `REDIS_URL`, in Redis so every instance sees the same failures. Configured by the `LOGIN_*`
//! variables.

use std::time::Duration;

use portcullis_core::{
    AttemptCounter, AttemptKey, Backoff, LoginGuard, MemoryAttemptCounter, StoreError,
};
use portcullis_redis::{RedisAttemptCounter, RedisConnection};

/// Where failed logins are counted: in memory, or in Redis for every instance.
#[derive(Debug, Clone)]
pub(crate) enum Attempts {
    /// This process only.
    Memory(MemoryAttemptCounter),
    /// Shared by every instance using the same Redis.
    Redis(RedisAttemptCounter),
}

impl AttemptCounter for Attempts {
    async fn lockout(&self, key: &AttemptKey) -> Result<Option<Duration>, StoreError> {
        match self {
            Self::Memory(counter) => counter.lockout(key).await,
            Self::Redis(counter) => counter.lockout(key).await,
        }
    }

    async fn record_failure(
        &self,
        key: &AttemptKey,
        backoff: &Backoff,
    ) -> Result<Option<Duration>, StoreError> {
        match self {
            Self::Memory(counter) => counter.record_failure(key, backoff).await,
            Self::Redis(counter) => counter.record_failure(key, backoff).await,
        }
    }

    async fn reset(&self, key: &AttemptKey) -> Result<(), StoreError> {
        match self {
            Self::Memory(counter) => counter.reset(key).await,
            Self::Redis(counter) => counter.reset(key).await,
        }
    }
}

/// A `LOGIN_*` variable that is not a positive whole number (`LOGIN_MAX_WAITING` may be 0).
#[derive(Debug, thiserror::Error)]
#[error("{name}: {value:?} is not a positive whole number")]
pub struct LoginSettingsError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
}

/// The guard from the `LOGIN_*` variables read through `lookup`, counting in `redis` when
/// given. Unset variables keep the library's defaults (README, "Failed logins").
pub(crate) fn login_guard(
    lookup: impl Fn(&str) -> Option<String>,
    redis: Option<RedisConnection>,
) -> Result<LoginGuard<Attempts>, LoginSettingsError> {
    let number = |name: &'static str, zero_ok: bool| {
        lookup(name)
            .filter(|value| !value.trim().is_empty())
            .map(|value| match value.trim().parse::<u32>() {
                Ok(n) if n > 0 || zero_ok => Ok(n),
                _ => Err(LoginSettingsError { name, value }),
            })
            .transpose()
    };
    let base = number("LOGIN_BACKOFF_SECS", false)?;
    let max = number("LOGIN_BACKOFF_MAX_SECS", false)?;
    let backoff = |defaults: Backoff, free: Option<u32>| {
        let base = base.map_or(defaults.base_lockout(), |s| Duration::from_secs(s.into()));
        let backoff = Backoff::new(free.unwrap_or(defaults.free_failures()), base);
        match max {
            Some(max) => backoff.max(Duration::from_secs(max.into())),
            None => backoff,
        }
    };
    let counter = match redis {
        Some(redis) => Attempts::Redis(RedisAttemptCounter::new(redis)),
        None => Attempts::Memory(MemoryAttemptCounter::new()),
    };
    let account = backoff(
        Backoff::per_account(),
        number("LOGIN_FREE_FAILURES", false)?,
    );
    let client = backoff(
        Backoff::per_client(),
        number("LOGIN_CLIENT_FREE_FAILURES", false)?,
    );
    let mut guard = LoginGuard::new(counter)
        .account_backoff(account)
        .client_backoff(client);
    if let Some(max) = number("LOGIN_MAX_CONCURRENT", false)? {
        guard = guard.max_concurrent(max as usize);
    }
    if let Some(max) = number("LOGIN_MAX_WAITING", true)? {
        guard = guard.max_waiting(max as usize);
    }
    // Mixed into the counter's keys, so a Redis dump names no account.
    if let Some(secret) = lookup("LOGIN_GUARD_SECRET").filter(|s| !s.is_empty()) {
        guard = guard.key_secret(secret.as_bytes());
    }
    Ok(guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(vars: &[(&str, &str)]) -> Result<LoginGuard<Attempts>, LoginSettingsError> {
        login_guard(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).into())
            },
            None,
        )
    }

    #[test]
    fn settings_apply_and_nonsense_is_named() {
        let parsed = guard(&[("LOGIN_MAX_CONCURRENT", "2"), ("LOGIN_MAX_WAITING", "0")]).unwrap();
        assert_eq!(parsed.concurrency_limit(), 2);
        assert!(matches!(parsed.counter(), Attempts::Memory(_)));
        for (name, value) in [
            ("LOGIN_FREE_FAILURES", "0"),
            ("LOGIN_BACKOFF_SECS", "-1"),
            ("LOGIN_MAX_CONCURRENT", "many"),
        ] {
            assert_eq!(guard(&[(name, value)]).unwrap_err().name, name);
        }
    }
}
