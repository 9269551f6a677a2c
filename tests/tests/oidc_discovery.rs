//! `KeySet::from_oidc` against a local identity provider (an axum server on 127.0.0.1 serving
//! `/.well-known/openid-configuration` and a JWKS), black-box through `BearerLayer` over HTTP:
//! keys load and a token verifies, pinned to the issuer; while discovery is down tokens get 503
//! with `Retry-After` (fail closed), then work once it is up. The issuer-mismatch case is in
//! oidc_issuer_mismatch.rs (it captures logs).

use std::{sync::atomic::Ordering, time::Duration};

use portcullis_jwt::{Algorithm, SigningKey};
use portcullis_tests::oidc_provider::{api, get_me, provider, token, until_not_503};
use reqwest::header;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovered_keys_verify_the_issuers_tokens() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (_provider, issuer) = provider(&key, true).await;
    let api = api(&issuer).await;
    let response = until_not_503(&api, &token(&key, &issuer), Duration::from_secs(5)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["user"], "carol");
    // The keys are pinned to the issuer: the same key speaking for another issuer is refused.
    let response = get_me(&api, &token(&key, "https://evil.example")).await;
    assert_eq!(response.status(), 401);
    // A key the provider does not publish is refused (401 once the refetch found nothing).
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    let response = get_me(&api, &token(&stranger, &issuer)).await;
    assert_eq!(response.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_down_is_503_until_it_comes_up() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (provider, issuer) = provider(&key, false).await;
    let api = api(&issuer).await;
    let token = token(&key, &issuer);
    for _ in 0..3 {
        let response = get_me(&api, &token).await;
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
    provider.up.store(true, Ordering::SeqCst);
    let response = until_not_503(&api, &token, Duration::from_secs(5)).await;
    assert_eq!(response.status(), 200);
}
