//! What the mechanisms report about themselves, end to end: the `tracing` events and `metrics`
//! counters of `portcullis_core::observe` for a session login and logout, a hybrid refresh and a
//! refresh-token reuse, and rejections by reason, driven through the example apps' routers. The
//! captured logs must never contain a secret: no cookie value, token or password (OWASP
//! Logging Cheat Sheet, "Data to exclude"; ASVS 4.0.3 V7.1.1).

use std::{future::Future, sync::OnceLock};

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use portcullis_core::observe::{
    LOGINS_TOTAL, REFRESHES_TOTAL, REJECTIONS_TOTAL, REVOCATIONS_TOTAL,
};
use portcullis_session::{MemoryStore, SessionLayer};
use portcullis_tests::logs::Captured;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One counter series: name, labels, value.
type Series = (String, Vec<(String, String)>, u64);

/// Everything one scenario emitted.
struct Observed {
    counters: Vec<Series>,
    logs: String,
}

impl Observed {
    /// The sum of counter `name` over the series carrying every label in `labels`.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.counters
            .iter()
            .filter(|(n, series, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| series.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|(.., value)| value)
            .sum()
    }

    fn assert_logged(&self, needles: &[&str]) {
        for needle in needles {
            assert!(
                self.logs.contains(needle),
                "missing {needle:?} in the logs:\n{}",
                self.logs
            );
        }
    }

    fn assert_never_logged(&self, secrets: &[&str]) {
        for secret in secrets {
            assert!(
                secret.len() >= 16,
                "not a secret worth checking: {secret:?}"
            );
            assert!(
                !self.logs.contains(secret),
                "a secret leaked into the logs:\n{}",
                self.logs
            );
        }
    }
}

/// Runs `scenario` on a current-thread runtime with a recorder and a TRACE-level subscriber
/// local to this thread, so tests running in parallel never see each other's counters.
fn observe<F: Future<Output = ()>>(scenario: impl FnOnce() -> F) -> Observed {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let logs = Captured::default();
    let subscriber = logs.subscriber(tracing::Level::TRACE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        tracing::subscriber::with_default(subscriber, || runtime.block_on(scenario()));
    });
    let counters = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| match value {
            DebugValue::Counter(n) => Some((
                key.key().name().to_owned(),
                key.key()
                    .labels()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect(),
                n,
            )),
            _ => None,
        })
        .collect();
    let logs = logs.text();
    Observed { counters, logs }
}

