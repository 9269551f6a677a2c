//! How long a login waits after repeated failures: some free failures, then a lock-out that
//! doubles with every further failure, forgotten after a quiet window.

use std::time::Duration;

/// The back-off applied to one account or one client address after failed logins.
///
/// The first `free_failures - 1` failures cost nothing; the `free_failures`-th locks the key for
/// `base`, and each further failure doubles the lock-out, up to `max`. Failures are forgotten
/// `window` after the last lock-out ends, and at once on a successful login (accounts only).
/// This is the "exponential back-off" OWASP ASVS V2.2.1 and the OWASP Authentication Cheat
/// Sheet ("Account Lockout") recommend over a permanent lock, which an attacker could use to
/// lock any user out for good.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_core::Backoff;
///
/// let backoff = Backoff::new(3, Duration::from_secs(1)).max(Duration::from_secs(5));
/// assert_eq!(backoff.lockout_after(2), None);
/// assert_eq!(backoff.lockout_after(3), Some(Duration::from_secs(1)));
/// assert_eq!(backoff.lockout_after(4), Some(Duration::from_secs(2)));
/// assert_eq!(backoff.lockout_after(9), Some(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    free_failures: u32,
    base: Duration,
    max: Duration,
    window: Duration,
}

/// Fifteen minutes: the longest lock-out and the memory of failures, by default.
const QUARTER_HOUR: Duration = Duration::from_secs(15 * 60);

impl Backoff {
    /// Locks after `free_failures` failures (at least 1) for `base`, doubling from there; at
    /// most 15 minutes, forgotten 15 minutes after the last lock-out ends.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = portcullis_core::Backoff::new(5, Duration::from_secs(1));
    /// assert_eq!(backoff.free_failures(), 5);
    /// ```
    pub fn new(free_failures: u32, base: Duration) -> Self {
        Self {
            free_failures: free_failures.max(1),
            base,
            max: QUARTER_HOUR.max(base),
            window: QUARTER_HOUR,
        }
    }

    /// The default for one account: 5 failures, then 1 s, 2 s, 4 s ... up to 15 minutes.
    pub fn per_account() -> Self {
        Self::new(5, Duration::from_secs(1))
    }

    /// The default for one client address, which many users may share behind a NAT: 100
    /// failures, then 1 s, 2 s, 4 s ... up to 15 minutes.
    pub fn per_client() -> Self {
        Self::new(100, Duration::from_secs(1))
    }

    /// The longest lock-out (at least `base`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = portcullis_core::Backoff::per_account().max(Duration::from_secs(60));
    /// assert_eq!(backoff.lockout_after(100), Some(Duration::from_secs(60)));
    /// ```
    #[must_use]
    pub fn max(mut self, max: Duration) -> Self {
        self.max = max.max(self.base);
        self
    }

    /// How long failures are remembered after the last lock-out ends (or after the last
    /// failure, before any lock-out).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let backoff = portcullis_core::Backoff::per_account().window(Duration::from_secs(600));
    /// assert_eq!(backoff.remember_for(None), Duration::from_secs(600));
    /// ```
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Failures allowed before the first lock-out.
    pub fn free_failures(&self) -> u32 {
        self.free_failures
    }

    /// The first lock-out.
    pub fn base_lockout(&self) -> Duration {
        self.base
    }

    /// The longest lock-out.
    pub fn max_lockout(&self) -> Duration {
        self.max
    }

    /// How long failures are remembered after the last lock-out ends.
    pub fn window_length(&self) -> Duration {
        self.window
    }

    /// The lock-out after the `failures`-th consecutive failure, if any.
    pub fn lockout_after(&self, failures: u32) -> Option<Duration> {
        let doublings = failures.checked_sub(self.free_failures)?;
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        Some(self.base.saturating_mul(factor).min(self.max))
    }

    /// How long a counter must remember a failure that caused `lockout`.
    pub fn remember_for(&self, lockout: Option<Duration>) -> Duration {
        self.window.saturating_add(lockout.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_base_and_stops_at_max() {
        let backoff = Backoff::new(2, Duration::from_millis(500)).max(Duration::from_secs(3));
        let lockouts: Vec<_> = (0..7).map(|n| backoff.lockout_after(n)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(
            lockouts,
            [None, None, ms(500), ms(1000), ms(2000), ms(3000), ms(3000)]
        );
        assert_eq!(backoff.lockout_after(u32::MAX), ms(3000));
    }

    #[test]
    fn at_least_one_free_failure_and_max_not_below_base() {
        let backoff = Backoff::new(0, Duration::from_secs(10)).max(Duration::from_secs(1));
        assert_eq!(backoff.free_failures(), 1);
        assert_eq!(backoff.lockout_after(0), None);
        assert_eq!(backoff.lockout_after(5), Some(Duration::from_secs(10)));
    }
}
