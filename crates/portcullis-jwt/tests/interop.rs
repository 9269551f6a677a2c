//! Interoperability with PyJWT, an independent implementation, through checked-in vectors (see
//! `tests/interop/pyjwt.py` for the commands that made them): PyJWT's tokens verify here, and
//! ours were verified by PyJWT through our JWKS.

use std::{path::PathBuf, sync::Arc, time::Duration};

use portcullis_core::ManualClock;
use portcullis_jwt::{Algorithm, KeySet, SigningKey, TokenIssuer, TokenVerifier, Validation};
use serde_json::{Value, json};

const ISS: &str = "https://issuer.example";
const AUD: &str = "https://api.example";
/// The vectors' `iat`; tokens expire in 2100.
const ISSUED_AT: u64 = 1_700_000_000;
const EXPIRES_AT: u64 = 4_102_444_800;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn sha256_hex(text: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn verifier(keys: KeySet) -> TokenVerifier {
    TokenVerifier::new(keys, Validation::new().issuer(ISS).audience(AUD))
        .with_clock(Arc::new(ManualClock::at_unix_seconds(ISSUED_AT + 60)))
}

#[tokio::test]
async fn pyjwt_tokens_verify_here() {
    let vectors = read("pyjwt_tokens.json");
    let secret = hex(vectors["hs256_secret_hex"].as_str().unwrap());
    let keys = KeySet::from_jwks_json(&vectors["jwks"].to_string())
        .unwrap()
        .merge(KeySet::hmac(Algorithm::HS256, &secret, Some("pyjwt-hs256")).unwrap());
    let verifier = verifier(keys);
    let tokens = vectors["tokens"].as_array().unwrap();
    let algs: Vec<&str> = tokens.iter().map(|t| t["alg"].as_str().unwrap()).collect();
    for alg in ["HS256", "RS256", "PS256", "ES256", "ES384", "EdDSA"] {
        assert!(algs.contains(&alg), "no PyJWT vector for {alg}");
    }
    for entry in tokens {
        let token = entry["token"].as_str().unwrap();
        let verified = verifier
            .verify(token)
            .await
            .unwrap_or_else(|e| panic!("PyJWT {} token refused: {e}", entry["alg"]));
        assert_eq!(verified.subject(), "alice");
        assert_eq!(verified.expires_at(), EXPIRES_AT);
        assert_eq!(
            verified.claim::<String>("role").as_deref(),
            Some("advertiser")
        );
        // And a tampered copy is refused.
        let tampered = format!("{}AAAA", &token[..token.len() - 4]);
        assert!(
            verifier.verify(&tampered).await.is_err(),
            "{}",
            entry["alg"]
        );
    }
}

/// Mints the portcullis vectors PyJWT checks (`PORTCULLIS_WRITE_VECTORS=1`).
fn write_portcullis_vectors() {
    let clock = Arc::new(ManualClock::at_unix_seconds(ISSUED_AT));
    let secret: Vec<u8> = (0u8..32)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let mut keys =
        vec![SigningKey::hmac(Algorithm::HS256, &secret, Some("portcullis-hs256")).unwrap()];
    for alg in [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        keys.push(SigningKey::generate(alg).unwrap());
    }
    let mut tokens = Vec::new();
    let mut jwks = Vec::new();
    for key in keys {
        let issuer = TokenIssuer::new(key.clone())
            .issuer(ISS)
            .audience(AUD)
            .ttl(Duration::from_secs(EXPIRES_AT - ISSUED_AT))
            .with_clock(clock.clone());
        let issued = issuer
            .issue("alice", &json!({"user": "alice", "role": "advertiser"}))
            .unwrap();
        tokens.push(
            json!({"alg": key.algorithm().as_str(), "kid": key.kid(), "token": issued.token}),
        );
        jwks.extend(issuer.jwks()["keys"].as_array().unwrap().iter().cloned());
    }
    let out = json!({
        "generated_by": "PORTCULLIS_WRITE_VECTORS=1 cargo test -p portcullis-jwt --test interop",
        "issuer": ISS,
        "audience": AUD,
        "hs256_secret_hex": secret.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "jwks": {"keys": jwks},
        "tokens": tokens,
    });
    std::fs::write(
        vectors_dir().join("portcullis_tokens.json"),
        serde_json::to_string_pretty(&out).unwrap() + "\n",
    )
    .unwrap();
}

#[tokio::test]
async fn our_tokens_were_verified_by_pyjwt_through_our_jwks() {
    if std::env::var_os("PORTCULLIS_WRITE_VECTORS").is_some() {
        write_portcullis_vectors();
        return;
    }
    let vectors = read("portcullis_tokens.json");
    let verified = read("pyjwt_verified.json");
    let by_pyjwt: Vec<&str> = verified["verified"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["sha256"].as_str().unwrap())
        .collect();
    let secret = hex(vectors["hs256_secret_hex"].as_str().unwrap());
    let keys = KeySet::from_jwks_json(&vectors["jwks"].to_string())
        .unwrap()
        .merge(KeySet::hmac(Algorithm::HS256, &secret, Some("portcullis-hs256")).unwrap());
    let verifier = verifier(keys);
    let tokens = vectors["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 6);
    for entry in tokens {
        let token = entry["token"].as_str().unwrap();
        assert!(
            by_pyjwt.contains(&sha256_hex(token).as_str()),
            "the {} vector was not verified by PyJWT: rerun tests/interop/pyjwt.py verify",
            entry["alg"]
        );
        assert!(verifier.verify(token).await.is_ok(), "{}", entry["alg"]);
    }
    // The JWKS publishes no secret material.
    for jwk in vectors["jwks"]["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(jwk.get(private).is_none(), "{jwk}");
        }
    }
}
