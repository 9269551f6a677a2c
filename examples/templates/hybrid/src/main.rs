//! Run with: `cargo run` (address from `PORTCULLIS_ADDR`, default 127.0.0.1:3000), then
//! `curl -c jar -H 'content-type: application/json' -d '{"username":"alice","password":"alice-password-1"}' http://127.0.0.1:3000/login`
//! and `curl -b jar http://127.0.0.1:3000/me`. (The cookie is `Secure`: curl sends it to
//! 127.0.0.1, as browsers do to localhost.)

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::var("PORTCULLIS_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    // The connection's address feeds the login guard's per-client back-off.
    let app = hybrid_template::app()
        .await?
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Ctrl-C or SIGTERM: stop accepting, finish the requests in flight.
async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    {
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        return;
    }
    let _ = ctrl_c.await;
}
