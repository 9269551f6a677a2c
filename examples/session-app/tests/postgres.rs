//! session-app on PostgreSQL (`DATABASE_URL`), black-box on the binary: two instances sharing
//! one database behave as one service (a login on one is valid on the other, a logout on one is
//! honoured by the other), the table holds no session secret, and a database outage answers 503
//! with `Retry-After` (never 500, never anonymous) from start-up on, with recovery and no
//! restart.
//!
//! The database comes from `PORTCULLIS_TEST_DATABASE_URL` (set by `scripts/test.sh`), else the
//! local server on port 5432; each test uses a schema of its own, which the app migrates.

use std::time::Duration;

use portcullis_postgres::{PostgresConfig, sqlx};
use portcullis_tests::{
    binary::{Reply, RunningApp, poll, send, set_cookie},
    postgres_server::{address, shared_url_blocking, unique_schema, with_address},
    switch_proxy::SwitchProxy,
};

const EXE: &str = env!("CARGO_BIN_EXE_session-app");
const COOKIE: &str = "__Host-session";
const ALICE: &str = r#"{"username": "alice", "password": "alice-password-1"}"#;

fn start(url: &str, schema: &str) -> RunningApp {
    RunningApp::start(
        EXE,
        &["--addr", "127.0.0.1:0"],
        &[("DATABASE_URL", url), ("DATABASE_SCHEMA", schema)],
    )
}

fn login(app: &RunningApp) -> Reply {
    send(
        app.addr(),
        "POST",
        "/login",
        &[("Content-Type", "application/json")],
        ALICE,
    )
}

fn me(app: &RunningApp, cookie: &str) -> Reply {
    send(app.addr(), "GET", "/me", &[("Cookie", cookie)], "")
}

fn assert_unavailable(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 503, "{what}: {reply:?}");
    assert!(reply.header("retry-after").is_some(), "{what}: {reply:?}");
}

fn ready(app: &RunningApp) -> Reply {
    poll(app, "/readyz", Duration::from_secs(15), |r| r.status == 200)
}

/// Every stored `store_key` and `record` of the schema, as text.
fn stored_rows(url: &str, schema: &str) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let database = PostgresConfig::new(url).schema(schema).build().unwrap();
        let query = format!(
            "SELECT encode(store_key, 'hex') || ' ' || record FROM \"{schema}\".portcullis_sessions"
        );
        sqlx::query_scalar(&query)
            .fetch_all(database.pool())
            .await
            .unwrap()
    })
}

#[test]
fn two_instances_sharing_one_database_behave_as_one() {
    let url = shared_url_blocking();
    let schema = unique_schema("session_app");
    let first = start(&url, &schema);
    let second = start(&url, &schema);
    assert_eq!(ready(&first).status, 200);
    assert_eq!(ready(&second).status, 200);

    let logged_in = login(&first);
    assert_eq!(logged_in.status, 200, "{logged_in:?}");
    assert_eq!(logged_in.json()["user"], "alice");
    let cookie = set_cookie(&logged_in, COOKIE).expect("a session cookie");
    let secret = cookie.split_once('=').map(|(_, v)| v.to_owned()).unwrap();

    // The other instance knows the session: same user, same listing.
    let reply = me(&second, &cookie);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["role"], "advertiser");
    let sessions = send(
        second.addr(),
        "GET",
        "/sessions",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!(sessions.status, 200, "{sessions:?}");
    assert!(sessions.body.contains("current"), "{sessions:?}");

    // Secrets at rest: the row is keyed by a hash, and the cookie's secret appears nowhere.
    let rows = stored_rows(&url, &schema);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows.iter().all(|row| !row.contains(&secret)), "{rows:?}");

    // A logout on the second is honoured by the first at once.
    let out = send(second.addr(), "POST", "/logout", &[("Cookie", &cookie)], "");
    assert_eq!(out.status, 204, "{out:?}");
    assert_eq!(me(&first, &cookie).status, 401);
    assert!(stored_rows(&url, &schema).is_empty());

    // A restarted instance signs nobody out: the sessions are in the database.
    let again = login(&second);
    let cookie = set_cookie(&again, COOKIE).expect("a session cookie");
    drop(second);
    let restarted = start(&url, &schema);
    assert_eq!(ready(&restarted).status, 200);
    assert_eq!(me(&restarted, &cookie).status, 200);
}

#[test]
fn a_database_outage_answers_503_with_retry_after_and_recovers_without_a_restart() {
    let url = shared_url_blocking();
    let schema = unique_schema("session_app_outage");
    // The database is unreachable when the app starts.
    let proxy = SwitchProxy::start(&address(&url), false);
    let app = start(&with_address(&url, proxy.addr()), &schema);
    assert_eq!(app.get("/healthz").status, 200);
    let not_ready = app.get("/readyz");
    assert_unavailable(&not_ready, "readyz while down");
    assert_eq!(not_ready.json()["ready"], false);
    assert_unavailable(&login(&app), "login while down");

    // It comes up: migrations run, logins work, no restart.
    proxy.up();
    assert_eq!(ready(&app).status, 200);
    let logged_in = login(&app);
    assert_eq!(logged_in.status, 200, "{logged_in:?}");
    let cookie = set_cookie(&logged_in, COOKIE).expect("a session cookie");
    assert_eq!(me(&app, &cookie).status, 200);

    // It goes down: a signed-in request is refused with 503, never 500 and never anonymous.
    proxy.down();
    let down = poll(&app, "/readyz", Duration::from_secs(10), |r| {
        r.status == 503
    });
    assert_unavailable(&down, "readyz after going down");
    for _ in 0..3 {
        assert_unavailable(&me(&app, &cookie), "/me while down");
    }
    assert_unavailable(&login(&app), "login while down");

    // Back again: the same session works.
    proxy.up();
    assert_eq!(ready(&app).status, 200);
    let reply = me(&app, &cookie);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["user"], "alice");
}
