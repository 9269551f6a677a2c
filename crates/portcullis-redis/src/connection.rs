//! Connecting to Redis: one handle for a single server or a Redis Cluster, with connection and
//! command timeouts, reconnection after an outage, and the key prefix every store shares.

// Some helpers serve only the session store or only the hybrid stores.
#![cfg_attr(not(all(feature = "session", feature = "hybrid")), allow(dead_code))]

use std::{
    fmt,
    future::Future,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use portcullis_core::StoreError;
use redis::{
    Client, Cmd, ErrorKind, FromRedisValue, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::{ClusterClient, ClusterConfig},
    cluster_async::ClusterConnection,
};

const DEFAULT_PREFIX: &str = "portcullis";
const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_PREFIX_LEN: usize = 64;

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
enum Target {
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
    target: Target,
    key_prefix: String,
    connection_timeout: Duration,
    command_timeout: Duration,
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

    fn with_target(target: Target) -> Self {
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
    fn open(&self) -> Result<(Connection, Vec<Client>), ConfigError> {
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

/// A handle on Redis shared by the stores: cheap to clone, reconnecting by itself.
///
/// Build one with [`RedisConfig::build`] and hand clones to [`RedisSessionStore`],
/// [`RedisRefreshStore`] and [`RedisRevocationFeed`]; they multiplex over the same connection.
///
/// [`RedisSessionStore`]: crate::RedisSessionStore
/// [`RedisRefreshStore`]: crate::RedisRefreshStore
/// [`RedisRevocationFeed`]: crate::RedisRevocationFeed
#[derive(Clone)]
pub struct RedisConnection {
    shared: Arc<Shared>,
}

struct Shared {
    /// What built this handle, to open fresh connections.
    config: RedisConfig,
    /// The command connection every clone shares, replaced when it stops answering.
    current: RwLock<Current>,
    prefix: String,
    command_timeout: Duration,
    connection_timeout: Duration,
    /// One client per configured node, for pub/sub connections (one server, or any cluster
    /// node: cluster pub/sub messages reach every node).
    nodes: Vec<Client>,
}

struct Current {
    /// Counts replacements, so that many operations timing out on one connection replace it
    /// once.
    generation: u64,
    connection: Connection,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("cluster", &self.is_cluster())
            .field("key_prefix", &self.shared.prefix)
            .field("command_timeout", &self.shared.command_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// The prefix of every key the stores write.
    pub fn key_prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Whether this handle talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.shared.config.target, Target::Cluster(_))
    }

    /// Checks that Redis answers within the command timeout.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`] when it does not.
    pub fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send + '_ {
        self.bounded(async move {
            let pong: String = self.query(&redis::cmd("PING")).await?;
            if pong == "PONG" {
                Ok(())
            } else {
                Err(StoreError::corrupt(format!(
                    "unexpected PING answer {pong:?}"
                )))
            }
        })
    }

    /// The server's `maxmemory-policy` (on a cluster, that of the node answering), so an
    /// application can check at start-up that it is `noeviction`: under any other policy Redis
    /// may evict a revocation or session record (see the crate docs).
    ///
    /// # Errors
    ///
    /// [`StoreError`] when Redis does not answer, or refuses `CONFIG GET` (some managed
    /// services do; check the policy in their console then).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(redis: portcullis_redis::RedisConnection) {
    /// match redis.eviction_policy().await {
    ///     Ok(policy) if policy != "noeviction" => eprintln!("warning: maxmemory-policy is {policy}"),
    ///     _ => {}
    /// }
    /// # }
    /// ```
    pub fn eviction_policy(&self) -> impl Future<Output = Result<String, StoreError>> + Send + '_ {
        self.bounded(async move {
            let reply: Vec<String> = self
                .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
                .await?;
            reply
                .into_iter()
                .nth(1)
                .ok_or_else(|| StoreError::corrupt("CONFIG GET maxmemory-policy gave no value"))
        })
    }

    pub(crate) fn command_timeout(&self) -> Duration {
        self.shared.command_timeout
    }

    pub(crate) fn connection_timeout(&self) -> Duration {
        self.shared.connection_timeout
    }

    pub(crate) fn nodes(&self) -> &[Client] {
        &self.shared.nodes
    }

    /// A handle with connections of its own, for a caller that must not wait on this one's:
    /// a connection that silently stops answering is never reopened by the client (a response
    /// time-out is not a disconnection), so a reader that saw one time out starts afresh.
    pub(crate) fn reopen(&self) -> Self {
        // The configuration built once already; only a missing runtime could fail now, and
        // then this handle is as good as any.
        self.shared.config.build().unwrap_or_else(|_| self.clone())
    }

    /// Runs one store operation (possibly several commands) within the command timeout.
    pub(crate) async fn bounded<T>(
        &self,
        operation: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let (generation, _) = self.current();
        match tokio::time::timeout(self.shared.command_timeout, operation).await {
            Ok(result) => result,
            Err(_) => {
                self.replace(generation);
                Err(StoreError::Timeout)
            }
        }
    }

    /// Sends one command on the shared connection, with the same timeouts and reconnection
    /// as the stores: for application data kept beside them (the example apps keep their
    /// user table's changes here, so every instance sees a role change). Keys should start
    /// with [`RedisConnection::key_prefix`]; in a Cluster a command must touch one slot.
    ///
    /// # Errors
    ///
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`] when Redis does not answer,
    /// [`StoreError::Corrupt`] when the reply is not a `T`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(redis: portcullis_redis::RedisConnection) -> Result<(), portcullis_core::StoreError> {
    /// let key = format!("{}users:alice", redis.key_prefix());
    /// let user: Option<String> = redis.query(redis::cmd("GET").arg(&key)).await?;
    /// # let _ = user;
    /// # Ok(()) }
    /// ```
    pub async fn query<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, StoreError> {
        let (generation, mut connection) = self.current();
        let result = cmd.query_async(&mut connection).await;
        self.settle(generation, result)
    }

    /// Runs a script (`EVALSHA`, loading it on `NOSCRIPT`).
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let (generation, mut connection) = self.current();
        let result = invocation.invoke_async(&mut connection).await;
        self.settle(generation, result)
    }

    fn current(&self) -> (u64, Connection) {
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        (current.generation, current.connection.clone())
    }

    fn settle<T>(&self, generation: u64, result: Result<T, RedisError>) -> Result<T, StoreError> {
        result.map_err(|error| {
            if error.is_timeout() {
                self.replace(generation);
            }
            store_error(error)
        })
    }

    /// Replaces the command connection after it failed to answer in time, unless another
    /// operation already did. The client reopens a connection it sees drop, never one that
    /// merely stops answering (a dead path, a wedged proxy: nothing is closed), which would
    /// otherwise fail every later operation until the operating system gives up on it. A
    /// Redis that is only slow costs one reconnection.
    fn replace(&self, generation: u64) {
        let mut current = self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.generation != generation {
            return;
        }
        // The configuration opened once already; should it fail now, keep what there is.
        if let Ok((connection, _)) = self.shared.config.open() {
            tracing::warn!("Redis did not answer in time: opening a fresh connection");
            current.connection = connection;
            current.generation = generation.wrapping_add(1);
        }
    }
}

