//! hybrid-app on PostgreSQL (`DATABASE_URL`), black-box on the binary: two instances sharing
//! one database and one signing key behave as one service (a token from one is accepted by the
//! other, a logout on one is refused by the other once the `NOTIFY` arrives, a refresh token
//! rotated on one is rotated for both), and a database outage from start-up answers 503 with
//! `Retry-After`, then recovers without a restart.

use std::time::{Duration, Instant};

use portcullis_tests::{
    binary::{Reply, RunningApp, poll, send},
    postgres_server::{address, shared_url_blocking, unique_schema, with_address},
    switch_proxy::SwitchProxy,
};

const EXE: &str = env!("CARGO_BIN_EXE_hybrid-app");
const SECRET: &str = "a-test-secret-of-at-least-32-bytes-long!";
const ALICE: &str = r#"{"username": "alice", "password": "alice-password-1"}"#;

fn start(url: &str, schema: &str) -> RunningApp {
    RunningApp::start(
        EXE,
        &["--addr", "127.0.0.1:0"],
        &[
            ("DATABASE_URL", url),
            ("DATABASE_SCHEMA", schema),
            ("JWT_HS256_SECRET", SECRET),
        ],
    )
}

fn json(app: &RunningApp, path: &str, body: &str) -> Reply {
    send(
        app.addr(),
        "POST",
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

fn bearer(app: &RunningApp, method: &str, path: &str, token: &str) -> Reply {
    let authorization = format!("Bearer {token}");
    send(
        app.addr(),
        method,
        path,
        &[("Authorization", &authorization)],
        "",
    )
}

fn ready(app: &RunningApp) -> Reply {
    poll(app, "/readyz", Duration::from_secs(15), |r| r.status == 200)
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {reply:?}");
    assert!(reply.header("retry-after").is_some(), "{what}: {reply:?}");
}

#[test]
fn two_instances_sharing_one_database_behave_as_one() {
    let url = shared_url_blocking();
    let schema = unique_schema("hybrid_app");
    let first = start(&url, &schema);
    let second = start(&url, &schema);
    assert_eq!(ready(&first).status, 200);
    assert_eq!(ready(&second).status, 200);

    let tokens = json(&first, "/token", ALICE);
    assert_eq!(tokens.status, 200, "{tokens:?}");
    let access = tokens.json()["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(bearer(&second, "GET", "/me", &access).status, 200);

    // Rotated on the second; the first sees the rotation (the old token is no longer current).
    let body = format!(r#"{{"refresh_token": "{refresh}"}}"#);
    let rotated = json(&second, "/refresh", &body);
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let access = rotated.json()["access_token"].as_str().unwrap().to_owned();

    // A logout on the first is honoured by the second once the NOTIFY arrives.
    let out = bearer(&first, "POST", "/logout", &access);
    assert_eq!(out.status, 204, "{out:?}");
    let started = Instant::now();
    loop {
        let reply = bearer(&second, "GET", "/me", &access);
        if reply.status == 401 {
            break;
        }
        assert_eq!(reply.status, 200, "{reply:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "never revoked");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "logout reached the other instance within {:?}",
        started.elapsed()
    );
    // The session is gone for refreshes too, on both.
    let body = format!(
        r#"{{"refresh_token": "{}"}}"#,
        rotated.json()["refresh_token"].as_str().unwrap()
    );
    assert_eq!(json(&second, "/refresh", &body).status, 401);
}

#[test]
fn a_database_outage_answers_503_with_retry_after_and_recovers_without_a_restart() {
    let url = shared_url_blocking();
    let schema = unique_schema("hybrid_app_outage");
    let proxy = SwitchProxy::start(&address(&url), false);
    let app = start(&with_address(&url, proxy.addr()), &schema);
    assert_eq!(app.get("/healthz").status, 200);
    assert_unavailable(&app.get("/readyz"), "readyz while down");
    assert_unavailable(&json(&app, "/token", ALICE), "login while down");

    proxy.up();
    assert_eq!(ready(&app).status, 200);
    let tokens = json(&app, "/token", ALICE);
    assert_eq!(tokens.status, 200, "{tokens:?}");
    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();

    proxy.down();
    let body = format!(r#"{{"refresh_token": "{refresh}"}}"#);
    assert_unavailable(&json(&app, "/refresh", &body), "refresh while down");
    let down = poll(&app, "/readyz", Duration::from_secs(10), |r| {
        r.status == 503
    });
    assert_unavailable(&down, "readyz after going down");

    proxy.up();
    assert_eq!(ready(&app).status, 200);
    let rotated = json(&app, "/refresh", &body);
    assert_eq!(rotated.status, 200, "{rotated:?}");
}
