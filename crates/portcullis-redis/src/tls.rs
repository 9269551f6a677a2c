//! TLS to Redis: `rediss://` URLs (feature `tls`), as managed services (ElastiCache, Azure
//! Cache, Upstash, Redis Cloud) require, with the system's root certificates or a private CA.
//!
//! Certificates and host names are always verified: the client library's `#insecure` URL
//! fragment, which turns verification off, is refused at configuration time (OWASP Transport
//! Layer Security Cheat Sheet, "Validate certificates"). TLS goes through rustls on the `ring`
//! provider, so an application using only the session store compiles neither aws-lc-rs nor an
//! HTTP client.

use std::sync::Arc;

use redis::{Client, cluster::ClusterClientBuilder};

use crate::{ConfigError, RedisConfig};

#[cfg(feature = "tls")]
impl RedisConfig {
    /// Trusts these root certificates (PEM, one or more) for `rediss://` instead of the
    /// system's: a private CA, or a managed service's own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn run() -> std::io::Result<()> {
    /// let config = portcullis_redis::RedisConfig::new("rediss://app:secret@redis.internal:6380")
    ///     .tls_root_certificates(std::fs::read("/etc/redis/ca.pem")?);
    /// # let _ = config; Ok(()) }
    /// ```
    #[must_use]
    pub fn tls_root_certificates(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_certificates = Some(pem.into().into());
        self.tls_root_certificates_file = None;
        self
    }

    /// As [`RedisConfig::tls_root_certificates`], read from a PEM file when the connection is
    /// built ([`RedisConfig::from_env`] takes it from `REDIS_TLS_CA_FILE`).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::RedisConfig::new("rediss://redis.internal:6380")
    ///     .tls_root_certificates_file("/etc/redis/ca.pem");
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn tls_root_certificates_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_root_certificates_file = Some(path.into());
        self.tls_root_certificates = None;
        self
    }
}

/// The configuration with its root certificates read and checked, once, when it is built.
pub(crate) fn resolve_root_certificates(config: &RedisConfig) -> Result<RedisConfig, ConfigError> {
    let mut config = config.clone();
    if let Some(path) = config.tls_root_certificates_file.take() {
        let pem = std::fs::read(path).map_err(ConfigError::TlsRootCertificatesFile)?;
        config.tls_root_certificates = Some(Arc::from(pem));
    }
    #[cfg(feature = "tls")]
    if let Some(pem) = &config.tls_root_certificates {
        check_root_certificates(pem)?;
    }
    Ok(config)
}

/// Whether `url` asks for TLS (`rediss://` or `valkeys://`, in any case).
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    })
}

/// Refuses what can never work or must never be allowed, before any connection: TLS without
/// the feature, and TLS without certificate verification.
pub(crate) fn check_url(url: &str) -> Result<(), ConfigError> {
    if !is_tls_url(url) {
        return Ok(());
    }
    if !cfg!(feature = "tls") {
        return Err(ConfigError::TlsNotEnabled);
    }
    if url
        .split_once('#')
        .is_some_and(|(_, fragment)| fragment.eq_ignore_ascii_case("insecure"))
    {
        return Err(ConfigError::InsecureTls);
    }
    Ok(())
}

/// Checks that `pem` holds at least one certificate and nothing unreadable.
#[cfg(feature = "tls")]
pub(crate) fn check_root_certificates(pem: &[u8]) -> Result<(), ConfigError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};

    let mut count = 0usize;
    for certificate in CertificateDer::pem_slice_iter(pem) {
        certificate.map_err(|_| ConfigError::InvalidTlsRootCertificates)?;
        count = count.saturating_add(1);
    }
    if count == 0 {
        return Err(ConfigError::InvalidTlsRootCertificates);
    }
    Ok(())
}

/// A client for one node: with `root_certificates` (PEM) as the only trusted roots when given
/// and the URL is `rediss://`, the system roots otherwise.
pub(crate) fn client(url: &str, root_certificates: Option<&[u8]>) -> Result<Client, ConfigError> {
    check_url(url)?;
    #[cfg(feature = "tls")]
    if is_tls_url(url) {
        install_crypto_provider();
        if let Some(pem) = root_certificates {
            return Client::build_with_tls(url, certificates(pem)).map_err(ConfigError::InvalidUrl);
        }
    }
    #[cfg(not(feature = "tls"))]
    let _ = root_certificates;
    Client::open(url).map_err(ConfigError::InvalidUrl)
}

/// Applies the TLS settings to a cluster client (its node URLs say `rediss://`).
pub(crate) fn cluster(
    builder: ClusterClientBuilder,
    urls: &[String],
    root_certificates: Option<&[u8]>,
) -> Result<ClusterClientBuilder, ConfigError> {
    for url in urls {
        check_url(url)?;
    }
    #[cfg(feature = "tls")]
    if urls.iter().any(|url| is_tls_url(url)) {
        install_crypto_provider();
        if let Some(pem) = root_certificates {
            return Ok(builder.certs(certificates(pem)));
        }
    }
    #[cfg(not(feature = "tls"))]
    let _ = root_certificates;
    Ok(builder)
}

#[cfg(feature = "tls")]
fn certificates(pem: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    }
}

/// rustls needs a process-wide crypto provider when several are compiled in (aws-lc-rs comes
/// with the JWT crates): install `ring` unless the application installed one already, in
/// which case that one is used.
#[cfg(feature = "tls")]
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_urls_are_recognised_in_any_case() {
        for url in [
            "rediss://h:6380",
            "REDISS://h",
            "valkeys://h",
            "rediss://u:p@h/0",
        ] {
            assert!(is_tls_url(url), "{url}");
        }
        for url in [
            "redis://h",
            "unix:///tmp/r.sock",
            "redis+unix:///r",
            "h:6379",
        ] {
            assert!(!is_tls_url(url), "{url}");
        }
    }

    #[test]
    fn tls_without_verification_is_refused() {
        for url in ["rediss://h/#insecure", "rediss://h:1/0#INSECURE"] {
            let result = check_url(url);
            if cfg!(feature = "tls") {
                assert!(matches!(result, Err(ConfigError::InsecureTls)), "{url}");
            } else {
                assert!(matches!(result, Err(ConfigError::TlsNotEnabled)), "{url}");
            }
        }
        assert!(check_url("redis://h/#insecure").is_ok());
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_is_a_configuration_error() {
        assert!(matches!(
            check_url("rediss://h"),
            Err(ConfigError::TlsNotEnabled)
        ));
        assert!(check_url("redis://h").is_ok());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn root_certificates_must_be_pem_certificates() {
        assert!(matches!(
            check_root_certificates(b""),
            Err(ConfigError::InvalidTlsRootCertificates)
        ));
        assert!(matches!(
            check_root_certificates(
                b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"
            ),
            Err(ConfigError::InvalidTlsRootCertificates)
        ));
        // A private key is not a root certificate.
        assert!(matches!(
            check_root_certificates(
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            ),
            Err(ConfigError::InvalidTlsRootCertificates)
        ));
    }
}
