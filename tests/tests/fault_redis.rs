//! Faults under load: session-app on a loopback port with its sessions in a private Redis that
//! persists every write (`appendonly yes`, `appendfsync always`), while workers keep calling it.
//!
//! - Redis killed (SIGKILL) and restarted mid-run: no 500 and no hang, only 503 with
//!   `Retry-After` while Redis is down, every request served again within 2 s of Redis
//!   answering, and every session that existed, or whose login was answered 200, still valid
//!   afterwards.
//! - Redis paused (`CLIENT PAUSE`) and slow (`DEBUG SLEEP`): no request takes longer than the
//!   command timeout plus slack.
//!
//! Anonymous pages never touch the store and stay 200 throughout. Each test prints the count
//! of every status it saw. Bounded: a few seconds and a few thousand requests each, on 127.0.0.1
//! only.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use portcullis_redis::{RedisConfig, RedisSessionStore};
use portcullis_session::SessionLayer;
use portcullis_tests::redis_server::{redis_cli, unique_prefix};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The store's per-command timeout: the longest a request may wait on Redis.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
/// The longest any request may take: the command timeout, a retry of the connection, and slack
/// for a loaded CI machine. Anything longer is a hang.
const HANG: Duration = Duration::from_millis(2_000);
/// How soon after Redis answers again every request must be served.
const RECOVERY: Duration = Duration::from_secs(2);
/// Pause between two requests of one worker, to bound the request count.
const PACE: Duration = Duration::from_millis(5);

