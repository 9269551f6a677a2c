//! Reading the session cookie from `Cookie` headers and writing `Set-Cookie` values, by hand:
//! the layer needs one cookie out of the header, so a full cookie jar would be wasted work on
//! every request.

use http::{HeaderMap, HeaderValue, header};

/// What the request's `Cookie` headers say about the session cookie.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Presented<'a> {
    /// No session cookie.
    Absent,
    /// Exactly one value (possibly presented several times).
    One(&'a str),
    /// Several different values: a sign of cookie tossing from a sibling domain
    /// (RFC 6265bis §8.5); none of them is trusted.
    Ambiguous,
    /// A cookie header that is not valid text.
    Garbled,
}

/// Finds the cookie `name` in the request's `Cookie` headers (RFC 6265bis §5.7.4: pairs
/// separated by `;`, names compared case-sensitively, values optionally in double quotes).
pub(crate) fn find<'a>(headers: &'a HeaderMap, name: &str) -> Presented<'a> {
    let mut found = Presented::Absent;
    for value in headers.get_all(header::COOKIE) {
        let Ok(text) = value.to_str() else {
            // Only flag it when our cookie is in the garbled header.
            if contains(value.as_bytes(), name.as_bytes()) {
                return Presented::Garbled;
            }
            continue;
        };
        for pair in text.split(';') {
            let pair = pair.trim_matches(|c| c == ' ' || c == '\t');
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            if key.trim_end() != name {
                continue;
            }
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            found = match found {
                Presented::Absent => Presented::One(value),
                Presented::One(previous) if previous == value => Presented::One(value),
                _ => Presented::Ambiguous,
            };
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// The largest cookie browsers are sure to keep, name, value and attributes together
/// (RFC 6265 §6.1: "at least 4096 bytes per cookie").
pub(crate) const MAX_COOKIE_BYTES: usize = 4096;

/// The length of the cookie [`set_cookie`] writes.
pub(crate) fn cookie_len(name: &str, value: &str, attributes: &str, max_age: Option<u64>) -> usize {
    let max_age = max_age.map_or(0, |age| "; Max-Age=".len() + age.to_string().len());
    name.len() + 1 + value.len() + attributes.len() + max_age
}

/// `name=value; Path=/; ...; Max-Age=N`; `None` for a cookie over [`MAX_COOKIE_BYTES`], which
/// a browser would drop (the layer refuses such a configuration when it is built).
pub(crate) fn set_cookie(
    name: &str,
    value: &str,
    attributes: &str,
    max_age: Option<u64>,
) -> Option<HeaderValue> {
    if cookie_len(name, value, attributes, max_age) > MAX_COOKIE_BYTES {
        return None;
    }
    let mut cookie = String::with_capacity(name.len() + value.len() + attributes.len() + 24);
    cookie.push_str(name);
    cookie.push('=');
    cookie.push_str(value);
    cookie.push_str(attributes);
    if let Some(max_age) = max_age {
        cookie.push_str("; Max-Age=");
        cookie.push_str(&max_age.to_string());
    }
    HeaderValue::from_str(&cookie).ok()
}

/// The cookie that makes browsers drop the session cookie: same name, Path, Domain and Secure
/// (RFC 6265bis §5.7: a `__Host-` cookie is only replaced by one with the same attributes),
/// empty value, `Max-Age=0` and an `Expires` in the past for older clients.
pub(crate) fn clear_cookie(name: &str, attributes: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={attributes}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
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
        let name = "__Host-session";
        let cases: &[(&[&[u8]], Presented<'_>)] = &[
            (&[], Presented::Absent),
            (&[b"other=1"], Presented::Absent),
            (&[b"__Host-session=abc"], Presented::One("abc")),
            (&[b"a=1; __Host-session=abc; b=2"], Presented::One("abc")),
            (&[b"a=1;__Host-session=abc"], Presented::One("abc")),
            (&[b"__Host-session=\"abc\""], Presented::One("abc")),
            (&[b"__host-session=abc"], Presented::Absent),
            (&[b"x__Host-session=abc"], Presented::Absent),
            (
                &[b"__Host-session=abc", b"__Host-session=abc"],
                Presented::One("abc"),
            ),
            (
                &[b"__Host-session=abc; __Host-session=def"],
                Presented::Ambiguous,
            ),
            (&[b"a=1", b"__Host-session=abc"], Presented::One("abc")),
            (&[b"__Host-session="], Presented::One("")),
            (&[b"__Host-session=\xff\xfe"], Presented::Garbled),
            (
                &[b"other=\xff", b"__Host-session=abc"],
                Presented::One("abc"),
            ),
        ];
        for (values, expected) in cases {
            assert_eq!(&find(&headers(values), name), expected, "{values:?}");
        }
    }

    #[test]
    fn cookies_over_the_browser_limit_are_not_written() {
        let value = "v".repeat(43);
        for (attributes, fits) in [
            ("; Path=/", true),
            (&*format!("; Path=/{}", "p".repeat(4096)), false),
        ] {
            let cookie = set_cookie("s", &value, attributes, Some(60));
            assert_eq!(cookie.is_some(), fits);
            if let Some(cookie) = cookie {
                assert_eq!(cookie.len(), cookie_len("s", &value, attributes, Some(60)));
            }
        }
    }

    #[test]
    fn set_and_clear() {
        let attributes = "; Path=/; HttpOnly; Secure; SameSite=Lax";
        assert_eq!(
            set_cookie("__Host-session", "abc", attributes, None).unwrap(),
            "__Host-session=abc; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(
            set_cookie("s", "abc", "; Path=/", Some(60)).unwrap(),
            "s=abc; Path=/; Max-Age=60"
        );
        assert_eq!(
            clear_cookie("__Host-session", attributes).unwrap(),
            "__Host-session=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }
}
