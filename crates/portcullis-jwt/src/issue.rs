//! Minting tokens: [`TokenIssuer`] signs tokens with `iss`, `aud`, `sub`, `iat`, `nbf`, `exp`, a
//! unique `jti` and a `kid` header, publishes its public keys as a JWKS, and rotates signing keys
//! without breaking tokens already handed out.

use std::{
    fmt,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use portcullis_core::{SharedClock, SystemClock, random_handle};
use serde::Serialize;

use crate::{KeySet, SigningKey, dynamic_keys::DynamicKeys, verifying_key::VerifyingKey};

/// The default lifetime of an issued token.
pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

/// Claim names the issuer writes itself; application claims may not use them.
const RESERVED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Per-token options for [`TokenIssuer::issue_with`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct IssueOptions {
    /// Lifetime of this token instead of the issuer's default.
    pub ttl: Option<Duration>,
    /// The `typ` header, e.g. `"at+jwt"` (RFC 9068 §2.1); `"JWT"` when `None`.
    pub typ: Option<&'static str>,
    /// The audience of this token instead of the issuer's.
    pub audience: Option<String>,
}

impl IssueOptions {
    /// Options with every field at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the lifetime.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::IssueOptions::new().ttl(std::time::Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Sets the `typ` header.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::IssueOptions::new().typ("at+jwt");
    /// ```
    #[must_use]
    pub fn typ(mut self, typ: &'static str) -> Self {
        self.typ = Some(typ);
        self
    }

    /// Sets the audience.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::IssueOptions::new().audience("https://api.example");
    /// ```
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }
}

/// A freshly signed token.
#[derive(Clone)]
pub struct IssuedToken {
    /// The compact JWS. Prints as `REDACTED`.
    pub token: String,
    /// Its unique `jti`.
    pub jti: String,
    /// Its `exp`, in seconds since the Unix epoch.
    pub expires_at: u64,
    /// Seconds until it expires (the OAuth `expires_in`).
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"REDACTED")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Why a token could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// The application claims do not serialize to a JSON object.
    #[error("the claims must serialize to a JSON object")]
    ClaimsNotAnObject,
    /// The application claims use a name the issuer writes itself.
    #[error("the claim {0:?} is set by the issuer and cannot be overridden")]
    ReservedClaim(String),
    /// The subject is empty.
    #[error("the subject must not be empty")]
    EmptySubject,
    /// Serializing the claims failed.
    #[error("cannot serialize the claims")]
    Serialize(#[source] serde_json::Error),
    /// Signing failed.
    #[error("cannot sign the token")]
    Sign(#[source] jsonwebtoken::errors::Error),
}

struct KeyEntry {
    key: SigningKey,
    /// The latest `exp` of any token this key signed; a retired key stays published until then.
    last_expiry: AtomicU64,
}

struct IssuerKeys {
    current: Arc<KeyEntry>,
    retired: Vec<Arc<KeyEntry>>,
}

/// Signs tokens and publishes the matching public keys. Cheap to clone: clones share keys, so
/// a [`TokenIssuer::rotate`] is seen by all of them and by every [`TokenIssuer::key_set`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer};
///
/// let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::EdDSA).unwrap())
///     .issuer("https://auth.example")
///     .audience("https://api.example")
///     .ttl(Duration::from_secs(300));
/// let issued = issuer.issue("alice", &serde_json::json!({"user": "alice", "role": "advertiser"})).unwrap();
/// assert_eq!(issued.expires_in, 300);
/// assert_eq!(issuer.jwks()["keys"].as_array().unwrap().len(), 1);
/// ```
#[derive(Clone)]
pub struct TokenIssuer {
    keys: Arc<RwLock<IssuerKeys>>,
    published: Arc<DynamicKeys>,
    issuer: Option<Arc<str>>,
    audience: Option<Arc<str>>,
    ttl: Duration,
    clock: SharedClock,
}

impl TokenIssuer {
    /// An issuer signing with `key`, with a 15-minute TTL and no `iss`/`aud`.
    pub fn new(key: SigningKey) -> Self {
        let published = Arc::new(DynamicKeys::new(vec![key.verifying_key().clone()]));
        Self {
            keys: Arc::new(RwLock::new(IssuerKeys {
                current: Arc::new(KeyEntry {
                    key,
                    last_expiry: AtomicU64::new(0),
                }),
                retired: Vec::new(),
            })),
            published,
            issuer: None,
            audience: None,
            ttl: DEFAULT_TTL,
            clock: Arc::new(SystemClock),
        }
    }

    /// The `iss` written into every token.
    ///
    /// # Examples
    ///
    /// ```
    /// # let key = portcullis_jwt::SigningKey::generate(portcullis_jwt::Algorithm::ES256).unwrap();
    /// let issuer = portcullis_jwt::TokenIssuer::new(key).issuer("https://auth.example");
    /// ```
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<Arc<str>>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The `aud` written into every token.
    ///
    /// # Examples
    ///
    /// ```
    /// # let key = portcullis_jwt::SigningKey::generate(portcullis_jwt::Algorithm::ES256).unwrap();
    /// let issuer = portcullis_jwt::TokenIssuer::new(key).audience("https://api.example");
    /// ```
    #[must_use]
    pub fn audience(mut self, audience: impl Into<Arc<str>>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The default token lifetime (at least one second).
    ///
    /// # Examples
    ///
    /// ```
    /// # let key = portcullis_jwt::SigningKey::generate(portcullis_jwt::Algorithm::ES256).unwrap();
    /// let issuer = portcullis_jwt::TokenIssuer::new(key).ttl(std::time::Duration::from_secs(120));
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Uses another clock for `iat`, `nbf` and `exp`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let key = portcullis_jwt::SigningKey::generate(portcullis_jwt::Algorithm::ES256).unwrap();
    /// let clock = std::sync::Arc::new(portcullis_core::ManualClock::new());
    /// let issuer = portcullis_jwt::TokenIssuer::new(key).with_clock(clock);
    /// ```
    #[must_use]
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The default token lifetime.
    pub fn default_ttl(&self) -> Duration {
        self.ttl
    }

    /// The key currently signing.
    pub fn current_key(&self) -> SigningKey {
        self.read().current.key.clone()
    }

    /// Signs a token for `subject` with the application's `claims` (a struct or map serializing
    /// to a JSON object) flattened next to the registered claims.
    ///
    /// # Errors
    ///
    /// [`IssueError::ReservedClaim`] when `claims` sets `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`
    /// or `jti`; [`IssueError::ClaimsNotAnObject`]; serialization or signing failures.
    pub fn issue(&self, subject: &str, claims: &impl Serialize) -> Result<IssuedToken, IssueError> {
        self.issue_with(subject, claims, &IssueOptions::default())
    }

    /// [`TokenIssuer::issue`] with per-token options.
    ///
    /// # Errors
    ///
    /// As [`TokenIssuer::issue`].
    pub fn issue_with(
        &self,
        subject: &str,
        claims: &impl Serialize,
        options: &IssueOptions,
    ) -> Result<IssuedToken, IssueError> {
        if subject.is_empty() {
            return Err(IssueError::EmptySubject);
        }
        let serde_json::Value::Object(mut map) =
            serde_json::to_value(claims).map_err(IssueError::Serialize)?
        else {
            return Err(IssueError::ClaimsNotAnObject);
        };
        if let Some(reserved) = RESERVED.iter().find(|name| map.contains_key(**name)) {
            return Err(IssueError::ReservedClaim((*reserved).to_owned()));
        }
        let now = self.clock.unix_seconds();
        let ttl = options.ttl.unwrap_or(self.ttl).as_secs().max(1);
        let expires_at = now.saturating_add(ttl);
        let jti = random_handle();
        if let Some(issuer) = &self.issuer {
            map.insert("iss".into(), issuer.as_ref().into());
        }
        map.insert("sub".into(), subject.into());
        match (&options.audience, &self.audience) {
            (Some(audience), _) => {
                map.insert("aud".into(), audience.as_str().into());
            }
            (None, Some(audience)) => {
                map.insert("aud".into(), audience.as_ref().into());
            }
            (None, None) => {}
        }
        map.insert("iat".into(), now.into());
        map.insert("nbf".into(), now.into());
        map.insert("exp".into(), expires_at.into());
        map.insert("jti".into(), jti.clone().into());

        let entry = self.read().current.clone();
        let key = &entry.key;
        let mut header = jsonwebtoken::Header::new(key.algorithm().to_jsonwebtoken());
        header.kid = Some(key.kid().to_owned());
        header.typ = Some(options.typ.unwrap_or("JWT").to_owned());
        let token =
            jsonwebtoken::encode(&header, &map, key.encoding_key()).map_err(IssueError::Sign)?;
        entry.last_expiry.fetch_max(expires_at, Ordering::SeqCst);
        Ok(IssuedToken {
            token,
            jti,
            expires_at,
            expires_in: ttl,
        })
    }

    /// Makes `new_key` the signing key. The previous key keeps verifying (and stays in
    /// [`TokenIssuer::jwks`]) until the last token it signed has expired, so clients holding
    /// such tokens are not logged out and verifiers caching the JWKS have time to refetch.
    pub fn rotate(&self, new_key: SigningKey) {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = std::mem::replace(
            &mut keys.current,
            Arc::new(KeyEntry {
                key: new_key,
                last_expiry: AtomicU64::new(0),
            }),
        );
        keys.retired.push(previous);
        self.prune(&mut keys);
    }

    /// Drops retired keys whose last token has expired and republishes the key set.
    fn prune(&self, keys: &mut IssuerKeys) {
        let now = self.clock.unix_seconds();
        // A margin past the last expiry covers verifiers' leeway (crate::validation::MAX_LEEWAY).
        let margin = crate::validation::MAX_LEEWAY.as_secs();
        keys.retired.retain(|entry| {
            entry
                .last_expiry
                .load(Ordering::SeqCst)
                .saturating_add(margin)
                > now
        });
        let mut published: Vec<Arc<VerifyingKey>> = vec![keys.current.key.verifying_key().clone()];
        published.extend(
            keys.retired
                .iter()
                .map(|entry| entry.key.verifying_key().clone()),
        );
        self.published.replace(published);
    }

    /// The public keys as a JWKS document (RFC 7517 §5): the current key and every retired key
    /// that may still have live tokens. HMAC secrets are never published.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.prune(&mut keys);
        let jwks: Vec<serde_json::Value> = std::iter::once(&keys.current)
            .chain(keys.retired.iter())
            .filter_map(|entry| entry.key.public_jwk().cloned())
            .collect();
        serde_json::json!({ "keys": jwks })
    }

    /// A key set trusting this issuer's keys, following rotations (and pinned to its `iss`
    /// when one is set).
    pub fn key_set(&self) -> KeySet {
        let keys = KeySet::from_dynamic(self.published.clone());
        match &self.issuer {
            Some(issuer) => keys.for_issuer(issuer.clone()),
            None => keys,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, IssuerKeys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .field("key", &self.read().current.key)
            .finish_non_exhaustive()
    }
}
