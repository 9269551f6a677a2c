//! The attributes of an auth cookie: checked once against the rules browsers enforce, then used
//! to write every `Set-Cookie` with the `cookie` crate.

use std::sync::Arc;

use cookie::{Cookie, time::OffsetDateTime};
use http::HeaderValue;

/// The most bytes of one cookie (name, value and attributes) every browser keeps
/// (RFC 6265bis §5.6: user agents may ignore larger ones, and do).
pub const MAX_COOKIE_BYTES: usize = 4096;

/// The `SameSite` attribute of a cookie (RFC 6265bis §4.1.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests only: a link from another site arrives signed out.
    Strict,
    /// Sent on same-site requests and top-level navigations from other sites (the default).
    Lax,
    /// Sent on every request; requires `Secure`. The cross-site check still guards unsafe
    /// methods.
    None,
}

impl From<SameSite> for cookie::SameSite {
    fn from(same_site: SameSite) -> Self {
        match same_site {
            SameSite::Strict => Self::Strict,
            SameSite::Lax => Self::Lax,
            SameSite::None => Self::None,
        }
    }
}

/// A cookie setting a browser would reject, found when a layer is built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The name is empty or not an RFC 6265 token.
    #[error("invalid cookie name {0:?}: it must be a non-empty RFC 6265 token")]
    InvalidName(String),
    /// A `__Host-` or `__Secure-` cookie without `Secure` (RFC 6265bis §4.1.3; prefixes are
    /// matched case-insensitively, as browsers do).
    #[error("a cookie named {0:?} must be Secure, or browsers reject it")]
    PrefixRequiresSecure(String),
    /// A `__Host-` cookie with a `Domain` or a `Path` other than `/` (RFC 6265bis §4.1.3.2).
    #[error("a cookie named {0:?} must have Path=/ and no Domain, or browsers reject it")]
    HostPrefixScope(String),
    /// `SameSite=None` without `Secure` (RFC 6265bis §5.6.19).
    #[error("SameSite=None requires a Secure cookie, or browsers reject it")]
    SameSiteNoneRequiresSecure,
    /// The path does not start with `/` or holds `;`, spaces or control characters.
    #[error("invalid cookie path {0:?}")]
    InvalidPath(String),
    /// The domain holds characters a `Domain` attribute cannot carry.
    #[error("invalid cookie domain {0:?}")]
    InvalidDomain(String),
    /// The cookie would exceed [`MAX_COOKIE_BYTES`], so browsers would silently drop it.
    #[error(
        "the cookie {name:?} would be {size} bytes, over the {MAX_COOKIE_BYTES}-byte limit browsers keep; make what it carries smaller"
    )]
    TooLarge {
        /// The cookie's name.
        name: String,
        /// Its size in bytes, attributes included.
        size: usize,
    },
    /// The value holds characters a cookie value cannot carry.
    #[error("the value of cookie {0:?} holds characters a cookie cannot carry")]
    InvalidValue(String),
}

/// Where and how an auth cookie is sent: `Path`, `Domain`, `HttpOnly`, `Secure`, `SameSite`.
///
/// The defaults are the safe ones (OWASP Session Management Cheat Sheet, "Cookies"): `Path=/`,
/// no `Domain`, `HttpOnly`, `Secure`, `SameSite=Lax`.
///
/// # Examples
///
/// ```
/// use portcullis_core::credentials::{CookieAttributes, SameSite};
///
/// let attributes = CookieAttributes::new().same_site(SameSite::Strict);
/// attributes.validate("__Host-session").unwrap();
/// let header = attributes.set_cookie("__Host-session", "abc", Some(60)).unwrap();
/// assert_eq!(header, "__Host-session=abc; HttpOnly; SameSite=Strict; Secure; Path=/; Max-Age=60");
/// assert!(CookieAttributes::new().path("/app").validate("__Host-session").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieAttributes {
    path: Arc<str>,
    domain: Option<Arc<str>>,
    http_only: bool,
    secure: bool,
    same_site: SameSite,
}

impl Default for CookieAttributes {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieAttributes {
    /// `Path=/; HttpOnly; Secure; SameSite=Lax`, no `Domain`.
    pub fn new() -> Self {
        Self {
            path: "/".into(),
            domain: None,
            http_only: true,
            secure: true,
            same_site: SameSite::Lax,
        }
    }

    /// The `Path` attribute (default `/`).
    ///
    /// # Examples
    ///
    /// ```
    /// let attributes = portcullis_core::credentials::CookieAttributes::new().path("/refresh");
    /// assert_eq!(attributes.path_value(), "/refresh");
    /// ```
    #[must_use]
    pub fn path(mut self, path: &str) -> Self {
        self.path = path.into();
        self
    }

