//! Connecting to PostgreSQL: one pool every store shares, the schema and table prefix that name
//! the tables, and the timeout that bounds every store operation.

// Some helpers serve only the session store or only the refresh store.
#![cfg_attr(not(all(feature = "session", feature = "hybrid")), allow(dead_code))]

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use portcullis_core::StoreError;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

const DEFAULT_SCHEMA: &str = "public";
const DEFAULT_PREFIX: &str = "portcullis_";
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_MAX_CONNECTIONS: u32 = 10;
/// PostgreSQL truncates identifiers at 63 bytes; the longest table suffix is 20.
const MAX_SCHEMA_LEN: usize = 63;
const MAX_PREFIX_LEN: usize = 40;

/// A configuration that cannot work, reported when [`PostgresConfig::build`] is called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The database URL does not parse. The URL itself is not repeated: it may hold a password.
    #[error("the database URL is invalid")]
    InvalidUrl(#[source] sqlx::Error),
    /// The schema is empty, too long, or not made of lowercase ASCII letters, digits and `_`
    /// (starting with a letter or `_`).
    #[error("the schema must be 1 to 63 characters of [a-z0-9_], not starting with a digit")]
    InvalidSchema,
    /// The table prefix is too long or not made of lowercase ASCII letters, digits and `_`.
    #[error("the table prefix must be 0 to 40 characters of [a-z0-9_], not starting with a digit")]
    InvalidTablePrefix,
    /// A timeout of zero would fail every operation.
    #[error("timeouts must be longer than zero")]
    ZeroTimeout,
    /// A pool of zero connections could never answer.
    #[error("the pool needs at least one connection")]
    ZeroConnections,
    /// [`PostgresConfig::build`] was called outside a Tokio runtime; the pool needs one.
    #[error("building a PostgreSQL pool needs a running Tokio runtime")]
    NoRuntime,
}

/// How to reach PostgreSQL: the URL, the schema and table prefix of portcullis' tables, the
/// pool size and the timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_postgres::PostgresConfig;
///
/// let config = PostgresConfig::new("postgres://app@127.0.0.1:5432/app")
///     .schema("auth")
///     .table_prefix("myapp_")
///     .command_timeout(Duration::from_millis(500));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct PostgresConfig {
    url: String,
    schema: String,
    table_prefix: String,
    connection_timeout: Duration,
    command_timeout: Duration,
    max_connections: u32,
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password: never printed.
        f.debug_struct("PostgresConfig")
            .field("url", &"REDACTED")
            .field("schema", &self.schema)
            .field("table_prefix", &self.table_prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl PostgresConfig {
    /// The database at `url` (`postgres://[user[:password]@]host[:port]/database[?sslmode=..]`),
    /// tables `portcullis_*` in schema `public`.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_postgres::PostgresConfig::new("postgres://127.0.0.1/app");
    /// # let _ = config;
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: DEFAULT_SCHEMA.to_owned(),
            table_prefix: DEFAULT_PREFIX.to_owned(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }

    /// From `DATABASE_URL`, with `DATABASE_SCHEMA` and `DATABASE_TABLE_PREFIX` when set; `None`
    /// when `DATABASE_URL` is unset or empty.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`PostgresConfig::from_env`], reading the variables through `lookup`.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_postgres::PostgresConfig;
    ///
    /// let config = PostgresConfig::from_lookup(|name| match name {
    ///     "DATABASE_URL" => Some("postgres://127.0.0.1/app".to_owned()),
    ///     _ => None,
    /// });
    /// assert!(config.is_some());
    /// assert!(PostgresConfig::from_lookup(|_| None).is_none());
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let url = lookup("DATABASE_URL")?;
        if url.trim().is_empty() {
            return None;
        }
        let mut config = Self::new(url.trim());
        if let Some(schema) = lookup("DATABASE_SCHEMA").filter(|s| !s.is_empty()) {
            config = config.schema(schema);
        }
        if let Some(prefix) = lookup("DATABASE_TABLE_PREFIX") {
            config = config.table_prefix(prefix);
        }
        Some(config)
    }

    /// The schema holding the tables (default `public`); [`PostgresConnection::migrate`]
    /// creates it when missing.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_postgres::PostgresConfig::new("postgres:///app").schema("auth");
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// The prefix of every table name (default `portcullis_`), so several applications or
    /// environments can share a schema.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_postgres::PostgresConfig::new("postgres:///app").table_prefix("shop_");
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn table_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.table_prefix = prefix.into();
        self
    }

    /// How long taking a connection from the pool (and so connecting) may take (default 2 s).
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = portcullis_postgres::PostgresConfig::new("postgres:///app")
    ///     .connection_timeout(Duration::from_millis(300));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one store operation (all its queries) may take before it fails with
    /// [`StoreError::Timeout`] (default 2 s): a slow database costs a request a bounded wait and a
    /// 503, never a hung request.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// let config = portcullis_postgres::PostgresConfig::new("postgres:///app")
    ///     .command_timeout(Duration::from_millis(500));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The largest number of connections the pool opens (default 10).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_postgres::PostgresConfig::new("postgres:///app").max_connections(4);
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Checks the configuration and builds the pool. Connects lazily: the database may be
    /// unreachable now, operations fail with [`StoreError`] until it answers.
    pub fn build(self) -> Result<PostgresConnection, ConfigError> {
        if !valid_identifier(&self.schema, MAX_SCHEMA_LEN) {
            return Err(ConfigError::InvalidSchema);
        }
        if !self.table_prefix.is_empty() && !valid_identifier(&self.table_prefix, MAX_PREFIX_LEN) {
            return Err(ConfigError::InvalidTablePrefix);
        }
        if self.connection_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if self.max_connections == 0 {
            return Err(ConfigError::ZeroConnections);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::NoRuntime);
        }
        let options = PgConnectOptions::from_str(&self.url)
            .map_err(ConfigError::InvalidUrl)?
            .application_name("portcullis");
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(0)
            .acquire_timeout(self.connection_timeout.min(self.command_timeout))
            // A connection that sat idle through a network change is retired, not trusted.
            .idle_timeout(Some(Duration::from_secs(300)))
            .test_before_acquire(false)
            .connect_lazy_with(options);
        Ok(PostgresConnection {
            shared: Arc::new(Shared {
                pool,
                tables: Tables::new(&self.schema, &self.table_prefix),
                command_timeout: self.command_timeout,
            }),
        })
    }
}

