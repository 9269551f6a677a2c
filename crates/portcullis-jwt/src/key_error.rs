//! [`KeyError`]: why a key or key set could not be built.

use crate::Algorithm;

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
    /// A PEM that is no P-256, P-384, Ed25519 or RSA private key
    /// ([`SigningKey::from_pem_any_alg`](crate::SigningKey::from_pem_any_alg)).
    #[error("the PEM is not a P-256, P-384, Ed25519 or RSA private key")]
    UnrecognizedPem,
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
