//! Atomicity across nodes: several store instances, each with its own Redis connection (as
//! separate application processes would have), racing on one user, on a single Redis and on a
//! Redis Cluster. Per-user limits and refresh rotation must hold exactly.

use std::sync::Arc;

use futures_util::future::join_all;
use portcullis::session::{CreateOutcome, LimitPolicy, SessionLimit, SessionRecord, SessionStore};
use portcullis_core::{Clock, ManualClock, SecretToken, SystemClock, UserJson};
use portcullis_hybrid::RefreshStore;
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisSessionStore};
use portcullis_tests::{
    conformance::refresh_store,
    redis_server::{cluster_urls, shared_url, unique_prefix},
};
use serde_json::json;

const NODES: usize = 4;

fn config(cluster: bool, prefix: &str) -> RedisConfig {
    let config = if cluster {
        RedisConfig::cluster(cluster_urls())
    } else {
        RedisConfig::new(shared_url())
    };
    config.key_prefix(prefix)
}

fn session_nodes(cluster: bool) -> Vec<Arc<RedisSessionStore>> {
    let prefix = unique_prefix("nodes");
    (0..NODES)
        .map(|_| {
            Arc::new(RedisSessionStore::new(
                config(cluster, &prefix).build().unwrap(),
            ))
        })
        .collect()
}

fn record(user: &str, created_ago: u64) -> SessionRecord {
    let now = SystemClock.unix_seconds();
    SessionRecord {
        handle: portcullis_core::random_handle(),
        user_id: Some(user.to_owned()),
        user: Some(UserJson::new(&json!({"user": user})).unwrap()),
        data: serde_json::Map::new(),
        created_at: now - created_ago,
        authenticated_at: Some(now),
        last_seen_at: now,
        expires_at: now + 600,
        absolute_expires_at: now + 3_600,
        user_agent: None,
        persistent: false,
        version: 0,
    }
}

/// 24 logins of one user spread over the nodes at once, under a limit of 3.
async fn racing_logins(cluster: bool, policy: LimitPolicy) -> (Vec<CreateOutcome>, usize) {
    let nodes = session_nodes(cluster);
    let limit = SessionLimit { max: 3, policy };
    let outcomes = join_all((0..24).map(|i| {
        let node = Arc::clone(&nodes[i % NODES]);
        tokio::spawn(async move {
            let key = SecretToken::generate().store_key();
            node.create(&key, &record("alice", i as u64), Some(limit))
                .await
                .unwrap()
        })
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    let live = nodes[0].list_by_user("alice").await.unwrap().len();
    (outcomes, live)
}

async fn refuse_new_admits_exactly_the_limit(cluster: bool) {
    let (outcomes, live) = racing_logins(cluster, LimitPolicy::RefuseNew).await;
    let created = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, CreateOutcome::Created { .. }))
        .count();
    assert_eq!(created, 3, "{outcomes:?}");
    assert_eq!(live, 3);
}

async fn evict_oldest_keeps_exactly_the_limit(cluster: bool) {
    let (outcomes, live) = racing_logins(cluster, LimitPolicy::EvictOldest).await;
    let evicted: usize = outcomes
        .iter()
        .map(|outcome| match outcome {
            CreateOutcome::Created { evicted } => evicted.len(),
            CreateOutcome::LimitReached => panic!("evict-oldest never refuses"),
        })
        .sum();
    assert_eq!(live, 3);
    assert_eq!(
        evicted,
        24 - 3,
        "every session but the last three was evicted once"
    );
}

async fn one_rotation_wins_across_nodes(cluster: bool) {
    let prefix = unique_prefix("nodes-refresh");
    let nodes: Vec<Arc<RedisRefreshStore>> = (0..NODES)
        .map(|_| {
            Arc::new(RedisRefreshStore::new(
                config(cluster, &prefix).build().unwrap(),
            ))
        })
        .collect();
    let clock = ManualClock::new();
    for round in 0..5 {
        let session_id = format!("sid-{round}");
        let first = refresh_store::record(&clock, &session_id, "alice", 0, 600);
        nodes[0].create(&first, None).await.unwrap();
        let wins = join_all((0..16).map(|i| {
            let node = Arc::clone(&nodes[i % NODES]);
            let mut next = first.clone();
            next.generation = 1;
            next.current_hash = SecretToken::generate().store_key();
            tokio::spawn(async move { node.compare_and_swap(&next, 0).await.unwrap() })
        }))
        .await
        .into_iter()
        .filter(|won| *won.as_ref().unwrap())
        .count();
        assert_eq!(wins, 1, "round {round}");
    }
    assert_eq!(
        nodes[1].delete_by_user("alice", None).await.unwrap().len(),
        5
    );
}

mod single {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuse_new_admits_exactly_the_limit() {
        super::refuse_new_admits_exactly_the_limit(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn evict_oldest_keeps_exactly_the_limit() {
        super::evict_oldest_keeps_exactly_the_limit(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_rotation_wins_across_nodes() {
        super::one_rotation_wins_across_nodes(false).await;
    }
}

mod cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuse_new_admits_exactly_the_limit() {
        super::refuse_new_admits_exactly_the_limit(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn evict_oldest_keeps_exactly_the_limit() {
        super::evict_oldest_keeps_exactly_the_limit(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_rotation_wins_across_nodes() {
        super::one_rotation_wins_across_nodes(true).await;
    }
}
