//! The revocation feed over connections that silently stop answering (issue 18, item 13): a
//! subscriber reaches a private Redis through a `StallProxy` that stops forwarding without
//! closing anything, a revocation is published on another connection meanwhile, and it must
//! reach the subscriber within a few seconds, not at the next 30-second re-read. Also: a feed
//! subscribed while Redis is down starts anyway, reports that it has not caught up, and
//! catches up by itself once Redis is there (issue 13, item 5).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use portcullis_core::{Clock, SystemClock};
use portcullis_hybrid::{Revocation, RevocationFeed, RevocationList};
use portcullis_redis::{RedisConfig, RedisRevocationFeed};
use portcullis_tests::{
    redis_server::{RedisServer, eventually, unique_prefix},
    stall_proxy::StallProxy,
};

/// Short timeouts, as a deployment on a fast network would use; the heartbeat and re-read
/// intervals stay at their defaults (1 s and 30 s).
fn feed(url: &str, prefix: &str) -> RedisRevocationFeed {
    let redis = RedisConfig::new(url)
        .key_prefix(prefix)
        .connection_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    RedisRevocationFeed::new(redis).with_clock(Arc::new(SystemClock))
}

fn revocation(session_id: &str) -> Revocation {
    Revocation {
        session_id: session_id.to_owned(),
        until: SystemClock.unix_seconds() + 600,
    }
}

fn upstream(server: &RedisServer) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], server.port()))
}

/// Waits up to 40 s (past the 30 s re-read) for `session_id` to reach `list`, and returns how
/// long it took, so a failure says how late the revocation was.
async fn delivery(list: &RevocationList, session_id: &str) -> Duration {
    let started = Instant::now();
    eventually(Duration::from_secs(40), || {
        list.is_revoked(session_id, SystemClock.unix_seconds())
    })
    .await;
    started.elapsed()
}

#[tokio::test]
async fn a_stalled_subscription_is_noticed_and_replaced_within_seconds() {
    let server = RedisServer::start();
    let proxy = StallProxy::start(upstream(&server)).await;
    let prefix = unique_prefix("stall");
    let subscriber = feed(&proxy.url(), &prefix);
    let list = RevocationList::new();
    subscriber.subscribe(list.clone()).await.unwrap();
    assert!(subscriber.is_caught_up());
    let publisher = feed(&server.url(), &prefix);
    publisher.publish(&revocation("before")).await.unwrap();
    assert!(
        delivery(&list, "before").await < Duration::from_secs(1),
        "pub/sub works through the proxy"
    );

    // The pub/sub connection goes silent; the subscriber's other connections keep working.
    proxy.stall_subscribers();
    publisher.publish(&revocation("during")).await.unwrap();
    let delay = delivery(&list, "during").await;
    eprintln!("revocation delay through a stalled subscription: {delay:?}");
    assert!(
        delay < Duration::from_secs(5),
        "the revocation arrived after {delay:?}"
    );
    assert!(subscriber.is_caught_up(), "subscribed again and caught up");
}

#[tokio::test]
async fn a_feed_whose_every_connection_stalled_catches_up_once_rerouted() {
    let server = RedisServer::start();
    let proxy = StallProxy::start(upstream(&server)).await;
    let prefix = unique_prefix("stall-all");
    let subscriber = feed(&proxy.url(), &prefix);
    let list = RevocationList::new();
    subscriber.subscribe(list.clone()).await.unwrap();
    let publisher = feed(&server.url(), &prefix);

    // Every connection through the proxy goes silent, new ones too.
    proxy.stall_all();
    publisher.publish(&revocation("during")).await.unwrap();
    assert!(
        eventually(Duration::from_secs(5), || !subscriber.is_caught_up())
            .await
            .is_some(),
        "the feed noticed that it is cut off"
    );
    assert!(!list.is_revoked("during", SystemClock.unix_seconds()));
    assert!(
        list.is_caught_up(),
        "a list that caught up once keeps enforcing what it holds"
    );

    // The route comes back for new connections; the stalled ones stay dead.
    proxy.reroute();
    let delay = delivery(&list, "during").await;
    eprintln!("revocation delay after the route came back: {delay:?}");
    assert!(
        delay < Duration::from_secs(5),
        "the revocation arrived {delay:?} after the route came back"
    );
    assert!(subscriber.is_caught_up());
}

#[tokio::test]
async fn a_feed_subscribed_while_redis_is_down_catches_up_when_it_starts() {
    // A free port with nothing listening yet.
    let mut server = RedisServer::start();
    let prefix = unique_prefix("late-redis");
    let url = server.url();
    server.kill();
    let subscriber = feed(&url, &prefix);
    let list = RevocationList::new();
    let started = Instant::now();
    subscriber
        .subscribe(list.clone())
        .await
        .expect("subscribing during an outage is not an error");
    assert!(started.elapsed() < Duration::from_secs(3), "no long wait");
    assert!(!list.is_caught_up(), "the list says it is incomplete");
    assert!(!subscriber.is_caught_up());

    server.restart();
    let publisher = feed(&url, &prefix);
    publisher.publish(&revocation("published")).await.unwrap();
    let caught_up = eventually(Duration::from_secs(5), || list.is_caught_up()).await;
    assert!(
        caught_up.is_some(),
        "caught up within 5 s of Redis starting"
    );
    assert!(subscriber.is_caught_up());
    assert!(delivery(&list, "published").await < Duration::from_secs(1));
    // And it listens from then on.
    publisher.publish(&revocation("later")).await.unwrap();
    assert!(delivery(&list, "later").await < Duration::from_secs(1));
}
