//! The operations contract of DESIGN.md: `GET /healthz`, `GET /readyz`, and a graceful stop on
//! SIGTERM (what container runtimes send) as well as Ctrl-C.

use std::future::Future;

use axum::{Json, Router, routing::get};
use portcullis_core::ReadinessChecks;

/// `GET /healthz` (200 while the process serves) and `GET /readyz` (`checks`: 200 when every
/// dependency is ready, else 503 with a JSON reason and `Retry-After`). Merged outside the
/// authentication layers: probes carry no credentials and must not touch a session store.
pub(crate) fn health_routes<S: Clone + Send + Sync + 'static>(
    checks: ReadinessChecks,
) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route_service("/readyz", checks)
}

/// Up and serving; says nothing about dependencies (that is `/readyz`), so a Redis outage
/// never gets a healthy process restarted.
async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Completes on the first SIGTERM or Ctrl-C: pass it to the server's graceful shutdown, which
/// stops accepting, finishes the requests in flight, and returns.
///
/// The handlers are installed by this call, not at the first poll, so call it before printing
/// `listening on`: a SIGTERM right after that line then stops the server gracefully. Must be
/// called inside a Tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |installed: std::io::Result<tokio::signal::unix::Signal>, name| async move {
                match installed {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "cannot listen for {name}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(interrupt, "SIGINT") => {}
                () = wait(terminate, "SIGTERM") => {}
            }
        }
        #[cfg(not(unix))]
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutting down: finishing requests in flight");
    }
}
