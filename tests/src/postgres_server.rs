//! The PostgreSQL the tests run against, and a schema of its own for every test, so tests
//! share one database without seeing each other's rows and nothing is ever dropped by hand.
//!
//! The database comes from `PORTCULLIS_TEST_DATABASE_URL` (set by `scripts/postgres-env.sh`,
//! which `scripts/test.sh` sources: a throwaway database per run). Not `DATABASE_URL`: the
//! example apps read that one, and an app a test spawns must never inherit it by accident. When
//! it is unset (a plain `cargo test`), tests use the local server at `127.0.0.1:5432` (trust
//! authentication) and a `portcullis_test` database there, created on first use.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use portcullis_postgres::{PostgresConfig, PostgresConnection};
use tokio::sync::OnceCell;

/// The variable `scripts/postgres-env.sh` exports for the tests.
pub const URL_VARIABLE: &str = "PORTCULLIS_TEST_DATABASE_URL";
const LOCAL_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
const LOCAL_DATABASE: &str = "portcullis_test";

/// The URL of the test database (see the module docs).
pub async fn shared_url() -> String {
    if let Ok(url) = std::env::var(URL_VARIABLE)
        && !url.is_empty()
    {
        return url;
    }
    static CREATED: OnceCell<()> = OnceCell::const_new();
    CREATED
        .get_or_init(|| async {
            let admin = PostgresConfig::new(format!("{LOCAL_SERVER}/postgres"))
                .build()
                .expect("a valid URL");
            let create = format!("CREATE DATABASE {LOCAL_DATABASE}");
            // Already there (another test process made it) is fine.
            let _ = portcullis_postgres::sqlx::raw_sql(&create)
                .execute(admin.pool())
                .await;
            admin.pool().close().await;
        })
        .await;
    format!("{LOCAL_SERVER}/{LOCAL_DATABASE}")
}

/// A schema name no other test (or run) uses: lowercase, as the config requires.
pub fn unique_schema(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "pct_{tag}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A connection to the test database in a fresh schema, migrated.
pub async fn migrated(tag: &str) -> PostgresConnection {
    let database = PostgresConfig::new(shared_url().await)
        .schema(unique_schema(tag))
        .command_timeout(Duration::from_secs(10))
        .max_connections(4)
        .build()
        .expect("a valid configuration");
    database
        .migrate()
        .await
        .unwrap_or_else(|error| panic!("cannot migrate the test database: {error:?}"));
    database
}

/// [`migrated`] from synchronous code inside a multi-threaded Tokio runtime (the conformance
/// macros build stores with plain functions).
pub fn migrated_blocking(tag: &str) -> PostgresConnection {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(migrated(tag)))
}
