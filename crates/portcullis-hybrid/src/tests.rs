//! Unit tests of the sessions and the edge layer together, on a manual clock (no sleeping).

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, routing::get};
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_core::{Clock, CurrentUser, ManualClock, StoreError};
use portcullis_jwt::{Algorithm, IssueOptions, SigningKey, TokenIssuer, Validation};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

use crate::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A memory store that counts every call, to prove the edge path makes none.
#[derive(Clone, Default)]
struct CountingStore {
    inner: MemoryRefreshStore,
    calls: Arc<AtomicUsize>,
}

impl CountingStore {
    fn count(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    fn tick(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl RefreshStore for CountingStore {
    async fn create(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        self.tick();
        self.inner.create(record, limit).await
    }
    async fn load(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.tick();
        self.inner.load(session_id).await
    }
    async fn compare_and_swap(
        &self,
        record: &RefreshRecord,
        expected_generation: u64,
    ) -> Result<bool, StoreError> {
        self.tick();
        self.inner
            .compare_and_swap(record, expected_generation)
            .await
    }
    async fn delete(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.tick();
        self.inner.delete(session_id).await
    }
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        self.tick();
        self.inner.list_by_user(user_id).await
    }
    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<RefreshRecord>, StoreError> {
        self.tick();
        self.inner.delete_by_user(user_id, keep).await
    }
}

const START: u64 = 1_800_000_000;
const ISSUER: &str = "https://ads.test";

struct Harness {
    clock: ManualClock,
    store: CountingStore,
    feed: InProcessFeed,
    key: SigningKey,
    sessions: HybridSessions,
}

impl Harness {
    async fn new() -> Self {
        Self::with(|builder| builder).await
    }

    async fn with(configure: impl FnOnce(HybridSessionsBuilder) -> HybridSessionsBuilder) -> Self {
        let clock = ManualClock::at_unix_seconds(START);
        let memory = MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()));
        let store = CountingStore {
            inner: memory,
            calls: Arc::default(),
        };
        let feed = InProcessFeed::new().with_clock(Arc::new(clock.clone()));
        let key = SigningKey::generate(Algorithm::HS256).unwrap();
        let sessions = Self::node(&clock, &store, &feed, &key, configure).await;
        Self {
            clock,
            store,
            feed,
            key,
            sessions,
        }
    }

    /// Another node sharing the store, the feed and the key.
    async fn node(
        clock: &ManualClock,
        store: &CountingStore,
        feed: &InProcessFeed,
        key: &SigningKey,
        configure: impl FnOnce(HybridSessionsBuilder) -> HybridSessionsBuilder,
    ) -> HybridSessions {
        let issuer = TokenIssuer::new(key.clone()).issuer(ISSUER);
        let builder = HybridSessions::builder(
            issuer,
            Validation::new().issuer(ISSUER).leeway(Duration::ZERO),
        )
        .store(store.clone())
        .feed(feed.clone())
        .clock(Arc::new(clock.clone()))
        .access_ttl(Duration::from_secs(600))
        .refresh_ttl(Duration::from_secs(3_600))
        .absolute_ttl(Duration::from_secs(4 * 3_600))
        .grace_window(Duration::from_secs(5))
        .leeway(Duration::ZERO);
        configure(builder).build().await.unwrap()
    }

    async fn second_node(&self) -> HybridSessions {
        Self::node(&self.clock, &self.store, &self.feed, &self.key, |b| b).await
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    async fn login(&self) -> TokenPair {
        self.sessions
            .login("alice", &alice(), Some("test"))
            .await
            .unwrap()
    }
}

fn router(layer: HybridLayer) -> Router {
    Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user })
                .post(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .route("/public", get(|| async { "public" }))
        .layer(layer)
}

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

