//! Unit tests of the endpoints and the login helper, on a manual clock (no sleeping): which
//! credentials end a session, when cookies are cleared, the expired-token window, login CSRF
//! and the cookie size limit.

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    body::Body,
    routing::{delete_service, get_service, post, post_service},
};
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_core::{AuthRejection, ManualClock};
use portcullis_jwt::{Algorithm, IssueOptions, SigningKey, TokenIssuer, Validation};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::*;

const START: u64 = 1_800_000_000;
const ISSUER: &str = "https://ads.test";
const ACCESS_TTL: u64 = 600;
const REFRESH_TTL: u64 = 3_600;

struct Harness {
    clock: ManualClock,
    key: SigningKey,
    sessions: HybridSessions,
    app: Router,
}

impl Harness {
    async fn new(cookies: CookieTransport) -> Self {
        let clock = ManualClock::at_unix_seconds(START);
        let key = SigningKey::generate(Algorithm::HS256).unwrap();
        let issuer = TokenIssuer::new(key.clone()).issuer(ISSUER);
        let sessions = HybridSessions::builder(
            issuer,
            Validation::new().issuer(ISSUER).leeway(Duration::ZERO),
        )
        .store(MemoryRefreshStore::new().with_clock(Arc::new(clock.clone())))
        .feed(InProcessFeed::new().with_clock(Arc::new(clock.clone())))
        .clock(Arc::new(clock.clone()))
        .access_ttl(Duration::from_secs(ACCESS_TTL))
        .access_jitter(Duration::ZERO)
        .refresh_ttl(Duration::from_secs(REFRESH_TTL))
        .absolute_ttl(Duration::from_secs(10 * REFRESH_TTL))
        .grace_window(Duration::ZERO)
        .leeway(Duration::ZERO)
        .build()
        .await
        .unwrap();
        let layer = HybridLayer::new(&sessions)
            .realm("test")
            .cookies(cookies)
            .unwrap();
        let endpoints = layer.endpoints();
        let login = endpoints.clone();
        let app = Router::new()
            .route("/refresh", post_service(endpoints.refresh()))
            .route("/logout", post_service(endpoints.logout()))
            .route("/logout-all", post_service(endpoints.logout_all()))
            .route("/sessions", get_service(endpoints.sessions()))
            .route("/sessions/{id}", delete_service(endpoints.revoke_session()))
            .route(
                "/login",
                post(move |request: Request<Body>| {
                    let endpoints = login.clone();
                    async move { sign_in(&endpoints, request).await }
                }),
            )
            .layer(layer);
        Self {
            clock,
            key,
            sessions,
            app,
        }
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    async fn login(&self) -> TokenPair {
        let user = json!({"user": "alice"});
        self.sessions.login("alice", &user, None).await.unwrap()
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    async fn alive(&self, pair: &TokenPair) -> bool {
        let sessions = self.sessions.list(pair.user_id()).await.unwrap();
        sessions.iter().any(|s| s.session_id == pair.session_id())
    }
}

/// The test app's login handler: `?bearer` picks the transport, `?big` a user too large for a
/// cookie (the password check is the application's and is skipped here).
async fn sign_in(
    endpoints: &HybridEndpoints,
    request: Request<Body>,
) -> Result<Response<Body>, AuthRejection> {
    let (parts, _) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    let transport = if query.contains("bearer") {
        LoginTransport::Bearer
    } else {
        LoginTransport::Cookies
    };
    let bio = if query.contains("big") {
        "x".repeat(4_000)
    } else {
        String::new()
    };
    let user = json!({"user": "alice", "bio": bio});
    let response = endpoints.login(&parts, transport, "alice", &user).await?;
    Ok(response.map(Body::new))
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

fn cookie(name: &str, value: &str) -> (&'static str, String) {
    ("cookie", format!("{name}={value}"))
}

fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn clears_both(response: &Response<Body>) -> bool {
    let set = set_cookies(response);
    set.len() == 2 && set.iter().all(|c| c.contains("Max-Age=0"))
}

async fn json_body(response: Response<Body>) -> Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

async fn logout_with_access_cookie(harness: &Harness, token: &str) -> Response<Body> {
    let (name, value) = cookie("__Host-access", token);
    harness
        .send(request("POST", "/logout", &[(name, &value)], ""))
        .await
}

#[test]
fn which_failures_end_the_session() {
    let ends = [
        (HybridError::SessionEnded, true),
        (HybridError::TokenReuse, true),
        (HybridError::UserGone, true),
        (HybridError::InvalidRefreshToken, false),
        (HybridError::Contention, false),
        (
            HybridError::Store(portcullis_core::StoreError::unavailable("down")),
            false,
        ),
    ];
    for (error, expected) in ends {
        assert_eq!(error.ends_session(), expected, "{error:?}");
    }
}

#[tokio::test]
async fn logout_with_an_expired_access_cookie_ends_the_session() {
    let harness = Harness::new(CookieTransport::new()).await;
    let pair = harness.login().await;
    harness.advance(ACCESS_TTL + 60);
    let response = logout_with_access_cookie(&harness, pair.access_token()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(clears_both(&response), "{:?}", set_cookies(&response));
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert!(!harness.alive(&pair).await);
    let refresh = harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await;
    assert!(
        matches!(refresh, Err(HybridError::SessionEnded)),
        "{refresh:?}"
    );

    // Once more: the session is over already; 401, and the cookies may go.
    let again = logout_with_access_cookie(&harness, pair.access_token()).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(clears_both(&again));
}

#[tokio::test]
async fn an_access_token_that_cannot_identify_a_session_ends_nothing_and_clears_nothing() {
    let harness = Harness::new(CookieTransport::new()).await;
    let first = harness.login().await;
    // Keep the session alive by refreshing, so only the token's age is at stake.
    harness.advance(REFRESH_TTL - 100);
    let second = harness
        .sessions
        .refresh(&first.refresh_token().expose())
        .await
        .unwrap();
    harness.advance(REFRESH_TTL - 100);
    let current = harness
        .sessions
        .refresh(&second.refresh_token().expose())
        .await
        .unwrap();
    // `first`'s access token expired longer ago than any session outlives its last token.
    let stranger = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap()).issuer(ISSUER);
    let forged = stranger
        .issue_with(
            "alice",
            &json!({"sid": current.session_id(), "user": {"user": "alice"}}),
            &IssueOptions::new().typ("at+jwt"),
        )
        .unwrap()
        .token;
    let untyped = TokenIssuer::new(harness.key.clone())
        .issuer(ISSUER)
        .issue_with(
            "alice",
            &json!({"sid": current.session_id(), "user": {}}),
            &IssueOptions::new(),
        )
        .unwrap()
        .token;
    for token in [first.access_token(), &forged, &untyped, "garbage", "a.b.c"] {
        let response = logout_with_access_cookie(&harness, token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:.20}");
        assert!(
            set_cookies(&response).is_empty(),
            "{token:.20}: cookies cleared"
        );
    }
    assert!(harness.alive(&current).await);
    // Inside the window the same kind of token does end it.
    let response = logout_with_access_cookie(&harness, second.access_token()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(!harness.alive(&current).await);
}

#[tokio::test]
async fn cross_site_logout_and_login_are_refused() {
    let harness = Harness::new(CookieTransport::new()).await;
    let pair = harness.login().await;
    harness.advance(ACCESS_TTL + 1);
    let (name, value) = cookie("__Host-access", pair.access_token());
    for site in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.test"),
    ] {
        let response = harness
            .send(request("POST", "/logout", &[(name, &value), site], ""))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{site:?}");
        assert!(set_cookies(&response).is_empty());
        for path in ["/login", "/login?bearer"] {
            let response = harness.send(request("POST", path, &[site], "")).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} {site:?}");
            assert!(set_cookies(&response).is_empty());
        }
    }
    assert!(harness.alive(&pair).await);
    assert_eq!(harness.sessions.list("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn refresh_in_both_transports_clears_cookies_only_when_the_session_is_over() {
    let harness = Harness::new(CookieTransport::new()).await;
    let pair = harness.login().await;
    let refresh = pair.refresh_token().expose();

    let body = json!({ "refresh_token": &*refresh }).to_string();
    let response = harness
        .send(request(
            "POST",
            "/refresh",
            &[("content-type", "application/json")],
            &body,
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        set_cookies(&response).is_empty(),
        "bearer transport sets no cookie"
    );
    let tokens = json_body(response).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let next = tokens["refresh_token"].as_str().unwrap().to_owned();

    let (name, value) = cookie("__Secure-refresh", &next);
    let response = harness
        .send(request("POST", "/refresh", &[(name, &value)], ""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(set_cookies(&response).len(), 2);
    assert_eq!(json_body(response).await, json!({"user": "alice"}));

    // Garbage ends nothing: 401, cookies kept. A dead session's cookie: 401, cookies cleared.
    let (name, value) = cookie("__Secure-refresh", "not-a-token");
    let response = harness
        .send(request("POST", "/refresh", &[(name, &value)], ""))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&response).is_empty());
    let www = response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(www.contains(r#"error="invalid_token""#), "{www}");
    harness.sessions.revoke(pair.session_id()).await.unwrap();
    let (name, value) = cookie("__Secure-refresh", &next);
    let response = harness
        .send(request("POST", "/refresh", &[(name, &value)], ""))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(clears_both(&response));
}

#[tokio::test]
async fn malformed_bodies_are_400_and_revoke_nothing() {
    let harness = Harness::new(CookieTransport::new()).await;
    let pair = harness.login().await;
    let refresh = pair.refresh_token().expose();
    let duplicate = format!(r#"{{"refresh_token": "{refresh}", "refresh_token": "{refresh}"}}"#);
    let huge = format!(r#"{{"refresh_token": "{}"}}"#, "a".repeat(20_000));
    let json_type = ("content-type", "application/json");
    let cases: [(&str, (&str, &str)); 6] = [
        (&duplicate, json_type),
        ("[1]", json_type),
        ("{not json", json_type),
        (r#"{"refresh_token": 7}"#, json_type),
        (&huge, json_type),
        (r#"{"refresh_token": "x"}"#, ("content-type", "text/plain")),
    ];
    for path in ["/refresh", "/logout"] {
        for (body, content_type) in &cases {
            let response = harness
                .send(request("POST", path, &[*content_type], body))
                .await;
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{path} {body:.40}"
            );
            assert_eq!(json_body(response).await["error"], "invalid_request");
        }
    }
    assert!(harness.alive(&pair).await);
}

#[tokio::test]
async fn logout_all_listing_and_revoke_by_handle() {
    let harness = Harness::new(CookieTransport::new()).await;
    let laptop = harness.login().await;
    let phone = harness.login().await;
    let auth = format!("Bearer {}", laptop.access_token());
    let listed = harness
        .send(request("GET", "/sessions", &[("authorization", &auth)], ""))
        .await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(json_body(listed).await.as_array().unwrap().len(), 2);

    let foreign = harness
        .sessions
        .login("bob", &json!({"user": "bob"}), None)
        .await
        .unwrap();
    for (target, status) in [
        (foreign.session_id(), StatusCode::NOT_FOUND),
        ("not-a-session", StatusCode::NOT_FOUND),
        (phone.session_id(), StatusCode::NO_CONTENT),
    ] {
        let path = format!("/sessions/{target}");
        let response = harness
            .send(request("DELETE", &path, &[("authorization", &auth)], ""))
            .await;
        assert_eq!(response.status(), status, "{target}");
    }
    assert!(!harness.alive(&phone).await);
    assert!(harness.alive(&foreign).await);

    let all = harness
        .send(request(
            "POST",
            "/logout-all",
            &[("authorization", &auth)],
            "",
        ))
        .await;
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(json_body(all).await, json!({"sessions_ended": 1}));
    assert!(!harness.alive(&laptop).await);
    let anonymous = harness.send(request("POST", "/logout-all", &[], "")).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_user_too_large_for_a_cookie_is_a_clear_400_and_leaves_no_session() {
    let harness = Harness::new(CookieTransport::new()).await;
    let response = harness.send(request("POST", "/login?big", &[], "")).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookies(&response).is_empty());
    let body = json_body(response).await;
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("4096") && description.contains("bearer"),
        "{description}"
    );
    assert!(harness.sessions.list("alice").await.unwrap().is_empty());

    // The same user fits the bearer transport, and a normal user the cookies.
    let bearer = harness
        .send(request("POST", "/login?big&bearer", &[], ""))
        .await;
    assert_eq!(bearer.status(), StatusCode::OK);
    let cookies = harness.send(request("POST", "/login", &[], "")).await;
    assert_eq!(cookies.status(), StatusCode::OK);
    assert_eq!(set_cookies(&cookies).len(), 2);
    assert_eq!(cookies.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn a_login_ends_the_session_the_browser_had() {
    let harness = Harness::new(CookieTransport::new()).await;
    let old = harness.login().await;
    let (name, value) = cookie("__Host-access", old.access_token());
    let response = harness
        .send(request("POST", "/login", &[(name, &value)], ""))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!harness.alive(&old).await);
    assert_eq!(harness.sessions.list("alice").await.unwrap().len(), 1);
}

#[tokio::test]
async fn transparent_logout_uses_the_refresh_cookie() {
    let harness = Harness::new(CookieTransport::transparent()).await;
    let pair = harness.login().await;
    harness.advance(ACCESS_TTL + 1);
    let cookies = format!(
        "__Host-access={}; __Host-refresh={}",
        pair.access_token(),
        pair.refresh_token().expose()
    );
    let response = harness
        .send(request("POST", "/logout", &[("cookie", &cookies)], ""))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(clears_both(&response));
    assert!(!harness.alive(&pair).await);
}
