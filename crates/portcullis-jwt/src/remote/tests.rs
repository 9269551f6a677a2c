use super::*;

#[test]
fn cache_control_table() {
    let cases = [
        ("max-age=600", Some(600)),
        ("public, max-age=60, must-revalidate", Some(60)),
        ("MAX-AGE=\"5\"", Some(5)),
        ("no-store", Some(0)),
        ("private", None),
        ("max-age=abc", None),
    ];
    for (value, expected) in cases {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::CACHE_CONTROL, value.parse().unwrap());
        assert_eq!(
            cache_max_age(&headers),
            expected.map(Duration::from_secs),
            "{value}"
        );
    }
}

mod served {
    //! JWKS URL behaviour against a real HTTP server on 127.0.0.1:0.

    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    };

    use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
    use serde_json::{Value, json};

    use super::super::*;
    use crate::{
        Algorithm, KeySet, SigningKey, TokenError, TokenIssuer, TokenVerifier, Validation,
    };

    #[derive(Clone)]
    struct Issuer {
        jwks: Arc<Mutex<Value>>,
        up: Arc<AtomicBool>,
        hits: Arc<AtomicUsize>,
        url: String,
    }

    impl Issuer {
        async fn start(keys: &[&SigningKey], up: bool) -> Self {
            let issuer = Self {
                jwks: Arc::new(Mutex::new(Value::Null)),
                up: Arc::new(AtomicBool::new(up)),
                hits: Arc::default(),
                url: String::new(),
            };
            issuer.publish(keys);
            let state = issuer.clone();
            let app = Router::new().route(
                "/jwks.json",
                get(move || {
                    let state = state.clone();
                    async move {
                        state.hits.fetch_add(1, Ordering::SeqCst);
                        if !state.up.load(Ordering::SeqCst) {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        let body = state.jwks.lock().unwrap().to_string();
                        ([("cache-control", "max-age=3600")], body).into_response()
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await });
            Self { url, ..issuer }
        }

        fn publish(&self, keys: &[&SigningKey]) {
            let keys: Vec<_> = keys
                .iter()
                .map(|k| k.public_jwk().unwrap().clone())
                .collect();
            *self.jwks.lock().unwrap() = json!({ "keys": keys });
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    fn options() -> JwksOptions {
        JwksOptions::new()
            .min_refetch_interval(Duration::from_millis(300))
            .retry_interval(Duration::from_millis(50))
            .timeout(Duration::from_secs(2))
    }

    fn token(key: &SigningKey) -> String {
        TokenIssuer::new(key.clone())
            .issue("alice", &json!({"user": "alice"}))
            .unwrap()
            .token
    }

    async fn loaded(keys: &KeySet) {
        for _ in 0..200 {
            if !keys.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the JWKS never loaded");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rotation_is_picked_up_through_an_unknown_kid_and_refetches_are_rate_limited() {
        let old = SigningKey::generate(Algorithm::ES256).unwrap();
        let new = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let issuer = Issuer::start(&[&old], true).await;
        let keys = KeySet::from_jwks_url(&issuer.url, options()).unwrap();
        loaded(&keys).await;
        let verifier = TokenVerifier::new(keys, Validation::new());
        assert!(verifier.verify(&token(&old)).await.is_ok());
        assert_eq!(issuer.hits(), 1, "max-age=3600: no refresh yet");

        // The issuer rotates: old kid removed, new kid published.
        issuer.publish(&[&new]);
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(
            verifier.verify(&token(&new)).await.is_ok(),
            "new kid fetched on demand"
        );
        assert_eq!(issuer.hits(), 2);
        assert_eq!(
            verifier.verify(&token(&old)).await.unwrap_err(),
            TokenError::UnknownKey
        );

        // A flood of unknown kids inside the interval causes no more fetches.
        let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
        for _ in 0..20 {
            let forged = SigningKey::generate(Algorithm::HS256).unwrap();
            assert!(verifier.verify(&token(&forged)).await.is_err());
            assert!(verifier.verify(&token(&attacker)).await.is_err());
        }
        assert!(
            issuer.hits() <= 3,
            "refetches not rate-limited: {} hits",
            issuer.hits()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_keeps_the_last_good_set() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let issuer = Issuer::start(&[&key], true).await;
        let keys = KeySet::from_jwks_url(&issuer.url, options()).unwrap();
        loaded(&keys).await;
        let verifier = TokenVerifier::new(keys.clone(), Validation::new());
        issuer.up.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(350)).await;
        // An unknown kid forces a fetch, which fails.
        let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
        assert_eq!(
            verifier.verify(&token(&stranger)).await.unwrap_err(),
            TokenError::UnknownKey
        );
        assert!(issuer.hits() >= 2);
        assert_eq!(keys.len(), 1);
        assert!(
            verifier.verify(&token(&key)).await.is_ok(),
            "last good set dropped"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_issuer_down_at_start_up_gives_503_until_its_keys_arrive() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let issuer = Issuer::start(&[&key], false).await;
        let keys = KeySet::from_jwks_url(&issuer.url, options()).unwrap();
        let verifier = TokenVerifier::new(keys.clone(), Validation::new());
        let error = verifier.verify(&token(&key)).await.unwrap_err();
        assert_eq!(error, TokenError::KeysUnavailable);
        let rejection = portcullis_core::AuthRejection::from(error);
        assert_eq!(rejection.status(), http::StatusCode::SERVICE_UNAVAILABLE);

        issuer.up.store(true, Ordering::SeqCst);
        loaded(&keys).await;
        assert!(verifier.verify(&token(&key)).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_background_refresh_honours_max_age() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let jwks = json!({"keys": [key.public_jwk().unwrap()]}).to_string();
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let jwks = jwks.clone();
                async move { ([("cache-control", "public, max-age=1")], jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let keys = KeySet::from_jwks_url(
            &url,
            options()
                .min_refresh(Duration::from_millis(500))
                .default_refresh(Duration::from_secs(3600)),
        )
        .unwrap();
        loaded(&keys).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let seen = hits.load(Ordering::SeqCst);
        assert!(
            (2..=4).contains(&seen),
            "max-age=1 should give about 3 fetches in 2.5 s, got {seen}"
        );
        drop(keys);
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let after_drop = hits.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            hits.load(Ordering::SeqCst),
            after_drop,
            "the refresh task outlived its key set"
        );
    }

    #[tokio::test]
    async fn symmetric_keys_from_a_url_are_refused_and_bad_urls_rejected() {
        let hmac = SigningKey::generate(Algorithm::HS256).unwrap();
        let issuer = Issuer::start(&[], true).await;
        *issuer.jwks.lock().unwrap() = json!({"keys": [{"kty": "oct", "alg": "HS256", "kid": hmac.kid(), "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ"}]});
        let keys = KeySet::from_jwks_url(&issuer.url, options()).unwrap();
        let verifier = TokenVerifier::new(keys, Validation::new());
        assert!(verifier.verify(&token(&hmac)).await.is_err());
        for bad in ["file:///etc/passwd", "not a url", "http://"] {
            assert!(KeySet::from_jwks_url(bad, options()).is_err(), "{bad}");
        }
    }
}
