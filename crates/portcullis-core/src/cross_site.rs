//! The cross-site request check that cookie-authenticated layers apply to unsafe methods.
//!
//! Browsers attach cookies to requests that other sites trigger, so an unsafe request (POST,
//! PUT, PATCH, DELETE) that a cookie authenticates must prove it came from this site. The check
//! follows the OWASP CSRF Prevention Cheat Sheet ("Fetch Metadata headers" and "Verifying Origin
//! with standard headers"): `Sec-Fetch-Site` when the browser sends it, else `Origin` against the
//! request's host. Requests with neither header come from non-browser clients, which carry no
//! ambient cookies from another site, and pass.

use std::sync::Arc;

use http::{HeaderMap, Method, Request, header};

use crate::AuthRejection;

/// Checks that an unsafe, cookie-authenticated request comes from this site or a trusted origin.
///
/// # Examples
///
/// ```
/// use portcullis_core::CrossSiteCheck;
///
/// let check = CrossSiteCheck::new().trust_origin("https://app.example.com").unwrap();
/// let from_evil = http::Request::post("/transfer")
///     .header("sec-fetch-site", "cross-site")
///     .header("origin", "https://evil.example")
///     .body(())
///     .unwrap();
/// assert!(check.check(&from_evil).is_err());
/// let from_app = http::Request::post("/transfer")
///     .header("sec-fetch-site", "same-site")
///     .header("origin", "https://app.example.com")
///     .body(())
///     .unwrap();
/// assert!(check.check(&from_app).is_ok());
/// ```
#[derive(Debug, Clone, Default)]
pub struct CrossSiteCheck {
    trusted_origins: Arc<[String]>,
}

/// A trusted origin that is not of the form `scheme://host[:port]`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid trusted origin {origin:?}: expected scheme://host[:port] with no path")]
pub struct InvalidOrigin {
    origin: String,
}

impl CrossSiteCheck {
    /// A check that trusts only the request's own origin.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether this check admits origins besides the request's own
    /// ([`trust_origin`](Self::trust_origin)). Layers configured with such a check leave a copy
    /// in the request's extensions, where [`Credentials`](crate::Credentials) finds it, so a
    /// login from a trusted front-end passes there as it passes the layer.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::CrossSiteCheck;
    ///
    /// assert!(!CrossSiteCheck::new().trusts_other_origins());
    /// let check = CrossSiteCheck::new().trust_origin("https://admin.example.com").unwrap();
    /// assert!(check.trusts_other_origins());
    /// ```
    pub fn trusts_other_origins(&self) -> bool {
        !self.trusted_origins.is_empty()
    }

    /// Also admits requests from `origin` (`https://admin.example.com`), such as a separate
    /// front-end on another subdomain.
    ///
    /// # Errors
    ///
    /// When `origin` is not `scheme://host[:port]`.
    ///
    /// # Security
    ///
    /// Every trusted origin can make authenticated unsafe requests on behalf of signed-in users.
    pub fn trust_origin(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        let invalid = || InvalidOrigin {
            origin: origin.to_owned(),
        };
        let (scheme, rest) = origin.split_once("://").ok_or_else(invalid)?;
        let well_formed = matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && !rest.contains(['/', '?', '#', '@', ' '])
            && rest.parse::<http::uri::Authority>().is_ok();
        if !well_formed {
            return Err(invalid());
        }
        let mut origins = self.trusted_origins.to_vec();
        origins.push(origin.to_ascii_lowercase());
        self.trusted_origins = origins.into();
        Ok(self)
    }

    /// Admits safe methods, same-origin requests, trusted origins and requests without browser
    /// headers; refuses the rest with 403.
    ///
    /// A WebSocket handshake is a `GET`, but it opens a channel that acts as the user, and
    /// browsers let any site open one with the user's cookies: it is checked like an unsafe
    /// request (cross-site WebSocket hijacking; OWASP WebSocket Security Cheat Sheet, RFC 6455
    /// §10.2 asks servers to check `Origin`).
    ///
    /// # Errors
    ///
    /// 403 `cross_site_request` for an unsafe request from another site.
    pub fn check<B>(&self, request: &Request<B>) -> Result<(), AuthRejection> {
        if is_safe(request.method()) && !is_websocket_upgrade(request.headers()) {
            return Ok(());
        }
        let headers = request.headers();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        self.check_headers(headers, host)
    }

