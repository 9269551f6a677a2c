//! The operations contract of DESIGN.md, black-box on the binary: `GET /healthz`, `GET /readyz`
//! (following Redis when `REDIS_URL` is set), a clean exit on SIGTERM.

use portcullis_tests::binary::{check_operations, check_readiness_follows_redis};

const EXE: &str = env!("CARGO_BIN_EXE_hybrid-app");

#[test]
fn health_readiness_and_sigterm() {
    check_operations(EXE, &["--addr", "127.0.0.1:0"], &[]);
}

#[test]
fn readiness_follows_redis() {
    check_readiness_follows_redis(EXE, &["--addr", "127.0.0.1:0"], &[]);
}
