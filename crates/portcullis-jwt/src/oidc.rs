//! Identity-provider keys in one call: [`KeySet::from_oidc`] reads an OpenID Connect issuer's
//! discovery document (OpenID Connect Discovery 1.0 §4), checks that it speaks for that issuer,
//! and follows its `jwks_uri` with the JWKS URL machinery (background refresh, rate-limited
//! refetch on an unknown `kid`, 503 until keys load).
//!
//! The checks: the document's `issuer` must equal the configured issuer exactly (§4.3, which
//! stops a compromised or confused document from speaking for another issuer); the issuer
//! and the `jwks_uri` must be `https://` unless on loopback (RFC 8725 §3.10, OWASP Transport
//! Layer Security Cheat Sheet); the document is bounded in size and time like a JWKS; the
//! keys are pinned to the issuer, so a token they verify must carry exactly that `iss`.

use std::fmt;

use crate::{JwksOptions, KeyError, KeySet, remote::FetchError};

/// Where a remote key set lives: a JWKS URL, or an issuer whose discovery document names it.
pub(crate) enum KeysLocation {
    Jwks(reqwest::Url),
    Discovery {
        /// The configured issuer, exactly as given (compared byte for byte, §4.3).
        issuer: String,
        /// `<issuer>/.well-known/openid-configuration`.
        document: reqwest::Url,
    },
}

impl fmt::Display for KeysLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Jwks(url) => write!(f, "{url}"),
            Self::Discovery { document, .. } => write!(f, "{document}"),
        }
    }
}

/// Why a discovery document could not be used. Its text names the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DiscoveryError {
    #[error(
        "the discovery document's issuer {found:?} is not the configured issuer {expected:?} \
         (OpenID Connect Discovery 1.0 §4.3 requires them to be identical: check the issuer \
         URL, including any trailing slash)"
    )]
    IssuerMismatch { expected: String, found: String },
    #[error("the discovery document is not JSON with `issuer` and `jwks_uri` strings")]
    Invalid,
    #[error(
        "the discovery document's jwks_uri {0:?} is not an https:// URL (or http:// on loopback)"
    )]
    InsecureJwksUri(String),
}

#[derive(serde::Deserialize)]
struct Document {
    issuer: String,
    jwks_uri: String,
}

impl KeysLocation {
    /// The JWKS URL: the configured one, or the `jwks_uri` of a freshly fetched and checked
    /// discovery document (fetched on every refresh, so a moved `jwks_uri` is followed).
    pub(crate) async fn jwks_url(
        &self,
        client: &reqwest::Client,
        options: &JwksOptions,
    ) -> Result<reqwest::Url, FetchError> {
        let (issuer, document) = match self {
            Self::Jwks(url) => return Ok(url.clone()),
            Self::Discovery { issuer, document } => (issuer, document),
        };
        let mut response = client
            .get(document.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(FetchError::Http)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let body = crate::remote::read_bounded(&mut response, options.body_limit()).await?;
        let document: Document =
            serde_json::from_slice(&body).map_err(|_| DiscoveryError::Invalid)?;
        if document.issuer != *issuer {
            return Err(DiscoveryError::IssuerMismatch {
                expected: issuer.clone(),
                found: document.issuer.chars().take(200).collect(),
            }
            .into());
        }
        match reqwest::Url::parse(&document.jwks_uri) {
            Ok(url) if secure_or_loopback(&url) => Ok(url),
            _ => Err(DiscoveryError::InsecureJwksUri(
                document.jwks_uri.chars().take(200).collect(),
            )
            .into()),
        }
    }
}

/// `https://`, or `http://` to a loopback host (a local issuer in development and tests).
fn secure_or_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            bare.parse::<std::net::IpAddr>()
                .map_or(host.eq_ignore_ascii_case("localhost"), |ip| {
                    ip.is_loopback()
                })
        }
        _ => false,
    }
}

impl KeySet {
    /// The keys of an OpenID Connect issuer (Auth0, Microsoft Entra ID, Keycloak, Okta, Google,
    /// ...), found through its discovery document at
    /// `<issuer>/.well-known/openid-configuration` and pinned to that issuer.
    ///
    /// Returns at once, before the first fetch, as [`KeySet::from_jwks_url`] does: while the
    /// document or the keys cannot be had, tokens only they could verify get 503 (fail
    /// closed), and the background task retries. A document whose `issuer` is not exactly
    /// `issuer`, or whose `jwks_uri` is not `https://` (`http://` is allowed on loopback), is
    /// refused, and the reason is logged at WARN on every attempt.
    ///
    /// Configure the audience too: providers' access tokens carry `aud`
    /// ([`Validation::audience`](crate::Validation::audience)).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidUrl`] for an issuer that is not an `https://` URL (or `http://` on
    /// loopback), [`KeyError::NoRuntime`] outside a Tokio runtime, [`KeyError::HttpClient`]
    /// when the TLS setup fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::{JwksOptions, KeySet, TokenVerifier, Validation};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let issuer = "https://tenant.eu.auth0.com/";
    /// let keys = KeySet::from_oidc(issuer, JwksOptions::new()).unwrap();
    /// let verifier = TokenVerifier::new(
    ///     keys,
    ///     Validation::new().issuer(issuer).audience("https://api.example"),
    /// );
    /// # let _ = verifier;
    /// # });
    /// assert!(KeySet::from_oidc("http://auth.example", JwksOptions::new()).is_err());
    /// ```
    pub fn from_oidc(issuer: &str, options: JwksOptions) -> Result<KeySet, KeyError> {
        let invalid = || KeyError::InvalidUrl(issuer.to_owned());
        let parsed = reqwest::Url::parse(issuer).map_err(|_| invalid())?;
        // §4: the issuer has no query or fragment; the document sits under its path.
        if !secure_or_loopback(&parsed) || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(invalid());
        }
        let document = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let document = reqwest::Url::parse(&document).map_err(|_| invalid())?;
        let location = KeysLocation::Discovery {
            issuer: issuer.to_owned(),
            document,
        };
        Ok(crate::remote::RemoteJwks::from_location(location, options)
            .map(Self::from_remote)?
            .for_issuer(issuer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://auth.example/",
            "http://127.0.0.1:8080/realms/x",
            "http://[::1]:1/",
            "http://localhost:3000",
        ] {
            assert!(
                secure_or_loopback(&reqwest::Url::parse(ok).unwrap()),
                "{ok}"
            );
        }
        for bad in [
            "http://auth.example/",
            "http://10.0.0.1/",
            "ftp://auth.example/",
            "file:///etc/passwd",
        ] {
            assert!(
                !secure_or_loopback(&reqwest::Url::parse(bad).unwrap()),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn the_issuer_url_is_checked_up_front() {
        for bad in [
            "not a url",
            "http://auth.example",
            "https://auth.example/?tenant=1",
            "https://auth.example/#x",
        ] {
            assert!(
                matches!(
                    KeySet::from_oidc(bad, JwksOptions::new()),
                    Err(KeyError::InvalidUrl(_))
                ),
                "{bad}"
            );
        }
        assert!(KeySet::from_oidc("https://auth.example/", JwksOptions::new()).is_ok());
    }
}
