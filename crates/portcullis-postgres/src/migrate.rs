//! The schema, shipped with the crate as plain SQL: [`PostgresConnection::migrate`] applies what
//! a database lacks (at start-up, or from a deployment step), and
//! [`PostgresConnection::migration_script`] hands the same SQL to teams that run migrations
//! with their own tool.

use portcullis_core::StoreError;

use crate::connection::{PostgresConnection, store_error};

/// One migration: its version (applied in order, once) and its SQL, with `__SCHEMA__` and
/// `__PREFIX__` standing for the configured schema and table prefix.
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "sessions",
        sql: include_str!("../migrations/0001_sessions.sql"),
    },
    Migration {
        version: 2,
        name: "refresh sessions",
        sql: include_str!("../migrations/0002_refresh_sessions.sql"),
    },
    Migration {
        version: 3,
        name: "revocations",
        sql: include_str!("../migrations/0003_revocations.sql"),
    },
];

impl PostgresConnection {
    /// Creates the schema and tables, or upgrades them: applies, in one transaction, every
    /// migration this database has not recorded yet. Several nodes may call it at once at
    /// start-up: a transaction-scoped advisory lock lets one apply and the others find it done.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let database = portcullis_postgres::PostgresConfig::new("postgres:///app").build()?;
    /// database.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let tables = self.tables();
        let lock = format!("portcullis migrate {}.{}", tables.schema, tables.prefix);
        let mut transaction = self.pool().begin().await.map_err(store_error)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(&lock)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        // `CREATE SCHEMA IF NOT EXISTS` needs the CREATE privilege even when the schema exists:
        // ask first, so an application without it can use a schema its DBA made.
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(&tables.schema)
                .fetch_one(&mut *transaction)
                .await
                .map_err(store_error)?;
        let create_schema = format!("CREATE SCHEMA \"{}\"", tables.schema);
        let create_log = format!(
            "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY, name text NOT NULL, \
             applied_at timestamptz NOT NULL DEFAULT now())",
            tables.migrations
        );
        let select_log = format!("SELECT version FROM {}", tables.migrations);
        let insert_log = format!(
            "INSERT INTO {} (version, name) VALUES ($1, $2)",
            tables.migrations
        );
        if !exists {
            sqlx::query(&create_schema)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
        }
        sqlx::query(&create_log)
            .execute(&mut *transaction)
            .await
            .map_err(store_error)?;
        let applied: Vec<i32> = sqlx::query_scalar(&select_log)
            .fetch_all(&mut *transaction)
            .await
            .map_err(store_error)?;
        for migration in MIGRATIONS {
            if applied.contains(&migration.version) {
                continue;
            }
            for statement in statements(&self.fill(migration.sql)) {
                sqlx::query(&statement)
                    .execute(&mut *transaction)
                    .await
                    .map_err(store_error)?;
            }
            sqlx::query(&insert_log)
                .bind(migration.version)
                .bind(migration.name)
                .execute(&mut *transaction)
                .await
                .map_err(store_error)?;
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied migration"
            );
        }
        transaction.commit().await.map_err(store_error)
    }

    /// Runs [`PostgresConnection::migrate`] in a background task, retrying every `retry` until
    /// it succeeds: an application starts while its database is unreachable (its stores answer
    /// [`StoreError`] meanwhile, and its readiness check reports the tables missing) and gets
    /// its tables as soon as the database answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let database = portcullis_postgres::PostgresConfig::new("postgres:///app").build()?;
    /// let _migrations = database.spawn_migrations(Duration::from_secs(1));
    /// # Ok(()) }
    /// ```
    pub fn spawn_migrations(&self, retry: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let database = self.clone();
        tokio::spawn(async move {
            loop {
                match database.bounded(database.migrate()).await {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(%error, "database migrations not applied yet; retrying");
                        tokio::time::sleep(retry).await;
                    }
                }
            }
        })
    }

    /// Every migration's SQL with this connection's schema and table prefix filled in, in order,
    /// for teams that apply migrations with their own tool instead of
    /// [`PostgresConnection::migrate`]. (They need not record versions: `migrate` is never
    /// called then, and every statement is idempotent.)
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let database = portcullis_postgres::PostgresConfig::new("postgres:///app")
    ///     .schema("auth")
    ///     .table_prefix("shop_")
    ///     .build()
    ///     .unwrap();
    /// let sql = database.migration_script();
    /// assert!(sql.contains(r#"CREATE TABLE IF NOT EXISTS "auth"."shop_sessions""#));
    /// # }
    /// ```
    pub fn migration_script(&self) -> String {
        let tables = self.tables();
        let mut script = format!("CREATE SCHEMA IF NOT EXISTS \"{}\";\n", tables.schema);
        for migration in MIGRATIONS {
            script.push_str(&self.fill(migration.sql));
            script.push('\n');
        }
        script
    }

    fn fill(&self, sql: &str) -> String {
        let tables = self.tables();
        // Both were checked to be [a-z0-9_] identifiers when the connection was built.
        sql.replace("__SCHEMA__", &tables.schema)
            .replace("__PREFIX__", &tables.prefix)
    }
}

/// The statements of a migration file: split at a `;` ending a line, comment-only pieces
/// dropped (the files are ours: no `;` at a line end inside a literal).
fn statements(sql: &str) -> Vec<String> {
    sql.split(";\n")
        .filter(|piece| {
            piece
                .lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with("--"))
        })
        .map(str::to_owned)
        .collect()
}
