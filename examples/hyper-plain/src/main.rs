//! Run with: `cargo run -p hyper-plain`.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let users = tokio::task::spawn_blocking(demo_users::DemoUsers::new).await?;
    let service = hyper_plain::service(users)?;
    let listener = tokio::net::TcpListener::bind(hyper_plain::addr()).await?;
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{}", listener.local_addr()?);
    }
    hyper_plain::serve(listener, service).await?;
    Ok(())
}
