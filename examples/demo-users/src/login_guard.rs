//! The login guard the example apps wrap the demo password check in (issue 18): at most a few
//! argon2 checks at once, back-off per account and per client address, counted in memory or,
//! when the app has a Redis, in Redis so every instance sees the same failures.
//!
//! | variable | default | what |
//! |---|---|---|
//! | `LOGIN_FREE_FAILURES` | 5 | failed logins of one account before the first lock-out |
//! | `LOGIN_CLIENT_FREE_FAILURES` | 100 | failed logins from one address before its first lock-out |
//! | `LOGIN_BACKOFF_SECS` | 1 | the first lock-out; each further failure doubles it |
//! | `LOGIN_BACKOFF_MAX_SECS` | 900 | the longest lock-out |
//! | `LOGIN_MAX_CONCURRENT` | cores, at most 4 | password checks at once |
//! | `LOGIN_MAX_WAITING` | 16 | logins waiting for a check; more get 503 |
//! | `LOGIN_GUARD_SECRET` | none | mixed into the counter's keys (give every instance the same) |

use std::{fmt, time::Duration};

use portcullis_core::{
    AttemptCounter, AttemptKey, Backoff, LoginGuard, MemoryAttemptCounter, StoreError,
};
use portcullis_redis::{RedisAttemptCounter, RedisConnection};

/// Where the demo apps count failed logins: in memory, or in the app's Redis.
#[derive(Debug, Clone)]
pub enum DemoAttemptCounter {
    /// This process only.
    Memory(MemoryAttemptCounter),
    /// Shared by every instance using the same Redis.
    Redis(RedisAttemptCounter),
}

impl AttemptCounter for DemoAttemptCounter {
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

/// The guard the demo apps use.
pub type DemoLoginGuard = LoginGuard<DemoAttemptCounter>;

/// A `LOGIN_*` variable the apps cannot use.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {value:?} is not a positive whole number")]
pub struct LoginGuardSettingsError {
    /// The variable.
    pub name: &'static str,
    /// Its value.
    pub value: String,
}

/// The `LOGIN_*` settings (see the module docs).
#[derive(Clone, Default)]
pub struct LoginGuardSettings {
    free_failures: Option<u32>,
    client_free_failures: Option<u32>,
    backoff_secs: Option<u32>,
    backoff_max_secs: Option<u32>,
    max_concurrent: Option<u32>,
    max_waiting: Option<u32>,
    secret: Option<String>,
}

impl fmt::Debug for LoginGuardSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginGuardSettings")
            .field("free_failures", &self.free_failures)
            .field("client_free_failures", &self.client_free_failures)
            .field("backoff_secs", &self.backoff_secs)
            .field("backoff_max_secs", &self.backoff_max_secs)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_waiting", &self.max_waiting)
            .field("secret", &self.secret.as_ref().map(|_| "REDACTED"))
            .finish()
    }
}

impl LoginGuardSettings {
    /// Reads the `LOGIN_*` variables through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// A variable that is not a whole number (zero is refused for all but
    /// `LOGIN_MAX_WAITING`).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LoginGuardSettingsError> {
        let number = |name: &'static str, zero_ok: bool| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .map(|value| match value.trim().parse::<u32>() {
                    Ok(n) if n > 0 || zero_ok => Ok(n),
                    _ => Err(LoginGuardSettingsError { name, value }),
                })
                .transpose()
        };
        Ok(Self {
            free_failures: number("LOGIN_FREE_FAILURES", false)?,
            client_free_failures: number("LOGIN_CLIENT_FREE_FAILURES", false)?,
            backoff_secs: number("LOGIN_BACKOFF_SECS", false)?,
            backoff_max_secs: number("LOGIN_BACKOFF_MAX_SECS", false)?,
            max_concurrent: number("LOGIN_MAX_CONCURRENT", false)?,
            max_waiting: number("LOGIN_MAX_WAITING", true)?,
            secret: lookup("LOGIN_GUARD_SECRET").filter(|s| !s.is_empty()),
        })
    }

    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// As [`LoginGuardSettings::from_lookup`].
    pub fn from_env() -> Result<Self, LoginGuardSettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The guard: counting in `redis` when given, in memory otherwise.
    pub fn guard(&self, redis: Option<RedisConnection>) -> DemoLoginGuard {
        let counter = match redis {
            Some(redis) => DemoAttemptCounter::Redis(RedisAttemptCounter::new(redis)),
            None => DemoAttemptCounter::Memory(MemoryAttemptCounter::new()),
        };
        let backoff = |defaults: Backoff, free: Option<u32>| {
            let base = self
                .backoff_secs
                .map_or(defaults.base_lockout(), |s| Duration::from_secs(s.into()));
            let backoff = Backoff::new(free.unwrap_or(defaults.free_failures()), base);
            match self.backoff_max_secs {
                Some(max) => backoff.max(Duration::from_secs(max.into())),
                None => backoff,
            }
        };
        let mut guard = LoginGuard::new(counter)
            .account_backoff(backoff(Backoff::per_account(), self.free_failures))
            .client_backoff(backoff(Backoff::per_client(), self.client_free_failures));
        if let Some(max) = self.max_concurrent {
            guard = guard.max_concurrent(max as usize);
        }
        if let Some(max) = self.max_waiting {
            guard = guard.max_waiting(max as usize);
        }
        if let Some(secret) = &self.secret {
            guard = guard.key_secret(secret.as_bytes());
        }
        guard
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<LoginGuardSettings, LoginGuardSettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        LoginGuardSettings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn settings_parse_refuse_nonsense_and_hide_the_secret() {
        let parsed = settings(&[
            ("LOGIN_FREE_FAILURES", "3"),
            ("LOGIN_MAX_CONCURRENT", "2"),
            ("LOGIN_MAX_WAITING", "0"),
            ("LOGIN_GUARD_SECRET", "hunter2"),
        ])
        .unwrap();
        assert!(!format!("{parsed:?}").contains("hunter2"));
        let guard = parsed.guard(None);
        assert_eq!(guard.concurrency_limit(), 2);
        assert!(matches!(guard.counter(), DemoAttemptCounter::Memory(_)));
        for (name, value) in [
            ("LOGIN_FREE_FAILURES", "0"),
            ("LOGIN_BACKOFF_SECS", "-1"),
            ("LOGIN_MAX_CONCURRENT", "many"),
        ] {
            let error = settings(&[(name, value)]).unwrap_err();
            assert_eq!(error.name, name);
        }
    }
}
