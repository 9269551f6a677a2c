//! Resident memory of a login burst (issue 18): `cargo run -p portcullis-bench --bin
//! login-memory [-- --unguarded] [--logins N] [--concurrency C]`.
//!
//! Serves examples/jwt-api's `app()` on 127.0.0.1 in this process (connection addresses
//! recorded, as its binary does), reads `VmRSS` from `/proc/self/status` at idle, then sends N
//! failed logins (`POST /token` as `alice` with a wrong password, default 1,000) with C in
//! flight at once (default N), and prints the resident set after the burst, its peak
//! (`VmHWM`) and the answers by status. `--unguarded` serves what main did before the login
//! guard instead: the same credentials checked with `Argon2::verify_password` in an unbounded
//! `spawn_blocking`. Run each mode in its own process: the allocator keeps what a burst left.
//!
//! The guarded app reads the `LOGIN_*` variables as jwt-api does (for instance
//! `LOGIN_FREE_FAILURES=100000 LOGIN_CLIENT_FREE_FAILURES=100000 LOGIN_MAX_WAITING=1000` makes
//! every login wait for a real check instead of a 429); `REDIS_URL` is ignored.
//!
//! Bounded: at most 10,000 logins and 1,000 in flight, loopback only.

use std::{
    collections::BTreeMap,
    io::Write as _,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use axum::{Json, Router, extract::State, routing::post};
use demo_users::Credentials;
use portcullis_core::AuthRejection;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::Semaphore,
};

const MAX_LOGINS: usize = 10_000;
const MAX_IN_FLIGHT: usize = 1_000;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let value = line.strip_prefix(field)?.strip_prefix(':')?;
                value.trim().trim_end_matches("kB").trim().parse().ok()
            })
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// What main's `POST /token` did before the guard: one argon2 check per request, each on its
/// own blocking thread, each allocating its 19 MiB.
fn unguarded_router() -> Result<Router, Box<dyn std::error::Error>> {
    let salt = SaltString::encode_b64(b"sixteen byte salt")?;
    let hash: Arc<str> = Argon2::default()
        .hash_password(b"alice-password-1", &salt)?
        .to_string()
        .into();
    async fn token(
        State(hash): State<Arc<str>>,
        credentials: Credentials,
    ) -> Result<Json<&'static str>, AuthRejection> {
        let verified = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash).is_ok_and(|hash| {
                Argon2::default()
                    .verify_password(credentials.password.as_bytes(), &hash)
                    .is_ok()
            })
        })
        .await
        .map_err(|_| AuthRejection::unavailable("the login check failed"))?;
        if verified {
            Ok(Json("ok"))
        } else {
            Err(AuthRejection::invalid_credentials(
                "wrong username or password",
            ))
        }
    }
    Ok(Router::new().route("/token", post(token)).with_state(hash))
}

async fn guarded_router() -> Result<Router, Box<dyn std::error::Error>> {
    // As the binary reads them: the `LOGIN_*` variables, if any (unset: the defaults).
    let settings = jwt_api::Settings::from_lookup(|name| {
        name.starts_with("LOGIN_")
            .then(|| std::env::var(name).ok())
            .flatten()
    })?;
    let state = jwt_api::AppState::from_settings(&settings).await?;
    Ok(jwt_api::app(state))
}

/// One `POST /token` over a fresh connection; the status code, or 0 when the connection failed.
async fn failed_login(addr: SocketAddr) -> u16 {
    let body = r#"{"username":"alice","password":"not-the-password"}"#;
    let request = format!(
        "POST /token HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    match tokio::time::timeout(Duration::from_secs(120), answer).await {
        Ok(Ok(raw)) => String::from_utf8_lossy(&raw)
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or(0),
        _ => 0,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut unguarded = false;
    let mut logins = 1_000;
    let mut in_flight = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--unguarded" => unguarded = true,
            "--logins" => logins = args.next().ok_or("--logins N")?.parse()?,
            "--concurrency" => in_flight = Some(args.next().ok_or("--concurrency C")?.parse()?),
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let logins: usize = logins.clamp(1, MAX_LOGINS);
    let in_flight: usize = in_flight.unwrap_or(logins).clamp(1, MAX_IN_FLIGHT);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut out = std::io::stdout().lock();
    runtime.block_on(async {
        let router = if unguarded {
            unguarded_router()?
        } else {
            guarded_router().await?
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let service = router.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, service).await;
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = status_kib("VmRSS");

        let started = Instant::now();
        let permits = Arc::new(Semaphore::new(in_flight));
        let tasks: Vec<_> = (0..logins)
            .map(|_| {
                let permits = Arc::clone(&permits);
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    failed_login(addr).await
                })
            })
            .collect();
        let mut statuses = BTreeMap::<u16, usize>::new();
        for task in tasks {
            *statuses.entry(task.await.unwrap_or(0)).or_default() += 1;
        }
        let elapsed = started.elapsed();
        // Let blocking threads finish and idle out before reading the resident set.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = status_kib("VmRSS");
        let peak = status_kib("VmHWM");

        let mode = if unguarded {
            "unguarded (main before)"
        } else {
            "login guard"
        };
        writeln!(
            out,
            "mode: {mode}; {logins} failed logins, {in_flight} in flight, {:.1} s",
            elapsed.as_secs_f64()
        )?;
        writeln!(out, "answers: {statuses:?}")?;
        writeln!(
            out,
            "VmRSS idle {:.1} MiB, after {:.1} MiB (+{:.1} MiB), peak VmHWM {:.1} MiB",
            mib(idle),
            mib(after),
            mib(after.saturating_sub(idle)),
            mib(peak)
        )?;
        Ok(())
    })
}
