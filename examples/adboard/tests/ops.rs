//! The operations contract of DESIGN.md, black-box on the binary: `GET /healthz`, `GET /readyz`
//! (following Redis when `REDIS_URL` is set), a clean exit on SIGTERM, in every mode.

use portcullis_tests::binary::{check_operations, check_readiness_follows_redis};

const EXE: &str = env!("CARGO_BIN_EXE_adboard");

#[test]
fn health_readiness_and_sigterm_in_every_mode() {
    for mode in ["session", "jwt", "hybrid"] {
        check_operations(EXE, &["--mode", mode, "--addr", "127.0.0.1:0"], &[]);
    }
}

#[test]
fn readiness_follows_redis_in_session_and_hybrid_modes() {
    for mode in ["session", "hybrid"] {
        check_readiness_follows_redis(EXE, &["--mode", mode, "--addr", "127.0.0.1:0"], &[]);
    }
}
