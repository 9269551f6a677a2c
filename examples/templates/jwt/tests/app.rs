//! The template over HTTP, without a socket: token, `/me`, 401 anonymous, 403 non-admin.

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode, header},
};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone()
        .oneshot(request)
        .await
        .expect("the router is infallible")
}

fn get(path: &str, token: Option<&str>) -> Request<Body> {
    let request = Request::get(path);
    let request = match token {
        Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    };
    request.body(Body::empty()).expect("a valid request")
}

async fn body(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("a body");
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn token(app: &Router, username: &str, password: &str) -> Response<Body> {
    let credentials = json!({"username": username, "password": password}).to_string();
    let request = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(credentials))
        .expect("a valid request");
    send(app, request).await
}

async fn access_token(app: &Router, username: &str, password: &str) -> String {
    let response = token(app, username, password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = body(response).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["expires_in"].as_u64().is_some_and(|secs| secs > 0),
        "{body}"
    );
    body["access_token"].as_str().expect("a token").to_owned()
}

#[tokio::test]
async fn token_me_and_admin() {
    let app = jwt_template::app().expect("a key");

    let anonymous = send(&app, get("/me", None)).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let challenge = anonymous.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ASCII");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_eq!(
        token(&app, "alice", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token(&app, "nobody", "wrong").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let alice = access_token(&app, "alice", "alice-password-1").await;
    let me = send(&app, get("/me", Some(&alice))).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        body(me).await,
        json!({"user": "alice", "role": "advertiser"})
    );
    let refused = send(&app, get("/admin", Some(&alice))).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let challenge = refused.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ASCII");
    assert!(challenge.contains("insufficient_scope"), "{challenge}");

    let admin = access_token(&app, "admin", "admin-password-1").await;
    assert_eq!(
        send(&app, get("/admin", Some(&admin))).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn tampered_and_foreign_tokens_are_refused() {
    let app = jwt_template::app().expect("a key");
    let alice = access_token(&app, "alice", "alice-password-1").await;
    let mut tampered = alice.clone();
    tampered.push('A');
    let response = send(&app, get("/me", Some(&tampered))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ASCII");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // Another instance has another key: its tokens mean nothing here.
    let other = jwt_template::app().expect("a key");
    let foreign = access_token(&other, "admin", "admin-password-1").await;
    assert_eq!(
        send(&app, get("/admin", Some(&foreign))).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn jwks_publishes_the_public_key() {
    let app = jwt_template::app().expect("a key");
    let jwks = body(send(&app, get("/.well-known/jwks.json", None)).await).await;
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert!(keys[0].get("d").is_none(), "no private part: {jwks}");
}