/// A private `redis-server` on a free loopback port that persists every write to its
/// append-only file, so a kill loses nothing it acknowledged. Killed when dropped.
struct DurableRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl DurableRedis {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(unique_prefix("fault-redis"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    /// SIGKILL: no shutdown, no final save.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server on the same port and directory (replaying the append-only file) and
    /// waits until it answers `PING`.
    fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--maxmemory-policy", "noeviction"])
            .args(["--enable-debug-command", "local"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server on the PATH (apt-get install redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for DurableRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn session_users() -> session_app::DemoUsers {
    static USERS: OnceLock<session_app::DemoUsers> = OnceLock::new();
    USERS.get_or_init(session_app::DemoUsers::new).clone()
}

/// session-app as its `main` builds it with `REDIS_URL` set, on a free loopback port.
async fn serve_session_app(redis_url: &str) -> SocketAddr {
    let redis = RedisConfig::new(redis_url)
        .key_prefix(unique_prefix("fault"))
        .command_timeout(COMMAND_TIMEOUT)
        .connection_timeout(COMMAND_TIMEOUT)
        .build()
        .unwrap();
    let settings = session_app::Settings::from_lookup(|_| None).unwrap();
    let layer =
        SessionLayer::new(RedisSessionStore::new(redis), settings.session_config()).unwrap();
    portcullis_tests::http::serve(session_app::app(layer, session_users())).await
}

fn new_client() -> Client {
    // Well past HANG: a request that needs it has hung, and is reported as such.
    Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn login(client: &Client, addr: SocketAddr, user: &str) -> Result<String, StatusCode> {
    let response = client
        .post(format!("http://{addr}/login"))
        .json(&json!({"username": user, "password": format!("{user}-password-1")}))
        .send()
        .await
        .unwrap();
    if response.status() != StatusCode::OK {
        return Err(response.status());
    }
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    Ok(set_cookie.split(';').next().unwrap().to_owned())
}

/// What one request saw, in milliseconds since the run started.
#[derive(Debug, Clone)]
struct Sample {
    worker: &'static str,
    started: Duration,
    took: Duration,
    /// The status, or the transport error (a hang or a dropped connection).
    outcome: Result<u16, String>,
    retry_after: bool,
}

impl Sample {
    fn ended(&self) -> Duration {
        self.started + self.took
    }
}

#[derive(Clone)]
struct Run {
    origin: Instant,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
}

impl Run {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            stop: Arc::default(),
            samples: Arc::default(),
        }
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    async fn record(&self, worker: &'static str, request: reqwest::RequestBuilder) -> Option<u16> {
        let started = self.now();
        let result = request.send().await;
        let took = self.now() - started;
        let (outcome, retry_after) = match result {
            Ok(response) => (
                Ok(response.status().as_u16()),
                response.headers().contains_key(header::RETRY_AFTER),
            ),
            Err(error) => (Err(error.to_string()), false),
        };
        let status = outcome.as_ref().ok().copied();
        self.samples.lock().unwrap().push(Sample {
            worker,
            started,
            took,
            outcome,
            retry_after,
        });
        status
    }

    /// Signed-in readers: `GET /me` with one of `cookies` each, in a loop.
    fn readers(&self, tasks: &mut JoinSet<()>, addr: SocketAddr, cookies: &[String]) {
        for cookie in cookies {
            let cookie = cookie.clone();
            let run = self.clone();
            tasks.spawn(async move {
                let client = new_client();
                while !run.stop.load(Ordering::Relaxed) {
                    let request = client
                        .get(format!("http://{addr}/me"))
                        .header(header::COOKIE, &cookie);
                    run.record("me", request).await;
                    tokio::time::sleep(PACE).await;
                }
            });
        }
    }

    /// An anonymous visitor on the home page, which never needs the store.
    fn anonymous(&self, tasks: &mut JoinSet<()>, addr: SocketAddr) {
        let run = self.clone();
        tasks.spawn(async move {
            let client = new_client();
            while !run.stop.load(Ordering::Relaxed) {
                run.record("anonymous", client.get(format!("http://{addr}/")))
                    .await;
                tokio::time::sleep(PACE * 4).await;
            }
        });
    }

    fn stop(&self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.samples.lock().unwrap().clone()
    }
}

/// `worker status -> count`, printed and returned.
fn counts(test: &str, samples: &[Sample]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for sample in samples {
        let outcome = match &sample.outcome {
            Ok(status) => status.to_string(),
            Err(_) => "transport error".to_owned(),
        };
        *counts
            .entry((sample.worker.to_owned(), outcome))
            .or_insert(0) += 1;
    }
    let slowest = samples.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!(
        "{test}: {} requests, slowest {slowest:?}; by worker and status: {counts:?}",
        samples.len()
    );
    counts
}

/// What every fault run must show: only 200 and 503 (503 with `Retry-After`), no transport
/// error, no request past [`HANG`], and anonymous pages always 200.
fn assert_no_500_no_hang(samples: &[Sample]) {
    for sample in samples {
        match sample.outcome {
            Ok(200) => {}
            Ok(503) => assert!(sample.retry_after, "503 without Retry-After: {sample:?}"),
            _ => panic!("only 200 or 503 are allowed: {sample:?}"),
        }
        assert!(sample.took < HANG, "a request hung: {sample:?}");
        if sample.worker == "anonymous" {
            assert_eq!(sample.outcome, Ok(200), "{sample:?}");
        }
    }
}

/// How long after `back` the last non-200 request started before `until` (the next fault, or
/// the end of the run): every request that started later in that span was served.
fn recovery_after(samples: &[Sample], back: Duration, until: Duration) -> Duration {
    samples
        .iter()
        .filter(|s| s.started >= back && s.started < until && s.outcome != Ok(200))
        .map(|s| s.started - back)
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_gives_503_then_recovers_with_sessions_intact() {
    let mut redis = DurableRedis::start();
    let addr = serve_session_app(&redis.url()).await;
    let client = new_client();
    let mut cookies = Vec::new();
    for user in ["alice", "admin", "alice", "admin", "alice", "alice"] {
        cookies.push(login(&client, addr, user).await.unwrap());
    }

    let run = Run::new();
    let mut tasks = JoinSet::new();
    run.readers(&mut tasks, addr, &cookies);
    run.anonymous(&mut tasks, addr);
    // A writer: logins all along; every cookie a 200 login handed out must survive.
    let granted = Arc::new(Mutex::new(Vec::new()));
    {
        let run = run.clone();
        let granted = granted.clone();
        tasks.spawn(async move {
            let client = new_client();
            while !run.stop.load(Ordering::Relaxed) {
                let request = client
                    .post(format!("http://{addr}/login"))
                    .json(&json!({"username": "alice", "password": "alice-password-1"}));
                let started = run.now();
                let response = request.send().await;
                let took = run.now() - started;
                let (outcome, retry_after) = match response {
                    Ok(response) => {
                        if response.status() == StatusCode::OK {
                            let cookie = response.headers()[header::SET_COOKIE]
                                .to_str()
                                .unwrap()
                                .split(';')
                                .next()
                                .unwrap()
                                .to_owned();
                            granted.lock().unwrap().push(cookie);
                        }
                        (
                            Ok(response.status().as_u16()),
                            response.headers().contains_key(header::RETRY_AFTER),
                        )
                    }
                    Err(error) => (Err(error.to_string()), false),
                };
                run.samples.lock().unwrap().push(Sample {
                    worker: "login",
                    started,
                    took,
                    outcome,
                    retry_after,
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let killed = run.now();
    tokio::task::block_in_place(|| redis.kill());
    let down = run.now();
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let restarting = run.now();
    tokio::task::block_in_place(|| redis.restart());
    let back = run.now();
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let samples = run.stop();
    while tasks.join_next().await.is_some() {}

    let counts = counts("kill and restart", &samples);
    eprintln!(
        "kill and restart: killed at {killed:?}, down by {down:?}, restart at {restarting:?}, \
         answering at {back:?}"
    );
    assert_no_500_no_hang(&samples);
    // Healthy before the kill.
    let before: Vec<_> = samples.iter().filter(|s| s.ended() < killed).collect();
    assert!(before.len() > 20, "too little load before the kill");
    assert!(before.iter().all(|s| s.outcome == Ok(200)), "{before:?}");
    // Down: every signed-in request that started and ended while Redis was dead is a 503.
    let outage: Vec<_> = samples
        .iter()
        .filter(|s| s.worker != "anonymous" && s.started >= down && s.ended() <= restarting)
        .collect();
    assert!(outage.len() > 20, "too little load during the outage");
    assert!(
        outage.iter().all(|s| s.outcome == Ok(503)),
        "{:?}",
        outage.iter().find(|s| s.outcome != Ok(503))
    );
    assert!(outage.iter().any(|s| s.worker == "login"));
    // Back: within RECOVERY of Redis answering, and everything after it is 200.
    let recovery = recovery_after(&samples, back, Duration::MAX);
    eprintln!("kill and restart: served again {recovery:?} after Redis answered");
    assert!(recovery < RECOVERY, "recovered only after {recovery:?}");
    let after: Vec<_> = samples
        .iter()
        .filter(|s| s.started >= back + RECOVERY)
        .collect();
    assert!(after.len() > 20, "too little load after the restart");
    assert!(
        counts
            .iter()
            .any(|((worker, status), n)| worker == "me" && status == "503" && *n > 0)
    );

    // Nothing acknowledged was lost: the sessions from before and every login answered 200.
    let granted = granted.lock().unwrap().clone();
    assert!(granted.len() >= 10, "too few logins: {}", granted.len());
    for cookie in cookies.iter().chain(&granted) {
        let response = client
            .get(format!("http://{addr}/me"))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a session was lost");
        let user: Value = response.json().await.unwrap();
        assert!(user["user"] == "alice" || user["user"] == "admin", "{user}");
    }
    let sessions: Value = client
        .get(format!("http://{addr}/sessions"))
        .header(header::COOKIE, &cookies[0])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // A login whose reply was lost to the kill may have landed too (a session nobody holds the
    // cookie of, which expires unused); none may be missing.
    let listed = sessions.as_array().unwrap().len();
    let refused_logins = counts
        .get(&("login".to_owned(), "503".to_owned()))
        .copied()
        .unwrap_or(0);
    assert!(
        (4 + granted.len()..=4 + granted.len() + refused_logins).contains(&listed),
        "alice has {listed} sessions, {} granted",
        granted.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_or_slow_redis_never_holds_a_request_past_the_timeout() {
    let redis = DurableRedis::start();
    let addr = serve_session_app(&redis.url()).await;
    let client = new_client();
    let mut cookies = Vec::new();
    for user in ["alice", "admin", "alice", "admin"] {
        cookies.push(login(&client, addr, user).await.unwrap());
    }
    let run = Run::new();
    let mut tasks = JoinSet::new();
    run.readers(&mut tasks, addr, &cookies);
    run.anonymous(&mut tasks, addr);

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every client blocked for 1.5 s, as a Redis stuck in a long command or failing over.
    let paused = run.now();
    assert_eq!(redis.cli(&["CLIENT", "PAUSE", "1500", "ALL"]).trim(), "OK");
    // The pause, then RECOVERY and more of normal service before the next fault.
    tokio::time::sleep(Duration::from_millis(4_000)).await;
    let resumed = paused + Duration::from_millis(1_500);
    // A slow Redis: one command holds the server for 1.5 s.
    let slow = run.now();
    let sleep = tokio::task::spawn_blocking({
        let port = redis.port;
        move || redis_cli(port, &["DEBUG", "SLEEP", "1.5"])
    });
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(sleep.await.unwrap().trim(), "OK");
    let fast = slow + Duration::from_millis(1_500);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let samples = run.stop();
    while tasks.join_next().await.is_some() {}

    counts("pause and slow", &samples);
    assert_no_500_no_hang(&samples);
    let end = Duration::MAX;
    for (what, from, to, next) in [("paused", paused, resumed, slow), ("slow", slow, fast, end)] {
        // Requests well inside the window wait for the timeout, then get 503.
        let inside: Vec<_> = samples
            .iter()
            .filter(|s| s.worker == "me" && s.started >= from + Duration::from_millis(100))
            .filter(|s| s.started + COMMAND_TIMEOUT + Duration::from_millis(100) <= to)
            .collect();
        assert!(inside.len() >= 4, "{what}: too little load");
        assert!(
            inside.iter().all(|s| s.outcome == Ok(503)),
            "{what}: {:?}",
            inside.iter().find(|s| s.outcome != Ok(503))
        );
        let slowest = inside.iter().map(|s| s.took).max().unwrap();
        eprintln!(
            "{what}: {} requests inside, slowest {slowest:?}",
            inside.len()
        );
        assert!(
            slowest >= COMMAND_TIMEOUT - Duration::from_millis(50),
            "{what}: answered before the timeout, so Redis was not blocking: {slowest:?}"
        );
        let recovery = recovery_after(&samples, to, next);
        assert!(recovery < RECOVERY, "{what}: recovered after {recovery:?}");
    }
    // Sessions survive the timeouts.
    for cookie in &cookies {
        let response = client
            .get(format!("http://{addr}/me"))
            .header(header::COOKIE, cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
