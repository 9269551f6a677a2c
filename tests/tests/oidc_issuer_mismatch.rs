//! A discovery document speaking for another issuer is refused (OpenID Connect Discovery 1.0
//! §4.3) with a log line that says so, its tokens never get in, and fixing the document is
//! enough. Alone in its test binary: `tracing`'s per-callsite interest cache can miss events
//! for a thread-local subscriber while other tests hit the same callsites without one.

use std::time::Duration;

use portcullis_jwt::{Algorithm, SigningKey};
use portcullis_tests::logs::logged;
use portcullis_tests::oidc_provider::{api, get_me, provider, token, until_not_503};

#[test]
fn a_document_for_another_issuer_is_refused_with_a_clear_error() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let logs = logged(tracing::Level::WARN, || async move {
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
