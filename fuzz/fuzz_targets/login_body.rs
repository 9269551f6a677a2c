//! Arbitrary login bodies and content types through `Credentials::parse`, the one login parser
//! of every app: no panic; what it accepts is within the limits (and has no control character
//! in the username); what it refuses is a 400 `invalid_request` with a reason.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use portcullis_core::Credentials;

const TYPES: [&str; 4] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "Application/Vnd.Login+JSON",
];

fuzz_target!(|data: &[u8]| {
    // First byte: which content type (0..=3 from the list, 4..=7 the next up-to-32 bytes as a
    // raw header value, anything else none); the remainder is the body.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut headers = HeaderMap::new();
    let body = match selector {
        0..=3 => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(TYPES[usize::from(selector)]),
            );
            rest
        }
        4..=7 => {
            let (value, body) = rest.split_at(rest.len().min(32));
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(header::CONTENT_TYPE, value);
            }
            body
        }
        _ => rest,
    };
    match Credentials::parse(&headers, body) {
        Ok(credentials) => {
            assert!(body.len() <= Credentials::MAX_BODY_LEN);
            assert!(credentials.username.len() <= 256);
            assert!(!credentials.username.chars().any(char::is_control));
            assert!(credentials.password.len() <= 1024);
            assert!(credentials.client.is_none());
        }
        Err(rejection) => {
            assert_eq!(rejection.error_code(), "invalid_request");
            assert_eq!(rejection.status(), 400);
            assert!(!rejection.client_description().is_empty());
        }
    }
});
