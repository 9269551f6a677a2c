//! Table-driven attack cases for the verifier: every forged, tampered or malformed token is
//! refused with the right reason (RFC 8725 §2 lists the attacks).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis_core::{AuthRejection, ManualClock, Mechanism};
use serde_json::{Value, json};

use super::*;
use crate::{Algorithm, SigningKey, TokenIssuer};

const NOW: u64 = 1_800_000_000;
const ISS: &str = "https://auth.example";
const AUD: &str = "https://api.example";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.claims` with `key` (whatever algorithm the header claims).
fn forge(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        key.encoding_key(),
        key.algorithm().to_jsonwebtoken(),
    )
    .unwrap();
    format!("{input}.{signature}")
}

/// An HS256 signature made with arbitrary bytes as the secret (the alg-confusion attack).
fn hs256_with_secret(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
        input.as_bytes(),
    );
    format!("{input}.{}", b64(tag.as_ref()))
}

fn claims() -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": "alice", "iat": NOW - 10, "nbf": NOW - 10,
        "exp": NOW + 300, "user": "alice", "role": "advertiser"
    })
}

fn with(mut value: Value, key: &str, new: Value) -> Value {
    if new.is_null() {
        value.as_object_mut().unwrap().remove(key);
    } else {
        value[key] = new;
    }
    value
}

struct Fixture {
    key: SigningKey,
    verifier: TokenVerifier,
}

impl Fixture {
    fn new(alg: Algorithm) -> Self {
        Self::with_validation(
            alg,
            Validation::new()
                .issuer(ISS)
                .audience(AUD)
                .leeway(std::time::Duration::ZERO),
        )
    }

    fn with_validation(alg: Algorithm, validation: Validation) -> Self {
        let key = SigningKey::generate(alg).unwrap();
        let verifier = TokenVerifier::new(KeySet::from_signing_key(&key), validation)
            .with_clock(Arc::new(ManualClock::at_unix_seconds(NOW)));
        Self { key, verifier }
    }

    fn header(&self) -> Value {
        json!({"alg": self.key.algorithm().as_str(), "typ": "JWT", "kid": self.key.kid()})
    }

    fn token(&self, claims: &Value) -> String {
        forge(&self.header(), claims, &self.key)
    }
}

fn flip_last_char(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.last_mut().unwrap();
    *last = if *last == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

#[test]
fn a_good_token_verifies_and_exposes_its_claims() {
    for alg in [
        Algorithm::HS256,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
        Algorithm::HS512,
    ] {
        let fixture = Fixture::new(alg);
        let verified = fixture
            .verifier
            .verify_now(&fixture.token(&claims()))
            .unwrap();
        assert_eq!(verified.subject(), "alice");
        assert_eq!(verified.expires_at(), NOW + 300);
        assert_eq!(verified.issued_at(), Some(NOW - 10));
        assert_eq!(
            verified.claim::<String>("role").as_deref(),
            Some("advertiser")
        );
        let identity = verified.into_identity(Mechanism::Bearer);
        let user: Value = identity.user().unwrap();
        assert_eq!(user["user"], "alice");
    }
}

#[test]
fn attack_table() {
    let fixture = Fixture::new(Algorithm::ES256);
    let kid = fixture.key.kid().to_owned();
    let header = fixture.header();
    let good = fixture.token(&claims());
    let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
    let public_pem_like = fixture.key.public_jwk().unwrap().to_string();
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let tampered_payload = b64(with(claims(), "role", json!("admin"))
        .to_string()
        .as_bytes());
    let none_header = |alg: &str| b64(json!({"alg": alg, "typ": "JWT"}).to_string().as_bytes());

    let cases: Vec<(&str, String, TokenError)> = vec![
        (
            "alg none, empty signature",
            format!("{}.{payload}.", none_header("none")),
            TokenError::Malformed("empty segment"),
        ),
        (
            "alg None with a signature",
            format!("{}.{payload}.{signature}", none_header("None")),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg NONE",
            format!("{}.{payload}.{signature}", none_header("NONE")),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "alg nOnE",
            format!("{}.{payload}.{signature}", none_header("nOnE")),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "lowercase alg",
            format!("{}.{payload}.{signature}", none_header("es256")),
            TokenError::UnsupportedAlgorithm,
        ),
        (
            "HS256 signed with the server's public key, kid of the EC key",
            hs256_with_secret(
                &json!({"alg": "HS256", "kid": kid}),
                &claims(),
                public_pem_like.as_bytes(),
            ),
            TokenError::AlgorithmMismatch,
        ),
        (
            "HS256 signed with the server's public key, no kid",
            hs256_with_secret(
                &json!({"alg": "HS256"}),
                &claims(),
                public_pem_like.as_bytes(),
            ),
            TokenError::UnknownKey,
        ),
        (
            "stripped signature",
            format!("{head}.{payload}."),
            TokenError::Malformed("empty segment"),
        ),
        (
            "truncated signature",
            format!("{head}.{payload}.{}", &signature[..84]),
            TokenError::InvalidSignature,
        ),
        (
            "ECDSA signature of zeros",
            format!("{head}.{payload}.{}", b64(&[0u8; 64])),
            TokenError::InvalidSignature,
        ),
        (
            "tampered payload",
            format!("{head}.{tampered_payload}.{signature}"),
            TokenError::InvalidSignature,
        ),
        (
            "signed by another key, same kid",
            forge(&header, &claims(), &attacker),
            TokenError::InvalidSignature,
        ),
        (
            "unknown kid",
            forge(
                &json!({"alg": "ES256", "kid": "other"}),
                &claims(),
                &attacker,
            ),
            TokenError::UnknownKey,
        ),
        (
            "kid with a path",
            forge(
                &json!({"alg": "ES256", "kid": "../../../../dev/null"}),
                &claims(),
                &attacker,
            ),
            TokenError::UnknownKey,
        ),
        (
            "kid with SQL",
            forge(
                &json!({"alg": "ES256", "kid": "x' OR '1'='1"}),
                &claims(),
                &attacker,
            ),
            TokenError::UnknownKey,
        ),
        (
            "kid with a NUL",
            forge(
                &json!({"alg": "ES256", "kid": "a\u{0}b"}),
                &claims(),
                &attacker,
            ),
            TokenError::UnknownKey,
        ),
        (
            "embedded jwk header with the attacker's key",
            forge(
                &json!({"alg": "ES256", "kid": kid, "jwk": attacker.public_jwk().unwrap()}),
                &claims(),
                &attacker,
            ),
            TokenError::InvalidSignature,
        ),
        (
            "crit header",
            fixture_token_with_header(
                &fixture,
                json!({"alg": "ES256", "kid": kid, "crit": ["exp"], "exp": 1}),
            ),
            TokenError::CriticalHeader,
        ),
        (
            "crit null",
            fixture_token_with_header(
                &fixture,
                json!({"alg": "ES256", "kid": kid, "crit": Value::Null}),
            ),
            TokenError::CriticalHeader,
        ),
        (
            "crit empty array",
            fixture_token_with_header(
                &fixture,
                json!({"alg": "ES256", "kid": kid, "crit": json!([])}),
            ),
            TokenError::CriticalHeader,
        ),
        (
            "crit a string",
            fixture_token_with_header(
                &fixture,
                json!({"alg": "ES256", "kid": kid, "crit": json!("exp")}),
            ),
            TokenError::CriticalHeader,
        ),
        (
            "crit an object",
            fixture_token_with_header(
                &fixture,
                json!({"alg": "ES256", "kid": kid, "crit": json!({})}),
            ),
            TokenError::CriticalHeader,
        ),
        (
            "expired",
            fixture.token(&with(claims(), "exp", json!(NOW - 1))),
            TokenError::Expired,
        ),
        (
            "expires this second",
            fixture.token(&with(claims(), "exp", json!(NOW))),
            TokenError::Expired,
        ),
        (
            "nbf in the future",
            fixture.token(&with(claims(), "nbf", json!(NOW + 60))),
            TokenError::NotYetValid,
        ),
        (
            "iat in the future",
            fixture.token(&with(claims(), "iat", json!(NOW + 60))),
            TokenError::IssuedInFuture,
        ),
        (
            "wrong iss",
            fixture.token(&with(claims(), "iss", json!("https://evil.example"))),
            TokenError::WrongIssuer,
        ),
        (
            "missing iss",
            fixture.token(&with(claims(), "iss", Value::Null)),
            TokenError::MissingClaim("iss".into()),
        ),
        (
            "wrong aud",
            fixture.token(&with(claims(), "aud", json!("https://other.example"))),
            TokenError::WrongAudience,
        ),
        (
            "wrong aud list",
            fixture.token(&with(claims(), "aud", json!(["a", "b"]))),
            TokenError::WrongAudience,
        ),
        (
            "missing aud",
            fixture.token(&with(claims(), "aud", Value::Null)),
            TokenError::MissingClaim("aud".into()),
        ),
        (
            "aud of the wrong type",
            fixture.token(&with(claims(), "aud", json!(7))),
            TokenError::InvalidClaim("aud"),
        ),
        (
            "exp as a string",
            fixture.token(&with(claims(), "exp", json!((NOW + 300).to_string()))),
            TokenError::InvalidClaim("exp"),
        ),
        (
            "exp as a bool",
            fixture.token(&with(claims(), "exp", json!(true))),
            TokenError::InvalidClaim("exp"),
        ),
        (
            "negative exp",
            fixture.token(&with(claims(), "exp", json!(-5))),
            TokenError::InvalidClaim("exp"),
        ),
        (
            "nbf as a string",
            fixture.token(&with(claims(), "nbf", json!("0"))),
            TokenError::InvalidClaim("nbf"),
        ),
        (
            "missing exp",
            fixture.token(&with(claims(), "exp", Value::Null)),
            TokenError::MissingClaim("exp".into()),
        ),
        (
            "missing sub",
            fixture.token(&with(claims(), "sub", Value::Null)),
            TokenError::MissingClaim("sub".into()),
        ),
        (
            "empty sub",
            fixture.token(&with(claims(), "sub", json!(""))),
            TokenError::InvalidClaim("sub"),
        ),
        (
            "sub of the wrong type",
            fixture.token(&with(claims(), "sub", json!(42))),
            TokenError::Malformed("the payload is not a valid claims object"),
        ),
        (
            "payload is an array",
            forge(&header, &json!([1, 2]), &fixture.key),
            TokenError::Malformed("the payload is not a valid claims object"),
        ),
        (
            "four segments",
            format!("{good}.{signature}"),
            TokenError::Malformed("expected three segments"),
        ),
        (
            "two segments",
            format!("{head}.{payload}"),
            TokenError::Malformed("expected three segments"),
        ),
        (
            "five segments (JWE)",
            format!("{head}.a.b.c.d"),
            TokenError::Malformed("expected three segments"),
        ),
        (
            "padded header",
            format!("{head}=.{payload}.{signature}"),
            TokenError::Malformed("the header is not base64url"),
        ),
        (
            "standard base64 alphabet",
            // '+' and '/' belong to standard base64, not to base64url (RFC 7515 §2).
            format!("{head}.{payload}.+/{}", &signature[2..]),
            TokenError::Malformed("the signature is not base64url"),
        ),
        (
            "header not JSON",
            format!("{}.{payload}.{signature}", b64(b"{not json")),
            TokenError::Malformed("the header is not a valid JSON object"),
        ),
        (
            "header without alg",
            format!("{}.{payload}.{signature}", b64(br#"{"typ":"JWT"}"#)),
            TokenError::Malformed("the header is not a valid JSON object"),
        ),
        (
            "header is an array",
            format!("{}.{payload}.{signature}", b64(br#"["ES256"]"#)),
            TokenError::Malformed("the header is not a valid JSON object"),
        ),
        (
            "duplicate alg",
            format!(
                "{}.{payload}.{signature}",
                b64(br#"{"alg":"ES256","alg":"HS256"}"#)
            ),
            TokenError::Malformed("the header is not a valid JSON object"),
        ),
        (
            "oversized",
            format!("{head}.{}.{signature}", "A".repeat(9000)),
            TokenError::TooLarge,
        ),
        (
            "oversized header",
            format!("{}.{payload}.{signature}", "A".repeat(3000)),
            TokenError::TooLarge,
        ),
        (
            "empty",
            String::new(),
            TokenError::Malformed("expected three segments"),
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(
            fixture.verifier.verify_now(&token).err(),
            Some(expected),
            "{name}"
        );
    }
}

fn fixture_token_with_header(fixture: &Fixture, header: Value) -> String {
    forge(&header, &claims(), &fixture.key)
}

#[test]
fn duplicate_claims_are_refused() {
    let fixture = Fixture::new(Algorithm::HS256);
    let header = b64(fixture.header().to_string().as_bytes());
    let payload = b64(format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"alice","exp":{},"exp":{}}}"#,
        NOW - 100,
        NOW + 100
    )
    .as_bytes());
    let input = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        fixture.key.encoding_key(),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    let error = fixture
        .verifier
        .verify_now(&format!("{input}.{signature}"))
        .unwrap_err();
    assert!(matches!(error, TokenError::Malformed(_)), "{error:?}");
}

#[test]
fn non_canonical_base64_is_refused() {
    let fixture = Fixture::new(Algorithm::HS256);
    let token = fixture.token(&claims());
    assert!(fixture.verifier.verify_now(&token).is_ok());
    // An HS256 tag is 32 bytes: 43 characters whose last carries 2 unused bits. Another spelling
    // of the same bytes must not verify.
    let (input, signature) = token.rsplit_once('.').unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = signature.chars().last().unwrap();
    let index = alphabet.find(last).unwrap();
    let other = alphabet.as_bytes()[index ^ 1] as char;
    let respelled = format!("{input}.{}{other}", &signature[..signature.len() - 1]);
    assert_eq!(
        fixture.verifier.verify_now(&respelled).unwrap_err(),
        TokenError::Malformed("the signature is not base64url")
    );
    assert!(
        fixture
            .verifier
            .verify_now(&flip_last_char(&token))
            .is_err()
    );
}

#[test]
fn leeway_applies_to_exp_and_nbf() {
    let fixture = Fixture::with_validation(
        Algorithm::HS256,
        Validation::new()
            .issuer(ISS)
            .audience(AUD)
            .leeway(std::time::Duration::from_secs(30)),
    );
    let just_expired = fixture.token(&with(claims(), "exp", json!(NOW - 20)));
    assert!(fixture.verifier.verify_now(&just_expired).is_ok());
    let long_expired = fixture.token(&with(claims(), "exp", json!(NOW - 31)));
    assert_eq!(
        fixture.verifier.verify_now(&long_expired).unwrap_err(),
        TokenError::Expired
    );
    let soon_valid = fixture.token(&with(claims(), "nbf", json!(NOW + 20)));
    assert!(fixture.verifier.verify_now(&soon_valid).is_ok());
}

#[test]
fn aud_without_configured_audience_and_typ_and_required_claims() {
    let plain = Fixture::with_validation(Algorithm::HS256, Validation::new());
    assert_eq!(
        plain
            .verifier
            .verify_now(&plain.token(&claims()))
            .unwrap_err(),
        TokenError::AudienceNotConfigured
    );
    // The logged reason names the setting, without echoing the token.
    let text = TokenError::AudienceNotConfigured.to_string();
    assert!(
        text.contains("aud claim") && text.contains("Validation::audience"),
        "{text}"
    );
    assert!(!text.contains(AUD));
    assert!(
        plain
            .verifier
            .verify_now(&plain.token(&with(claims(), "aud", Value::Null)))
            .is_ok()
    );

    let strict = Fixture::with_validation(
        Algorithm::HS256,
        Validation::new()
            .audience(AUD)
            .typ("at+jwt")
            .require_claim("role")
            .require_claim("tenant"),
    );
    let header = json!({"alg": "HS256", "kid": strict.key.kid(), "typ": "at+jwt"});
    let with_tenant = with(claims(), "tenant", json!("t1"));
    assert!(
        strict
            .verifier
            .verify_now(&forge(&header, &with_tenant, &strict.key))
            .is_ok()
    );
    assert_eq!(
        strict
            .verifier
            .verify_now(&forge(&header, &claims(), &strict.key))
            .unwrap_err(),
        TokenError::MissingClaim("tenant".into())
    );
    assert_eq!(
        strict
            .verifier
            .verify_now(&forge(
                &header,
                &with(with_tenant.clone(), "tenant", json!(null)),
                &strict.key
            ))
            .unwrap_err(),
        TokenError::MissingClaim("tenant".into())
    );
    let jwt_header = json!({"alg": "HS256", "kid": strict.key.kid(), "typ": "JWT"});
    assert_eq!(
        strict
            .verifier
            .verify_now(&forge(&jwt_header, &with_tenant, &strict.key))
            .unwrap_err(),
        TokenError::WrongType
    );
    let no_typ = json!({"alg": "HS256", "kid": strict.key.kid()});
    assert_eq!(
        strict
            .verifier
            .verify_now(&forge(&no_typ, &with_tenant, &strict.key))
            .unwrap_err(),
        TokenError::WrongType
    );
    let aud_list = with(with_tenant, "aud", json!(["x", AUD]));
    assert!(
        strict
            .verifier
            .verify_now(&forge(&header, &aud_list, &strict.key))
            .is_ok()
    );
}

#[test]
fn keys_pinned_to_an_issuer_cannot_speak_for_another() {
    let a = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let b = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let keys = KeySet::from_signing_key(&a)
        .for_issuer("https://a.example")
        .merge(KeySet::from_signing_key(&b).for_issuer("https://b.example"));
    let verifier = TokenVerifier::new(
        keys,
        Validation::new()
            .issuer("https://a.example")
            .issuer("https://b.example"),
    )
    .with_clock(Arc::new(ManualClock::at_unix_seconds(NOW)));
    let claims_from = |iss: &str| with(with(claims(), "iss", json!(iss)), "aud", Value::Null);
    let header = |key: &SigningKey| json!({"alg": "EdDSA", "kid": key.kid()});
    assert!(
        verifier
            .verify_now(&forge(&header(&a), &claims_from("https://a.example"), &a))
            .is_ok()
    );
    assert!(
        verifier
            .verify_now(&forge(&header(&b), &claims_from("https://b.example"), &b))
            .is_ok()
    );
    assert_eq!(
        verifier
            .verify_now(&forge(&header(&a), &claims_from("https://b.example"), &a))
            .unwrap_err(),
        TokenError::WrongIssuer
    );
}

#[test]
fn rsa_keys_and_hs_confusion_with_the_rsa_public_key() {
    let fixture = Fixture::new(Algorithm::RS256);
    assert!(
        fixture
            .verifier
            .verify_now(&fixture.token(&claims()))
            .is_ok()
    );
    let jwk = fixture.key.public_jwk().unwrap();
    let n = URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap();
    for secret in [jwk.to_string().into_bytes(), n] {
        let forged = hs256_with_secret(
            &json!({"alg": "HS256", "kid": fixture.key.kid()}),
            &claims(),
            &secret,
        );
        assert_eq!(
            fixture.verifier.verify_now(&forged).unwrap_err(),
            TokenError::AlgorithmMismatch
        );
    }
    // PS256 is another algorithm: a PS256 token is refused by an RS256-pinned key.
    let ps = forge(
        &json!({"alg": "PS256", "kid": fixture.key.kid()}),
        &claims(),
        &fixture.key,
    );
    assert_eq!(
        fixture.verifier.verify_now(&ps).unwrap_err(),
        TokenError::AlgorithmMismatch
    );
}

#[tokio::test]
async fn jku_and_x5u_headers_are_never_fetched() {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let attacker = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = json!({"keys": [attacker.public_jwk().unwrap()]});
    let app = axum::Router::new().fallback(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        let jwks = jwks.clone();
        async move { axum::Json(jwks) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let fixture = Fixture::new(Algorithm::ES256);
    for header in [
        json!({"alg": "ES256", "kid": attacker.kid(), "jku": url}),
        json!({"alg": "ES256", "kid": fixture.key.kid(), "jku": url}),
        json!({"alg": "ES256", "kid": attacker.kid(), "x5u": url}),
        json!({"alg": "ES256", "jku": url}),
    ] {
        let token = forge(&header, &claims(), &attacker);
        assert!(fixture.verifier.verify(&token).await.is_err(), "{header}");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "a URL from a token header was fetched"
    );
}

#[test]
fn issued_tokens_round_trip_and_rotation_keeps_old_tokens_valid() {
    let clock = Arc::new(ManualClock::at_unix_seconds(NOW));
    let first = SigningKey::generate(Algorithm::ES256).unwrap();
    let issuer = TokenIssuer::new(first.clone())
        .issuer(ISS)
        .audience(AUD)
        .ttl(std::time::Duration::from_secs(600))
        .with_clock(clock.clone());
    let verifier = TokenVerifier::new(
        issuer.key_set(),
        Validation::new().issuer(ISS).audience(AUD),
    )
    .with_clock(clock.clone());
    let old = issuer
        .issue("alice", &json!({"user": "alice", "role": "advertiser"}))
        .unwrap();
    assert!(!format!("{old:?}").contains(&old.token));
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(old.token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], first.kid());
    assert_eq!(header["typ"], "JWT");
    let verified = verifier.verify_now(&old.token).unwrap();
    for claim in ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"] {
        assert!(verified.claim::<Value>(claim).is_some(), "{claim}");
    }
    assert_eq!(verified.claim::<String>("jti").unwrap(), old.jti);
    let again = issuer.issue("alice", &json!({})).unwrap();
    assert_ne!(again.jti, old.jti);

    let second = SigningKey::generate(Algorithm::ES256).unwrap();
    issuer.rotate(second.clone());
    let new = issuer.issue("alice", &json!({"user": "alice"})).unwrap();
    assert!(verifier.verify_now(&new.token).is_ok());
    assert!(
        verifier.verify_now(&old.token).is_ok(),
        "a retired key must keep verifying"
    );
    let kids: Vec<String> = issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kids, [second.kid(), first.kid()]);

    // After the last token of the old key has expired (plus the margin), it is unpublished.
    clock.advance(std::time::Duration::from_secs(600 + 301));
    let kids = issuer.jwks()["keys"].as_array().unwrap().len();
    assert_eq!(kids, 1);
    assert_eq!(
        verifier.verify_now(&old.token).unwrap_err(),
        TokenError::UnknownKey
    );

    assert!(matches!(
        issuer.issue("alice", &json!({"sub": "admin"})),
        Err(crate::IssueError::ReservedClaim(_))
    ));
    assert!(matches!(
        issuer.issue("alice", &json!(["x"])),
        Err(crate::IssueError::ClaimsNotAnObject)
    ));
    let typed = issuer
        .issue_with(
            "alice",
            &json!({}),
            &crate::IssueOptions::new()
                .typ("at+jwt")
                .ttl(std::time::Duration::from_secs(5)),
        )
        .unwrap();
    assert_eq!(typed.expires_in, 5);
    let at_verifier = TokenVerifier::new(
        issuer.key_set(),
        Validation::new().issuer(ISS).audience(AUD).typ("at+jwt"),
    )
    .with_clock(clock);
    assert!(at_verifier.verify_now(&typed.token).is_ok());
}

#[test]
fn errors_map_to_rejections() {
    let rejection = AuthRejection::from(TokenError::Expired);
    assert_eq!(rejection.status(), http::StatusCode::UNAUTHORIZED);
    assert_eq!(rejection.description(), "the token has expired");
    let rejection = AuthRejection::from(TokenError::KeysUnavailable);
    assert_eq!(rejection.status(), http::StatusCode::SERVICE_UNAVAILABLE);
}

#[test]
fn a_revocation_only_verifier_accepts_expired_tokens_within_its_window_only() {
    let validation = Validation::new()
        .issuer(ISS)
        .audience(AUD)
        .leeway(std::time::Duration::ZERO)
        .dangerous_accept_expired_within(std::time::Duration::from_secs(100));
    let fixture = Fixture::with_validation(Algorithm::HS256, validation);
    let expired = fixture.token(&with(claims(), "exp", json!(NOW - 99)));
    assert_eq!(
        fixture.verifier.verify_now(&expired).unwrap().subject(),
        "alice"
    );
    let too_old = fixture.token(&with(claims(), "exp", json!(NOW - 100)));
    assert_eq!(
        fixture.verifier.verify_now(&too_old).unwrap_err(),
        TokenError::Expired
    );
    // Everything else is still checked.
    let cases = [
        (
            with(
                with(claims(), "exp", json!(NOW - 5)),
                "iss",
                json!("https://evil.example"),
            ),
            TokenError::WrongIssuer,
        ),
        (
            with(
                with(claims(), "exp", json!(NOW - 5)),
                "aud",
                json!("https://other.example"),
            ),
            TokenError::WrongAudience,
        ),
        (
            with(
                with(claims(), "exp", json!(NOW - 5)),
                "nbf",
                json!(NOW + 50),
            ),
            TokenError::NotYetValid,
        ),
    ];
    for (claims, error) in cases {
        assert_eq!(
            fixture
                .verifier
                .verify_now(&fixture.token(&claims))
                .unwrap_err(),
            error
        );
    }
    let mut forged = fixture.token(&with(claims(), "exp", json!(NOW - 5)));
    // Replace the last character with another one (the old code looked at the one before it,
    // so one run in sixteen "forged" the very same token).
    let last = forged.pop();
    forged.push(if last == Some('A') { 'E' } else { 'A' });
    assert!(fixture.verifier.verify_now(&forged).is_err());
    // The default verifier refuses the same expired token.
    let strict = Fixture::new(Algorithm::HS256);
    let expired = strict.token(&with(claims(), "exp", json!(NOW - 1)));
    assert_eq!(
        strict.verifier.verify_now(&expired).unwrap_err(),
        TokenError::Expired
    );
}
