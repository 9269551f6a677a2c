//! Unit tests of the layer, the `Session` handle and the identity source, driven through
//! `ServiceBuilder::new().layer(..).service_fn(..).oneshot(..)` with a counting, breakable store.

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_core::{ManualClock, StoreError, StoreKey, resolve_user};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tower::{ServiceBuilder, ServiceExt};

use crate::{
    CreateOutcome, LimitPolicy, LoginOptions, MemoryStore, MemoryStoreConfig, SaveOutcome, Session,
    SessionConfig, SessionLayer, SessionLimit, SessionRecord, SessionStore,
};

/// Counts calls and fails on demand; stands in for an outage, not for a real backend.
#[derive(Default)]
struct Probe {
    loads: AtomicUsize,
    writes: AtomicUsize,
    touches: AtomicUsize,
    conflicts: AtomicUsize,
    fail_loads: AtomicBool,
    fail_writes: AtomicBool,
}

#[derive(Clone)]
struct TestStore {
    inner: MemoryStore,
    probe: Arc<Probe>,
}

fn outage() -> StoreError {
    StoreError::unavailable(std::io::Error::other("connection refused"))
}

impl TestStore {
    fn check_write(&self) -> Result<(), StoreError> {
        self.probe.writes.fetch_add(1, Ordering::SeqCst);
        if self.probe.fail_writes.load(Ordering::SeqCst) {
            return Err(outage());
        }
        Ok(())
    }
}

