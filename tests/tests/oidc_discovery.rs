//! `KeySet::from_oidc` against a local identity provider (an axum server on 127.0.0.1 serving
//! `/.well-known/openid-configuration` and a JWKS), black-box through `BearerLayer` over HTTP:
//! keys load and a token verifies; a discovery document for another issuer is refused with a
//! clear log line (OpenID Connect Discovery 1.0 §4.3) and its tokens never get in; while
//! discovery is down tokens get 503 with `Retry-After` (fail closed), then work once it is up.

use std::{
    future::Future,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use portcullis_core::CurrentUser;
use portcullis_jwt::{
    Algorithm, BearerLayer, JwksOptions, KeySet, SigningKey, TokenIssuer, TokenVerifier, Validation,
};
use portcullis_tests::http::serve;
use reqwest::header;
use serde_json::{Value, json};

const AUDIENCE: &str = "https://ads-api.example";

#[derive(Clone)]
struct Provider {
    up: Arc<AtomicBool>,
    /// The `issuer` the document claims; `None`: the provider's own URL.
    claimed_issuer: Arc<Mutex<Option<String>>>,
    base: Arc<Mutex<String>>,
    jwks: Value,
}

async fn discovery(State(provider): State<Provider>) -> Response {
    if !provider.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let base = provider.base.lock().unwrap().clone();
    let issuer = provider
        .claimed_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| base.clone());
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "authorization_endpoint": format!("{base}/authorize"),
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
    .into_response()
}

async fn jwks(State(provider): State<Provider>) -> Response {
    if !provider.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(provider.jwks.clone()).into_response()
}

/// Starts a provider signing with `key`; returns it and its issuer URL.
async fn provider(key: &SigningKey, up: bool) -> (Provider, String) {
    let provider = Provider {
        up: Arc::new(AtomicBool::new(up)),
        claimed_issuer: Arc::default(),
        base: Arc::default(),
        jwks: json!({"keys": [key.public_jwk().unwrap()]}),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(provider.clone());
    let addr = serve(app).await;
    let issuer = format!("http://{addr}");
    *provider.base.lock().unwrap() = issuer.clone();
    (provider, issuer)
}

fn options() -> JwksOptions {
    JwksOptions::new()
        .retry_interval(Duration::from_millis(100))
        .min_refetch_interval(Duration::from_millis(100))
        .timeout(Duration::from_secs(2))
}

/// An API trusting the issuer's discovered keys, served on a loopback port.
async fn api(issuer: &str) -> String {
    let keys = KeySet::from_oidc(issuer, options()).unwrap();
    let verifier = TokenVerifier::new(keys, Validation::new().issuer(issuer).audience(AUDIENCE));
    let app = Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<Value>| async move { Json(user) }),
        )
        .layer(BearerLayer::new(verifier).realm("ads"));
    format!("http://{}", serve(app).await)
}

fn token(key: &SigningKey, issuer: &str) -> String {
    TokenIssuer::new(key.clone())
        .issuer(issuer)
        .audience(AUDIENCE)
        .issue("carol", &json!({"user": "carol", "role": "advertiser"}))
        .unwrap()
        .token
}

async fn get_me(api: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{api}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asks until the answer is not 503, for at most `within`; returns the last answer.
async fn until_not_503(api: &str, token: &str, within: Duration) -> reqwest::Response {
    let started = Instant::now();
    loop {
        let response = get_me(api, token).await;
        if response.status() != 503 || started.elapsed() > within {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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
