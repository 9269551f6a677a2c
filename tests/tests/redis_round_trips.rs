//! What a request costs in Redis commands, counted on a private `redis-server` with
//! `INFO commandstats` and `MONITOR`, and what it costs in time against the in-memory store.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    routing::{get, post},
};
use http::{Request, StatusCode, header};
use portcullis::{
    CurrentUser,
    session::{MemoryStore, Session, SessionConfig, SessionLayer, SessionRecord, SessionStore},
};
use portcullis_core::{Clock, ManualClock, SecretToken, SystemClock, UserJson};
use portcullis_hybrid::RefreshStore;
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisSessionStore};
use portcullis_tests::{
    conformance::refresh_store,
    redis_server::{RedisServer, command_calls, unique_prefix},
};
use serde_json::json;
use tower::ServiceExt;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    user: String,
    role: String,
}

fn session_record(user: &str) -> SessionRecord {
    let now = SystemClock.unix_seconds();
    SessionRecord {
        handle: portcullis_core::random_handle(),
        user_id: Some(user.to_owned()),
        user: Some(UserJson::new(&json!({"user": user, "role": "advertiser"})).unwrap()),
        data: serde_json::Map::new(),
        created_at: now,
        authenticated_at: Some(now),
        last_seen_at: now,
        expires_at: now + 600,
        absolute_expires_at: now + 3_600,
        user_agent: None,
        persistent: false,
        version: 0,
    }
}

fn app<S: SessionStore>(store: S) -> Router {
    Router::new()
        .route(
            "/login",
            post(|session: Session| async move {
                let user = User {
                    user: "alice".into(),
                    role: "advertiser".into(),
                };
                session.login("alice", &user).await.unwrap();
                StatusCode::OK
            }),
        )
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .layer(SessionLayer::new(store, SessionConfig::default()).unwrap())
}

