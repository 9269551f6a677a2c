//! The verified-token cache: a client sends the same token on request after request, so the
//! second request should cost a hash lookup, not a signature check and a claims parse (as
//! gateways such as Envoy's `jwt_authn` do).
//!
//! What it never weakens:
//! - only tokens that passed every check are cached, so a token refused once is refused again;
//! - an entry is found by the exact token: a keyed hash picks the slot, then the whole token
//!   is compared in constant time (no early exit on the first differing byte);
//! - an entry lives until the earlier of the token's `exp` (plus the leeway verification
//!   allows) and [`TokenCacheConfig::max_age`], by the verifier's clock;
//! - an entry dies with the keys that verified it: any change to the key set (rotation, a
//!   JWKS refetch that adds or drops a key) makes every older entry a miss;
//! - revocation is checked after the cache, on every request, by the layers that have a
//!   revocation list (the hybrid edge);
//! - memory is bounded by entries and bytes.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasher, RandomState},
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use portcullis_core::constant_time_eq;

use crate::VerifiedToken;

/// The counter of cache lookups, labelled `outcome` = `hit` or `miss`.
pub const TOKEN_CACHE_LOOKUPS_TOTAL: &str = "portcullis_token_cache_lookups_total";

const SHARDS: usize = 16;
/// What an entry costs besides its token and claims: the map slot, the entry, the `Arc`s.
const ENTRY_OVERHEAD: usize = 128;

/// The bounds of a [`TokenVerifier`](crate::TokenVerifier)'s verified-token cache.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_jwt::TokenCacheConfig;
///
/// let config = TokenCacheConfig::new()
///     .max_entries(50_000)
///     .max_bytes(32 * 1024 * 1024)
///     .max_age(Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenCacheConfig {
    max_entries: usize,
    max_bytes: usize,
    max_age: Duration,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TokenCacheConfig {
    /// 10,000 tokens, 16 MiB, five minutes.
    pub fn new() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 16 * 1024 * 1024,
            max_age: Duration::from_secs(300),
        }
    }

    /// The most tokens kept (default 10,000).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_jwt::TokenCacheConfig::new().max_entries(1_000);
    /// ```
    #[must_use]
    pub fn max_entries(mut self, max: usize) -> Self {
        self.max_entries = max.max(SHARDS);
        self
    }

    /// The most bytes of tokens and claims kept (default 16 MiB).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_jwt::TokenCacheConfig::new().max_bytes(1 << 20);
    /// ```
    #[must_use]
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max.max(SHARDS * 4096);
        self
    }

    /// How long a token is trusted without verifying it again, at most (default five minutes;
    /// the token's own `exp` ends it sooner).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_jwt::TokenCacheConfig::new().max_age(std::time::Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }
}

/// How the cache has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that verified the token.
    pub misses: u64,
    /// Tokens held now.
    pub entries: usize,
}

struct Entry {
    token: Box<[u8]>,
    verified: VerifiedToken,
    /// Unix seconds when it was verified: a clock set back before it makes a miss.
    verified_at: u64,
    /// Unix seconds after which the entry is a miss.
    valid_until: u64,
    /// The key set's epoch when the token was verified.
    keys_epoch: u64,
    bytes: usize,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<u64, Entry>,
    bytes: usize,
}

impl Shard {
    fn remove(&mut self, slot: u64) {
        if let Some(entry) = self.entries.remove(&slot) {
            self.bytes -= entry.bytes;
        }
    }
}

