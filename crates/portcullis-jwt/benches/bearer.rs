//! Per-request cost of the bearer layer for HS256, ES256 and EdDSA, against a bare router and
//! against a raw `jsonwebtoken::decode` of the same token. Run with
//! `cargo bench -p portcullis-jwt --bench bearer`.

use std::hint::black_box;

use axum::{Router, body::Body, routing::get};
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, header};
use portcullis_core::CurrentUser;
use portcullis_jwt::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};
use serde::Deserialize;
use tower::ServiceExt;

#[derive(Clone, Deserialize)]
struct User {
    #[allow(dead_code)]
    user: String,
}

const ISSUER: &str = "https://bench.test";
const AUDIENCE: &str = "https://api.bench.test";

fn request(token: &str) -> Request<Body> {
    Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap()
}

fn bearer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for alg in [Algorithm::HS256, Algorithm::ES256, Algorithm::EdDSA] {
        let secret = [42u8; 32];
        let key = match alg {
            Algorithm::HS256 => SigningKey::hmac(alg, &secret, None).unwrap(),
            _ => SigningKey::generate(alg).unwrap(),
        };
        let issuer = TokenIssuer::new(key.clone())
            .issuer(ISSUER)
            .audience(AUDIENCE);
        let token = issuer
            .issue(
                "alice",
                &serde_json::json!({"user": "alice", "role": "advertiser"}),
            )
            .unwrap()
            .token;
        let verifier = TokenVerifier::new(
            issuer.key_set(),
            Validation::new().issuer(ISSUER).audience(AUDIENCE),
        );
        let bare: Router = Router::new().route("/", get(|| async { "ok" }));
        let layered: Router = Router::new()
            .route("/", get(|| async { "ok" }))
            .layer(BearerLayer::new(verifier.clone()));
        let extracting: Router = Router::new()
            .route(
                "/",
                get(|CurrentUser(user): CurrentUser<User>| async move {
                    black_box(user);
                    "ok"
                }),
            )
            .layer(BearerLayer::new(verifier.clone()));

        // The same checks jsonwebtoken does by default plus the ones we add: iss, aud, nbf.
        let decoding = match key.public_jwk() {
            Some(jwk) => {
                jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap())
                    .unwrap()
            }
            None => jsonwebtoken::DecodingKey::from_secret(&secret),
        };
        let mut validation = jsonwebtoken::Validation::new(match alg {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            _ => jsonwebtoken::Algorithm::EdDSA,
        });
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_nbf = true;
        validation.leeway = 30;

        let mut group = c.benchmark_group(format!("bearer/{alg}"));
        group.bench_function("bare router", |b| {
            b.to_async(&runtime)
                .iter(|| bare.clone().oneshot(request(&token)));
        });
        group.bench_function("router + BearerLayer", |b| {
            b.to_async(&runtime)
                .iter(|| layered.clone().oneshot(request(&token)));
        });
        group.bench_function("router + BearerLayer + CurrentUser", |b| {
            b.to_async(&runtime)
                .iter(|| extracting.clone().oneshot(request(&token)));
        });
        group.bench_function("TokenVerifier::verify_now", |b| {
            b.iter(|| verifier.verify_now(black_box(&token)).unwrap());
        });
        group.bench_function("jsonwebtoken::decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &decoding, &validation)
                    .unwrap()
            });
        });
        group.finish();
    }
}

criterion_group!(benches, bearer);
criterion_main!(benches);