async fn login(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn me(app: &Router, cookie: &str) {
    let response = app
        .clone()
        .oneshot(
            Request::get("/me")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

fn redis_store(server: &RedisServer) -> RedisSessionStore {
    let redis = RedisConfig::new(server.url())
        .key_prefix(unique_prefix("rtt"))
        .build()
        .unwrap();
    RedisSessionStore::new(redis)
}

/// Commands the stores sent, without the ones this test sent to inspect the server.
fn store_commands(server: &RedisServer) -> Vec<(String, u64)> {
    command_calls(server.port())
        .into_iter()
        .filter(|(name, _)| !name.starts_with("config") && name != "info")
        .collect()
}

#[tokio::test]
async fn a_read_only_authenticated_request_costs_one_redis_command_and_no_write() {
    const REQUESTS: u64 = 50;
    let server = RedisServer::start();
    let app = app(redis_store(&server));
    let cookie = login(&app).await;
    me(&app, &cookie).await;

    server.cli(&["CONFIG", "RESETSTAT"]);
    for _ in 0..REQUESTS {
        me(&app, &cookie).await;
    }
    let commands = store_commands(&server);
    assert_eq!(
        commands,
        [("hmget".to_owned(), REQUESTS)],
        "one HMGET per request, nothing else (no write, no script)"
    );
}

/// Records the commands clients send (not those scripts run) while it lives.
struct Monitor {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Monitor {
    fn start(server: &RedisServer) -> Self {
        let mut child = Command::new("redis-cli")
            .args(["-p", &server.port().to_string(), "MONITOR"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let monitor = Self { child, lines };
        // Wait for MONITOR's "OK", so nothing sent after this is missed.
        let deadline = Instant::now() + Duration::from_secs(5);
        while monitor.lines.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "MONITOR did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
        monitor
    }

    /// Client commands seen since the last call, after letting MONITOR catch up.
    async fn take(&self) -> Vec<String> {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let mut lines = self.lines.lock().unwrap();
        lines
            .drain(..)
            .filter(|line| line != "OK" && !line.contains(" lua] "))
            .filter_map(|line| {
                let command = line.split_once("] \"")?.1;
                Some(command.split('"').next()?.to_lowercase())
            })
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn round_trips_per_store_operation() {
    let server = RedisServer::start();
    let sessions = redis_store(&server);
    let refresh = RedisRefreshStore::new(
        RedisConfig::new(server.url())
            .key_prefix(unique_prefix("rtt"))
            .build()
            .unwrap(),
    );
    let clock = ManualClock::new();
    // Load every script once, so NOSCRIPT retries do not count.
    let warm = SecretToken::generate().store_key();
    let mut warm_record = session_record("warm");
    sessions.create(&warm, &warm_record, None).await.unwrap();
    warm_record.version = 1;
    sessions.save(&warm, &warm_record, 0).await.unwrap();
    sessions
        .touch(&warm, 1, warm_record.expires_at)
        .await
        .unwrap();
    sessions.delete_by_handle("warm", "none").await.unwrap();
    sessions.list_by_user("warm").await.unwrap();
    sessions.delete(&warm).await.unwrap();
    let warm = refresh_store::record(&clock, "warm", "warm", 0, 600);
    refresh.create(&warm, None).await.unwrap();
    let mut next = warm.clone();
    next.generation = 1;
    refresh.compare_and_swap(&next, 0).await.unwrap();
    refresh.delete("warm").await.unwrap();

    let monitor = Monitor::start(&server);
    let mut table = Vec::new();
    let key = SecretToken::generate().store_key();
    let mut record = session_record("alice");
    sessions.create(&key, &record, None).await.unwrap();
    table.push(("session create", monitor.take().await));
    sessions.load(&key).await.unwrap().unwrap();
    table.push(("session load", monitor.take().await));
    record.version = 1;
    record.data.insert("cart".into(), json!(3));
    sessions.save(&key, &record, 0).await.unwrap();
    table.push(("session save", monitor.take().await));
    let now = SystemClock.unix_seconds();
    sessions.touch(&key, now, now + 900).await.unwrap();
    table.push(("session touch", monitor.take().await));
    sessions.list_by_user("alice").await.unwrap();
    table.push(("session list_by_user (1 session)", monitor.take().await));
    sessions.delete(&key).await.unwrap();
    table.push(("session delete", monitor.take().await));
    let hybrid = refresh_store::record(&clock, "sid-rtt", "alice", 0, 600);
    refresh.create(&hybrid, None).await.unwrap();
    table.push(("refresh create", monitor.take().await));
    refresh.load("sid-rtt").await.unwrap().unwrap();
    table.push(("refresh load", monitor.take().await));
    let mut rotated = hybrid.clone();
    rotated.generation = 1;
    assert!(refresh.compare_and_swap(&rotated, 0).await.unwrap());
    table.push(("refresh compare_and_swap", monitor.take().await));
    refresh.delete("sid-rtt").await.unwrap();
    table.push(("refresh delete", monitor.take().await));

    for (operation, commands) in &table {
        eprintln!(
            "{operation:<34} {} round trip(s): {commands:?}",
            commands.len()
        );
    }
    let count = |name: &str| table.iter().find(|(op, _)| *op == name).unwrap().1.clone();
    assert_eq!(count("session load"), ["hmget"]);
    assert_eq!(count("refresh load"), ["hget"]);
    assert_eq!(count("session touch").len(), 3);
    assert_eq!(count("session save").len(), 2);
    assert_eq!(count("refresh compare_and_swap").len(), 2);
}

#[tokio::test]
async fn per_request_cost_against_the_memory_store() {
    const REQUESTS: u32 = 2_000;
    let server = RedisServer::start();
    let mut results = Vec::new();
    for (name, app) in [
        ("memory", app(MemoryStore::new())),
        ("redis", app(redis_store(&server))),
    ] {
        let cookie = login(&app).await;
        for _ in 0..100 {
            me(&app, &cookie).await;
        }
        let started = Instant::now();
        for _ in 0..REQUESTS {
            me(&app, &cookie).await;
        }
        let per_request = started.elapsed() / REQUESTS;
        let build = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        eprintln!(
            "GET /me through SessionLayer with the {name} store: {per_request:?} per request (sequential, {build} build)"
        );
        results.push(per_request);
    }
    // Not a performance assertion (CI machines vary): only that Redis costs more than
    // nothing and that both stores served every request.
    assert!(results[1] > Duration::ZERO);
}
