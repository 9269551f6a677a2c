//! The [`RevocationFeed`] contract as a test suite, run against every implementation.
//!
//! Use it with [`revocation_feed_conformance!`](crate::revocation_feed_conformance), giving a
//! function that, for a clock, returns a constructor of *nodes*: feeds that share one backend
//! (for an in-process feed, clones; for Redis, separate connections with the same prefix).
//!
//! ```text
//! fn nodes(clock: ManualClock) -> impl Fn() -> InProcessFeed {
//!     let feed = InProcessFeed::new().with_clock(Arc::new(clock));
//!     move || feed.clone()
//! }
//! portcullis_tests::revocation_feed_conformance!(nodes);
//! ```
//!
//! Delivery to *another* node may take a moment (pub/sub); the suite waits for it up to
//! [`DELIVERY_DEADLINE`]. Delivery to lists subscribed through the publishing feed, and the
//! catch-up done by `subscribe`, must be complete when the call returns.

use std::time::Duration;

use portcullis_core::{Clock, ManualClock};
use portcullis_hybrid::{Revocation, RevocationFeed, RevocationList, UserRevocation};

use crate::redis_server::eventually;

/// How long a revocation may take to reach another node.
pub const DELIVERY_DEADLINE: Duration = Duration::from_secs(5);

/// Expands to one `#[tokio::test]` per case of the revocation-feed suite, with nodes from
/// `$nodes: fn(ManualClock) -> impl Fn() -> impl RevocationFeed`.
#[macro_export]
macro_rules! revocation_feed_conformance {
    ($nodes:path) => {
        $crate::revocation_feed_conformance!(@cases $nodes;
            publish_reaches_the_publishing_node_at_once,
            publish_reaches_every_other_node,
            a_late_subscriber_catches_up_on_revocations_in_force,
            revocations_no_longer_in_force_are_not_replayed,
            the_later_deadline_wins,
            a_burst_of_revocations_all_arrive,
            user_revocations_reach_every_node_and_late_subscribers,
        );
    };
    (@cases $nodes:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let clock = $crate::conformance::ManualClock::new();
                let nodes = $nodes(clock.clone());
                $crate::conformance::revocation_feed::$case(nodes, clock).await;
            }
        )*
    };
}

fn revocation(session_id: &str, until: u64) -> Revocation {
    Revocation {
        session_id: session_id.to_owned(),
        until,
    }
}

async fn subscribed<F: RevocationFeed>(feed: &F) -> RevocationList {
    let list = RevocationList::new();
    feed.subscribe(list.clone()).await.unwrap();
    list
}

/// A list subscribed through the publishing feed knows when `publish` returns.
pub async fn publish_reaches_the_publishing_node_at_once<F: RevocationFeed>(
    nodes: impl Fn() -> F,
    clock: ManualClock,
) {
    let now = clock.unix_seconds();
    let node = nodes();
    let list = subscribed(&node).await;
    node.publish(&revocation("sid-1", now + 60)).await.unwrap();
    assert!(list.is_revoked("sid-1", now));
    assert!(
        list.is_revoked("sid-1", now + 60),
        "in force until `until` inclusive"
    );
    assert!(!list.is_revoked("sid-1", now + 61));
    assert!(!list.is_revoked("sid-2", now));
}

/// Every subscribed node hears of a revocation, whichever node published it.
pub async fn publish_reaches_every_other_node<F: RevocationFeed>(
    nodes: impl Fn() -> F,
    clock: ManualClock,
) {
    let now = clock.unix_seconds();
    let (a, b, c) = (nodes(), nodes(), nodes());
    let (list_a, list_b, list_c) = (
        subscribed(&a).await,
        subscribed(&b).await,
        subscribed(&c).await,
    );
    b.publish(&revocation("sid-from-b", now + 60))
        .await
        .unwrap();
    for (name, list) in [("a", &list_a), ("b", &list_b), ("c", &list_c)] {
        assert!(
            eventually(DELIVERY_DEADLINE, || list.is_revoked("sid-from-b", now))
                .await
                .is_some(),
            "node {name} never heard of the revocation"
        );
    }
}

