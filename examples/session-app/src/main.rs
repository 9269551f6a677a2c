//! Run with: `cargo run -p session-app` (then open http://127.0.0.1:3000)
//!
//! Flags and environment: `--addr ADDR` or `PORTCULLIS_ADDR` (default `127.0.0.1:3000`), and the
//! session settings of the README (`SESSION_IDLE_SECS`, `SESSION_ABSOLUTE_SECS`,
//! `SESSION_MAX_PER_USER`, `SESSION_LIMIT_POLICY`). Sessions live in PostgreSQL when
//! `DATABASE_URL` is set (`DATABASE_SCHEMA`, `DATABASE_TABLE_PREFIX` optional), else in Redis when
//! `REDIS_URL` is set (`REDIS_KEY_PREFIX` optional), in memory otherwise.

use std::{io::Write as _, process::ExitCode, time::Duration};

use demo_users::LoginGuardSettings;
use portcullis_core::{Readiness, ReadinessChecks};
use portcullis_postgres::{PostgresConfig, PostgresSessionStore};
use portcullis_redis::{RedisConfig, RedisConnection, RedisSessionStore};
use portcullis_session::{MemoryStore, SessionLayer, SessionStore};
use session_app::{DemoUsers, Settings, app};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// `--addr ADDR` / `--addr=ADDR`, else `PORTCULLIS_ADDR`, else the default.
fn address() -> Result<String, String> {
    let mut args = std::env::args().skip(1);
    match args.next() {
        None => Ok(std::env::var("PORTCULLIS_ADDR").unwrap_or_else(|_| DEFAULT_ADDR.to_owned())),
        Some(flag) if flag == "--addr" => {
            args.next().ok_or_else(|| "--addr needs a value".to_owned())
        }
        Some(arg) => arg
            .strip_prefix("--addr=")
            .map(str::to_owned)
            .ok_or_else(|| {
                format!("unknown argument {arg:?} (usage: session-app [--addr HOST:PORT])")
            }),
    }
}

async fn serve<S: SessionStore + Readiness + Clone>(
    listener: TcpListener,
    store: S,
    settings: &Settings,
    redis: Option<RedisConnection>,
) -> Result<(), String> {
    // Failed logins are counted in Redis too when sessions live there (issue 18).
    let guard = LoginGuardSettings::from_env()
        .map_err(|e| e.to_string())?
        .guard(redis);
    let users = tokio::task::spawn_blocking(DemoUsers::new)
        .await
        .map_err(|e| e.to_string())?
        .with_login_guard(guard);
    let checks = ReadinessChecks::new().check("session store", store.clone());
    let layer = SessionLayer::new(store, settings.session_config()).map_err(|e| e.to_string())?;
    let router = app(layer, users)
        .merge(demo_users::health_routes(checks))
        .merge(demo_users::metrics_routes());
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let shutdown = demo_users::shutdown_signal();
    // The line test harnesses wait for: the server accepts connections from now on.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{addr}")
        .and_then(|()| stdout.flush())
        .map_err(|e| e.to_string())?;
    // The connection's address feeds the login guard's per-client limit.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| e.to_string())
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env().map_err(|e| e.to_string())?;
    let addr = address()?;
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    if let Some(config) = PostgresConfig::from_env() {
        let database = config.build().map_err(|e| format!("DATABASE_URL: {e}"))?;
        // Start anyway while the database is down: the tables are made when it answers, session
        // routes and /readyz answer 503 meanwhile.
        let _migrations = database.spawn_migrations(Duration::from_secs(1));
        tracing::info!("sessions in PostgreSQL (DATABASE_URL)");
        let store = PostgresSessionStore::new(database);
        let _sweeper = store.spawn_sweeper(Duration::from_secs(60));
        return serve(listener, store, &settings, None).await;
    }
    if let Some(config) = RedisConfig::from_env() {
        let redis = config.build().map_err(|e| format!("REDIS_URL: {e}"))?;
        if let Err(error) = redis.ping().await {
            // Start anyway: the store reconnects by itself; session routes answer 503 meanwhile.
            tracing::warn!(%error, "Redis does not answer yet");
        }
        tracing::info!("sessions in Redis (REDIS_URL)");
        let store = RedisSessionStore::new(redis.clone());
        return serve(listener, store, &settings, Some(redis)).await;
    }
    let store = MemoryStore::new();
    let _sweeper = store.spawn_sweeper(Duration::from_secs(30));
    serve(listener, store, &settings, None).await
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            let _ = writeln!(std::io::stderr(), "session-app: {error}");
            ExitCode::FAILURE
        }
    }
}
