//! Issue 14 ("fresh users everywhere"), black-box over HTTP with two adboard instances sharing
//! one Redis: a role change on A is seen by B's next request (propagation measured over 50
//! trials, p50/p99 printed), a user deleted on A is 401 on B, and in jwt mode a logout or a
//! password change on A holds on B, while a login right after the password change works.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use adboard::Mode;
use portcullis_tests::{
    http::{TestClient, serve},
    redis_server::{shared_url, unique_prefix},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "adboard-test-secret-of-at-least-thirty-two-bytes!";

async fn two_instances(mode: Mode) -> (SocketAddr, SocketAddr) {
    let url = shared_url();
    let prefix = unique_prefix("fresh");
    let lookup = move |name: &str| match name {
        "JWT_HS256_SECRET" => Some(SECRET.to_owned()),
        "REDIS_URL" => Some(url.clone()),
        "REDIS_KEY_PREFIX" => Some(prefix.clone()),
        _ => None,
    };
    let a = serve(adboard::app(mode, &lookup).await.expect("adboard starts")).await;
    let b = serve(adboard::app(mode, &lookup).await.expect("adboard starts")).await;
    (a, b)
}

/// Signs in; in jwt mode the client then carries the token. The token, if any.
async fn login(client: &TestClient, mode: Mode, username: &str, password: &str) -> Option<String> {
    let response = client
        .json(
            Method::POST,
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "{mode}: login {username}"
    );
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let token = body["access_token"].as_str().map(str::to_owned);
    if mode == Mode::Jwt {
        client.set_bearer(token.clone());
    }
    token
}

async fn role_of(client: &TestClient) -> (StatusCode, Value) {
    let response = client.get("/me").await;
    let status = response.status();
    (
        status,
        response.json::<Value>().await.unwrap_or(Value::Null)["role"].clone(),
    )
}

/// Per trial: milliseconds from the admin's `PUT` on A being sent until B has served the new
/// role, and whether B's very next request after the `PUT` answered already had it.
async fn propagation(mode: Mode) -> Vec<(f64, bool)> {
    let (a, b) = two_instances(mode).await;
    let admin = TestClient::new(a);
    let alice = TestClient::new(a);
    login(&admin, mode, "admin", "admin-password-1").await;
    login(&alice, mode, "alice", "alice-password-1").await;
    let alice = alice.with_base(b);
    let mut samples = Vec::new();
    for trial in 0..50 {
        let role = if trial % 2 == 0 {
            "admin"
        } else {
            "advertiser"
        };
        let sent = Instant::now();
        let response = admin
            .json(Method::PUT, "/users/alice/role", &json!({ "role": role }))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{mode}");
        let answered = Instant::now();
        let mut first = true;
        loop {
            let (status, seen) = role_of(&alice).await;
            assert_eq!(status, StatusCode::OK, "{mode}");
            if seen == role {
                samples.push((sent.elapsed().as_secs_f64() * 1e3, first));
                break;
            }
            first = false;
            assert!(
                answered.elapsed() < Duration::from_secs(2),
                "{mode}: B never saw the new role"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    samples
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

async fn report_propagation(mode: Mode) {
    let trials = propagation(mode).await;
    let immediate = trials.iter().filter(|(_, first)| *first).count();
    let mut samples: Vec<f64> = trials.iter().map(|(ms, _)| *ms).collect();
    samples.sort_by(f64::total_cmp);
    // On stderr (the lint keeps stdout clean): shown with `-- --nocapture`.
    eprintln!(
        "{mode}: role change on A seen by B: {immediate}/{} on the very next request; \
         PUT on A sent to the new role served by B: p50 {:.2} ms, p99 {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
    );
    assert!(percentile(&samples, 0.99) < 500.0, "{mode}: {samples:?}");
    // Pub/sub delivery races the next HTTP request; on a loaded machine a few may lose.
    assert!(immediate * 5 >= trials.len() * 4, "{mode}: {trials:?}");
}

#[tokio::test]
async fn session_mode_role_change_propagation() {
    report_propagation(Mode::Session).await;
}

#[tokio::test]
async fn jwt_mode_role_change_propagation() {
    report_propagation(Mode::Jwt).await;
}

/// Polls B (pub/sub delivery takes milliseconds) until `status`, at most two seconds.
async fn eventually_status(client: &TestClient, path: &str, status: StatusCode) -> StatusCode {
    let start = Instant::now();
    loop {
        let seen = client.get(path).await.status();
        if seen == status || start.elapsed() > Duration::from_secs(2) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn reauth(client: &TestClient, mode: Mode, password: &str) {
    let response = client
        .json(Method::POST, "/reauth", &json!({ "password": password }))
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{mode}: reauth");
    if mode == Mode::Jwt {
        let body: Value = response.json().await.unwrap();
        client.set_bearer(body["access_token"].as_str().map(str::to_owned));
    }
}

async fn deleted_on_a_is_401_on_b(mode: Mode) {
    let (a, b) = two_instances(mode).await;
    let on_a = TestClient::new(a);
    let on_b = TestClient::new(b);
    login(&on_a, mode, "alice", "alice-password-1").await;
    login(&on_b, mode, "alice", "alice-password-1").await;
    assert_eq!(on_b.get("/me").await.status(), StatusCode::OK);
    reauth(&on_a, mode, "alice-password-1").await;
    let deleted = on_a.send(on_a.request(Method::DELETE, "/account")).await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT, "{mode}");
    assert_eq!(
        eventually_status(&on_b, "/me", StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED,
        "{mode}: the deleted user on the other instance"
    );
    let again = TestClient::new(b)
        .json(
            Method::POST,
            "/login",
            &json!({"username": "alice", "password": "alice-password-1"}),
        )
        .await;
    assert_eq!(
        again.status(),
        StatusCode::UNAUTHORIZED,
        "{mode}: no login on B either"
    );
}

#[tokio::test]
async fn session_mode_user_deleted_on_a_is_401_on_b() {
    deleted_on_a_is_401_on_b(Mode::Session).await;
}

#[tokio::test]
async fn jwt_mode_user_deleted_on_a_is_401_on_b() {
    deleted_on_a_is_401_on_b(Mode::Jwt).await;
}

#[tokio::test]
async fn jwt_mode_logout_and_password_change_hold_on_every_instance() {
    let mode = Mode::Jwt;
    let (a, b) = two_instances(mode).await;
    // Logout on A: the token is refused on B.
    let client = TestClient::new(a);
    let token = login(&client, mode, "alice", "alice-password-1").await;
    let on_b = TestClient::new(b);
    on_b.set_bearer(token);
    assert_eq!(on_b.get("/me").await.status(), StatusCode::OK);
    let logout = client.send(client.request(Method::POST, "/logout")).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        eventually_status(&on_b, "/me", StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED,
        "a logged-out token on the other instance"
    );

    // Password change on A: the phone's token dies on B; the token it hands out and a login
    // in the same second with the new password work on B (iat has whole seconds only).
    let laptop = TestClient::new(a);
    let phone = TestClient::new(b);
    login(&laptop, mode, "alice", "alice-password-1").await;
    login(&phone, mode, "alice", "alice-password-1").await;
    reauth(&laptop, mode, "alice-password-1").await;
    let changed = laptop
        .json(
            Method::POST,
            "/password",
            &json!({"password": "new-password-2"}),
        )
        .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let body: Value = changed.json().await.unwrap();
    let fresh = TestClient::new(a);
    let right_after = login(&fresh, mode, "alice", "new-password-2").await;
    assert_eq!(
        eventually_status(&phone, "/me", StatusCode::UNAUTHORIZED).await,
        StatusCode::UNAUTHORIZED,
        "the other device, on the other instance"
    );
    for token in [
        body["access_token"].as_str().map(str::to_owned),
        right_after,
    ] {
        let client = TestClient::new(b);
        client.set_bearer(token);
        assert_eq!(
            client.get("/me").await.status(),
            StatusCode::OK,
            "tokens minted after the change, on the other instance"
        );
    }
}
