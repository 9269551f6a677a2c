//! [`MemoryAttemptCounter`]: failed logins counted in this process, in a table of bounded size
//! whose stale entries are purged as it goes.

use std::{
    collections::HashMap,
    future::{Future, ready},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use crate::{
    SharedClock, StoreError, SystemClock,
    login_guard::{AttemptCounter, AttemptKey, Backoff},
};

/// Entries kept by default: about 100 bytes each, so some 10 MB at most.
const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// How often a full sweep of stale entries runs, at most.
const PURGE_EVERY_MS: u64 = 60_000;

/// An [`AttemptCounter`] in this process's memory: right for one node (several nodes need a
/// shared counter such as `portcullis_redis::RedisAttemptCounter`). Clones share the table.
///
/// The table holds at most [`max_entries`](Self::max_entries) keys. Entries whose failures are
/// forgotten are swept out at most once a minute and whenever the table is full; when it is
/// still full, new failures cannot be counted and the guard fails closed (503) rather than
/// forgetting a lock-out to make room, which would let an attacker flush the lock-outs it wants
/// gone.
///
/// # Examples
///
/// ```
/// use portcullis_core::{LoginGuard, MemoryAttemptCounter};
///
/// let guard = LoginGuard::new(MemoryAttemptCounter::new().max_entries(10_000));
/// # let _ = guard;
/// ```
#[derive(Debug, Clone)]
pub struct MemoryAttemptCounter {
    table: Arc<Mutex<Table>>,
    clock: SharedClock,
    max_entries: usize,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<AttemptKey, Entry>,
    next_purge_ms: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    locked_until_ms: u64,
    forget_at_ms: u64,
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Table {
    fn purge(&mut self, now: u64) {
        self.entries.retain(|_, entry| entry.forget_at_ms > now);
        self.next_purge_ms = now.saturating_add(PURGE_EVERY_MS);
    }

    fn live(&mut self, key: &AttemptKey, now: u64) -> Option<&mut Entry> {
        if self
            .entries
            .get(key)
            .is_some_and(|entry| entry.forget_at_ms <= now)
        {
            self.entries.remove(key);
        }
        self.entries.get_mut(key)
    }
}

impl MemoryAttemptCounter {
    /// An empty counter on the system clock, holding at most 100,000 keys.
    pub fn new() -> Self {
        Self {
            table: Arc::default(),
            clock: Arc::new(SystemClock),
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }

    /// The most keys held at once (at least 1).
    ///
    /// # Examples
    ///
    /// ```
    /// let counter = portcullis_core::MemoryAttemptCounter::new().max_entries(1_000);
    /// assert!(counter.is_empty());
    /// ```
    #[must_use]
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries.max(1);
        self
    }

    /// Tells the time with `clock` (tests pass a [`ManualClock`](crate::ManualClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::{ManualClock, MemoryAttemptCounter};
    ///
    /// let counter = MemoryAttemptCounter::new().with_clock(Arc::new(ManualClock::new()));
    /// # let _ = counter;
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Keys held now, stale ones included until the next sweep.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        millis(
            self.clock
                .now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    fn count_failure(
        &self,
        key: &AttemptKey,
        backoff: &Backoff,
    ) -> Result<Option<Duration>, StoreError> {
        let now = self.now();
        let mut table = self.lock();
        if now >= table.next_purge_ms || table.entries.len() >= self.max_entries {
            table.purge(now);
        }
        // `live` drops the key if it is stale, so a stale count starts again from zero.
        let known = table.live(key, now).is_some();
        if !known && table.entries.len() >= self.max_entries {
            return Err(StoreError::unavailable(
                "the table of failed logins is full",
            ));
        }
        let entry = table.entries.entry(*key).or_insert(Entry {
            failures: 0,
            locked_until_ms: 0,
            forget_at_ms: 0,
        });
        entry.failures = entry.failures.saturating_add(1);
        let lockout = backoff.lockout_after(entry.failures);
        entry.locked_until_ms = now.saturating_add(millis(lockout.unwrap_or_default()));
        entry.forget_at_ms = now.saturating_add(millis(backoff.remember_for(lockout)));
        Ok(lockout)
    }
}

impl Default for MemoryAttemptCounter {
    fn default() -> Self {
        Self::new()
    }
}

impl AttemptCounter for MemoryAttemptCounter {
    fn lockout(
        &self,
        key: &AttemptKey,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send {
        let now = self.now();
        let left = self
            .lock()
            .live(key, now)
            .map(|entry| entry.locked_until_ms.saturating_sub(now))
            .filter(|left| *left > 0)
            .map(Duration::from_millis);
        ready(Ok(left))
    }

    fn record_failure(
        &self,
        key: &AttemptKey,
        backoff: &Backoff,
    ) -> impl Future<Output = Result<Option<Duration>, StoreError>> + Send {
        ready(self.count_failure(key, backoff))
    }

    fn reset(&self, key: &AttemptKey) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.lock().entries.remove(key);
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use crate::ManualClock;

    use super::*;

    fn key(n: u8) -> AttemptKey {
        AttemptKey::from_bytes([n; 32])
    }

    fn counter() -> (MemoryAttemptCounter, ManualClock) {
        let clock = ManualClock::at_unix_seconds(1_000_000);
        let counter = MemoryAttemptCounter::new().with_clock(Arc::new(clock.clone()));
        (counter, clock)
    }

    #[tokio::test]
    async fn locks_after_the_free_failures_and_backs_off() {
        let (counter, clock) = counter();
        let backoff = Backoff::new(3, Duration::from_secs(2));
        for _ in 0..2 {
            assert_eq!(
                counter.record_failure(&key(1), &backoff).await.unwrap(),
                None
            );
        }
        assert_eq!(counter.lockout(&key(1)).await.unwrap(), None);
        let third = counter.record_failure(&key(1), &backoff).await.unwrap();
        assert_eq!(third, Some(Duration::from_secs(2)));
        assert_eq!(
            counter.lockout(&key(1)).await.unwrap(),
            Some(Duration::from_secs(2))
        );
        clock.advance(Duration::from_millis(1_500));
        assert_eq!(
            counter.lockout(&key(1)).await.unwrap(),
            Some(Duration::from_millis(500))
        );
        clock.advance(Duration::from_millis(500));
        assert_eq!(counter.lockout(&key(1)).await.unwrap(), None);
        // The next failure doubles the lock-out.
        let fourth = counter.record_failure(&key(1), &backoff).await.unwrap();
        assert_eq!(fourth, Some(Duration::from_secs(4)));
    }

    #[tokio::test]
    async fn reset_and_window_forget_failures_and_keys_are_independent() {
        let (counter, clock) = counter();
        let backoff = Backoff::new(2, Duration::from_secs(1)).window(Duration::from_secs(60));
        counter.record_failure(&key(1), &backoff).await.unwrap();
        counter.record_failure(&key(2), &backoff).await.unwrap();
        counter.reset(&key(1)).await.unwrap();
        assert_eq!(
            counter.record_failure(&key(1), &backoff).await.unwrap(),
            None
        );
        // key 2 kept its failure: the second one locks it.
        assert!(
            counter
                .record_failure(&key(2), &backoff)
                .await
                .unwrap()
                .is_some()
        );
        // A quiet window (after the lock-out) forgets the failures.
        clock.advance(Duration::from_secs(61));
        assert_eq!(
            counter.record_failure(&key(2), &backoff).await.unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn memory_is_bounded_stale_entries_are_purged_and_a_full_table_fails_closed() {
        let (counter, clock) = counter();
        let counter = counter.max_entries(100);
        let backoff = Backoff::new(5, Duration::from_secs(1)).window(Duration::from_secs(60));
        for n in 0..100 {
            counter.record_failure(&key(n), &backoff).await.unwrap();
        }
        assert_eq!(counter.len(), 100);
        // Full with live entries: a new key is refused (503 upstream), a known one still counts.
        assert!(matches!(
            counter.record_failure(&key(200), &backoff).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(counter.record_failure(&key(5), &backoff).await.is_ok());
        assert_eq!(counter.len(), 100);
        // Once the window has passed, the stale entries make room.
        clock.advance(Duration::from_secs(61));
        counter.record_failure(&key(200), &backoff).await.unwrap();
        assert_eq!(counter.len(), 1);
        // And the periodic sweep drops stale entries even when the table is not full.
        for n in 0..10 {
            counter.record_failure(&key(n), &backoff).await.unwrap();
        }
        clock.advance(Duration::from_secs(120));
        counter.record_failure(&key(99), &backoff).await.unwrap();
        assert_eq!(counter.len(), 1);
    }
}
