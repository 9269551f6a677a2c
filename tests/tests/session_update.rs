//! Issue 14: concurrent read-modify-writes of one session key. `Session::update` re-runs its
//! closure on the value the winning writer saved, so 200 parallel increments of one counter end
//! at exactly 200, in memory and on a real Redis (single and Cluster).

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    routing::{get, post},
};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_redis::{RedisConfig, RedisSessionStore};
use portcullis_session::{MemoryStore, Session, SessionConfig, SessionLayer, SessionStore};
use portcullis_tests::redis_server::{cluster_urls, shared_url, unique_prefix};
use tower::ServiceExt;

const WRITERS: u64 = 200;

fn app<S: SessionStore>(store: S) -> Router {
    Router::new()
        .route(
            "/login",
            post(|session: Session| async move {
                session
                    .login("alice", &serde_json::json!({"user": "alice"}))
                    .await
                    .unwrap();
            }),
        )
        .route(
            "/incr",
            post(|session: Session| async move {
                session
                    .update("counter", |n: Option<u64>| n.unwrap_or(0) + 1)
                    .await
                    .map(|n| n.to_string())
                    .map_err(|error| (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))
            }),
        )
        .route(
            "/count",
            get(|session: Session| async move {
                let n: Option<u64> = session.get("counter").await.unwrap();
                n.unwrap_or(0).to_string()
            }),
        )
        .layer(SessionLayer::new(store, SessionConfig::default()).unwrap())
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        String::from_utf8(body.to_vec()).unwrap(),
        set_cookie,
    )
}

async fn parallel_increments_end_at_exactly_the_count<S: SessionStore>(store: S) {
    let app = app(store);
    let (status, _, cookie) = send(&app, "POST", "/login", None).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = Arc::new(cookie.expect("a session cookie"));
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let app = app.clone();
            let cookie = cookie.clone();
            tokio::spawn(async move { send(&app, "POST", "/incr", Some(&cookie)).await })
        })
        .collect();
    let mut seen = Vec::new();
    for writer in writers {
        let (status, body, _) = writer.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        seen.push(body.parse::<u64>().unwrap());
    }
    // Every writer saw a distinct value: each increment was applied exactly once.
    seen.sort_unstable();
    assert_eq!(seen, (1..=WRITERS).collect::<Vec<_>>());
    let (_, count, _) = send(&app, "GET", "/count", Some(&cookie)).await;
    assert_eq!(count, WRITERS.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store() {
    parallel_increments_end_at_exactly_the_count(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store() {
    let connection = RedisConfig::new(shared_url())
        .key_prefix(unique_prefix("update"))
        .build()
        .unwrap();
    parallel_increments_end_at_exactly_the_count(RedisSessionStore::new(connection)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store() {
    let urls = cluster_urls();
    let connection = RedisConfig::cluster(urls)
        .key_prefix(unique_prefix("update"))
        .build()
        .unwrap();
    parallel_increments_end_at_exactly_the_count(RedisSessionStore::new(connection)).await;
}
