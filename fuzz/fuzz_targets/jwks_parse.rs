//! Arbitrary JSON through `KeySet::from_jwks_json` and `KeySet::from_jwk_json`: no panic, and a
//! key set parsed from hostile JSON verifies nothing we did not sign with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_jwt::{KeySet, TokenVerifier, Validation};

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    for keys in [KeySet::from_jwks_json(json), KeySet::from_jwk_json(json)]
        .into_iter()
        .flatten()
    {
        let _ = keys.len();
        // An unsigned token and one signed with nothing: never accepted by any key set.
        let verifier = TokenVerifier::new(keys, Validation::new());
        for token in [
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.AAAA",
        ] {
            assert!(verifier.verify_now(token).is_err());
        }
    }
});