async fn send(app: &axum::Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

async fn body_json(response: Response<Body>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

fn json_post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// The value a response sets cookie `name` to.
fn set_cookie(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|line| line.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
}

fn session_users() -> session_app::DemoUsers {
    static USERS: OnceLock<session_app::DemoUsers> = OnceLock::new();
    USERS.get_or_init(session_app::DemoUsers::new).clone()
}

#[test]
fn a_session_login_logout_and_rejections_are_reported_without_secrets() {
    let users = session_users();
    let mut secrets = Vec::new();
    let observed = observe(|| async {
        let settings = session_app::Settings::from_lookup(|_| None).unwrap();
        let layer = SessionLayer::new(MemoryStore::new(), settings.session_config()).unwrap();
        let app = session_app::app(layer, users);

        let wrong = json!({"username": "alice", "password": "not-alice-password"});
        let refused = send(&app, json_post("/login", &wrong)).await;
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

        let credentials = json!({"username": "alice", "password": "alice-password-1"});
        let login = send(&app, json_post("/login", &credentials)).await;
        assert_eq!(login.status(), StatusCode::OK);
        let cookie = set_cookie(&login, "__Host-session").expect("a session cookie");
        let with_cookie = |request: http::request::Builder| {
            request
                .header(header::COOKIE, format!("__Host-session={cookie}"))
                .body(Body::empty())
                .unwrap()
        };
        let me = send(&app, with_cookie(Request::get("/me"))).await;
        assert_eq!(me.status(), StatusCode::OK);

        // A forged logout from another site: refused before the handler runs.
        let cross_site =
            with_cookie(Request::post("/logout").header("sec-fetch-site", "cross-site"));
        assert_eq!(send(&app, cross_site).await.status(), StatusCode::FORBIDDEN);
        // alice is not an admin.
        let admin = send(&app, with_cookie(Request::get("/admin"))).await;
        assert_eq!(admin.status(), StatusCode::FORBIDDEN);

        let logout = send(&app, with_cookie(Request::post("/logout"))).await;
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let after = send(&app, with_cookie(Request::get("/me"))).await;
        assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
        secrets.push(cookie);
    });

    assert_eq!(
        observed.counter(LOGINS_TOTAL, &[("mechanism", "session")]),
        1
    );
    assert_eq!(
        observed.counter(
            REVOCATIONS_TOTAL,
            &[("mechanism", "session"), ("scope", "session")]
        ),
        1
    );
    assert_eq!(
        observed.counter(REJECTIONS_TOTAL, &[("reason", "invalid_credentials")]),
        1,
        "the wrong password"
    );
    assert_eq!(
        observed.counter(
            REJECTIONS_TOTAL,
            &[("reason", "cross_site_request"), ("status", "403")]
        ),
        1
    );
    assert_eq!(
        observed.counter(
            REJECTIONS_TOTAL,
            &[("reason", "forbidden"), ("status", "403")]
        ),
        1
    );
    assert_eq!(
        observed.counter(
            REJECTIONS_TOTAL,
            &[("reason", "unauthorized"), ("status", "401")]
        ),
        1,
        "/me after logout"
    );
    observed.assert_logged(&[
        "event=\"login\"",
        "mechanism=\"session\"",
        "event=\"revocation\"",
        "event=\"rejection\"",
        "reason=\"cross_site_request\"",
    ]);
    secrets.push("alice-password-1".to_owned());
    secrets.push("not-alice-password".to_owned());
    observed.assert_never_logged(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
}

async fn hybrid_app(grace_secs: &str) -> axum::Router {
    let grace = grace_secs.to_owned();
    let settings = hybrid_app::Settings::from_lookup(move |name| match name {
        "REFRESH_GRACE_SECS" => Some(grace.clone()),
        "JWT_LEEWAY_SECS" => Some("0".to_owned()),
        _ => None,
    })
    .unwrap();
    hybrid_app::app(
        hybrid_app::AppState::from_settings(&settings)
            .await
            .unwrap(),
    )
}

#[test]
fn a_hybrid_refresh_a_reuse_detection_and_a_bad_token_are_reported_without_secrets() {
    let mut secrets = Vec::new();
    let observed = observe(|| async {
        // No grace window: the first replay of a rotated-out token is theft.
        let app = hybrid_app("0").await;
        let credentials = json!({"username": "alice", "password": "alice-password-1"});
        let token = send(&app, json_post("/token", &credentials)).await;
        assert_eq!(token.status(), StatusCode::OK);
        let token = body_json(token).await;
        let access = token["access_token"].as_str().unwrap().to_owned();
        let first = token["refresh_token"].as_str().unwrap().to_owned();

        let rotated = send(
            &app,
            json_post("/refresh", &json!({"refresh_token": first})),
        )
        .await;
        assert_eq!(rotated.status(), StatusCode::OK);
        let rotated = body_json(rotated).await;
        let second = rotated["refresh_token"].as_str().unwrap().to_owned();
        let second_access = rotated["access_token"].as_str().unwrap().to_owned();
        assert_ne!(first, second);

        // The rotated-out token again: theft detected, the session revoked.
        let replay = send(
            &app,
            json_post("/refresh", &json!({"refresh_token": first})),
        )
        .await;
        assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);
        let after = send(
            &app,
            json_post("/refresh", &json!({"refresh_token": second})),
        )
        .await;
        assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

        // A forged bearer token, and the revoked session's access token.
        let forged = Request::get("/me")
            .header(header::AUTHORIZATION, "Bearer not.a.jwt")
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, forged).await.status(), StatusCode::UNAUTHORIZED);
        let revoked = Request::get("/me")
            .header(header::AUTHORIZATION, format!("Bearer {second_access}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, revoked).await.status(), StatusCode::UNAUTHORIZED);
        secrets.extend([access, first, second, second_access]);
    });

    assert_eq!(
        observed.counter(LOGINS_TOTAL, &[("mechanism", "hybrid")]),
        1
    );
    assert_eq!(
        observed.counter(REFRESHES_TOTAL, &[("outcome", "rotated")]),
        1
    );
    assert_eq!(
        observed.counter(REFRESHES_TOTAL, &[("outcome", "reuse_detected")]),
        1
    );
    assert_eq!(
        observed.counter(REFRESHES_TOTAL, &[("outcome", "expired")]),
        1,
        "the current token of the revoked session"
    );
    assert_eq!(
        observed.counter(
            REVOCATIONS_TOTAL,
            &[("mechanism", "hybrid"), ("scope", "theft")]
        ),
        1
    );
    assert!(
        observed.counter(
            REJECTIONS_TOTAL,
            &[("reason", "invalid_token"), ("status", "401")]
        ) >= 2,
        "{:?}",
        observed.counters
    );
    observed.assert_logged(&[
        "event=\"login\"",
        "mechanism=\"hybrid\"",
        "outcome=\"rotated\"",
        "refresh_token_reuse",
        "scope=\"theft\"",
        "reason=\"invalid_token\"",
    ]);
    // The access tokens' signatures and every refresh token's secret half.
    let mut checked: Vec<String> = Vec::new();
    for secret in &secrets {
        match secret.split_once('.') {
            Some((_sid, rest)) if !secret.starts_with("ey") => checked.push(rest.to_owned()),
            _ => checked.push(secret.rsplit('.').next().unwrap().to_owned()),
        }
        checked.push(secret.clone());
    }
    observed.assert_never_logged(&checked.iter().map(String::as_str).collect::<Vec<_>>());
    observed.assert_never_logged(&["alice-password-1"]);
}

#[test]
fn hybrid_logout_all_is_a_user_scoped_revocation() {
    let observed = observe(|| async {
        let app = hybrid_app("5").await;
        let credentials = json!({"username": "admin", "password": "admin-password-1"});
        let mut access = String::new();
        for _ in 0..3 {
            let token = body_json(send(&app, json_post("/token", &credentials)).await).await;
            access = token["access_token"].as_str().unwrap().to_owned();
        }
        let logout_all = Request::post("/logout-all")
            .header(header::AUTHORIZATION, format!("Bearer {access}"))
            .body(Body::empty())
            .unwrap();
        let response = send(&app, logout_all).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_json(response).await["sessions_ended"], 3);
    });
    assert_eq!(
        observed.counter(LOGINS_TOTAL, &[("mechanism", "hybrid")]),
        3
    );
    assert_eq!(
        observed.counter(
            REVOCATIONS_TOTAL,
            &[("mechanism", "hybrid"), ("scope", "user")]
        ),
        3
    );
    observed.assert_logged(&["scope=\"user\"", "count=3"]);
}
