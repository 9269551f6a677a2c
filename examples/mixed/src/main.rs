//! Run with: `cargo run -p mixed` (then `POST /token` for an API token, `POST /login` for a
//! session cookie). Flags and environment: `--addr ADDR` or `PORTCULLIS_ADDR` (default
//! `127.0.0.1:3000`).

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mixed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let addr = demo_users::listen_addr(std::env::args().skip(1), |name| std::env::var(name).ok())?;
    // Failed logins are counted in Redis when `REDIS_URL` is set, else in memory.
    let redis = portcullis_redis::RedisConfig::from_env()
        .map(|config| config.build())
        .transpose()?;
    let guard = demo_users::LoginGuardSettings::from_env()?.guard(redis);
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new)
        .await?
        .with_login_guard(guard);
    let app = mixed::app(users)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    let shutdown = demo_users::shutdown_signal();
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{}", listener.local_addr()?);
    }
    // The connection's address feeds the login guard's per-client limit.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
