//! Keys: [`SigningKey`] (a private key or HMAC secret that mints tokens) and [`KeySet`] (the
//! trusted verification keys, each pinned to one algorithm, RFC 8725 §3.1).
//!
//! Keys are parsed once, when the set is built, into aws-lc-rs key objects (the backend
//! `jsonwebtoken` uses with its `aws_lc_rs` feature), so verifying a token parses no key.

use std::{
    fmt,
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use aws_lc_rs::{hmac, signature::ParsedPublicKey};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};

use crate::{Algorithm, algorithm::Family};

/// Why a key or key set could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PEM could not be read as a key of the requested algorithm.
    #[error("the PEM is not a valid {alg} key")]
    InvalidPem {
        /// The requested algorithm.
        alg: Algorithm,
        /// What `jsonwebtoken` reported.
        #[source]
        source: jsonwebtoken::errors::Error,
    },
    /// The key material is unusable for the algorithm (wrong curve, RSA under 2048 bits, ...).
    #[error("invalid {alg} key: {reason}")]
    InvalidKey {
        /// The algorithm the key was meant for.
        alg: Algorithm,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An HMAC secret shorter than the hash output (RFC 7518 §3.2).
    #[error("an {alg} secret needs at least {min} bytes, got {len}")]
    WeakSecret {
        /// The algorithm.
        alg: Algorithm,
        /// The minimum length in bytes.
        min: usize,
        /// The length given.
        len: usize,
    },
    /// A JWK that cannot be used to verify signatures.
    #[error("unusable JWK: {0}")]
    InvalidJwk(&'static str),
    /// The JWK or JWKS text is not valid JSON of the right shape.
    #[error("invalid JWK/JWKS JSON")]
    Json(#[source] serde_json::Error),
    /// A JWKS file could not be read.
    #[error("cannot read the JWKS file {path}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The JWKS URL is not a valid `http` or `https` URL.
    #[error("invalid JWKS URL {0:?}")]
    InvalidUrl(String),
    /// Building the HTTP client for a JWKS URL failed.
    #[cfg(feature = "jwks-url")]
    #[error("cannot build the HTTP client for the JWKS URL")]
    HttpClient(#[source] reqwest::Error),
    /// A JWKS URL key set must be created inside a Tokio runtime (it refreshes in the background).
    #[error("a JWKS URL key set must be created inside a Tokio runtime")]
    NoRuntime,
    /// The operating system could not generate a key.
    #[error("key generation failed")]
    Generation,
}

/// How a key checks a signature: an HMAC key or a parsed public key.
// Every key already sits behind an `Arc`; boxing the HMAC state would only add a pointer chase
// to the hot path.
#[allow(clippy::large_enum_variant)]
enum Material {
    Hmac(hmac::Key),
    Public(ParsedPublicKey),
}

/// One trusted verification key, pinned to its algorithm.
pub(crate) struct VerifyingKey {
    pub(crate) kid: Option<Box<str>>,
    pub(crate) alg: Algorithm,
    material: Material,
}

impl VerifyingKey {
    /// Checks `signature` over `message` (constant-time for HMAC: aws-lc's `HMAC` verify).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Material::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }

    fn hmac(alg: Algorithm, secret: &[u8], kid: Option<Box<str>>) -> Result<Self, KeyError> {
        let Some(hmac_alg) = alg.hmac() else {
            return Err(KeyError::InvalidKey {
                alg,
                reason: "a shared secret can only be used with HS256, HS384 or HS512",
            });
        };
        Ok(Self {
            kid,
            alg,
            material: Material::Hmac(hmac::Key::new(hmac_alg, secret)),
        })
    }

    /// A verification key from a JWK. `Ok(None)` for keys that are not for signatures (an
    /// encryption key in a mixed JWKS, an unknown key type), which a JWKS may legitimately hold.
    pub(crate) fn from_jwk(jwk: &Jwk, allow_symmetric: bool) -> Result<Option<Self>, KeyError> {
        // RFC 7517 §4.2/§4.3: honour "use" and "key_ops" when present.
        if let Some(usage) = &jwk.common.public_key_use
            && *usage != PublicKeyUse::Signature
        {
            return Ok(None);
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.contains(&KeyOperations::Verify)
        {
            return Ok(None);
        }
        let declared = match &jwk.common.key_algorithm {
            Some(alg) => match alg.to_string().parse::<Algorithm>() {
                Ok(alg) => Some(alg),
                // An encryption algorithm (RSA-OAEP, ...): not a signature key.
                Err(_) => return Ok(None),
            },
            None => None,
        };
        let kid = jwk.common.key_id.as_deref().map(Box::from);
        let key = match &jwk.algorithm {
            AlgorithmParameters::OctetKey(params) => {
                if !allow_symmetric {
                    return Err(KeyError::InvalidJwk(
                        "symmetric (oct) keys are never accepted from a JWKS URL",
                    ));
                }
                let alg = declared.ok_or(KeyError::InvalidJwk(
                    "an oct key needs an \"alg\" to pin it to",
                ))?;
                let secret = decode_b64(&params.value)?;
                check_secret(alg, &secret)?;
                Self::hmac(alg, &secret, kid)?
            }
            AlgorithmParameters::RSA(params) => {
                // RFC 7518 §6.3 keys carry no algorithm; without "alg" we pin to the common RS256.
                let alg = declared.unwrap_or(Algorithm::RS256);
                let n = decode_b64(&params.n)?;
                let e = decode_b64(&params.e)?;
                Self::rsa(alg, &n, &e, kid)?
            }
            AlgorithmParameters::EllipticCurve(params) => {
                let implied = match params.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return Ok(None),
                };
                let alg = declared.unwrap_or(implied);
                if alg != implied {
                    return Err(KeyError::InvalidKey {
                        alg,
                        reason: "the curve does not match the algorithm",
                    });
                }
                let mut point = vec![0x04];
                point.extend(decode_b64(&params.x)?);
                point.extend(decode_b64(&params.y)?);
                Self::public(alg, &point, kid)?
            }
            AlgorithmParameters::OctetKeyPair(params) => {
                if params.curve != EllipticCurve::Ed25519 {
                    return Ok(None);
                }
                let alg = declared.unwrap_or(Algorithm::EdDSA);
                Self::public(alg, &decode_b64(&params.x)?, kid)?
            }
            _ => return Ok(None),
        };
        Ok(Some(key))
    }

    fn rsa(alg: Algorithm, n: &[u8], e: &[u8], kid: Option<Box<str>>) -> Result<Self, KeyError> {
        let params = alg.rsa_parameters().ok_or(KeyError::InvalidKey {
            alg,
            reason: "an RSA key can only be used with RS* or PS* algorithms",
        })?;
        let significant = n.iter().skip_while(|b| **b == 0).count();
        // RFC 7518 §3.3: RSA keys of 2048 bits or more.
        if significant < 256 {
            return Err(KeyError::InvalidKey {
                alg,
                reason: "RSA keys need at least 2048 bits",
            });
        }
        let parsed = aws_lc_rs::signature::RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(params)
            .map_err(|_| KeyError::InvalidKey {
                alg,
                reason: "not a valid RSA public key",
            })?;
        Ok(Self {
            kid,
            alg,
            material: Material::Public(parsed),
        })
    }

    fn public(alg: Algorithm, bytes: &[u8], kid: Option<Box<str>>) -> Result<Self, KeyError> {
        let verification = alg.public_key_verification().ok_or(KeyError::InvalidKey {
            alg,
            reason: "a public key cannot be used with an HMAC algorithm",
        })?;
        let parsed =
            ParsedPublicKey::new(verification, bytes).map_err(|_| KeyError::InvalidKey {
                alg,
                reason: "not a valid public key for this algorithm",
            })?;
        Ok(Self {
            kid,
            alg,
            material: Material::Public(parsed),
        })
    }

    fn from_public_pem(
        alg: Algorithm,
        pem: &[u8],
        kid: Option<Box<str>>,
    ) -> Result<Self, KeyError> {
        let invalid = |source| KeyError::InvalidPem { alg, source };
        let key = match alg.family() {
            Family::Hmac => {
                return Err(KeyError::InvalidKey {
                    alg,
                    reason: "HMAC keys are secrets, not PEM public keys",
                });
            }
            Family::Rsa => jsonwebtoken::DecodingKey::from_rsa_pem(pem).map_err(invalid)?,
            Family::Ec => jsonwebtoken::DecodingKey::from_ec_pem(pem).map_err(invalid)?,
            Family::Ed => jsonwebtoken::DecodingKey::from_ed_pem(pem).map_err(invalid)?,
        };
        // Round-trip through a JWK so PEM and JWK keys are checked by the same code.
        let mut jwk = Jwk::from_decoding_key(&key, Some(alg.to_jsonwebtoken())).map_err(invalid)?;
        jwk.common.key_id = kid.map(String::from);
        Self::from_jwk(&jwk, false)?.ok_or(KeyError::InvalidKey {
            alg,
            reason: "unsupported key type",
        })
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn decode_b64(text: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| KeyError::InvalidJwk("a key parameter is not unpadded base64url"))
}

fn check_secret(alg: Algorithm, secret: &[u8]) -> Result<(), KeyError> {
    let min = alg.min_secret_len();
    if secret.len() < min {
        return Err(KeyError::WeakSecret {
            alg,
            min,
            len: secret.len(),
        });
    }
    Ok(())
}

/// A key id for an HMAC secret that several instances sharing the secret agree on, derived
/// with the secret as a PRF key so it reveals nothing about it.
fn hmac_key_id(alg: Algorithm, secret: &[u8]) -> String {
    let Some(hmac_alg) = alg.hmac() else {
        return String::new();
    };
    let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), b"portcullis-jwt key id");
    // A tag is at least 32 bytes long: the first 12 are always there.
    URL_SAFE_NO_PAD.encode(tag.as_ref().get(..12).unwrap_or_default())
}

/// A key that signs tokens: a private key or an HMAC secret, with its algorithm and key id.
///
/// Cheap to clone. Prints as `REDACTED`.
#[derive(Clone)]
pub struct SigningKey {
    inner: Arc<SigningInner>,
}

struct SigningInner {
    alg: Algorithm,
    kid: Arc<str>,
    encoding: jsonwebtoken::EncodingKey,
    verifying: Arc<VerifyingKey>,
    public_jwk: Option<serde_json::Value>,
}

impl SigningKey {
    /// An HMAC key (HS256, HS384, HS512) from a shared secret of at least the hash size
    /// (RFC 7518 §3.2: 32, 48 or 64 bytes). Without `kid`, one is derived from the secret, so
    /// every instance given the same secret uses the same key id.
    ///
    /// # Errors
    ///
    /// [`KeyError::WeakSecret`] for a short secret, [`KeyError::InvalidKey`] for a non-HMAC
    /// algorithm.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, SigningKey};
    /// let key = SigningKey::hmac(Algorithm::HS256, &[7u8; 32], Some("k1")).unwrap();
    /// assert_eq!(key.kid(), "k1");
    /// assert!(SigningKey::hmac(Algorithm::HS256, b"short", None).is_err());
    /// ```
    pub fn hmac(alg: Algorithm, secret: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        check_secret(alg, secret)?;
        Self::dangerous_hmac_any_length(alg, secret, kid)
    }

    /// Like [`SigningKey::hmac`] but accepts a secret of any non-zero length.
    ///
    /// # Security
    ///
    /// A short secret can be brute-forced offline from a single token (RFC 8725 §3.5); use it
    /// only to stay compatible with an existing deployment, and rotate to a long random secret.
    ///
    /// # Errors
    ///
    /// [`KeyError::WeakSecret`] for an empty secret, [`KeyError::InvalidKey`] for a non-HMAC
    /// algorithm.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, SigningKey};
    /// let legacy = SigningKey::dangerous_hmac_any_length(Algorithm::HS256, b"legacy", None).unwrap();
    /// assert_eq!(legacy.algorithm(), Algorithm::HS256);
    /// ```
    pub fn dangerous_hmac_any_length(
        alg: Algorithm,
        secret: &[u8],
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        if secret.is_empty() {
            return Err(KeyError::WeakSecret {
                alg,
                min: alg.min_secret_len(),
                len: 0,
            });
        }
        let kid: Arc<str> = match kid {
            Some(kid) => kid.into(),
            None => hmac_key_id(alg, secret).into(),
        };
        let verifying = VerifyingKey::hmac(alg, secret, Some(Box::from(&*kid)))?;
        Ok(Self {
            inner: Arc::new(SigningInner {
                alg,
                kid,
                encoding: jsonwebtoken::EncodingKey::from_secret(secret),
                verifying: Arc::new(verifying),
                public_jwk: None,
            }),
        })
    }

    /// A private key in PEM form (PKCS#8, or PKCS#1 for RSA; SEC1 `EC PRIVATE KEY` too). Without
    /// `kid`, the RFC 7638 thumbprint of the public key is used.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] when the PEM is not a private key of the algorithm's family,
    /// [`KeyError::InvalidKey`] for a wrong curve or an RSA key under 2048 bits.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, SigningKey};
    /// let generated = SigningKey::generate(Algorithm::ES256).unwrap();
    /// let pem = generated.to_pkcs8_pem().unwrap();
    /// let loaded = SigningKey::from_pem(Algorithm::ES256, pem.as_bytes(), None).unwrap();
    /// assert_eq!(loaded.kid(), generated.kid());
    /// ```
    pub fn from_pem(alg: Algorithm, pem: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        let invalid = |source| KeyError::InvalidPem { alg, source };
        let encoding = match alg.family() {
            Family::Hmac => {
                return Err(KeyError::InvalidKey {
                    alg,
                    reason: "HMAC keys are secrets: use SigningKey::hmac",
                });
            }
            Family::Rsa => jsonwebtoken::EncodingKey::from_rsa_pem(pem).map_err(invalid)?,
            Family::Ec => jsonwebtoken::EncodingKey::from_ec_pem(pem).map_err(invalid)?,
            Family::Ed => jsonwebtoken::EncodingKey::from_ed_pem(pem).map_err(invalid)?,
        };
        Self::from_encoding_key(alg, encoding, kid)
    }

    fn from_encoding_key(
        alg: Algorithm,
        encoding: jsonwebtoken::EncodingKey,
        kid: Option<&str>,
    ) -> Result<Self, KeyError> {
        let mut jwk = Jwk::from_encoding_key(&encoding, alg.to_jsonwebtoken())
            .map_err(|source| KeyError::InvalidPem { alg, source })?;
        let kid: Arc<str> = match kid {
            Some(kid) => kid.into(),
            None => jwk
                .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .map_err(|source| KeyError::InvalidPem { alg, source })?
                .into(),
        };
        jwk.common.key_id = Some(kid.to_string());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        let verifying = VerifyingKey::from_jwk(&jwk, false)?.ok_or(KeyError::InvalidKey {
            alg,
            reason: "unsupported key type",
        })?;
        let public_jwk = serde_json::to_value(&jwk).map_err(KeyError::Json)?;
        Ok(Self {
            inner: Arc::new(SigningInner {
                alg,
                kid,
                encoding,
                verifying: Arc::new(verifying),
                public_jwk: Some(public_jwk),
            }),
        })
    }

    /// A new random key: a 256/384/512-bit secret for HS*, a P-256/P-384 key for ES*, an
    /// Ed25519 key for EdDSA, a 2048-bit RSA key for RS*/PS* (slow: around a second).
    ///
    /// # Errors
    ///
    /// [`KeyError::Generation`] when the OS random number generator fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, SigningKey};
    /// let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    /// assert_eq!(key.public_jwk().unwrap()["crv"], "Ed25519");
    /// ```
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        use aws_lc_rs::{
            encoding::AsDer,
            rand::SystemRandom,
            signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING},
        };
        let pkcs8: Vec<u8> = match alg.family() {
            Family::Hmac => {
                let mut secret = vec![0u8; alg.min_secret_len()];
                getrandom::fill(&mut secret).map_err(|_| KeyError::Generation)?;
                return Self::hmac(alg, &secret, None);
            }
            Family::Ec => {
                let signing = if alg == Algorithm::ES256 {
                    &ECDSA_P256_SHA256_FIXED_SIGNING
                } else {
                    &ECDSA_P384_SHA384_FIXED_SIGNING
                };
                aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new())
                    .map_err(|_| KeyError::Generation)?
                    .as_ref()
                    .to_vec()
            }
            Family::Ed => {
                aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new())
                    .map_err(|_| KeyError::Generation)?
                    .as_ref()
                    .to_vec()
            }
            Family::Rsa => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| KeyError::Generation)?
                .as_der()
                .map_err(|_| KeyError::Generation)?
                .as_ref()
                .to_vec(),
        };
        Self::from_pem(alg, pem_encode("PRIVATE KEY", &pkcs8).as_bytes(), None)
    }

    /// The private key as a PKCS#8 PEM, for saving a generated key; `None` for HMAC keys.
    ///
    /// # Security
    ///
    /// This is the private key: store it like a password, never log it.
    ///
    /// # Examples
    ///
    /// ```
    /// let key = portcullis_jwt::SigningKey::generate(portcullis_jwt::Algorithm::ES256).unwrap();
    /// assert!(key.to_pkcs8_pem().unwrap().starts_with("-----BEGIN PRIVATE KEY-----"));
    /// ```
    pub fn to_pkcs8_pem(&self) -> Option<String> {
        let der = self.inner.encoding.as_bytes();
        match self.inner.alg.family() {
            Family::Hmac => None,
            Family::Ec | Family::Ed => Some(pem_encode("PRIVATE KEY", der)),
            // jsonwebtoken keeps RSA keys as PKCS#1.
            Family::Rsa => Some(pem_encode("RSA PRIVATE KEY", der)),
        }
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.alg
    }

    /// The key id written to the `kid` header of every token this key signs.
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// The public key as a JWK (RFC 7517) with `kid`, `alg` and `use: "sig"`; `None` for HMAC
    /// secrets, which are never published.
    pub fn public_jwk(&self) -> Option<&serde_json::Value> {
        self.inner.public_jwk.as_ref()
    }

    pub(crate) fn encoding_key(&self) -> &jsonwebtoken::EncodingKey {
        &self.inner.encoding
    }

    pub(crate) fn verifying_key(&self) -> &Arc<VerifyingKey> {
        &self.inner.verifying
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.inner.alg)
            .field("kid", &self.inner.kid)
            .field("key", &"REDACTED")
            .finish()
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

