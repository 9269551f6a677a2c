//! [`RedisRevocationFeed`]: revocations shared by every node through Redis, pushed by pub/sub
//! and recorded in a sorted set so a node that was away catches up on what it missed.
//!
//! `publish` runs one script on the key `<prefix>:revoked`: `ZADD GT` (member: session id,
//! score: `until`), drop entries no longer in force, then `PUBLISH` on the channel of the same
//! name. A subscriber first subscribes, *then* reads every entry still in force, so nothing
//! published in between is lost; after a disconnection it does the same again. A `PING` on the
//! subscribed connection every second notices a connection that silently stopped answering
//! (a dead path, a stalled proxy), which no disconnection reports; a periodic re-read bounds
//! the damage of a pub/sub message lost any other way. While Redis is unreachable a subscriber
//! keeps trying in the background; a list that never caught up says so
//! ([`RevocationList::is_caught_up`]), and the hybrid edge fails closed on it.
//!
//! Per-user revocations ([`UserRevocation`]) share the set and the channel: their member is
//! `u:<not before, ms>:<user id>` (session ids never contain `:`), their message the JSON of
//! the revocation.

use std::{
    sync::{
        Arc, LazyLock, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use portcullis_core::revocation::{Revocation, RevocationFeed, RevocationList, UserRevocation};
use portcullis_core::{SharedClock, StoreError, SystemClock};
use redis::{
    Script,
    aio::{PubSubSink, PubSubStream},
};
use tokio::sync::watch;

use crate::connection::RedisConnection;

const DEFAULT_RESYNC_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(1);
const MIN_INTERVAL: Duration = Duration::from_millis(100);
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(50);
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
/// milliseconds. A subscription that silently stops answering is noticed by its heartbeat
/// (a `PING` every second by default) and replaced, catching up on what it missed; a re-read
/// every 30 s by default catches any message lost another way.
///
/// `subscribe` does not fail when Redis is unreachable: the list is marked as not caught up
/// ([`RevocationList::is_caught_up`]; the hybrid edge answers 503 meanwhile), and the feed
/// keeps trying in the background, so an application starts during an outage and recovers
/// by itself. [`RedisRevocationFeed::is_caught_up`] reports the state for a readiness check.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_core::revocation::{Revocation, RevocationFeed, RevocationList};
/// use portcullis_redis::{RedisConfig, RedisRevocationFeed};
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379").build()?;
/// let feed = RedisRevocationFeed::new(redis);
/// let revoked = RevocationList::new();
/// feed.subscribe(revoked.clone()).await?;
/// assert!(feed.is_caught_up());
/// feed.publish(&Revocation { session_id: "s1".into(), until: u64::MAX }).await?;
/// assert!(revoked.is_revoked("s1", 0));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct RedisRevocationFeed {
    redis: RedisConnection,
    clock: SharedClock,
    resync_interval: Duration,
    heartbeat_interval: Duration,
    shared: Arc<FeedShared>,
}

#[derive(Debug)]
struct FeedShared {
    /// Lists subscribed through this feed, served locally by `publish`.
    local: Mutex<Vec<RevocationList>>,
    /// How many subscriptions were made, and how many are not subscribed and caught up now.
    subscriptions: AtomicUsize,
    behind: AtomicUsize,
    /// Dropped with the last clone: the background tasks watch it and stop.
    alive: watch::Sender<()>,
}

impl RedisRevocationFeed {
    /// A feed on `redis`, judging which revocations are in force by the system clock.
    pub fn new(redis: RedisConnection) -> Self {
        let (alive, _) = watch::channel(());
        Self {
            redis,
            clock: Arc::new(SystemClock),
            resync_interval: DEFAULT_RESYNC_INTERVAL,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            shared: Arc::new(FeedShared {
                local: Mutex::new(Vec::new()),
                subscriptions: AtomicUsize::new(0),
                behind: AtomicUsize::new(0),
                alive,
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
    /// pub/sub (default 30 s, at least 100 ms). A lost message is caught up within this time.
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
        self.resync_interval = interval.max(MIN_INTERVAL);
        self
    }

    /// How often a subscription sends `PING` on its subscribed connection, which must answer
    /// within the same time (default 1 s, at least 100 ms). A connection that does not is
    /// deemed dead: the feed subscribes again on a fresh connection and catches up, so a
    /// silently stalled subscription delays revocations by about twice this interval.
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
    /// let feed = RedisRevocationFeed::new(redis).heartbeat_interval(Duration::from_millis(500));
    /// # let _ = feed;
    /// # }
    /// ```
    #[must_use]
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval.max(MIN_INTERVAL);
        self
    }

    /// Whether every subscription made through this feed (or a clone) is subscribed right
    /// now and has read every revocation in force since it (re)subscribed. False before the
    /// first `subscribe`, while Redis is unreachable, and from when a subscription is found
    /// dead until it is replaced: what an application's readiness check (`/readyz`) reports.
    ///
    /// A list that caught up once keeps enforcing what it holds during a later outage (see
    /// [`RevocationList::is_caught_up`] for the edge's rule).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(feed: portcullis_redis::RedisRevocationFeed) {
    /// let status = if feed.is_caught_up() { 200 } else { 503 };
    /// # let _ = status;
    /// # }
    /// ```
    pub fn is_caught_up(&self) -> bool {
        self.shared.subscriptions.load(Ordering::Acquire) > 0
            && self.shared.behind.load(Ordering::Acquire) == 0
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

impl RedisRevocationFeed {
    /// Records `member` until `until` and publishes `message`, in one script.
    async fn record(&self, member: &str, until: u64, message: String) -> Result<(), StoreError> {
        let now = self.clock.unix_seconds();
        let key = self.key();
        self.redis
            .bounded(async {
                let mut invocation = PUBLISH.key(&key);
                invocation
                    .arg(member)
                    .arg(until)
                    .arg(now)
                    .arg(&key)
                    .arg(message);
                let _: i64 = self.redis.eval(&invocation).await?;
                Ok(())
            })
            .await
    }
}

/// The sorted-set member of a per-user revocation.
fn user_member(revocation: &UserRevocation) -> String {
    format!("u:{}:{}", revocation.not_before_ms, revocation.user_id)
}

/// A per-user revocation from its sorted-set member, `None` for a session id.
fn parse_user_member(member: &str, until: u64) -> Option<UserRevocation> {
    let (not_before_ms, user_id) = member.strip_prefix("u:")?.split_once(':')?;
    Some(UserRevocation {
        user_id: user_id.to_owned(),
        not_before_ms: not_before_ms.parse().ok()?,
        until,
    })
}

impl RevocationFeed for RedisRevocationFeed {
    async fn publish(&self, revocation: &Revocation) -> Result<(), StoreError> {
        let message = serde_json::to_string(revocation).map_err(StoreError::corrupt)?;
        self.record(&revocation.session_id, revocation.until, message)
            .await?;
        // This node need not wait for the round trip through pub/sub.
        for list in self.local_lists() {
            list.insert(revocation);
        }
        Ok(())
    }

    async fn publish_user(&self, revocation: &UserRevocation) -> Result<(), StoreError> {
        let message = serde_json::to_string(revocation).map_err(StoreError::corrupt)?;
        self.record(&user_member(revocation), revocation.until, message)
            .await?;
        for list in self.local_lists() {
            list.insert_user(revocation);
        }
        Ok(())
    }

    async fn subscribe(&self, list: RevocationList) -> Result<(), StoreError> {
        self.shared.subscriptions.fetch_add(1, Ordering::AcqRel);
        self.shared.behind.fetch_add(1, Ordering::AcqRel);
        portcullis_core::observe::revocation_feed_caught_up(false, None);
        let mut subscriber = Subscriber {
            redis: self.redis.clone(),
            clock: self.clock.clone(),
            key: self.key(),
            list: list.clone(),
            resync_interval: self.resync_interval,
            heartbeat_interval: self.heartbeat_interval,
            shared: self.shared.clone(),
            caught_up: false,
            behind_since: Some(std::time::Instant::now()),
        };
        // Spread subscribers over a cluster's nodes; any node hears every message.
        let first = usize::try_from(std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            0u8,
        ))
        .unwrap_or(0);
        let connected = match subscriber.resubscribe(first).await {
            Ok(connected) => Some(connected),
            Err(error) => {
                // Fail closed without failing the start: the edge refuses access tokens until
                // the background task has caught up.
                tracing::warn!(%error, "revocation feed unreachable; retrying in the background");
                list.set_caught_up(false);
                None
            }
        };
        self.shared
            .local
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(list);
        let alive = self.shared.alive.subscribe();
        tokio::spawn(subscriber.run(connected, alive));
        Ok(())
    }
}

/// A live subscription: where to ping, what to read, and which node it is on.
struct Connected {
    sink: PubSubSink,
    stream: PubSubStream,
    node: usize,
}

/// Why [`Subscriber::listen`] returned.
enum Ended {
    /// The feed was dropped.
    Stopped,
    /// The subscription broke, stalled, or a re-read failed: subscribe again.
    Lost,
}

/// The background side of one subscription.
struct Subscriber {
    /// Connections of this subscription's own for its re-reads, replaced at each resubscribe.
    redis: RedisConnection,
    clock: SharedClock,
    key: String,
    list: RevocationList,
    resync_interval: Duration,
    heartbeat_interval: Duration,
    shared: Arc<FeedShared>,
    /// Whether this subscription counts as caught up in `shared.behind`.
    caught_up: bool,
    /// Since when it has not been caught up, for the lag histogram.
    behind_since: Option<std::time::Instant>,
}

impl Subscriber {
    /// Subscribes on one of the nodes, starting with `first` and trying each in turn.
    async fn connect(&self, first: usize) -> Result<(redis::aio::PubSub, usize), StoreError> {
        self.redis.subscribe(&self.key, first).await
    }

    /// Subscribes on fresh connections, then reads every revocation in force: whatever was
    /// published before the subscription is in the set, whatever after is heard.
    async fn resubscribe(&mut self, first: usize) -> Result<Connected, StoreError> {
        // The old connections may be the ones that stalled; the client never reopens a
        // connection that merely stops answering.
        self.redis = self.redis.reopen();
        let (pubsub, node) = self.connect(first).await?;
        let (sink, stream) = pubsub.split();
        self.catch_up().await?;
        self.set_caught_up(true);
        Ok(Connected { sink, stream, node })
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
        for (member, until) in in_force {
            // Scores are whole seconds well within f64's exact range.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let until = until as u64;
            match parse_user_member(&member, until) {
                Some(user) => self.list.insert_user(&user),
                None => self.list.insert(&Revocation {
                    session_id: member,
                    until,
                }),
            }
        }
        self.list.purge_expired(now);
        Ok(())
    }

    /// Records whether this subscription is subscribed and caught up, for
    /// [`RedisRevocationFeed::is_caught_up`] and the list's own flag.
    fn set_caught_up(&mut self, caught_up: bool) {
        if caught_up == self.caught_up {
            return;
        }
        self.caught_up = caught_up;
        portcullis_core::observe::revocation_feed_caught_up(caught_up, self.behind_since.take());
        if !caught_up {
            self.behind_since = Some(std::time::Instant::now());
        }
        if caught_up {
            self.shared.behind.fetch_sub(1, Ordering::AcqRel);
            // Once caught up, the list keeps enforcing what it holds through later outages.
            self.list.set_caught_up(true);
        } else {
            self.shared.behind.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Delivers messages until the subscription is lost or the feed is dropped, pinging it
    /// and re-reading the set on their intervals.
    async fn listen(&self, connected: &mut Connected, alive: &mut watch::Receiver<()>) -> Ended {
        let mut resync = tokio::time::interval(self.resync_interval);
        resync.reset();
        let mut heartbeat = tokio::time::interval(self.heartbeat_interval);
        heartbeat.reset();
        loop {
            tokio::select! {
                message = connected.stream.next() => {
                    let Some(message) = message else { return Ended::Lost };
                    let payload = message.get_payload_bytes();
                    match serde_json::from_slice::<Revocation>(payload) {
                        Ok(revocation) => self.list.insert(&revocation),
                        Err(error) => match serde_json::from_slice::<UserRevocation>(payload) {
                            Ok(revocation) => self.list.insert_user(&revocation),
                            Err(_) => tracing::warn!(%error, "ignoring a malformed revocation message"),
                        },
                    }
                }
                _ = heartbeat.tick() => {
                    // A dead path or a stalled proxy closes nothing: only an unanswered PING
                    // tells this subscription from a quiet one.
                    let pong = tokio::time::timeout(
                        self.heartbeat_interval,
                        connected.sink.ping::<redis::Value>(),
                    )
                    .await;
                    if !matches!(pong, Ok(Ok(_))) {
                        tracing::warn!("revocation subscription did not answer PING in time; resubscribing");
                        return Ended::Lost;
                    }
                }
                _ = resync.tick() => {
                    if let Err(error) = self.catch_up().await {
                        tracing::warn!(%error, "revocation re-read failed; resubscribing");
                        return Ended::Lost;
                    }
                }
                _ = alive.changed() => return Ended::Stopped,
            }
        }
    }

    async fn run(mut self, mut connected: Option<Connected>, mut alive: watch::Receiver<()>) {
        let mut node = 0;
        let mut delay = MIN_RECONNECT_DELAY;
        loop {
            if let Some(mut current) = connected.take() {
                node = current.node;
                if let Ended::Stopped = self.listen(&mut current, &mut alive).await {
                    return;
                }
                self.set_caught_up(false);
            }
            // Reconnect (another node first on a cluster), then catch up on what was missed.
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = alive.changed() => return,
            }
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
            let attempt = tokio::select! {
                attempt = self.resubscribe(node.wrapping_add(1)) => attempt,
                _ = alive.changed() => return,
            };
            match attempt {
                Ok(next) => {
                    portcullis_core::observe::revocation_feed_reconnect(true);
                    connected = Some(next);
                    delay = MIN_RECONNECT_DELAY;
                    tracing::info!("revocation feed subscribed and caught up");
                }
                Err(error) => {
                    portcullis_core::observe::revocation_feed_reconnect(false);
                    tracing::warn!(%error, "revocation feed cannot subscribe yet");
                }
            }
        }
    }
}
