//! [`KeySet`]: the trusted verification keys, each pinned to one algorithm (RFC 8725 §3.1),
//! from static keys, an issuer's rotating [`SigningKey`]s, files or a JWKS URL (`remote.rs`,
//! which this module uses and which does not use it back).
//!
//! Keys are parsed once, when the set is built, into aws-lc-rs key objects (the backend
//! `jsonwebtoken` uses with its `aws_lc_rs` feature), so verifying a token parses no key.

use std::{
    fmt,
    path::Path,
    sync::{Arc, atomic::Ordering},
};

use jsonwebtoken::jwk::Jwk;

use crate::{
    Algorithm, KeyError, SigningKey,
    dynamic_keys::DynamicKeys,
    verifying_key::{VerifyingKey, parse_jwks},
};

#[derive(Clone)]
enum SourceKind {
    Static(Arc<[Arc<VerifyingKey>]>),
    Dynamic(Arc<DynamicKeys>),
    #[cfg(feature = "jwks-url")]
    Remote(Arc<crate::remote::RemoteJwks>),
}

#[derive(Clone)]
struct Source {
    kind: SourceKind,
    issuer: Option<Arc<str>>,
}

/// The outcome of looking a token's key up and checking its signature.
pub(crate) enum KeyMatch<'a> {
    /// A key verified the signature; its pinned issuer, if the key is pinned.
    Verified(Option<&'a str>),
    /// The key named by `kid` exists but is pinned to another algorithm (RFC 8725 §3.1).
    AlgorithmMismatch,
    /// A key was found but the signature does not verify.
    BadSignature,
    /// No key fits. `refetch` says whether a remote source might have it after a refetch.
    UnknownKey { refetch: bool },
    /// A remote source that could hold the key has never loaded (its issuer is unreachable).
    Unavailable,
}

/// The trusted verification keys: static keys, PEM, JWK/JWKS JSON or files, JWKS URLs and
/// token issuers, each key pinned to its algorithm (RFC 8725 §3.1) and optionally to an issuer.
///
/// Cheap to clone (an `Arc` inside). A token selects its key by `kid` (RFC 7515 §4.1.4); a token
/// without `kid` is tried against the keys of its algorithm.
///
/// # Examples
///
/// ```
/// use portcullis_jwt::{Algorithm, KeySet, SigningKey};
///
/// let ours = SigningKey::generate(Algorithm::ES256).unwrap();
/// let partner_jwks = r#"{"keys": []}"#;
/// let keys = KeySet::from_signing_key(&ours)
///     .merge(KeySet::from_jwks_json(partner_jwks).unwrap().for_issuer("https://partner.example"));
/// assert_eq!(keys.len(), 1);
/// ```
#[derive(Clone, Default)]
pub struct KeySet {
    sources: Arc<Vec<Source>>,
}

impl KeySet {
    /// An empty key set (verifies nothing).
    pub fn new() -> Self {
        Self::default()
    }

    fn from_static(keys: Vec<VerifyingKey>) -> Self {
        let keys: Vec<_> = keys.into_iter().map(Arc::new).collect();
        Self::from_source(SourceKind::Static(keys.into()))
    }

    fn from_source(kind: SourceKind) -> Self {
        Self {
            sources: Arc::new(vec![Source { kind, issuer: None }]),
        }
    }

    pub(crate) fn from_dynamic(keys: Arc<DynamicKeys>) -> Self {
        Self::from_source(SourceKind::Dynamic(keys))
    }

    #[cfg(feature = "jwks-url")]
    pub(crate) fn from_remote(remote: Arc<crate::remote::RemoteJwks>) -> Self {
        Self::from_source(SourceKind::Remote(remote))
    }

