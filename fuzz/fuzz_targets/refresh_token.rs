//! Arbitrary strings through `RefreshToken::parse`: no panic, bounded length, and an accepted
//! token has one spelling.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_hybrid::{MAX_REFRESH_TOKEN_LEN, RefreshToken};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(token) = RefreshToken::parse(text) {
        assert!(text.len() <= MAX_REFRESH_TOKEN_LEN);
        assert_eq!(token.expose(), text);
        assert!(token.session_id().len() >= 8);
    }
});
