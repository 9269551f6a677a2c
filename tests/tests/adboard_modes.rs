//! The central promise, black-box over HTTP: adboard's ad handlers are the same functions in
//! every mode, so the same scenarios must pass under session cookies, bearer JWTs and the
//! hybrid edge check. Only sign-in differs (cookies or a bearer token), and the client hides it.

use adboard::Mode;
use portcullis_tests::http::{TestClient, serve};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "adboard-test-secret-of-at-least-thirty-two-bytes!";

async fn start(mode: Mode) -> std::net::SocketAddr {
    let lookup = |name: &str| (name == "JWT_HS256_SECRET").then(|| SECRET.to_owned());
    serve(adboard::app(mode, lookup).await.expect("adboard starts")).await
}

/// Signs in; in JWT mode the client then sends the token it received.
async fn login(client: &TestClient, mode: Mode, username: &str, password: &str) -> StatusCode {
    let response = client
        .json(
            Method::POST,
            "/login",
            &json!({"username": username, "password": password}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if status == StatusCode::OK {
        match mode {
            Mode::Jwt => {
                assert_eq!(body["token_type"], "Bearer");
                client.set_bearer(body["access_token"].as_str().map(str::to_owned));
            }
            Mode::Session | Mode::Hybrid => assert_eq!(body["user"], username),
        }
    }
    status
}

async fn create_ad(client: &TestClient, title: &str) -> Value {
    let response = client
        .json(Method::POST, "/ads", &json!({ "title": title }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn ownership_and_moderation(mode: Mode) {
    let addr = start(mode).await;
    let anonymous = TestClient::new(addr);
    let alice = TestClient::new(addr);
    let admin = TestClient::new(addr);

    for (method, path) in [
        ("GET", "/ads"),
        ("POST", "/ads"),
        ("GET", "/ads/1"),
        ("DELETE", "/ads/1"),
        ("GET", "/me"),
    ] {
        let response = anonymous
            .json(method.parse().unwrap(), path, &json!({"title": "x"}))
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{mode}: anonymous {method} {path}"
        );
    }

    assert_eq!(
        login(&alice, mode, "alice", "wrong-password").await,
        StatusCode::UNAUTHORIZED,
        "{mode}"
    );
    assert_eq!(
        login(&alice, mode, "alice", "alice-password-1").await,
        StatusCode::OK,
        "{mode}"
    );
    assert_eq!(
        login(&admin, mode, "admin", "admin-password-1").await,
        StatusCode::OK,
        "{mode}"
    );
    let me: Value = alice.get("/me").await.json().await.unwrap();
    assert_eq!(me, json!({"user": "alice", "role": "advertiser"}), "{mode}");

    let alices = create_ad(&alice, "Alice's bike").await;
    assert_eq!(alices["owner"], "alice");
    let admins = create_ad(&admin, "House rules").await;
    let alice_ad = format!("/ads/{}", alices["id"]);
    let admin_ad = format!("/ads/{}", admins["id"]);

    // An advertiser sees and touches only their own ads.
    let listed: Vec<Value> = alice.get("/ads").await.json().await.unwrap();
    assert_eq!(listed, vec![alices.clone()], "{mode}");
    assert_eq!(
        alice.get(&admin_ad).await.status(),
        StatusCode::FORBIDDEN,
        "{mode}"
    );
    let update = alice
        .json(Method::PUT, &admin_ad, &json!({"title": "mine now"}))
        .await;
    assert_eq!(update.status(), StatusCode::FORBIDDEN, "{mode}");
    assert_eq!(
        alice.delete(&admin_ad).await.status(),
        StatusCode::FORBIDDEN,
        "{mode}"
    );
    let update = alice
        .json(
            Method::PUT,
            &alice_ad,
            &json!({"title": "Alice's red bike"}),
        )
        .await;
    assert_eq!(update.status(), StatusCode::OK, "{mode}");

    // Bad input is a 4xx with a reason, never a 500.
    let empty = alice
        .json(Method::PUT, &alice_ad, &json!({"title": "  "}))
        .await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY, "{mode}");
    let garbled = alice
        .send(
            alice
                .request(Method::POST, "/ads")
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    assert_eq!(garbled.status(), StatusCode::BAD_REQUEST, "{mode}");

    // An admin sees and moderates everything; unknown ids are 404.
    let listed: Vec<Value> = admin.get("/ads").await.json().await.unwrap();
    assert_eq!(listed.len(), 2, "{mode}");
    let moderated = admin
        .json(Method::PUT, &alice_ad, &json!({"title": "[moderated]"}))
        .await;
    assert_eq!(moderated.status(), StatusCode::OK, "{mode}");
    let seen: Value = alice.get(&alice_ad).await.json().await.unwrap();
    assert_eq!(seen["title"], "[moderated]", "{mode}");
    assert_eq!(
        admin.delete(&alice_ad).await.status(),
        StatusCode::NO_CONTENT,
        "{mode}"
    );
    assert_eq!(
        admin.get(&alice_ad).await.status(),
        StatusCode::NOT_FOUND,
        "{mode}"
    );
    assert_eq!(
        admin.get("/ads/999999").await.status(),
        StatusCode::NOT_FOUND,
        "{mode}"
    );

    // Logout ends access, even for someone who kept a copy of the credentials.
    let stolen = alice.snapshot();
    assert_eq!(stolen.get("/me").await.status(), StatusCode::OK, "{mode}");
    let logout = alice.send(alice.request(Method::POST, "/logout")).await;
    assert!(logout.status().is_success(), "{mode}: {}", logout.status());
    assert_eq!(
        stolen.get("/me").await.status(),
        StatusCode::UNAUTHORIZED,
        "{mode}: replayed credentials after logout"
    );
    assert_eq!(
        stolen.get("/ads").await.status(),
        StatusCode::UNAUTHORIZED,
        "{mode}"
    );
    // The admin is not affected.
    assert_eq!(admin.get("/ads").await.status(), StatusCode::OK, "{mode}");
}

async fn password_change_revokes_other_sessions(mode: Mode) {
    let addr = start(mode).await;
    let laptop = TestClient::new(addr);
    let phone = TestClient::new(addr);
    assert_eq!(
        login(&laptop, mode, "alice", "alice-password-1").await,
        StatusCode::OK
    );
    assert_eq!(
        login(&phone, mode, "alice", "alice-password-1").await,
        StatusCode::OK
    );

    // Re-authentication refuses a wrong password.
    let wrong = laptop
        .json(Method::POST, "/reauth", &json!({"password": "nope"}))
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{mode}");
    let confirmed = laptop
        .json(
            Method::POST,
            "/reauth",
            &json!({"password": "alice-password-1"}),
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::OK, "{mode}");
    if mode == Mode::Jwt {
        let body: Value = confirmed.json().await.unwrap();
        laptop.set_bearer(body["access_token"].as_str().map(str::to_owned));
    }
    let changed = laptop
        .json(
            Method::POST,
            "/password",
            &json!({"password": "new-password-2"}),
        )
        .await;
    assert!(
        changed.status().is_success(),
        "{mode}: {}",
        changed.status()
    );
    if mode == Mode::Jwt {
        let body: Value = changed.json().await.unwrap();
        laptop.set_bearer(body["access_token"].as_str().map(str::to_owned));
    }
    assert_eq!(
        phone.get("/me").await.status(),
        StatusCode::UNAUTHORIZED,
        "{mode}: the other session must end"
    );
    assert_eq!(
        laptop.get("/me").await.status(),
        StatusCode::OK,
        "{mode}: the changing session stays"
    );
    let fresh = TestClient::new(addr);
    assert_eq!(
        login(&fresh, mode, "alice", "alice-password-1").await,
        StatusCode::UNAUTHORIZED,
        "{mode}"
    );
    assert_eq!(
        login(&fresh, mode, "alice", "new-password-2").await,
        StatusCode::OK,
        "{mode}"
    );

    // Deleting the account ends every session and the credentials with it.
    assert_eq!(
        laptop.delete("/account").await.status(),
        StatusCode::NO_CONTENT,
        "{mode}"
    );
    assert_eq!(
        fresh.get("/me").await.status(),
        StatusCode::UNAUTHORIZED,
        "{mode}"
    );
    assert_eq!(
        login(&fresh, mode, "alice", "new-password-2").await,
        StatusCode::UNAUTHORIZED,
        "{mode}"
    );
}

#[tokio::test]
async fn session_mode_ownership_and_moderation() {
    ownership_and_moderation(Mode::Session).await;
}

#[tokio::test]
async fn jwt_mode_ownership_and_moderation() {
    ownership_and_moderation(Mode::Jwt).await;
}

#[tokio::test]
async fn hybrid_mode_ownership_and_moderation() {
    ownership_and_moderation(Mode::Hybrid).await;
}

#[tokio::test]
async fn session_mode_password_change() {
    password_change_revokes_other_sessions(Mode::Session).await;
}

#[tokio::test]
async fn jwt_mode_password_change() {
    password_change_revokes_other_sessions(Mode::Jwt).await;
}

#[tokio::test]
async fn hybrid_mode_password_change() {
    password_change_revokes_other_sessions(Mode::Hybrid).await;
}

/// With `REDIS_URL`, two adboard instances share sessions: a login on one is honoured by the
/// other, and a logout on one ends access on both.
async fn two_instances_share_redis(mode: Mode) {
    let url = portcullis_tests::redis_server::shared_url();
    let prefix = portcullis_tests::redis_server::unique_prefix("adboard");
    let lookup = move |name: &str| match name {
        "JWT_HS256_SECRET" => Some(SECRET.to_owned()),
        "REDIS_URL" => Some(url.clone()),
        "REDIS_KEY_PREFIX" => Some(prefix.clone()),
        _ => None,
    };
    let first = serve(adboard::app(mode, &lookup).await.expect("adboard starts")).await;
    let second = serve(adboard::app(mode, &lookup).await.expect("adboard starts")).await;
    let on_first = TestClient::new(first);
    assert_eq!(
        login(&on_first, mode, "alice", "alice-password-1").await,
        StatusCode::OK
    );
    let on_second = on_first.snapshot().with_base(second);
    assert_eq!(
        on_second.get("/me").await.status(),
        StatusCode::OK,
        "{mode}: login on one node, valid on the other"
    );
    let logout = on_first
        .send(on_first.request(Method::POST, "/logout"))
        .await;
    assert!(logout.status().is_success(), "{mode}");
    // The revocation travels through Redis (pub/sub for hybrid): poll briefly, bounded.
    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = on_second.get("/me").await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{mode}: logout on one node, refused on the other"
    );
}

#[tokio::test]
async fn session_mode_two_instances_share_redis() {
    two_instances_share_redis(Mode::Session).await;
}

#[tokio::test]
async fn hybrid_mode_two_instances_share_redis() {
    two_instances_share_redis(Mode::Hybrid).await;
}
