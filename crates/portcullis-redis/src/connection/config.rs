//! [`RedisConfig`]: how to reach Redis (single server or cluster, key prefix, timeouts, TLS),
//! and the [`ConfigError`]s of a configuration that cannot work.

use super::*;

pub(super) const DEFAULT_PREFIX: &str = "portcullis";
pub(super) const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
pub(super) const MAX_PREFIX_LEN: usize = 64;

/// A configuration that cannot work, reported when [`RedisConfig::build`] is called.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A Redis URL does not parse. The URL itself is not repeated: it may hold a password.
    #[error("a Redis URL is invalid")]
    InvalidUrl(#[source] RedisError),
    /// [`RedisConfig::cluster`] was given no node.
    #[error("a Redis Cluster needs at least one node URL")]
    NoClusterNodes,
    /// The key prefix is empty, too long, or contains `{`, `}` or whitespace (braces would break
    /// the hash tags that keep related keys on one cluster slot).
    #[error("the key prefix must be 1 to 64 characters without braces or whitespace")]
    InvalidKeyPrefix,
    /// A timeout of zero would fail every command.
    #[error("timeouts must be longer than zero")]
    ZeroTimeout,
    /// [`RedisConfig::build`] was called outside a Tokio runtime; the connection needs one to
    /// reconnect in the background.
    #[error("building a Redis connection needs a running Tokio runtime")]
    NoRuntime,
    /// A `rediss://` URL without the `tls` feature of portcullis-redis (`redis-tls` of the
    /// `portcullis` facade).
    #[error(
        "a rediss:// URL needs TLS support: enable the `tls` feature of portcullis-redis (`redis-tls` of portcullis)"
    )]
    TlsNotEnabled,
    /// A `rediss://` URL ending in `#insecure`, which would skip certificate verification.
    #[error("TLS to Redis without certificate verification (#insecure) is refused")]
    InsecureTls,
    /// The trusted root certificates are not PEM certificates (at least one).
    #[error("the Redis TLS root certificates are not valid PEM certificates")]
    InvalidTlsRootCertificates,
    /// The file of trusted root certificates cannot be read.
    #[error("cannot read the Redis TLS root certificates file")]
    TlsRootCertificatesFile(#[source] std::io::Error),
}

#[derive(Clone)]
pub(super) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// How to reach Redis: a single server or a cluster, the key prefix, and the timeouts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://127.0.0.1:6379")
///     .key_prefix("myapp")
///     .command_timeout(Duration::from_millis(500));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(super) target: Target,
    pub(super) key_prefix: String,
    pub(super) connection_timeout: Duration,
    pub(super) command_timeout: Duration,
    /// PEM root certificates trusted for `rediss://` instead of the system's (feature `tls`).
    pub(crate) tls_root_certificates: Option<Arc<[u8]>>,
    /// A file to read them from when the connection is built (`REDIS_TLS_CA_FILE`).
    pub(crate) tls_root_certificates_file: Option<std::path::PathBuf>,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // URLs may carry passwords: show only their number.
        let nodes = match &self.target {
            Target::Single(_) => 1,
            Target::Cluster(nodes) => nodes.len(),
        };
        f.debug_struct("RedisConfig")
            .field("cluster", &matches!(self.target, Target::Cluster(_)))
            .field("nodes", &nodes)
            .field("key_prefix", &self.key_prefix)
            .field("connection_timeout", &self.connection_timeout)
            .field("command_timeout", &self.command_timeout)
            .field(
                "tls_root_certificates",
                &(self.tls_root_certificates.is_some()
                    || self.tls_root_certificates_file.is_some()),
            )
            .finish()
    }
}

