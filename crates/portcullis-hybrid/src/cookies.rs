//! The cookie transport: the access token and the refresh token in two HttpOnly cookies, so
//! page scripts never see either (OWASP HTML5 Security Cheat Sheet, "Local Storage": keep
//! tokens out of script reach).

use std::{fmt, sync::Arc};

use http::{HeaderMap, header};
pub use portcullis_core::credentials::SameSite;
use portcullis_core::credentials::{CookieAttributes, CookieError, find_cookie};

use crate::{ConfigError, HybridError, TokenPair};

pub use portcullis_core::credentials::MAX_COOKIE_BYTES;

/// Where and how the cookie transport keeps the tokens.
///
/// By default the access cookie is `__Host-access` (`Path=/`) and the refresh cookie
/// `__Secure-refresh` with `Path=/refresh`: the browser sends the refresh token to the refresh
/// route only, so it crosses the wire once per access-token lifetime, not with every request
/// (RFC 9700 §4.14: limit refresh-token exposure). A page whose access cookie expired gets 401
/// and calls the refresh route. [`CookieTransport::transparent`] instead sends the refresh
/// cookie everywhere and lets the layer refresh on its own.
///
/// Both cookies are `HttpOnly; Secure; SameSite=Lax`.
///
/// # Examples
///
/// ```
/// use portcullis_hybrid::CookieTransport;
///
/// let cookies = CookieTransport::new();
/// assert_eq!(cookies.access_cookie(), "__Host-access");
/// assert_eq!(cookies.refresh_cookie(), "__Secure-refresh");
/// assert_eq!(cookies.refresh_path(), "/refresh");
/// assert!(!cookies.is_transparent());
/// ```
#[derive(Clone)]
pub struct CookieTransport {
    access_name: Arc<str>,
    refresh_name: Arc<str>,
    refresh_path: Arc<str>,
    same_site: SameSite,
    secure: bool,
    transparent: bool,
}

impl fmt::Debug for CookieTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CookieTransport")
            .field("access_name", &self.access_name)
            .field("refresh_name", &self.refresh_name)
            .field("refresh_path", &self.refresh_path)
            .field("same_site", &self.same_site)
            .field("secure", &self.secure)
            .field("transparent", &self.transparent)
            .finish()
    }
}

impl Default for CookieTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl CookieTransport {
    /// `__Host-access` and `__Secure-refresh` (`Path=/refresh`); refresh through the refresh
    /// route.
    pub fn new() -> Self {
        Self {
            access_name: "__Host-access".into(),
            refresh_name: "__Secure-refresh".into(),
            refresh_path: "/refresh".into(),
            same_site: SameSite::Lax,
            secure: true,
            transparent: false,
        }
    }

    /// Transparent refresh: the refresh cookie is `__Host-refresh` with `Path=/`, and the
    /// layer refreshes any request whose access cookie is missing or expired, answering it
    /// normally with new cookies.
    ///
    /// # Security
    ///
    /// The refresh token then travels with every request, widening its exposure (to request
    /// logs of proxies, say) compared with the default path-scoped cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_hybrid::CookieTransport;
    ///
    /// let cookies = CookieTransport::transparent();
    /// assert_eq!(cookies.refresh_cookie(), "__Host-refresh");
    /// assert_eq!(cookies.refresh_path(), "/");
    /// ```
    pub fn transparent() -> Self {
        Self {
            refresh_name: "__Host-refresh".into(),
            refresh_path: "/".into(),
            transparent: true,
            ..Self::new()
        }
    }

    /// Renames the access cookie. Names starting `__Host-` require `Path=/` and `Secure`
    /// (checked when the layer is built).
    ///
    /// # Examples
    ///
    /// ```
    /// let cookies = portcullis_hybrid::CookieTransport::new().access_cookie_name("__Host-at");
    /// assert_eq!(cookies.access_cookie(), "__Host-at");
    /// ```
    #[must_use]
    pub fn access_cookie_name(mut self, name: &str) -> Self {
        self.access_name = name.into();
        self
    }

    /// Renames the refresh cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// let cookies = portcullis_hybrid::CookieTransport::new().refresh_cookie_name("__Secure-rt");
    /// assert_eq!(cookies.refresh_cookie(), "__Secure-rt");
    /// ```
    #[must_use]
    pub fn refresh_cookie_name(mut self, name: &str) -> Self {
        self.refresh_name = name.into();
        self
    }

    /// The path of the refresh cookie: where the application mounts its refresh route.
    ///
    /// # Examples
    ///
    /// ```
    /// let cookies = portcullis_hybrid::CookieTransport::new().refresh_cookie_path("/auth/refresh");
    /// assert_eq!(cookies.refresh_path(), "/auth/refresh");
    /// ```
    #[must_use]
    pub fn refresh_cookie_path(mut self, path: &str) -> Self {
        self.refresh_path = path.into();
        self
    }

