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

mod config;

use config::Target;
pub use config::{ConfigError, RedisConfig};

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

    /// A pub/sub connection subscribed to `channel` on one of the nodes, trying each in turn
    /// from `first`, each attempt bounded by the connection and command timeouts; returns the
    /// node that answered (the revocation feed and the near-cache invalidations both listen
    /// this way).
    pub(crate) async fn subscribe(
        &self,
        channel: &str,
        first: usize,
    ) -> Result<(redis::aio::PubSub, usize), StoreError> {
        let nodes = self.nodes();
        let mut last_error = StoreError::Timeout;
        for attempt in 0..nodes.len() {
            let node = first.wrapping_add(attempt) % nodes.len();
            let Some(client) = nodes.get(node) else {
                continue;
            };
            let subscribed =
                tokio::time::timeout(self.connection_timeout() + self.command_timeout(), async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(channel).await?;
                    Ok::<_, RedisError>(pubsub)
                })
                .await;
            match subscribed {
                Ok(Ok(pubsub)) => return Ok((pubsub, node)),
                Ok(Err(error)) => last_error = store_error(error),
                Err(_) => last_error = StoreError::Timeout,
            }
        }
        Err(last_error)
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
mod tests;
