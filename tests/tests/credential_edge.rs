//! One credential edge: the same hostile request gets the same answer from the session, bearer
//! and hybrid layers, because all three parse cookies and `Authorization` with
//! `portcullis_core::credentials` (issue 12; issue 18 items 3 and 11).

use std::time::Duration;

use axum::{Router, body::Body, routing::get};
use http::{HeaderValue, Request, StatusCode, header};
use portcullis_core::CurrentUser;
use portcullis_hybrid::{
    CookieTransport, HybridLayer, HybridSessions, InProcessFeed, MemoryRefreshStore,
};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, TokenSources, TokenVerifier, Validation};
use portcullis_session::{MemoryStore, Session, SessionConfig, SessionLayer};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Clone, Serialize, Deserialize)]
struct User {
    user: String,
    role: String,
}

fn alice() -> User {
    User {
        user: "alice".into(),
        role: "advertiser".into(),
    }
}

async fn me(CurrentUser(user): CurrentUser<User>) -> String {
    user.user
}

/// The same handlers behind every layer.
fn routes() -> Router {
    Router::new()
        .route("/me", get(me))
        .route(
            "/cached",
            get(|CurrentUser(user): CurrentUser<User>| async move {
                ([(header::CACHE_CONTROL, "private, max-age=5")], user.user)
            }),
        )
        .route("/public", get(|| async { "hello" }))
}

/// A layer under test: its router, the name of its auth cookie and a valid credential.
struct Edge {
    name: &'static str,
    router: Router,
    cookie: &'static str,
    secret: String,
    bearer: bool,
}

async fn session_edge() -> Edge {
    let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap();
    let router = routes()
        .route(
            "/login",
            get(|session: Session| async move {
                session.login("alice", &alice()).await.unwrap();
                "ok"
            }),
        )
        .layer(layer);
    let response = router
        .clone()
        .oneshot(Request::get("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let secret = set_cookie
        .strip_prefix("__Host-session=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    Edge {
        name: "session",
        router,
        cookie: "__Host-session",
        secret,
        bearer: false,
    }
}

fn bearer_edge() -> Edge {
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new());
    let secret = issuer.issue("alice", &alice()).unwrap().token;
    let layer = portcullis_jwt::BearerLayer::new(verifier)
        .sources(TokenSources::authorization_header().cookie("__Host-access"));
    Edge {
        name: "bearer",
        router: routes().layer(layer),
        cookie: "__Host-access",
        secret,
        bearer: true,
    }
}

async fn hybrid_edge() -> Edge {
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let sessions = HybridSessions::builder(issuer, Validation::new())
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new())
        .access_ttl(Duration::from_secs(300))
        .build()
        .await
        .unwrap();
    let pair = sessions.login("alice", &alice(), None).await.unwrap();
    let layer = HybridLayer::new(&sessions)
        .cookies(CookieTransport::new())
        .unwrap();
    Edge {
        name: "hybrid",
        router: routes().layer(layer),
        cookie: "__Host-access",
        secret: pair.access_token().to_owned(),
        bearer: true,
    }
}

async fn edges() -> Vec<Edge> {
    vec![session_edge().await, bearer_edge(), hybrid_edge().await]
}

/// Sends `GET /me` with raw header values; returns the status and the Set-Cookie headers.
async fn send(router: &Router, headers: &[(header::HeaderName, Vec<u8>)]) -> (StatusCode, usize) {
    let mut request = Request::get("/me").body(Body::empty()).unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .append(name.clone(), HeaderValue::from_bytes(value).unwrap());
    }
    let response = router.clone().oneshot(request).await.unwrap();
    let set_cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .count();
    (response.status(), set_cookies)
}

#[tokio::test]
async fn every_layer_answers_a_hostile_cookie_header_the_same_way() {
    use StatusCode as S;
    for edge in edges().await {
        let valid = format!("{}={}", edge.cookie, edge.secret);
        let tossed = format!("{}=planted-by-a-sibling-domain", edge.cookie);
        // (what, Cookie headers, expected status, Set-Cookie allowed)
        let rows: Vec<(&str, Vec<String>, StatusCode, bool)> = vec![
            ("no cookie", vec![], S::UNAUTHORIZED, false),
            ("the cookie", vec![valid.clone()], S::OK, false),
            (
                "the same cookie twice",
                vec![format!("{valid}; {valid}")],
                S::OK,
                false,
            ),
            (
                "the same cookie in two headers",
                vec![valid.clone(), valid.clone()],
                S::OK,
                false,
            ),
            (
                "a tossed second value",
                vec![format!("{tossed}; {valid}")],
                S::UNAUTHORIZED,
                false,
            ),
            (
                "a tossed second value in another header",
                vec![valid.clone(), tossed.clone()],
                S::UNAUTHORIZED,
                false,
            ),
            (
                "a tossed non-ASCII value",
                vec![format!("{}=caf\u{e9}; {valid}", edge.cookie)],
                S::OK,
                false,
            ),
            (
                "a tossed empty value",
                vec![format!("{}=; {valid}", edge.cookie)],
                S::OK,
                false,
            ),
            (
                "another site's cookie of another name",
                vec![format!("theme=dark; {valid}")],
                S::OK,
                false,
            ),
            (
                "the name in another case",
                vec![format!(
                    "{}={}",
                    edge.cookie.to_ascii_lowercase(),
                    edge.secret
                )],
                S::UNAUTHORIZED,
                false,
            ),
        ];
        for (what, cookies, expected, may_set_cookie) in rows {
            let headers: Vec<_> = cookies
                .iter()
                .map(|c| (header::COOKIE, c.as_bytes().to_vec()))
                .collect();
            let (status, set_cookies) = send(&edge.router, &headers).await;
            assert_eq!(status, expected, "{}: {what}", edge.name);
            if !may_set_cookie {
                assert_eq!(set_cookies, 0, "{}: {what} must clear nothing", edge.name);
            }
        }
    }
}

