//! Readiness: whether the stores, the revocation feed and the keys an application depends on
//! can serve right now. [`Readiness`] is one check; [`ReadinessChecks`] runs a named list of
//! them concurrently, each within a timeout, and answers `GET /readyz` as a tower service:
//! 200 `{"ready": true, ..}` or 503 `{"ready": false, "reason": ..}` with `Retry-After`.
//!
//! An orchestrator takes a node out of its load balancer while it is not ready and puts it back
//! when it is; liveness (`GET /healthz`) stays a plain 200 so a store outage never gets the
//! process restarted (it recovers by itself when the store returns).

use std::{
    borrow::Cow,
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_service::Service;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How long one check may take before it counts as not ready.
pub const DEFAULT_READINESS_TIMEOUT: Duration = Duration::from_secs(1);
/// The `Retry-After` of a not-ready answer, in seconds.
const RETRY_AFTER_SECS: u32 = 5;

/// Why a dependency is not ready: a short reason safe to show to anyone who can reach the
/// readiness route (`"redis unreachable"`), never a URL, password or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady {
    reason: Cow<'static, str>,
}

impl NotReady {
    /// Not ready, because of `reason`.
    ///
    /// # Examples
    ///
    /// ```
    /// let not_ready = portcullis_core::NotReady::new("redis unreachable");
    /// assert_eq!(not_ready.reason(), "redis unreachable");
    /// ```
    pub fn new(reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for NotReady {}

/// One dependency that may or may not be able to serve: a store, a revocation feed, a key set.
///
/// The stores of portcullis implement it (the in-memory ones are always ready; the Redis ones
/// ping Redis), as do `KeySet` (keys loaded) and the Redis revocation feed (subscribed and
/// caught up). Closures returning a future of `Result<(), NotReady>` implement it too.
///
/// # Examples
///
/// ```
/// use portcullis_core::{NotReady, Readiness};
///
/// struct Database { up: bool }
///
/// impl Readiness for Database {
///     async fn check(&self) -> Result<(), NotReady> {
///         if self.up { Ok(()) } else { Err(NotReady::new("database unreachable")) }
///     }
/// }
/// # fn assert_readiness(_: impl Readiness) {}
/// # assert_readiness(Database { up: true });
/// ```
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when the dependency can serve now, else why not. Should answer quickly;
    /// [`ReadinessChecks`] bounds it with a timeout anyway.
    fn check(&self) -> impl Future<Output = Result<(), NotReady>> + Send;
}

impl<F, Fut> Readiness for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), NotReady>> + Send,
{
    fn check(&self) -> impl Future<Output = Result<(), NotReady>> + Send {
        self()
    }
}

/// A dependency that is always ready: in-memory stores, static keys.
///
/// # Examples
///
/// ```
/// use portcullis_core::{AlwaysReady, ReadinessChecks};
/// let checks = ReadinessChecks::new().check("store", AlwaysReady);
/// # let _ = checks;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysReady;

impl Readiness for AlwaysReady {
    async fn check(&self) -> Result<(), NotReady> {
        Ok(())
    }
}

// Object-safe mirror of `Readiness`, so a list can hold different checks.
trait DynReadiness: Send + Sync {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>>;
}

impl<T: Readiness> DynReadiness for T {
    fn check(&self) -> BoxFuture<'_, Result<(), NotReady>> {
        Box::pin(Readiness::check(self))
    }
}

#[derive(Clone)]
struct NamedCheck {
    name: Cow<'static, str>,
    check: Arc<dyn DynReadiness>,
}

/// A named list of [`Readiness`] checks, run concurrently, each within a timeout (default
/// [`DEFAULT_READINESS_TIMEOUT`]). Cheap to clone.
///
/// As a tower service (any request) it answers with the [`ReadinessReport`] as JSON: mount it
/// on `GET /readyz`.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::get};
/// use portcullis_core::{AlwaysReady, NotReady, ReadinessChecks};
///
/// let checks = ReadinessChecks::new()
///     .check("store", AlwaysReady)
///     .check("feed", || async { Err::<(), _>(NotReady::new("revocation feed not caught up")) });
/// let app: Router = Router::new()
///     .route("/healthz", get(|| async { "ok" }))
///     .route_service("/readyz", checks);
/// # }
/// ```
#[derive(Clone)]
pub struct ReadinessChecks {
    checks: Arc<[NamedCheck]>,
    timeout: Option<Duration>,
}

impl fmt::Debug for ReadinessChecks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadinessChecks")
            .field(
                "checks",
                &self.checks.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout_or_default())
            .finish()
    }
}

impl Default for ReadinessChecks {
    fn default() -> Self {
        Self {
            checks: Arc::new([]),
            timeout: None,
        }
    }
}

