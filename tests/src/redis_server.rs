//! Real Redis servers for the tests: private `redis-server` processes on free loopback ports
//! (killed when dropped), the shared server and cluster named by `REDIS_URL` and
//! `REDIS_CLUSTER_URLS` (set by `scripts/test.sh`), or, when those are unset, ones this
//! process starts for itself. No test is skipped for want of Redis: without `redis-server`
//! on the `PATH` the tests fail and say how to get it.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

pub(crate) const HOW_TO_GET_REDIS: &str = "the Redis tests need `redis-server` and `redis-cli` on the PATH \
     (apt-get install redis-server), or run them through scripts/test.sh, which installs and \
     starts Redis and a Redis Cluster";

/// A private `redis-server` on a free loopback port, with no persistence and the
/// `noeviction` policy. Killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> Self {
        let dir = scratch_dir("redis");
        let mut server = Self {
            child: None,
            port: free_port(),
            dir,
        };
        server.restart();
        server
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: an abrupt outage) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start redis-server ({error}): {HOW_TO_GET_REDIS}")
            });
        self.child = Some(child);
        wait_until_pingable(self.port);
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The URL of the shared single Redis: `REDIS_URL`, or a server started once for this test
/// process (stopped when the process exits).
pub fn shared_url() -> String {
    if let Ok(url) = std::env::var("REDIS_URL")
        && !url.is_empty()
    {
        return url;
    }
    // Statics are never dropped: a watchdog stops the server when the process exits.
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let server = RedisServer::start();
            if let Some(child) = &server.child {
                watchdog(&format!(
                    "kill {}; rm -rf '{}'",
                    child.id(),
                    server.dir.display()
                ));
            }
            server
        })
        .url()
}

/// The node URLs of the shared Redis Cluster: `REDIS_CLUSTER_URLS`, or a three-node cluster
/// started once for this test process by `scripts/redis-cluster.sh`.
pub fn cluster_urls() -> Vec<String> {
    static URLS: OnceLock<Vec<String>> = OnceLock::new();
    URLS.get_or_init(|| {
        if let Ok(urls) = std::env::var("REDIS_CLUSTER_URLS")
            && !urls.is_empty()
        {
            return urls.split(',').map(str::to_owned).collect();
        }
        let dir = scratch_dir("redis-cluster");
        let script = workspace_root().join("scripts/redis-cluster.sh");
        let output = Command::new(&script)
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {} ({error})", script.display()));
        assert!(
            output.status.success(),
            "scripts/redis-cluster.sh failed: {HOW_TO_GET_REDIS}"
        );
        watchdog(&format!(
            "'{}' stop '{}'; rm -rf '{}'",
            script.display(),
            dir.display(),
            dir.display()
        ));
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .split(',')
            .map(str::to_owned)
            .collect()
    })
    .clone()
}

/// A key prefix no other test (or engineer sharing the Redis) uses.
pub fn unique_prefix(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "pct-{tag}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `redis-cli -p <port> args…` and returns its standard output.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run redis-cli ({error}): {HOW_TO_GET_REDIS}"));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Calls per command since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
pub fn command_calls(port: u16) -> Vec<(String, u64)> {
    redis_cli(port, &["INFO", "commandstats"])
        .lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Polls `condition` every 5 ms until it holds or `within` passes; returns how long it took.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if condition() {
            return Some(started.elapsed());
        }
        if started.elapsed() > within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn wait_until_pingable(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if redis_cli(port, &["PING"]).trim() == "PONG" {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
    panic!("redis-server on port {port} did not answer PING within 10 s");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("no free loopback port: {error}"))
}

pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique_prefix(tag));
    std::fs::create_dir_all(&dir).unwrap_or_else(|error| panic!("cannot create {dir:?}: {error}"));
    dir
}

pub(crate) fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or_else(|| Path::new("."))
}

/// Runs `cleanup` in the shell once this process has exited.
pub(crate) fn watchdog(cleanup: &str) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 0.5; done; {cleanup}",
        std::process::id()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}
