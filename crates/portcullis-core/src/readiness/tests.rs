use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn types_are_send_and_sync() {
    assert_send_sync::<ReadinessChecks>();
    assert_send_sync::<ReadinessReport>();
    assert_send_sync::<NotReady>();
}

#[tokio::test]
async fn no_checks_is_ready() {
    let report = ReadinessChecks::new().run().await;
    assert!(report.is_ready());
    assert_eq!(report.reason(), None);
    assert_eq!(
        report.to_json(),
        serde_json::json!({"ready": true, "checks": {}})
    );
}

#[tokio::test]
async fn one_failure_makes_the_whole_not_ready_with_its_reason() {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let checks = ReadinessChecks::new()
        .check("store", AlwaysReady)
        .check("redis", move || {
            let up = flag.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok(())
                } else {
                    Err(NotReady::new("redis unreachable"))
                }
            }
        });
    assert!(checks.run().await.is_ready());
    up.store(false, Ordering::SeqCst);
    let report = checks.run().await;
    assert!(!report.is_ready());
    assert_eq!(
        report.to_json(),
        serde_json::json!({
            "ready": false,
            "reason": "redis: redis unreachable",
            "checks": {"store": "ok", "redis": "redis unreachable"},
        })
    );
    let response: Response<Bytes> = report.to_response();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn a_slow_check_times_out_without_holding_up_the_others() {
    let checks = ReadinessChecks::new()
        .timeout(Duration::from_millis(100))
        .check("slow", || async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .check("fast", AlwaysReady);
    let started = std::time::Instant::now();
    let report = checks.run().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    let outcomes: Vec<_> = report.checks().map(|(n, r)| (n, r.is_ok())).collect();
    assert_eq!(outcomes, [("slow", false), ("fast", true)]);
    assert_eq!(
        report.reason().as_deref(),
        Some("slow: no answer within 100 ms")
    );
}

#[tokio::test]
async fn adding_to_a_cloned_list_keeps_both_working() {
    let first = ReadinessChecks::new().check("a", AlwaysReady);
    let kept = first.clone();
    let second = first.check("b", || async { Err::<(), _>(NotReady::new("down")) });
    assert!(kept.run().await.is_ready());
    let report = second.run().await;
    assert_eq!(report.checks().count(), 2);
    assert_eq!(report.reason().as_deref(), Some("b: down"));
}

#[tokio::test]
async fn serves_the_report_as_a_service() {
    use tower_service::Service as _;
    let mut checks = ReadinessChecks::new().check("store", AlwaysReady);
    let response = checks.call(Request::new(())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let body: serde_json::Value = serde_json::from_str(response.body()).unwrap();
    assert_eq!(body["ready"], true);
}
