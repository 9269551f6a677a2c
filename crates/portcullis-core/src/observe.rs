//! What portcullis reports about itself: `tracing` events under the `portcullis` target and
//! counters through the [`metrics`] facade, which an application exports to Prometheus (or
//! anything else) by installing a recorder. Without a recorder the counters cost an atomic load.
//!
//! Events and counters never carry a secret: no session ID, token or password, only the
//! mechanism, the outcome and public handles (OWASP Logging Cheat Sheet, "Data to exclude").
//!
//! | counter | labels |
//! |---|---|
//! | [`REJECTIONS_TOTAL`] | `reason` (the error code), `status` |
//! | [`LOGINS_TOTAL`] | `mechanism` |
//! | [`REFRESHES_TOTAL`] | `outcome`: `rotated`, `grace`, `reuse_detected`, `invalid`, `expired` |
//! | [`REVOCATIONS_TOTAL`] | `mechanism`, `scope`: `session`, `user`, `theft` |
//! | [`STORE_ERRORS_TOTAL`] | `kind`: `unavailable`, `timeout`, `corrupt` (outages only: input a store cannot hold is a 400 rejection) |
//! | [`JWKS_FETCH_FAILURES_TOTAL`] | `reason`: `http`, `status`, `too_large`, `invalid` |
//! | [`REVOCATION_FEED_RECONNECTS_TOTAL`] | `outcome`: `ok`, `failed` |
//! | [`REVOCATION_FEEDS_BEHIND`] (gauge) | |
//! | [`REVOCATION_FEED_LAG_SECONDS`] (histogram) | |
//! | [`AUTH_DURATION_SECONDS`] (histogram) | `mechanism`, `outcome`: `authenticated`, `anonymous`, `refused`, `unavailable` |

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{AuthRejection, Mechanism};

mod operations;

pub(crate) use operations::timed_identify;
pub use operations::{
    AUTH_DURATION_SECONDS, JWKS_FETCH_FAILURES_TOTAL, JwksFailure, REVOCATION_FEED_LAG_SECONDS,
    REVOCATION_FEED_RECONNECTS_TOTAL, REVOCATION_FEEDS_BEHIND, STORE_ERRORS_TOTAL,
    jwks_fetch_failure, revocation_feed_caught_up, revocation_feed_reconnect, store_error,
};

/// Requests refused, by reason.
pub const REJECTIONS_TOTAL: &str = "portcullis_rejections_total";
/// Successful logins, by mechanism.
pub const LOGINS_TOTAL: &str = "portcullis_logins_total";
/// Refresh attempts, by outcome.
pub const REFRESHES_TOTAL: &str = "portcullis_refreshes_total";
/// Sessions revoked, by mechanism and scope.
pub const REVOCATIONS_TOTAL: &str = "portcullis_revocations_total";

fn mechanism_label(mechanism: Mechanism) -> &'static str {
    match mechanism {
        Mechanism::Session => "session",
        Mechanism::Bearer => "bearer",
        Mechanism::Hybrid => "hybrid",
        Mechanism::Testing => "testing",
    }
}

/// How often a WARN line for server-side refusals is written, per status class.
const WARN_EVERY_SECS: u64 = 10;

/// At most one log line per window: an outage (keys unavailable, store down) refuses every
/// request, and one WARN per request would flood the log while saying nothing new. The
/// counter still counts each refusal; the line says how many it stands for.
struct Throttle {
    next_at: AtomicU64,
    suppressed: AtomicU64,
}

