//! PostgreSQL faults and costs, against the shared test database through loopback proxies:
//! a database that goes away (every operation fails with `StoreError` in bounded time, the
//! layer answers 503 with `Retry-After`, and the same store recovers when it is back), a
//! database that stalls (bounded by the command timeout), and what a read-only authenticated
//! request costs (one query, no write, counted by PostgreSQL's own table statistics); and a
//! database whose migrations have not run yet (the background sweeps stay quiet about the
//! missing table, while a real failure still warns).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    response::IntoResponse,
    routing::{get, post},
};
use http::{Request, StatusCode, header};
use portcullis::{
    CurrentUser, StoreError,
    session::{Session, SessionConfig, SessionLayer, SessionStore},
};
use portcullis_core::ManualClock;
use portcullis_hybrid::RefreshStore;
use portcullis_postgres::{
    PostgresConfig, PostgresConnection, PostgresRefreshStore, PostgresSessionStore, sqlx,
};
use portcullis_tests::{
    conformance::session_store::{new_key, record, unique_user},
    logs::logged,
    postgres_server::{address, shared_url, unique_schema, with_address},
    stall_proxy::StallProxy,
    switch_proxy::SwitchProxy,
};
use tower::ServiceExt;

const COMMAND_TIMEOUT: Duration = Duration::from_millis(400);
/// Generous slack over the command timeout for a loaded CI machine.
const BOUND: Duration = Duration::from_millis(1_500);

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    user: String,
}

