//! A local OpenID Connect provider for the tests: a discovery document and a JWKS on
//! 127.0.0.1, switchable off, whose document can claim another issuer; and an API trusting it
//! through `KeySet::from_oidc` behind `BearerLayer`.

use std::{
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
    BearerLayer, JwksOptions, KeySet, SigningKey, TokenIssuer, TokenVerifier, Validation,
};
use serde_json::{Value, json};

use crate::http::serve;

/// The audience the API requires.
pub const AUDIENCE: &str = "https://ads-api.example";

/// A running provider and its switches.
#[derive(Clone, Debug)]
pub struct Provider {
    /// Whether it answers (else 503).
    pub up: Arc<AtomicBool>,
    /// The `issuer` the document claims; `None`: the provider's own URL.
    pub claimed_issuer: Arc<Mutex<Option<String>>>,
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
pub async fn provider(key: &SigningKey, up: bool) -> (Provider, String) {
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

/// Fast retries, so tests recover in milliseconds.
pub fn options() -> JwksOptions {
    JwksOptions::new()
        .retry_interval(Duration::from_millis(100))
        .min_refetch_interval(Duration::from_millis(100))
        .timeout(Duration::from_secs(2))
}

/// An API trusting the issuer's discovered keys, served on a loopback port.
pub async fn api(issuer: &str) -> String {
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

/// A token of `issuer` for [`AUDIENCE`].
pub fn token(key: &SigningKey, issuer: &str) -> String {
    TokenIssuer::new(key.clone())
        .issuer(issuer)
        .audience(AUDIENCE)
        .issue("carol", &json!({"user": "carol", "role": "advertiser"}))
        .unwrap()
        .token
}

/// `GET /me` with the token.
pub async fn get_me(api: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{api}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asks until the answer is not 503, for at most `within`; returns the last answer.
pub async fn until_not_503(api: &str, token: &str, within: Duration) -> reqwest::Response {
    let started = Instant::now();
    loop {
        let response = get_me(api, token).await;
        if response.status() != 503 || started.elapsed() > within {
            return response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
