//! The `Authorization: Bearer` header (RFC 6750 §2.1), parsed once for every layer.

use http::{HeaderMap, header};

use crate::AuthRejection;

/// The largest `Authorization` header a layer reads; larger ones are refused before any
/// parsing (RFC 8725 §3.1 asks for input bounds before cryptographic work).
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// The bearer token of a request's `Authorization` header.
///
/// - no `Authorization` header, or another scheme (`Basic`, say): `Ok(None)`, anonymous, so
///   another layer may handle it;
/// - `Bearer <b64token>` (scheme case-insensitive, RFC 7235 §2.1): the token;
/// - two `Authorization` headers, an empty one, `Bearer` without a token, extra parts,
///   characters outside RFC 6750's `b64token`, or more than [`MAX_AUTHORIZATION_BYTES`]:
///   400 `invalid_request` (RFC 6750 §3.1).
///
/// # Errors
///
/// The 400 [`AuthRejection`] above, without a challenge: the layer adds its realm.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, StatusCode, header::AUTHORIZATION};
/// use portcullis_core::credentials::bearer_token;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(bearer_token(&headers).unwrap(), None);
/// headers.insert(AUTHORIZATION, "bearer abc.def.ghi".parse().unwrap());
/// assert_eq!(bearer_token(&headers).unwrap(), Some("abc.def.ghi"));
/// headers.insert(AUTHORIZATION, "Bearer a b".parse().unwrap());
/// assert_eq!(bearer_token(&headers).unwrap_err().status(), StatusCode::BAD_REQUEST);
/// ```
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, AuthRejection> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthRejection::invalid_request(
            "more than one Authorization header",
        ));
    }
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return Err(AuthRejection::invalid_request(
            "the Authorization header is too large",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AuthRejection::invalid_request("the Authorization header is not ASCII"))?
        .trim_matches(' ');
    if value.is_empty() {
        return Err(AuthRejection::invalid_request(
            "the Authorization header is empty",
        ));
    }
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = rest.trim_start_matches(' ');
    if !is_b64token(token) {
        return Err(AuthRejection::invalid_request(
            "the Authorization header does not hold a bearer token",
        ));
    }
    Ok(Some(token))
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub(crate) fn is_b64token(token: &str) -> bool {
    let padding = token.bytes().rev().take_while(|&b| b == b'=').count();
    let body = token
        .as_bytes()
        .get(..token.len() - padding)
        .unwrap_or_default();
    // No early exit and no branch per byte: the check vectorizes (every bearer request runs it
    // over a 200-400 byte token).
    !body.is_empty() && body.iter().fold(true, |ok, &b| ok & is_b64token_byte(b))
}

/// ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/", with non-short-circuit operators.
fn is_b64token_byte(b: u8) -> bool {
    (b.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'A') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
        | (b == b'+')
        | (b == b'/')
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, StatusCode};

    use super::*;

    #[test]
    fn the_b64token_set_is_exactly_rfc_6750s() {
        for b in 0..=255u8 {
            let expected =
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
            assert_eq!(is_b64token_byte(b), expected, "byte {b}");
        }
        assert!(is_b64token("abc.DEF-_~+/=="));
        assert!(!is_b64token("=="));
        assert!(!is_b64token("a=b"));
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                header::AUTHORIZATION,
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn table() {
        let ok: &[(&[&[u8]], Option<&str>)] = &[
            (&[], None),
            (&[b"Bearer a.b.c"], Some("a.b.c")),
            (&[b"bearer a.b.c"], Some("a.b.c")),
            (&[b"BEARER  a.b.c"], Some("a.b.c")),
            (&[b"Bearer abc=="], Some("abc==")),
            (&[b"Basic dXNlcjpwYXNz"], None),
            (&[b"Basic"], None),
            (&[b"Negotiate a b c"], None),
        ];
        for (values, expected) in ok {
            assert_eq!(
                bearer_token(&headers(values)).unwrap(),
                *expected,
                "{values:?}"
            );
        }
        let long = format!("Bearer {}", "a".repeat(MAX_AUTHORIZATION_BYTES));
        let bad: &[&[&[u8]]] = &[
            &[b""],
            &[b"   "],
            &[b"Bearer"],
            &[b"Bearer "],
            &[b"Bearer a b"],
            &[b"Bearer a,b"],
            &[b"Bearer \xff"],
            &[b"Bearer \t"],
            &[b"Bearer ==="],
            &[b"Bearer a.b.c", b"Bearer a.b.c"],
            &[b"Basic x", b"Bearer a.b.c"],
            &[long.as_bytes()],
        ];
        for values in bad {
            let error = bearer_token(&headers(values)).unwrap_err();
            assert_eq!(error.status(), StatusCode::BAD_REQUEST, "{values:?}");
        }
    }
}
