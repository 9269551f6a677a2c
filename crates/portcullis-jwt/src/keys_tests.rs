//! Unit tests of signing keys, verifying keys and key sets.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

use super::*;
use crate::signing_key::pem_encode;

#[test]
fn generated_keys_sign_and_their_public_half_verifies() {
    for alg in [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ] {
        let key = SigningKey::generate(alg).unwrap();
        let message = b"header.payload";
        let signature =
            jsonwebtoken::crypto::sign(message, key.encoding_key(), alg.to_jsonwebtoken()).unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        assert!(key.verifying_key().verify(message, &signature), "{alg}");
        assert!(
            !key.verifying_key().verify(b"header.other", &signature),
            "{alg}"
        );
        assert_eq!(key.public_jwk().is_some(), !alg.is_symmetric());
        if let Some(jwk) = key.public_jwk() {
            let set =
                KeySet::from_jwks_json(&serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
            assert!(matches!(
                set.verify_signature(Some(key.kid()), alg, message, &signature),
                KeyMatch::Verified(None)
            ));
            assert!(
                !jwk.to_string().contains("\"d\""),
                "private part published for {alg}"
            );
        }
    }
}

#[test]
fn hmac_key_ids_are_stable_and_secret_free() {
    let a = SigningKey::hmac(Algorithm::HS256, &[9u8; 32], None).unwrap();
    let b = SigningKey::hmac(Algorithm::HS256, &[9u8; 32], None).unwrap();
    let c = SigningKey::hmac(Algorithm::HS256, &[8u8; 32], None).unwrap();
    assert_eq!(a.kid(), b.kid());
    assert_ne!(a.kid(), c.kid());
    assert!(format!("{a:?}").contains("REDACTED"));
}

#[test]
fn weak_and_mismatched_keys_are_refused() {
    assert!(matches!(
        SigningKey::hmac(Algorithm::HS512, &[1u8; 32], None),
        Err(KeyError::WeakSecret { min: 64, .. })
    ));
    let es256 = SigningKey::generate(Algorithm::ES256).unwrap();
    let pem = es256.to_pkcs8_pem().unwrap();
    assert!(SigningKey::from_pem(Algorithm::ES384, pem.as_bytes(), None).is_err());
    assert!(SigningKey::from_pem(Algorithm::RS256, pem.as_bytes(), None).is_err());
    assert!(SigningKey::from_pem(Algorithm::HS256, pem.as_bytes(), None).is_err());
    // A symmetric key is never accepted from a remote JWKS.
    let oct = r#"{"keys":[{"kty":"oct","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ"}]}"#;
    assert!(parse_jwks(oct.as_bytes(), false).is_err());
    assert_eq!(parse_jwks(oct.as_bytes(), true).unwrap().len(), 1);
}

#[test]
fn jwks_files_and_public_pems_load() {
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let path = std::env::temp_dir().join(format!("portcullis-jwks-{}.json", std::process::id()));
    std::fs::write(
        &path,
        serde_json::json!({ "keys": [key.public_jwk().unwrap()] }).to_string(),
    )
    .unwrap();
    let set = KeySet::from_jwks_file(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let message = b"a.b";
    let signature =
        jsonwebtoken::crypto::sign(message, key.encoding_key(), jsonwebtoken::Algorithm::EdDSA)
            .unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    assert!(matches!(
        set.verify_signature(Some(key.kid()), Algorithm::EdDSA, message, &signature),
        KeyMatch::Verified(None)
    ));
    // The same key as an SPKI PEM.
    let x = URL_SAFE_NO_PAD
        .decode(key.public_jwk().unwrap()["x"].as_str().unwrap())
        .unwrap();
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend(x);
    let pem = pem_encode("PUBLIC KEY", &spki);
    let set = KeySet::from_public_pem(Algorithm::EdDSA, pem.as_bytes(), Some("ed")).unwrap();
    assert!(matches!(
        set.verify_signature(Some("ed"), Algorithm::EdDSA, message, &signature),
        KeyMatch::Verified(None)
    ));
    assert!(KeySet::from_public_pem(Algorithm::ES256, pem.as_bytes(), None).is_err());
}

#[test]
fn jwks_skips_encryption_keys() {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let mut enc = key.public_jwk().unwrap().clone();
    enc["use"] = "enc".into();
    enc["kid"] = "enc".into();
    let doc = serde_json::json!({ "keys": [enc, key.public_jwk().unwrap(), {"kty": "weird"}] });
    assert_eq!(
        parse_jwks(doc.to_string().as_bytes(), false).unwrap().len(),
        1
    );
}
