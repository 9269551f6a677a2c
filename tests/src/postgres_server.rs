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

/// `url` synchronously, for sync tests (a throwaway runtime).
pub fn shared_url_blocking() -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(shared_url())
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

/// `HOST:PORT` of a `postgres://` URL (port 5432 when it has none).
///
/// # Panics
///
/// When the URL has no host.
pub fn address(url: &str) -> String {
    let authority = authority(url);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    assert!(!host_port.is_empty(), "no host in the database URL");
    if host_port
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    }
}

/// `url` with its host and port replaced by `addr` (a proxy in front of the server).
pub fn with_address(url: &str, addr: &str) -> String {
    let authority = authority(url);
    let replaced = match authority.rsplit_once('@') {
        Some((user, _)) => format!("{user}@{addr}"),
        None => addr.to_owned(),
    };
    url.replacen(authority, &replaced, 1)
}

fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_and_replaced() {
        let url = "postgres://postgres@127.0.0.1:5432/portcullis_test";
        assert_eq!(address(url), "127.0.0.1:5432");
        assert_eq!(address("postgres://localhost/db"), "localhost:5432");
        assert_eq!(
            with_address(url, "127.0.0.1:9"),
            "postgres://postgres@127.0.0.1:9/portcullis_test"
        );
        assert_eq!(
            with_address("postgres://h:1/db?sslmode=disable", "x:2"),
            "postgres://x:2/db?sslmode=disable"
        );
    }
}
