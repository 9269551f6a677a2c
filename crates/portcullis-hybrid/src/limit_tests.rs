//! Unit tests of the per-user session limit and "sign out other devices": two nodes sharing a
//! memory store and an in-process feed, on a manual clock.

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode, header};
use portcullis_core::{AuthRejection, CurrentUser, ManualClock};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use crate::*;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct User {
    user: String,
}

const ISSUER: &str = "https://limit.test";

/// Two nodes (own revocation lists) on one store and feed, both with `limit`.
struct Nodes {
    clock: ManualClock,
    store: MemoryRefreshStore,
    nodes: [HybridSessions; 2],
}

impl Nodes {
    async fn new(limit: Option<SessionLimit>) -> Self {
        let clock = ManualClock::at_unix_seconds(1_800_000_000);
        let store = MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()));
        let feed = InProcessFeed::new().with_clock(Arc::new(clock.clone()));
        let key = SigningKey::generate(Algorithm::HS256).unwrap();
        let node = || async {
            let issuer = TokenIssuer::new(key.clone()).issuer(ISSUER);
            let mut builder = HybridSessions::builder(
                issuer,
                Validation::new().issuer(ISSUER).leeway(Duration::ZERO),
            )
            .store(store.clone())
            .feed(feed.clone())
            .clock(Arc::new(clock.clone()))
            .leeway(Duration::ZERO);
            if let Some(limit) = limit {
                builder = builder.max_sessions_per_user(limit);
            }
            builder.build().await.unwrap()
        };
        let nodes = [node().await, node().await];
        Self {
            clock,
            store,
            nodes,
        }
    }

    /// Logs `user` in on node `i`, one second after the previous login (a clear age order).
    async fn login(&self, i: usize, user: &str) -> Result<TokenPair, HybridError> {
        self.clock.advance(Duration::from_secs(1));
        self.nodes[i]
            .login(user, &User { user: user.into() }, None)
            .await
    }

    /// The status each node's edge answers `GET /me` with this access token.
    async fn edge(&self, pair: &TokenPair) -> [StatusCode; 2] {
        let mut statuses = [StatusCode::OK; 2];
        for (status, node) in statuses.iter_mut().zip(&self.nodes) {
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
            *status = app.oneshot(request).await.unwrap().status();
        }
        statuses
    }

    async fn listed(&self, user: &str) -> Vec<String> {
        self.nodes[1]
            .list(user)
            .await
            .unwrap()
            .into_iter()
            .map(|info| info.session_id)
            .collect()
    }
}

const OK: [StatusCode; 2] = [StatusCode::OK; 2];
const REFUSED: [StatusCode; 2] = [StatusCode::UNAUTHORIZED; 2];

#[tokio::test]
async fn evict_oldest_revokes_the_oldest_session_on_every_node() {
    let nodes = Nodes::new(Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::EvictOldest,
    }))
    .await;
    let first = nodes.login(0, "alice").await.unwrap();
    let second = nodes.login(1, "alice").await.unwrap();
    let bob = nodes.login(1, "bob").await.unwrap();
    assert_eq!(nodes.edge(&first).await, OK);
    // The third login of alice, on node 0, evicts her oldest session (created on node 0).
    let third = nodes.login(0, "alice").await.unwrap();
    assert_eq!(
        nodes.edge(&first).await,
        REFUSED,
        "evicted: refused everywhere"
    );
    assert!(matches!(
        nodes.nodes[1]
            .refresh(&first.refresh_token().expose())
            .await,
        Err(HybridError::SessionEnded)
    ));
    for live in [&second, &third, &bob] {
        assert_eq!(nodes.edge(live).await, OK);
    }
    assert_eq!(
        nodes.listed("alice").await,
        [second.session_id(), third.session_id()]
    );
    // A fourth login evicts the second: always exactly two, the newest.
    let fourth = nodes.login(1, "alice").await.unwrap();
    assert_eq!(nodes.edge(&second).await, REFUSED);
    assert_eq!(
        nodes.listed("alice").await,
        [third.session_id(), fourth.session_id()]
    );
    assert_eq!(nodes.listed("bob").await, [bob.session_id()]);
}

#[tokio::test]
async fn refuse_new_fails_the_login_with_403_until_a_session_ends() {
    let nodes = Nodes::new(Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::RefuseNew,
    }))
    .await;
    let first = nodes.login(0, "alice").await.unwrap();
    let second = nodes.login(1, "alice").await.unwrap();
    let refused = nodes.login(0, "alice").await.unwrap_err();
    assert!(matches!(refused, HybridError::LimitReached), "{refused:?}");
    assert_eq!(AuthRejection::from(refused).status(), StatusCode::FORBIDDEN);
    assert_eq!(nodes.store.len(), 2, "a refused login stores nothing");
    // The sessions in place are untouched, and another user is not limited by alice.
    assert_eq!(nodes.edge(&first).await, OK);
    assert_eq!(nodes.edge(&second).await, OK);
    nodes.login(1, "bob").await.unwrap();
    // Logging one out makes room; expiry does too.
    nodes.nodes[1].revoke(first.session_id()).await.unwrap();
    nodes.login(0, "alice").await.unwrap();
    assert!(matches!(
        nodes.login(1, "alice").await,
        Err(HybridError::LimitReached)
    ));
    nodes.clock.advance(Duration::from_secs(15 * 24 * 3600));
    nodes.login(1, "alice").await.unwrap();
}

#[tokio::test]
async fn revoke_others_ends_every_other_session_on_every_node() {
    let nodes = Nodes::new(None).await;
    let mut alice = Vec::new();
    for i in 0..4 {
        alice.push(nodes.login(i % 2, "alice").await.unwrap());
    }
    let bob = nodes.login(0, "bob").await.unwrap();
    let current = &alice[2];
    assert_eq!(
        nodes.nodes[0]
            .revoke_others(current.session_id())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        nodes.edge(current).await,
        OK,
        "the caller's own session stays"
    );
    assert_eq!(nodes.edge(&bob).await, OK, "other users are untouched");
    for (i, pair) in alice.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(nodes.edge(pair).await, REFUSED, "session {i}");
        assert!(
            nodes.nodes[1]
                .refresh(&pair.refresh_token().expose())
                .await
                .is_err()
        );
    }
    assert_eq!(nodes.listed("alice").await, [current.session_id()]);
    // Nothing left to end; the current session still refreshes.
    assert_eq!(
        nodes.nodes[1]
            .revoke_others(current.session_id())
            .await
            .unwrap(),
        0
    );
    nodes.nodes[1]
        .refresh(&current.refresh_token().expose())
        .await
        .unwrap();
    // An ended session cannot speak for its user any more.
    assert!(matches!(
        nodes.nodes[0].revoke_others(alice[0].session_id()).await,
        Err(HybridError::SessionEnded)
    ));
    assert!(matches!(
        nodes.nodes[0].revoke_others("no-such-session").await,
        Err(HybridError::SessionEnded)
    ));
    assert_eq!(nodes.listed("alice").await, [current.session_id()]);
}

#[tokio::test]
async fn a_zero_limit_is_refused_when_built() {
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let built = HybridSessions::builder(issuer, Validation::new())
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new())
        .max_sessions_per_user(SessionLimit {
            max: 0,
            policy: LimitPolicy::RefuseNew,
        })
        .build()
        .await;
    assert!(
        matches!(built, Err(ConfigError::ZeroSessionLimit)),
        "{built:?}"
    );
}