    /// A set holding one HMAC secret (at least the hash size, RFC 7518 §3.2).
    ///
    /// # Errors
    ///
    /// As [`SigningKey::hmac`].
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, KeySet};
    /// let keys = KeySet::hmac(Algorithm::HS256, &[1u8; 32], Some("k1")).unwrap();
    /// assert_eq!(keys.len(), 1);
    /// ```
    pub fn hmac(alg: Algorithm, secret: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        Ok(Self::from_signing_key(&SigningKey::hmac(alg, secret, kid)?))
    }

    /// A set trusting the (public half of a) signing key.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, KeySet, SigningKey};
    /// let keys = KeySet::from_signing_key(&SigningKey::generate(Algorithm::EdDSA).unwrap());
    /// assert_eq!(keys.len(), 1);
    /// ```
    pub fn from_signing_key(key: &SigningKey) -> Self {
        Self::from_source(SourceKind::Static(vec![key.verifying_key().clone()].into()))
    }

    /// A set holding one public key in PEM form (SPKI `PUBLIC KEY`, or `RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] or [`KeyError::InvalidKey`] when the PEM is not a public key
    /// usable with `alg`.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, KeySet};
    /// assert!(KeySet::from_public_pem(Algorithm::ES256, b"not a pem", None).is_err());
    /// ```
    pub fn from_public_pem(
        alg: Algorithm,
        pem: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        let key = VerifyingKey::from_public_pem(alg, pem, kid.map(Box::from))?;
        Ok(Self::from_static(vec![key]))
    }

    /// A set holding one JWK (RFC 7517 §4). Symmetric `oct` keys are accepted here (they come
    /// from your own configuration) but need an `alg`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Json`] for malformed JSON, [`KeyError::InvalidJwk`] /
    /// [`KeyError::InvalidKey`] for a key that cannot verify signatures.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::KeySet;
    /// let jwk = r#"{"kty":"oct","alg":"HS256","kid":"k1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LTEyMzQ"}"#;
    /// assert_eq!(KeySet::from_jwk_json(jwk).unwrap().len(), 1);
    /// ```
    pub fn from_jwk_json(json: &str) -> Result<Self, KeyError> {
        let jwk: Jwk = serde_json::from_str(json).map_err(KeyError::Json)?;
        let key = VerifyingKey::from_jwk(&jwk, true)?.ok_or(KeyError::InvalidJwk(
            "the key is not a signature verification key",
        ))?;
        Ok(Self::from_static(vec![key]))
    }

    /// A set from a JWKS document (RFC 7517 §5). Keys that are not for signatures (encryption
    /// keys, unknown key types) are skipped; a malformed signature key is an error.
    ///
    /// # Errors
    ///
    /// As [`KeySet::from_jwk_json`].
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, KeySet, SigningKey};
    /// let key = SigningKey::generate(Algorithm::ES256).unwrap();
    /// let jwks = serde_json::json!({ "keys": [key.public_jwk().unwrap()] }).to_string();
    /// assert_eq!(KeySet::from_jwks_json(&jwks).unwrap().len(), 1);
    /// ```
    pub fn from_jwks_json(json: &str) -> Result<Self, KeyError> {
        Ok(Self::from_static(parse_jwks(json.as_bytes(), true)?))
    }

    /// A set from a JWKS file, read once.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] when the file cannot be read, else as [`KeySet::from_jwks_json`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(portcullis_jwt::KeySet::from_jwks_file("/nonexistent/jwks.json").is_err());
    /// ```
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::from_static(parse_jwks(&bytes, true)?))
    }

    /// Trusts the keys of both sets.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, KeySet};
    /// let a = KeySet::hmac(Algorithm::HS256, &[1u8; 32], Some("a")).unwrap();
    /// let b = KeySet::hmac(Algorithm::HS256, &[2u8; 32], Some("b")).unwrap();
    /// assert_eq!(a.merge(b).len(), 2);
    /// ```
    #[must_use]
    pub fn merge(self, other: KeySet) -> Self {
        let mut sources = Arc::unwrap_or_clone(self.sources);
        sources.extend(other.sources.iter().cloned());
        Self {
            sources: Arc::new(sources),
        }
    }

    /// Pins every key of this set to one issuer: a token they verify must carry exactly this
    /// `iss`, so one trusted issuer cannot mint tokens in the name of another.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, KeySet};
    /// let keys = KeySet::hmac(Algorithm::HS256, &[1u8; 32], None).unwrap()
    ///     .for_issuer("https://auth.example");
    /// assert_eq!(keys.len(), 1);
    /// ```
    #[must_use]
    pub fn for_issuer(self, issuer: impl Into<Arc<str>>) -> Self {
        let issuer = issuer.into();
        let mut sources = Arc::unwrap_or_clone(self.sources);
        for source in &mut sources {
            source.issuer = Some(issuer.clone());
        }
        Self {
            sources: Arc::new(sources),
        }
    }

    /// How many keys the set holds right now (remote sets count their last good fetch).
    pub fn len(&self) -> usize {
        self.sources
            .iter()
            .map(|source| match &source.kind {
                SourceKind::Static(keys) => keys.len(),
                SourceKind::Dynamic(keys) => keys.snapshot().len(),
                #[cfg(feature = "jwks-url")]
                SourceKind::Remote(remote) => remote.snapshot().map_or(0, |keys| keys.len()),
            })
            .sum()
    }

    /// Whether the set holds no key right now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the key for a token and checks its signature.
    /// A number that changes whenever any key of the set changes (rotation, a JWKS refetch
    /// that adds or drops a key); static keys never change it. Caches of verified tokens drop
    /// every entry from an older epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.sources
            .iter()
            .map(|source| match &source.kind {
                SourceKind::Static(_) => 0,
                SourceKind::Dynamic(keys) => keys.epoch.load(Ordering::Acquire),
                #[cfg(feature = "jwks-url")]
                SourceKind::Remote(remote) => remote.epoch(),
            })
            .fold(0, u64::wrapping_add)
    }

    pub(crate) fn verify_signature(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> KeyMatch<'_> {
        let mut outcome = Outcome::default();
        for source in self.sources.iter() {
            let found = match &source.kind {
                SourceKind::Static(keys) => check_keys(keys, kid, alg, message, signature),
                SourceKind::Dynamic(keys) => {
                    keys.with(|keys| check_keys(keys, kid, alg, message, signature))
                }
                #[cfg(feature = "jwks-url")]
                SourceKind::Remote(remote) => match remote.snapshot() {
                    Some(keys) => {
                        let found = check_keys(&keys, kid, alg, message, signature);
                        if found == Found::Nothing && kid.is_some() {
                            outcome.refetch |= remote.may_refetch();
                        }
                        found
                    }
                    None => {
                        outcome.unavailable = true;
                        Found::Nothing
                    }
                },
            };
            match found {
                Found::Verified => return KeyMatch::Verified(source.issuer.as_deref()),
                Found::AlgorithmMismatch => outcome.alg_mismatch = true,
                Found::BadSignature => outcome.bad_signature = true,
                Found::Nothing => {}
            }
        }
        if outcome.bad_signature {
            KeyMatch::BadSignature
        } else if outcome.alg_mismatch {
            KeyMatch::AlgorithmMismatch
        } else if outcome.unavailable {
            KeyMatch::Unavailable
        } else {
            KeyMatch::UnknownKey {
                refetch: outcome.refetch,
            }
        }
    }

    /// Refetches every remote source that may hold an unknown key (rate-limited), waiting for
    /// the fetches. Returns whether any source was asked.
    pub(crate) async fn refetch(&self) -> bool {
        #[cfg(feature = "jwks-url")]
        {
            let mut asked = false;
            for source in self.sources.iter() {
                if let SourceKind::Remote(remote) = &source.kind {
                    asked |= remote.refetch_unknown_kid().await;
                }
            }
            asked
        }
        #[cfg(not(feature = "jwks-url"))]
        false
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("sources", &self.sources.len())
            .field("keys", &self.len())
            .finish()
    }
}

