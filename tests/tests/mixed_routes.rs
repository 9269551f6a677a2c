//! examples/mixed over HTTP: API routes take a bearer token or the session cookie, sensitive
//! routes take only the cookie, and the handlers cannot tell which mechanism they got.

use portcullis_tests::http::{TestClient, serve};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

async fn start() -> std::net::SocketAddr {
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new)
        .await
        .unwrap();
    serve(mixed::app(users).unwrap()).await
}

fn alice() -> Value {
    json!({"username": "alice", "password": "alice-password-1"})
}

#[tokio::test]
async fn bearer_reads_the_api_but_cannot_change_settings() {
    let addr = start().await;
    let client = TestClient::new(addr);
    let token: Value = client
        .json(Method::POST, "/token", &alice())
        .await
        .json()
        .await
        .unwrap();
    client.set_bearer(token["access_token"].as_str().map(str::to_owned));

    let whoami: Value = client.get("/api/whoami").await.json().await.unwrap();
    assert_eq!(whoami, json!({"user": "alice", "mechanism": "bearer"}));
    let change = client
        .json(
            Method::POST,
            "/settings/password",
            &json!({"password": "stolen-token-pw"}),
        )
        .await;
    assert_eq!(
        change.status(),
        StatusCode::UNAUTHORIZED,
        "a bearer token must not reach settings"
    );
}

#[tokio::test]
async fn session_cookie_reads_the_api_and_changes_settings() {
    let addr = start().await;
    let browser = TestClient::new(addr);
    assert_eq!(
        browser
            .json(Method::POST, "/login", &alice())
            .await
            .status(),
        StatusCode::OK
    );
    let whoami: Value = browser.get("/api/whoami").await.json().await.unwrap();
    assert_eq!(whoami, json!({"user": "alice", "mechanism": "session"}));
    let change = browser
        .json(
            Method::POST,
            "/settings/password",
            &json!({"password": "a-new-password"}),
        )
        .await;
    assert_eq!(change.status(), StatusCode::NO_CONTENT);
    // The new password is the one that works now.
    let relogin = TestClient::new(addr)
        .json(
            Method::POST,
            "/token",
            &json!({"username": "alice", "password": "a-new-password"}),
        )
        .await;
    assert_eq!(relogin.status(), StatusCode::OK);
}

#[tokio::test]
async fn anonymous_and_broken_credentials() {
    let addr = start().await;
    let anonymous = TestClient::new(addr);
    let response = anonymous.get("/api/me").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="mixed-api""#
    );
    let settings = anonymous
        .json(
            Method::POST,
            "/settings/password",
            &json!({"password": "whatever-pw"}),
        )
        .await;
    assert_eq!(settings.status(), StatusCode::UNAUTHORIZED);

    // A broken token is refused even when a valid cookie rides along.
    let browser = TestClient::new(addr);
    assert_eq!(
        browser
            .json(Method::POST, "/login", &alice())
            .await
            .status(),
        StatusCode::OK
    );
    browser.set_bearer(Some("not.a.token".into()));
    let response = browser.get("/api/me").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}