impl ReadinessChecks {
    /// No checks yet: ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `check` under `name` (`"store"`, `"revocation feed"`, `"keys"`); the name is what
    /// the JSON answer reports.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{AlwaysReady, ReadinessChecks};
    /// let checks = ReadinessChecks::new().check("store", AlwaysReady);
    /// assert_eq!(checks.len(), 1);
    /// ```
    #[must_use]
    pub fn check(mut self, name: impl Into<Cow<'static, str>>, check: impl Readiness) -> Self {
        let mut checks = self.checks.to_vec();
        checks.push(NamedCheck {
            name: name.into(),
            check: Arc::new(check),
        });
        self.checks = checks.into();
        self
    }

    /// How long each check may take before it counts as not ready (default 1 second).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let checks = portcullis_core::ReadinessChecks::new().timeout(Duration::from_millis(500));
    /// # let _ = checks;
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn timeout_or_default(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_READINESS_TIMEOUT)
    }

    /// How many checks there are.
    pub fn len(&self) -> usize {
        self.checks.len()
    }

    /// Whether there are no checks.
    pub fn is_empty(&self) -> bool {
        self.checks.is_empty()
    }

    /// Runs every check concurrently, each within the timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use portcullis_core::{AlwaysReady, NotReady, ReadinessChecks};
    ///
    /// let report = ReadinessChecks::new()
    ///     .check("store", AlwaysReady)
    ///     .check("feed", || async { Err::<(), _>(NotReady::new("feed behind")) })
    ///     .run()
    ///     .await;
    /// assert!(!report.is_ready());
    /// assert_eq!(report.reason().as_deref(), Some("feed: feed behind"));
    /// # }
    /// ```
    pub async fn run(&self) -> ReadinessReport {
        let timeout = self.timeout_or_default();
        let mut pending: Vec<_> = self
            .checks
            .iter()
            .map(|named| {
                let check = named.check.check();
                Some(Box::pin(async move {
                    tokio::time::timeout(timeout, check)
                        .await
                        .unwrap_or_else(|_| {
                            Err(NotReady::new(format!(
                                "no answer within {} ms",
                                timeout.as_millis()
                            )))
                        })
                }))
            })
            .collect();
        let mut results: Vec<Option<Result<(), NotReady>>> = vec![None; pending.len()];
        std::future::poll_fn(|cx| {
            let mut done = true;
            for (slot, result) in pending.iter_mut().zip(results.iter_mut()) {
                if let Some(future) = slot {
                    match future.as_mut().poll(cx) {
                        Poll::Ready(outcome) => {
                            *result = Some(outcome);
                            *slot = None;
                        }
                        Poll::Pending => done = false,
                    }
                }
            }
            if done { Poll::Ready(()) } else { Poll::Pending }
        })
        .await;
        ReadinessReport {
            checks: self
                .checks
                .iter()
                .zip(results)
                .map(|(named, result)| (named.name.clone(), result.unwrap_or(Ok(()))))
                .collect(),
        }
    }
}

/// What [`ReadinessChecks::run`] found: each check's outcome, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    checks: Vec<(Cow<'static, str>, Result<(), NotReady>)>,
}

impl ReadinessReport {
    /// Whether every check passed.
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, result)| result.is_ok())
    }

    /// The first failure as `"name: reason"`, if any.
    pub fn reason(&self) -> Option<String> {
        self.checks.iter().find_map(|(name, result)| {
            result
                .as_ref()
                .err()
                .map(|not_ready| format!("{name}: {not_ready}"))
        })
    }

    /// Each check's name and outcome, in the order they were added.
    pub fn checks(&self) -> impl Iterator<Item = (&str, Result<(), &NotReady>)> {
        self.checks
            .iter()
            .map(|(name, result)| (name.as_ref(), result.as_ref().map(|_| ())))
    }

    /// The JSON answer: `{"ready": true, "checks": {"store": "ok"}}`, or
    /// `{"ready": false, "reason": "store: redis unreachable", "checks": {..}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let checks: serde_json::Map<String, serde_json::Value> = self
            .checks
            .iter()
            .map(|(name, result)| {
                let outcome = match result {
                    Ok(()) => "ok".to_owned(),
                    Err(not_ready) => not_ready.reason().to_owned(),
                };
                (name.to_string(), serde_json::Value::String(outcome))
            })
            .collect();
        let mut body = serde_json::json!({ "ready": self.is_ready(), "checks": checks });
        if let (Some(reason), Some(fields)) = (self.reason(), body.as_object_mut()) {
            fields.insert("reason".to_owned(), serde_json::Value::String(reason));
        }
        body
    }

    /// 200 with the JSON answer when ready, else 503 with it and `Retry-After`. Never cached:
    /// the next probe must see the state of then.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        let mut response = Response::new(B::from(Bytes::from(self.to_json().to_string())));
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if !self.is_ready() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        }
        response
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for ReadinessReport {
    fn into_response(self) -> axum_core::response::Response {
        self.to_response::<axum_core::body::Body>()
    }
}

impl<B> Service<Request<B>> for ReadinessChecks {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        let checks = self.clone();
        Box::pin(async move {
            let report = checks.run().await;
            let response: Response<Bytes> = report.to_response();
            Ok(response.map(|body| String::from_utf8_lossy(&body).into_owned()))
        })
    }
}

#[cfg(test)]
mod tests;
