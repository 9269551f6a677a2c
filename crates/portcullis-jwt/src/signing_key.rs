//! [`SigningKey`]: a private key or HMAC secret that mints tokens, with the public half that
//! verifies them.

use std::{fmt, sync::Arc};

use base64::Engine;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};

use crate::{
    Algorithm, KeyError,
    algorithm::Family,
    verifying_key::{VerifyingKey, check_secret, hmac_key_id},
};

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

    /// A private key in PEM form whose algorithm follows from the key itself: P-256 → ES256,
    /// P-384 → ES384, Ed25519 → EdDSA, RSA → RS256. For a key file given without an
    /// algorithm (`JWT_PRIVATE_KEY_FILE` alone); use [`SigningKey::from_pem`] to choose
    /// another RSA algorithm. The verifying side still pins the algorithm the key carries
    /// (RFC 8725 §3.1).
    ///
    /// # Errors
    ///
    /// [`KeyError::UnrecognizedPem`] when the PEM is none of those keys (an HMAC secret is not
    /// a PEM: use [`SigningKey::hmac`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{Algorithm, SigningKey};
    /// let pem = SigningKey::generate(Algorithm::EdDSA).unwrap().to_pkcs8_pem().unwrap();
    /// let loaded = SigningKey::from_pem_any_alg(pem.as_bytes(), None).unwrap();
    /// assert_eq!(loaded.algorithm(), Algorithm::EdDSA);
    /// assert!(SigningKey::from_pem_any_alg(b"not a key", None).is_err());
    /// ```
    pub fn from_pem_any_alg(pem: &[u8], kid: Option<&str>) -> Result<Self, KeyError> {
        [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::RS256,
        ]
        .into_iter()
        .find_map(|alg| Self::from_pem(alg, pem, kid).ok())
        .ok_or(KeyError::UnrecognizedPem)
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

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_alone_gives_the_algorithm_of_its_key() {
        for alg in [
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::EdDSA,
            Algorithm::RS256,
        ] {
            let generated = SigningKey::generate(alg).unwrap();
            let pem = generated.to_pkcs8_pem().unwrap();
            let loaded = SigningKey::from_pem_any_alg(pem.as_bytes(), Some("k1")).unwrap();
            assert_eq!(loaded.algorithm(), alg);
            assert_eq!(loaded.kid(), "k1");
            // Same key: the thumbprint kid agrees with the generated one.
            let thumbprinted = SigningKey::from_pem_any_alg(pem.as_bytes(), None).unwrap();
            assert_eq!(thumbprinted.kid(), generated.kid(), "{alg}");
        }
        for junk in [
            &b""[..],
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                SigningKey::from_pem_any_alg(junk, None),
                Err(KeyError::UnrecognizedPem)
            ));
        }
    }
}
