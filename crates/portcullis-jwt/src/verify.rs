//! Verifying a compact JWS token (RFC 7515 §7.1) and its claims (RFC 7519 §7.2):
//! [`TokenVerifier`], [`VerifiedToken`] and the reasons for refusal, [`TokenError`].
//!
//! The order follows RFC 8725: the size is checked before anything is decoded (§3.11); the
//! header is parsed strictly and its `alg` must be the algorithm the selected key is pinned to
//! (§3.1); the signature is checked before the payload is parsed at all; only then are the
//! claims read and validated (§3.8–§3.12). `jku`, `x5u`, `jwk` and `x5c` headers are never read,
//! let alone followed (§3.10): keys come from the [`KeySet`] alone.

use std::{borrow::Cow, collections::BTreeMap, fmt, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis_core::{AuthRejection, Identity, Mechanism, SharedClock, SystemClock, UserJson};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::value::RawValue;

use crate::{
    Algorithm, KeySet, TokenCacheConfig, TokenCacheStats, Validation, cache::TokenCache,
    keys::KeyMatch,
};

/// The longest base64url header accepted (RFC 8725 §3.11: bounded work on untrusted input).
const MAX_HEADER_CHARS: usize = 2048;
/// The longest base64url signature accepted: an RSA-8192 signature is 1024 bytes.
const MAX_SIGNATURE_CHARS: usize = 1366;

/// Why a token was refused. The `Display` text is safe to show the client: it never echoes the
/// token or any of its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`Validation::max_token_bytes`].
    #[error("the token is too large")]
    TooLarge,
    /// Not three strict base64url segments of a JSON header, a JSON object payload and a
    /// signature (RFC 7515 §7.1, RFC 7519 §7.2).
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// The `alg` header is `none` or not a supported algorithm (RFC 8725 §3.1).
    #[error("the token's algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The header has a `crit` parameter (even `null` or empty): no extension is understood,
    /// so RFC 7515 §4.1.11 requires refusal.
    #[error("the token uses critical header extensions that are not supported")]
    CriticalHeader,
    /// The `typ` header is not the configured type (RFC 8725 §3.11, RFC 9068 §4).
    #[error("the token is not of the expected type")]
    WrongType,
    /// No trusted key has the token's `kid` (or, without `kid`, its algorithm).
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// The key named by `kid` is pinned to another algorithm (RFC 8725 §2.1, §3.1).
    #[error("the token's algorithm does not match its key")]
    AlgorithmMismatch,
    /// The signature does not verify.
    #[error("the token's signature is invalid")]
    InvalidSignature,
    /// The key set that could verify the token has not been fetched yet (the issuer is
    /// unreachable): the request is answered with 503, never let in.
    #[error("the token signing keys are temporarily unavailable")]
    KeysUnavailable,
    /// A required claim is missing.
    #[error("the token has no {0} claim")]
    MissingClaim(Cow<'static, str>),
    /// A registered claim has the wrong JSON type or an impossible value (RFC 7519 §4.1).
    #[error("the token's {0} claim is invalid")]
    InvalidClaim(&'static str),
    /// `exp` has passed (RFC 7519 §4.1.4).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is in the future (RFC 7519 §4.1.5).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future (RFC 7519 §4.1.6).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `auth_time` is in the future (OpenID Connect Core §2): an authentication that has not
    /// happened yet would count as recent until it does.
    #[error("the token's authentication time is in the future")]
    AuthenticatedInFuture,
    /// `iss` is not a trusted issuer, or not the issuer its key is pinned to (RFC 7519 §4.1.1).
    #[error("the token was issued by an untrusted issuer")]
    WrongIssuer,
    /// `aud` does not name this service, or names an audience while none is configured
    /// (RFC 7519 §4.1.3).
    #[error("the token is not meant for this audience")]
    WrongAudience,
}

impl From<TokenError> for AuthRejection {
    /// 503 (fail closed) while keys are unavailable; 401 `invalid_token` otherwise. Add the
    /// realm with [`AuthRejection::with_bearer_challenge`].
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::KeysUnavailable => AuthRejection::unavailable(error.to_string()),
            _ => AuthRejection::invalid_credentials(error.to_string()),
        }
    }
}

/// A token whose signature and claims passed validation. Cheap to clone (the claims are
/// shared).
#[derive(Clone)]
pub struct VerifiedToken {
    claims: UserJson,
    subject: Arc<str>,
    expires_at: u64,
    issued_at: Option<u64>,
    authenticated_at: Option<u64>,
}