/// `[a-z_][a-z0-9_]*`, at most `max` bytes: safe to splice into SQL between double quotes.
fn valid_identifier(name: &str, max: usize) -> bool {
    let mut bytes = name.bytes();
    let Some(first) = bytes.next() else {
        return false;
    };
    name.len() <= max
        && (first.is_ascii_lowercase() || first == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The qualified, quoted names of portcullis' tables.
#[derive(Debug)]
pub(crate) struct Tables {
    pub(crate) schema: String,
    pub(crate) prefix: String,
    pub(crate) sessions: String,
    pub(crate) refresh_sessions: String,
    pub(crate) revocations: String,
    pub(crate) migrations: String,
}

impl Tables {
    fn new(schema: &str, prefix: &str) -> Self {
        let table = |name: &str| format!("\"{schema}\".\"{prefix}{name}\"");
        Self {
            schema: schema.to_owned(),
            prefix: prefix.to_owned(),
            sessions: table("sessions"),
            refresh_sessions: table("refresh_sessions"),
            revocations: table("revocations"),
            migrations: table("migrations"),
        }
    }
}

#[derive(Debug)]
struct Shared {
    pool: PgPool,
    tables: Tables,
    command_timeout: Duration,
}

/// A pool of PostgreSQL connections with the names of portcullis' tables; clones share it.
/// Built by [`PostgresConfig::build`].
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_postgres::PostgresConfig;
///
/// let database = PostgresConfig::new("postgres://app@127.0.0.1/app").build()?;
/// database.migrate().await?; // creates or upgrades the tables
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresConnection {
    shared: Arc<Shared>,
}

impl PostgresConnection {
    /// An existing pool (the application's own), with portcullis' tables in `public` under the
    /// `portcullis_` prefix and the default command timeout.
    pub fn from_pool(pool: PgPool) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                tables: Tables::new(DEFAULT_SCHEMA, DEFAULT_PREFIX),
                command_timeout: DEFAULT_COMMAND_TIMEOUT,
            }),
        }
    }

    /// The pool, to run queries of the application's own.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// The schema holding portcullis' tables.
    pub fn schema(&self) -> &str {
        &self.shared.tables.schema
    }

    /// The timeout bounding each store operation.
    pub fn command_timeout(&self) -> Duration {
        self.shared.command_timeout
    }

    pub(crate) fn tables(&self) -> &Tables {
        &self.shared.tables
    }

    /// Runs `SELECT 1` within the command timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("SELECT 1")
                .execute(self.pool())
                .await
                .map_err(store_error)?;
            Ok(())
        })
        .await
    }

    /// Runs `operation` within the command timeout.
    pub(crate) async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.shared.command_timeout, operation)
            .await
            .unwrap_or(Err(StoreError::Timeout))
    }
}