impl RedisConfig {
    /// A single Redis server at `url` (`redis://[user:password@]host:port[/db]`).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::RedisConfig::new("redis://127.0.0.1:6379/0");
    /// # let _ = config;
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_target(Target::Single(url.into()))
    }

    /// A Redis Cluster reached through any of `nodes` (the client discovers the rest).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::RedisConfig::cluster([
    ///     "redis://127.0.0.1:7000",
    ///     "redis://127.0.0.1:7001",
    /// ]);
    /// # let _ = config;
    /// ```
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::with_target(Target::Cluster(nodes.into_iter().map(Into::into).collect()))
    }

    /// One URL for a single server, or several separated by commas for a cluster's nodes.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_redis::RedisConfig;
    ///
    /// let single = RedisConfig::from_urls("redis://127.0.0.1:6379");
    /// let cluster = RedisConfig::from_urls("redis://127.0.0.1:7000, redis://127.0.0.1:7001");
    /// # let _ = (single, cluster);
    /// ```
    pub fn from_urls(urls: &str) -> Self {
        let urls: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect();
        match urls.as_slice() {
            [url] => Self::new(*url),
            _ => Self::cluster(urls),
        }
    }

    /// The configuration the example applications read: `REDIS_URL` (see
    /// [`RedisConfig::from_urls`]) and, when set, `REDIS_KEY_PREFIX`. `None` when `REDIS_URL`
    /// is unset or empty, meaning "use the in-memory stores".
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_redis::RedisConfig;
    ///
    /// let backend = match RedisConfig::from_env() {
    ///     Some(_config) => "Redis",
    ///     None => "in-memory stores",
    /// };
    /// # let _ = backend;
    /// ```
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`RedisConfig::from_env`], reading the variables through `lookup` (a map in tests).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_redis::RedisConfig;
    ///
    /// let config = RedisConfig::from_lookup(|name| match name {
    ///     "REDIS_URL" => Some("redis://127.0.0.1:6379".to_owned()),
    ///     _ => None,
    /// });
    /// assert!(config.is_some());
    /// assert!(RedisConfig::from_lookup(|_| None).is_none());
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let urls = lookup("REDIS_URL")?;
        if urls.trim().is_empty() {
            return None;
        }
        let mut config = Self::from_urls(&urls);
        config.tls_root_certificates_file = lookup("REDIS_TLS_CA_FILE")
            .filter(|path| !path.trim().is_empty())
            .map(std::path::PathBuf::from);
        Some(match lookup("REDIS_KEY_PREFIX") {
            Some(prefix) if !prefix.is_empty() => config.key_prefix(prefix),
            _ => config,
        })
    }

    pub(super) fn with_target(target: Target) -> Self {
        Self {
            target,
            key_prefix: DEFAULT_PREFIX.to_owned(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            tls_root_certificates: None,
            tls_root_certificates_file: None,
        }
    }

    /// The prefix of every key the stores write (default `portcullis`), so several applications
    /// can share one Redis.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_redis::RedisConfig::new("redis://127.0.0.1").key_prefix("shop");
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one attempt to open a connection may take (default 2 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = portcullis_redis::RedisConfig::new("redis://127.0.0.1")
    ///     .connection_timeout(Duration::from_secs(1));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long one store operation may take in all, reconnection included, before it fails
    /// with [`StoreError::Timeout`] (default 2 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = portcullis_redis::RedisConfig::new("redis://127.0.0.1")
    ///     .command_timeout(Duration::from_millis(300));
    /// # let _ = config;
    /// ```
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Validates the configuration and returns a connection handle. No I/O happens here: the
    /// connection opens on first use, and reopens by itself after an outage, so an application
    /// can start while Redis is down (its store calls then fail with [`StoreError`] until Redis
    /// is back). Call [`RedisConnection::ping`] to fail fast instead.
    ///
    /// Must be called inside a Tokio runtime.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an invalid URL or key prefix, a zero timeout, or no runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use portcullis_redis::{ConfigError, RedisConfig};
    ///
    /// let connection = RedisConfig::new("redis://127.0.0.1:6379").build().unwrap();
    /// assert_eq!(connection.key_prefix(), "portcullis");
    ///
    /// let refused = RedisConfig::new("redis://127.0.0.1").key_prefix("{bad}").build();
    /// assert!(matches!(refused, Err(ConfigError::InvalidKeyPrefix)));
    /// # }
    /// ```
    pub fn build(&self) -> Result<RedisConnection, ConfigError> {
        let prefix = &self.key_prefix;
        if prefix.is_empty()
            || prefix.len() > MAX_PREFIX_LEN
            || prefix
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(ConfigError::InvalidKeyPrefix);
        }
        if self.connection_timeout.is_zero() || self.command_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::NoRuntime);
        }
        let config = crate::tls::resolve_root_certificates(self)?;
        let (connection, nodes) = config.open()?;
        Ok(RedisConnection {
            shared: Arc::new(Shared {
                config,
                current: RwLock::new(Current {
                    generation: 0,
                    connection,
                }),
                prefix: self.key_prefix.clone(),
                command_timeout: self.command_timeout,
                connection_timeout: self.connection_timeout,
                nodes,
            }),
        })
    }

    /// The command connection (lazy: no I/O here) and one client per node.
    pub(super) fn open(&self) -> Result<(Connection, Vec<Client>), ConfigError> {
        Ok(match &self.target {
            Target::Single(url) => {
                let client = crate::tls::client(url, self.tls_root_certificates.as_deref())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connection_timeout))
                    .set_response_timeout(Some(self.command_timeout))
                    // Few, quick retries: the operation's own deadline bounds the wait, and the
                    // next operation starts a fresh reconnection if these fail.
                    .set_number_of_retries(2)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(ConfigError::InvalidUrl)?;
                (Connection::Single(manager), vec![client])
            }
            Target::Cluster(urls) => {
                if urls.is_empty() {
                    return Err(ConfigError::NoClusterNodes);
                }
                let roots = self.tls_root_certificates.as_deref();
                let clients = urls
                    .iter()
                    .map(|url| crate::tls::client(url, roots))
                    .collect::<Result<Vec<_>, _>>()?;
                let builder = ClusterClient::builder(urls.iter().map(String::as_str));
                let cluster = crate::tls::cluster(builder, urls, roots)?
                    .connection_timeout(self.connection_timeout)
                    .response_timeout(self.command_timeout)
                    .retries(2)
                    .build()
                    .map_err(ConfigError::InvalidUrl)?;
                let connection =
                    cluster.get_pending_async_connection_with_config(ClusterConfig::new());
                (Connection::Cluster(connection), clients)
            }
        })
    }
}
