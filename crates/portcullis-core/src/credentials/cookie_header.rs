//! Reading one cookie out of a request's `Cookie` headers, parsed pair by pair with the
//! `cookie` crate (the one `tower-cookies` is built on).

use cookie::Cookie;
use http::{HeaderMap, header};

/// What a request's `Cookie` headers say about one cookie name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresentedCookie<'a> {
    /// No usable cookie of that name.
    Absent,
    /// Exactly one value (possibly sent several times).
    One(&'a str),
    /// Several different values: a sibling domain may have planted one (cookie tossing,
    /// RFC 6265bis §8.5). None is trusted, and a layer must not answer with a clearing
    /// `Set-Cookie`: that would delete the victim's real cookie, which the attacker could not.
    Ambiguous,
}

impl<'a> PresentedCookie<'a> {
    /// The value when exactly one was presented.
    pub fn value(self) -> Option<&'a str> {
        match self {
            Self::One(value) => Some(value),
            _ => None,
        }
    }

    /// Whether any usable cookie of that name was presented.
    pub fn is_present(self) -> bool {
        self != Self::Absent
    }
}

/// Finds the cookie `name` in every `Cookie` header of a request.
///
/// Names are compared case-sensitively (RFC 6265bis §5.7.4); a value in double quotes is
/// unquoted. Pairs that are not valid UTF-8, or whose value holds characters outside RFC 6265's
/// `cookie-octet` (a non-ASCII cookie tossed from a sibling domain, say), and empty values are
/// skipped on their own: they neither hide nor clear a valid cookie next to them.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::COOKIE};
/// use portcullis_core::credentials::{PresentedCookie, find_cookie};
///
/// let mut headers = HeaderMap::new();
/// headers.append(COOKIE, HeaderValue::from_static("theme=dark; __Host-session=abc"));
/// assert_eq!(find_cookie(&headers, "__Host-session"), PresentedCookie::One("abc"));
///
/// headers.append(COOKIE, HeaderValue::from_static("__Host-session=planted"));
/// assert_eq!(find_cookie(&headers, "__Host-session"), PresentedCookie::Ambiguous);
/// ```
pub fn find_cookie<'a>(headers: &'a HeaderMap, name: &str) -> PresentedCookie<'a> {
    let mut found = PresentedCookie::Absent;
    for header in headers.get_all(header::COOKIE) {
        // Split on bytes first, so one undecodable pair does not hide the others.
        for pair in header.as_bytes().split(|&b| b == b';') {
            let Some(value) = value_of(pair, name) else {
                continue;
            };
            found = match found {
                PresentedCookie::Absent => PresentedCookie::One(value),
                PresentedCookie::One(previous) if previous == value => found,
                _ => return PresentedCookie::Ambiguous,
            };
        }
    }
    found
}

/// The value of `pair` if it is a well-formed, non-empty cookie named `name`.
fn value_of<'a>(pair: &'a [u8], name: &str) -> Option<&'a str> {
    let pair = std::str::from_utf8(pair).ok()?;
    // A cheap test before the parser: most pairs of a Cookie header are someone else's.
    if !pair.trim_start().starts_with(name) {
        return None;
    }
    let cookie = Cookie::parse(pair).ok()?;
    if cookie.name_raw()? != name {
        return None;
    }
    let raw = cookie.value_raw()?;
    let value = raw
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(raw);
    (!value.is_empty() && value.bytes().all(is_cookie_octet)).then_some(value)
}

/// RFC 6265 §4.1.1 `cookie-octet`: visible ASCII except `"`, `,`, `;` and `\`.
fn is_cookie_octet(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(header::COOKIE, HeaderValue::from_bytes(value).unwrap());
        }
        map
    }

    #[test]
    fn table() {
        use PresentedCookie::{Absent, Ambiguous, One};
        let name = "__Host-session";
        let cases: &[(&[&[u8]], PresentedCookie<'_>)] = &[
            (&[], Absent),
            (&[b"other=1"], Absent),
            (&[b"__Host-session=abc"], One("abc")),
            (&[b"a=1; __Host-session=abc; b=2"], One("abc")),
            (&[b"a=1;__Host-session=abc"], One("abc")),
            (&[b"  __Host-session = abc "], One("abc")),
            (&[b"__Host-session=\"abc\""], One("abc")),
            (&[b"__host-session=abc"], Absent),
            (&[b"x__Host-session=abc"], Absent),
            (&[b"__Host-sessionx=abc"], Absent),
            (&[b"__Host-session=abc", b"__Host-session=abc"], One("abc")),
            (&[b"__Host-session=abc; __Host-session=\"abc\""], One("abc")),
            (&[b"__Host-session=abc; __Host-session=def"], Ambiguous),
            (&[b"__Host-session=abc", b"__Host-session=def"], Ambiguous),
            (&[b"a=1", b"__Host-session=abc"], One("abc")),
            (&[b"__Host-session="], Absent),
            (&[b"__Host-session=; __Host-session=abc"], One("abc")),
            (&[b"__Host-session"], Absent),
            (&[b"=abc"], Absent),
            // Undecodable or non-cookie-octet pairs are skipped, never ambiguous.
            (&[b"__Host-session=\xff\xfe"], Absent),
            (&[b"__Host-session=\xff; __Host-session=abc"], One("abc")),
            (
                &[b"__Host-session=abc; __Host-session=caf\xc3\xa9"],
                One("abc"),
            ),
            (&[b"__Host-session=a\\b; __Host-session=abc"], One("abc")),
            (&[b"other=\xff", b"__Host-session=abc"], One("abc")),
            (&[b"other=\xff; __Host-session=abc"], One("abc")),
        ];
        for (values, expected) in cases {
            let map = headers(values);
            assert_eq!(find_cookie(&map, name), *expected, "{values:?}");
        }
    }

    #[test]
    fn accessors() {
        assert_eq!(PresentedCookie::One("a").value(), Some("a"));
        assert_eq!(PresentedCookie::Ambiguous.value(), None);
        assert!(PresentedCookie::Ambiguous.is_present());
        assert!(!PresentedCookie::Absent.is_present());
    }
}
