//! Where a bearer token is read from: the `Authorization` header (RFC 6750 §2.1) and/or a named
//! cookie. Query parameters and form bodies (RFC 6750 §2.2, §2.3) are deliberately not
//! supported: URLs end up in logs and `Referer` headers (RFC 6750 §5.3).

use std::sync::Arc;

use http::HeaderMap;
use portcullis_core::{
    AuthRejection,
    credentials::{bearer_token, find_cookie},
};

/// The places a [`BearerLayer`](crate::BearerLayer) looks for a token, in order: the
/// `Authorization: Bearer` header (scheme case-insensitive, RFC 7235 §2.1), then the cookie.
///
/// # Examples
///
/// ```
/// use portcullis_jwt::TokenSources;
///
/// let header_only = TokenSources::authorization_header();
/// let both = TokenSources::authorization_header().cookie("__Host-access");
/// let cookie_only = TokenSources::none().cookie("__Host-access");
/// ```
#[derive(Debug, Clone)]
pub struct TokenSources {
    header: bool,
    cookie: Option<Arc<str>>,
}

impl Default for TokenSources {
    fn default() -> Self {
        Self::authorization_header()
    }
}

impl TokenSources {
    /// Only the `Authorization: Bearer` header (the default).
    pub fn authorization_header() -> Self {
        Self {
            header: true,
            cookie: None,
        }
    }

    /// No source yet; add one with [`TokenSources::cookie`].
    pub fn none() -> Self {
        Self {
            header: false,
            cookie: None,
        }
    }

    /// Also reads the token from the cookie `name` (when the header is absent).
    ///
    /// # Examples
    ///
    /// ```
    /// let sources = portcullis_jwt::TokenSources::none().cookie("__Host-access");
    /// ```
    #[must_use]
    pub fn cookie(mut self, name: impl Into<Arc<str>>) -> Self {
        self.cookie = Some(name.into());
        self
    }

    /// The token of a request, if it carries one.
    ///
    /// An `Authorization` header with another scheme (`Basic`, say) is not a bearer token and
    /// is ignored, so other layers may handle it. The header and cookie rules are the ones every
    /// portcullis layer shares ([`portcullis_core::credentials`]): a cookie sent several times
    /// with different values is ambiguous (cookie tossing) and makes the request anonymous.
    ///
    /// # Errors
    ///
    /// 400 `invalid_request` (RFC 6750 §3.1) for two `Authorization` headers, an empty or
    /// non-ASCII one, or a `Bearer` scheme without a well-formed token.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_jwt::TokenSources;
    /// let mut headers = http::HeaderMap::new();
    /// headers.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
    /// assert_eq!(TokenSources::authorization_header().find(&headers).unwrap(), Some("abc.def.ghi"));
    /// ```
    pub fn find<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AuthRejection> {
        Ok(self.locate(headers)?.map(|(token, _)| token))
    }

    /// Like [`TokenSources::find`], also saying where the token was found: a token from a
    /// cookie is sent by the browser on its own, so unsafe requests carrying it need the
    /// cross-site check (OWASP CSRF Prevention Cheat Sheet).
    ///
    /// # Errors
    ///
    /// As [`TokenSources::find`].
    pub fn locate<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<Option<(&'h str, TokenOrigin)>, AuthRejection> {
        if self.header
            && let Some(token) = bearer_token(headers)?
        {
            return Ok(Some((token, TokenOrigin::AuthorizationHeader)));
        }
        Ok(self
            .cookie
            .as_ref()
            .and_then(|name| find_cookie(headers, name).value())
            .map(|token| (token, TokenOrigin::Cookie)))
    }
}

/// Where a request's token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenOrigin {
    /// The `Authorization: Bearer` header: sent by script or client code, never by the
    /// browser on its own.
    AuthorizationHeader,
    /// A cookie: sent by the browser with every request, including cross-site ones.
    Cookie,
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, StatusCode};

    use super::*;

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn authorization_header_table() {
        let sources = TokenSources::authorization_header();
        let ok: &[(&[u8], Option<&str>)] = &[
            (b"Bearer a.b.c", Some("a.b.c")),
            (b"bearer a.b.c", Some("a.b.c")),
            (b"BEARER  a.b.c", Some("a.b.c")),
            (b"Basic dXNlcjpwYXNz", None),
            (b"Bearer abc==", Some("abc==")),
        ];
        for (value, expected) in ok {
            let map = headers(&[("authorization", value)]);
            let found = sources.find(&map).unwrap();
            assert_eq!(found, *expected, "{:?}", String::from_utf8_lossy(value));
        }
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer a,b",
            b"Bearer \xff",
            b"Bearer ===",
        ];
        for value in bad {
            let error = sources
                .find(&headers(&[("authorization", value)]))
                .unwrap_err();
            assert_eq!(
                error.status(),
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        let two = headers(&[
            ("authorization", b"Bearer a.b.c"),
            ("authorization", b"Bearer a.b.c"),
        ]);
        assert_eq!(
            sources.find(&two).unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(sources.find(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn cookie_table() {
        let sources = TokenSources::none().cookie("at");
        let map = headers(&[("cookie", b"x=1; at=a.b.c; y=2")]);
        let found = sources.find(&map).unwrap();
        assert_eq!(found, Some("a.b.c"));
        let split = headers(&[("cookie", b"x=1"), ("cookie", b"at=a.b.c")]);
        assert_eq!(sources.find(&split).unwrap(), Some("a.b.c"));
        assert_eq!(
            sources.find(&headers(&[("cookie", b"other=1")])).unwrap(),
            None
        );
        // Different values: one may be tossed from a sibling domain; anonymous, as in every
        // layer. The same value twice is one cookie.
        let twice = headers(&[("cookie", b"at=a.b.c; at=d.e.f")]);
        assert_eq!(sources.find(&twice).unwrap(), None);
        let same = headers(&[("cookie", b"at=a.b.c"), ("cookie", b"at=a.b.c")]);
        assert_eq!(sources.find(&same).unwrap(), Some("a.b.c"));
        assert_eq!(
            sources.locate(&same).unwrap(),
            Some(("a.b.c", TokenOrigin::Cookie))
        );
        // The header is not consulted when only the cookie is configured.
        assert_eq!(
            sources
                .find(&headers(&[("authorization", b"Bearer a.b.c")]))
                .unwrap(),
            None
        );
        let both = TokenSources::authorization_header().cookie("at");
        let map = headers(&[("authorization", b"Bearer h.h.h"), ("cookie", b"at=c.c.c")]);
        let found = both.find(&map).unwrap();
        assert_eq!(found, Some("h.h.h"));
    }
}
