//! The store conformance suites against PostgreSQL: the same cases as memory and Redis run
//! (`redis_conformance.rs`, `session_store_memory.rs`), each test in a schema of its own.
//!
//! The database comes from `PORTCULLIS_TEST_DATABASE_URL` (set by `scripts/test.sh`), else the
//! local server on port 5432 (see `portcullis_tests::postgres_server`).

use std::sync::Arc;

use portcullis_core::ManualClock;
use portcullis_postgres::{
    PostgresConfig, PostgresRefreshStore, PostgresRevocationFeed, PostgresSessionStore,
};
use portcullis_tests::postgres_server::{migrated_blocking, shared_url};

fn session_store(clock: ManualClock) -> PostgresSessionStore {
    PostgresSessionStore::new(migrated_blocking("session")).with_clock(Arc::new(clock))
}

fn refresh_store(clock: ManualClock) -> PostgresRefreshStore {
    PostgresRefreshStore::new(migrated_blocking("refresh")).with_clock(Arc::new(clock))
}

/// Nodes on one schema, each with a pool of its own, as separate processes would have.
fn feed_nodes(clock: ManualClock) -> impl Fn() -> PostgresRevocationFeed {
    let schema = migrated_blocking("feed").schema().to_owned();
    let url =
        tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(shared_url()));
    move || {
        let database = PostgresConfig::new(&url).schema(&schema).build().unwrap();
        PostgresRevocationFeed::new(database).with_clock(Arc::new(clock.clone()))
    }
}

mod session_store {
    portcullis_tests::session_store_conformance!(super::session_store);
}

mod refresh_store {
    portcullis_tests::refresh_store_conformance!(super::refresh_store);
}

mod revocation_feed {
    portcullis_tests::revocation_feed_conformance!(super::feed_nodes);
}

/// The per-user bound that holds without a configured limit (as `MemoryRefreshStore`'s
/// default of 100): the cases shared with the memory and Redis stores.
mod refresh_store_bound {
    use std::sync::Arc;

    use portcullis_core::ManualClock;
    use portcullis_postgres::PostgresRefreshStore;
    use portcullis_tests::{conformance::refresh_bound, postgres_server::migrated};

