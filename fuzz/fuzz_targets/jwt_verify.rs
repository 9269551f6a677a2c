//! `TokenVerifier::verify_now` on arbitrary strings and on mutations of valid tokens (HS256
//! and ES256 keys in one set): no panic, and nothing but an untouched valid token verifies to
//! its subject; a forgery never verifies with other claims.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portcullis_jwt::{Algorithm, KeySet, SigningKey, TokenIssuer, TokenVerifier, Validation};

struct Fixture {
    verifier: TokenVerifier,
    tokens: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let hmac = SigningKey::hmac(Algorithm::HS256, &[7u8; 32], Some("h1")).unwrap();
        let ec = SigningKey::generate(Algorithm::ES256).unwrap();
        let keys = KeySet::from_signing_key(&hmac).merge(KeySet::from_signing_key(&ec));
        let validation = Validation::new().issuer("fuzz").audience("api");
        let verifier = TokenVerifier::new(keys, validation);
        let tokens = [hmac, ec]
            .into_iter()
            .map(|key| {
                TokenIssuer::new(key)
                    .issuer("fuzz")
                    .audience("api")
                    .issue("alice", &serde_json::json!({"role": "advertiser"}))
                    .unwrap()
                    .token
            })
            .collect();
        Fixture { verifier, tokens }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let candidate = match mode % 4 {
        // Arbitrary text.
        0 => String::from_utf8_lossy(rest).into_owned(),
        // A valid token with bytes overwritten: (position, byte) pairs.
        1 | 2 => {
            let mut token = fixture.tokens[usize::from(mode % 2)].clone().into_bytes();
            for pair in rest.chunks_exact(2) {
                let at = usize::from(pair[0]) * token.len() / 256;
                token[at] = pair[1];
            }
            String::from_utf8_lossy(&token).into_owned()
        }
        // A valid token's header and signature around an arbitrary payload.
        _ => {
            let token = &fixture.tokens[0];
            let mut parts = token.split('.');
            let (header, _, signature) =
                (parts.next().unwrap(), parts.next(), parts.next().unwrap());
            format!("{header}.{}.{signature}", String::from_utf8_lossy(rest))
        }
    };
    if let Ok(verified) = fixture.verifier.verify_now(&candidate) {
        assert_eq!(verified.subject(), "alice");
        assert_eq!(
            verified.claim::<String>("role").as_deref(),
            Some("advertiser")
        );
        assert!(
            fixture.tokens.iter().any(|t| t == &candidate),
            "a changed token verified: {candidate:?}"
        );
    }
});
