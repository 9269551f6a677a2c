//! The built `session-app` binary, as a black-box suite would run it: the `--addr` flag, the
//! `listening on http://ADDR` line, and the time-outs taken from `SESSION_*` variables (here a
//! 2-second idle timeout, observed in real time).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Kills the server when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(env: &[(&str, &str)]) -> (Running, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_session-app"));
    command
        .args(["--addr", "127.0.0.1:0"])
        .env_remove("REDIS_URL")
        .env_remove("DATABASE_URL")
        .env_remove("PORTCULLIS_ADDR")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("a first line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (running, addr)
}

/// One HTTP/1.1 request with `Connection: close`; returns the status and the raw head.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    stream.write_all(text.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {response:?}"));
    (status, response)
}

fn session_cookie(head: &str) -> String {
    head.lines()
        .find_map(|line| {
            let lower = line.to_ascii_lowercase();
            lower.starts_with("set-cookie: __host-session=").then(|| {
                line["set-cookie: ".len()..]
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
        })
        .unwrap_or_else(|| panic!("no session cookie in {head:?}"))
}

#[test]
fn the_binary_honours_its_address_and_idle_timeout() {
    let (_server, addr) = start(&[("SESSION_IDLE_SECS", "2"), ("SESSION_ABSOLUTE_SECS", "60")]);
    let credentials = r#"{"username": "alice", "password": "alice-password-1"}"#;
    let (status, head) = request(
        &addr,
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        credentials,
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.ends_with(r#"{"user":"alice","role":"advertiser"}"#),
        "{head}"
    );
    let cookie = session_cookie(&head);
    let (status, _) = request(&addr, "GET", "/me", &[("Cookie", &cookie)], "");
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(3_200));
    let (status, head) = request(&addr, "GET", "/me", &[("Cookie", &cookie)], "");
    assert_eq!(status, 401, "idle for 3 s with SESSION_IDLE_SECS=2: {head}");
    assert!(
        head.to_ascii_lowercase().contains("max-age=0"),
        "the stale cookie is cleared: {head}"
    );
}

#[test]
fn bad_settings_stop_the_binary_with_a_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_session-app"))
        .args(["--addr", "127.0.0.1:0"])
        .env("SESSION_IDLE_SECS", "soon")
        .env_remove("REDIS_URL")
        .output()
        .expect("the binary runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("SESSION_IDLE_SECS"));
    assert!(output.stdout.is_empty(), "never claims to listen");
}
