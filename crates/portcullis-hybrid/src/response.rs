//! The answers of the protocol's endpoints: JSON or empty, never cached.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

/// The response of every endpoint: a small JSON body, or none.
pub type EndpointResponse = Response<Full<Bytes>>;

/// A JSON answer that no cache keeps (RFC 6749 §5.1 for token responses; OWASP Session
/// Management Cheat Sheet, "Web Content Caching").
pub(crate) fn json(status: StatusCode, body: String) -> EndpointResponse {
    let mut response = empty(status);
    *response.body_mut() = Full::new(Bytes::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn empty(status: StatusCode) -> EndpointResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
