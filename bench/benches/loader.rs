//! The session user loader's per-request cost (issue 14): `GET /me` through the session layer
//! and the in-memory store, the user read from the login snapshot against the user read
//! through a `UserLoader` whose cache is warm. In-process (`oneshot` on a current-thread
//! runtime, no socket): `cargo bench -p portcullis-bench --bench loader`.
//! `PORTCULLIS_BENCH_QUICK=1` shortens the measurements.

use std::{hint::black_box, time::Duration};

use axum::{Router, body::Body, routing::get};
use criterion::Criterion;
use http::{Request, header};
use portcullis_core::{CurrentUser, StoreError};
use portcullis_session::{MemoryStore, Session, SessionConfig, SessionLayer, UserLoader};
use serde_json::{Value, json};
use tower::ServiceExt;

fn user() -> Value {
    json!({"user": "alice", "role": "advertiser"})
}

fn router(loader: Option<UserLoader>) -> Router {
    let mut layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap();
    if let Some(loader) = loader {
        layer = layer.user_loader(loader);
    }
    Router::new()
        .route(
            "/login",
            axum::routing::post(|session: Session| async move {
                session.login("alice", &user()).await.unwrap();
            }),
        )
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<Value>| async move { user["user"].to_string() }),
        )
        .layer(layer)
}

async fn cookie(app: &Router) -> String {
    let response = app
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let value = response.headers()[header::SET_COOKIE].to_str().unwrap();
    value.split(';').next().unwrap().to_owned()
}

fn loader(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let quick = std::env::var_os("PORTCULLIS_BENCH_QUICK").is_some_and(|v| v != "0");
    let mut group = c.benchmark_group("session-me");
    if quick {
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
    } else {
        group
            .sample_size(40)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
    let with_loader =
        UserLoader::builder(|_: String| async { Ok::<_, StoreError>(Some(user())) }).build_local();
    for (id, app) in [
        ("snapshot", router(None)),
        ("loader-warm", router(Some(with_loader))),
    ] {
        let cookie = runtime.block_on(cookie(&app));
        group.bench_function(id, |b| {
            b.to_async(&runtime).iter(|| async {
                let request = Request::get("/me")
                    .header(header::COOKIE, &cookie)
                    .body(Body::empty())
                    .unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                debug_assert!(response.status().is_success());
                black_box(response)
            });
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    loader(&mut criterion);
    criterion.final_summary();
}
