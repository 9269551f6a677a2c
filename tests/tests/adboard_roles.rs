//! adboard's `PUT /users/{name}/role`, black-box over HTTP: only admins change roles (401
//! anonymous, 403 advertiser, 404 unknown user, 422 unknown role), and the user's very next
//! request sees the new role, in session and hybrid modes, on one instance and on two sharing
//! Redis (issue 14 item 6).

use std::{net::SocketAddr, time::Duration};

use adboard::Mode;
use portcullis_tests::{
    http::{TestClient, serve},
    redis_server::{shared_url, unique_prefix},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "adboard-test-secret-of-at-least-thirty-two-bytes!";

/// One instance in memory, or `count` instances sharing a fresh prefix of the shared Redis.
async fn start(mode: Mode, count: usize, redis: bool) -> Vec<SocketAddr> {
    let url = if redis { shared_url() } else { String::new() };
    let prefix = unique_prefix("roles");
    let lookup = move |name: &str| match name {
        "JWT_HS256_SECRET" => Some(SECRET.to_owned()),
        "REDIS_URL" if redis => Some(url.clone()),
        "REDIS_KEY_PREFIX" if redis => Some(prefix.clone()),
        _ => None,
    };
    let mut addrs = Vec::new();
    for _ in 0..count {
        addrs.push(serve(adboard::app(mode, &lookup).await.expect("adboard starts")).await);
    }
    addrs
}

async fn login(client: &TestClient, mode: Mode, username: &str) -> StatusCode {
    let password = format!("{username}-password-1");
    let response = client
        .json(
            Method::POST,
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if mode == Mode::Jwt && status == StatusCode::OK {
        client.set_bearer(body["access_token"].as_str().map(str::to_owned));
    }
    status
}

async fn set_role(client: &TestClient, name: &str, body: Value) -> (StatusCode, Value) {
    let response = client
        .json(Method::PUT, &format!("/users/{name}/role"), &body)
        .await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn role_of(client: &TestClient) -> Value {
    let response = client.get("/me").await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json::<Value>().await.unwrap()["role"].clone()
}

async fn only_admins_change_roles(mode: Mode) {
    let addr = start(mode, 1, false).await[0];
    let anonymous = TestClient::new(addr);
    let alice = TestClient::new(addr);
    let admin = TestClient::new(addr);
    assert_eq!(login(&alice, mode, "alice").await, StatusCode::OK);
    assert_eq!(login(&admin, mode, "admin").await, StatusCode::OK);
    let promote = json!({"role": "admin"});

    let (status, _) = set_role(&anonymous, "alice", promote.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode}: anonymous");
    let (status, _) = set_role(&alice, "alice", promote.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{mode}: an advertiser");
    assert_eq!(role_of(&alice).await, "advertiser", "{mode}");
    let (status, body) = set_role(&admin, "bob", promote.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{mode}: unknown user {body}");
    for bad in [
        json!({"role": "owner"}),
        json!({"role": 1}),
        json!({}),
        json!("admin"),
    ] {
        let (status, _) = set_role(&admin, "alice", bad.clone()).await;
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{mode}: {bad} gave {status}"
        );
    }
    let not_json = admin
        .send(
            admin
                .request(Method::PUT, "/users/alice/role")
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST, "{mode}");
    assert_eq!(
        role_of(&alice).await,
        "advertiser",
        "{mode}: nothing changed"
    );
}

#[tokio::test]
async fn session_mode_only_admins_change_roles() {
    only_admins_change_roles(Mode::Session).await;
}

#[tokio::test]
async fn hybrid_mode_only_admins_change_roles() {
    only_admins_change_roles(Mode::Hybrid).await;
}

#[tokio::test]
async fn jwt_mode_only_admins_change_roles() {
    only_admins_change_roles(Mode::Jwt).await;
}

/// Alice signs in on the first instance; the admin changes her role on the first; her next
/// request (on the last instance) runs with the new role, and so does the ad policy.
async fn next_request_sees_the_new_role(mode: Mode, instances: usize, redis: bool) {
    let addrs = start(mode, instances, redis).await;
    let (first, last) = (addrs[0], addrs[instances - 1]);
    let admin = TestClient::new(first);
    let alice = TestClient::new(first);
    assert_eq!(login(&admin, mode, "admin").await, StatusCode::OK);
    assert_eq!(login(&alice, mode, "alice").await, StatusCode::OK);
    assert_eq!(role_of(&alice).await, "advertiser");
    // Ads live in each instance's memory: the ad is made where alice's next requests go.
    let ad: Value = admin
        .clone()
        .with_base(last)
        .json(Method::POST, "/ads", &json!({"title": "the admin's ad"}))
        .await
        .json()
        .await
        .unwrap();
    let ad_path = format!("/ads/{}", ad["id"]);
    let alice = alice.with_base(last);
    assert_eq!(alice.get(&ad_path).await.status(), StatusCode::FORBIDDEN);

    for (role, ad_status) in [
        ("admin", StatusCode::OK),
        ("advertiser", StatusCode::FORBIDDEN),
    ] {
        let (status, body) = set_role(&admin, "alice", json!({ "role": role })).await;
        assert_eq!(status, StatusCode::OK, "{mode}: {body}");
        assert_eq!(body, json!({"user": "alice", "role": role}));
        // Hybrid across instances: the change mark reaches the other node by Redis pub/sub
        // (milliseconds); allow it a bounded moment.
        let mut seen = role_of(&alice).await;
        if mode != Mode::Session && instances > 1 {
            for _ in 0..40 {
                if seen == role {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                seen = role_of(&alice).await;
            }
        }
        assert_eq!(
            seen, role,
            "{mode}, {instances} instance(s): the next request"
        );
        assert_eq!(
            alice.get(&ad_path).await.status(),
            ad_status,
            "{mode}: as {role}"
        );
        // And it sticks: later requests keep the new role.
        assert_eq!(role_of(&alice).await, role, "{mode}");
    }
}

#[tokio::test]
async fn session_mode_role_change_in_memory() {
    next_request_sees_the_new_role(Mode::Session, 1, false).await;
}

#[tokio::test]
async fn session_mode_role_change_across_two_instances_sharing_redis() {
    next_request_sees_the_new_role(Mode::Session, 2, true).await;
}

#[tokio::test]
async fn hybrid_mode_role_change_in_memory() {
    next_request_sees_the_new_role(Mode::Hybrid, 1, false).await;
}

#[tokio::test]
async fn hybrid_mode_role_change_across_two_instances_sharing_redis() {
    next_request_sees_the_new_role(Mode::Hybrid, 2, true).await;
}

/// JWT mode has no shared state without Redis: the instance that changed the role serves the
/// user's older tokens with the new role.
#[tokio::test]
async fn jwt_mode_role_change_on_one_instance() {
    next_request_sees_the_new_role(Mode::Jwt, 1, false).await;
}

#[tokio::test]
async fn jwt_mode_role_change_across_two_instances_sharing_redis() {
    next_request_sees_the_new_role(Mode::Jwt, 2, true).await;
}