/// Maps the client's errors onto the store contract: time-outs, outages, undecodable answers.
pub(crate) fn store_error(error: RedisError) -> StoreError {
    if error.is_timeout() {
        return StoreError::Timeout;
    }
    match error.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => StoreError::corrupt(error),
        _ => StoreError::unavailable(error),
    }
}

/// The single-server and cluster connections behind one `ConnectionLike`.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn build_validates_the_configuration() {
        let ok = RedisConfig::new("redis://127.0.0.1:1").build().unwrap();
        assert_eq!(ok.key_prefix(), "portcullis");
        assert!(!ok.is_cluster());
        for prefix in ["", "a{b", "a}b", "a b", "a\nb", &"x".repeat(65)] {
            let result = RedisConfig::new("redis://127.0.0.1")
                .key_prefix(prefix)
                .build();
            assert!(
                matches!(result, Err(ConfigError::InvalidKeyPrefix)),
                "{prefix:?}"
            );
        }
        assert!(matches!(
            RedisConfig::new("not a url").build(),
            Err(ConfigError::InvalidUrl(_))
        ));
        assert!(matches!(
            RedisConfig::cluster(Vec::<String>::new()).build(),
            Err(ConfigError::NoClusterNodes)
        ));
        assert!(matches!(
            RedisConfig::new("redis://127.0.0.1")
                .command_timeout(Duration::ZERO)
                .build(),
            Err(ConfigError::ZeroTimeout)
        ));
        let cluster = RedisConfig::cluster(["redis://127.0.0.1:1", "redis://127.0.0.1:2"])
            .build()
            .unwrap();
        assert!(cluster.is_cluster());
    }

    #[test]
    fn build_outside_a_runtime_is_an_error_not_a_panic() {
        assert!(matches!(
            RedisConfig::new("redis://127.0.0.1").build(),
            Err(ConfigError::NoRuntime)
        ));
    }

    #[test]
    fn from_urls_tells_a_server_from_a_cluster() {
        assert!(matches!(
            RedisConfig::from_urls(" redis://a:1 ").target,
            Target::Single(url) if url == "redis://a:1"
        ));
        assert!(matches!(
            RedisConfig::from_urls("redis://a:1,redis://b:2,").target,
            Target::Cluster(nodes) if nodes == ["redis://a:1", "redis://b:2"]
        ));
    }

    #[test]
    fn stores_and_handles_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<RedisConfig>();
        assert_send_sync::<RedisConnection>();
        assert_send_sync::<ConfigError>();
        #[cfg(feature = "session")]
        assert_send_sync::<crate::RedisSessionStore>();
        #[cfg(feature = "hybrid")]
        assert_send_sync::<crate::RedisRefreshStore>();
        assert_send_sync::<crate::RedisRevocationFeed>();
    }

    #[test]
    fn debug_hides_urls() {
        let config = RedisConfig::new("redis://user:hunter2@127.0.0.1");
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_within_the_timeout() {
        // Port 1 on loopback refuses connections.
        let connection = RedisConfig::new("redis://127.0.0.1:1")
            .command_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let error = connection.ping().await.unwrap_err();
        assert!(
            matches!(error, StoreError::Unavailable(_) | StoreError::Timeout),
            "{error:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
