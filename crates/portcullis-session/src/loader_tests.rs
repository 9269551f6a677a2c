//! The session layer with a [`UserLoader`]: the user comes from the application's table, the
//! loader runs only when asked and at most once per request, a change announced on one node
//! is seen on the other's next request, and a deleted user's sessions end (401).

use std::sync::{
    Arc, RwLock,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, body::Body, routing::get};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_core::{CurrentUser, StoreError, revocation::InProcessFeed};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{MemoryStore, Session, SessionConfig, SessionLayer, UserLoader};

type Roles = Arc<RwLock<Option<&'static str>>>;

struct Node {
    app: Router,
    loads: Arc<AtomicUsize>,
}

async fn node(store: MemoryStore, feed: InProcessFeed, role: Roles) -> Node {
    let loads = Arc::new(AtomicUsize::new(0));
    let counted = loads.clone();
    let loader = UserLoader::builder(move |user_id: String| {
        counted.fetch_add(1, Ordering::SeqCst);
        let role = *role.read().unwrap();
        async move { Ok::<_, StoreError>(role.map(|role| json!({"user": user_id, "role": role}))) }
    })
    .feed(feed)
    .build()
    .await
    .unwrap();
    let config = SessionConfig::default();
    let layer = SessionLayer::new(store, config)
        .unwrap()
        .user_loader(loader);
    let app = Router::new()
        .route(
            "/login",
            axum::routing::post(|session: Session| async move {
                // The snapshot at login says "advertiser"; the loader has the last word.
                session
                    .login("alice", &json!({"user": "alice", "role": "advertiser"}))
                    .await
                    .map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<Value>| async move { user["role"].to_string() }),
        )
        .route(
            "/twice",
            get(
                |CurrentUser(a): CurrentUser<Value>, CurrentUser(b): CurrentUser<Value>| async move {
                    format!("{}{}", a["role"], b["role"])
                },
            ),
        )
        .route("/plain", get(|| async { "no user asked for" }))
        .route(
            "/changed",
            axum::routing::post(|session: Session| async move {
                session.user_changed("alice").await.map(|()| StatusCode::NO_CONTENT)
            }),
        )
        .layer(layer);
    Node { app, loads }
}

async fn call(app: &Router, method: &str, path: &str, cookie: &str) -> (StatusCode, String, bool) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let cleared = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|value| value.to_str().unwrap().contains("Max-Age=0"));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap(), cleared)
}

async fn login(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn loader_runs_lazily_once_per_request_and_then_from_cache() {
    let role: Roles = Arc::new(RwLock::new(Some("admin")));
    let node = node(MemoryStore::new(), InProcessFeed::new(), role).await;
    let cookie = login(&node.app).await;
    assert_eq!(
        call(&node.app, "GET", "/plain", &cookie).await.0,
        StatusCode::OK
    );
    assert_eq!(
        node.loads.load(Ordering::SeqCst),
        0,
        "a route that never asks loads nothing"
    );
    let (status, body, _) = call(&node.app, "GET", "/twice", &cookie).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#""admin""admin""#)
    );
    assert_eq!(
        node.loads.load(Ordering::SeqCst),
        1,
        "at most once per request"
    );
    for _ in 0..5 {
        assert_eq!(call(&node.app, "GET", "/me", &cookie).await.1, r#""admin""#);
    }
    assert_eq!(node.loads.load(Ordering::SeqCst), 1, "cached on this node");
}

#[tokio::test]
async fn a_change_announced_on_one_node_is_seen_by_the_next_request_on_another() {
    let store = MemoryStore::new();
    let feed = InProcessFeed::new();
    let role: Roles = Arc::new(RwLock::new(Some("advertiser")));
    let a = node(store.clone(), feed.clone(), role.clone()).await;
    let b = node(store, feed, role.clone()).await;
    let cookie = login(&a.app).await;
    assert_eq!(
        call(&b.app, "GET", "/me", &cookie).await.1,
        r#""advertiser""#
    );
    *role.write().unwrap() = Some("admin");
    assert_eq!(
        call(&a.app, "POST", "/changed", &cookie).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(call(&b.app, "GET", "/me", &cookie).await.1, r#""admin""#);

    // Deleted: the loader finds nobody, the request is anonymous and the session is gone.
    *role.write().unwrap() = None;
    call(&a.app, "POST", "/changed", &cookie).await;
    let (status, _, cleared) = call(&b.app, "GET", "/me", &cookie).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cleared, "the dead session's cookie is cleared");
    *role.write().unwrap() = Some("admin");
    call(&a.app, "POST", "/changed", &cookie).await;
    assert_eq!(
        call(&a.app, "GET", "/me", &cookie).await.0,
        StatusCode::UNAUTHORIZED,
        "every session of the deleted user ended: restoring the account revives none"
    );
}

#[tokio::test]
async fn a_failing_loader_is_a_503_never_the_snapshot() {
    let loader = UserLoader::builder(|_: String| async {
        Err::<Option<Value>, _>(StoreError::unavailable(std::io::Error::other("down")))
    })
    .build()
    .await
    .unwrap();
    let store = MemoryStore::new();
    let role: Roles = Arc::new(RwLock::new(Some("admin")));
    let cookie = login(&node(store.clone(), InProcessFeed::new(), role).await.app).await;
    let app = Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<Value>| async move { user.to_string() }),
        )
        .layer(
            SessionLayer::new(store, SessionConfig::default())
                .unwrap()
                .user_loader(loader),
        );
    let request = Request::get("/me")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
}