/// Keys that change while the set is in use: an issuer's rotating keys.
pub(crate) struct DynamicKeys {
    keys: RwLock<Arc<[Arc<VerifyingKey>]>>,
    /// Counts replacements, so caches of verified tokens can tell the keys changed.
    epoch: AtomicU64,
}

impl DynamicKeys {
    pub(crate) fn new(keys: Vec<Arc<VerifyingKey>>) -> Self {
        Self {
            keys: RwLock::new(keys.into()),
            epoch: AtomicU64::new(0),
        }
    }

    pub(crate) fn replace(&self, keys: Vec<Arc<VerifyingKey>>) {
        let mut guard = self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let same = guard.len() == keys.len()
            && guard
                .iter()
                .zip(&keys)
                .all(|(old, new)| Arc::ptr_eq(old, new));
        if !same {
            *guard = keys.into();
            self.epoch.fetch_add(1, Ordering::Release);
        }
    }

    pub(crate) fn snapshot(&self) -> Arc<[Arc<VerifyingKey>]> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs `f` on the current keys under the read lock (no reference count traffic).
    fn with<T>(&self, f: impl FnOnce(&[Arc<VerifyingKey>]) -> T) -> T {
        f(&self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

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

/// Parses a JWKS document into verification keys (RFC 7517 §5).
pub(crate) fn parse_jwks(
    bytes: &[u8],
    allow_symmetric: bool,
) -> Result<Vec<VerifyingKey>, KeyError> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document = serde_json::from_slice(bytes).map_err(KeyError::Json)?;
    let mut keys = Vec::with_capacity(document.keys.len());
    for value in document.keys {
        let jwk: Jwk = match serde_json::from_value(value) {
            Ok(jwk) => jwk,
            Err(error) => {
                tracing::warn!(%error, "skipping a JWK that does not parse");
                continue;
            }
        };
        if let Some(key) = VerifyingKey::from_jwk(&jwk, allow_symmetric)? {
            keys.push(key);
        }
    }
    Ok(keys)
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
mod tests {
    use super::*;

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
                jsonwebtoken::crypto::sign(message, key.encoding_key(), alg.to_jsonwebtoken())
                    .unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            assert!(key.verifying_key().verify(message, &signature), "{alg}");
            assert!(
                !key.verifying_key().verify(b"header.other", &signature),
                "{alg}"
            );
            assert_eq!(key.public_jwk().is_some(), !alg.is_symmetric());
            if let Some(jwk) = key.public_jwk() {
                let set = KeySet::from_jwks_json(&serde_json::json!({ "keys": [jwk] }).to_string())
                    .unwrap();
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
        let path =
            std::env::temp_dir().join(format!("portcullis-jwks-{}.json", std::process::id()));
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
}