pub(crate) struct TokenCache {
    config: TokenCacheConfig,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    pub(crate) fn new(config: TokenCacheConfig) -> Self {
        Self {
            config,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn config(&self) -> TokenCacheConfig {
        self.config
    }

    /// The token's shard and slot; always `Some` (the index is taken modulo the shard count).
    fn locate(&self, token: &str) -> Option<(&Mutex<Shard>, u64)> {
        let slot = self.hasher.hash_one(token.as_bytes());
        // The low bits pick the shard; the map hashes the whole slot again.
        #[allow(clippy::cast_possible_truncation)]
        let shard = self.shards.get((slot as usize) % SHARDS)?;
        Some((shard, slot))
    }

    /// The verified token, if `token` was verified under the same keys and is still valid.
    pub(crate) fn get(&self, token: &str, now: u64, keys_epoch: u64) -> Option<VerifiedToken> {
        let (shard, slot) = self.locate(token)?;
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let found = match shard.entries.get(&slot) {
            Some(entry) if constant_time_eq(&entry.token, token.as_bytes()) => {
                if entry.verified_at <= now
                    && now < entry.valid_until
                    && entry.keys_epoch == keys_epoch
                {
                    Some(entry.verified.clone())
                } else {
                    // Expired, or its keys changed: gone for good.
                    shard.remove(slot);
                    None
                }
            }
            _ => None,
        };
        drop(shard);
        let (counter, outcome) = if found.is_some() {
            (&self.hits, "hit")
        } else {
            (&self.misses, "miss")
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(TOKEN_CACHE_LOOKUPS_TOTAL, "outcome" => outcome).increment(1);
        found
    }

    /// Keeps a token that passed verification at `now`, trusted until `expires_at` (its `exp`
    /// plus leeway) or `now + max_age`, whichever is first.
    pub(crate) fn insert(
        &self,
        token: &str,
        verified: &VerifiedToken,
        now: u64,
        expires_at: u64,
        keys_epoch: u64,
    ) {
        let valid_until = expires_at.min(now.saturating_add(self.config.max_age.as_secs()));
        if valid_until <= now {
            return;
        }
        let bytes = token.len() + verified.approximate_bytes() + ENTRY_OVERHEAD;
        let max_entries = self.config.max_entries / SHARDS;
        let max_bytes = self.config.max_bytes / SHARDS;
        if bytes > max_bytes {
            return;
        }
        let Some((shard, slot)) = self.locate(token) else {
            return;
        };
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        shard.remove(slot);
        if shard.entries.len() >= max_entries || shard.bytes + bytes > max_bytes {
            shard.entries.retain(|_, entry| entry.valid_until > now);
            shard.bytes = shard.entries.values().map(|entry| entry.bytes).sum();
        }
        // Still full: drop arbitrary entries (the map's order is keyed-random), which a client
        // cannot steer.
        while shard.entries.len() >= max_entries || shard.bytes + bytes > max_bytes {
            let Some(victim) = shard.entries.keys().next().copied() else {
                break;
            };
            shard.remove(victim);
        }
        shard.bytes += bytes;
        shard.entries.insert(
            slot,
            Entry {
                token: token.as_bytes().into(),
                verified: verified.clone(),
                verified_at: now,
                valid_until,
                keys_epoch,
                bytes,
            },
        );
    }

    pub(crate) fn stats(&self) -> TokenCacheStats {
        TokenCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self
                .shards
                .iter()
                .map(|shard| {
                    shard
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .entries
                        .len()
                })
                .sum(),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).bytes)
            .sum()
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portcullis_core::ManualClock;

    use crate::{
        Algorithm, IssueOptions, SigningKey, TokenCacheConfig, TokenError, TokenIssuer,
        TokenVerifier, Validation,
    };

    const START: u64 = 1_800_000_000;

    fn setup(config: TokenCacheConfig) -> (ManualClock, TokenIssuer, TokenVerifier) {
        let clock = ManualClock::at_unix_seconds(START);
        let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::ES256).unwrap())
            .with_clock(Arc::new(clock.clone()));
        let verifier = TokenVerifier::new(
            issuer.key_set(),
            Validation::new().leeway(std::time::Duration::ZERO),
        )
        .with_clock(Arc::new(clock.clone()))
        .token_cache(config);
        (clock, issuer, verifier)
    }

    fn token(issuer: &TokenIssuer, user: &str, ttl: u64) -> String {
        issuer
            .issue_with(
                user,
                &serde_json::json!({ "user": user }),
                &IssueOptions::default().ttl(std::time::Duration::from_secs(ttl)),
            )
            .unwrap()
            .token
    }

    fn stats(verifier: &TokenVerifier) -> (u64, u64, usize) {
        let stats = verifier.token_cache_stats().unwrap();
        (stats.hits, stats.misses, stats.entries)
    }

    #[test]
    fn a_token_seen_before_is_a_hit_with_the_same_claims() {
        let (_, issuer, verifier) = setup(TokenCacheConfig::new());
        let alice = token(&issuer, "alice", 60);
        let first = verifier.verify_now(&alice).unwrap();
        let again = verifier.verify_now(&alice).unwrap();
        assert_eq!(stats(&verifier), (1, 1, 1));
        assert_eq!(again.subject(), "alice");
        assert_eq!(again.claims_json(), first.claims_json());
        // Another user's token is never served from alice's entry.
        let bob = token(&issuer, "bob", 60);
        assert_eq!(verifier.verify_now(&bob).unwrap().subject(), "bob");
        assert_eq!(verifier.verify_now(&alice).unwrap().subject(), "alice");
    }

