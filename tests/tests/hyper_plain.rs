//! examples/hyper-plain over HTTP: the session layer and a guard on a bare hyper service.

use portcullis_tests::http::TestClient;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

async fn start() -> std::net::SocketAddr {
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hyper_plain::serve(
        listener,
        hyper_plain::service(users).unwrap(),
    ));
    addr
}

#[tokio::test]
async fn login_me_admin_logout_without_axum() {
    let addr = start().await;
    let client = TestClient::new(addr);
    assert_eq!(client.get("/me").await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        client.get("/admin").await.status(),
        StatusCode::UNAUTHORIZED
    );

    let login = client
        .json(
            Method::POST,
            "/login",
            &json!({"username": "alice", "password": "alice-password-1"}),
        )
        .await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("__Host-session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );

    let me: Value = client.get("/me").await.json().await.unwrap();
    assert_eq!(me, json!({"user": "alice", "role": "advertiser"}));
    let admin = client.get("/admin").await;
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);
    assert_eq!(admin.headers()[header::CACHE_CONTROL], "no-store");

    let stolen = client.snapshot();
    assert!(
        client
            .send(client.request(Method::POST, "/logout"))
            .await
            .status()
            .is_success()
    );
    assert_eq!(stolen.get("/me").await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_login_bodies_are_4xx_not_500() {
    let addr = start().await;
    let client = TestClient::new(addr);
    let json = |body: String| {
        client
            .request(Method::POST, "/login")
            .header("content-type", "application/json")
            .body(body)
    };
    // The library's login parser, as every axum app answers (DESIGN: malformed request 400).
    for body in ["", "{", "[]", r#"{"username": 1}"#] {
        let response = client.send(json(body.to_owned())).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{body:?}");
    }
    let huge = client.send(json("x".repeat(64 * 1024))).await;
    assert_eq!(huge.status(), StatusCode::BAD_REQUEST);
    let untyped = client
        .send(
            client
                .request(Method::POST, "/login")
                .body(r#"{"username":"a","password":"b"}"#),
        )
        .await;
    assert_eq!(untyped.status(), StatusCode::BAD_REQUEST);
    let form = client
        .send(
            client
                .request(Method::POST, "/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=alice&password=alice-password-1"),
        )
        .await;
    assert_eq!(form.status(), StatusCode::OK);
    let wrong = client
        .json(
            Method::POST,
            "/login",
            &json!({"username": "admin", "password": "guess"}),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}