    /// The `SameSite` attribute of both cookies.
    ///
    /// # Security
    ///
    /// `SameSite::None` lets other sites' requests carry the cookies; only the cross-site check
    /// then stands between them and the user's session.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_hybrid::{CookieTransport, SameSite};
    /// let cookies = CookieTransport::new().same_site(SameSite::Strict);
    /// ```
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Drops the `Secure` attribute, for plain-HTTP development on a host browsers do not
    /// treat as secure. Cookie names must then not use the `__Host-`/`__Secure-` prefixes.
    ///
    /// # Security
    ///
    /// Without `Secure` the tokens travel over unencrypted connections. Never in production.
    ///
    /// # Examples
    ///
    /// ```
    /// let cookies = portcullis_hybrid::CookieTransport::new()
    ///     .access_cookie_name("access")
    ///     .refresh_cookie_name("refresh")
    ///     .dangerous_insecure();
    /// ```
    #[must_use]
    pub fn dangerous_insecure(mut self) -> Self {
        self.secure = false;
        self
    }

    /// The access cookie's name.
    pub fn access_cookie(&self) -> &str {
        &self.access_name
    }

    /// The refresh cookie's name.
    pub fn refresh_cookie(&self) -> &str {
        &self.refresh_name
    }

    /// The refresh cookie's path.
    pub fn refresh_path(&self) -> &str {
        &self.refresh_path
    }

    /// Whether the layer refreshes on its own.
    pub fn is_transparent(&self) -> bool {
        self.transparent
    }