impl VerifiedToken {
    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The `exp` claim, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The `iat` claim, if present.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }

    /// One claim decoded into `T`; `None` when absent or of another shape.
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let claims: BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_str(self.claims.as_str()).ok()?;
        serde_json::from_str(claims.get(name)?.get()).ok()
    }

    /// All claims: the text of the JSON object, exactly as the token carried it.
    pub fn claims_json(&self) -> &str {
        self.claims.as_str()
    }

    /// What the token's claims occupy in memory, for cache accounting.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.claims.as_str().len() + self.subject.len()
    }

    /// The `auth_time` claim (when the user last proved who they are), if present.
    pub fn authenticated_at(&self) -> Option<u64> {
        self.authenticated_at
    }

    /// The caller for [`portcullis_core::Authentication`]: the claims object is the user JSON
    /// the application's `U` is decoded from; `auth_time` (or else `iat`) is when they
    /// authenticated.
    ///
    /// # Security
    ///
    /// The `iat` fallback treats every token without `auth_time` as minted at a login, which
    /// holds for an issuer that signs a token only after checking credentials (jwt-api's
    /// `POST /token`). An issuer that re-mints tokens without a new login (a refresh) must
    /// carry the original `auth_time` in them, as the hybrid mechanism does; otherwise a
    /// re-minted token would pass [`RecentlyAuthenticated`](portcullis_core::RecentlyAuthenticated)
    /// as a fresh login.
    pub fn into_identity(self, mechanism: Mechanism) -> Identity {
        let at = self.authenticated_at.or(self.issued_at);
        let identity = Identity::from_user_json(self.claims, mechanism);
        match at {
            // Checked: validation bounds `auth_time` and `iat` by now + leeway, and this adds
            // nothing that could overflow even if it did not.
            Some(seconds) => identity.with_authenticated_at_unix(seconds),
            None => identity,
        }
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

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
}

/// A first attempt that could not finish with the keys at hand.
pub(crate) enum Attempt {
    Done(Result<VerifiedToken, TokenError>),
    /// A remote key set might know the key after a (rate-limited) refetch.
    NeedsKeys,
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
            Attempt::NeedsKeys => self.verify_after_refetch(token).await,
        }
    }

    pub(crate) async fn verify_after_refetch(
        &self,
        token: &str,
    ) -> Result<VerifiedToken, TokenError> {
        self.inner.keys.refetch().await;
        match self.attempt(token) {
            Attempt::Done(result) => result,
            Attempt::NeedsKeys => Err(self.give_up(token)),
        }
    }

    /// Verifies a token with the keys at hand, never waiting for a fetch: a `kid` a refetch
    /// might find is [`TokenError::UnknownKey`], a JWKS URL not loaded yet
    /// [`TokenError::KeysUnavailable`].
    ///
    /// # Errors
    ///
    /// Why the token is refused.
    pub fn verify_now(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        match self.attempt(token) {
            Attempt::Done(result) => result,
            Attempt::NeedsKeys => Err(self.give_up(token)),
        }
    }

    fn give_up(&self, token: &str) -> TokenError {
        match self.check(token, false) {
            Err(Retry::Unavailable) => TokenError::KeysUnavailable,
            Err(Retry::Unknown) => TokenError::UnknownKey,
            Ok(Ok(_)) => TokenError::UnknownKey,
            Ok(Err(error)) => error,
        }
    }

    pub(crate) fn attempt(&self, token: &str) -> Attempt {
        match self.check(token, true) {
            Ok(result) => Attempt::Done(result),
            Err(_) => Attempt::NeedsKeys,
        }
    }

    fn check(
        &self,
        token: &str,
        may_retry: bool,
    ) -> Result<Result<VerifiedToken, TokenError>, Retry> {
        let inner = &*self.inner;
        let validation = &inner.validation;
        let now = inner.clock.unix_seconds();
        let keys_epoch = inner.keys.epoch();
        if let Some(cache) = &inner.cache
            && let Some(verified) = cache.get(token, now, keys_epoch)
        {
            return Ok(Ok(verified));
        }
        let mut buffers = Buffers::new();
        let parsed = match parse(token, validation, &mut buffers) {
            Ok(parsed) => parsed,
            Err(error) => return Ok(Err(error)),
        };
        let pinned_issuer = match self.inner.keys.verify_signature(
            parsed.kid.as_deref(),
            parsed.alg,
            parsed.signing_input,
            parsed.signature,
        ) {
            KeyMatch::Verified(issuer) => issuer,
            KeyMatch::AlgorithmMismatch => return Ok(Err(TokenError::AlgorithmMismatch)),
            KeyMatch::BadSignature => return Ok(Err(TokenError::InvalidSignature)),
            KeyMatch::UnknownKey { refetch: true } if may_retry => return Err(Retry::Unknown),
            KeyMatch::UnknownKey { .. } => return Ok(Err(TokenError::UnknownKey)),
            KeyMatch::Unavailable if may_retry => return Err(Retry::Unavailable),
            KeyMatch::Unavailable => return Err(Retry::Unavailable),
        };
        let result = validate_claims(parsed.payload, validation, pinned_issuer, now);
        if let (Some(cache), Ok(verified)) = (&inner.cache, &result) {
            // Trusted as long as verification itself would accept it: until exp + leeway.
            let expires_at = verified.expires_at.saturating_add(validation.leeway_secs);
            cache.insert(token, verified, now, expires_at, keys_epoch);
        }
        Ok(result)
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

enum Retry {
    Unknown,
    Unavailable,
}

struct Parsed<'a, 'b> {
    alg: Algorithm,
    kid: Option<Cow<'b, str>>,
    signing_input: &'a [u8],
    payload: &'a str,
    signature: &'b [u8],
}

/// Stack buffers for the decoded header and signature, so parsing allocates nothing.
struct Buffers {
    header: [u8; MAX_HEADER_CHARS * 3 / 4 + 3],
    signature: [u8; 1024],
}

impl Buffers {
    fn new() -> Self {
        Self {
            header: [0; MAX_HEADER_CHARS * 3 / 4 + 3],
            signature: [0; 1024],
        }
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    /// Present with *any* value, `null` included: `Option` would read `"crit": null` as absent.
    #[serde(default)]
    crit: Present,
}

/// Whether a header parameter appears at all, whatever its value.
#[derive(Default)]
struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Self(true))
    }
}

