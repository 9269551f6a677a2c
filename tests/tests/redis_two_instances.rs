//! Two instances of the example apps sharing one Redis, each on its own TCP port with its own
//! Redis connection, as two processes behind a load balancer would be: a login on one is valid
//! on the other, a logout on one is refused by the other (the propagation delay is measured
//! and printed), and restarting an instance keeps users signed in. For hybrid-app, also what a
//! Redis outage does: the edge keeps accepting valid access tokens, login and refresh answer
//! 503.

use std::{
    net::SocketAddr,
    sync::OnceLock,
    time::{Duration, Instant},
};

use portcullis_redis::{RedisConfig, RedisConnection, RedisSessionStore};
use portcullis_session::SessionLayer;
use portcullis_tests::redis_server::{RedisServer, shared_url, unique_prefix};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

/// One running app instance; dropping it stops the server (a crash or a restart).
struct Instance {
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Instance {
    async fn serve(router: axum::Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, server }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn redis(url: &str, prefix: &str) -> RedisConnection {
    RedisConfig::from_urls(url)
        .key_prefix(prefix)
        .command_timeout(Duration::from_millis(500))
        .connection_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn credentials(user: &str) -> Value {
    json!({"username": user, "password": format!("{user}-password-1")})
}

/// Median and 99th percentile.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
        samples[index.min(samples.len() - 1)]
    };
    (at(0.5), at(0.99))
}

// ---------------------------------------------------------------------------------------------
// session-app

fn session_users() -> session_app::DemoUsers {
    static USERS: OnceLock<session_app::DemoUsers> = OnceLock::new();
    USERS.get_or_init(session_app::DemoUsers::new).clone()
}

/// session-app as its `main` builds it with `REDIS_URL` set.
async fn session_app(url: &str, prefix: &str) -> Instance {
    let settings = session_app::Settings::from_lookup(|_| None).unwrap();
    let store = RedisSessionStore::new(redis(url, prefix));
    let layer = SessionLayer::new(store, settings.session_config()).unwrap();
    Instance::serve(session_app::app(layer, session_users())).await
}

async fn session_login(client: &Client, instance: &Instance, user: &str) -> String {
    let response = client
        .post(instance.url("/login"))
        .json(&credentials(user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set_cookie.starts_with("__Host-session="), "{set_cookie}");
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn session_me(client: &Client, instance: &Instance, cookie: &str) -> StatusCode {
    client
        .get(instance.url("/me"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_app_instances_share_logins_and_logouts() {
    let url = shared_url();
    let prefix = unique_prefix("two-session");
    let (a, b) = (
        session_app(&url, &prefix).await,
        session_app(&url, &prefix).await,
    );
    let client = client();

    let cookie = session_login(&client, &a, "alice").await;
    assert_eq!(session_me(&client, &b, &cookie).await, StatusCode::OK);
    let body: Value = client
        .get(b.url("/me"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body, json!({"user": "alice", "role": "advertiser"}));

    // Logout on A, refused by B: measure from A's answer to B's first refusal.
    let mut delays = Vec::new();
    for _ in 0..30 {
        let cookie = session_login(&client, &a, "alice").await;
        assert_eq!(session_me(&client, &b, &cookie).await, StatusCode::OK);
        let logout = client
            .post(a.url("/logout"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert!(logout.status().is_success(), "{}", logout.status());
        let logged_out = Instant::now();
        assert_eq!(
            session_me(&client, &b, &cookie).await,
            StatusCode::UNAUTHORIZED,
            "the very first request on the other instance is refused"
        );
        delays.push(logged_out.elapsed());
    }
    let (p50, p99) = percentiles(delays);
    eprintln!(
        "session-app logout on A -> refused on B: p50 {p50:?}, p99 {p99:?} (one request; no propagation step, every request reads Redis)"
    );

    // Log out everywhere from B ends the sessions A serves.
    let (one, two) = (
        session_login(&client, &a, "admin").await,
        session_login(&client, &a, "admin").await,
    );
    let revoked = client
        .post(b.url("/logout-all"))
        .header(header::COOKIE, &one)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        session_me(&client, &a, &two).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_session_app_instance_keeps_users_signed_in() {
    let url = shared_url();
    let prefix = unique_prefix("restart-session");
    let client = client();
    let a = session_app(&url, &prefix).await;
    let cookie = session_login(&client, &a, "alice").await;
    drop(a);
    // A new process: new connection, nothing in memory.
    let a = session_app(&url, &prefix).await;
    assert_eq!(session_me(&client, &a, &cookie).await, StatusCode::OK);
    let sessions: Value = client
        .get(a.url("/sessions"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
}

/// session-app with the Redis near-cache on (issue 15), and its store, to read the cache's
/// statistics.
async fn session_app_near(url: &str, prefix: &str) -> (Instance, RedisSessionStore) {
    let settings = session_app::Settings::from_lookup(|_| None).unwrap();
    let store = RedisSessionStore::new(redis(url, prefix)).near_cache(
        portcullis_redis::NearCacheConfig::new().heartbeat_interval(Duration::from_millis(250)),
    );
    let layer = SessionLayer::new(store.clone(), settings.session_config()).unwrap();
    let instance = Instance::serve(session_app::app(layer, session_users())).await;
    (instance, store)
}

/// Polls `GET /me` on `instance` until it is refused; how long that took (at most 1 s).
async fn session_refused_within(client: &Client, instance: &Instance, cookie: &str) -> Duration {
    let started = Instant::now();
    while session_me(client, instance, cookie).await != StatusCode::UNAUTHORIZED {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the other instance kept serving an ended session from its near-cache"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_app_instances_with_near_caches_refuse_ended_sessions() {
    let url = shared_url();
    let prefix = unique_prefix("two-near");
    let ((a, _), (b, b_store)) = (
        session_app_near(&url, &prefix).await,
        session_app_near(&url, &prefix).await,
    );
    let client = client();

    // Logout on A, with B holding the session in its near-cache.
    let mut delays = Vec::new();
    let mut first_refused = 0;
    for _ in 0..20 {
        let cookie = session_login(&client, &a, "alice").await;
        for _ in 0..3 {
            assert_eq!(session_me(&client, &b, &cookie).await, StatusCode::OK);
        }
        let logout = client
            .post(a.url("/logout"))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap();
        assert!(logout.status().is_success(), "{}", logout.status());
        let logged_out = Instant::now();
        if session_me(&client, &b, &cookie).await == StatusCode::UNAUTHORIZED {
            first_refused += 1;
        } else {
            session_refused_within(&client, &b, &cookie).await;
        }
        delays.push(logged_out.elapsed());
    }
    let (p50, p99) = percentiles(delays);
    eprintln!(
        "session-app with near-caches, logout on A -> refused on B: p50 {p50:?}, p99 {p99:?}; refused by the very next request {first_refused}/20"
    );
    let stats = b_store.near_cache_stats().unwrap();
    assert!(stats.hits >= 20, "B served from its near-cache: {stats:?}");

    // Revoke one device from A; B had it cached.
    let (mine, other) = (
        session_login(&client, &a, "admin").await,
        session_login(&client, &a, "admin").await,
    );
    for cookie in [&mine, &other, &other] {
        assert_eq!(session_me(&client, &b, cookie).await, StatusCode::OK);
    }
    let sessions: Value = client
        .get(a.url("/sessions"))
        .header(header::COOKIE, &mine)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let handle = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|session| session["current"] == json!(false))
        .and_then(|session| session["handle"].as_str())
        .unwrap()
        .to_owned();
    let revoked = client
        .delete(a.url(&format!("/sessions/{handle}")))
        .header(header::COOKIE, &mine)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success(), "{}", revoked.status());
    session_refused_within(&client, &b, &other).await;
    assert_eq!(session_me(&client, &b, &mine).await, StatusCode::OK);

    // Log out everywhere from B: A's cached copy of the other session ends too.
    let third = session_login(&client, &b, "admin").await;
    for _ in 0..2 {
        assert_eq!(session_me(&client, &a, &third).await, StatusCode::OK);
    }
    let all = client
        .post(b.url("/logout-all"))
        .header(header::COOKIE, &mine)
        .send()
        .await
        .unwrap();
    assert_eq!(all.status(), StatusCode::OK);
    session_refused_within(&client, &a, &third).await;
}

// ---------------------------------------------------------------------------------------------
// hybrid-app

const SHARED_SECRET: &str = "two-instances-share-this-hmac-secret-0123456789";

/// hybrid-app as its `main` builds it with `REDIS_URL` and `REDIS_KEY_PREFIX` set, all
/// instances signing with one shared key.
async fn hybrid_app(url: &str, prefix: &str) -> Instance {
    let settings = hybrid_app::Settings::from_lookup(|name| match name {
        "REDIS_URL" => Some(url.to_owned()),
        "REDIS_KEY_PREFIX" => Some(prefix.to_owned()),
        "JWT_HS256_SECRET" => Some(SHARED_SECRET.to_owned()),
        "JWT_LEEWAY_SECS" => Some("0".to_owned()),
        _ => None,
    })
    .unwrap();
    assert!(settings.redis.is_some());
    let state = hybrid_app::AppState::from_settings(&settings)
        .await
        .unwrap();
    Instance::serve(hybrid_app::app(state)).await
}

async fn hybrid_token(client: &Client, instance: &Instance, user: &str) -> (String, String) {
    let response = client
        .post(instance.url("/token"))
        .json(&credentials(user))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn hybrid_me(client: &Client, instance: &Instance, access: &str) -> StatusCode {
    client
        .get(instance.url("/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

async fn hybrid_refresh(client: &Client, instance: &Instance, refresh: &str) -> reqwest::Response {
    client
        .post(instance.url("/refresh"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_app_instances_share_sessions_and_revocations() {
    let url = shared_url();
    let prefix = unique_prefix("two-hybrid");
    let (a, b) = (
        hybrid_app(&url, &prefix).await,
        hybrid_app(&url, &prefix).await,
    );
    let client = client();

    let (access, refresh) = hybrid_token(&client, &a, "alice").await;
    assert_eq!(hybrid_me(&client, &b, &access).await, StatusCode::OK);
    // The refresh session lives in Redis: B rotates what A issued.
    let rotated = hybrid_refresh(&client, &b, &refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let rotated: Value = rotated.json().await.unwrap();
    let access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(hybrid_me(&client, &a, &access).await, StatusCode::OK);

    // Logout on A; B refuses the (unexpired, signature-valid) access token once the
    // revocation arrives by pub/sub. Measure the delay from A's answer.
    let mut delays = Vec::new();
    for _ in 0..40 {
        let (access, _) = hybrid_token(&client, &a, "alice").await;
        assert_eq!(hybrid_me(&client, &b, &access).await, StatusCode::OK);
        let logout = client
            .post(a.url("/logout"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status(), StatusCode::NO_CONTENT);
        let logged_out = Instant::now();
        loop {
            if hybrid_me(&client, &b, &access).await == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(
                logged_out.elapsed() < Duration::from_secs(5),
                "B never refused a token revoked on A"
            );
        }
        delays.push(logged_out.elapsed());
        // A itself refuses at once.
        assert_eq!(
            hybrid_me(&client, &a, &access).await,
            StatusCode::UNAUTHORIZED
        );
    }
    let (p50, p99) = percentiles(delays);
    eprintln!(
        "hybrid-app logout on A -> access token refused on B: p50 {p50:?}, p99 {p99:?} (Redis pub/sub; includes one HTTP round trip to B)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_hybrid_app_instance_keeps_sessions_and_revocations() {
    let url = shared_url();
    let prefix = unique_prefix("restart-hybrid");
    let client = client();
    let a = hybrid_app(&url, &prefix).await;
    let (access, refresh) = hybrid_token(&client, &a, "alice").await;
    let (revoked, _) = hybrid_token(&client, &a, "admin").await;
    let logout = client
        .post(a.url("/logout"))
        .bearer_auth(&revoked)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    drop(a);

    let a = hybrid_app(&url, &prefix).await;
    assert_eq!(hybrid_me(&client, &a, &access).await, StatusCode::OK);
    assert_eq!(
        hybrid_refresh(&client, &a, &refresh).await.status(),
        StatusCode::OK,
        "the refresh session survived the restart"
    );
    // The new instance caught up on the revocation published before it started.
    assert_eq!(
        hybrid_me(&client, &a, &revoked).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_a_redis_outage_the_hybrid_edge_serves_while_login_and_refresh_answer_503() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("outage-hybrid");
    let client = client();
    let a = hybrid_app(&server.url(), &prefix).await;
    let (access, refresh) = hybrid_token(&client, &a, "alice").await;

    server.kill();
    // The trade-off, documented in portcullis-redis: signature-valid, unexpired access tokens
    // keep working at the edge; anything that needs the store fails closed with 503.
    assert_eq!(hybrid_me(&client, &a, &access).await, StatusCode::OK);
    let started = Instant::now();
    let refreshed = hybrid_refresh(&client, &a, &refresh).await;
    assert_eq!(refreshed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refreshed.headers().contains_key(header::RETRY_AFTER));
    assert!(started.elapsed() < Duration::from_secs(3));
    let login = client
        .post(a.url("/token"))
        .json(&credentials("alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);

    // Redis back (empty: no persistence here): the same instance logs users in again.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = client
            .post(a.url("/token"))
            .json(&credentials("alice"))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
