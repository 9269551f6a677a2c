//! The binary as users start it: the address flag and variable, the ready line, bad settings.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Kills the server when the test ends, whatever happens.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with the address from its `listening on` line.
fn start(args: &[&str], env: &[(&str, &str)]) -> (Server, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hybrid-app"));
    command
        .args(args)
        .env_remove("PORTCULLIS_ADDR")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (server, addr)
}

fn get_status(addr: &str, path: &str) -> u16 {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

#[test]
fn addr_flag_and_variable_and_the_ready_line() {
    let (_server, addr) = start(&["--addr", "127.0.0.1:0"], &[]);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert_eq!(get_status(&addr, "/"), 200);
    assert_eq!(get_status(&addr, "/me"), 401);

    let (_server, addr) = start(&[], &[("PORTCULLIS_ADDR", "127.0.0.1:0")]);
    assert_eq!(get_status(&addr, "/.well-known/jwks.json"), 200);

    // The flag wins over the variable.
    let (_server, addr) = start(
        &["--addr=127.0.0.1:0"],
        &[("PORTCULLIS_ADDR", "256.0.0.1:1")],
    );
    assert_eq!(get_status(&addr, "/"), 200);
}

#[test]
fn bad_settings_stop_the_start_with_a_reason() {
    for (name, value) in [
        ("ACCESS_TTL_SECS", "ten"),
        ("JWT_ALG", "none"),
        ("JWT_PRIVATE_KEY_FILE", "/nonexistent/hybrid-app-key.pem"),
        ("JWT_LEEWAY_SECS", "3600"),
        ("HYBRID_TRANSPARENT_REFRESH", "maybe"),
        ("REFRESH_GRACE_SECS", "3600"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_hybrid-app"))
            .args(["--addr", "127.0.0.1:0"])
            .env(name, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{name}={value} started");
        assert!(
            output.stdout.is_empty(),
            "{name}={value} printed the ready line"
        );
        assert!(!output.stderr.is_empty());
    }
}