    /// The `Domain` attribute (default none: the cookie goes to this host only).
    ///
    /// # Examples
    ///
    /// ```
    /// let attributes = portcullis_core::credentials::CookieAttributes::new().domain("example.com");
    /// ```
    #[must_use]
    pub fn domain(mut self, domain: &str) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The `SameSite` attribute (default `Lax`).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::credentials::{CookieAttributes, SameSite};
    /// let attributes = CookieAttributes::new().same_site(SameSite::Strict);
    /// ```
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Sets `HttpOnly` (default on).
    ///
    /// # Security
    ///
    /// Without it, any script on the page (an XSS payload included) can read the cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// let attributes = portcullis_core::credentials::CookieAttributes::new().http_only(true);
    /// ```
    #[must_use]
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// Sets `Secure` (default on).
    ///
    /// # Security
    ///
    /// Without it the cookie travels over plain HTTP; only for local development.
    ///
    /// # Examples
    ///
    /// ```
    /// let attributes = portcullis_core::credentials::CookieAttributes::new().secure(false);
    /// ```
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// The `Path` attribute.
    pub fn path_value(&self) -> &str {
        &self.path
    }

    /// The `Domain` attribute, if any.
    pub fn domain_value(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    /// Whether `Secure` is set.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether `HttpOnly` is set.
    pub fn is_http_only(&self) -> bool {
        self.http_only
    }

    /// The `SameSite` attribute.
    pub fn same_site_value(&self) -> SameSite {
        self.same_site
    }

    /// Checks a cookie `name` with these attributes the way a browser would: the name is an
    /// RFC 6265 token; `__Secure-` and `__Host-` prefixes (matched case-insensitively, as
    /// RFC 6265bis §4.1.3 has browsers do) need `Secure`, and `__Host-` also `Path=/` and no
    /// `Domain`; `SameSite=None` needs `Secure`.
    ///
    /// # Errors
    ///
    /// The first rule broken, as a [`CookieError`].
    pub fn validate(&self, name: &str) -> Result<(), CookieError> {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(CookieError::InvalidName(name.to_owned()));
        }
        let host_prefix = starts_with_ignore_case(name, "__Host-");
        if (host_prefix || starts_with_ignore_case(name, "__Secure-")) && !self.secure {
            return Err(CookieError::PrefixRequiresSecure(name.to_owned()));
        }
        if host_prefix && (self.domain.is_some() || &*self.path != "/") {
            return Err(CookieError::HostPrefixScope(name.to_owned()));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(CookieError::SameSiteNoneRequiresSecure);
        }
        if !self.path.starts_with('/')
            || self
                .path
                .bytes()
                .any(|b| b == b';' || b == b' ' || !b.is_ascii_graphic())
        {
            return Err(CookieError::InvalidPath(self.path.to_string()));
        }
        if let Some(domain) = &self.domain {
            let valid = !domain.is_empty()
                && domain
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
            if !valid {
                return Err(CookieError::InvalidDomain(domain.to_string()));
            }
        }
        Ok(())
    }

    /// The `Set-Cookie` value that stores `value` under `name`, for `max_age` seconds (`None`:
    /// until the browser closes).
    ///
    /// # Errors
    ///
    /// [`CookieError::TooLarge`] past [`MAX_COOKIE_BYTES`], [`CookieError::InvalidValue`] for a
    /// value a header cannot carry.
    pub fn set_cookie(
        &self,
        name: &str,
        value: &str,
        max_age: Option<u64>,
    ) -> Result<HeaderValue, CookieError> {
        let mut cookie = self.build(name, value);
        if let Some(max_age) = max_age {
            let seconds = i64::try_from(max_age).unwrap_or(i64::MAX);
            cookie.set_max_age(cookie::time::Duration::seconds(seconds));
        }
        Self::header(name, &cookie)
    }

    /// The `Set-Cookie` value that makes browsers drop `name`: same `Path`, `Domain` and
    /// `Secure` (a `__Host-` cookie is only replaced by one with the same attributes,
    /// RFC 6265bis §5.7), an empty value, `Max-Age=0` and an `Expires` in the past for older
    /// clients.
    ///
    /// # Errors
    ///
    /// As [`CookieAttributes::set_cookie`].
    pub fn clear_cookie(&self, name: &str) -> Result<HeaderValue, CookieError> {
        let mut cookie = self.build(name, "");
        cookie.set_max_age(cookie::time::Duration::ZERO);
        cookie.set_expires(OffsetDateTime::UNIX_EPOCH);
        Self::header(name, &cookie)
    }