/// Maps a driver error to the store error layers answer with 503 (fail closed). Undecodable
/// rows are corrupt; everything else (refused connections, a missing table, a server error)
/// is an outage.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolTimedOut => StoreError::Timeout,
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => StoreError::corrupt(error),
        other => StoreError::unavailable(other),
    }
}

/// Whether `text` can be bound as a PostgreSQL `text` parameter: PostgreSQL refuses any
/// string containing the NUL character (U+0000), so a query carrying one fails with a server
/// error, which [`store_error`] would report as an outage (503) although it is bad input.
///
/// The stores check every text they bind (user ids, session ids, handles) before asking the
/// database (OWASP Input Validation Cheat Sheet: reject bad input early, at the boundary):
///
/// - a *lookup or deletion* by such a value answers what the database would have: nothing
///   (`None`, `false`, an empty list, zero), since no row can hold it. Answering "absent"
///   rather than matching a truncated prefix is what keeps `"alice\0x"` from ever reaching
///   `"alice"`'s sessions (CWE-158, improper neutralization of null bytes);
/// - a *write* of such a value cannot be stored and fails with [`unstorable`], a
///   [`StoreError::InvalidInput`] naming the field, never a silent truncation. The layers
///   answer it with 400 `invalid_request` and that reason: bad input, not an outage (no 503,
///   no store-error metric, no outage log).
pub(crate) fn storable(text: &str) -> bool {
    !text.contains('\0')
}

/// The error for a write of `field` that [`storable`] refused: input PostgreSQL can never
/// hold. The reason names the field, never the value (it reaches the client).
pub(crate) fn unstorable(field: &'static str) -> StoreError {
    StoreError::invalid_input(format!(
        "the {field} contains a NUL character, which PostgreSQL text cannot store"
    ))
}

/// A Unix time or counter as PostgreSQL's `bigint` (saturating; real values are far below).
pub(crate) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A `bigint` read back; a negative one is corrupt.
pub(crate) fn from_sql(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(StoreError::corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_before_they_reach_sql() {
        for good in ["public", "auth", "_x", "a1_b2"] {
            assert!(valid_identifier(good, 63), "{good}");
        }
        for bad in ["", "1a", "Auth", "a-b", "a\"b", "a b", "a;drop", "ä"] {
            assert!(!valid_identifier(bad, 63), "{bad:?}");
        }
        assert!(!valid_identifier(&"a".repeat(64), 63));
    }

    #[tokio::test]
    async fn bad_configurations_are_refused_when_built() {
        let url = "postgres://127.0.0.1:1/x";
        assert!(matches!(
            PostgresConfig::new(url).schema("Bad").build(),
            Err(ConfigError::InvalidSchema)
        ));
        assert!(matches!(
            PostgresConfig::new(url).table_prefix("x\";").build(),
            Err(ConfigError::InvalidTablePrefix)
        ));
        assert!(matches!(
            PostgresConfig::new(url)
                .command_timeout(Duration::ZERO)
                .build(),
            Err(ConfigError::ZeroTimeout)
        ));
        assert!(matches!(
            PostgresConfig::new(url).max_connections(0).build(),
            Err(ConfigError::ZeroConnections)
        ));
        assert!(matches!(
            PostgresConfig::new("postgres://host:notaport/db").build(),
            Err(ConfigError::InvalidUrl(_))
        ));
        assert!(PostgresConfig::new(url).table_prefix("").build().is_ok());
    }

    #[test]
    fn building_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            PostgresConfig::new("postgres://127.0.0.1/x").build(),
            Err(ConfigError::NoRuntime)
        ));
    }

    #[test]
    fn debug_never_shows_the_url() {
        let config = PostgresConfig::new("postgres://u:secret-password@h/db");
        assert!(!format!("{config:?}").contains("secret-password"));
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_in_bounded_time() {
        let database = PostgresConfig::new("postgres://postgres@127.0.0.1:1/x")
            .connection_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let error = database.ping().await.unwrap_err();
        assert!(
            matches!(error, StoreError::Unavailable(_) | StoreError::Timeout),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}
