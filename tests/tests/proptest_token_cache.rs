//! Property tests of the verified-token cache's key path (issue 15, item 4): whatever tokens a
//! client sends, in whatever order, a verifier with the cache answers exactly what a verifier
//! without it answers. Distinct tokens never share an entry (each token's claims come back with
//! it, under eviction pressure too); a token altered anywhere (header, claims, signature) and
//! refused once is refused every time and never served from the original's entry; a change of
//! the key set makes every entry a miss.

use std::{sync::Arc, time::Duration};

use portcullis_core::ManualClock;
use portcullis_jwt::{
    Algorithm, IssueOptions, SigningKey, TokenCacheConfig, TokenIssuer, TokenVerifier, Validation,
};
use proptest::prelude::*;

const START: u64 = 1_800_000_000;
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

struct Fixture {
    issuer: TokenIssuer,
    cached: TokenVerifier,
    uncached: TokenVerifier,
}

fn fixture(max_entries: usize) -> Fixture {
    let clock = Arc::new(ManualClock::at_unix_seconds(START));
    let issuer =
        TokenIssuer::new(SigningKey::hmac(Algorithm::HS256, &[7u8; 32], Some("k1")).unwrap())
            .with_clock(clock.clone());
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().leeway(Duration::ZERO))
        .with_clock(clock);
    Fixture {
        cached: verifier
            .clone()
            .token_cache(TokenCacheConfig::new().max_entries(max_entries)),
        uncached: verifier.without_token_cache(),
        issuer,
    }
}

fn token(issuer: &TokenIssuer, user: &str, ttl: u64) -> String {
    issuer
        .issue_with(
            user,
            &serde_json::json!({ "user": user }),
            &IssueOptions::default().ttl(Duration::from_secs(ttl)),
        )
        .unwrap()
        .token
}

/// The outcome a client sees: the subject and claims, or the error.
fn outcome(verifier: &TokenVerifier, token: &str) -> Result<(String, String), String> {
    verifier
        .verify_now(token)
        .map(|verified| {
            (
                verified.subject().to_owned(),
                verified.claims_json().to_owned(),
            )
        })
        .map_err(|error| format!("{error:?}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn distinct_tokens_never_share_an_entry(
        users in proptest::collection::btree_set("[a-z0-9]{1,12}", 2..24),
        ttls in proptest::collection::vec(1u64..3_600, 24),
        order in proptest::collection::vec(any::<prop::sample::Index>(), 1..80),
        max_entries in 16usize..64,
    ) {
        let fixture = fixture(max_entries);
        let tokens: Vec<(String, String)> = users
            .iter()
            .zip(&ttls)
            .map(|(user, ttl)| (user.clone(), token(&fixture.issuer, user, *ttl)))
            .collect();
        for index in order {
            let (user, token) = index.get(&tokens);
            let cached = outcome(&fixture.cached, token);
            prop_assert_eq!(&cached, &outcome(&fixture.uncached, token));
            let (subject, claims) = cached.unwrap();
            prop_assert_eq!(&subject, user);
            prop_assert!(claims.contains(&format!("\"user\":\"{user}\"")), "{}", claims);
        }
    }

    #[test]
    fn an_altered_token_is_never_served_from_the_original_entry(
        position in any::<prop::sample::Index>(),
        replacement in any::<prop::sample::Index>(),
        repeats in 1usize..4,
    ) {
        let fixture = fixture(1_000);
        let good = token(&fixture.issuer, "alice", 600);
        // The original is cached first, so a lookup that matched on a prefix or a hash alone
        // would serve the altered token from its entry.
        outcome(&fixture.cached, &good).unwrap();
        outcome(&fixture.cached, &good).unwrap();
        let mut altered = good.clone().into_bytes();
        let at = position.index(altered.len());
        let byte = *replacement.get(BASE64URL);
        prop_assume!(altered[at] != b'.' && altered[at] != byte);
        altered[at] = byte;
        let altered = String::from_utf8(altered).unwrap();
        let expected = outcome(&fixture.uncached, &altered);
        for _ in 0..repeats {
            prop_assert_eq!(&outcome(&fixture.cached, &altered), &expected);
        }
        // Whatever the altered token got, the original still answers with its own claims.
        prop_assert_eq!(outcome(&fixture.cached, &good), outcome(&fixture.uncached, &good));
        if expected.is_err() {
            let stats = fixture.cached.token_cache_stats().unwrap();
            prop_assert_eq!(stats.entries, 1, "a refused token was cached");
        }
    }

    #[test]
    fn a_key_set_change_makes_every_entry_a_miss(count in 1usize..12, rotations in 1usize..3) {
        let fixture = fixture(1_000);
        let tokens: Vec<String> = (0..count)
            .map(|i| token(&fixture.issuer, &format!("u{i}"), 600))
            .collect();
        for token in &tokens {
            outcome(&fixture.cached, token).unwrap();
        }
        for rotation in 0..rotations {
            let misses = fixture.cached.token_cache_stats().unwrap().misses;
            let kid = format!("k{}", rotation + 2);
            fixture
                .issuer
                .rotate(SigningKey::hmac(Algorithm::HS256, &[rotation as u8 + 8; 32], Some(&kid)).unwrap());
            for token in &tokens {
                prop_assert_eq!(outcome(&fixture.cached, token), outcome(&fixture.uncached, token));
            }
            let after = fixture.cached.token_cache_stats().unwrap().misses;
            prop_assert_eq!(after, misses + count as u64, "every entry verified afresh");
        }
    }
}
