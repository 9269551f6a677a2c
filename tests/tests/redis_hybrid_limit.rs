//! The hybrid per-user session limit across nodes: two `HybridSessions` (two application
//! nodes, each with its own Redis connections) sharing one Redis (single and Cluster), 20
//! parallel logins of one user. Refuse-new admits exactly the limit; evict-oldest leaves exactly the limit live, and
//! the evicted sessions' access tokens are refused at both edges once the feed delivers.

use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use futures_util::future::join_all;
use http::{Request, StatusCode, header};
use portcullis_core::CurrentUser;
use portcullis_hybrid::{
    HybridError, HybridLayer, HybridSessions, LimitPolicy, SessionLimit, TokenPair,
};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisRevocationFeed};
use portcullis_tests::redis_server::{cluster_urls, shared_url, unique_prefix};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

const LOGINS: usize = 20;
const LIMIT: u32 = 2;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    user: String,
}

async fn two_nodes(cluster: bool, policy: LimitPolicy) -> [HybridSessions; 2] {
    let prefix = unique_prefix("hybrid-limit");
    let key = SigningKey::generate(Algorithm::HS256).unwrap();
    let node = || async {
        let config = if cluster {
            RedisConfig::cluster(cluster_urls())
        } else {
            RedisConfig::new(shared_url())
        };
        let redis = config.key_prefix(&prefix).build().unwrap();
        let issuer = TokenIssuer::new(key.clone()).issuer("limit-test");
        HybridSessions::builder(issuer, Validation::new().issuer("limit-test"))
            .store(RedisRefreshStore::new(redis.clone()))
            .feed(RedisRevocationFeed::new(redis))
            .max_sessions_per_user(SessionLimit { max: LIMIT, policy })
            .build()
            .await
            .unwrap()
    };
    [node().await, node().await]
}

/// 20 logins of alice at once, alternating between the nodes.
async fn racing_logins(nodes: &[HybridSessions; 2]) -> Vec<Result<TokenPair, HybridError>> {
    join_all((0..LOGINS).map(|i| {
        let node = nodes[i % 2].clone();
        tokio::spawn(async move {
            node.login(
                "alice",
                &User {
                    user: "alice".into(),
                },
                None,
            )
            .await
        })
    }))
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect()
}

async fn edge_status(node: &HybridSessions, pair: &TokenPair) -> StatusCode {
    let app: Router = Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .layer(HybridLayer::new(node));
    let request = Request::get("/me")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", pair.access_token()),
        )
        .body(Body::empty())
        .unwrap();
    app.oneshot(request).await.unwrap().status()
}

async fn refuse_new_admits_exactly_the_limit_across_two_nodes(cluster: bool) {
    let nodes = two_nodes(cluster, LimitPolicy::RefuseNew).await;
    let outcomes = racing_logins(&nodes).await;
    let admitted: Vec<&TokenPair> = outcomes.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(admitted.len(), LIMIT as usize);
    for outcome in &outcomes {
        if let Err(error) = outcome {
            assert!(matches!(error, HybridError::LimitReached), "{error:?}");
        }
    }
    assert_eq!(nodes[0].list("alice").await.unwrap().len(), LIMIT as usize);
    for pair in admitted {
        for node in &nodes {
            assert_eq!(edge_status(node, pair).await, StatusCode::OK);
        }
    }
}

async fn evict_oldest_keeps_exactly_the_limit_and_revokes_the_rest_at_both_edges(cluster: bool) {
    let nodes = two_nodes(cluster, LimitPolicy::EvictOldest).await;
    let pairs: Vec<TokenPair> = racing_logins(&nodes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let live: Vec<String> = nodes[1]
        .list("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|info| info.session_id)
        .collect();
    assert_eq!(live.len(), LIMIT as usize, "{live:?}");
    let (kept, evicted): (Vec<&TokenPair>, Vec<&TokenPair>) = pairs
        .iter()
        .partition(|pair| live.iter().any(|id| id == pair.session_id()));
    assert_eq!(kept.len(), LIMIT as usize);
    assert_eq!(evicted.len(), LOGINS - LIMIT as usize);
    // The feed delivers within a moment; until then the edges may still accept.
    let mut refused_everywhere = false;
    for _ in 0..50 {
        let mut all = true;
        for pair in &evicted {
            for node in &nodes {
                all &= edge_status(node, pair).await == StatusCode::UNAUTHORIZED;
            }
        }
        if all {
            refused_everywhere = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refused_everywhere,
        "every evicted session is refused at both edges"
    );
    for pair in kept {
        for node in &nodes {
            assert_eq!(edge_status(node, pair).await, StatusCode::OK);
        }
        assert!(
            nodes[0]
                .refresh(&pair.refresh_token().expose())
                .await
                .is_ok()
        );
    }
    for pair in &evicted {
        assert!(matches!(
            nodes[1].refresh(&pair.refresh_token().expose()).await,
            Err(HybridError::SessionEnded)
        ));
    }
}

mod single {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuse_new_admits_exactly_the_limit_across_two_nodes() {
        super::refuse_new_admits_exactly_the_limit_across_two_nodes(false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn evict_oldest_keeps_exactly_the_limit_and_revokes_the_rest_at_both_edges() {
        super::evict_oldest_keeps_exactly_the_limit_and_revokes_the_rest_at_both_edges(false).await;
    }
}

mod cluster {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuse_new_admits_exactly_the_limit_across_two_nodes() {
        super::refuse_new_admits_exactly_the_limit_across_two_nodes(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn evict_oldest_keeps_exactly_the_limit_and_revokes_the_rest_at_both_edges() {
        super::evict_oldest_keeps_exactly_the_limit_and_revokes_the_rest_at_both_edges(true).await;
    }
}
