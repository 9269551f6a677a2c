//! Run with: `cargo run -p hyper-plain` (`--addr ADDR` or `PORTCULLIS_ADDR`, default
//! `127.0.0.1:3000`).

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hyper-plain: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let addr = hyper_plain::addr()?;
    // Failed logins are counted in Redis when `REDIS_URL` is set, else in memory.
    let redis = portcullis_redis::RedisConfig::from_env()
        .map(|config| config.build())
        .transpose()?;
    let guard = demo_users::LoginGuardSettings::from_env()?.guard(redis);
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new)
        .await?
        .with_login_guard(guard);
    let service = hyper_plain::service(users)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| format!("cannot listen on {addr}: {error}"))?;
    let shutdown = demo_users::shutdown_signal();
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{}", listener.local_addr()?);
    }
    hyper_plain::serve_until(listener, service, shutdown).await?;
    Ok(())
}
