//! Run with: `cargo run -p adboard -- --mode session` (or `jwt`, `hybrid`).

use std::env;

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        // Logs go to stderr: stdout carries only the `listening on` line harnesses wait for.
        .with_writer(std::io::stderr)
        .init();
    let lookup = |name: &str| env::var(name).ok().filter(|v| !v.trim().is_empty());
    let (mode, addr) = adboard::parse_args(env::args().skip(1), lookup)?;
    let app = adboard::app(mode, lookup).await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%mode, "adboard ready");
    let shutdown = adboard::shutdown_signal();
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{addr}");
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
