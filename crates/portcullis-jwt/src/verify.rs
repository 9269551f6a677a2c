//! Verifying a compact JWS token (RFC 7515 §7.1) and its claims (RFC 7519 §7.2):
//! [`TokenVerifier`] and [`Attempt`] (the header parse is in `compact.rs`, the claims checks in
//! `claims.rs`).
//!
//! The order follows RFC 8725: the size is checked before anything is decoded (§3.11); the
//! header is parsed strictly and its `alg` must be the algorithm the selected key is pinned to
//! (§3.1); the signature is checked before the payload is parsed at all; only then are the
//! claims read and validated (§3.8–§3.12). `jku`, `x5u`, `jwk` and `x5c` headers are never read,
//! let alone followed (§3.10): keys come from the [`KeySet`] alone.

use std::{fmt, sync::Arc};

use portcullis_core::{SharedClock, SystemClock};

use crate::{
    KeySet, TokenCacheConfig, TokenCacheStats, TokenError, Validation, VerifiedToken,
    audience::AudienceHint,
    cache::TokenCache,
    claims::validate_claims,
    compact::{Buffers, parse},
    keys::KeyMatch,
};

/// Verifies tokens against a [`KeySet`] and a [`Validation`]. Cheap to clone.
///
/// # Examples
///
/// ```
/// use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, TokenVerifier, Validation};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::ES256).unwrap())
///     .issuer("https://auth.example")
///     .audience("https://api.example");
/// let verifier = TokenVerifier::new(
///     issuer.key_set(),
///     Validation::new().issuer("https://auth.example").audience("https://api.example"),
/// );
/// let token = issuer.issue("alice", &serde_json::json!({"role": "advertiser"})).unwrap();
/// let verified = verifier.verify(&token.token).await.unwrap();
/// assert_eq!(verified.subject(), "alice");
/// assert_eq!(verified.claim::<String>("role").as_deref(), Some("advertiser"));
/// # });
/// ```
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<VerifierInner>,
}

#[derive(Clone)]
struct VerifierInner {
    keys: KeySet,
    validation: Validation,
    clock: SharedClock,
    cache: Option<Arc<TokenCache>>,
    audience_hint: Arc<AudienceHint>,
}

/// What verifying a token with the keys at hand decided ([`TokenVerifier::attempt`]).
///
/// Edge layers call this first: it never waits, so the hot path stays synchronous and
/// unboxed. Only a key set with a JWKS URL ever answers [`Attempt::NeedsKeys`]; a static key
/// set always decides at once.
///
/// # Examples
///
/// ```
/// use portcullis_jwt::{Algorithm, Attempt, SigningKey, TokenError, TokenIssuer, TokenVerifier, Validation};
///
/// let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
/// let verifier = TokenVerifier::new(issuer.key_set(), Validation::new());
/// let token = issuer.issue("alice", &serde_json::json!({})).unwrap().token;
/// match verifier.attempt(&token) {
///     Attempt::Done(Ok(verified)) => assert_eq!(verified.subject(), "alice"),
///     Attempt::Done(Err(error)) => panic!("refused: {error}"),
///     // The slow path: `verifier.verify_after_refetch(&token).await`.
///     Attempt::NeedsKeys(_) => unreachable!("a static key set decides at once"),
/// }
/// let other = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
/// let foreign = other.issue("mallory", &serde_json::json!({})).unwrap().token;
/// assert!(matches!(verifier.attempt(&foreign), Attempt::Done(Err(TokenError::InvalidSignature | TokenError::UnknownKey))));
/// ```
#[derive(Debug)]
#[must_use]
pub enum Attempt {
    /// Verified or refused; no key fetch could change the answer.
    Done(Result<VerifiedToken, TokenError>),
    /// Only keys the set has not fetched yet could decide (an unknown `kid` a JWKS refetch may
    /// bring, or a JWKS URL not loaded yet): wait for
    /// [`TokenVerifier::verify_after_refetch`]. The error ([`TokenError::UnknownKey`] or
    /// [`TokenError::KeysUnavailable`]) is the answer for a caller that will not wait.
    NeedsKeys(TokenError),
}

impl Attempt {
    /// The answer without waiting for keys: [`Attempt::NeedsKeys`] becomes its error.
    ///
    /// # Errors
    ///
    /// Why the token is refused.
    pub fn now(self) -> Result<VerifiedToken, TokenError> {
        match self {
            Self::Done(result) => result,
            Self::NeedsKeys(error) => Err(error),
        }
    }
}

impl TokenVerifier {
    /// The verifier's clock, in Unix seconds (the revocation check judges deadlines by it).
    pub(crate) fn unix_now(&self) -> u64 {
        self.inner.clock.unix_seconds()
    }

    /// A verifier trusting `keys` under `validation`, on the system clock.
    pub fn new(keys: KeySet, validation: Validation) -> Self {
        Self {
            inner: Arc::new(VerifierInner {
                keys,
                validation,
                clock: Arc::new(SystemClock),
                cache: Some(Arc::new(TokenCache::new(TokenCacheConfig::new()))),
                audience_hint: Arc::default(),
            }),
        }
    }

    /// Sets the bounds of the verified-token cache, which is on by default (10,000 tokens,
    /// 16 MiB, five minutes): a token seen before costs a hash lookup instead of a signature
    /// check. See [`TokenCacheConfig`] for what the cache never weakens.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{KeySet, TokenCacheConfig, TokenVerifier, Validation};
    /// let verifier = TokenVerifier::new(KeySet::new(), Validation::new())
    ///     .token_cache(TokenCacheConfig::new().max_entries(100_000));
    /// ```
    #[must_use]
    pub fn token_cache(self, config: TokenCacheConfig) -> Self {
        self.update(|inner| inner.cache = Some(Arc::new(TokenCache::new(config))))
    }

