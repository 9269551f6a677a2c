//! The near-cache's invalidation subscription: hears the store keys of sessions written on any
//! node and drops them from this node's cache; drops the whole cache when the subscription
//! breaks or stops answering its heartbeat, and trusts nothing until it is subscribed again.
//!
//! Built on pub/sub from the store's own write scripts (as the revocation feed is) rather than
//! on Redis' server-assisted client-side caching, because the `redis` crate's `cache-aio`
//! lives on the command connection: its `ConnectionManager` keeps cached values across a
//! reconnection (invalidations sent while it was away are lost), a hit sends nothing so a
//! silently stalled connection is never noticed, and a connection this crate replaces after
//! a stall starts a cache of its own. See the crate docs, "Near-cache".

use std::{sync::Weak, time::Duration};

use futures_util::StreamExt;
use portcullis_core::{StoreError, StoreKey};
use redis::aio::{PubSubSink, PubSubStream};

use crate::{connection::RedisConnection, near_cache::NearCache};

const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(50);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// The channel every session write publishes its store key (hex) on.
pub(crate) fn channel(prefix: &str) -> String {
    format!("{prefix}:s:invalidate")
}

/// Keeps `cache` subscribed to `channel` until the cache is dropped.
pub(crate) async fn run(cache: Weak<NearCache>, redis: RedisConnection, channel: String) {
    let Some(heartbeat) = cache.upgrade().map(|cache| cache.config().heartbeat()) else {
        return;
    };
    let subscription = Subscription {
        cache,
        redis,
        channel,
        heartbeat,
    };
    subscription.run().await;
}

struct Subscription {
    cache: Weak<NearCache>,
    redis: RedisConnection,
    channel: String,
    heartbeat: Duration,
}

impl Subscription {
    async fn run(self) {
        // Spread nodes over a cluster's members; any member hears every message.
        let mut node = usize::try_from(std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            0u8,
        ))
        .unwrap_or(0);
        let mut delay = MIN_RECONNECT_DELAY;
        loop {
            match self.connect(node).await {
                Ok((sink, stream, connected)) => {
                    node = connected;
                    delay = MIN_RECONNECT_DELAY;
                    // Whatever was cached before this subscription was dropped when the last
                    // one ended (or there was none): from here on every write is heard.
                    let Some(cache) = self.cache.upgrade() else {
                        return;
                    };
                    cache.confirm_alive();
                    drop(cache);
                    tracing::debug!("session near-cache subscribed");
                    if !self.listen(sink, stream).await {
                        return;
                    }
                    tracing::warn!("session near-cache lost its invalidations; cache dropped");
                }
                Err(error) => {
                    tracing::warn!(%error, "session near-cache cannot subscribe yet");
                }
            }
            let Some(cache) = self.cache.upgrade() else {
                return;
            };
            cache.drop_all();
            drop(cache);
            node = node.wrapping_add(1);
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_RECONNECT_DELAY);
        }
    }

    async fn connect(&self, first: usize) -> Result<(PubSubSink, PubSubStream, usize), StoreError> {
        let (pubsub, node) = self.redis.subscribe(&self.channel, first).await?;
        let (sink, stream) = pubsub.split();
        Ok((sink, stream, node))
    }

    /// Applies invalidations until the subscription is lost (`true`) or the cache is gone
    /// (`false`).
    async fn listen(&self, mut sink: PubSubSink, mut stream: PubSubStream) -> bool {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.reset();
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { return true };
                    let Some(cache) = self.cache.upgrade() else { return false };
                    let key = std::str::from_utf8(message.get_payload_bytes())
                        .ok()
                        .and_then(StoreKey::from_hex);
                    match key {
                        Some(key) => cache.invalidate(key.as_bytes()),
                        // Not a key this crate wrote: trust nothing rather than guess.
                        None => {
                            tracing::warn!("malformed near-cache invalidation; cache dropped");
                            cache.drop_all();
                            cache.confirm_alive();
                        }
                    }
                }
                _ = heartbeat.tick() => {
                    if self.cache.strong_count() == 0 {
                        return false;
                    }
                    // A dead path or a stalled proxy closes nothing: only an unanswered PING
                    // tells this subscription from a quiet one.
                    let pong = tokio::time::timeout(self.heartbeat, sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return true;
                    }
                    let Some(cache) = self.cache.upgrade() else { return false };
                    cache.confirm_alive();
                }
            }
        }
    }
}