impl Throttle {
    const fn new() -> Self {
        Self {
            next_at: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written at `now` (`n` lines were suppressed since the
    /// last one), `None` when this one is suppressed.
    fn admit(&self, now: u64) -> Option<u64> {
        let next_at = self.next_at.load(Ordering::Relaxed);
        if now >= next_at
            && self
                .next_at
                .compare_exchange(
                    next_at,
                    now.saturating_add(WARN_EVERY_SECS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

static UNAVAILABLE_WARNINGS: Throttle = Throttle::new();
static SERVER_ERROR_WARNINGS: Throttle = Throttle::new();

/// Records a refused request.
pub fn rejection(rejection: &AuthRejection) {
    let status = rejection.status().as_u16();
    let reason = rejection.error_code();
    if status >= 500 {
        let throttle = if status == 503 {
            &UNAVAILABLE_WARNINGS
        } else {
            &SERVER_ERROR_WARNINGS
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        if let Some(suppressed) = throttle.admit(now) {
            tracing::warn!(target: "portcullis", event = "rejection", reason, status, suppressed, description = rejection.description());
        }
    } else {
        tracing::debug!(target: "portcullis", event = "rejection", reason, status, description = rejection.description());
    }
    metrics::counter!(REJECTIONS_TOTAL, "reason" => reason, "status" => status_label(status))
        .increment(1);
}

fn status_label(status: u16) -> &'static str {
    match status {
        400 => "400",
        401 => "401",
        403 => "403",
        429 => "429",
        503 => "503",
        500 => "500",
        _ => "other",
    }
}

/// Records a login. `handle` is the public session handle, never the secret.
pub fn login(mechanism: Mechanism, handle: Option<&str>) {
    let mechanism = mechanism_label(mechanism);
    tracing::info!(target: "portcullis", event = "login", mechanism, handle);
    metrics::counter!(LOGINS_TOTAL, "mechanism" => mechanism).increment(1);
}

/// How a refresh attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The current refresh token was rotated.
    Rotated,
    /// A just-rotated token was presented inside the grace window (a racing tab).
    Grace,
    /// A rotated-out token was presented after the grace window: the session was revoked.
    ReuseDetected,
    /// The token matched nothing.
    Invalid,
    /// The session had expired.
    Expired,
}

/// Records a refresh attempt. Reuse detection is a warning: it means a stolen token or a
/// badly broken client.
pub fn refresh(outcome: RefreshOutcome, session_id: Option<&str>) {
    let label = match outcome {
        RefreshOutcome::Rotated => "rotated",
        RefreshOutcome::Grace => "grace",
        RefreshOutcome::ReuseDetected => "reuse_detected",
        RefreshOutcome::Invalid => "invalid",
        RefreshOutcome::Expired => "expired",
    };
    if outcome == RefreshOutcome::ReuseDetected {
        tracing::warn!(target: "portcullis", event = "refresh_token_reuse", session = session_id, "a rotated-out refresh token was presented again: the session is revoked");
    } else {
        tracing::debug!(target: "portcullis", event = "refresh", outcome = label, session = session_id);
    }
    metrics::counter!(REFRESHES_TOTAL, "outcome" => label).increment(1);
}

/// What a revocation covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationScope {
    /// One session (logout, revoke by handle).
    Session,
    /// Every session of a user (logout-all, password change).
    User,
    /// A session revoked because its refresh token was reused.
    Theft,
}

/// Records `count` revoked sessions.
pub fn revocation(mechanism: Mechanism, scope: RevocationScope, count: u64) {
    let mechanism = mechanism_label(mechanism);
    let scope = match scope {
        RevocationScope::Session => "session",
        RevocationScope::User => "user",
        RevocationScope::Theft => "theft",
    };
    tracing::info!(target: "portcullis", event = "revocation", mechanism, scope, count);
    metrics::counter!(REVOCATIONS_TOTAL, "mechanism" => mechanism, "scope" => scope)
        .increment(count);
}

#[cfg(test)]
mod throttle_tests {
    use super::*;

    #[test]
    fn one_warning_per_window_counting_the_rest() {
        let throttle = Throttle::new();
        assert_eq!(throttle.admit(1_000), Some(0));
        for _ in 0..999 {
            assert_eq!(throttle.admit(1_000 + WARN_EVERY_SECS - 1), None);
        }
        assert_eq!(throttle.admit(1_000 + WARN_EVERY_SECS), Some(999));
        assert_eq!(throttle.admit(1_000 + WARN_EVERY_SECS), None);
        assert_eq!(throttle.admit(1_000 + 5 * WARN_EVERY_SECS), Some(1));
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io,
        sync::{Arc, Mutex},
    };

    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn counter(
        snapshot: &[(
            metrics_util::CompositeKey,
            Option<metrics::Unit>,
            Option<metrics::SharedString>,
            DebugValue,
        )],
        name: &str,
        label: (&str, &str),
    ) -> u64 {
        snapshot
            .iter()
            .filter(|(key, ..)| {
                key.key().name() == name
                    && key
                        .key()
                        .labels()
                        .any(|l| l.key() == label.0 && l.value() == label.1)
            })
            .map(|(.., value)| match value {
                DebugValue::Counter(n) => *n,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn events_and_counters_appear_without_secrets() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let secret = crate::SecretToken::generate();
        // Other tests hit these callsites on other threads without a subscriber; recompute the
        // cached interest now that this test's subscriber is about to exist.
        tracing::callsite::rebuild_interest_cache();
        metrics::with_local_recorder(&recorder, || {
            tracing::subscriber::with_default(subscriber, || {
                login(Mechanism::Session, Some("handle-1"));
                refresh(RefreshOutcome::ReuseDetected, Some("sid-1"));
                revocation(Mechanism::Hybrid, RevocationScope::User, 3);
                let response: http::Response<bytes::Bytes> =
                    AuthRejection::invalid_credentials("expired").to_response();
                assert_eq!(response.status(), 401);
            });
        });
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(
            counter(&snapshot, LOGINS_TOTAL, ("mechanism", "session")),
            1
        );
        assert_eq!(
            counter(&snapshot, REFRESHES_TOTAL, ("outcome", "reuse_detected")),
            1
        );
        assert_eq!(counter(&snapshot, REVOCATIONS_TOTAL, ("scope", "user")), 3);
        assert_eq!(
            counter(
                &snapshot,
                REJECTIONS_TOTAL,
                ("reason", "invalid_credentials")
            ),
            1
        );
        let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        // The rejection event's callsite is shared with every other test that renders a
        // rejection, so its log line is checked end to end in tests/observability.rs; here the
        // counter above proves it was recorded.
        for needle in [
            "event=\"login\"",
            "handle-1",
            "refresh_token_reuse",
            "event=\"revocation\"",
        ] {
            assert!(logs.contains(needle), "missing {needle} in {logs}");
        }
        assert!(!logs.contains(secret.expose()));
    }
}