    fn check_headers(&self, headers: &HeaderMap, host: Option<&str>) -> Result<(), AuthRejection> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let origin = match (origins.next(), origins.next()) {
            (Some(_), Some(_)) => return Err(refuse("more than one Origin header")),
            (origin, _) => origin.map(|o| o.to_str().unwrap_or("null")),
        };
        if origin.is_some_and(|origin| {
            self.trusted_origins
                .iter()
                .any(|trusted| trusted.eq_ignore_ascii_case(origin))
        }) {
            return Ok(());
        }
        if let Some(site) = headers.get("sec-fetch-site") {
            // "none" is a user-initiated navigation (bookmark, typed URL).
            return match site.as_bytes() {
                b"same-origin" | b"none" => Ok(()),
                _ => Err(refuse("the request came from another site")),
            };
        }
        match origin {
            None => Ok(()),
            Some(origin) => {
                let authority = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"));
                match (authority, host) {
                    (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => Ok(()),
                    _ => Err(refuse("the request's Origin is not this site")),
                }
            }
        }
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// `Upgrade: websocket` (RFC 6455 §4.1; the token is case-insensitive, the header a list).
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("websocket"))
}

fn refuse(why: &'static str) -> AuthRejection {
    AuthRejection::cross_site(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder()
            .method(method)
            .uri("/x")
            .header("host", "app.test:3000");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);

    #[test]
    fn table() {
        let check = CrossSiteCheck::new()
            .trust_origin("https://admin.test")
            .unwrap();
        let cases: &[Case<'_>] = &[
            ("GET", &[("sec-fetch-site", "cross-site")], true),
            // A WebSocket handshake acts as the user: checked like an unsafe request.
            (
                "GET",
                &[("upgrade", "websocket"), ("origin", "https://evil.test")],
                false,
            ),
            (
                "GET",
                &[("upgrade", "WebSocket"), ("sec-fetch-site", "cross-site")],
                false,
            ),
            (
                "GET",
                &[
                    ("upgrade", "h2c, websocket"),
                    ("sec-fetch-site", "same-site"),
                ],
                false,
            ),
            (
                "GET",
                &[("upgrade", "websocket"), ("origin", "http://app.test:3000")],
                true,
            ),
            (
                "GET",
                &[("upgrade", "websocket"), ("origin", "https://admin.test")],
                true,
            ),
            ("GET", &[("upgrade", "websocket")], true),
            (
                "GET",
                &[("upgrade", "h2c"), ("origin", "https://evil.test")],
                true,
            ),
            ("HEAD", &[("origin", "https://evil.test")], true),
            ("POST", &[], true),
            ("POST", &[("sec-fetch-site", "same-origin")], true),
            ("POST", &[("sec-fetch-site", "none")], true),
            ("POST", &[("sec-fetch-site", "cross-site")], false),
            ("POST", &[("sec-fetch-site", "same-site")], false),
            (
                "DELETE",
                &[
                    ("sec-fetch-site", "cross-site"),
                    ("origin", "https://admin.test"),
                ],
                true,
            ),
            ("PUT", &[("origin", "http://app.test:3000")], true),
            ("PUT", &[("origin", "http://APP.test:3000")], true),
            ("PATCH", &[("origin", "http://app.test:3001")], false),
            ("POST", &[("origin", "null")], false),
            ("POST", &[("origin", "https://evil.test")], false),
            (
                "POST",
                &[
                    ("origin", "http://app.test:3000"),
                    ("origin", "http://app.test:3000"),
                ],
                false,
            ),
            (
                "POST",
                &[
                    ("sec-fetch-site", "same-origin"),
                    ("origin", "https://evil.test"),
                ],
                true,
            ),
        ];
        for (method, headers, ok) in cases {
            let result = check.check(&request(method, headers));
            assert_eq!(result.is_ok(), *ok, "{method} {headers:?}");
            if let Err(rejection) = result {
                assert_eq!(rejection.status(), http::StatusCode::FORBIDDEN);
            }
        }
    }

    #[test]
    fn trusted_origins_must_be_origins() {
        for bad in [
            "admin.test",
            "https://",
            "https://a.test/path",
            "ftp://a.test",
            "https://u@a.test",
        ] {
            assert!(CrossSiteCheck::new().trust_origin(bad).is_err(), "{bad}");
        }
        assert!(
            CrossSiteCheck::new()
                .trust_origin("http://localhost:8080")
                .is_ok()
        );
    }
}
