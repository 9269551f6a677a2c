//! Black-box tests of examples/session-app over real TCP on 127.0.0.1:0 with a real HTTP client:
//! the DESIGN.md contract (routes, bodies, cookie name and attributes), session fixation,
//! logout, expiry (with a test clock), revocation, per-user limits, the cross-site check,
//! malformed cookies and store outages.

use std::{
    net::SocketAddr,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use portcullis_core::{ManualClock, SecretToken, StoreError, StoreKey};
use portcullis_session::{
    CreateOutcome, MemoryStore, MemoryStoreConfig, SaveOutcome, SessionLayer, SessionLimit,
    SessionRecord, SessionStore,
};
use reqwest::{Client, Method, StatusCode, header};
use serde_json::{Value, json};
use session_app::{DemoUsers, Settings, app};
use tokio::net::TcpListener;

fn users() -> DemoUsers {
    static USERS: OnceLock<DemoUsers> = OnceLock::new();
    USERS.get_or_init(DemoUsers::new).clone()
}

/// A store that can be made to fail, to stand in for an outage (not for a backend).
#[derive(Clone)]
struct Breakable {
    inner: MemoryStore,
    broken: Arc<AtomicBool>,
}

impl Breakable {
    fn check(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Timeout);
        }
        Ok(())
    }
}

impl SessionStore for Breakable {
    async fn load(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.load(key).await
    }
    async fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        self.check()?;
        self.inner.create(key, record, limit).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.check()?;
        self.inner.save(key, record, expected_version).await
    }
    async fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.touch(key, last_seen_at, expires_at).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.check()?;
        self.inner.delete(key).await
    }
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.check()?;
        self.inner.list_by_user(user_id).await
    }
    async fn delete_by_handle(&self, user_id: &str, handle: &str) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete_by_handle(user_id, handle).await
    }
    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_by_user(user_id, keep).await
    }
}

struct Server {
    base: String,
    clock: ManualClock,
    broken: Arc<AtomicBool>,
    client: Client,
}

async fn start(settings: Settings) -> Server {
    let clock = ManualClock::new();
    let broken = Arc::new(AtomicBool::new(false));
    let store = Breakable {
        inner: MemoryStore::with_config(
            MemoryStoreConfig::default().clock(Arc::new(clock.clone())),
        ),
        broken: broken.clone(),
    };
    let config = settings.session_config().clock(Arc::new(clock.clone()));
    let router = app(SessionLayer::new(store, config).unwrap(), users());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Server {
        base: format!("http://{addr}"),
        clock,
        broken,
        client,
    }
}

/// A response with its headers and body read.
struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The session cookie's `Set-Cookie` line.
    fn set_cookie(&self) -> Option<&str> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with("__Host-session="))
    }

    /// `__Host-session=<secret>` to send back, when the response sets a new session.
    fn cookie(&self) -> Option<String> {
        let pair = self.set_cookie()?.split(';').next()?;
        (pair.len() > "__Host-session=".len()).then(|| pair.to_owned())
    }

    fn clears_the_cookie(&self) -> bool {
        self.set_cookie().is_some_and(|c| {
            let attributes = attributes(c);
            c.starts_with("__Host-session=;")
                && attributes.contains(&"max-age=0".to_owned())
                && attributes.contains(&"path=/".to_owned())
                && attributes.contains(&"secure".to_owned())
        })
    }
}

