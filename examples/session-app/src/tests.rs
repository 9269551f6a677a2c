//! The app driven without a socket: routes, status codes, bodies and the settings parser.

use std::{collections::HashMap, sync::OnceLock, time::Duration};

use axum::{Router, body::Body};
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_session::{LimitPolicy, MemoryStore, SessionLayer};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{DemoUsers, Settings, SettingsError, app};

fn users() -> DemoUsers {
    static USERS: OnceLock<DemoUsers> = OnceLock::new();
    USERS.get_or_init(DemoUsers::new).clone()
}

fn test_app() -> Router {
    let settings = Settings::default();
    let layer = SessionLayer::new(MemoryStore::new(), settings.session_config()).unwrap();
    app(layer, users())
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn cookie(&self) -> Option<String> {
        let value = self.headers.get(header::SET_COOKIE)?.to_str().ok()?;
        let pair = value.split(';').next()?;
        (pair.len() > "__Host-session=".len()).then(|| pair.to_owned())
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn post(path: &str, content_type: Option<&str>, body: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(path);
    if let Some(content_type) = content_type {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get(path);
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::empty()).unwrap()
}

async fn login_json(app: &Router, username: &str, password: &str) -> Answer {
    let body = json!({ "username": username, "password": password }).to_string();
    send(app, post("/login", Some("application/json"), &body, None)).await
}

#[tokio::test]
async fn json_login_me_and_admin() {
    let app = test_app();
    let alice = login_json(&app, "alice", "alice-password-1").await;
    assert_eq!(alice.status, StatusCode::OK);
    assert_eq!(alice.json(), json!({"user": "alice", "role": "advertiser"}));
    let alice = alice.cookie().unwrap();
    let admin = login_json(&app, "admin", "admin-password-1")
        .await
        .cookie()
        .unwrap();

    let cases = [
        ("/me", Some(alice.as_str()), StatusCode::OK),
        ("/me", None, StatusCode::UNAUTHORIZED),
        ("/admin", Some(alice.as_str()), StatusCode::FORBIDDEN),
        ("/admin", Some(admin.as_str()), StatusCode::OK),
        ("/admin", None, StatusCode::UNAUTHORIZED),
        ("/sessions", None, StatusCode::UNAUTHORIZED),
        ("/nowhere", None, StatusCode::NOT_FOUND),
    ];
    for (path, cookie, expected) in cases {
        let answer = send(&app, get(path, cookie)).await;
        assert_eq!(answer.status, expected, "{path} {cookie:?}");
        if expected != StatusCode::NOT_FOUND {
            assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store", "{path}");
        }
    }
    let me = send(&app, get("/me", Some(&admin))).await;
    assert_eq!(me.json(), json!({"user": "admin", "role": "admin"}));
}

#[tokio::test]
async fn form_login_redirects_and_the_page_shows_the_user() {
    let app = test_app();
    let answer = send(
        &app,
        post(
            "/login",
            Some("application/x-www-form-urlencoded"),
            "username=alice&password=alice-password-1",
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.headers[header::LOCATION], "/");
    let cookie = answer.cookie().unwrap();
    let page = send(&app, get("/", Some(&cookie))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.contains("Signed in as alice"), "{}", page.text);
    assert!(page.text.contains("this session"));
    assert!(page.text.contains(r#"action="/logout""#));
    let anonymous = send(&app, get("/", None)).await;
    assert!(
        anonymous
            .text
            .contains(r#"<form method="post" action="/login">"#)
    );
    let out = send(
        &app,
        post(
            "/logout",
            Some("application/x-www-form-urlencoded"),
            "",
            Some(&cookie),
        ),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&app, get("/me", Some(&cookie))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn wrong_credentials_are_401_in_both_forms() {
    let app = test_app();
    for (username, password) in [
        ("alice", "wrong"),
        ("nobody", "alice-password-1"),
        ("admin", "alice-password-1"),
    ] {
        let answer = login_json(&app, username, password).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{username}");
        assert_eq!(answer.cookie(), None);
    }
    let answer = send(
        &app,
        post(
            "/login",
            Some("application/x-www-form-urlencoded"),
            "username=alice&password=nope",
            None,
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.text.contains("Unknown user name or wrong password"));
}

#[tokio::test]
async fn malformed_login_requests_are_client_errors_with_a_reason() {
    let app = test_app();
    let large = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "x".repeat(20_000)
    );
    let cases: &[(Option<&str>, &str, StatusCode)] = &[
        (Some("application/json"), "{", StatusCode::BAD_REQUEST),
        (Some("application/json"), "", StatusCode::BAD_REQUEST),
        (
            Some("application/json"),
            "not json",
            StatusCode::BAD_REQUEST,
        ),
        (
            Some("application/json"),
            r#"{"username": 1, "password": "x"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Some("application/json"),
            r#"{"username": "alice"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (Some("application/json"), "[]", StatusCode::BAD_REQUEST),
        (
            Some("application/x-www-form-urlencoded"),
            "username=alice",
            StatusCode::BAD_REQUEST,
        ),
        (
            Some("text/plain"),
            "username=alice&password=x",
            StatusCode::BAD_REQUEST,
        ),
        (
            None,
            r#"{"username":"alice","password":"alice-password-1"}"#,
            StatusCode::BAD_REQUEST,
        ),
        (Some("application/json"), &large, StatusCode::BAD_REQUEST),
    ];
    for (content_type, body, expected) in cases {
        let answer = send(&app, post("/login", *content_type, body, None)).await;
        assert_eq!(answer.status, *expected, "{content_type:?} {body:.40}");
        let description = answer.json()["error_description"]
            .as_str()
            .map(str::to_owned);
        assert!(
            description.is_some_and(|d| !d.is_empty()),
            "{content_type:?} {body:.40}: {}",
            answer.text
        );
    }
}

#[tokio::test]
async fn sessions_are_listed_and_revoked() {
    let app = test_app();
    let first = login_json(&app, "alice", "alice-password-1")
        .await
        .cookie()
        .unwrap();
    let second = login_json(&app, "alice", "alice-password-1")
        .await
        .cookie()
        .unwrap();
    let list = send(&app, get("/sessions", Some(&first))).await.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for entry in list {
        for field in ["handle", "created", "last_seen", "user_agent", "current"] {
            assert!(entry.get(field).is_some(), "{field} in {entry}");
        }
    }
    let other = list.iter().find(|s| s["current"] == false).unwrap()["handle"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = Request::delete(format!("/sessions/{other}"))
        .header(header::COOKIE, &first)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        send(&app, get("/me", Some(&second))).await.status,
        StatusCode::UNAUTHORIZED
    );
    let request = Request::delete("/sessions/unknown-handle")
        .header(header::COOKIE, &first)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, request).await.status, StatusCode::NOT_FOUND);
    let all = send(&app, post("/logout-all", None, "", Some(&first))).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json(), json!({"revoked": 1}));
    assert_eq!(
        send(&app, get("/me", Some(&first))).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn settings_come_from_the_environment() {
    let parse = |pairs: &[(&str, &str)]| {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    };
    assert_eq!(parse(&[]), Ok(Settings::default()));
    let settings = parse(&[
        ("SESSION_IDLE_SECS", "2"),
        ("SESSION_ABSOLUTE_SECS", "5"),
        ("SESSION_MAX_PER_USER", "1"),
        ("SESSION_LIMIT_POLICY", "refuse-new"),
    ])
    .unwrap();
    assert_eq!(settings.idle, Duration::from_secs(2));
    assert_eq!(settings.absolute, Duration::from_secs(5));
    assert_eq!(settings.max_per_user, Some(1));
    assert_eq!(settings.limit_policy, LimitPolicy::RefuseNew);
    assert!(settings.session_config().validate().is_ok());
    let only_absolute = parse(&[("SESSION_ABSOLUTE_SECS", "3")]).unwrap();
    assert_eq!(
        only_absolute.idle,
        Duration::from_secs(3),
        "idle is capped by absolute"
    );
    assert!(only_absolute.session_config().validate().is_ok());
    assert_eq!(
        parse(&[("SESSION_MAX_PER_USER", "0")])
            .unwrap()
            .max_per_user,
        None
    );
    for bad in [
        [("SESSION_IDLE_SECS", "soon")],
        [("SESSION_IDLE_SECS", "0")],
        [("SESSION_ABSOLUTE_SECS", "-1")],
        [("SESSION_MAX_PER_USER", "many")],
        [("SESSION_LIMIT_POLICY", "random")],
    ] {
        let error: SettingsError = parse(&bad).unwrap_err();
        assert!(error.to_string().contains(bad[0].0), "{error}");
    }
}

#[tokio::test]
async fn a_user_removed_from_the_table_loses_their_session() {
    // A table of its own: removing alice must not disturb the other tests.
    let users = tokio::task::spawn_blocking(DemoUsers::new).await.unwrap();
    let settings = Settings::default();
    let layer = SessionLayer::new(MemoryStore::new(), settings.session_config()).unwrap();
    let app = app(layer, users.clone());
    let login = login_json(&app, "alice", "alice-password-1").await;
    let cookie = login.cookie().unwrap();
    users.remove("alice");
    // The user comes from the table (through the loader), not from the login snapshot.
    let me = send(&app, get("/me", Some(&cookie))).await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED);
    let cleared = me
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}