/// Splits and checks the compact serialization; decodes header and signature.
fn parse<'a, 'b>(
    token: &'a str,
    validation: &Validation,
    buffers: &'b mut Buffers,
) -> Result<Parsed<'a, 'b>, TokenError> {
    if token.len() > validation.max_token_bytes {
        return Err(TokenError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed("expected three segments"));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        // An empty signature is how `alg: none` tokens look (RFC 7519 §6.1).
        return Err(TokenError::Malformed("empty segment"));
    }
    if header.len() > MAX_HEADER_CHARS || signature.len() > MAX_SIGNATURE_CHARS {
        return Err(TokenError::TooLarge);
    }
    let Buffers {
        header: header_bytes,
        signature: signature_bytes,
    } = buffers;
    // URL_SAFE_NO_PAD refuses padding, the standard alphabet and non-canonical trailing bits,
    // so every token has exactly one spelling.
    let header_len = URL_SAFE_NO_PAD
        .decode_slice(header, &mut header_bytes[..])
        .map_err(|_| TokenError::Malformed("the header is not base64url"))?;
    let header_json = &header_bytes[..header_len];
    // serde would also read a struct from a JSON array; RFC 7515 §4 wants an object.
    if header_json.trim_ascii_start().first() != Some(&b'{') {
        return Err(TokenError::Malformed(
            "the header is not a valid JSON object",
        ));
    }
    let header: Header<'b> = serde_json::from_slice(header_json)
        .map_err(|_| TokenError::Malformed("the header is not a valid JSON object"))?;
    let alg = Algorithm::from_header(&header.alg).ok_or(TokenError::UnsupportedAlgorithm)?;
    // RFC 7515 §4.1.11: `crit` must be a non-empty array of extensions the recipient
    // understands. We understand none, so any `crit` at all (`null`, `[]`, a string, names)
    // is refused; RFC 8725 §3.1 / §2.8 on not trusting what a parser might skip.
    if header.crit.0 {
        return Err(TokenError::CriticalHeader);
    }
    if !validation.typ_matches(header.typ.as_deref()) {
        return Err(TokenError::WrongType);
    }
    let signature_len = URL_SAFE_NO_PAD
        .decode_slice(signature, &mut signature_bytes[..])
        .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    Ok(Parsed {
        alg,
        kid: header.kid,
        signing_input: &token.as_bytes()[..header_len_in(token)],
        payload,
        signature: &signature_bytes[..signature_len],
    })
}

/// The length of `header.payload`, the JWS signing input (RFC 7515 §5.2).
fn header_len_in(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

#[derive(Deserialize)]
struct Registered<'a> {
    #[serde(borrow, default)]
    exp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    nbf: Option<&'a RawValue>,
    #[serde(borrow, default)]
    iat: Option<&'a RawValue>,
    #[serde(borrow, default)]
    auth_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<&'a RawValue>,
}