    fn build<'c>(&'c self, name: &'c str, value: &'c str) -> Cookie<'c> {
        let mut cookie = Cookie::new(name, value);
        cookie.set_path(&*self.path);
        if let Some(domain) = &self.domain {
            cookie.set_domain(&**domain);
        }
        cookie.set_http_only(self.http_only);
        cookie.set_secure(self.secure);
        cookie.set_same_site(cookie::SameSite::from(self.same_site));
        cookie
    }

    fn header(name: &str, cookie: &Cookie<'_>) -> Result<HeaderValue, CookieError> {
        let text = cookie.to_string();
        if text.len() > MAX_COOKIE_BYTES {
            return Err(CookieError::TooLarge {
                name: name.to_owned(),
                size: text.len(),
            });
        }
        if !cookie
            .value()
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';')
        {
            return Err(CookieError::InvalidValue(name.to_owned()));
        }
        HeaderValue::from_str(&text).map_err(|_| CookieError::InvalidValue(name.to_owned()))
    }
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.as_bytes()
        .get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// RFC 9110 §5.6.2 `tchar`, which RFC 6265 `cookie-name` uses.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let secure = CookieAttributes::new();
        let insecure = CookieAttributes::new().secure(false);
        let cases: &[(&CookieAttributes, &str, Option<CookieError>)] = &[
            (&secure, "__Host-session", None),
            (&secure, "__Secure-refresh", None),
            (&secure, "session", None),
            (&secure, "", Some(CookieError::InvalidName(String::new()))),
            (&secure, "a b", Some(CookieError::InvalidName("a b".into()))),
            (&secure, "a;b", Some(CookieError::InvalidName("a;b".into()))),
            (&insecure, "session", None),
            (
                &insecure,
                "__Host-session",
                Some(CookieError::PrefixRequiresSecure("__Host-session".into())),
            ),
            // RFC 6265bis: browsers match prefixes case-insensitively, so must we.
            (
                &insecure,
                "__host-session",
                Some(CookieError::PrefixRequiresSecure("__host-session".into())),
            ),
            (
                &insecure,
                "__SECURE-refresh",
                Some(CookieError::PrefixRequiresSecure("__SECURE-refresh".into())),
            ),
        ];
        for (attributes, name, expected) in cases {
            assert_eq!(attributes.validate(name).err(), *expected, "{name:?}");
        }
        for name in ["__Host-x", "__HOST-x", "__host-x"] {
            assert_eq!(
                CookieAttributes::new().path("/refresh").validate(name),
                Err(CookieError::HostPrefixScope(name.into()))
            );
            assert_eq!(
                CookieAttributes::new().domain("example.com").validate(name),
                Err(CookieError::HostPrefixScope(name.into()))
            );
        }
        assert!(
            CookieAttributes::new()
                .path("/refresh")
                .validate("__Secure-r")
                .is_ok()
        );
        assert_eq!(
            insecure.clone().same_site(SameSite::None).validate("s"),
            Err(CookieError::SameSiteNoneRequiresSecure)
        );
        for path in ["relative", "/a;b", "/a b", "/\u{7f}"] {
            assert_eq!(
                CookieAttributes::new().path(path).validate("s"),
                Err(CookieError::InvalidPath(path.into()))
            );
        }
        assert_eq!(
            CookieAttributes::new().domain("ex ample.com").validate("s"),
            Err(CookieError::InvalidDomain("ex ample.com".into()))
        );
    }

    #[test]
    fn set_and_clear() {
        let attributes = CookieAttributes::new();
        assert_eq!(
            attributes
                .set_cookie("__Host-session", "abc", None)
                .unwrap(),
            "__Host-session=abc; HttpOnly; SameSite=Lax; Secure; Path=/"
        );
        assert_eq!(
            CookieAttributes::new()
                .path("/refresh")
                .domain("example.com")
                .set_cookie("__Secure-refresh", "r", Some(60))
                .unwrap(),
            "__Secure-refresh=r; HttpOnly; SameSite=Lax; Secure; Path=/refresh; Domain=example.com; Max-Age=60"
        );
        assert_eq!(
            attributes.clear_cookie("__Host-session").unwrap(),
            "__Host-session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
        assert_eq!(
            CookieAttributes::new()
                .secure(false)
                .http_only(false)
                .set_cookie("s", "v", Some(u64::MAX))
                .unwrap(),
            format!("s=v; SameSite=Lax; Path=/; Max-Age={}", i64::MAX)
        );
    }

    #[test]
    fn refuses_cookies_browsers_would_drop() {
        let attributes = CookieAttributes::new();
        let fits = "a".repeat(MAX_COOKIE_BYTES - 100);
        assert!(
            attributes
                .set_cookie("__Host-access", &fits, Some(60))
                .is_ok()
        );
        let big = "a".repeat(MAX_COOKIE_BYTES);
        match attributes.set_cookie("__Host-access", &big, Some(60)) {
            Err(CookieError::TooLarge { name, size }) => {
                assert_eq!(name, "__Host-access");
                assert!(size > MAX_COOKIE_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        for value in ["a;b", "a b", "caf\u{e9}", "a\nb"] {
            assert_eq!(
                attributes.set_cookie("s", value, None),
                Err(CookieError::InvalidValue("s".into())),
                "{value:?}"
            );
        }
    }
}