    async fn store(tag: &str, clock: &ManualClock) -> PostgresRefreshStore {
        PostgresRefreshStore::new(migrated(tag).await).with_clock(Arc::new(clock.clone()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted() {
        let clock = ManualClock::new();
        refresh_bound::without_a_configured_limit_a_user_keeps_at_most_100_sessions_oldest_evicted(
            store("bound_default", &clock).await,
            &clock,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bound_is_configurable_and_only_live_sessions_count() {
        let clock = ManualClock::new();
        refresh_bound::the_bound_is_configurable_and_only_live_sessions_count(
            store("bound_config", &clock).await,
            &clock,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_configured_limit_applies_below_the_bound_and_is_capped_by_it() {
        let clock = ManualClock::new();
        refresh_bound::a_configured_limit_applies_below_the_bound_and_is_capped_by_it(
            store("bound_limit", &clock).await,
            &clock,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins_without_a_limit_respect_the_bound() {
        let clock = ManualClock::new();
        refresh_bound::concurrent_logins_without_a_limit_respect_the_bound(
            store("bound_race", &clock).await,
            &clock,
        )
        .await;
    }
}

/// PostgreSQL text cannot hold U+0000: a NUL in an id is bad input, answered without asking
/// the database (absent for lookups, a precise `InvalidInput` error for writes, which the
/// layers answer with 400), never an outage.
mod nul_in_text {
    use std::sync::Arc;

    use portcullis_core::{AuthRejection, ManualClock, StoreError};
    use portcullis_hybrid::RefreshStore;
    use portcullis_postgres::{PostgresRefreshStore, PostgresSessionStore};
    use portcullis_session::SessionStore;
    use portcullis_tests::{
        conformance::{refresh_store, session_store},
        postgres_server::migrated,
    };

    fn assert_precise(error: &StoreError, field: &str) {
        let StoreError::InvalidInput(reason) = error else {
            panic!("bad input, not an outage: {error:?}");
        };
        assert!(!error.is_outage());
        assert!(
            reason.contains(field) && reason.contains("NUL"),
            "a precise reason: {reason}"
        );
        // The layers answer it with 400 invalid_request and the reason, not 503.
        let rejection = AuthRejection::from(StoreError::invalid_input(reason.clone()));
        assert_eq!(rejection.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(rejection.error_code(), "invalid_request");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refresh_store() {
        let clock = ManualClock::new();
        let store = PostgresRefreshStore::new(migrated("nul_refresh").await)
            .with_clock(Arc::new(clock.clone()));
        let user = session_store::unique_user("nul");
        let good = refresh_store::record(&clock, &format!("{user}-sid"), &user, 0, 600);
        store.create(&good, None).await.unwrap();

        let error = store
            .create(
                &refresh_store::record(&clock, "sid", "alice\0admin", 0, 600),
                None,
            )
            .await
            .unwrap_err();
        assert_precise(&error, "user id");
        let error = store
            .create(
                &refresh_store::record(&clock, "sid\0x", &user, 0, 600),
                None,
            )
            .await
            .unwrap_err();
        assert_precise(&error, "session id");

        assert_eq!(store.load("sid\0x").await.unwrap(), None);
        assert_eq!(store.delete("sid\0x").await.unwrap(), None);
        assert!(store.list_by_user("alice\0").await.unwrap().is_empty());
        assert!(store.delete_by_user("\0", None).await.unwrap().is_empty());
        let mut moved = good.clone();
        moved.session_id = "sid\0x".to_owned();
        assert!(!store.compare_and_swap(&moved, 0).await.unwrap());
        let mut renamed = good.clone();
        renamed.user_id = format!("{user}\0");
        renamed.generation = 1;
        let error = store.compare_and_swap(&renamed, 0).await.unwrap_err();
        assert_precise(&error, "user id");
        // The good session is untouched by all of the above.
        assert_eq!(
            store.load(&good.session_id).await.unwrap(),
            Some(good.clone())
        );
        // A `keep` no session can have keeps nothing: all the user's sessions go.
        let gone = store.delete_by_user(&user, Some("sid\0x")).await.unwrap();
        assert_eq!(gone, [good]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_store() {
        let clock = ManualClock::new();
        let store = PostgresSessionStore::new(migrated("nul_session").await)
            .with_clock(Arc::new(clock.clone()));
        let user = session_store::unique_user("nul");
        let key = session_store::new_key();
        let good = session_store::record(&clock, Some(&user), 0, 600);
        store.create(&key, &good, None).await.unwrap();

        let bad_user = session_store::record(&clock, Some("alice\0admin"), 0, 600);
        let error = store
            .create(&session_store::new_key(), &bad_user, None)
            .await
            .unwrap_err();
        assert_precise(&error, "user id");
        let error = store.save(&key, &bad_user, 0).await.unwrap_err();
        assert_precise(&error, "user id");
        let mut bad_handle = good.clone();
        bad_handle.handle = "h\0".to_owned();
        let error = store.save(&key, &bad_handle, 0).await.unwrap_err();
        assert_precise(&error, "handle");

        assert!(store.list_by_user("alice\0").await.unwrap().is_empty());
        assert!(!store.delete_by_handle(&user, "h\0").await.unwrap());
        assert!(!store.delete_by_handle("\0", &good.handle).await.unwrap());
        assert_eq!(store.delete_by_user("alice\0", None).await.unwrap(), 0);
        let user_json = good.user.clone().unwrap();
        assert_eq!(store.replace_user("\0", &user_json).await.unwrap(), 0);
        // The good session is untouched by all of the above.
        assert_eq!(store.load(&key).await.unwrap(), Some(good));
    }
}

/// A NUL in a user id reaches the store from a request (an application that logs in whatever
/// name its login form carried): the answer is 400 `invalid_request` with the reason, never a
/// 503 that reports bad input as a database outage, and the good login still works.
mod nul_over_http {
    use axum::{
        Router,
        body::Body,
        response::IntoResponse,
        routing::{get, post},
    };
    use http::{Request, StatusCode, header};
    use http_body_util::BodyExt;
    use portcullis::{
        CurrentUser,
        session::{Session, SessionConfig, SessionLayer},
    };
    use portcullis_postgres::PostgresSessionStore;
    use portcullis_tests::postgres_server::migrated;
    use tower::ServiceExt;

    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct User {
        user: String,
    }

    fn app(store: PostgresSessionStore) -> Router {
        Router::new()
            .route(
                "/login",
                post(|session: Session, name: String| async move {
                    let user = User { user: name.clone() };
                    match session.login(&name, &user).await {
                        Ok(()) => StatusCode::OK.into_response(),
                        Err(error) => error.into_response(),
                    }
                }),
            )
            .route(
                "/me",
                get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
            )
            .layer(SessionLayer::new(store, SessionConfig::default()).unwrap())
    }

    async fn login(app: &Router, name: &str) -> http::Response<Body> {
        let request = Request::post("/login")
            .body(Body::from(name.to_owned()))
            .unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_user_id_with_nul_is_400_invalid_request_not_503() {
        let app = app(PostgresSessionStore::new(migrated("nul_http").await));
        let response = login(&app, "alice\0admin").await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        let reason = body["error_description"].as_str().unwrap_or_default();
        assert!(
            reason.contains("user id") && reason.contains("NUL"),
            "{reason}"
        );

        // The same application, same database: a good name still logs in.
        let response = login(&app, "alice").await;
        assert_eq!(response.status(), StatusCode::OK);
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_owned();
        let me = Request::get("/me")
            .header(header::COOKIE, cookie)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(me).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}