fn bearer(path: &str, token: &str) -> Request<Body> {
    Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

async fn body_text(response: Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn challenge(response: &Response<Body>) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn login_then_the_edge_accepts_the_access_token_without_any_store_call() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    assert!(
        pair.expires_in() <= 600 && pair.expires_in() >= 540,
        "{}",
        pair.expires_in()
    );
    let app = router(HybridLayer::new(&harness.sessions));
    let before = harness.store.count();
    for _ in 0..50 {
        let response = send(&app, bearer("/me", pair.access_token())).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_text(response).await, "alice");
    }
    assert_eq!(
        harness.store.count(),
        before,
        "the edge path must not touch the store"
    );

    // No token: anonymous, with the bearer challenge and no error code (RFC 6750 §3.1).
    let response = send(&app, Request::get("/me").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&response), r#"Bearer realm="portcullis""#);
    let response = send(&app, Request::get("/public").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn access_tokens_expire_by_the_clock() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    let app = router(HybridLayer::new(&harness.sessions));
    harness.advance(pair.expires_in());
    let response = send(&app, bearer("/me", pair.access_token())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains(r#"error="invalid_token""#));
    // Refreshing brings the caller back.
    let refreshed = harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap();
    let response = send(&app, bearer("/me", refreshed.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn only_at_jwt_tokens_with_a_session_pass_the_edge() {
    let harness = Harness::new().await;
    let app = router(HybridLayer::new(&harness.sessions));
    let issuer = TokenIssuer::new(harness.key.clone())
        .issuer(ISSUER)
        .with_clock(Arc::new(harness.clock.clone()));
    let claims = serde_json::json!({"sid": "AAAAAAAAAAAAAAAA", "user": alice()});
    let plain = issuer.issue("alice", &claims).unwrap();
    let typed_without_sid = issuer
        .issue_with(
            "alice",
            &serde_json::json!({"user": alice()}),
            &IssueOptions::new().typ("at+jwt"),
        )
        .unwrap();
    // Signed by a key the set does not know: takes the slow (key-fetching) path, then 401.
    let stranger = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap())
        .issuer(ISSUER)
        .with_clock(Arc::new(harness.clock.clone()))
        .issue_with("alice", &claims, &IssueOptions::new().typ("at+jwt"))
        .unwrap();
    for token in [
        stranger.token.as_str(),
        plain.token.as_str(),
        &typed_without_sid.token,
        "garbage",
        "a.b.c",
    ] {
        let response = send(&app, bearer("/public", token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token:.20}");
        assert!(challenge(&response).contains(r#"error="invalid_token""#));
    }
}

#[tokio::test]
async fn rotation_grace_and_theft_detection() {
    let harness = Harness::new().await;
    let app = router(HybridLayer::new(&harness.sessions));
    let first = harness.login().await;
    let t0 = first.refresh_token().expose();

    harness.advance(60);
    let second = harness.sessions.refresh(&t0).await.unwrap();
    let t1 = second.refresh_token().expose();
    assert_ne!(t0, t1, "every refresh rotates the refresh token");
    assert_eq!(second.session_id(), first.session_id());

    // A racing tab presenting t0 inside the window gets the same current token, not a new one.
    harness.advance(3);
    let racer = harness.sessions.refresh(&t0).await.unwrap();
    assert_eq!(racer.refresh_token().expose(), t1);

    // After the window, t0 is a replay: the session is revoked, every token of it refused.
    harness.advance(10);
    let error = harness.sessions.refresh(&t0).await.unwrap_err();
    assert!(matches!(error, HybridError::TokenReuse), "{error:?}");
    assert!(matches!(
        harness.sessions.refresh(&t1).await.unwrap_err(),
        HybridError::SessionEnded
    ));
    for access in [
        first.access_token(),
        second.access_token(),
        racer.access_token(),
    ] {
        let response = send(&app, bearer("/me", access)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&response).contains(r#"error="invalid_token""#));
    }
    let rejection = portcullis_core::AuthRejection::from(error);
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_unknown_and_oversized_tokens_revoke_nothing() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    let sid = pair.session_id().to_owned();
    let forged = format!(
        "{sid}.{}",
        portcullis_core::SecretToken::generate().expose()
    );
    let oversized = format!("{sid}.{}", "A".repeat(5_000));
    for presented in [
        forged.as_str(),
        &oversized,
        "",
        "no-dot",
        &sid,
        "AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let error = harness.sessions.refresh(presented).await.unwrap_err();
        assert!(
            matches!(
                error,
                HybridError::InvalidRefreshToken | HybridError::SessionEnded
            ),
            "{error:?}"
        );
        assert!(
            harness
                .sessions
                .logout_with_refresh_token(presented)
                .await
                .is_err()
        );
    }
    assert!(harness.sessions.revocations().is_empty());
    let app = router(HybridLayer::new(&harness.sessions));
    assert_eq!(
        send(&app, bearer("/me", pair.access_token()))
            .await
            .status(),
        StatusCode::OK
    );
    harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .expect("the owner can still refresh");
}

#[tokio::test]
async fn idle_and_absolute_expiry() {
    let harness = Harness::new().await;
    // Idle: no refresh within an hour.
    let idle = harness.login().await;
    harness.advance(3_600);
    assert!(matches!(
        harness
            .sessions
            .refresh(&idle.refresh_token().expose())
            .await
            .unwrap_err(),
        HybridError::SessionEnded
    ));

    // Absolute: refreshing every 50 minutes keeps it alive for 4 hours, no longer.
    let mut pair = harness.login().await;
    let born = START + 3_600;
    loop {
        harness.advance(50 * 60);
        match harness
            .sessions
            .refresh(&pair.refresh_token().expose())
            .await
        {
            Ok(next) => {
                assert!(next.refresh_expires_at() <= born + 4 * 3_600);
                pair = next;
            }
            Err(error) => {
                assert!(matches!(error, HybridError::SessionEnded), "{error:?}");
                let now = harness.clock.unix_seconds();
                assert!(now >= born + 4 * 3_600, "ended early at {}", now - born);
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_refreshes_inside_the_window_all_succeed_with_one_session_left() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    let presented = pair.refresh_token().expose();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let sessions = harness.sessions.clone();
            let presented = presented.clone();
            tokio::spawn(async move { sessions.refresh(&presented).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for task in tasks {
        let pair = task.await.unwrap().expect("every racer succeeds");
        tokens.push(pair.refresh_token().expose());
    }
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        1,
        "every racer converges on one refresh token"
    );
    assert_eq!(harness.store.inner.len(), 1);
    assert!(harness.sessions.revocations().is_empty());
    let listed = harness.sessions.list("alice").await.unwrap();
    assert_eq!(listed.len(), 1);
    // Long after the window, the converged token still works: no false theft alarm.
    harness.advance(120);
    harness.sessions.refresh(&tokens[0]).await.unwrap();
}

#[tokio::test]
async fn logout_and_logout_all_are_honoured_at_once_on_every_node() {
    let harness = Harness::new().await;
    let other = harness.second_node().await;
    let app = router(HybridLayer::new(&harness.sessions));
    let other_app = router(HybridLayer::new(&other));
    let laptop = harness.login().await;
    let phone = harness.login().await;
    let tablet = harness.login().await;

    // Logout on this node: refused here and on the other node, though unexpired.
    assert!(harness.sessions.revoke(laptop.session_id()).await.unwrap());
    for node in [&app, &other_app] {
        assert_eq!(
            send(node, bearer("/me", laptop.access_token()))
                .await
                .status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            send(node, bearer("/me", phone.access_token()))
                .await
                .status(),
            StatusCode::OK
        );
    }

    // Logout-all on the other node ends the rest everywhere.
    assert_eq!(other.revoke_all("alice").await.unwrap(), 2);
    for node in [&app, &other_app] {
        for pair in [&phone, &tablet] {
            assert_eq!(
                send(node, bearer("/me", pair.access_token()))
                    .await
                    .status(),
                StatusCode::UNAUTHORIZED
            );
        }
    }
    assert!(harness.sessions.list("alice").await.unwrap().is_empty());

    // Revocations are kept until the access tokens could have expired, then forgotten.
    assert!(
        harness
            .sessions
            .revocations()
            .is_revoked(laptop.session_id(), START + 601)
    );
    harness.advance(602);
    harness.sessions.revocations().purge_expired(START + 602);
    assert!(harness.sessions.revocations().is_empty());
}

#[tokio::test]
async fn logout_with_a_refresh_token_needs_the_secret() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    harness
        .sessions
        .logout_with_refresh_token(&pair.refresh_token().expose())
        .await
        .unwrap();
    assert!(harness.sessions.list("alice").await.unwrap().is_empty());
    assert!(
        harness
            .sessions
            .revocations()
            .is_revoked(pair.session_id(), START)
    );
}

#[tokio::test]
async fn the_reload_hook_demotes_and_removes_users_at_refresh() {
    let role = Arc::new(std::sync::Mutex::new(Some("admin".to_owned())));
    let hook_role = role.clone();
    let harness = Harness::with(move |builder| {
        builder.reload_user(move |user_id: String, _stored: serde_json::Value| {
            let role = hook_role.lock().unwrap().clone();
            async move {
                Ok::<_, StoreError>(
                    role.map(|role| serde_json::json!({"user": user_id, "role": role})),
                )
            }
        })
    })
    .await;
    let pair = harness.login().await;
    let refreshed = harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap();
    assert_eq!(refreshed.identity().user::<User>().unwrap().role, "admin");

    *role.lock().unwrap() = None;
    let error = harness
        .sessions
        .refresh(&refreshed.refresh_token().expose())
        .await
        .unwrap_err();
    assert!(matches!(error, HybridError::UserGone), "{error:?}");
    let app = router(HybridLayer::new(&harness.sessions));
    assert_eq!(
        send(&app, bearer("/me", refreshed.access_token()))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_user_update_refuses_older_access_tokens_everywhere_and_refresh_carries_it() {
    let harness = Harness::new().await;
    let other = harness.second_node().await;
    let pair = harness.login().await;
    let second = harness.login().await;
    let app = router(HybridLayer::new(&harness.sessions));
    let other_app = router(HybridLayer::new(&other));
    assert_eq!(
        send(&app, bearer("/me", pair.access_token()))
            .await
            .status(),
        StatusCode::OK
    );

    let admin = User {
        user: "alice".into(),
        role: "admin".into(),
    };
    // The manual clock stands still; a real one has moved on since the logins.
    harness.advance(1);
    assert_eq!(
        harness.sessions.update_user("alice", &admin).await.unwrap(),
        2
    );
    for app in [&app, &other_app] {
        for token in [pair.access_token(), second.access_token()] {
            let response = send(app, bearer("/me", token)).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
            assert!(challenge(&response).contains(r#"error="invalid_token""#));
        }
    }
    // Another user's tokens are untouched.
    let bob = harness
        .sessions
        .login(
            "bob",
            &User {
                user: "bob".into(),
                role: "advertiser".into(),
            },
            None,
        )
        .await
        .unwrap();
    harness.advance(1);
    assert_eq!(
        send(&app, bearer("/me", bob.access_token())).await.status(),
        StatusCode::OK
    );

    // A refresh (on either node) mints a token carrying the updated user, accepted everywhere.
    let refreshed = other.refresh(&pair.refresh_token().expose()).await.unwrap();
    assert_eq!(refreshed.identity().user::<User>().unwrap(), admin);
    for app in [&app, &other_app] {
        assert_eq!(
            send(app, bearer("/me", refreshed.access_token()))
                .await
                .status(),
            StatusCode::OK
        );
    }
    let listed = harness.sessions.list("alice").await.unwrap();
    assert_eq!(listed.len(), 2);
}

fn set_cookies(response: &Response<Body>) -> Vec<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    set_cookies.iter().find_map(|c| {
        c.strip_prefix(&format!("{name}="))
            .map(|rest| rest.split(';').next().unwrap_or("").to_owned())
    })
}

fn with_cookies(method: &str, path: &str, cookies: &[(&str, &str)]) -> Request<Body> {
    let cookie = cookies
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ");
    Request::builder()
        .method(method)
        .uri(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_refresh_serves_expired_cookies_and_parallel_requests_agree() {
    let harness = Harness::new().await;
    let layer = HybridLayer::new(&harness.sessions)
        .cookies(CookieTransport::transparent())
        .unwrap();
    let app = router(layer);
    let pair = harness.login().await;
    let refresh = pair.refresh_token().expose();

    // A valid access cookie: served, no refresh, no store call, no new cookie.
    let before = harness.store.count();
    let response = send(
        &app,
        with_cookies(
            "GET",
            "/me",
            &[
                ("__Host-access", pair.access_token()),
                ("__Host-refresh", &refresh),
            ],
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(set_cookies(&response).is_empty());
    assert_eq!(harness.store.count(), before);

    // The access cookie expired (the browser dropped it): eight parallel requests.
    harness.advance(pair.expires_in() + 1);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let app = app.clone();
            let refresh = refresh.clone();
            tokio::spawn(async move {
                send(
                    &app,
                    with_cookies("GET", "/me", &[("__Host-refresh", &refresh)]),
                )
                .await
            })
        })
        .collect();
    let mut refresh_cookies = Vec::new();
    let mut access_cookie = None;
    for task in tasks {
        let response = task.await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set = set_cookies(&response);
        assert!(
            set.iter()
                .any(|c| c.starts_with("__Host-access=") && c.contains("Path=/;"))
        );
        assert!(
            set.iter().all(|c| c.contains("HttpOnly")
                && c.contains("Secure")
                && c.contains("SameSite=Lax"))
        );
        refresh_cookies.push(cookie_value(&set, "__Host-refresh").unwrap());
        access_cookie = cookie_value(&set, "__Host-access");
        assert_eq!(body_text(response).await, "alice");
    }
    refresh_cookies.dedup();
    assert_eq!(
        refresh_cookies.len(),
        1,
        "parallel refreshes hand out one token"
    );
    assert_eq!(harness.store.inner.len(), 1);

    // Long after the grace window, whatever cookie the browser kept still works.
    harness.advance(60);
    let response = send(
        &app,
        with_cookies(
            "GET",
            "/me",
            &[
                ("__Host-access", &access_cookie.unwrap()),
                ("__Host-refresh", &refresh_cookies[0]),
            ],
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(harness.sessions.revocations().is_empty());

    // A route that does not ask for the user does not refresh.
    harness.advance(3_000);
    let before = harness.store.count();
    let response = send(
        &app,
        with_cookies("GET", "/public", &[("__Host-refresh", &refresh_cookies[0])]),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(harness.store.count(), before);
}

#[tokio::test]
async fn transparent_refresh_with_a_dead_session_clears_the_cookies() {
    let harness = Harness::new().await;
    let app = router(
        HybridLayer::new(&harness.sessions)
            .cookies(CookieTransport::transparent())
            .unwrap(),
    );
    let pair = harness.login().await;
    harness.sessions.revoke(pair.session_id()).await.unwrap();
    let response = send(
        &app,
        with_cookies(
            "GET",
            "/me",
            &[
                ("__Host-access", pair.access_token()),
                ("__Host-refresh", &pair.refresh_token().expose()),
            ],
        ),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains(r#"error="invalid_token""#));
    let set = set_cookies(&response);
    assert!(
        set.iter().all(|c| c.contains("Max-Age=0")) && set.len() == 2,
        "{set:?}"
    );
}

#[tokio::test]
async fn cookie_transport_edge_cases() {
    let harness = Harness::new().await;
    let app = router(
        HybridLayer::new(&harness.sessions)
            .cookies(CookieTransport::new())
            .unwrap(),
    );
    let pair = harness.login().await;
    let access = [("__Host-access", pair.access_token())];

    // Cookie-authenticated unsafe request from another site: 403.
    let mut request = with_cookies("POST", "/me", &access);
    request
        .headers_mut()
        .insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&app, request).await.status(), StatusCode::FORBIDDEN);
    let mut request = with_cookies("POST", "/me", &access);
    request
        .headers_mut()
        .insert("sec-fetch-site", "same-origin".parse().unwrap());
    assert_eq!(send(&app, request).await.status(), StatusCode::OK);

    // A stale access cookie breaks nothing public, and is 401 invalid_token where the user
    // is asked for (the page then calls POST /refresh).
    harness.advance(pair.expires_in());
    let response = send(&app, with_cookies("GET", "/public", &access)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = send(&app, with_cookies("GET", "/me", &access)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&response).contains(r#"error="invalid_token""#));

    // Two Authorization headers are a malformed request.
    let mut request = bearer("/public", pair.access_token());
    request
        .headers_mut()
        .append(header::AUTHORIZATION, "Bearer x".parse().unwrap());
    assert_eq!(send(&app, request).await.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn configuration_is_validated_when_built() {
    let build = |configure: fn(HybridSessionsBuilder) -> HybridSessionsBuilder| async move {
        let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
        let builder = HybridSessions::builder(issuer, Validation::new())
            .store(MemoryRefreshStore::new())
            .feed(InProcessFeed::new());
        configure(builder).build().await
    };
    assert!(build(|b| b).await.is_ok());
    assert!(build(|b| b.access_ttl(Duration::ZERO)).await.is_err());
    assert!(
        build(|b| b.grace_window(Duration::from_secs(3_600)))
            .await
            .is_err()
    );
    assert!(
        build(|b| b
            .refresh_ttl(Duration::from_secs(100))
            .absolute_ttl(Duration::from_secs(10)))
        .await
        .is_err()
    );
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let missing = HybridSessions::builder(issuer, Validation::new())
        .build()
        .await;
    assert!(matches!(missing, Err(ConfigError::MissingStore)));
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let harness = Harness::new().await;
        let pair = harness.login().await;
        let debug = format!("{pair:?}");
        assert!(!debug.contains(pair.access_token()));
        assert!(!debug.contains(pair.refresh_token().secret().expose()));
    });
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<HybridSessions>();
    assert_send_sync::<HybridLayer>();
    assert_send_sync::<Hybrid<axum::routing::Route>>();
    assert_send_sync::<MemoryRefreshStore>();
    assert_send_sync::<InProcessFeed>();
    assert_send_sync::<CookieTransport>();
    assert_send_sync::<TokenPair>();
    assert_send_sync::<AccessSession>();
    // The future is Send whenever the inner one is, and Sync whenever the inner one is too.
    type AxumFuture =
        ResponseFuture<axum::routing::future::RouteFuture<Infallible>, Body, Infallible>;
    assert_send::<AxumFuture>();
    type ReadyFuture = ResponseFuture<
        std::future::Ready<Result<Response<String>, Infallible>>,
        String,
        Infallible,
    >;
    assert_send_sync::<ReadyFuture>();
    assert_send_sync::<RevocationList>();
}

/// A store that can be switched off, to see what an outage does.
#[derive(Clone, Default)]
struct FlakyStore {
    inner: MemoryRefreshStore,
    down: Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyStore {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StoreError::Timeout)
        } else {
            Ok(())
        }
    }
}

impl RefreshStore for FlakyStore {
    async fn create(
        &self,
        record: &RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        self.check()?;
        self.inner.create(record, limit).await
    }
    async fn load(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.check()?;
        self.inner.load(session_id).await
    }
    async fn compare_and_swap(
        &self,
        record: &RefreshRecord,
        expected_generation: u64,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner
            .compare_and_swap(record, expected_generation)
            .await
    }
    async fn delete(&self, session_id: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.check()?;
        self.inner.delete(session_id).await
    }
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<RefreshRecord>, StoreError> {
        self.check()?;
        self.inner.list_by_user(user_id).await
    }
    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<Vec<RefreshRecord>, StoreError> {
        self.check()?;
        self.inner.delete_by_user(user_id, keep).await
    }
}

#[tokio::test]
async fn a_store_outage_fails_refresh_closed_and_leaves_the_edge_serving() {
    let store = FlakyStore::default();
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let sessions = HybridSessions::builder(issuer, Validation::new())
        .store(store.clone())
        .feed(InProcessFeed::new())
        .build()
        .await
        .unwrap();
    let pair = sessions.login("alice", &alice(), None).await.unwrap();
    store.down.store(true, Ordering::SeqCst);

    let error = sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap_err();
    assert!(matches!(error, HybridError::Store(_)), "{error:?}");
    let rejection = portcullis_core::AuthRejection::from(error);
    assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
    let response: Response<Body> = rejection.to_response();
    assert!(response.headers().contains_key(header::RETRY_AFTER));

    // The edge reads no store: valid access tokens keep working through the outage.
    let app = router(HybridLayer::new(&sessions));
    assert_eq!(
        send(&app, bearer("/me", pair.access_token()))
            .await
            .status(),
        StatusCode::OK
    );
    // A logout during the outage fails, but this node refuses the session's tokens already.
    assert!(sessions.revoke(pair.session_id()).await.is_err());
    assert_eq!(
        send(&app, bearer("/me", pair.access_token()))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Back up: the session was not lost (the failed logout answered 503, so the client knows
    // to retry it).
    store.down.store(false, Ordering::SeqCst);
    let refreshed = sessions.refresh(&pair.refresh_token().expose()).await;
    assert!(refreshed.is_ok(), "{refreshed:?}");
}

#[tokio::test]
async fn the_edge_fails_closed_until_the_revocation_list_has_caught_up() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    let app = router(HybridLayer::new(&harness.sessions));
    // A feed whose backend was down at start-up marks the list so until it catches up.
    harness.sessions.revocations().set_caught_up(false);
    let response = send(&app, bearer("/me", pair.access_token())).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(
        response.headers()[header::CACHE_CONTROL],
        "no-store",
        "an auth response"
    );
    // A bad token is still a 401: only a token that would pass waits for the list.
    let response = send(&app, bearer("/me", "not-a-jwt")).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Routes that do not ask for the user are not affected.
    let response = send(&app, Request::get("/public").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);

    harness.sessions.revocations().set_caught_up(true);
    let response = send(&app, bearer("/me", pair.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
}

// Issue 18: token hardening.

/// The claims of a JWT, decoded without verifying (the test minted it).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn auth_time_in_the_future_or_beyond_any_date_is_refused_without_a_panic() {
    let harness = Harness::new().await;
    let app = router(HybridLayer::new(&harness.sessions));
    let pair = harness.login().await;
    let issuer = TokenIssuer::new(harness.key.clone())
        .issuer(ISSUER)
        .with_clock(Arc::new(harness.clock.clone()));
    let forged = |auth_time: serde_json::Value| {
        let claims =
            serde_json::json!({"sid": pair.session_id(), "user": alice(), "auth_time": auth_time});
        issuer
            .issue_with("alice", &claims, &IssueOptions::new().typ("at+jwt"))
            .unwrap()
            .token
    };
    // u64::MAX used to overflow `UNIX_EPOCH + Duration` and panic the connection task.
    for auth_time in [
        serde_json::json!(u64::MAX),
        serde_json::json!(1e300),
        serde_json::json!(START + 3_600),
        serde_json::json!(START + 1),
    ] {
        let response = send(&app, bearer("/me", &forged(auth_time.clone()))).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{auth_time}");
        assert!(challenge(&response).contains(r#"error="invalid_token""#));
    }
    let now = send(&app, bearer("/me", &forged(serde_json::json!(START)))).await;
    assert_eq!(now.status(), StatusCode::OK);
}

#[tokio::test]
async fn refresh_carries_the_login_time_into_re_minted_tokens() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    assert_eq!(claims_of(pair.access_token())["auth_time"], START);
    harness.advance(300);
    let next = harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap();
    let claims = claims_of(next.access_token());
    assert_eq!(claims["auth_time"], START, "a refresh is not a login");
    assert_eq!(claims["iat"], START + 300);
    assert_eq!(
        next.identity().authenticated_at(),
        Some(std::time::UNIX_EPOCH + Duration::from_secs(START))
    );
}

#[tokio::test]
async fn access_tokens_never_outlive_their_session() {
    let harness = Harness::with(|b| {
        b.refresh_ttl(Duration::from_secs(120))
            .absolute_ttl(Duration::from_secs(200))
    })
    .await;
    let app = router(HybridLayer::new(&harness.sessions));
    let pair = harness.login().await;
    assert_eq!(
        pair.access_expires_at(),
        START + 120,
        "capped by the idle deadline"
    );
    assert_eq!(pair.expires_in(), 120);
    assert_eq!(claims_of(pair.access_token())["exp"], START + 120);
    harness.advance(100);
    let next = harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap();
    assert_eq!(
        next.access_expires_at(),
        START + 200,
        "capped by the absolute deadline"
    );
    harness.advance(100);
    let response = send(&app, bearer("/me", next.access_token())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_all_refuses_tokens_of_expired_sessions_but_not_a_login_right_after() {
    // With leeway, an access token is accepted a little past its session's end, when the store
    // no longer knows the session: only a per-user revocation can reach it.
    let harness = Harness::with(|b| {
        b.refresh_ttl(Duration::from_secs(60))
            .absolute_ttl(Duration::from_secs(60))
            .leeway(Duration::from_secs(30))
    })
    .await;
    let other = Harness::node(
        &harness.clock,
        &harness.store,
        &harness.feed,
        &harness.key,
        |b| b.leeway(Duration::from_secs(30)),
    )
    .await;
    let app = router(HybridLayer::new(&harness.sessions));
    let other_app = router(HybridLayer::new(&other));
    let expired = harness.login().await;
    harness.advance(70);
    assert!(
        harness
            .sessions
            .refresh(&expired.refresh_token().expose())
            .await
            .is_err(),
        "the session is over"
    );
    for node in [&app, &other_app] {
        let response = send(node, bearer("/me", expired.access_token())).await;
        assert_eq!(response.status(), StatusCode::OK, "within the leeway");
    }
    let live = harness.login().await;

    assert_eq!(other.revoke_all("alice").await.unwrap(), 1);
    for node in [&app, &other_app] {
        for pair in [&expired, &live] {
            let response = send(node, bearer("/me", pair.access_token())).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
    }
    // The clock has not moved at all: a login in the same millisecond still works, on
    // either node.
    let fresh = harness.login().await;
    let fresh_other = other.login("alice", &alice(), None).await.unwrap();
    for node in [&app, &other_app] {
        for pair in [&fresh, &fresh_other] {
            let response = send(node, bearer("/me", pair.access_token())).await;
            assert_eq!(response.status(), StatusCode::OK);
        }
    }
    // Other users are untouched, and the entry is forgotten once every token it covers
    // could have expired (access TTL 600 + leeway 30 + 1).
    assert!(
        !harness
            .sessions
            .revocations()
            .is_user_revoked("bob", 0, START + 70)
    );
    assert!(
        harness
            .sessions
            .revocations()
            .is_user_revoked("alice", 0, START + 70 + 631)
    );
    harness
        .sessions
        .revocations()
        .purge_expired(START + 70 + 632);
    assert!(harness.sessions.revocations().is_empty());
}

#[tokio::test]
async fn revoking_user_tokens_keeps_the_sessions_so_a_refresh_picks_up_changes() {
    let role = Arc::new(std::sync::Mutex::new("advertiser".to_owned()));
    let current = role.clone();
    let harness = Harness::with(move |b| {
        b.reload_user(move |_id: String, _stored: serde_json::Value| {
            let role = current.lock().unwrap().clone();
            async move { Ok(Some(serde_json::json!({"user": "alice", "role": role}))) }
        })
    })
    .await;
    let app = router(HybridLayer::new(&harness.sessions));
    let pair = harness.login().await;
    harness.clock.advance(Duration::from_millis(1));
    *role.lock().unwrap() = "admin".to_owned();
    harness.sessions.revoke_user_tokens("alice").await.unwrap();
    let response = send(&app, bearer("/me", pair.access_token())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let next = harness
        .sessions
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap();
    assert_eq!(claims_of(next.access_token())["user"]["role"], "admin");
    let response = send(&app, bearer("/me", next.access_token())).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_retired_refresh_token_revokes_the_session_however_many_rotations_ago() {
    let harness = Harness::new().await;
    let app = router(HybridLayer::new(&harness.sessions));
    let first = harness.login().await;
    let mut pair = first.clone();
    for _ in 0..20 {
        harness.advance(10);
        pair = harness
            .sessions
            .refresh(&pair.refresh_token().expose())
            .await
            .unwrap();
    }
    let error = harness
        .sessions
        .refresh(&first.refresh_token().expose())
        .await
        .unwrap_err();
    assert!(matches!(error, HybridError::TokenReuse), "{error:?}");
    assert!(matches!(
        harness
            .sessions
            .refresh(&pair.refresh_token().expose())
            .await
            .unwrap_err(),
        HybridError::SessionEnded
    ));
    let response = send(&app, bearer("/me", pair.access_token())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    // A guessed secret with the right sid is still only refused.
    let victim = harness.login().await;
    let guess = format!(
        "{}.{}",
        victim.session_id(),
        portcullis_core::SecretToken::generate().expose()
    );
    assert!(matches!(
        harness.sessions.refresh(&guess).await.unwrap_err(),
        HybridError::InvalidRefreshToken
    ));
    harness
        .sessions
        .refresh(&victim.refresh_token().expose())
        .await
        .unwrap();
}

#[tokio::test]
async fn revocations_are_kept_for_the_access_ttl_plus_the_edge_leeway() {
    // Only the Validation's leeway is set: the retention follows it (it used to follow a
    // separate builder setting, 30 s by default, and forget revocations 30 s too early).
    let clock = ManualClock::at_unix_seconds(START);
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let sessions =
        HybridSessions::builder(issuer, Validation::new().leeway(Duration::from_secs(90)))
            .store(MemoryRefreshStore::new().with_clock(Arc::new(clock.clone())))
            .feed(InProcessFeed::new().with_clock(Arc::new(clock.clone())))
            .clock(Arc::new(clock.clone()))
            .access_ttl(Duration::from_secs(600))
            .build()
            .await
            .unwrap();
    let pair = sessions.login("alice", &alice(), None).await.unwrap();
    sessions.revoke(pair.session_id()).await.unwrap();
    let revoked = sessions.revocations();
    assert!(revoked.is_revoked(pair.session_id(), START + 600 + 90 + 1));
    assert!(!revoked.is_revoked(pair.session_id(), START + 600 + 90 + 2));
    // The builder's leeway sets the edge's too: one setting.
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let strict = HybridSessions::builder(issuer, Validation::new())
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new())
        .leeway(Duration::from_secs(7))
        .build()
        .await
        .unwrap();
    assert_eq!(
        strict.inner.verifier.validation().leeway_duration(),
        Duration::from_secs(7)
    );
}

#[tokio::test]
async fn the_edge_describes_refusals_generically_unless_told_otherwise() {
    let harness = Harness::new().await;
    let pair = harness.login().await;
    harness.sessions.revoke(pair.session_id()).await.unwrap();
    let generic = router(HybridLayer::new(&harness.sessions));
    let response = send(&generic, bearer("/me", pair.access_token())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let header = challenge(&response);
    assert!(
        header
            .ends_with(r#"error="invalid_token", error_description="the access token is invalid""#),
        "{header}"
    );
    assert!(!body_text(response).await.contains("revoked"));
    let detailed = router(HybridLayer::new(&harness.sessions).dangerous_detailed_errors(true));
    let response = send(&detailed, bearer("/me", pair.access_token())).await;
    assert!(challenge(&response).contains("the session has been revoked"));
}

#[tokio::test(start_paused = true)]
async fn build_starts_purging_expired_sessions_from_the_memory_store() {
    let clock = ManualClock::at_unix_seconds(START);
    let store = MemoryRefreshStore::new().with_clock(Arc::new(clock.clone()));
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    let sessions = HybridSessions::builder(issuer, Validation::new())
        .store(store.clone())
        .feed(InProcessFeed::new())
        .clock(Arc::new(clock.clone()))
        .refresh_ttl(Duration::from_secs(60))
        .absolute_ttl(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    for _ in 0..3 {
        sessions.login("alice", &alice(), None).await.unwrap();
    }
    assert_eq!(store.len(), 3);
    clock.advance(Duration::from_secs(61));
    // Nobody touches the sessions again: only the background purge can free them.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(store.len(), 0);
}
