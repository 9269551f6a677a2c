//! The edge check against the plain JWT layer and a bare router: what one request costs when
//! the handler asks for the user. Run with `cargo bench -p portcullis-hybrid --bench edge`.
//!
//! Measured on a shared 2-core machine (noisy; ratios matter, not microseconds), HS256:
//! bare router 2.0–2.2 µs, bearer layer 10.3–10.6 µs, hybrid layer 9.8–10.4 µs, hybrid layer on
//! an anonymous public route 1.9–2.6 µs. The edge check costs the same as plain JWT
//! verification (hybrid/bearer ≈ 1.0) with a thousand revoked sessions in the list; both are
//! about 5× a bare route, almost all of it signature and claims checking.

use std::hint::black_box;

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, header};
use portcullis_core::CurrentUser;
use portcullis_hybrid::{
    HybridLayer, HybridSessions, InProcessFeed, MemoryRefreshStore, Revocation,
};
use portcullis_jwt::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    user: String,
    role: String,
}

const ISSUER: &str = "https://bench.test";

fn request(token: Option<&str>) -> Request<Body> {
    let mut builder = Request::get("/me");
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).unwrap()
}

fn edge(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap()).issuer(ISSUER);
    let user = User {
        user: "alice".into(),
        role: "advertiser".into(),
    };
    let (sessions, access) = runtime.block_on(async {
        let sessions = HybridSessions::builder(issuer.clone(), Validation::new().issuer(ISSUER))
            .store(MemoryRefreshStore::new())
            .feed(InProcessFeed::new())
            .build()
            .await
            .unwrap();
        let pair = sessions.login("alice", &user, None).await.unwrap();
        (sessions, pair.access_token().to_owned())
    });
    // A realistic revocation list: a thousand revoked sessions of other users.
    for i in 0..1_000 {
        sessions.revocations().insert(&Revocation {
            session_id: format!("revoked-session-{i:06}"),
            until: u64::MAX,
        });
    }
    let bearer_token = issuer.issue("alice", &user).unwrap().token;

    let bare = Router::new().route("/me", get(|| async { "alice" }));
    let bearer = Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .layer(BearerLayer::new(TokenVerifier::new(
            issuer.key_set(),
            Validation::new().issuer(ISSUER),
        )));
    let hybrid = Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .layer(HybridLayer::new(&sessions));

    let mut group = c.benchmark_group("edge");
    group.bench_function("bare_router", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(bare.clone().oneshot(request(Some(&access))).await.unwrap())
        });
    });
    group.bench_function("bearer_layer", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = bearer
                .clone()
                .oneshot(request(Some(&bearer_token)))
                .await
                .unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    group.bench_function("hybrid_layer", |b| {
        b.to_async(&runtime).iter(|| async {
            let response = hybrid
                .clone()
                .oneshot(request(Some(&access)))
                .await
                .unwrap();
            assert!(response.status().is_success());
            black_box(response)
        });
    });
    group.bench_function("hybrid_layer_anonymous_public_route", |b| {
        let public = Router::new()
            .route("/me", get(|| async { "public" }))
            .layer(HybridLayer::new(&sessions));
        b.to_async(&runtime)
            .iter(|| async { black_box(public.clone().oneshot(request(None)).await.unwrap()) });
    });
    group.finish();
}

criterion_group!(benches, edge);
criterion_main!(benches);
