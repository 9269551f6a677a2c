//! Run with: `cargo run -p hybrid-app` (then open http://127.0.0.1:3000, or see README.md for
//! the environment variables and a curl session).

use std::process::ExitCode;

use hybrid_app::{AppState, Settings, app};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            tracing::error!("{message}");
            eprintln!("hybrid-app: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let settings = Settings::from_env()?;
    tracing::info!(?settings, "starting");
    let state = AppState::from_settings(&settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.addr).await?;
    let addr = listener.local_addr()?;
    let shutdown = demo_users::shutdown_signal();
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{addr}");
    }
    // The connection's address feeds the login guard's per-client limit.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}
