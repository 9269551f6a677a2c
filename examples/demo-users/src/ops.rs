//! What every example app does around its routes, per the operations contract: the listen
//! address (`--addr` or `PORTCULLIS_ADDR`), `GET /healthz` and `GET /readyz`, and a graceful
//! stop on SIGTERM (what container runtimes send) as well as Ctrl-C.

use std::{future::Future, net::SocketAddr};

use axum::{Router, routing::get};
use portcullis_core::ReadinessChecks;

/// Where the apps listen unless told otherwise.
pub const DEFAULT_ADDR: &str = "127.0.0.1:3000";

/// The listen address from `--addr ADDR` or `--addr=ADDR` in `args` (the flag wins), else the
/// `PORTCULLIS_ADDR` variable read through `lookup`, else [`DEFAULT_ADDR`].
///
/// # Errors
///
/// A message naming the unknown argument or the address that does not parse.
///
/// # Examples
///
/// ```
/// let addr = demo_users::listen_addr(["--addr=127.0.0.1:8080".to_owned()], |_| None).unwrap();
/// assert_eq!(addr.port(), 8080);
/// ```
pub fn listen_addr(
    args: impl IntoIterator<Item = String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<SocketAddr, String> {
    let mut flag = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let value = match arg.strip_prefix("--addr=") {
            Some(value) => value.to_owned(),
            None if arg == "--addr" => args.next().ok_or("--addr needs a value")?,
            None => {
                return Err(format!(
                    "unknown argument {arg:?} (usage: [--addr HOST:PORT])"
                ));
            }
        };
        flag = Some(value);
    }
    let (name, value) = match flag {
        Some(value) => ("--addr", value),
        None => (
            "PORTCULLIS_ADDR",
            lookup("PORTCULLIS_ADDR")
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_ADDR.to_owned()),
        ),
    };
    value
        .trim()
        .parse()
        .map_err(|_| format!("{name}: {value:?} is not HOST:PORT"))
}

/// `GET /healthz` (200 while the process serves) and `GET /readyz` (`checks`: 200 when every
/// dependency is ready, else 503 with a JSON reason and `Retry-After`). Merge it outside the
/// authentication layers: probes carry no credentials and must not touch a session store.
///
/// # Examples
///
/// ```
/// use axum::Router;
/// use portcullis_core::{AlwaysReady, ReadinessChecks};
///
/// let app: Router = Router::new()
///     .merge(demo_users::health_routes(ReadinessChecks::new().check("store", AlwaysReady)));
/// ```
pub fn health_routes<S: Clone + Send + Sync + 'static>(checks: ReadinessChecks) -> Router<S> {
    Router::new()
        .route("/healthz", get(healthz))
        .route_service("/readyz", checks)
}

/// `GET /healthz`: the process is up and serving; says nothing about its dependencies (that
/// is `/readyz`), so an outage of Redis never gets a healthy process restarted.
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "status": "ok" }))
}

/// Completes on the first SIGTERM or Ctrl-C (SIGINT): pass it to a server's graceful
/// shutdown, which then stops accepting, finishes the requests in flight, and returns.
///
/// The signal handlers are installed by this call, not when the future is first polled, so
/// call it before announcing that the server listens: a SIGTERM sent right after the
/// announcement then stops the server gracefully instead of killing it. Must be called inside
/// a Tokio runtime.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_from_flag_variable_or_default() {
        let none = |_: &str| None;
        let env = |name: &str| (name == "PORTCULLIS_ADDR").then(|| "127.0.0.1:9".to_owned());
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(listen_addr(args(&[]), none).unwrap().port(), 3000);
        assert_eq!(listen_addr(args(&[]), env).unwrap().port(), 9);
        assert_eq!(
            listen_addr(args(&["--addr", "127.0.0.1:7"]), env)
                .unwrap()
                .port(),
            7
        );
        assert_eq!(
            listen_addr(args(&["--addr=127.0.0.1:8"]), env)
                .unwrap()
                .port(),
            8
        );
        for bad in [
            &["--addr"][..],
            &["--addr", "nowhere"],
            &["--port", "1"],
            &["127.0.0.1:1"],
        ] {
            assert!(listen_addr(args(bad), none).is_err(), "{bad:?}");
        }
        let broken = |_: &str| Some("not an address".to_owned());
        assert!(
            listen_addr(args(&[]), broken)
                .unwrap_err()
                .contains("PORTCULLIS_ADDR")
        );
        // The flag wins: a broken variable is not even parsed.
        assert!(listen_addr(args(&["--addr=127.0.0.1:1"]), broken).is_ok());
    }
}