impl SessionStore for TestStore {
    async fn load(&self, key: &StoreKey) -> Result<Option<SessionRecord>, StoreError> {
        self.probe.loads.fetch_add(1, Ordering::SeqCst);
        if self.probe.fail_loads.load(Ordering::SeqCst) {
            return Err(outage());
        }
        self.inner.load(key).await
    }
    async fn create(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<CreateOutcome, StoreError> {
        self.check_write()?;
        self.inner.create(key, record, limit).await
    }
    async fn save(
        &self,
        key: &StoreKey,
        record: &SessionRecord,
        expected_version: u64,
    ) -> Result<SaveOutcome, StoreError> {
        self.check_write()?;
        let outcome = self.inner.save(key, record, expected_version).await?;
        if outcome == SaveOutcome::Conflict {
            self.probe.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        Ok(outcome)
    }
    async fn touch(
        &self,
        key: &StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        self.probe.touches.fetch_add(1, Ordering::SeqCst);
        self.check_write()?;
        self.inner.touch(key, last_seen_at, expires_at).await
    }
    async fn delete(&self, key: &StoreKey) -> Result<(), StoreError> {
        self.check_write()?;
        self.inner.delete(key).await
    }
    async fn list_by_user(&self, user_id: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_by_user(user_id).await
    }
    async fn delete_by_handle(&self, user_id: &str, handle: &str) -> Result<bool, StoreError> {
        self.check_write()?;
        self.inner.delete_by_handle(user_id, handle).await
    }
    async fn delete_by_user(
        &self,
        user_id: &str,
        keep: Option<&StoreKey>,
    ) -> Result<u64, StoreError> {
        self.check_write()?;
        self.inner.delete_by_user(user_id, keep).await
    }
}

struct Harness {
    layer: SessionLayer<TestStore>,
    clock: ManualClock,
    probe: Arc<Probe>,
    gate: Arc<Notify>,
    handler_runs: Arc<AtomicUsize>,
}

fn harness(tweak: impl FnOnce(SessionConfig) -> SessionConfig) -> Harness {
    let clock = ManualClock::at_unix_seconds(1_700_000_000);
    let probe = Arc::new(Probe::default());
    let store = TestStore {
        inner: MemoryStore::with_config(
            MemoryStoreConfig::default().clock(Arc::new(clock.clone())),
        ),
        probe: probe.clone(),
    };
    let config = tweak(SessionConfig::default().clock(Arc::new(clock.clone())));
    Harness {
        layer: SessionLayer::new(store, config).unwrap(),
        clock,
        probe,
        gate: Arc::new(Notify::new()),
        handler_runs: Arc::default(),
    }
}

fn query(request: &Request<Body>, name: &str) -> Option<String> {
    request.uri().query()?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

async fn handle(
    mut request: Request<Body>,
    gate: Arc<Notify>,
) -> Result<Response<Body>, crate::SessionError> {
    let session = Session::from_extensions(request.extensions()).expect("the layer ran");
    let text = |value: Value| Response::new(Body::from(value.to_string()));
    let response = match request.uri().path() {
        "/public" => text(json!("public")),
        "/me" => match resolve_user::<Value>(request.extensions_mut()).await {
            Ok(Some(user)) => text(user),
            Ok(None) => portcullis_core::AuthRejection::missing_credentials().to_response(),
            Err(rejection) => rejection.to_response(),
        },
        "/login" => {
            let user = query(&request, "user").unwrap_or_else(|| "alice".into());
            let options =
                LoginOptions::default().remember_me(query(&request, "remember").is_some());
            session
                .login_with(&user, &json!({ "user": user }), options)
                .await?;
            text(json!("ok"))
        }
        "/logout" => {
            session.logout().await?;
            text(json!("bye"))
        }
        "/cycle" => {
            session.cycle_id().await?;
            text(json!("cycled"))
        }
        "/set" => {
            let key = query(&request, "k").unwrap_or_default();
            let value = query(&request, "v").unwrap_or_default();
            session.insert(&key, value).await?;
            text(json!("set"))
        }
        "/set-after-gate" => {
            // Load first, then wait for another request to save, then write: a lost race.
            let _: Option<String> = session.get("anything").await?;
            gate.notified().await;
            let key = query(&request, "k").unwrap_or_default();
            session.insert(&key, "late").await?;
            text(json!("set"))
        }
        "/get" => {
            let key = query(&request, "k").unwrap_or_default();
            text(json!(session.get::<String>(&key).await?))
        }
        "/sessions" => text(serde_json::to_value(session.sessions().await?).unwrap()),
        "/revoke" => text(json!(
            session
                .revoke(&query(&request, "h").unwrap_or_default())
                .await?
        )),
        "/revoke-others" => text(json!(session.revoke_others().await?)),
        "/revoke-all" => text(json!(session.revoke_all().await?)),
        _ => {
            let mut response = text(json!("not found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    };
    Ok(response)
}

struct Answer {
    status: StatusCode,
    body: Value,
    set_cookie: Option<String>,
    headers: http::HeaderMap,
}

impl Answer {
    /// The secret of the Set-Cookie, if it sets (not clears) the session cookie.
    fn cookie(&self) -> Option<String> {
        let value = self.set_cookie.as_ref()?;
        let secret = value.strip_prefix("__Host-session=")?.split(';').next()?;
        (!secret.is_empty()).then(|| format!("__Host-session={secret}"))
    }

    fn clears(&self) -> bool {
        self.set_cookie
            .as_deref()
            .is_some_and(|c| c.starts_with("__Host-session=;") && c.contains("Max-Age=0"))
    }
}

impl Harness {
    async fn send(&self, request: Request<Body>) -> Answer {
        let gate = self.gate.clone();
        let runs = self.handler_runs.clone();
        let service = ServiceBuilder::new().layer(self.layer.clone()).service_fn(
            move |request: Request<Body>| {
                runs.fetch_add(1, Ordering::SeqCst);
                let gate = gate.clone();
                async move {
                    Ok::<_, Infallible>(match handle(request, gate).await {
                        Ok(response) => response,
                        Err(error) => portcullis_core::AuthRejection::from(error).to_response(),
                    })
                }
            },
        );
        let response = service.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let set_cookie = headers
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_owned());
        assert!(
            headers.get_all(header::SET_COOKIE).iter().count() <= 1,
            "one Set-Cookie at most"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            set_cookie,
            headers,
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.send(request("GET", path, cookie, &[])).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>) -> Answer {
        self.send(request("POST", path, cookie, &[])).await
    }

    async fn login(&self, user: &str) -> String {
        let answer = self.post(&format!("/login?user={user}"), None).await;
        assert_eq!(answer.status, StatusCode::OK);
        answer.cookie().expect("login sets a cookie")
    }
}

fn request(
    method: &str,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "app.test");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_route_that_never_asks_costs_no_store_io_and_no_cookie() {
    let h = harness(|c| c);
    let cookie = h.login("alice").await;
    let before = (
        h.probe.loads.load(Ordering::SeqCst),
        h.probe.writes.load(Ordering::SeqCst),
    );
    let answer = h.get("/public", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.set_cookie, None);
    assert_eq!(
        (
            h.probe.loads.load(Ordering::SeqCst),
            h.probe.writes.load(Ordering::SeqCst)
        ),
        before
    );
}

#[tokio::test]
async fn visitors_who_only_read_get_no_cookie_and_no_record() {
    let h = harness(|c| c);
    for path in ["/get?k=x", "/me", "/public"] {
        let answer = h.get(path, None).await;
        assert_eq!(answer.set_cookie, None, "{path}");
    }
    assert_eq!(h.get("/me", None).await.status, StatusCode::UNAUTHORIZED);
    assert!(h.layer.store().inner.is_empty());
    assert_eq!(
        h.probe.loads.load(Ordering::SeqCst),
        0,
        "no cookie, nothing to load"
    );
}

#[tokio::test]
async fn the_first_write_starts_a_session_with_a_strict_cookie() {
    let h = harness(|c| c);
    let answer = h.post("/set?k=color&v=blue", None).await;
    let set_cookie = answer.set_cookie.clone().unwrap();
    let secret = set_cookie
        .strip_prefix("__Host-session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap();
    assert_eq!(secret.len(), 43);
    assert_eq!(
        &set_cookie[15 + 43..],
        "; HttpOnly; SameSite=Lax; Secure; Path=/"
    );
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    let cookie = answer.cookie().unwrap();
    let answer = h.get("/get?k=color", Some(&cookie)).await;
    assert_eq!(answer.body, json!("blue"));
    assert_eq!(
        answer.set_cookie, None,
        "reading an existing session sets nothing"
    );
    // The record is keyed by the hash of the secret, never the secret.
    let key = portcullis_core::SecretToken::parse(secret)
        .unwrap()
        .store_key();
    assert!(h.layer.store().inner.load(&key).await.unwrap().is_some());
}

#[tokio::test]
async fn login_rotates_the_id_and_the_old_one_dies_at_once() {
    let h = harness(|c| c);
    let anonymous = h
        .post("/set?k=cart&v=3-items", None)
        .await
        .cookie()
        .unwrap();
    let answer = h.post("/login?user=alice", Some(&anonymous)).await;
    let signed_in = answer.cookie().unwrap();
    assert_ne!(
        signed_in, anonymous,
        "session fixation: login must issue a new ID"
    );
    assert_eq!(
        h.get("/me", Some(&signed_in)).await.body,
        json!({"user": "alice"})
    );
    assert_eq!(
        h.get("/get?k=cart", Some(&signed_in)).await.body,
        json!("3-items"),
        "anonymous data carries over"
    );
    let replay = h.get("/me", Some(&anonymous)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(replay.clears(), "the stale cookie is cleared");
}

#[tokio::test]
async fn login_as_someone_else_does_not_inherit_their_data() {
    let h = harness(|c| c);
    let alice = h.login("alice").await;
    h.post("/set?k=secret&v=alice-only", Some(&alice)).await;
    let bob = h
        .post("/login?user=bob", Some(&alice))
        .await
        .cookie()
        .unwrap();
    assert_eq!(h.get("/get?k=secret", Some(&bob)).await.body, Value::Null);
    assert_eq!(
        h.get("/me", Some(&alice)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn logout_destroys_the_server_side_state_and_clears_the_cookie() {
    let h = harness(|c| c);
    let cookie = h.login("alice").await;
    let answer = h.post("/logout", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.set_cookie.as_deref(),
        Some(
            "__Host-session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        )
    );
    assert!(h.layer.store().inner.is_empty(), "the record is gone");
    let replay = h.get("/me", Some(&cookie)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cycle_id_keeps_the_content_under_a_new_id() {
    let h = harness(|c| c);
    let old = h.login("alice").await;
    h.post("/set?k=theme&v=dark", Some(&old)).await;
    let new = h.post("/cycle", Some(&old)).await.cookie().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        h.get("/me", Some(&old)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.get("/me", Some(&new)).await.body,
        json!({"user": "alice"})
    );
    assert_eq!(h.get("/get?k=theme", Some(&new)).await.body, json!("dark"));
}

#[tokio::test]
async fn bad_cookies_are_anonymous_and_cleared_never_an_error() {
    let h = harness(|c| c);
    let good = h.login("alice").await;
    let secret = good.strip_prefix("__Host-session=").unwrap().to_owned();
    let unknown = portcullis_core::SecretToken::generate();
    let oversized = "A".repeat(8 * 1024);
    // One well-formed cookie value that is not a live session: stale, so it is cleared.
    let cleared = [
        ("short", "__Host-session=abc".to_owned()),
        ("one char too long", format!("__Host-session={secret}A")),
        ("padding", format!("__Host-session={}=", &secret[..42])),
        (
            "standard base64",
            format!("__Host-session={}+", &secret[..42]),
        ),
        ("oversized", format!("__Host-session={oversized}")),
        ("forged", format!("__Host-session={}", unknown.expose())),
    ];
    for (name, cookie) in cleared {
        let answer = h.get("/me", Some(&cookie)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");
        assert!(answer.clears(), "{name}: {:?}", answer.set_cookie);
    }
    // Values a cookie cannot hold are skipped, and several different values are ambiguous
    // (cookie tossing): anonymous, and never a clearing Set-Cookie, which would delete the
    // victim's real cookie (RFC 6265bis §8.5).
    let untouched = [
        ("empty", "__Host-session=".to_owned()),
        ("not ascii", format!("__Host-session={}é", &secret[..41])),
        (
            "two values",
            format!(
                "__Host-session={secret}; __Host-session={}",
                unknown.expose()
            ),
        ),
        ("sql", "__Host-session=' OR 1=1 --".to_owned()),
    ];
    for (name, cookie) in untouched {
        let answer = h.get("/me", Some(&cookie)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(answer.set_cookie, None, "{name}");
    }
    // A non-ASCII cookie tossed next to the real one is skipped: the victim stays signed in.
    let tossed = format!("__Host-session=caf\u{e9}; {good}");
    let answer = h.get("/me", Some(&tossed)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.set_cookie, None);
    // The real session survived all of that.
    assert_eq!(h.get("/me", Some(&good)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn idle_timeout_rolls_with_activity_and_expires_without_it() {
    let h = harness(|c| {
        c.idle_timeout(Duration::from_secs(60))
            .absolute_timeout(Duration::from_secs(3600))
    });
    let cookie = h.login("alice").await;
    for _ in 0..5 {
        h.clock.advance(Duration::from_secs(50));
        let answer = h.get("/me", Some(&cookie)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "activity keeps the session alive"
        );
        assert_eq!(
            answer.set_cookie, None,
            "a browser-session cookie is not re-sent"
        );
    }
    h.clock.advance(Duration::from_secs(61));
    let answer = h.get("/me", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.clears());
}

#[tokio::test]
async fn absolute_timeout_ends_even_an_active_session() {
    let h = harness(|c| {
        c.idle_timeout(Duration::from_secs(60))
            .absolute_timeout(Duration::from_secs(200))
    });
    let cookie = h.login("alice").await;
    for _ in 0..3 {
        h.clock.advance(Duration::from_secs(50));
        assert_eq!(h.get("/me", Some(&cookie)).await.status, StatusCode::OK);
    }
    h.clock.advance(Duration::from_secs(50));
    let answer = h.get("/me", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "200 s after login");
    assert!(answer.clears());
}

#[tokio::test]
async fn reads_touch_the_store_only_once_per_interval() {
    let h = harness(|c| {
        c.idle_timeout(Duration::from_secs(600))
            .touch_interval(Duration::from_secs(60))
    });
    let cookie = h.login("alice").await;
    for _ in 0..10 {
        h.clock.advance(Duration::from_secs(5));
        assert_eq!(h.get("/me", Some(&cookie)).await.status, StatusCode::OK);
    }
    assert_eq!(
        h.probe.touches.load(Ordering::SeqCst),
        0,
        "50 s of activity, 60 s interval"
    );
    h.clock.advance(Duration::from_secs(15));
    h.get("/me", Some(&cookie)).await;
    assert_eq!(h.probe.touches.load(Ordering::SeqCst), 1);
    h.get("/me", Some(&cookie)).await;
    assert_eq!(h.probe.touches.load(Ordering::SeqCst), 1);
    assert_eq!(
        h.probe.loads.load(Ordering::SeqCst),
        12,
        "one load per request that asked"
    );
}

#[tokio::test]
async fn remember_me_gets_a_persistent_cookie() {
    let day = Duration::from_secs(24 * 3600);
    let h = harness(|c| c.remember_me_timeouts(day, 10 * day));
    let answer = h.post("/login?user=alice&remember=1", None).await;
    let set_cookie = answer.set_cookie.unwrap();
    assert!(set_cookie.ends_with("; Max-Age=864000"), "{set_cookie}");
    let answer = h.post("/login?user=alice", None).await;
    assert!(!answer.set_cookie.unwrap().contains("Max-Age"));
}

#[tokio::test]
async fn cross_site_unsafe_requests_with_the_cookie_are_refused() {
    let h = harness(|c| c);
    let cookie = h.login("alice").await;
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], bool, StatusCode);
    let cases: &[Case<'_>] = &[
        (
            "POST",
            "/set?k=a&v=1",
            &[("sec-fetch-site", "cross-site")],
            true,
            StatusCode::FORBIDDEN,
        ),
        (
            "DELETE",
            "/logout",
            &[("origin", "https://evil.test")],
            true,
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/logout",
            &[("sec-fetch-site", "same-site")],
            true,
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/set?k=a&v=1",
            &[("sec-fetch-site", "same-origin")],
            true,
            StatusCode::OK,
        ),
        (
            "POST",
            "/set?k=a&v=1",
            &[("origin", "http://app.test")],
            true,
            StatusCode::OK,
        ),
        ("POST", "/set?k=a&v=1", &[], true, StatusCode::OK),
        (
            "GET",
            "/me",
            &[("sec-fetch-site", "cross-site")],
            true,
            StatusCode::OK,
        ),
        // Without a cookie nothing is authenticated, but logging in from elsewhere is login CSRF.
        (
            "POST",
            "/login",
            &[("sec-fetch-site", "cross-site")],
            false,
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/login",
            &[("sec-fetch-site", "same-origin")],
            false,
            StatusCode::OK,
        ),
        (
            "POST",
            "/public",
            &[("sec-fetch-site", "cross-site")],
            false,
            StatusCode::OK,
        ),
    ];
    for (method, path, headers, with_cookie, expected) in cases {
        let runs = h.handler_runs.load(Ordering::SeqCst);
        let answer = h
            .send(request(
                method,
                path,
                with_cookie.then_some(cookie.as_str()),
                headers,
            ))
            .await;
        assert_eq!(answer.status, *expected, "{method} {path} {headers:?}");
        if *expected == StatusCode::FORBIDDEN {
            assert_eq!(answer.body["error"], "cross_site_request");
            if *with_cookie {
                assert_eq!(
                    h.handler_runs.load(Ordering::SeqCst),
                    runs,
                    "the handler never ran"
                );
            }
        }
    }
    assert_eq!(
        h.get("/me", Some(&cookie)).await.status,
        StatusCode::OK,
        "refusals did not log out"
    );
}

#[tokio::test]
async fn store_outages_fail_closed_with_503() {
    let h = harness(|c| c);
    let cookie = h.login("alice").await;
    h.probe.fail_loads.store(true, Ordering::SeqCst);
    let answer = h.get("/me", Some(&cookie)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers[header::RETRY_AFTER], "2");
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        answer.set_cookie, None,
        "an outage is no reason to drop the cookie"
    );
    assert_eq!(
        h.get("/get?k=a", Some(&cookie)).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.probe.fail_loads.store(false, Ordering::SeqCst);
    h.probe.fail_writes.store(true, Ordering::SeqCst);
    let answer = h.post("/set?k=a&v=1", Some(&cookie)).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a write that could not be saved is not a 200"
    );
    assert_eq!(
        h.post("/login?user=bob", None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    h.probe.fail_writes.store(false, Ordering::SeqCst);
    assert_eq!(h.get("/me", Some(&cookie)).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_lost_save_race_reapplies_this_requests_changes() {
    let h = Arc::new(harness(|c| c));
    let cookie = h.login("alice").await;
    let slow = {
        let (h, cookie) = (h.clone(), cookie.clone());
        tokio::spawn(async move { h.post("/set-after-gate?k=slow", Some(&cookie)).await.status })
    };
    // Let the slow request load the record before the fast one saves.
    while h.probe.loads.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        h.post("/set?k=fast&v=early", Some(&cookie)).await.status,
        StatusCode::OK
    );
    h.gate.notify_one();
    assert_eq!(slow.await.unwrap(), StatusCode::OK);
    assert!(
        h.probe.conflicts.load(Ordering::SeqCst) >= 1,
        "the race really happened"
    );
    assert_eq!(
        h.get("/get?k=fast", Some(&cookie)).await.body,
        json!("early")
    );
    assert_eq!(
        h.get("/get?k=slow", Some(&cookie)).await.body,
        json!("late")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writers_to_one_session_lose_nothing() {
    let h = Arc::new(harness(|c| c));
    let cookie = h.login("alice").await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (h, cookie) = (h.clone(), cookie.clone());
            tokio::spawn(async move {
                h.post(&format!("/set?k=key{i}&v={i}"), Some(&cookie))
                    .await
                    .status
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::OK);
    }
    for i in 0..32 {
        assert_eq!(
            h.get(&format!("/get?k=key{i}"), Some(&cookie)).await.body,
            json!(i.to_string())
        );
    }
}

#[tokio::test]
async fn a_write_to_a_session_revoked_meanwhile_is_refused_not_resurrected() {
    let h = Arc::new(harness(|c| c));
    let cookie = h.login("alice").await;
    let slow = {
        let (h, cookie) = (h.clone(), cookie.clone());
        tokio::spawn(async move { h.post("/set-after-gate?k=slow", Some(&cookie)).await })
    };
    while h.probe.loads.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    h.post("/logout", Some(&cookie)).await;
    h.gate.notify_one();
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.clears());
    assert!(h.layer.store().inner.is_empty());
}

#[tokio::test]
async fn per_user_limit_evicts_the_oldest_or_refuses() {
    let evict = harness(|c| {
        c.max_sessions_per_user(SessionLimit {
            max: 2,
            policy: LimitPolicy::EvictOldest,
        })
    });
    let first = evict.login("alice").await;
    evict.clock.advance(Duration::from_secs(1));
    let second = evict.login("alice").await;
    evict.clock.advance(Duration::from_secs(1));
    let third = evict.login("alice").await;
    assert_eq!(
        evict.get("/me", Some(&first)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(evict.get("/me", Some(&second)).await.status, StatusCode::OK);
    assert_eq!(evict.get("/me", Some(&third)).await.status, StatusCode::OK);
    evict.login("bob").await;

    let refuse = harness(|c| {
        c.max_sessions_per_user(SessionLimit {
            max: 1,
            policy: LimitPolicy::RefuseNew,
        })
    });
    let only = refuse.login("alice").await;
    let answer = refuse.post("/login?user=alice", None).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.cookie(), None);
    assert_eq!(refuse.get("/me", Some(&only)).await.status, StatusCode::OK);
    // Signing in again from the same browser replaces its own session, so it is allowed.
    assert_eq!(
        refuse.post("/login?user=alice", Some(&only)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn list_revoke_one_and_revoke_all() {
    let h = harness(|c| c);
    let laptop = h
        .send(request(
            "POST",
            "/login?user=alice",
            None,
            &[("user-agent", "Laptop/1.0")],
        ))
        .await
        .cookie()
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    let phone = h
        .send(request(
            "POST",
            "/login?user=alice",
            None,
            &[("user-agent", "Phone/2.0")],
        ))
        .await
        .cookie()
        .unwrap();
    let bob = h.login("bob").await;
    let list = h.get("/sessions", Some(&laptop)).await.body;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["user_agent"], "Laptop/1.0");
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["user_agent"], "Phone/2.0");
    assert_eq!(list[1]["current"], false);
    let phone_handle = list[1]["handle"].as_str().unwrap().to_owned();
    assert!(
        !phone.contains(&phone_handle),
        "the handle is not the secret"
    );

    // Bob cannot revoke Alice's session by its handle.
    assert_eq!(
        h.post(&format!("/revoke?h={phone_handle}"), Some(&bob))
            .await
            .body,
        json!(false)
    );
    assert_eq!(h.get("/me", Some(&phone)).await.status, StatusCode::OK);
    assert_eq!(
        h.post(&format!("/revoke?h={phone_handle}"), Some(&laptop))
            .await
            .body,
        json!(true)
    );
    assert_eq!(
        h.get("/me", Some(&phone)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(h.get("/me", Some(&laptop)).await.status, StatusCode::OK);

    let phone = h.login("alice").await;
    assert_eq!(h.post("/revoke-others", Some(&laptop)).await.body, json!(1));
    assert_eq!(
        h.get("/me", Some(&phone)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let phone = h.login("alice").await;
    let answer = h.post("/revoke-all", Some(&laptop)).await;
    assert_eq!(answer.body, json!(2));
    assert!(answer.clears());
    for cookie in [&laptop, &phone] {
        assert_eq!(
            h.get("/me", Some(cookie)).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        h.get("/me", Some(&bob)).await.status,
        StatusCode::OK,
        "other users are untouched"
    );
    assert_eq!(
        h.get("/sessions", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn identity_and_session_share_one_load() {
    let h = harness(|c| c);
    let cookie = h.login("alice").await;
    let layer = h.layer.clone();
    let service =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|mut request: Request<Body>| async move {
                let session = Session::from_extensions(request.extensions()).unwrap();
                let user = resolve_user::<Value>(request.extensions_mut())
                    .await
                    .unwrap();
                let again: Option<Value> = session.user().await.unwrap();
                assert_eq!(user, again);
                let _: Option<String> = session.get("x").await.unwrap();
                Ok::<_, Infallible>(Response::new(Body::empty()))
            });
    let loads = h.probe.loads.load(Ordering::SeqCst);
    service
        .oneshot(request("GET", "/", Some(&cookie), &[]))
        .await
        .unwrap();
    assert_eq!(h.probe.loads.load(Ordering::SeqCst), loads + 1);
}

#[tokio::test]
async fn secrets_never_reach_debug_output() {
    let h = harness(|c| c);
    let cookie = h.login("alice").await;
    let secret = cookie.strip_prefix("__Host-session=").unwrap().to_owned();
    let service = ServiceBuilder::new().layer(h.layer.clone()).service_fn(
        |request: Request<Body>| async move {
            let session = Session::from_extensions(request.extensions()).unwrap();
            let _: Option<String> = session.get("x").await.unwrap();
            Ok::<_, Infallible>(Response::new(Body::from(format!(
                "{session:?} {:?}",
                request.extensions()
            ))))
        },
    );
    let response = service
        .oneshot(request("GET", "/", Some(&cookie), &[]))
        .await
        .unwrap();
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("REDACTED"), "{text}");
    assert!(!text.contains(&secret));
    assert!(!format!("{:?}", h.layer).contains(&secret));
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    type Inner = tower::util::BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;
    assert_send::<SessionLayer>();
    assert_sync::<SessionLayer>();
    assert_send::<crate::SessionService<Inner>>();
    assert_sync::<crate::SessionService<Inner>>();
    assert_send::<
        crate::ResponseFuture<std::future::Ready<Result<Response<Body>, Infallible>>, Body>,
    >();
    assert_send::<Session>();
    assert_sync::<Session>();
    assert_send::<MemoryStore>();
    assert_sync::<MemoryStore>();
    assert_send::<crate::SessionError>();
    assert_sync::<crate::SessionError>();
}

#[test]
fn a_cookie_over_the_browser_limit_is_refused_when_the_layer_is_built() {
    let huge_path = format!("/{}", "p".repeat(4096));
    let config = SessionConfig::default()
        .cookie_name("__Secure-session")
        .cookie_path(huge_path);
    match SessionLayer::new(MemoryStore::new(), config) {
        Err(crate::ConfigError::CookieTooLarge(bytes)) => assert!(bytes > 4096, "{bytes}"),
        other => panic!("expected CookieTooLarge, got {:?}", other.err()),
    }
    let fits = SessionConfig::default()
        .cookie_name("__Secure-session")
        .cookie_path(format!("/{}", "p".repeat(3000)));
    assert!(SessionLayer::new(MemoryStore::new(), fits).is_ok());
}