#[tokio::test]
async fn every_bearer_layer_answers_a_hostile_authorization_header_the_same_way() {
    use StatusCode as S;
    for edge in edges().await.into_iter().filter(|edge| edge.bearer) {
        let valid = format!("Bearer {}", edge.secret);
        let rows: Vec<(&str, Vec<Vec<u8>>, StatusCode)> = vec![
            ("missing", vec![], S::UNAUTHORIZED),
            ("valid", vec![valid.clone().into_bytes()], S::OK),
            (
                "lower-case scheme",
                vec![format!("bearer {}", edge.secret).into_bytes()],
                S::OK,
            ),
            (
                "another scheme",
                vec![b"Basic YTpi".to_vec()],
                S::UNAUTHORIZED,
            ),
            ("empty", vec![b"".to_vec()], S::BAD_REQUEST),
            ("Bearer alone", vec![b"Bearer".to_vec()], S::BAD_REQUEST),
            (
                "Bearer and a space",
                vec![b"Bearer ".to_vec()],
                S::BAD_REQUEST,
            ),
            ("extra parts", vec![b"Bearer a b".to_vec()], S::BAD_REQUEST),
            (
                "two headers",
                vec![valid.clone().into_bytes(), valid.clone().into_bytes()],
                S::BAD_REQUEST,
            ),
            (
                "non-visible characters",
                vec![b"Bearer caf\xc3\xa9".to_vec()],
                S::BAD_REQUEST,
            ),
            (
                "oversized",
                vec![format!("Bearer {}", "a".repeat(9000)).into_bytes()],
                S::BAD_REQUEST,
            ),
            (
                "a forged token",
                vec![b"Bearer a.b.c".to_vec()],
                S::UNAUTHORIZED,
            ),
        ];
        for (what, values, expected) in rows {
            let headers: Vec<_> = values
                .into_iter()
                .map(|v| (header::AUTHORIZATION, v))
                .collect();
            let (status, _) = send(&edge.router, &headers).await;
            assert_eq!(status, expected, "{}: {what}", edge.name);
        }
    }
}

/// Issue 18 item 10: an authenticated answer must never sit in a shared cache, whatever the
/// handler forgot; a handler's own `Cache-Control` is kept, and anonymous answers are left
/// alone.
#[tokio::test]
async fn every_layer_marks_authenticated_responses_no_store() {
    for edge in edges().await {
        let router = edge.router.clone();
        let credential = if edge.bearer {
            (
                header::AUTHORIZATION,
                format!("Bearer {}", edge.secret).into_bytes(),
            )
        } else {
            (
                header::COOKIE,
                format!("{}={}", edge.cookie, edge.secret).into_bytes(),
            )
        };
        let cache_control = |path: &'static str, with_credential: bool| {
            let router = router.clone();
            let credential = credential.clone();
            async move {
                let mut request = Request::get(path).body(Body::empty()).unwrap();
                if with_credential {
                    request.headers_mut().insert(
                        credential.0,
                        HeaderValue::from_bytes(&credential.1).unwrap(),
                    );
                }
                let response = router.oneshot(request).await.unwrap();
                assert!(response.status().is_success(), "{}: {path}", edge.name);
                response
                    .headers()
                    .get(header::CACHE_CONTROL)
                    .map(|v| v.to_str().unwrap().to_owned())
            }
        };
        assert_eq!(
            cache_control("/me", true).await.as_deref(),
            Some("no-store"),
            "{}",
            edge.name
        );
        assert_eq!(
            cache_control("/cached", true).await.as_deref(),
            Some("private, max-age=5"),
            "{}",
            edge.name
        );
        assert_eq!(cache_control("/public", false).await, None, "{}", edge.name);
    }
}

/// A login posted to a session app that trusts a separate front-end: `Credentials` judges the
/// origin by the layer's check (left in the extensions), not only by its same-site default.
#[tokio::test]
async fn credentials_follow_the_session_layers_trusted_origins() {
    use portcullis_core::{Credentials, CrossSiteCheck};

    async fn login(session: Session, credentials: Credentials) -> StatusCode {
        match session.login(&credentials.username, &alice()).await {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
    let check = CrossSiteCheck::new()
        .trust_origin("https://front.example")
        .unwrap();
    let layer = SessionLayer::new(
        MemoryStore::new(),
        SessionConfig::default().cross_site_check(check),
    )
    .unwrap();
    let app: Router = Router::new()
        .route("/login", axum::routing::post(login))
        .layer(layer);
    for (origin, expected) in [
        ("https://front.example", StatusCode::OK),
        ("https://app.example", StatusCode::OK),
        ("https://evil.example", StatusCode::FORBIDDEN),
    ] {
        let request = Request::post("/login")
            .header(header::HOST, "app.example")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"username":"alice","password":"pw"}"#))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), expected, "{origin}");
    }
}
