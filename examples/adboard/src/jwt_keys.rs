//! The `JWT_*` key settings, the same variables as jwt-api and hybrid-app, so instances given
//! one key accept each other's tokens.
//!
//! | variable | meaning |
//! |---|---|
//! | `JWT_ALG` | `HS256`, `RS256`, `ES256`, `EdDSA`, ...; else decided by the key |
//! | `JWT_HS256_SECRET` | an HMAC secret (at least 32 bytes) |
//! | `JWT_PRIVATE_KEY_FILE` | a PEM private key (PKCS#8, or SEC1/PKCS#1) |
//! | `JWT_ISSUER`, `JWT_AUDIENCE` | `iss` and `aud` written and required |
//! | `JWT_LEEWAY_SECS` | clock-skew allowance for `exp`/`nbf` (default 30, at most 300) |

use std::{fmt, path::PathBuf, time::Duration};

use portcullis_jwt::{Algorithm, KeyError, SigningKey, TokenIssuer, Validation};

/// Why the `JWT_*` settings are unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwtSettingsError {
    /// A variable has an invalid value.
    #[error("{name}: {reason}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The key does not fit the algorithm.
    #[error("unusable signing key")]
    Key(#[from] KeyError),
    /// `JWT_PRIVATE_KEY_FILE` cannot be read.
    #[error("cannot read JWT_PRIVATE_KEY_FILE")]
    KeyFile(#[source] std::io::Error),
}

fn setting(name: &'static str, reason: impl Into<String>) -> JwtSettingsError {
    JwtSettingsError::Setting {
        name,
        reason: reason.into(),
    }
}

/// The signing key and the claims rules shared by issuing and verifying.
#[derive(Clone)]
pub(crate) struct JwtKeySettings {
    algorithm: Option<Algorithm>,
    hmac_secret: Option<String>,
    private_key_file: Option<PathBuf>,
    issuer: String,
    audience: Option<String>,
    /// `JWT_LEEWAY_SECS`.
    pub(crate) leeway: Duration,
}

impl fmt::Debug for JwtKeySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeySettings")
            .field("algorithm", &self.algorithm)
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "REDACTED"),
            )
            .field("private_key_file", &self.private_key_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtKeySettings {
    /// Reads the `JWT_*` variables through `lookup`; blank values count as unset.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
        default_issuer: &str,
    ) -> Result<Self, JwtSettingsError> {
        let lookup = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let algorithm = lookup("JWT_ALG")
            .map(|value| {
                value
                    .trim()
                    .parse()
                    .map_err(|_| setting("JWT_ALG", format!("unsupported algorithm {value:?}")))
            })
            .transpose()?;
        let leeway = match lookup("JWT_LEEWAY_SECS") {
            Some(value) => value.trim().parse().map(Duration::from_secs).map_err(|_| {
                setting(
                    "JWT_LEEWAY_SECS",
                    format!("{value:?} is not a number of seconds"),
                )
            })?,
            None => portcullis_jwt::DEFAULT_LEEWAY,
        };
        if leeway > portcullis_jwt::MAX_LEEWAY {
            return Err(setting("JWT_LEEWAY_SECS", "must be at most 300"));
        }
        Ok(Self {
            algorithm,
            hmac_secret: lookup("JWT_HS256_SECRET"),
            private_key_file: lookup("JWT_PRIVATE_KEY_FILE").map(PathBuf::from),
            issuer: lookup("JWT_ISSUER").unwrap_or_else(|| default_issuer.to_owned()),
            audience: lookup("JWT_AUDIENCE"),
            leeway,
        })
    }

    /// `JWT_PRIVATE_KEY_FILE`, else `JWT_HS256_SECRET`, else a random ES256 key for this
    /// process only (other instances then do not accept its tokens).
    pub(crate) fn signing_key(&self) -> Result<SigningKey, JwtSettingsError> {
        if let Some(path) = &self.private_key_file {
            let pem = std::fs::read(path).map_err(JwtSettingsError::KeyFile)?;
            return match self.algorithm {
                Some(alg) => Ok(SigningKey::from_pem(alg, &pem, None)?),
                // Without JWT_ALG the key decides.
                None => SigningKey::from_pem_any_alg(&pem, None).map_err(|_| {
                    setting(
                        "JWT_PRIVATE_KEY_FILE",
                        "not a P-256, P-384, Ed25519 or RSA private key",
                    )
                }),
            };
        }
        let algorithm = self.algorithm.unwrap_or(if self.hmac_secret.is_some() {
            Algorithm::HS256
        } else {
            Algorithm::ES256
        });
        if let (Some(secret), true) = (&self.hmac_secret, algorithm.is_symmetric()) {
            // RFC 7518 §3.2: a secret shorter than the hash falls to offline guessing.
            return match SigningKey::hmac(algorithm, secret.as_bytes(), None) {
                Ok(key) => Ok(key),
                Err(KeyError::WeakSecret { min, len, .. }) => Err(setting(
                    "JWT_HS256_SECRET",
                    format!("is {len} bytes: use at least {min} random bytes (RFC 7518 §3.2)"),
                )),
                Err(error) => Err(error.into()),
            };
        }
        if self.hmac_secret.is_some() {
            tracing::warn!(%algorithm, "JWT_HS256_SECRET is ignored: JWT_ALG is asymmetric");
        }
        tracing::warn!(%algorithm, "no signing key configured: a random key for this process only");
        Ok(SigningKey::generate(algorithm)?)
    }

    /// An issuer signing with `key` and writing `iss` (and `aud` when configured).
    pub(crate) fn token_issuer(&self, key: SigningKey) -> TokenIssuer {
        let issuer = TokenIssuer::new(key).issuer(self.issuer.clone());
        match &self.audience {
            Some(audience) => issuer.audience(audience.clone()),
            None => issuer,
        }
    }

    /// The rules matching [`JwtKeySettings::token_issuer`]: `iss`, `aud`, and the leeway.
    pub(crate) fn validation(&self) -> Validation {
        let validation = Validation::new()
            .issuer(self.issuer.clone())
            .leeway(self.leeway);
        match &self.audience {
            Some(audience) => validation.audience(audience.clone()),
            None => validation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<JwtKeySettings, JwtSettingsError> {
        let find = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).into())
        };
        JwtKeySettings::from_lookup(find, "default-issuer")
    }

    #[test]
    fn defaults_secrets_and_errors() {
        assert_eq!(
            from(&[]).unwrap().signing_key().unwrap().algorithm(),
            Algorithm::ES256
        );
        let short = from(&[("JWT_HS256_SECRET", "short")]).unwrap();
        let refused = short.signing_key().unwrap_err().to_string();
        assert!(refused.contains("JWT_HS256_SECRET") && !refused.contains("short"));
        assert!(!format!("{short:?}").contains("short\""));
        let long = from(&[("JWT_HS256_SECRET", "a-random-secret-of-32-bytes-or-more!")]);
        assert_eq!(
            long.unwrap().signing_key().unwrap().algorithm(),
            Algorithm::HS256
        );
        for bad in [
            ("JWT_ALG", "none"),
            ("JWT_LEEWAY_SECS", "soon"),
            ("JWT_LEEWAY_SECS", "301"),
        ] {
            assert!(from(&[bad]).is_err(), "{bad:?}");
        }
        let missing = from(&[("JWT_PRIVATE_KEY_FILE", "/nonexistent/key.pem")]).unwrap();
        assert!(matches!(
            missing.signing_key(),
            Err(JwtSettingsError::KeyFile(_))
        ));
    }
}
