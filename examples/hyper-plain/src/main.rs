//! Run with: `cargo run -p hyper-plain`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Failed logins are counted in Redis when `REDIS_URL` is set, else in memory.
    let redis = portcullis_redis::RedisConfig::from_env()
        .map(|config| config.build())
        .transpose()?;
    let guard = demo_users::LoginGuardSettings::from_env()?.guard(redis);
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new)
        .await?
        .with_login_guard(guard);
    let service = hyper_plain::service(users)?;
    let listener = tokio::net::TcpListener::bind(hyper_plain::addr()).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{}", listener.local_addr()?);
    }
    hyper_plain::serve(listener, service).await?;
    Ok(())
}