/// `subscribe` returns only once every revocation still in force is in the list.
pub async fn a_late_subscriber_catches_up_on_revocations_in_force<F: RevocationFeed>(
    nodes: impl Fn() -> F,
    clock: ManualClock,
) {
    let now = clock.unix_seconds();
    let publisher = nodes();
    for i in 0..5 {
        publisher
            .publish(&revocation(&format!("sid-{i}"), now + 60))
            .await
            .unwrap();
    }
    let late = nodes();
    let list = subscribed(&late).await;
    for i in 0..5 {
        assert!(
            list.is_revoked(&format!("sid-{i}"), now),
            "sid-{i} not caught up"
        );
    }
    assert_eq!(list.len(), 5);
}

/// Revocations whose access tokens have all expired are not handed to new subscribers.
pub async fn revocations_no_longer_in_force_are_not_replayed<F: RevocationFeed>(
    nodes: impl Fn() -> F,
    clock: ManualClock,
) {
    let now = clock.unix_seconds();
    let publisher = nodes();
    publisher
        .publish(&revocation("sid-short", now + 10))
        .await
        .unwrap();
    publisher
        .publish(&revocation("sid-long", now + 100))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(20));
    let late = nodes();
    let list = subscribed(&late).await;
    assert!(list.is_revoked("sid-long", now + 20));
    assert!(!list.is_revoked("sid-short", now + 20));
    assert_eq!(list.len(), 1, "expired revocations are not replayed");
}

/// Publishing a session twice keeps the later deadline, for live and late subscribers alike.
pub async fn the_later_deadline_wins<F: RevocationFeed>(nodes: impl Fn() -> F, clock: ManualClock) {
    let now = clock.unix_seconds();
    let node = nodes();
    let list = subscribed(&node).await;
    node.publish(&revocation("sid-1", now + 100)).await.unwrap();
    node.publish(&revocation("sid-1", now + 50)).await.unwrap();
    assert!(list.is_revoked("sid-1", now + 80));
    let late = subscribed(&nodes()).await;
    assert!(
        late.is_revoked("sid-1", now + 80),
        "a shorter deadline must not shorten the record"
    );
}

/// Many revocations published back to back all reach another node.
pub async fn a_burst_of_revocations_all_arrive<F: RevocationFeed>(
    nodes: impl Fn() -> F,
    clock: ManualClock,
) {
    let now = clock.unix_seconds();
    let (publisher, listener) = (nodes(), nodes());
    let list = subscribed(&listener).await;
    for i in 0..100 {
        publisher
            .publish(&revocation(&format!("sid-{i}"), now + 60))
            .await
            .unwrap();
    }
    assert!(
        eventually(DELIVERY_DEADLINE, || list.len() == 100)
            .await
            .is_some(),
        "only {} of 100 revocations arrived",
        list.len()
    );
}

/// Per-user revocations travel like session revocations: to every node, to late subscribers
/// while in force, and side by side with session ids without being mistaken for one.
pub async fn user_revocations_reach_every_node_and_late_subscribers<F: RevocationFeed>(
    nodes: impl Fn() -> F,
    clock: ManualClock,
) {
    let now = clock.unix_seconds();
    let (a, b) = (nodes(), nodes());
    let (list_a, list_b) = (subscribed(&a).await, subscribed(&b).await);
    let not_before_ms = now * 1000 + 500;
    let entry = UserRevocation {
        // User ids may hold the separators a backend uses.
        user_id: "alice:1@example.com".to_owned(),
        not_before_ms,
        until: now + 60,
    };
    a.publish_user(&entry).await.unwrap();
    a.publish(&revocation("sid-beside", now + 60))
        .await
        .unwrap();
    assert!(list_a.is_user_revoked(&entry.user_id, not_before_ms - 1, now));
    assert!(
        eventually(DELIVERY_DEADLINE, || list_b.is_user_revoked(
            &entry.user_id,
            not_before_ms - 1,
            now
        ))
        .await
        .is_some(),
        "the other node never heard of the user revocation"
    );
    for list in [&list_a, &list_b] {
        assert!(!list.is_user_revoked(&entry.user_id, not_before_ms, now));
        assert!(!list.is_user_revoked("alice", 0, now));
    }
    let late = subscribed(&nodes()).await;
    assert!(late.is_user_revoked(&entry.user_id, not_before_ms - 1, now));
    assert!(!late.is_user_revoked(&entry.user_id, not_before_ms, now));
    assert!(late.is_revoked("sid-beside", now));
    assert!(!late.is_revoked(&entry.user_id, now));
    assert_eq!(late.user_snapshot(), [entry]);
}
