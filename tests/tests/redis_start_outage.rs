//! Starting while Redis is down (issue 13, item 5): every example app that uses Redis builds
//! itself as its `main` does, with `REDIS_URL` on a loopback port where nothing listens, and
//! must start (no crash loop under an orchestrator), answer 503 with `Retry-After` wherever
//! the store or the revocation feed is needed (the hybrid edge included, while the node has
//! never read the revocations in force: fail closed), and recover by itself within seconds of
//! Redis starting on that port, without a restart. Over real HTTP on 127.0.0.1.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use portcullis_redis::{RedisConfig, RedisSessionStore};
use portcullis_session::SessionLayer;
use portcullis_tests::{
    http::serve,
    redis_server::{RedisServer, shared_url, unique_prefix},
};
use reqwest::{Client, Response, StatusCode, header};
use serde_json::{Value, json};

const SECRET: &str = "start-outage-tests-share-this-hmac-secret-0123456789";
/// How long an app may take to start, and to recover once Redis answers.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A Redis that is down: its port is reserved by this test, nothing listens on it until
/// `restart`.
fn redis_down() -> RedisServer {
    let mut server = RedisServer::start();
    server.kill();
    server
}

fn credentials(user: &str) -> Value {
    json!({"username": user, "password": format!("{user}-password-1")})
}

async fn post_json(addr: SocketAddr, path: &str, body: Value) -> Response {
    Client::new()
        .post(format!("http://{addr}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get_bearer(addr: SocketAddr, path: &str, token: &str) -> Response {
    Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn assert_unavailable(response: &Response, what: &str) {
    assert_eq!(
        response.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} while Redis is down"
    );
    assert!(
        response.headers().contains_key(header::RETRY_AFTER),
        "{what}: 503 without Retry-After"
    );
}

/// Retries `request` until it answers `expected`, for at most [`PROMPTLY`].
async fn recovers<F, Fut>(what: &str, expected: StatusCode, mut request: F) -> Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let started = Instant::now();
    loop {
        let response = request().await;
        if response.status() == expected {
            eprintln!(
                "{what} recovered {:?} after Redis started",
                started.elapsed()
            );
            return response;
        }
        assert!(
            started.elapsed() < PROMPTLY,
            "{what}: still {} {:?} after Redis came back",
            response.status(),
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// hybrid-app as `main` builds it (`Settings::from_lookup`, `AppState::from_settings`).
async fn hybrid_app(redis_url: &str, prefix: &str) -> SocketAddr {
    let settings = hybrid_app::Settings::from_lookup(|name| match name {
        "REDIS_URL" => Some(redis_url.to_owned()),
        "REDIS_KEY_PREFIX" => Some(prefix.to_owned()),
        "JWT_HS256_SECRET" => Some(SECRET.to_owned()),
        _ => None,
    })
    .unwrap();
    let started = Instant::now();
    let state = hybrid_app::AppState::from_settings(&settings)
        .await
        .expect("hybrid-app starts while Redis is down");
    assert!(
        started.elapsed() < PROMPTLY,
        "started in {:?}",
        started.elapsed()
    );
    serve(hybrid_app::app(state)).await
}

/// An access and a refresh token from `POST /token`.
async fn hybrid_tokens(addr: SocketAddr) -> (String, String) {
    let response = post_json(addr, "/token", credentials("alice")).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let text = |field: &str| body[field].as_str().unwrap().to_owned();
    (text("access_token"), text("refresh_token"))
}

#[tokio::test]
async fn hybrid_app_starts_during_an_outage_fails_closed_and_recovers_by_itself() {
    let mut redis = redis_down();
    let prefix = unique_prefix("start-outage-hybrid");
    let app = hybrid_app(&redis.url(), &prefix).await;
    // Another instance with the same signing key, on a Redis that works, hands out a token
    // this node would accept, were it not blind to revocations.
    let healthy = hybrid_app(&shared_url(), &unique_prefix("start-outage-peer")).await;
    let (token, refresh_token) = hybrid_tokens(healthy).await;
    assert_eq!(
        get_bearer(healthy, "/me", &token).await.status(),
        StatusCode::OK
    );

    assert_unavailable(
        &post_json(app, "/login", credentials("alice")).await,
        "POST /login",
    );
    assert_unavailable(
        &post_json(app, "/token", credentials("alice")).await,
        "POST /token",
    );
    assert_unavailable(
        &post_json(app, "/refresh", json!({ "refresh_token": refresh_token })).await,
        "POST /refresh",
    );
    // The edge has never read the revocations in force: it must not let the token in.
    assert_unavailable(
        &get_bearer(app, "/me", &token).await,
        "GET /me (edge check)",
    );

    redis.restart();
    recovers("GET /me (edge check)", StatusCode::OK, || {
        get_bearer(app, "/me", &token)
    })
    .await;
    let login = recovers("POST /login", StatusCode::OK, || {
        post_json(app, "/login", credentials("alice"))
    })
    .await;
    assert!(login.headers().contains_key(header::SET_COOKIE));
}

#[tokio::test]
async fn session_app_starts_during_an_outage_and_recovers_by_itself() {
    let mut redis = redis_down();
    // As session-app's main: build (no I/O), a failed ping only warns, then serve.
    let connection = RedisConfig::new(redis.url())
        .key_prefix(unique_prefix("start-outage-session"))
        .build()
        .unwrap();
    assert!(connection.ping().await.is_err());
    let settings = session_app::Settings::from_lookup(|_| None).unwrap();
    let layer = SessionLayer::new(
        RedisSessionStore::new(connection),
        settings.session_config(),
    )
    .unwrap();
    let app = serve(session_app::app(layer, session_app::DemoUsers::new())).await;

    assert_unavailable(
        &post_json(app, "/login", credentials("alice")).await,
        "POST /login",
    );
    redis.restart();
    let login = recovers("POST /login", StatusCode::OK, || {
        post_json(app, "/login", credentials("alice"))
    })
    .await;
    assert!(login.headers().contains_key(header::SET_COOKIE));
}

/// adboard in `mode`, built by `adboard::app` as its `main` does.
async fn adboard_down_then_up(mode: adboard::Mode, tag: &str) {
    let mut redis = redis_down();
    let url = redis.url();
    let prefix = unique_prefix(tag);
    let lookup = |name: &str| match name {
        "REDIS_URL" => Some(url.clone()),
        "REDIS_KEY_PREFIX" => Some(prefix.clone()),
        "JWT_HS256_SECRET" => Some(SECRET.to_owned()),
        _ => None,
    };
    let app = serve(
        adboard::app(mode, lookup)
            .await
            .expect("adboard starts while Redis is down"),
    )
    .await;
    assert_unavailable(
        &post_json(app, "/login", credentials("alice")).await,
        "POST /login",
    );
    redis.restart();
    recovers("POST /login", StatusCode::OK, || {
        post_json(app, "/login", credentials("alice"))
    })
    .await;
}

#[tokio::test]
async fn adboard_session_mode_starts_during_an_outage_and_recovers() {
    adboard_down_then_up(adboard::Mode::Session, "start-outage-adboard-session").await;
}

#[tokio::test]
async fn adboard_hybrid_mode_starts_during_an_outage_and_recovers() {
    adboard_down_then_up(adboard::Mode::Hybrid, "start-outage-adboard-hybrid").await;
}