fn app<S: SessionStore>(store: S) -> Router {
    Router::new()
        .route(
            "/login",
            post(|session: Session| async move {
                let user = User {
                    user: "alice".into(),
                };
                match session.login("alice", &user).await {
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

async fn send(app: &Router, request: Request<Body>) -> http::Response<Body> {
    app.clone().oneshot(request).await.unwrap()
}

async fn login(app: &Router) -> String {
    let response = send(app, Request::post("/login").body(Body::empty()).unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

fn me(cookie: &str) -> Request<Body> {
    Request::get("/me")
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

/// A store in `schema` (already migrated) reached at `url`, with a short command timeout.
fn store_at(url: &str, schema: &str) -> PostgresSessionStore {
    let database = PostgresConfig::new(url)
        .schema(schema)
        .connection_timeout(Duration::from_millis(300))
        .command_timeout(COMMAND_TIMEOUT)
        .max_connections(4)
        .build()
        .unwrap();
    PostgresSessionStore::new(database)
}

async fn migrated_schema(tag: &str) -> String {
    let schema = unique_schema(tag);
    let database = PostgresConfig::new(shared_url().await)
        .schema(&schema)
        .build()
        .unwrap();
    database.migrate().await.unwrap();
    database.pool().close().await;
    schema
}

fn is_outage(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(_) | StoreError::Timeout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_fails_every_operation_in_bounded_time_and_the_store_recovers() {
    let url = shared_url().await;
    let schema = migrated_schema("outage").await;
    let proxy = tokio::task::spawn_blocking({
        let upstream = address(&url);
        move || SwitchProxy::start(&upstream, true)
    })
    .await
    .unwrap();
    let clock = ManualClock::new();
    let store =
        store_at(&with_address(&url, proxy.addr()), &schema).with_clock(Arc::new(clock.clone()));
    let user = unique_user("outage");
    let key = new_key();
    let session = record(&clock, Some(&user), 0, 600);
    store.create(&key, &session, None).await.unwrap();

    proxy.down();
    for _ in 0..2 {
        let started = Instant::now();
        let results = [
            store.load(&key).await.map(|_| ()),
            store.create(&new_key(), &session, None).await.map(|_| ()),
            store.save(&key, &session, 0).await.map(|_| ()),
            store.touch(&key, 1, 2).await.map(|_| ()),
            store.delete(&new_key()).await,
            store.list_by_user(&user).await.map(|_| ()),
            store.delete_by_user(&user, Some(&key)).await.map(|_| ()),
        ];
        for result in results {
            let error = result.unwrap_err();
            assert!(is_outage(&error), "{error:?}");
        }
        assert!(
            started.elapsed() < BOUND * 7,
            "took {:?}",
            started.elapsed()
        );
    }
    // The layer fails closed: 503 with Retry-After, never 500, never anonymous.
    let router = app(store.clone());
    let response = send(
        &router,
        me("__Host-session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));

    proxy.up();
    let back = Instant::now();
    loop {
        match store.load(&key).await {
            Ok(loaded) => {
                assert_eq!(loaded, Some(session));
                break;
            }
            Err(error) => assert!(is_outage(&error), "{error:?}"),
        }
        assert!(back.elapsed() < Duration::from_secs(5), "no recovery");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_database_is_bounded_by_the_command_timeout() {
    let url = shared_url().await;
    let schema = migrated_schema("stall").await;
    let upstream: SocketAddr = address(&url).parse().unwrap();
    let proxy = StallProxy::start(upstream).await;
    let store = store_at(&with_address(&url, &proxy.addr().to_string()), &schema);
    let router = app(store.clone());
    let cookie = login(&router).await;
    assert_eq!(send(&router, me(&cookie)).await.status(), StatusCode::OK);

    proxy.stall_all();
    for _ in 0..3 {
        let started = Instant::now();
        let response = send(&router, me(&cookie)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
        assert!(
            started.elapsed() < BOUND,
            "bounded: {:?}",
            started.elapsed()
        );
    }

    proxy.reroute();
    let rerouted = Instant::now();
    while send(&router, me(&cookie)).await.status() != StatusCode::OK {
        assert!(
            rerouted.elapsed() < Duration::from_secs(10),
            "still failing after the route came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "served again {:?} after the route came back",
        rerouted.elapsed()
    );
}

/// Scans and written rows of the session table, from PostgreSQL's statistics.
async fn table_counters(admin: &PostgresConnection, schema: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0), n_tup_ins + n_tup_upd + n_tup_del \
         FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'portcullis_sessions'",
    )
    .bind(schema)
    .fetch_one(admin.pool())
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_authenticated_request_is_one_query_and_no_write() {
    const REQUESTS: i64 = 30;
    let schema = migrated_schema("round_trips").await;
    let url = shared_url().await;
    let admin = PostgresConfig::new(&url).build().unwrap();
    let login_store = store_at(&url, &schema);
    let cookie = login(&app(login_store.clone())).await;
    // Statistics reach the shared counters when a backend exits: end the login's connections.
    login_store.connection().pool().close().await;
    let before = settle(&admin, &schema, |now| now.1 >= 1).await;

    let store = store_at(&url, &schema);
    let router = app(store.clone());
    for _ in 0..REQUESTS {
        assert_eq!(send(&router, me(&cookie)).await.status(), StatusCode::OK);
    }
    store.connection().pool().close().await;
    let after = settle(&admin, &schema, |now| now.0 >= before.0 + REQUESTS).await;
    eprintln!("table counters before {before:?}, after {after:?}");
    assert_eq!(
        after.0 - before.0,
        REQUESTS,
        "one table scan (the primary key) per request"
    );
    assert_eq!(after.1 - before.1, 0, "no row inserted, updated or deleted");
}

/// The counters once `ready` holds (statistics of exited backends arrive shortly after).
async fn settle(
    admin: &PostgresConnection,
    schema: &str,
    ready: impl Fn((i64, i64)) -> bool,
) -> (i64, i64) {
    let started = Instant::now();
    loop {
        let now = table_counters(admin, schema).await;
        // Backends report their counters when they exit; on a busy machine that can take
        // seconds, so wait (only as long as the counters are late) before judging.
        if ready(now) || started.elapsed() > Duration::from_secs(15) {
            // One more look, so late arrivals (which would fail the assertions) are seen.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return table_counters(admin, schema).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lets a sweeper with a 10 ms period run a few times.
async fn run_sweeper(store: &PostgresSessionStore) {
    let sweeper = store.spawn_sweeper(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    sweeper.abort();
}

#[test]
fn sweeps_before_the_migrations_ran_are_quiet_and_real_failures_still_warn() {
    // A fresh schema, never migrated: the tables do not exist (SQLSTATE 42P01).
    let logs = logged(tracing::Level::DEBUG, || async {
        let database = PostgresConfig::new(shared_url().await)
            .schema(unique_schema("unmigrated"))
            .build()
            .unwrap();
        let sessions = PostgresSessionStore::new(database.clone());
        assert_eq!(sessions.sweep_expired().await.unwrap(), 0);
        let refresh = PostgresRefreshStore::new(database.clone());
        assert_eq!(RefreshStore::purge_expired(&refresh).await.unwrap(), 0);
        run_sweeper(&sessions).await;
        // Only the sweep treats the missing table as empty: requests still fail closed.
        let error = sessions.load(&new_key()).await.unwrap_err();
        assert!(is_outage(&error), "{error:?}");
        assert!(refresh.load("sid").await.is_err());
        database.pool().close().await;
    });
    assert!(
        !logs.contains("WARN"),
        "no warning for a missing table:\n{logs}"
    );
    assert!(
        logs.contains("DEBUG") && logs.contains("does not exist yet"),
        "the skipped sweep is logged at debug level:\n{logs}"
    );

    // An unreachable database is a real failure: still a warning.
    let logs = logged(tracing::Level::DEBUG, || async {
        let database = PostgresConfig::new("postgres://postgres@127.0.0.1:1/x")
            .connection_timeout(Duration::from_millis(100))
            .command_timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        let sessions = PostgresSessionStore::new(database);
        assert!(is_outage(&sessions.sweep_expired().await.unwrap_err()));
        run_sweeper(&sessions).await;
    });
    assert!(
        logs.contains("WARN") && logs.contains("session sweep failed"),
        "{logs}"
    );
}
