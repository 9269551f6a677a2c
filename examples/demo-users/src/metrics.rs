//! `GET /metrics`: what portcullis reports through the `metrics` facade (see
//! `portcullis_core::observe` for the catalogue), in the Prometheus text format, rendered by the
//! maintained `metrics-exporter-prometheus` recorder.
//!
//! The endpoint shows counts, never secrets; still, in production serve it on an internal
//! address or behind authentication (OWASP Logging Cheat Sheet: monitoring data is for
//! operators).

use std::sync::OnceLock;

use axum::{
    Router,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use portcullis_core::observe::{AUTH_DURATION_SECONDS, REVOCATION_FEED_LAG_SECONDS};

/// Buckets of the latency histograms, in seconds: a memory lookup is microseconds, a Redis
/// round trip a millisecond, an outage hits the store timeout.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Buckets of the revocation feed's catch-up time, in seconds.
const LAG_BUCKETS: &[f64] = &[0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// The process-wide recorder: installed on first use, `None` when another recorder was
/// installed first (then `/metrics` answers 503).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(AUTH_DURATION_SECONDS.to_owned()),
                    LATENCY_BUCKETS,
                )
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        metrics_exporter_prometheus::Matcher::Full(
                            REVOCATION_FEED_LAG_SECONDS.to_owned(),
                        ),
                        LAG_BUCKETS,
                    )
                });
            match builder.and_then(|builder| builder.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "no Prometheus recorder: /metrics answers 503");
                    None
                }
            }
        })
        .as_ref()
}

/// Installs the Prometheus recorder (once per process) and routes `GET /metrics` to it.
pub fn metrics_routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    // Install now, not at the first scrape: counters only count once a recorder exists.
    let _ = handle();
    Router::new().route("/metrics", get(metrics))
}

/// `GET /metrics`: the Prometheus text exposition format.
async fn metrics() -> Response {
    let Some(handle) = handle() else {
        let headers = [(header::RETRY_AFTER, HeaderValue::from_static("60"))];
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, headers).into_response();
    };
    // Keep the exporter's idle-series bookkeeping and histogram buffers bounded.
    handle.run_upkeep();
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(header::CONTENT_TYPE, content_type)], handle.render()).into_response()
}
