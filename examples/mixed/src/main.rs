//! Run with: `cargo run -p mixed` (then `POST /token` for an API token, `POST /login` for a
//! session cookie).

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let addr = std::env::var("PORTCULLIS_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    // Failed logins are counted in Redis when `REDIS_URL` is set, else in memory.
    let redis = portcullis_redis::RedisConfig::from_env()
        .map(|config| config.build())
        .transpose()?;
    let guard = demo_users::LoginGuardSettings::from_env()?.guard(redis);
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new)
        .await?
        .with_login_guard(guard);
    let app = mixed::app(users)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{}", listener.local_addr()?);
    }
    // The connection's address feeds the login guard's per-client limit.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
