//! [`body_format`]: what a credential body (a login, a refresh token) is written in, from its
//! `Content-Type`, so every endpoint that reads one accepts and refuses the same headers.

use http::{HeaderMap, header};

use crate::AuthRejection;

/// A credential body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/json`, or any `application/*+json` (RFC 6839 §3.1).
    Json,
    /// `application/x-www-form-urlencoded`, what an HTML form posts.
    Form,
}

/// The format of a body sent with `headers`: the media type without parameters, compared
/// case-insensitively (RFC 9110 §8.3.1).
///
/// # Errors
///
/// 400 `invalid_request` for no `Content-Type`, two of them, or another media type.
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use portcullis_core::credentials::{BodyFormat, body_format};
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("Application/JSON; charset=utf-8"));
/// assert_eq!(body_format(&headers).unwrap(), BodyFormat::Json);
/// headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
/// assert!(body_format(&headers).is_err());
/// ```
pub fn body_format(headers: &HeaderMap) -> Result<BodyFormat, AuthRejection> {
    let unreadable = || {
        AuthRejection::invalid_request(
            "send the body as application/json or application/x-www-form-urlencoded",
        )
    };
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let value = values.next().ok_or_else(unreadable)?;
    if values.next().is_some() {
        return Err(AuthRejection::invalid_request("two Content-Type headers"));
    }
    let value = value.to_str().map_err(|_| unreadable())?;
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        Ok(BodyFormat::Json)
    } else if essence == "application/x-www-form-urlencoded" {
        Ok(BodyFormat::Form)
    } else {
        Err(unreadable())
    }
}
