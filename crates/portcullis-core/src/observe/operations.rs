//! The signals an operator watches to tell an outage from an attack: store errors, JWKS fetch
//! failures, the revocation feed's reconnects and catch-up time, and how long the
//! authentication step of a request takes.
//!
//! Like every portcullis metric they carry no secret: only fixed labels (OWASP Logging Cheat
//! Sheet, "Data to exclude").

use std::time::{Duration, Instant};

use crate::{AuthRejection, Identity, IdentityFuture, StoreError};

use super::mechanism_label;

/// Store errors that failed a request closed (503), by `kind`: `unavailable`, `timeout`,
/// `corrupt`. Input a store cannot hold ([`StoreError::InvalidInput`]) is a client error, not
/// an outage: it is not counted here but as a 400 `invalid_request` rejection.
pub const STORE_ERRORS_TOTAL: &str = "portcullis_store_errors_total";
/// Failed fetches of a JWKS URL, by `reason`: `http`, `status`, `too_large`, `invalid`.
pub const JWKS_FETCH_FAILURES_TOTAL: &str = "portcullis_jwks_fetch_failures_total";
/// Attempts of the revocation feed to subscribe again after losing its subscription, by
/// `outcome`: `ok`, `failed`.
pub const REVOCATION_FEED_RECONNECTS_TOTAL: &str = "portcullis_revocation_feed_reconnects_total";
/// Seconds a revocation-feed subscription was not caught up (from the loss of its subscription
/// until it has re-read what it missed): the window in which this node may not know a
/// revocation published elsewhere.
pub const REVOCATION_FEED_LAG_SECONDS: &str = "portcullis_revocation_feed_lag_seconds";
/// Revocation-feed subscriptions of this process that are not caught up now (a gauge).
pub const REVOCATION_FEEDS_BEHIND: &str = "portcullis_revocation_feeds_behind";
/// Seconds the lazy authentication step took (loading a session, refreshing a hybrid session),
/// by `mechanism` and `outcome`: `authenticated`, `anonymous`, `refused`, `unavailable`.
pub const AUTH_DURATION_SECONDS: &str = "portcullis_auth_duration_seconds";

/// Records a store error that is failing a request closed. Bad input
/// ([`StoreError::InvalidInput`]) is no store failure and is not recorded.
pub fn store_error(error: &StoreError) {
    let kind = match error {
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Timeout => "timeout",
        StoreError::Corrupt(_) => "corrupt",
        StoreError::InvalidInput(_) => return,
    };
    metrics::counter!(STORE_ERRORS_TOTAL, "kind" => kind).increment(1);
}

/// Why a JWKS fetch failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksFailure {
    /// The request did not complete (connection, TLS, timeout).
    Http,
    /// The server answered with a status other than 200.
    Status,
    /// The document exceeded the size limit.
    TooLarge,
    /// The document is not a usable key set.
    Invalid,
}

/// Records a failed JWKS fetch (the last good key set stays in use).
pub fn jwks_fetch_failure(failure: JwksFailure) {
    let reason = match failure {
        JwksFailure::Http => "http",
        JwksFailure::Status => "status",
        JwksFailure::TooLarge => "too_large",
        JwksFailure::Invalid => "invalid",
    };
    metrics::counter!(JWKS_FETCH_FAILURES_TOTAL, "reason" => reason).increment(1);
}

/// Records an attempt of the revocation feed to subscribe again.
pub fn revocation_feed_reconnect(succeeded: bool) {
    let outcome = if succeeded { "ok" } else { "failed" };
    metrics::counter!(REVOCATION_FEED_RECONNECTS_TOTAL, "outcome" => outcome).increment(1);
}

/// Records that a revocation-feed subscription fell behind (`behind_since` is `None`) or caught
/// up again after `behind_since`.
pub fn revocation_feed_caught_up(caught_up: bool, behind_since: Option<Instant>) {
    let behind = metrics::gauge!(REVOCATION_FEEDS_BEHIND);
    if caught_up {
        behind.decrement(1.0);
        if let Some(since) = behind_since {
            metrics::histogram!(REVOCATION_FEED_LAG_SECONDS).record(since.elapsed().as_secs_f64());
        }
    } else {
        behind.increment(1.0);
    }
}

/// Runs a lazy identity lookup, recording how long it took.
pub(crate) async fn timed_identify(
    lookup: IdentityFuture<'_>,
) -> Result<Option<Identity>, AuthRejection> {
    let started = Instant::now();
    let result = lookup.await;
    auth_duration(&result, started.elapsed());
    result
}

fn auth_duration(result: &Result<Option<Identity>, AuthRejection>, elapsed: Duration) {
    let (mechanism, outcome) = match result {
        Ok(Some(identity)) => (mechanism_label(identity.mechanism()), "authenticated"),
        Ok(None) => ("none", "anonymous"),
        Err(rejection) if rejection.status().is_server_error() => ("none", "unavailable"),
        Err(_) => ("none", "refused"),
    };
    metrics::histogram!(AUTH_DURATION_SECONDS, "mechanism" => mechanism, "outcome" => outcome)
        .record(elapsed.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;
    use crate::{Identity, Mechanism};

    #[tokio::test]
    async fn signals_reach_the_recorder() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let identity =
            Identity::from_user(&serde_json::json!({"user": "alice"}), Mechanism::Session);
        let found = identity
            .map(Some)
            .map_err(|_| AuthRejection::missing_credentials());
        metrics::with_local_recorder(&recorder, || {
            store_error(&StoreError::Timeout);
            jwks_fetch_failure(JwksFailure::Status);
            revocation_feed_reconnect(false);
            revocation_feed_caught_up(false, None);
            revocation_feed_caught_up(true, Some(Instant::now()));
            auth_duration(&found, Duration::from_millis(3));
            auth_duration(
                &Err(AuthRejection::unavailable("down")),
                Duration::from_millis(1),
            );
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let find = |name: &str, label: Option<(&str, &str)>| {
            snapshot.iter().find_map(|(key, _, _, value)| {
                let key = key.key();
                let labelled =
                    label.is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v));
                (key.name() == name && labelled).then_some(value)
            })
        };
        assert!(matches!(
            find(STORE_ERRORS_TOTAL, Some(("kind", "timeout"))),
            Some(DebugValue::Counter(1))
        ));
        assert!(matches!(
            find(JWKS_FETCH_FAILURES_TOTAL, Some(("reason", "status"))),
            Some(DebugValue::Counter(1))
        ));
        assert!(matches!(
            find(
                REVOCATION_FEED_RECONNECTS_TOTAL,
                Some(("outcome", "failed"))
            ),
            Some(DebugValue::Counter(1))
        ));
        assert!(
            matches!(find(REVOCATION_FEEDS_BEHIND, None), Some(DebugValue::Gauge(g)) if g.into_inner() == 0.0)
        );
        assert!(
            matches!(find(REVOCATION_FEED_LAG_SECONDS, None), Some(DebugValue::Histogram(h)) if h.len() == 1)
        );
        assert!(matches!(
            find(AUTH_DURATION_SECONDS, Some(("outcome", "authenticated"))),
            Some(DebugValue::Histogram(h)) if h.len() == 1
        ));
        assert!(matches!(
            find(AUTH_DURATION_SECONDS, Some(("outcome", "unavailable"))),
            Some(DebugValue::Histogram(h)) if h.len() == 1
        ));
    }
}