#[derive(Default)]
struct Outcome {
    alg_mismatch: bool,
    bad_signature: bool,
    unavailable: bool,
    refetch: bool,
}

#[derive(PartialEq, Eq)]
enum Found {
    Verified,
    AlgorithmMismatch,
    BadSignature,
    Nothing,
}

fn check_keys(
    keys: &[Arc<VerifyingKey>],
    kid: Option<&str>,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Found {
    let mut found = Found::Nothing;
    for key in keys {
        if kid.is_some() && key.kid.as_deref() != kid {
            continue;
        }
        if key.alg != alg {
            // Only a key named by kid makes this a confusion attempt worth reporting.
            if kid.is_some() && found == Found::Nothing {
                found = Found::AlgorithmMismatch;
            }
            continue;
        }
        if key.verify(message, signature) {
            return Found::Verified;
        }
        found = Found::BadSignature;
    }
    found
}

#[cfg(feature = "jwks-url")]
impl KeySet {
    /// A set fetched from a JWKS URL (`https://`, or `http://` for a local issuer) and kept
    /// fresh by a background task, which ends when the last clone of the set is dropped.
    ///
    /// Returns at once, before the first fetch: until it succeeds, tokens that no other key
    /// verifies are answered with 503 (fail closed), and each such request may trigger a
    /// rate-limited fetch.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidUrl`] for a URL that is not `http`/`https`, [`KeyError::NoRuntime`]
    /// outside a Tokio runtime, [`KeyError::HttpClient`] when the TLS setup fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{JwksOptions, KeySet};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let keys = KeySet::from_jwks_url("https://auth.example/.well-known/jwks.json", JwksOptions::new())
    ///     .unwrap()
    ///     .for_issuer("https://auth.example");
    /// # });
    /// assert!(KeySet::from_jwks_url("ftp://auth.example/jwks", JwksOptions::new()).is_err());
    /// ```
    pub fn from_jwks_url(url: &str, options: crate::JwksOptions) -> Result<KeySet, KeyError> {
        crate::remote::RemoteJwks::start(url, options).map(Self::from_remote)
    }
}

/// Ready when the set holds at least one key and every JWKS URL source has loaded its keys
/// once: until then, tokens only that issuer could verify are answered with 503.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use portcullis_core::ReadinessChecks;
/// use portcullis_jwt::{Algorithm, KeySet, SigningKey};
///
/// let keys = KeySet::from_signing_key(&SigningKey::generate(Algorithm::ES256).unwrap());
/// assert!(ReadinessChecks::new().check("keys", keys).run().await.is_ready());
/// assert!(!ReadinessChecks::new().check("keys", KeySet::new()).run().await.is_ready());
/// # }
/// ```
impl portcullis_core::Readiness for KeySet {
    async fn check(&self) -> Result<(), portcullis_core::NotReady> {
        #[cfg(feature = "jwks-url")]
        let unloaded = self.sources.iter().any(|source| {
            matches!(&source.kind, SourceKind::Remote(remote) if remote.snapshot().is_none())
        });
        #[cfg(not(feature = "jwks-url"))]
        let unloaded = false;
        if unloaded {
            Err(portcullis_core::NotReady::new(
                "a JWKS URL has not been fetched yet",
            ))
        } else if self.is_empty() {
            Err(portcullis_core::NotReady::new("no verification key"))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
