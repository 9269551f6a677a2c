//! [`RedisRevocationFeed`]: revocations shared by every node through Redis, pushed by pub/sub
//! and recorded in a sorted set so a node that was away catches up on what it missed.
//!
//! `publish` runs one script on the key `<prefix>:revoked`: `ZADD GT` (member: session id,
//! score: `until`), drop entries no longer in force, then `PUBLISH` on the channel of the same
//! name. A subscriber first subscribes, *then* reads every entry still in force, so nothing
//! published in between is lost; after a disconnection it does the same again. A periodic
//! re-read bounds the damage of a pub/sub message lost any other way.

use std::{
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use portcullis_core::{SharedClock, StoreError, SystemClock};
use portcullis_hybrid::{Revocation, RevocationFeed, RevocationList};
use redis::Script;
use tokio::sync::watch;

use crate::connection::{RedisConnection, store_error};

const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// ARGV: session id, until, now, channel, message.
static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] then
  redis.call('EXPIRE', KEYS[1], math.max(1, math.floor(tonumber(top[2]) - tonumber(ARGV[3])) + 1))
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1",
    )
});

/// A [`RevocationFeed`] through Redis pub/sub, backed by a sorted set for catch-up. Clones
/// share subscribers; the background subscriptions stop when the last clone is dropped.
///
/// `publish` returns once the revocation is recorded in Redis and delivered to the lists this
/// feed (or a clone) subscribed; other nodes receive it by pub/sub, usually within
/// milliseconds, and in any case on their next re-read (every 30 s by default) or reconnect.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_hybrid::{Revocation, RevocationFeed, RevocationList};
/// use portcullis_redis::{RedisConfig, RedisRevocationFeed};
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379").build()?;
/// let feed = RedisRevocationFeed::new(redis);
/// let revoked = RevocationList::new();
/// feed.subscribe(revoked.clone()).await?;
/// feed.publish(&Revocation { session_id: "s1".into(), until: u64::MAX }).await?;
/// assert!(revoked.is_revoked("s1", 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisRevocationFeed {
    redis: RedisConnection,
    clock: SharedClock,
    resync_interval: Duration,
    shared: Arc<FeedShared>,
}

#[derive(Debug)]
struct FeedShared {
    /// Lists subscribed through this feed, served locally by `publish`.
    local: Mutex<Vec<RevocationList>>,
    /// Dropped with the last clone: the background tasks watch it and stop.
    alive: watch::Sender<()>,
    /// Subscriptions made, and how many of them are reconnecting (not caught up): readiness.
    subscriptions: AtomicUsize,
    behind: Arc<AtomicUsize>,
}