    /// Checks names, paths and prefixes against RFC 6265 and the cookie-prefix rules.
    ///
    /// # Errors
    ///
    /// The [`ConfigError`] variant of the broken rule.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // Names, paths and prefixes follow the rules every portcullis cookie shares
        // (prefixes matched case-insensitively, RFC 6265bis §4.1.3).
        self.attributes("/").validate(&self.access_name)?;
        self.attributes(&self.refresh_path)
            .validate(&self.refresh_name)?;
        if self.access_name == self.refresh_name {
            return Err(ConfigError::SameCookieNames);
        }
        if self.transparent && self.refresh_path.as_ref() != "/" {
            return Err(ConfigError::TransparentRefreshPath);
        }
        Ok(())
    }

    /// The access token from the request's cookies: `None` when absent, or when several
    /// different values arrive (one may be tossed from a sibling domain, RFC 6265bis §8.5).
    pub fn access_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        find_cookie(headers, &self.access_name).value()
    }

    /// The refresh token from the request's cookies, by the same rule as
    /// [`CookieTransport::access_token`]: a planted second refresh cookie never swaps the
    /// victim into the attacker's session.
    pub fn refresh_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        find_cookie(headers, &self.refresh_name).value()
    }

    /// Whether the request carries either cookie, even ambiguously (and so needs the
    /// cross-site check).
    pub fn has_cookies(&self, headers: &HeaderMap) -> bool {
        find_cookie(headers, &self.access_name).is_present()
            || find_cookie(headers, &self.refresh_name).is_present()
    }

    /// Appends `Set-Cookie` headers for both tokens of `pair`, expiring with them: the access
    /// cookie with the access token, the refresh cookie with the session's idle deadline.
    ///
    /// # Errors
    ///
    /// [`HybridError::CookieTooLarge`], with nothing appended, when either cookie would pass
    /// the [`MAX_COOKIE_BYTES`] browsers keep: they drop such a cookie without a word, and the
    /// user would seem signed in yet be anonymous. An access token grows with the user claims.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), portcullis_hybrid::HybridError> {
    /// let pair = sessions.login("alice", &serde_json::json!({"user": "alice"}), None).await?;
    /// let mut headers = http::HeaderMap::new();
    /// portcullis_hybrid::CookieTransport::new().set_cookies(&pair, &mut headers)?;
    /// assert_eq!(headers.get_all(http::header::SET_COOKIE).iter().count(), 2);
    /// # Ok(()) }
    /// ```
    pub fn set_cookies(
        &self,
        pair: &TokenPair,
        headers: &mut HeaderMap,
    ) -> Result<(), HybridError> {
        let now = pair.issued_at();
        let access = self.attributes("/").set_cookie(
            &self.access_name,
            pair.access_token(),
            Some(pair.access_expires_at().saturating_sub(now)),
        );
        let refresh = self.attributes(&self.refresh_path).set_cookie(
            &self.refresh_name,
            &pair.refresh_token().expose(),
            Some(pair.refresh_expires_at().saturating_sub(now)),
        );
        // Both or neither: a login that sets one cookie of the pair is a broken session.
        let (access, refresh) = match (access, refresh) {
            (Ok(access), Ok(refresh)) => (access, refresh),
            (Err(CookieError::TooLarge { name, size }), _)
            | (_, Err(CookieError::TooLarge { name, size })) => {
                return Err(HybridError::CookieTooLarge {
                    cookie: name,
                    bytes: size,
                });
            }
            (Err(error), _) | (_, Err(error)) => {
                // Names and tokens are validated, so this is a bug; never a panic.
                tracing::error!(%error, "cannot write the auth cookies");
                return Err(HybridError::CookieTooLarge {
                    cookie: error.to_string(),
                    bytes: 0,
                });
            }
        };
        headers.append(header::SET_COOKIE, access);
        headers.append(header::SET_COOKIE, refresh);
        Ok(())
    }

    /// Appends `Set-Cookie` headers that delete both cookies (logout, revoked session).
    pub fn clear_cookies(&self, headers: &mut HeaderMap) {
        for (name, path) in [
            (&self.access_name, "/"),
            (&self.refresh_name, &*self.refresh_path),
        ] {
            match self.attributes(path).clear_cookie(name) {
                Ok(value) => {
                    headers.append(header::SET_COOKIE, value);
                }
                Err(error) => tracing::error!(%error, "cannot clear an auth cookie"),
            }
        }
    }

    fn attributes(&self, path: &str) -> CookieAttributes {
        CookieAttributes::new()
            .path(path)
            .secure(self.secure)
            .same_site(self.same_site)
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn validation_table() {
        let cases = [
            (CookieTransport::new(), true),
            (CookieTransport::transparent(), true),
            (
                CookieTransport::new().refresh_cookie_name("__Host-refresh"),
                false,
            ),
            (CookieTransport::new().access_cookie_name("a b"), false),
            (CookieTransport::new().access_cookie_name(""), false),
            (
                CookieTransport::new().refresh_cookie_path("relative"),
                false,
            ),
            (CookieTransport::new().dangerous_insecure(), false),
            (
                CookieTransport::new()
                    .access_cookie_name("a")
                    .refresh_cookie_name("r")
                    .dangerous_insecure(),
                true,
            ),
            (
                CookieTransport::new()
                    .access_cookie_name("a")
                    .refresh_cookie_name("r")
                    .same_site(SameSite::None)
                    .dangerous_insecure(),
                false,
            ),
            (
                CookieTransport::new().refresh_cookie_name("__Host-access"),
                false,
            ),
            (
                CookieTransport::transparent()
                    .refresh_cookie_name("__Secure-r")
                    .refresh_cookie_path("/x"),
                false,
            ),
            // Prefixes are matched case-insensitively, as browsers do (RFC 6265bis §4.1.3).
            (
                CookieTransport::new().refresh_cookie_name("__host-refresh"),
                false,
            ),
            (
                CookieTransport::new().refresh_cookie_name("__HOST-refresh"),
                false,
            ),
            (
                CookieTransport::new()
                    .access_cookie_name("__secure-a")
                    .refresh_cookie_name("r")
                    .dangerous_insecure(),
                false,
            ),
        ];
        for (i, (cookies, ok)) in cases.into_iter().enumerate() {
            assert_eq!(cookies.validate().is_ok(), ok, "case {i}: {cookies:?}");
        }
    }

    #[test]
    fn planted_duplicates_are_ambiguous_never_first_wins() {
        // Issue: a sibling subdomain planted a second __Secure-refresh; the first one won and
        // swapped the victim into the attacker's session. Now neither is used.
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__Secure-refresh=attacker; __Secure-refresh=victim"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__Host-access=a; __Host-access=b"),
        );
        let cookies = CookieTransport::new();
        assert_eq!(cookies.refresh_token(&headers), None);
        assert_eq!(cookies.access_token(&headers), None);
        assert!(cookies.has_cookies(&headers), "still checked cross-site");
        let mut same = HeaderMap::new();
        same.append(
            header::COOKIE,
            HeaderValue::from_static("__Secure-refresh=r; __Secure-refresh=r"),
        );
        assert_eq!(cookies.refresh_token(&same), Some("r"));
    }

    #[test]
    fn finds_cookies_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-access=tok"),
        );
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("__Secure-refresh=\"r\""),
        );
        let cookies = CookieTransport::new();
        assert_eq!(cookies.access_token(&headers), Some("tok"));
        assert_eq!(cookies.refresh_token(&headers), Some("r"));
        assert!(cookies.has_cookies(&headers));
        assert!(!cookies.has_cookies(&HeaderMap::new()));
    }

    #[test]
    fn clearing_expires_both_cookies() {
        let mut headers = HeaderMap::new();
        CookieTransport::new().clear_cookies(&mut headers);
        let set: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
        assert_eq!(
            set,
            [
                "__Host-access=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "__Secure-refresh=; HttpOnly; SameSite=Lax; Secure; Path=/refresh; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
            ]
        );
    }
}
