//! `GET /metrics` on the built binary, black-box: after a login, a refresh and a refused
//! request, the Prometheus text holds the named series.

use portcullis_tests::binary::RunningApp;
use reqwest::{Client, Response, StatusCode, header};

/// The value of the first sample line that starts with `series` (name and labels as given).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

/// The `name=value` pair of the cookie `name` that `response` sets.
fn cookie(response: &Response, name: &str) -> String {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .and_then(|value| value.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

#[tokio::test]
async fn metrics_count_logins_refreshes_and_refusals() {
    let app = RunningApp::start(
        env!("CARGO_BIN_EXE_hybrid-app"),
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
    let refresh = cookie(&login, "__Secure-refresh");
    let refreshed = client
        .post(format!("{base}/refresh"))
        .header(header::COOKIE, &refresh)
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refused = client.get(format!("{base}/me")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let scrape = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), StatusCode::OK);
    let metrics = scrape.text().await.unwrap();
    assert_eq!(
        sample(&metrics, r#"portcullis_logins_total{mechanism="hybrid"}"#),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        sample(&metrics, r#"portcullis_refreshes_total{outcome="rotated"}"#),
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
    let token = refresh.split_once('=').unwrap().1;
    assert!(
        !metrics.contains(token),
        "no refresh token in the exposition"
    );
}
