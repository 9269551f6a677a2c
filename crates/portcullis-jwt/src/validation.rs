//! What a token's claims must say to be accepted, beyond its signature: [`Validation`].

use std::{sync::Arc, time::Duration};

/// The default clock-skew allowance for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// The largest leeway accepted; larger values are capped (RFC 7519 §4.1.4 speaks of "a few
/// minutes" at most).
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The default limit on a token's length, checked before any decoding (RFC 8725 §3.11 asks
/// for bounded resource use on untrusted input).
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The rules a token's registered claims must satisfy (RFC 7519 §4.1, RFC 8725 §3.8–§3.12).
///
/// Always enforced: `exp` present and in the future, `sub` present, `nbf` and `iat` not in the
/// future, each within the leeway; `exp`, `nbf` and `iat` must be JSON numbers. A token carrying
/// an `aud` is refused unless an audience is configured (RFC 7519 §4.1.3), with
/// [`TokenError::AudienceNotConfigured`](crate::TokenError::AudienceNotConfigured) and a
/// warning in the log saying what to set: identity providers' access tokens always carry one,
/// so configure [`Validation::audience`] for them. Every setter that
/// names an issuer, audience, type or claim makes it required.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_jwt::Validation;
///
/// let validation = Validation::new()
///     .issuer("https://auth.example")
///     .audience("https://api.example")
///     .leeway(Duration::from_secs(10))
///     .typ("at+jwt")
///     .require_claim("role");
/// ```
#[derive(Debug, Clone)]
pub struct Validation {
    pub(crate) issuers: Vec<Arc<str>>,
    pub(crate) audiences: Vec<Arc<str>>,
    pub(crate) leeway_secs: u64,
    pub(crate) typ: Option<Arc<str>>,
    pub(crate) required_claims: Vec<Arc<str>>,
    pub(crate) max_token_bytes: usize,
    /// Seconds past `exp` (beyond the leeway) a token is still accepted; 0 but for the
    /// revocation-only verifiers of [`Validation::dangerous_accept_expired_within`].
    pub(crate) expired_within_secs: u64,
}

impl Default for Validation {
    fn default() -> Self {
        Self::new()
    }
}

impl Validation {
    /// The defaults: no issuer or audience configured, 30 s of leeway, no `typ` check, 8 KiB
    /// token limit.
    pub fn new() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway_secs: DEFAULT_LEEWAY.as_secs(),
            typ: None,
            required_claims: Vec::new(),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            expired_within_secs: 0,
        }
    }

    /// Accepts tokens whose `iss` is exactly `issuer` (call again to trust several issuers);
    /// once any issuer is set, `iss` is required.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = portcullis_jwt::Validation::new()
    ///     .issuer("https://auth.example")
    ///     .issuer("https://partner.example");
    /// ```
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<Arc<str>>) -> Self {
        self.issuers.push(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` (a string or an array) contains `audience` (call again to
    /// accept several); once set, `aud` is required.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = portcullis_jwt::Validation::new().audience("https://api.example");
    /// ```
    #[must_use]
    pub fn audience(mut self, audience: impl Into<Arc<str>>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The clock-skew allowance for `exp`, `nbf` and `iat`, in whole seconds, capped at
    /// [`MAX_LEEWAY`] (a larger value is logged and capped).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let v = portcullis_jwt::Validation::new().leeway(Duration::ZERO);
    /// ```
    #[must_use]
    pub fn leeway(mut self, leeway: Duration) -> Self {
        if leeway > MAX_LEEWAY {
            tracing::warn!(
                requested_secs = leeway.as_secs(),
                max_secs = MAX_LEEWAY.as_secs(),
                "JWT leeway capped"
            );
        }
        self.leeway_secs = leeway.min(MAX_LEEWAY).as_secs();
        self
    }

    /// Requires the header `typ` to be this media type, compared case-insensitively with an
    /// optional `application/` prefix (RFC 7515 §4.1.9), e.g. `at+jwt` for OAuth access tokens
    /// (RFC 9068 §2.1). Stops a token of one kind (an ID token) being replayed as another.
    ///
    /// # Examples
    ///
    /// ```
    /// let v = portcullis_jwt::Validation::new().typ("at+jwt");
    /// ```
    #[must_use]
    pub fn typ(mut self, typ: impl Into<Arc<str>>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// Requires a custom claim to be present (and not `null`).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = portcullis_jwt::Validation::new().require_claim("role");
    /// ```
    #[must_use]
    pub fn require_claim(mut self, claim: impl Into<Arc<str>>) -> Self {
        self.required_claims.push(claim.into());
        self
    }

    /// The longest token accepted, in bytes, checked before any decoding (at least 256).
    ///
    /// # Examples
    ///
    /// ```
    /// let v = portcullis_jwt::Validation::new().max_token_bytes(4096);
    /// ```
    #[must_use]
    pub fn max_token_bytes(mut self, max: usize) -> Self {
        self.max_token_bytes = max.max(256);
        self
    }

    /// Also accepts tokens that expired less than `window` ago; every other check (signature,
    /// `iss`, `aud`, `typ`, `nbf`, `iat`, required claims) still applies.
    ///
    /// # Security
    ///
    /// An expired token must not authenticate anything. This exists for one narrow use: a
    /// verifier that only *identifies* a session in order to end it (logout with an expired
    /// access token), where accepting it can only ever revoke. Keep `window` bounded by the
    /// session's own lifetime (RFC 8725 §3.10: validate every claim that is relied on).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let revocation_only = portcullis_jwt::Validation::new()
    ///     .dangerous_accept_expired_within(Duration::from_secs(14 * 24 * 3600));
    /// ```
    #[must_use]
    pub fn dangerous_accept_expired_within(mut self, window: Duration) -> Self {
        self.expired_within_secs = window.as_secs();
        self
    }

    /// The configured leeway.
    pub fn leeway_duration(&self) -> Duration {
        Duration::from_secs(self.leeway_secs)
    }

    pub(crate) fn typ_matches(&self, typ: Option<&str>) -> bool {
        let Some(expected) = &self.typ else {
            return true;
        };
        let Some(typ) = typ else {
            return false;
        };
        strip_application(typ).eq_ignore_ascii_case(strip_application(expected))
    }
}

fn strip_application(media_type: &str) -> &str {
    match media_type.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &media_type[12..],
        _ => media_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_comparison_follows_rfc_7515() {
        let v = Validation::new().typ("at+jwt");
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+Jwt",
        ] {
            assert!(v.typ_matches(Some(ok)), "{ok}");
        }
        for bad in [None, Some("JWT"), Some("at+jwt "), Some("application/jwt")] {
            assert!(!v.typ_matches(bad), "{bad:?}");
        }
        assert!(Validation::new().typ_matches(None));
    }

    #[test]
    fn leeway_is_capped() {
        let v = Validation::new().leeway(Duration::from_secs(3600));
        assert_eq!(v.leeway_duration(), MAX_LEEWAY);
    }
}
