//! Arbitrary `Authorization` and `Cookie` headers through `TokenSources::find`: no panic, and a
//! token it returns is a non-empty slice of one of the headers, without spaces.
#![no_main]

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use portcullis_jwt::TokenSources;

fuzz_target!(|data: &[u8]| {
    // First byte: how many bytes of the rest are the Authorization header; the remainder is
    // the Cookie header. Bit 7: send the Authorization header twice.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let twice = split & 0x80 != 0;
    let split = usize::from(split & 0x7f).min(rest.len());
    let (authorization, cookie) = rest.split_at(split);
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        headers.append(header::AUTHORIZATION, value.clone());
        if twice {
            headers.append(header::AUTHORIZATION, value);
        }
    }
    if let Ok(value) = HeaderValue::from_bytes(cookie) {
        headers.append(header::COOKIE, value);
    }
    for sources in [
        TokenSources::authorization_header(),
        TokenSources::none().cookie("__Host-access"),
        TokenSources::authorization_header().cookie("access"),
    ] {
        if let Ok(Some(token)) = sources.find(&headers) {
            assert!(!token.is_empty());
            assert!(!token.contains(' '), "{token:?}");
            assert!(
                headers.values().any(|value| value
                    .as_bytes()
                    .windows(token.len())
                    .any(|w| w == token.as_bytes())),
                "a token that is in no header: {token:?}"
            );
        }
    }
});
