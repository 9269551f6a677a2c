//! Property tests of the secret encodings: session secrets (`SecretToken`), refresh tokens
//! (`RefreshToken`) and store keys (`StoreKey` hex). Every value round-trips, and every string
//! a parser accepts has exactly one spelling, so two spellings never name one secret (which
//! would let a cache, a log filter or a rate limiter keyed by the string be bypassed).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis_core::{SecretToken, StoreKey, random_handle};
use portcullis_hybrid::{MAX_REFRESH_TOKEN_LEN, RefreshToken};
use proptest::prelude::*;

const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Strings that look almost like secrets: the right alphabet with a few strays, near the right
/// length.
fn near_secret() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{40,46}",
        "[A-Za-z0-9_+/=. -]{43}",
        any::<String>(),
    ]
}

fn session_id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{8,64}"
}

proptest! {
    #[test]
    fn any_32_bytes_encode_to_a_secret_that_parses_back(bytes in any::<[u8; 32]>()) {
        let encoded = URL_SAFE_NO_PAD.encode(bytes);
        let secret = SecretToken::parse(&encoded).expect("a canonical encoding parses");
        prop_assert_eq!(secret.expose(), encoded.as_str());
        prop_assert_eq!(URL_SAFE_NO_PAD.decode(secret.expose()).unwrap(), bytes.to_vec());
        // The store key is a function of the secret alone.
        prop_assert_eq!(secret.store_key(), SecretToken::parse(&encoded).unwrap().store_key());
    }

    #[test]
    fn an_accepted_secret_has_one_spelling(candidate in near_secret()) {
        if let Some(secret) = SecretToken::parse(&candidate) {
            prop_assert_eq!(secret.expose(), candidate.as_str());
            let decoded = URL_SAFE_NO_PAD.decode(&candidate).unwrap();
            prop_assert_eq!(decoded.len(), 32);
            prop_assert_eq!(URL_SAFE_NO_PAD.encode(&decoded), candidate);
        }
    }

    #[test]
    fn a_secret_with_one_character_changed_is_another_secret_or_none(
        bytes in any::<[u8; 32]>(),
        position in 0usize..43,
        replacement in any::<char>(),
    ) {
        let encoded = URL_SAFE_NO_PAD.encode(bytes);
        let original = SecretToken::parse(&encoded).unwrap();
        let mut chars: Vec<char> = encoded.chars().collect();
        chars[position] = replacement;
        let changed: String = chars.into_iter().collect();
        match SecretToken::parse(&changed) {
            None => prop_assert!(
                changed == encoded
                    || !replacement.is_ascii()
                    || !BASE64URL.contains(replacement)
                    || position == 42,
                "a valid one-character change was refused: {:?}", changed
            ),
            Some(secret) if changed == encoded => prop_assert_eq!(secret, original),
            Some(secret) => {
                prop_assert_ne!(secret.store_key(), original.store_key());
                prop_assert_ne!(secret, original);
            }
        }
    }

    #[test]
    fn store_keys_round_trip_through_hex_and_serde(bytes in any::<[u8; 32]>()) {
        let key = StoreKey::from_bytes(bytes);
        let hex = key.to_hex();
        prop_assert_eq!(hex.len(), 64);
        prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        prop_assert_eq!(StoreKey::from_hex(&hex), Some(key));
        prop_assert_eq!(StoreKey::from_hex(&hex.to_uppercase()), Some(key));
        let json = serde_json::to_string(&key).unwrap();
        prop_assert_eq!(serde_json::from_str::<StoreKey>(&json).unwrap(), key);
        prop_assert_eq!(key.as_bytes(), &bytes);
    }

    #[test]
    fn hex_that_parses_is_hex(candidate in prop_oneof![
        // Valid hex with one or two characters replaced by a sign, a space or a stray letter.
        (
            "[0-9a-fA-F]{64}",
            prop::collection::vec((0usize..64, prop::sample::select(vec!['+', '-', ' ', 'g', 'x'])), 1..3),
        )
            .prop_map(|(hex, strays)| {
                let mut bytes = hex.into_bytes();
                for (position, stray) in strays {
                    bytes[position] = stray as u8;
                }
                String::from_utf8(bytes).unwrap()
            }),
        "[0-9a-f]{62,66}",
        any::<String>(),
    ]) {
        if let Some(key) = StoreKey::from_hex(&candidate) {
            prop_assert!(
                candidate.len() == 64 && candidate.bytes().all(|b| b.is_ascii_hexdigit()),
                "accepted {:?}", candidate
            );
            prop_assert_eq!(key.to_hex(), candidate.to_ascii_lowercase());
        }
    }

    #[test]
    fn refresh_tokens_round_trip(sid in session_id(), bytes in any::<[u8; 32]>()) {
        let secret = SecretToken::parse(&URL_SAFE_NO_PAD.encode(bytes)).unwrap();
        let token = RefreshToken::new(sid.clone(), secret.clone());
        let exposed = token.expose();
        prop_assert!(exposed.len() <= MAX_REFRESH_TOKEN_LEN);
        let parsed = RefreshToken::parse(&exposed).expect("a token we mint parses");
        prop_assert_eq!(parsed.session_id(), sid.as_str());
        prop_assert_eq!(parsed.secret(), &secret);
        prop_assert_eq!(&parsed, &token);
        prop_assert_eq!(format!("{parsed:?}"), "RefreshToken(REDACTED)");
    }

    #[test]
    fn an_accepted_refresh_token_has_one_spelling(candidate in prop_oneof![
        "[A-Za-z0-9_-]{6,66}\\.[A-Za-z0-9_-]{42,44}",
        "[A-Za-z0-9_.-]{50,130}",
        any::<String>(),
    ]) {
        if let Some(token) = RefreshToken::parse(&candidate) {
            prop_assert_eq!(token.expose(), candidate.clone());
            prop_assert!(candidate.len() <= MAX_REFRESH_TOKEN_LEN);
            prop_assert!((8..=64).contains(&token.session_id().len()));
        }
    }

    #[test]
    fn handles_are_distinct_short_and_url_safe(_round in 0u8..4) {
        let (a, b) = (random_handle(), random_handle());
        prop_assert_ne!(&a, &b);
        prop_assert_eq!(a.len(), 16);
        prop_assert!(a.bytes().all(|c| BASE64URL.as_bytes().contains(&c)));
        // A handle is a valid refresh-token session id.
        let secret = SecretToken::generate();
        let token = format!("{a}.{}", secret.expose());
        prop_assert!(RefreshToken::parse(&token).is_some());
    }
}

#[test]
fn generated_secrets_are_distinct_and_parse() {
    let secrets: std::collections::HashSet<String> = (0..1_000)
        .map(|_| SecretToken::generate().expose().to_owned())
        .collect();
    assert_eq!(secrets.len(), 1_000);
    for secret in &secrets {
        assert_eq!(SecretToken::parse(secret).unwrap().expose(), secret);
    }
}
