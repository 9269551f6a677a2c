//! [`MemoryStoreConfig`]: the settings of a [`MemoryStore`](super::MemoryStore).

use std::{fmt, sync::Arc};

use portcullis_core::{SharedClock, SystemClock};

/// Settings of a [`MemoryStore`](super::MemoryStore).
///
/// # Examples
///
/// ```
/// use portcullis_session::{MemoryStore, MemoryStoreConfig};
///
/// let store = MemoryStore::with_config(MemoryStoreConfig::default().max_sessions(10_000).shards(16));
/// assert_eq!(store.len(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryStoreConfig {
    pub(super) max_sessions: usize,
    pub(super) shards: usize,
    pub(super) clock: SharedClock,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        Self {
            max_sessions: 1_000_000,
            shards: 64,
            clock: Arc::new(SystemClock),
        }
    }
}

impl fmt::Debug for MemoryStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStoreConfig")
            .field("max_sessions", &self.max_sessions)
            .field("shards", &self.shards)
            .field("clock", &self.clock)
            .finish()
    }
}

impl MemoryStoreConfig {
    /// The most sessions the store holds (default 1,000,000); at the cap, creating a session
    /// evicts, in its shard, the anonymous session closest to expiry, or if there is none the
    /// one closest to expiry of the user holding the most sessions. Values below the shard count are raised
    /// to one session per shard.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::MemoryStoreConfig::default().max_sessions(50_000);
    /// ```
    #[must_use]
    pub fn max_sessions(mut self, max: usize) -> Self {
        self.max_sessions = max.max(1);
        self
    }

    /// The number of shards (default 64, rounded up to a power of two).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::MemoryStoreConfig::default().shards(8);
    /// ```
    #[must_use]
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 1 << 16).next_power_of_two();
        self
    }

    /// The clock deciding expiry; tests pass a [`ManualClock`](portcullis_core::ManualClock)
    /// shared with the layer.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let config = portcullis_session::MemoryStoreConfig::default().clock(Arc::new(clock));
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}
