//! Verification keys: one trusted key pinned to its algorithm (RFC 8725 §3.1), parsed once into
//! an aws-lc-rs key object, from a JWK, a public PEM or an HMAC secret; and JWKS documents.

use std::fmt;

use aws_lc_rs::{hmac, signature::ParsedPublicKey};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};

use crate::{Algorithm, KeyError, algorithm::Family};

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

    pub(crate) fn hmac(
        alg: Algorithm,
        secret: &[u8],
        kid: Option<Box<str>>,
    ) -> Result<Self, KeyError> {
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

    pub(crate) fn rsa(
        alg: Algorithm,
        n: &[u8],
        e: &[u8],
        kid: Option<Box<str>>,
    ) -> Result<Self, KeyError> {
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

    pub(crate) fn public(
        alg: Algorithm,
        bytes: &[u8],
        kid: Option<Box<str>>,
    ) -> Result<Self, KeyError> {
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

    pub(crate) fn from_public_pem(
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

pub(crate) fn check_secret(alg: Algorithm, secret: &[u8]) -> Result<(), KeyError> {
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
pub(crate) fn hmac_key_id(alg: Algorithm, secret: &[u8]) -> String {
    let Some(hmac_alg) = alg.hmac() else {
        return String::new();
    };
    let tag = hmac::sign(&hmac::Key::new(hmac_alg, secret), b"portcullis-jwt key id");
    // A tag is at least 32 bytes long: the first 12 are always there.
    URL_SAFE_NO_PAD.encode(tag.as_ref().get(..12).unwrap_or_default())
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
