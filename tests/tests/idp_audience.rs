//! Identity-provider tokens carry `aud`; a service that configured no audience must refuse them
//! (RFC 7519 §4.1.3) and say exactly what to configure: over HTTP, a plain 401
//! `invalid_token` (the client never learns which check failed); in the logs, the precise
//! reason for every refusal and a rate-limited warning naming
//! `Validation::audience` / `JWT_AUDIENCE` and the token's audiences, never the token (OWASP
//! Logging Cheat Sheet). jwt-api warns at start-up when `JWT_JWKS_URL` comes without
//! `JWT_AUDIENCE`.

use axum::{Json, Router, routing::get};
use portcullis_core::CurrentUser;
use portcullis_jwt::{
    Algorithm, BearerLayer, KeySet, SigningKey, TokenIssuer, TokenVerifier, Validation,
};
use portcullis_tests::{http::serve, logs::logged};
use reqwest::header;
use serde_json::{Value, json};

const ISSUER: &str = "https://tenant.eu.auth0.example/";
const AUDIENCE: &str = "https://ads-api.example";

/// An Auth0-shaped access token for the API `AUDIENCE`.
fn provider_token(key: &SigningKey) -> String {
    TokenIssuer::new(key.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .issue(
            "auth0|64f1c2",
            &json!({
                "azp": "Xk3sJ4", "scope": "openid profile read:ads",
                "user": "carol", "role": "advertiser"
            }),
        )
        .unwrap()
        .token
}

fn api(verifier: TokenVerifier) -> Router {
    Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<Value>| async move { Json(user) }),
        )
        .layer(BearerLayer::new(verifier).realm("ads"))
}

#[test]
fn a_token_with_aud_and_no_configured_audience_is_refused_with_what_to_configure() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let token = provider_token(&key);
    let keys = KeySet::from_signing_key(&key);
    let logs = logged(tracing::Level::DEBUG, || {
        let (keys, token) = (keys.clone(), token.clone());
        async move {
            let unconfigured = serve(api(TokenVerifier::new(
                keys.clone(),
                Validation::new().issuer(ISSUER),
            )))
            .await;
            let http = reqwest::Client::new();
            for _ in 0..3 {
                let response = http
                    .get(format!("http://{unconfigured}/me"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 401);
                assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
                let challenge = response.headers()[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(
                    challenge.starts_with(r#"Bearer realm="ads", error="invalid_token""#),
                    "{challenge}"
                );
                // The client gets the generic text (which check failed is for the logs,
                // OWASP Authentication Cheat Sheet); the operator gets the warning below.
                assert!(
                    challenge.ends_with(r#"error_description="the access token is invalid""#),
                    "{challenge}"
                );
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"], "invalid_token");
            }

            // Configuring the audience is the whole fix: the same token now passes.
            let configured = serve(api(TokenVerifier::new(
                keys,
                Validation::new().issuer(ISSUER).audience(AUDIENCE),
            )))
            .await;
            let response = http
                .get(format!("http://{configured}/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let user: Value = response.json().await.unwrap();
            assert_eq!(user["user"], "carol");
        }
    });
    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    // Three refused requests, one warning (rate-limited).
    assert_eq!(warnings.len(), 1, "{logs}");
    let warning = warnings[0];
    for needle in [
        "Validation::new().audience(",
        "JWT_AUDIENCE",
        "RFC 7519",
        &format!("token_audiences=[{AUDIENCE:?}]"),
    ] {
        assert!(warning.contains(needle), "{needle:?} missing in {warning}");
    }
    // Every refusal is logged with its precise reason.
    let reasons = logs
        .lines()
        .filter(|l| l.contains(r#"event="rejection""#))
        .filter(|l| l.contains("no audience is configured (Validation::audience)"));
    assert_eq!(reasons.count(), 3, "{logs}");
    let signature = token.rsplit('.').next().unwrap();
    assert!(
        !logs.contains(&token) && !logs.contains(signature),
        "{logs}"
    );
}

#[test]
fn jwt_api_warns_at_start_up_when_an_outside_issuer_has_no_audience() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = json!({"keys": [key.public_jwk().unwrap()]});
    let token = provider_token(&key);
    let logs = logged(tracing::Level::DEBUG, || async move {
        let outside = serve(Router::new().route(
            "/jwks.json",
            get(move || {
                let jwks = jwks.clone();
                async move { Json(jwks) }
            }),
        ))
        .await;
        let url = format!("http://{outside}/jwks.json");
        let settings = jwt_api::Settings::from_lookup(|name| match name {
            "JWT_JWKS_URL" => Some(url.clone()),
            "JWT_ISSUER" => Some(ISSUER.to_owned()),
            _ => None,
        })
        .unwrap();
        let state = jwt_api::AppState::from_settings(&settings).await.unwrap();
        let addr = serve(jwt_api::app(state)).await;
        // The JWKS loads in the background: wait until a token is judged on its claims.
        let http = reqwest::Client::new();
        let mut last = None;
        for _ in 0..100 {
            let response = http
                .get(format!("http://{addr}/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status == 401 {
                last = Some(body);
                break;
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let body = last.expect("the JWKS never loaded");
        assert_eq!(body["error"], "invalid_token");
    });
    assert!(
        logs.contains("JWT_JWKS_URL is set without JWT_AUDIENCE"),
        "{logs}"
    );
    assert!(logs.contains("Validation::new().audience("), "{logs}");
}
