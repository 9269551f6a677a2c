//! Example apps as users run them, for the operations contract (DESIGN.md): the binary
//! started with flags and environment, its `listening on` line, plain HTTP/1.1 requests, and
//! SIGTERM. Example packages call [`check_operations`] and [`check_readiness_follows_redis`]
//! from their own integration tests, where `env!("CARGO_BIN_EXE_<name>")` names the binary.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::redis_server::{RedisServer, unique_prefix};

/// A running example binary, killed when dropped unless it was stopped.
#[derive(Debug)]
pub struct RunningApp {
    child: Option<Child>,
    addr: String,
}

impl RunningApp {
    /// Starts `exe` with `args` and `env` (plus `RUST_LOG=warn`, no inherited
    /// `PORTCULLIS_ADDR`, `REDIS_URL` or `DATABASE_URL`) and waits for its `listening on http://ADDR` line.
    pub fn start(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(exe);
        command
            .args(args)
            .env_remove("PORTCULLIS_ADDR")
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {exe}: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut app = Self {
            child: Some(child),
            addr: String::new(),
        };
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        stdout.read_line(&mut line).expect("the ready line");
        // Keep reading, so an app that logs to stdout never writes into a closed pipe.
        thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        app.addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("{exe}: unexpected first line {line:?}"))
            .to_owned();
        app
    }

    /// `HOST:PORT` from the ready line.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `GET path` on a fresh connection.
    pub fn get(&self, path: &str) -> Reply {
        get(&self.addr, path)
    }

    /// Sends SIGTERM and waits up to `within` for the process to exit; its exit status.
    pub fn terminate(mut self, within: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the app did not exit within {within:?} of SIGTERM");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An HTTP response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// `GET path` from `addr` over HTTP/1.1 with `Connection: close`.
pub fn get(addr: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response read");
    parse(&raw)
}

fn parse(raw: &str) -> Reply {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut body = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        body.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    body
}

/// Polls `GET path` until `accept` holds or `within` passes; the last reply either way.
pub fn poll(
    app: &RunningApp,
    path: &str,
    within: Duration,
    accept: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + within;
    loop {
        let reply = app.get(path);
        if accept(&reply) || Instant::now() > deadline {
            return reply;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// The contract every app honours in memory mode: `GET /healthz` 200; `GET /readyz` 200 with
/// `{"ready": true}`; SIGTERM ends the process with status 0 within a few seconds.
pub fn check_operations(exe: &str, args: &[&str], env: &[(&str, &str)]) {
    let app = RunningApp::start(exe, args, env);
    let health = app.get("/healthz");
    assert_eq!(health.status, 200, "{exe} /healthz: {health:?}");
    let ready = app.get("/readyz");
    assert_eq!(ready.status, 200, "{exe} /readyz: {ready:?}");
    assert_eq!(ready.json()["ready"], true, "{exe} /readyz: {ready:?}");
    assert_eq!(ready.header("cache-control"), Some("no-store"));
    let status = app.terminate(Duration::from_secs(5));
    assert!(status.success(), "{exe} exited with {status} after SIGTERM");
}

/// With Redis: ready while its private Redis runs; once Redis is killed, `GET /readyz` answers
/// 503 with `Retry-After` and a JSON reason while `GET /healthz` stays 200; ready again when
/// Redis is back; SIGTERM still ends it cleanly.
pub fn check_readiness_follows_redis(exe: &str, args: &[&str], env: &[(&str, &str)]) {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let prefix = unique_prefix("ops");
    let mut env = env.to_vec();
    env.extend([
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
    ]);
    let app = RunningApp::start(exe, args, &env);
    let ready = poll(&app, "/readyz", Duration::from_secs(5), |r| r.status == 200);
    assert_eq!(ready.status, 200, "{exe} with Redis up: {ready:?}");

    redis.kill();
    let down = poll(&app, "/readyz", Duration::from_secs(5), |r| r.status == 503);
    assert_eq!(down.status, 503, "{exe} with Redis down: {down:?}");
    let body = down.json();
    assert_eq!(body["ready"], false, "{down:?}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("redis") || r.contains("revocation")),
        "{exe}: reason {body}"
    );
    assert!(down.header("retry-after").is_some(), "{down:?}");
    assert_eq!(
        app.get("/healthz").status,
        200,
        "{exe} /healthz with Redis down"
    );

    redis.restart();
    let back = poll(&app, "/readyz", Duration::from_secs(15), |r| {
        r.status == 200
    });
    assert_eq!(back.status, 200, "{exe} after Redis came back: {back:?}");
    let status = app.terminate(Duration::from_secs(5));
    assert!(status.success(), "{exe} exited with {status} after SIGTERM");
}

/// `METHOD path` to `addr` over HTTP/1.1 with `Connection: close`, the given headers and body
/// (a `Content-Length` is added).
pub fn send(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(stream, "{head}\r\n{body}").expect("request sent");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("response read");
    parse(&raw)
}

/// The `name=value` of the first `Set-Cookie` for cookie `name`, if any.
pub fn set_cookie(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .iter()
        .filter(|(header, _)| header == "set-cookie")
        .filter_map(|(_, value)| value.split(';').next())
        .find(|pair| pair.split_once('=').is_some_and(|(n, _)| n == name))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain =
            parse("HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n{\"ready\":false}");
        assert_eq!(plain.status, 503);
        assert_eq!(plain.header("retry-after"), Some("5"));
        assert_eq!(plain.json()["ready"], false);
        let chunked = parse(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
        );
        assert_eq!(chunked.json()["a"], 1);
    }
}