    #[test]
    fn refused_and_altered_tokens_are_never_served() {
        let (_, issuer, verifier) = setup(TokenCacheConfig::new());
        let good = token(&issuer, "alice", 60);
        verifier.verify_now(&good).unwrap();
        // Flip one character of the signature: same length, same prefix.
        let mut altered = good.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        for _ in 0..3 {
            assert!(verifier.verify_now(&altered).is_err());
        }
        let foreign = token(
            &TokenIssuer::new(SigningKey::generate(Algorithm::ES256).unwrap()),
            "mallory",
            60,
        );
        for _ in 0..3 {
            assert_eq!(
                verifier.verify_now(&foreign).unwrap_err(),
                TokenError::UnknownKey
            );
        }
        assert_eq!(stats(&verifier).2, 1, "only the good token is held");
    }

    #[test]
    fn an_entry_ends_with_exp_with_max_age_and_when_the_clock_goes_back() {
        let (clock, issuer, verifier) =
            setup(TokenCacheConfig::new().max_age(std::time::Duration::from_secs(20)));
        let short = token(&issuer, "alice", 10);
        verifier.verify_now(&short).unwrap();
        clock.advance(std::time::Duration::from_secs(9));
        verifier.verify_now(&short).unwrap();
        assert_eq!(stats(&verifier).0, 1);
        clock.advance(std::time::Duration::from_secs(1));
        assert_eq!(
            verifier.verify_now(&short).unwrap_err(),
            TokenError::Expired
        );

        let long = token(&issuer, "bob", 3_600);
        verifier.verify_now(&long).unwrap();
        let (hits, misses, _) = stats(&verifier);
        clock.advance(std::time::Duration::from_secs(21));
        verifier.verify_now(&long).unwrap();
        assert_eq!(
            stats(&verifier).1,
            misses + 1,
            "past max_age: verified again"
        );
        // Back before the token was issued: verification says not yet valid, and so does the
        // cache, which holds nothing from the future.
        clock.set(std::time::UNIX_EPOCH + std::time::Duration::from_secs(START));
        assert_eq!(
            verifier.verify_now(&long).unwrap_err(),
            TokenError::NotYetValid
        );
        assert_eq!(stats(&verifier).0, hits, "a clock set back is a miss");
    }

    #[test]
    fn a_key_change_drops_every_entry() {
        let (_, issuer, verifier) = setup(TokenCacheConfig::new());
        let alice = token(&issuer, "alice", 60);
        verifier.verify_now(&alice).unwrap();
        verifier.verify_now(&alice).unwrap();
        assert_eq!(stats(&verifier), (1, 1, 1));
        // Publishing the same keys again (a JWKS request) changes nothing.
        let _ = issuer.jwks();
        verifier.verify_now(&alice).unwrap();
        assert_eq!(stats(&verifier).0, 2);
        // A rotation changes the key set: the token is verified afresh (and still valid, its
        // key is published until its last token expires).
        issuer.rotate(SigningKey::generate(Algorithm::ES256).unwrap());
        verifier.verify_now(&alice).unwrap();
        assert_eq!(stats(&verifier), (2, 2, 1));
    }

    #[test]
    fn memory_is_bounded_by_entries_and_bytes() {
        let (_, issuer, verifier) = setup(TokenCacheConfig::new().max_entries(32));
        let tokens: Vec<_> = (0..500)
            .map(|i| token(&issuer, &format!("u{i}"), 60))
            .collect();
        for token in &tokens {
            verifier.verify_now(token).unwrap();
        }
        assert!(stats(&verifier).2 <= 32, "{:?}", stats(&verifier));
        let (_, issuer, verifier) = setup(TokenCacheConfig::new().max_bytes(16 * 4096));
        let big = "x".repeat(1_000);
        for i in 0..200 {
            let token = issuer
                .issue(&format!("u{i}"), &serde_json::json!({ "pad": big }))
                .unwrap()
                .token;
            verifier.verify_now(&token).unwrap();
        }
        assert!(verifier.token_cache_bytes() <= 16 * 4096);
        let held = stats(&verifier).2;
        assert!((1..=16).contains(&held), "{held}");
    }

    #[test]
    fn without_a_cache_every_token_is_verified() {
        let (_, issuer, verifier) = setup(TokenCacheConfig::new());
        let verifier = verifier.without_token_cache();
        let alice = token(&issuer, "alice", 60);
        verifier.verify_now(&alice).unwrap();
        verifier.verify_now(&alice).unwrap();
        assert_eq!(verifier.token_cache_stats(), None);
    }
}
