//! What the facade's features pull in (issue 16): an application using only the session layer
//! with Redis, over TLS or not, compiles no JWT code, no aws-lc-rs and no HTTP client. Checked
//! on the resolved dependency graph (`cargo tree`, offline: no build, no network).

use std::process::Command;

/// The packages `portcullis` depends on (normal dependencies) with `features`.
fn dependencies(features: &str) -> Vec<String> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "--manifest-path", manifest])
        .args([
            "-p",
            "portcullis",
            "--no-default-features",
            "--features",
            features,
        ])
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect()
}

const HEAVY: [&str; 6] = [
    "portcullis-jwt",
    "portcullis-hybrid",
    "jsonwebtoken",
    "aws-lc-rs",
    "aws-lc-sys",
    "reqwest",
];

#[test]
fn a_session_only_redis_user_compiles_no_jwt_aws_lc_or_http_client() {
    for features in [
        "session,redis",
        "session,redis,axum",
        "session,redis-tls,axum",
    ] {
        let packages = dependencies(features);
        for wanted in ["portcullis-session", "portcullis-redis", "redis"] {
            assert!(
                packages.iter().any(|p| p == wanted),
                "{features}: no {wanted}"
            );
        }
        for heavy in HEAVY {
            assert!(
                !packages.iter().any(|p| p == heavy),
                "{features} pulls in {heavy}"
            );
        }
    }
    // TLS comes with rustls on ring, and only when asked for.
    assert!(
        dependencies("session,redis-tls")
            .iter()
            .any(|p| p == "ring")
    );
    assert!(!dependencies("session,redis").iter().any(|p| p == "rustls"));
    // The hybrid layer does need the JWT crates: the check above is not vacuous.
    let hybrid = dependencies("hybrid,redis");
    assert!(hybrid.iter().any(|p| p == "portcullis-jwt"));
}