/// A NumericDate (RFC 7519 §2): a JSON number, possibly fractional. Strings, booleans and
/// negative or non-finite values are refused rather than coerced.
fn numeric_date(raw: Option<&RawValue>, name: &'static str) -> Result<Option<f64>, TokenError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = raw.get();
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(TokenError::InvalidClaim(name));
    }
    match serde_json::from_str::<f64>(text) {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
        _ => Err(TokenError::InvalidClaim(name)),
    }
}

fn audience_matches(raw: &RawValue, accepted: &[Arc<str>]) -> Result<bool, TokenError> {
    let text = raw.get();
    if text.starts_with('"') {
        let aud: Cow<'_, str> =
            serde_json::from_str(text).map_err(|_| TokenError::InvalidClaim("aud"))?;
        Ok(accepted.iter().any(|a| **a == *aud))
    } else {
        let auds: Vec<Cow<'_, str>> =
            serde_json::from_str(text).map_err(|_| TokenError::InvalidClaim("aud"))?;
        Ok(auds.iter().any(|aud| accepted.iter().any(|a| **a == **aud)))
    }
}

fn validate_claims(
    payload: &str,
    validation: &Validation,
    pinned_issuer: Option<&str>,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("the payload is not base64url"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| TokenError::Malformed("the payload is not UTF-8"))?;
    // RawValue keeps the exact claims for the identity; Registered reads the registered ones.
    // serde_json refuses duplicate registered claims in Registered, so two parsers can never
    // disagree about which `exp` or `sub` counts (RFC 8725 §3.10 on parser differentials).
    let claims = RawValue::from_string(text)
        .map_err(|_| TokenError::Malformed("the payload is not JSON"))?;
    // RFC 7519 §7.2 step 10: the claims set is a JSON object (serde would accept an array too).
    if !claims.get().trim_start().starts_with('{') {
        return Err(TokenError::Malformed(
            "the payload is not a valid claims object",
        ));
    }
    let registered: Registered<'_> = serde_json::from_str(claims.get())
        .map_err(|_| TokenError::Malformed("the payload is not a valid claims object"))?;

    let leeway = validation.leeway_secs as f64;
    let now_f = now as f64;
    let exp = numeric_date(registered.exp, "exp")?.ok_or(TokenError::MissingClaim("exp".into()))?;
    let nbf = numeric_date(registered.nbf, "nbf")?;
    let iat = numeric_date(registered.iat, "iat")?;
    let auth_time = numeric_date(registered.auth_time, "auth_time")?;
    // RFC 7519 §4.1.4: the current time MUST be before exp (a revocation-only verifier
    // widens this, see `Validation::dangerous_accept_expired_within`).
    if now_f >= exp + leeway + validation.expired_within_secs as f64 {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now_f + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now_f + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if auth_time.is_some_and(|auth_time| auth_time > now_f + leeway) {
        return Err(TokenError::AuthenticatedInFuture);
    }
    let subject = match registered.sub {
        Some(sub) if !sub.is_empty() => Arc::<str>::from(sub),
        Some(_) => return Err(TokenError::InvalidClaim("sub")),
        None => return Err(TokenError::MissingClaim("sub".into())),
    };
    if !validation.issuers.is_empty() || pinned_issuer.is_some() {
        let iss = registered
            .iss
            .as_deref()
            .ok_or(TokenError::MissingClaim("iss".into()))?;
        if pinned_issuer.is_some_and(|pinned| pinned != iss) {
            return Err(TokenError::WrongIssuer);
        }
        if !validation.issuers.is_empty() && !validation.issuers.iter().any(|i| **i == *iss) {
            return Err(TokenError::WrongIssuer);
        }
    }
    match (registered.aud, validation.audiences.is_empty()) {
        (None, true) => {}
        (None, false) => return Err(TokenError::MissingClaim("aud".into())),
        // RFC 7519 §4.1.3: a token for some audience is refused by a service that cannot
        // identify itself with it.
        (Some(_), true) => return Err(TokenError::WrongAudience),
        (Some(aud), false) => {
            if !audience_matches(aud, &validation.audiences)? {
                return Err(TokenError::WrongAudience);
            }
        }
    }
    if !validation.required_claims.is_empty() {
        let all: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(claims.get())
            .map_err(|_| TokenError::Malformed("the payload is not a valid claims object"))?;
        for name in &validation.required_claims {
            match all.get(&**name) {
                Some(value) if value.get() != "null" => {}
                _ => return Err(TokenError::MissingClaim(Cow::Owned(name.to_string()))),
            }
        }
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(VerifiedToken {
        subject,
        expires_at: exp as u64,
        issued_at: iat.map(|iat| iat as u64),
        authenticated_at: auth_time.map(|t| t as u64),
        claims: UserJson::from(claims),
    })
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
