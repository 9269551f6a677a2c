//! The operations contract of DESIGN.md, black-box on the binary: `GET /healthz`, `GET /readyz`
//! (following Redis when `REDIS_URL` is set), a clean exit on SIGTERM, and `--addr` / `PORTCULLIS_ADDR`.

use portcullis_tests::binary::check_operations;

const EXE: &str = env!("CARGO_BIN_EXE_hyper-plain");

#[test]
fn health_readiness_and_sigterm() {
    check_operations(EXE, &["--addr", "127.0.0.1:0"], &[]);
}

#[test]
fn addr_flag_and_variable() {
    use portcullis_tests::binary::RunningApp;
    let app = RunningApp::start(EXE, &["--addr", "127.0.0.1:0"], &[]);
    assert!(app.addr().starts_with("127.0.0.1:"), "{}", app.addr());
    assert_eq!(app.get("/healthz").status, 200);
    let app = RunningApp::start(EXE, &[], &[("PORTCULLIS_ADDR", "127.0.0.1:0")]);
    assert_eq!(app.get("/healthz").status, 200);
    // The flag wins over the variable.
    let app = RunningApp::start(EXE, &["--addr=127.0.0.1:0"], &[("PORTCULLIS_ADDR", "bad")]);
    assert_eq!(app.get("/healthz").status, 200);
    drop(app);
    for args in [&["--addr", "nowhere"][..], &["--port", "1"]] {
        let output = std::process::Command::new(EXE)
            .args(args)
            .env_remove("PORTCULLIS_ADDR")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        assert!(
            !String::from_utf8_lossy(&output.stderr).is_empty(),
            "{args:?}"
        );
    }
}
