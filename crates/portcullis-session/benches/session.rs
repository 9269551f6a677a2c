//! An authenticated `GET /me` through the session layer, against the same router without any
//! authentication and against tower-sessions doing the same job. Run with
//! `cargo bench -p portcullis-session --bench session`.

use std::hint::black_box;

use axum::{Json, Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, header};
use portcullis_core::CurrentUser;
use portcullis_session::{MemoryStore, Session, SessionConfig, SessionLayer};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    user: String,
    role: String,
}

fn alice() -> User {
    User {
        user: "alice".into(),
        role: "advertiser".into(),
    }
}

fn request(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap()
}

/// `name=value` of the response's first `Set-Cookie`.
fn cookie_of(response: &http::Response<Body>) -> String {
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

fn portcullis_router() -> Router {
    let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap();
    Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { Json(user) }),
        )
        .route("/public", get(|| async { Json(alice()) }))
        .route(
            "/login",
            get(|session: Session| async move {
                session.login("alice", &alice()).await.unwrap();
                "ok"
            }),
        )
        .layer(layer)
}

fn tower_sessions_router() -> Router {
    use tower_sessions::{MemoryStore, Session, SessionManagerLayer};
    let layer = SessionManagerLayer::new(MemoryStore::default());
    Router::new()
        .route(
            "/me",
            get(|session: Session| async move {
                let user: User = session.get("user").await.unwrap().unwrap();
                Json(user)
            }),
        )
        .route(
            "/login",
            get(|session: Session| async move {
                session.cycle_id().await.unwrap();
                session.insert("user", alice()).await.unwrap();
                "ok"
            }),
        )
        .layer(layer)
}

fn bare_router() -> Router {
    Router::new().route("/me", get(|| async { Json(alice()) }))
}

fn session(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("authenticated GET /me");

    let bare = bare_router();
    group.bench_function("no authentication", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(bare.clone().oneshot(request("/me", None)).await.unwrap())
        });
    });

    let portcullis = portcullis_router();
    let cookie = runtime.block_on(async {
        cookie_of(
            &portcullis
                .clone()
                .oneshot(request("/login", None))
                .await
                .unwrap(),
        )
    });
    let response = runtime
        .block_on(portcullis.clone().oneshot(request("/me", Some(&cookie))))
        .unwrap();
    assert_eq!(response.status(), 200);
    group.bench_function("portcullis SessionLayer + MemoryStore", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                portcullis
                    .clone()
                    .oneshot(request("/me", Some(&cookie)))
                    .await
                    .unwrap(),
            )
        });
    });
    group.bench_function("portcullis, route not asking for the user", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                portcullis
                    .clone()
                    .oneshot(request("/public", Some(&cookie)))
                    .await
                    .unwrap(),
            )
        });
    });

    let tower_sessions = tower_sessions_router();
    let cookie = runtime.block_on(async {
        cookie_of(
            &tower_sessions
                .clone()
                .oneshot(request("/login", None))
                .await
                .unwrap(),
        )
    });
    let response = runtime
        .block_on(
            tower_sessions
                .clone()
                .oneshot(request("/me", Some(&cookie))),
        )
        .unwrap();
    assert_eq!(response.status(), 200);
    group.bench_function("tower-sessions + MemoryStore", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                tower_sessions
                    .clone()
                    .oneshot(request("/me", Some(&cookie)))
                    .await
                    .unwrap(),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, session);
criterion_main!(benches);