impl RedisRevocationFeed {
    /// A feed on `redis`, judging which revocations are in force by the system clock.
    pub fn new(redis: RedisConnection) -> Self {
        let (alive, _) = watch::channel(());
        Self {
            redis,
            clock: Arc::new(SystemClock),
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            shared: Arc::new(FeedShared {
                local: Mutex::new(Vec::new()),
                alive,
                subscriptions: AtomicUsize::new(0),
                behind: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Judges which revocations are in force by `clock`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_redis::{RedisConfig, RedisRevocationFeed};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let feed = RedisRevocationFeed::new(redis).with_clock(Arc::new(ManualClock::new()));
    /// # let _ = feed;
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How often a subscription re-reads every revocation in force, as a safety net under
    /// pub/sub (default 30 s). A lost message is caught up within this time.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use portcullis_redis::{RedisConfig, RedisRevocationFeed};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let feed = RedisRevocationFeed::new(redis).resync_interval(Duration::from_secs(5));
    /// # let _ = feed;
    /// # }
    /// ```
    #[must_use]
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval.max(Duration::from_millis(100));
        self
    }

    /// Whether this feed has subscribed and every subscription is listening and caught up
    /// (none is reconnecting after an outage): what readiness checks ask.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use portcullis_redis::{RedisConfig, RedisRevocationFeed};
    ///
    /// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// let feed = RedisRevocationFeed::new(redis);
    /// assert!(!feed.is_caught_up()); // nothing subscribed yet
    /// # }
    /// ```
    pub fn is_caught_up(&self) -> bool {
        self.shared.subscriptions.load(Ordering::SeqCst) > 0
            && self.shared.behind.load(Ordering::SeqCst) == 0
    }

    fn key(&self) -> String {
        format!("{}:revoked", self.redis.key_prefix())
    }

    fn local_lists(&self) -> Vec<RevocationList> {
        self.shared
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RevocationFeed for RedisRevocationFeed {
    async fn publish(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let message = serde_json::to_string(revocation).map_err(StoreError::corrupt)?;
        let key = self.key();
        self.redis
            .bounded(async {
                let mut invocation = PUBLISH.key(&key);
                invocation
                    .arg(&revocation.session_id)
                    .arg(revocation.until)
                    .arg(now)
                    .arg(&key)
                    .arg(message);
                let _: i64 = self.redis.eval(&invocation).await?;
                Ok(())
            })
            .await?;
        // This node need not wait for the round trip through pub/sub.
        for list in self.local_lists() {
            list.insert(revocation);
        }
        Ok(())
    }

    async fn subscribe(&self, list: RevocationList) -> Result<(), StoreError> {
        let subscriber = Subscriber {
            redis: self.redis.clone(),
            clock: self.clock.clone(),
            key: self.key(),
            list: list.clone(),
            resync_interval: self.resync_interval,
            behind: self.shared.behind.clone(),
        };
        // Spread subscribers over a cluster's nodes; any node hears every message.
        let first = usize::try_from(std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            0u8,
        ))
        .unwrap_or(0);
        let (pubsub, node) = subscriber.connect(first).await?;
        let stream = pubsub.into_on_message();
        // Only now that pub/sub is listening: whatever was published before is in the set.
        subscriber.catch_up().await?;
        self.shared
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(list);
        self.shared.subscriptions.fetch_add(1, Ordering::SeqCst);
        let alive = self.shared.alive.subscribe();
        tokio::spawn(subscriber.run(stream, node, alive));
        Ok(())
    }
}

/// Counts a subscription as caught up again when dropped (reconnected, or the feed is gone).
struct CaughtUp<'a>(&'a AtomicUsize);

impl Drop for CaughtUp<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The background side of one subscription.
struct Subscriber {
    redis: RedisConnection,
    clock: SharedClock,
    key: String,
    list: RevocationList,
    resync_interval: Duration,
    /// Shared with the feed: counts subscriptions that are reconnecting.
    behind: Arc<AtomicUsize>,
}

impl Subscriber {
    /// Subscribes on one of the nodes, starting with `first` and trying each in turn.
    async fn connect(&self, first: usize) -> Result<(redis::aio::PubSub, usize), StoreError> {
        let nodes = self.redis.nodes();
        let mut last_error = StoreError::Timeout;
        for attempt in 0..nodes.len() {
            let node = first.wrapping_add(attempt) % nodes.len();
            let subscribed = tokio::time::timeout(
                self.redis.connection_timeout() + self.redis.command_timeout(),
                async {
                    let mut pubsub = nodes[node].get_async_pubsub().await?;
                    pubsub.subscribe(&self.key).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                },
            )
            .await;
            match subscribed {
                Ok(Ok(pubsub)) => return Ok((pubsub, node)),
                Ok(Err(error)) => last_error = store_error(error),
                Err(_) => last_error = StoreError::Timeout,
            }
        }
        Err(last_error)
    }

    /// Delivers every revocation still in force into the list.
    async fn catch_up(&self) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let in_force: Vec<(String, f64)> = self
            .redis
            .bounded(
                self.redis.query(
                    redis::cmd("ZRANGE")
                        .arg(&self.key)
                        .arg(now)
                        .arg("+inf")
                        .arg("BYSCORE")
                        .arg("WITHSCORES"),
                ),
            )
            .await?;
        for (session_id, until) in in_force {
            // Scores are whole seconds well within f64's exact range.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let until = until as u64;
            self.list.insert(&Revocation { session_id, until });
        }
        self.list.purge_expired(now);
        Ok(())
    }

    async fn run(
        self,
        mut stream: redis::aio::PubSubStream,
        mut node: usize,
        mut alive: watch::Receiver<()>,
    ) {
        let mut delay = Duration::from_millis(50);
        loop {
            // Listen until the connection drops or a re-read fails.
            let mut resync = tokio::time::interval(self.resync_interval);
            resync.reset();
            loop {
                tokio::select! {
                    message = stream.next() => {
                        let Some(message) = message else { break };
                        match serde_json::from_slice::<Revocation>(message.get_payload_bytes()) {
                            Ok(revocation) => self.list.insert(&revocation),
                            Err(error) => tracing::warn!(%error, "ignoring a malformed revocation message"),
                        }
                    }
                    _ = resync.tick() => {
                        if let Err(error) = self.catch_up().await {
                            tracing::warn!(%error, "revocation re-read failed; resubscribing");
                            break;
                        }
                    }
                    _ = alive.changed() => return,
                }
            }
            // Reconnect (another node first on a cluster), then catch up on what was missed.
            self.behind.fetch_add(1, Ordering::SeqCst);
            let _caught_up = CaughtUp(&self.behind);
            loop {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = alive.changed() => return,
                }
                delay = (delay * 2).min(MAX_RECONNECT_DELAY);
                let connected = match self.connect(node.wrapping_add(1)).await {
                    Ok((pubsub, connected_node)) => {
                        node = connected_node;
                        let next = pubsub.into_on_message();
                        match self.catch_up().await {
                            Ok(()) => Some(next),
                            Err(error) => {
                                tracing::warn!(%error, "revocation catch-up failed");
                                None
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "revocation feed cannot resubscribe yet");
                        None
                    }
                };
                if let Some(next) = connected {
                    stream = next;
                    delay = Duration::from_millis(50);
                    tracing::info!("revocation feed resubscribed and caught up");
                    break;
                }
            }
        }
    }
}