    /// Verifies every token in full, every time (no cache).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{KeySet, TokenVerifier, Validation};
    /// let verifier = TokenVerifier::new(KeySet::new(), Validation::new()).without_token_cache();
    /// assert_eq!(verifier.token_cache_stats(), None);
    /// ```
    #[must_use]
    pub fn without_token_cache(self) -> Self {
        self.update(|inner| inner.cache = None)
    }

    /// Hits, misses and size of the verified-token cache; `None` without a cache.
    pub fn token_cache_stats(&self) -> Option<TokenCacheStats> {
        self.inner.cache.as_ref().map(|cache| cache.stats())
    }

    /// Bytes the verified-token cache holds (tokens, claims and per-entry overhead).
    pub fn token_cache_bytes(&self) -> usize {
        self.inner.cache.as_ref().map_or(0, |cache| cache.bytes())
    }

    fn update(self, change: impl FnOnce(&mut VerifierInner)) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.inner);
        change(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Uses another clock for `exp`/`nbf`/`iat` (a [`portcullis_core::ManualClock`] in tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_jwt::{KeySet, TokenVerifier, Validation};
    /// let verifier = TokenVerifier::new(KeySet::new(), Validation::new())
    ///     .with_clock(Arc::new(ManualClock::at_unix_seconds(1_000)));
    /// ```
    #[must_use]
    pub fn with_clock(self, clock: SharedClock) -> Self {
        self.update(|inner| {
            inner.clock = clock;
            // Entries were judged by the old clock: start afresh.
            inner.cache = inner
                .cache
                .as_ref()
                .map(|cache| Arc::new(TokenCache::new(cache.config())));
        })
    }

    /// The key set.
    pub fn key_set(&self) -> &KeySet {
        &self.inner.keys
    }

    /// The validation rules.
    pub fn validation(&self) -> &Validation {
        &self.inner.validation
    }

    /// Verifies a token. When its `kid` is unknown to a JWKS URL key set, or that set has not
    /// loaded yet, this waits for a (rate-limited) refetch before deciding.
    ///
    /// # Errors
    ///
    /// Why the token is refused; [`TokenError::KeysUnavailable`] when its keys cannot be had.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        match self.attempt(token) {
            Attempt::Done(result) => result,
            Attempt::NeedsKeys(_) => self.verify_after_refetch(token).await,
        }
    }

    /// The slow path after [`Attempt::NeedsKeys`]: refetches the key set (rate-limited) and
    /// verifies `token` against the keys it holds then, without asking for another refetch.
    ///
    /// # Errors
    ///
    /// Why the token is refused; [`TokenError::KeysUnavailable`] when its keys cannot be had.
    pub async fn verify_after_refetch(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.inner.keys.refetch().await;
        self.attempt(token).now()
    }

    /// Verifies a token with the keys at hand, never waiting for a fetch: a `kid` a refetch
    /// might find is [`TokenError::UnknownKey`], a JWKS URL not loaded yet
    /// [`TokenError::KeysUnavailable`].
    ///
    /// # Errors
    ///
    /// Why the token is refused.
    pub fn verify_now(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        self.attempt(token).now()
    }

    /// Verifies a token with the keys at hand, parsing it once, and says whether only a key
    /// refetch could decide (see [`Attempt`]). The verified-token cache answers first.
    pub fn attempt(&self, token: &str) -> Attempt {
        let inner = &*self.inner;
        let validation = &inner.validation;
        let now = inner.clock.unix_seconds();
        let keys_epoch = inner.keys.epoch();
        if let Some(cache) = &inner.cache
            && let Some(verified) = cache.get(token, now, keys_epoch)
        {
            return Attempt::Done(Ok(verified));
        }
        let mut buffers = Buffers::new();
        let parsed = match parse(token, validation, &mut buffers) {
            Ok(parsed) => parsed,
            Err(error) => return Attempt::Done(Err(error)),
        };
        let pinned_issuer = match self.inner.keys.verify_signature(
            parsed.kid.as_deref(),
            parsed.alg,
            parsed.signing_input,
            parsed.signature,
        ) {
            KeyMatch::Verified(issuer) => issuer,
            KeyMatch::AlgorithmMismatch => {
                return Attempt::Done(Err(TokenError::AlgorithmMismatch));
            }
            KeyMatch::BadSignature => return Attempt::Done(Err(TokenError::InvalidSignature)),
            KeyMatch::UnknownKey { refetch: true } => {
                return Attempt::NeedsKeys(TokenError::UnknownKey);
            }
            KeyMatch::UnknownKey { refetch: false } => {
                return Attempt::Done(Err(TokenError::UnknownKey));
            }
            KeyMatch::Unavailable => return Attempt::NeedsKeys(TokenError::KeysUnavailable),
        };
        let result = validate_claims(parsed.payload, validation, pinned_issuer, now);
        if matches!(result, Err(TokenError::AudienceNotConfigured)) {
            inner.audience_hint.report(parsed.payload, now);
        }
        if let (Some(cache), Ok(verified)) = (&inner.cache, &result) {
            // Trusted as long as verification itself would accept it: until exp + leeway.
            let expires_at = verified.expires_at.saturating_add(validation.leeway_secs);
            cache.insert(token, verified, now, expires_at, keys_epoch);
        }
        Attempt::Done(result)
    }
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("keys", &self.inner.keys)
            .field("validation", &self.inner.validation)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