/// The lowercased attributes of a `Set-Cookie` line.
fn attributes(set_cookie: &str) -> Vec<String> {
    set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

impl Server {
    async fn send(
        &self,
        method: Method,
        path: &str,
        cookie: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(Method::GET, path, cookie, &[], None).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>) -> Reply {
        self.send(Method::POST, path, cookie, &[], None).await
    }

    async fn login_as(&self, user: &str, cookie: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        let body = json!({"username": user, "password": format!("{user}-password-1")});
        self.send(Method::POST, "/login", cookie, headers, Some(body))
            .await
    }

    async fn login(&self, user: &str) -> String {
        let reply = self.login_as(user, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.cookie().expect("login sets the session cookie")
    }
}

#[tokio::test]
async fn login_sets_a_host_only_secure_http_only_lax_cookie() {
    let server = start(Settings::default()).await;
    let reply = server.login_as("alice", None, &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), json!({"user": "alice", "role": "advertiser"}));
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let set_cookie = reply.set_cookie().unwrap();
    let secret = set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("__Host-session=")
        .unwrap();
    assert!(
        SecretToken::parse(secret).is_some(),
        "256 random bits, URL-safe base64: {secret}"
    );
    let mut sorted = attributes(set_cookie);
    sorted.sort();
    assert_eq!(
        sorted,
        ["httponly", "path=/", "samesite=lax", "secure"],
        "no Domain, no Max-Age"
    );

    let remembered = server
        .send(
            Method::POST,
            "/login",
            None,
            &[],
            Some(json!({"username": "alice", "password": "alice-password-1", "remember": true})),
        )
        .await;
    let max_age = attributes(remembered.set_cookie().unwrap())
        .into_iter()
        .find(|a| a.starts_with("max-age="));
    assert_eq!(
        max_age.as_deref(),
        Some("max-age=2592000"),
        "remember me: 30 days"
    );

    for (path, expected) in [("/me", StatusCode::OK), ("/admin", StatusCode::FORBIDDEN)] {
        let cookie = reply.cookie().unwrap();
        let answer = server.get(path, Some(&cookie)).await;
        assert_eq!(answer.status, expected, "{path}");
        assert_eq!(answer.set_cookie(), None, "{path}: reading sets no cookie");
    }
    let admin = server.login("admin").await;
    assert_eq!(
        server.get("/admin", Some(&admin)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.get("/admin", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn anonymous_visitors_get_no_cookie() {
    let server = start(Settings::default()).await;
    for path in ["/", "/me", "/admin", "/sessions"] {
        let reply = server.get(path, None).await;
        assert_eq!(reply.set_cookie(), None, "{path}");
    }
    let reply = server.get("/", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.contains("<form"), "the login form");
}

#[tokio::test]
async fn login_issues_a_new_id_and_the_old_one_is_dead() {
    let server = start(Settings::default()).await;
    let first = server.login("alice").await;
    let second = server
        .login_as("alice", Some(&first), &[])
        .await
        .cookie()
        .unwrap();
    assert_ne!(first, second);
    let replay = server.get("/me", Some(&first)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.clears_the_cookie(), "{:?}", replay.set_cookie());
    assert_eq!(
        server.get("/me", Some(&second)).await.status,
        StatusCode::OK
    );

    // A planted (attacker-chosen) ID is never adopted.
    let planted = format!("__Host-session={}", SecretToken::generate().expose());
    let issued = server
        .login_as("alice", Some(&planted), &[])
        .await
        .cookie()
        .unwrap();
    assert_ne!(issued, planted);
    assert_eq!(
        server.get("/me", Some(&planted)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_kills_the_session_and_the_cookie() {
    let server = start(Settings::default()).await;
    let cookie = server.login("alice").await;
    let reply = server.post("/logout", Some(&cookie)).await;
    assert!(reply.status.is_success(), "{}", reply.status);
    assert!(reply.clears_the_cookie(), "{:?}", reply.set_cookie());
    let replay = server.get("/me", Some(&cookie)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn cross_site_posts_are_refused_same_site_and_non_browser_posts_pass() {
    let server = start(Settings::default()).await;
    let cookie = server.login("alice").await;
    let origin = server.base.clone();
    let cases: &[(&[(&str, &str)], StatusCode)] = &[
        (
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.example"),
            ],
            StatusCode::FORBIDDEN,
        ),
        (&[("origin", "https://evil.example")], StatusCode::FORBIDDEN),
        (&[("sec-fetch-site", "same-site")], StatusCode::FORBIDDEN),
    ];
    for (headers, expected) in cases {
        let reply = server
            .send(Method::POST, "/logout", Some(&cookie), headers, None)
            .await;
        assert_eq!(reply.status, *expected, "{headers:?}");
        assert_eq!(reply.json()["error"], "cross_site_request");
        assert_eq!(
            server.get("/me", Some(&cookie)).await.status,
            StatusCode::OK,
            "still signed in"
        );
    }
    let delete = server
        .send(
            Method::DELETE,
            "/sessions/x",
            Some(&cookie),
            &[("sec-fetch-site", "cross-site")],
            None,
        )
        .await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    // Login CSRF: a login posted from another site is refused too.
    let forged = server
        .login_as("alice", None, &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(forged.cookie(), None);

    let same_origin = server
        .send(
            Method::POST,
            "/logout",
            Some(&cookie),
            &[
                ("sec-fetch-site", "same-origin"),
                ("origin", origin.as_str()),
            ],
            None,
        )
        .await;
    assert!(same_origin.status.is_success(), "{}", same_origin.status);
    let cookie = server.login("alice").await;
    let by_origin = server
        .send(
            Method::POST,
            "/logout",
            Some(&cookie),
            &[("origin", origin.as_str())],
            None,
        )
        .await;
    assert!(by_origin.status.is_success(), "{}", by_origin.status);
    let cookie = server.login("alice").await;
    let non_browser = server.post("/logout", Some(&cookie)).await;
    assert!(non_browser.status.is_success(), "{}", non_browser.status);
}

#[tokio::test]
async fn idle_timeout_rolls_and_expires_and_the_stale_cookie_is_cleared() {
    let settings = Settings {
        idle: Duration::from_secs(60),
        absolute: Duration::from_secs(3_600),
        ..Settings::default()
    };
    let server = start(settings).await;
    let cookie = server.login("alice").await;
    for _ in 0..4 {
        server.clock.advance(Duration::from_secs(45));
        assert_eq!(
            server.get("/me", Some(&cookie)).await.status,
            StatusCode::OK
        );
    }
    server.clock.advance(Duration::from_secs(61));
    let reply = server.get("/me", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.clears_the_cookie());
}

#[tokio::test]
async fn absolute_timeout_ends_an_active_session() {
    let settings = Settings {
        idle: Duration::from_secs(60),
        absolute: Duration::from_secs(150),
        ..Settings::default()
    };
    let server = start(settings).await;
    let cookie = server.login("alice").await;
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(45));
        assert_eq!(
            server.get("/me", Some(&cookie)).await.status,
            StatusCode::OK
        );
    }
    server.clock.advance(Duration::from_secs(20));
    let reply = server.get("/me", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "155 s after login, absolute 150 s"
    );
    assert!(reply.clears_the_cookie());
}

#[tokio::test]
async fn sessions_are_listed_revoked_one_by_one_and_all_at_once() {
    let server = start(Settings::default()).await;
    let laptop = server
        .login_as("alice", None, &[("user-agent", "Laptop Browser")])
        .await
        .cookie()
        .unwrap();
    server.clock.advance(Duration::from_secs(1));
    let phone = server
        .login_as("alice", None, &[("user-agent", "Phone Browser")])
        .await
        .cookie()
        .unwrap();
    let admin = server.login("admin").await;

    let list = server.get("/sessions", Some(&laptop)).await.json();
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "only alice's sessions: {list:?}");
    assert_eq!(list[0]["user_agent"], "Laptop Browser");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["user_agent"], "Phone Browser");
    assert_eq!(list[1]["current"], false);
    for entry in &list {
        assert!(
            entry["created"].as_u64().is_some() && entry["last_seen"].as_u64().is_some(),
            "{entry}"
        );
        let handle = entry["handle"].as_str().unwrap();
        assert!(
            !laptop.contains(handle) && !phone.contains(handle),
            "a handle is not a secret"
        );
    }
    let phone_handle = list[1]["handle"].as_str().unwrap();

    let not_yours = server
        .send(
            Method::DELETE,
            &format!("/sessions/{phone_handle}"),
            Some(&admin),
            &[],
            None,
        )
        .await;
    assert_eq!(not_yours.status, StatusCode::NOT_FOUND);
    let revoked = server
        .send(
            Method::DELETE,
            &format!("/sessions/{phone_handle}"),
            Some(&laptop),
            &[],
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get("/me", Some(&phone)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/me", Some(&laptop)).await.status,
        StatusCode::OK
    );

    let phone = server.login("alice").await;
    let all = server.post("/logout-all", Some(&laptop)).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json(), json!({"revoked": 2}));
    assert!(all.clears_the_cookie());
    for cookie in [&laptop, &phone] {
        assert_eq!(
            server.get("/me", Some(cookie)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        server.get("/me", Some(&admin)).await.status,
        StatusCode::OK,
        "other users keep theirs"
    );
    assert_eq!(
        server.post("/logout-all", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_per_user_limit_evicts_the_oldest_session() {
    let settings = Settings {
        max_per_user: Some(1),
        ..Settings::default()
    };
    let server = start(settings).await;
    let first = server.login("alice").await;
    server.clock.advance(Duration::from_secs(1));
    let second = server.login("alice").await;
    assert_eq!(
        server.get("/me", Some(&first)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/me", Some(&second)).await.status,
        StatusCode::OK
    );
    let list = server.get("/sessions", Some(&second)).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_cookies_are_anonymous_and_cleared() {
    let server = start(Settings::default()).await;
    let good = server.login("alice").await;
    let secret = good.strip_prefix("__Host-session=").unwrap().to_owned();
    let cases = [
        "__Host-session=tooshort".to_owned(),
        format!("__Host-session={secret}x"),
        format!("__Host-session={}", "A".repeat(4_000)),
        format!("__Host-session={}", SecretToken::generate().expose()),
        format!("__Host-session={}%00", &secret[..40]),
    ];
    for cookie in cases {
        let reply = server.get("/me", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{cookie:.60}");
        assert!(reply.clears_the_cookie(), "{cookie:.60}");
        let page = server.get("/", Some(&cookie)).await;
        assert_eq!(
            page.status,
            StatusCode::OK,
            "the page still renders: {cookie:.60}"
        );
    }
    // An empty value, or two different values (one tossed in by a sibling domain): anonymous,
    // and no clearing Set-Cookie, which would delete the victim's real cookie too.
    let tossed = [
        "__Host-session=".to_owned(),
        format!(
            "__Host-session={secret}; __Host-session={}",
            SecretToken::generate().expose()
        ),
    ];
    for cookie in tossed {
        let reply = server.get("/me", Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{cookie:.60}");
        assert_eq!(reply.set_cookie(), None, "{cookie:.60}");
    }
    assert_eq!(server.get("/me", Some(&good)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_store_outage_is_503_with_retry_after_never_an_open_door() {
    let server = start(Settings::default()).await;
    let cookie = server.login("alice").await;
    server.broken.store(true, Ordering::SeqCst);
    for path in ["/me", "/admin", "/sessions", "/"] {
        let reply = server.get(path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(reply.headers.contains_key(header::RETRY_AFTER), "{path}");
        assert_eq!(
            reply.set_cookie(),
            None,
            "{path}: an outage does not sign anyone out"
        );
    }
    assert_eq!(
        server.login_as("alice", None, &[]).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    server.broken.store(false, Ordering::SeqCst);
    assert_eq!(
        server.get("/me", Some(&cookie)).await.status,
        StatusCode::OK
    );
}

/// Issue 12: portcullis lives beside `tower-cookies`' `CookieManagerLayer`. The app keeps a
/// `theme` cookie of its own through the `Cookies` extractor; on login, logout and a
/// preference change both `Set-Cookie` headers arrive whole and neither layer drops or merges
/// the other's.
#[tokio::test]
async fn the_session_cookie_and_an_app_cookie_from_tower_cookies_coexist() {
    let server = start(Settings::default()).await;
    let theme = |reply: &Reply| -> Vec<String> {
        reply
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|c| c.starts_with("theme="))
            .map(str::to_owned)
            .collect()
    };

    // Login: a fresh session cookie and the theme cookie, each on its own header.
    let login = server.login_as("alice", Some("theme=dark"), &[]).await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.headers.get_all(header::SET_COOKIE).iter().count(), 2);
    let session = login.cookie().expect("a session cookie");
    assert_eq!(theme(&login).len(), 1);
    let kept = &theme(&login)[0];
    assert!(kept.starts_with("theme=dark;"), "{kept}");
    assert!(
        attributes(kept).contains(&"max-age=31536000".to_owned()),
        "{kept}"
    );
    assert!(attributes(login.set_cookie().unwrap()).contains(&"httponly".to_owned()));

    // A preference change: the theme cookie alone, the session untouched.
    let cookies = format!("{session}; theme=dark");
    let change = server
        .client
        .post(format!("{}/preferences", server.base))
        .header(header::COOKIE, &cookies)
        .form(&[("theme", "light")])
        .send()
        .await
        .unwrap();
    assert_eq!(change.status(), StatusCode::NO_CONTENT);
    let set: Vec<_> = change
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].starts_with("theme=light;"), "{set:?}");
    let bad = server
        .client
        .post(format!("{}/preferences", server.base))
        .form(&[("theme", "<script>")])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.headers().get(header::SET_COOKIE).is_none());
    let me = server
        .get("/me", Some(&format!("{session}; theme=light")))
        .await;
    assert_eq!(
        me.status,
        StatusCode::OK,
        "the session survived the app's cookie"
    );

    // Logout: the session cookie is cleared and the theme kept, both whole.
    let logout = server
        .post("/logout", Some(&format!("{session}; theme=light")))
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(logout.headers.get_all(header::SET_COOKIE).iter().count(), 2);
    assert!(logout.clears_the_cookie());
    assert!(theme(&logout)[0].starts_with("theme=light;"));
    assert_eq!(
        server.get("/me", Some(&session)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// Issue 14: a WebSocket handshake is a GET, but it opens a channel that acts as the user. A
/// page on another site must not open one with the user's cookie (cross-site WebSocket
/// hijacking); the app's own page may. Driven with a real WebSocket client.
#[tokio::test]
async fn cross_site_websocket_handshakes_are_refused() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

    let server = start(Settings::default()).await;
    let cookie = server.login("alice").await;
    let url = format!("{}/ws", server.base.replace("http://", "ws://"));
    let host = server.base.trim_start_matches("http://").to_owned();
    let handshake = |origin: Option<&str>, cookie: Option<&str>| {
        let mut request = url.as_str().into_client_request().unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().unwrap());
        }
        if let Some(cookie) = cookie {
            request
                .headers_mut()
                .insert("cookie", cookie.parse().unwrap());
        }
        tokio_tungstenite::connect_async(request)
    };

    // From another site, with the victim's cookie: refused before the upgrade.
    for origin in ["https://evil.example", "null"] {
        match handshake(Some(origin), Some(&cookie)).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{origin}");
            }
            other => panic!("{origin}: expected a 403 handshake, got {other:?}"),
        }
    }
    // Without the cookie there is no user: 401, never an anonymous socket.
    match handshake(Some(&format!("http://{host}")), None).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    // The app's own page: the socket opens as alice and echoes.
    let (mut socket, response) = handshake(Some(&format!("http://{host}")), Some(&cookie))
        .await
        .expect("a same-origin handshake succeeds");
    assert_eq!(response.status(), 101);
    let hello = socket.next().await.unwrap().unwrap();
    assert_eq!(hello.into_text().unwrap().as_str(), "hello alice");
    socket
        .send(tungstenite::Message::Text("ping".into()))
        .await
        .unwrap();
    let echo = socket.next().await.unwrap().unwrap();
    assert_eq!(echo.into_text().unwrap().as_str(), "ping");
    socket.close(None).await.unwrap();
}
