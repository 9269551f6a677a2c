//! portcullis on PostgreSQL against tower-sessions' sqlx store, in-process (`oneshot`, no
//! socket) on a current-thread runtime: `cargo run --release -p portcullis-bench --bin
//! postgres-stacks` (the database at `DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, in a schema of its own, dropped at the end).
//!
//! Measures, one request at a time: an authenticated read (`GET /me`) on portcullis'
//! `SessionLayer` over `PostgresSessionStore` and on tower-sessions 0.14 over
//! tower-sessions-sqlx-store 0.15 (`PostgresStore`); and a hybrid refresh (rotate the refresh
//! token, mint an access token) over `PostgresRefreshStore`, beside tower-sessions' nearest
//! write, a request that changes its session (one upsert). Prints median and 99th percentile.

use std::{
    cell::RefCell,
    io::Write as _,
    time::{Duration, Instant},
};

use axum::{Router, body::Body, http::Request, routing::get};
use portcullis_bench::{App, alice, hs256_issuer, login_cookie, session_app_over, validation};
use portcullis_hybrid::{HybridSessions, InProcessFeed};
use portcullis_postgres::{PostgresConfig, PostgresRefreshStore, PostgresSessionStore, sqlx};
use tower::ServiceExt;

const WARM_UP: usize = 300;
const SAMPLES: usize = 3_000;

/// Median and 99th percentile of `samples` runs of `op`, after a warm-up.
async fn time<F, Fut>(mut op: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..WARM_UP {
        op().await;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        op().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: usize| samples.get(SAMPLES * q / 100).copied().unwrap_or_default();
    (at(50), at(99))
}

async fn get_ok(router: &Router, request: Request<Body>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert!(response.status().is_success(), "{}", response.status());
}

fn request(app: &App, path: &str) -> Request<Body> {
    app.request(path)
}

fn row(out: &mut impl std::io::Write, name: &str, (median, p99): (Duration, Duration)) {
    let _ = writeln!(
        out,
        "| {name} | {:.1} µs | {:.1} µs |",
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("bench_{}", std::process::id());
    // One connection each, so both stacks pay the same per-query cost.
    let database = PostgresConfig::new(&url)
        .schema(&schema)
        .max_connections(1)
        .build()?;
    database.migrate().await?;
    let peer_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await?;
    let peer_store = tower_sessions_sqlx_store::PostgresStore::new(peer_pool.clone())
        .with_schema_name(&schema)?
        .with_table_name("tower_sessions")?;
    peer_store.migrate().await?;

    let mut out = std::io::stdout();
    let _ = writeln!(out, "| operation | median | p99 |\n|---|---|---|");

    let portcullis = session_app_over(PostgresSessionStore::new(database.clone())).await?;
    let read = time(|| get_ok(&portcullis.router, request(&portcullis, "/me"))).await;
    row(&mut out, "read: portcullis session (postgres)", read);

    let peer_router = portcullis_bench::tower_sessions_app(peer_store.clone());
    let peer = App {
        credential: login_cookie(&peer_router).await?,
        router: peer_router,
    };
    let peer_read = time(|| get_ok(&peer.router, request(&peer, "/me"))).await;
    row(&mut out, "read: tower-sessions sqlx (postgres)", peer_read);

    let sessions = HybridSessions::builder(hs256_issuer(), validation())
        .store(PostgresRefreshStore::new(database.clone()))
        .feed(InProcessFeed::new())
        .build()
        .await?;
    let current = RefCell::new(sessions.login("alice", &alice(), None).await?);
    let refresh = time(|| {
        let presented = current.borrow().refresh_token().expose();
        let (sessions, current) = (&sessions, &current);
        async move {
            let next = sessions.refresh(&presented).await.expect("refresh");
            *current.borrow_mut() = next;
        }
    })
    .await;
    row(&mut out, "refresh: portcullis hybrid (postgres)", refresh);

    // tower-sessions' nearest write: a request that changes its session.
    // Same store and cookie settings: the session signed in above is valid there.
    let writer = App {
        credential: peer.credential.clone(),
        router: peer_write_router(peer_store),
    };
    let mut counter = 0_u64;
    let peer_write = time(|| {
        counter += 1;
        get_ok(
            &writer.router,
            request(&writer, &format!("/write/{counter}")),
        )
    })
    .await;
    row(
        &mut out,
        "write: tower-sessions sqlx (postgres)",
        peer_write,
    );

    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    let _ = writeln!(
        out,
        "\nread median, tower-sessions / portcullis: {:.2}; refresh median vs tower-sessions write: {:.2}",
        ratio(read.0, peer_read.0),
        ratio(refresh.0, peer_write.0)
    );
    sqlx::query(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&peer_pool)
        .await?;
    Ok(())
}

/// `GET /write/{n}`, which stores `n` in the session, under tower-sessions' layer configured as
/// the bench's tower-sessions stack is.
fn peer_write_router(store: tower_sessions_sqlx_store::PostgresStore) -> Router {
    use tower_sessions::{Expiry, SessionManagerLayer, cookie::time};

    async fn write(
        session: tower_sessions::Session,
        axum::extract::Path(n): axum::extract::Path<u64>,
    ) -> axum::http::StatusCode {
        match session.insert("n", n).await {
            Ok(()) => axum::http::StatusCode::OK,
            Err(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
        }
    }
    Router::new().route("/write/{n}", get(write)).layer(
        SessionManagerLayer::new(store)
            .with_secure(true)
            .with_http_only(true)
            .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30))),
    )
}
