//! `GET /metrics` on the built binary, black-box: after a login, a refused request and an
//! authenticated one, the Prometheus text holds the named series.

use portcullis_tests::binary::RunningApp;
use reqwest::{Client, StatusCode, header};

/// The value of the first sample line that starts with `series` (name and labels as given).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

#[tokio::test]
async fn metrics_count_logins_refusals_and_time_the_session_lookup() {
    let app = RunningApp::start(
        env!("CARGO_BIN_EXE_session-app"),
        &["--addr", "127.0.0.1:0"],
        &[],
    );
    let base = format!("http://{}", app.addr());
    let client = Client::new();

    let login = client
        .post(format!("{base}/login"))
        .json(&serde_json::json!({"username": "alice", "password": "alice-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let set_cookie = login.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let refused = client.get(format!("{base}/admin")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let me = client
        .get(format!("{base}/me"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);

    let scrape = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let content_type = scrape.headers()[header::CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let metrics = scrape.text().await.unwrap();
    assert_eq!(
        sample(&metrics, r#"portcullis_logins_total{mechanism="session"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            r#"portcullis_rejections_total{reason="unauthorized",status="401"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    let lookups = sample(
        &metrics,
        r#"portcullis_auth_duration_seconds_count{mechanism="session",outcome="authenticated"}"#,
    );
    assert!(lookups.is_some_and(|count| count >= 1.0), "{metrics}");
    assert!(
        metrics.contains("portcullis_auth_duration_seconds_bucket{"),
        "{metrics}"
    );
    // Counts and labels only: no session ID in the exposition.
    let session_id = cookie.split_once('=').unwrap().1;
    assert!(!metrics.contains(session_id));
}
