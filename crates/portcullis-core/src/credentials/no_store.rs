//! `Cache-Control: no-store` for responses that depend on who asked.

use http::{HeaderMap, HeaderValue, header};

/// Adds `Cache-Control: no-store` unless the handler already chose a `Cache-Control`.
///
/// Every layer calls this on the response of a request whose caller it identified: a page
/// rendered for one user must not be served to the next from a shared cache (OWASP Session
/// Management Cheat Sheet, "Web Content Caching"; RFC 9111 §5.2.2.5).
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, header::CACHE_CONTROL};
/// use portcullis_core::credentials::add_no_store;
///
/// let mut headers = HeaderMap::new();
/// add_no_store(&mut headers);
/// assert_eq!(headers[CACHE_CONTROL], "no-store");
///
/// let mut chosen = HeaderMap::new();
/// chosen.insert(CACHE_CONTROL, "private, max-age=60".parse().unwrap());
/// add_no_store(&mut chosen);
/// assert_eq!(chosen[CACHE_CONTROL], "private, max-age=60");
/// ```
pub fn add_no_store(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
