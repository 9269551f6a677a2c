//! [`Readiness`] for the Redis handle, stores and revocation feed, so an application's
//! `GET /readyz` reports a Redis outage (503) instead of letting requests find it.

use portcullis_core::{NotReady, Readiness, StoreError};

use crate::RedisConnection;

/// Ready when Redis answers `PING` within the command timeout.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use portcullis_core::ReadinessChecks;
/// use portcullis_redis::RedisConfig;
///
/// let redis = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
/// let checks = ReadinessChecks::new().check("store", redis);
/// # let _ = checks;
/// # }
/// ```
impl Readiness for RedisConnection {
    async fn check(&self) -> Result<(), NotReady> {
        // The reason is for anyone who can reach /readyz: no URL, no server message.
        self.ping().await.map_err(|error| match error {
            StoreError::Timeout => NotReady::new("redis did not answer in time"),
            StoreError::Corrupt(_) => NotReady::new("redis answered PING unexpectedly"),
            _ => NotReady::new("redis unreachable"),
        })
    }
}

#[cfg(feature = "session")]
impl Readiness for crate::RedisSessionStore {
    async fn check(&self) -> Result<(), NotReady> {
        self.connection().check().await
    }
}

#[cfg(feature = "hybrid")]
impl Readiness for crate::RedisRefreshStore {
    async fn check(&self) -> Result<(), NotReady> {
        self.connection().check().await
    }
}

/// Ready when the feed has subscribed and is listening and caught up
/// ([`RedisRevocationFeed::is_caught_up`](crate::RedisRevocationFeed::is_caught_up)): while it
/// reconnects after an outage, this node may not know of every revocation yet.
impl Readiness for crate::RedisRevocationFeed {
    async fn check(&self) -> Result<(), NotReady> {
        if self.is_caught_up() {
            Ok(())
        } else {
            Err(NotReady::new(
                "revocation feed not subscribed or catching up",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use portcullis_core::ReadinessChecks;

    use crate::RedisConfig;

    #[tokio::test]
    async fn an_unreachable_redis_is_not_ready_with_a_reason() {
        let redis = RedisConfig::new("redis://127.0.0.1:1")
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let report = ReadinessChecks::new().check("store", redis).run().await;
        assert!(!report.is_ready());
        let reason = report.reason().unwrap();
        assert!(
            reason == "store: redis unreachable" || reason == "store: redis did not answer in time",
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_feed_that_never_subscribed_is_not_ready() {
        let redis = RedisConfig::new("redis://127.0.0.1:1").build().unwrap();
        let feed = crate::RedisRevocationFeed::new(redis);
        let report = ReadinessChecks::new().check("feed", feed).run().await;
        assert_eq!(
            report.reason().as_deref(),
            Some("feed: revocation feed not subscribed or catching up")
        );
    }
}
