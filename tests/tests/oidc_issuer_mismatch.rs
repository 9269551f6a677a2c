//! A discovery document speaking for another issuer is refused (OpenID Connect Discovery 1.0
//! §4.3) with a log line that says so, its tokens never get in, and fixing the document is
//! enough. Alone in its test binary: `tracing`'s per-callsite interest cache can miss events
//! for a thread-local subscriber while other tests hit the same callsites without one.

use std::{
    future::Future,
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use portcullis_jwt::{Algorithm, SigningKey};
use portcullis_tests::oidc_provider::{api, get_me, provider, token, until_not_503};

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

/// Runs `scenario` on a current-thread runtime (servers and the key refresh task included)
/// under a subscriber local to this thread; returns what was logged.
fn logged<F: Future<Output = ()>>(scenario: impl FnOnce() -> F) -> String {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || runtime.block_on(scenario()));
    String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned()
}

#[test]
fn a_document_for_another_issuer_is_refused_with_a_clear_error() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let logs = logged(|| async move {
        let (provider, issuer) = provider(&key, true).await;
        // The classic mistake: the provider's issuer ends with a slash, the configuration not.
        *provider.claimed_issuer.lock().unwrap() = Some(format!("{issuer}/"));
        let api = api(&issuer).await;
        let token = token(&key, &issuer);
        for _ in 0..5 {
            let response = get_me(&api, &token).await;
            assert_eq!(response.status(), 503, "never let in");
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        // Fixing the document is enough: the next retry loads the keys.
        *provider.claimed_issuer.lock().unwrap() = None;
        let response = until_not_503(&api, &token, Duration::from_secs(5)).await;
        assert_eq!(response.status(), 200);
    });
    assert!(
        logs.contains("is not the configured issuer") && logs.contains("§4.3"),
        "{logs}"
    );
    assert!(logs.contains("trailing slash"), "{logs}");
}
