//! A TCP proxy on loopback that can silently stall connections: it stops forwarding in both
//! directions but keeps every socket open, as a dead network path or a wedged middlebox does,
//! so neither side sees a disconnection. Only the loopback is ever involved.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

/// How often a stalled direction checks whether it may go on.
const POLL: Duration = Duration::from_millis(10);

/// A proxy from a free loopback port to `upstream`. Dropping it closes everything.
#[derive(Debug)]
pub struct StallProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// New connections start stalled while this is set.
    stall_new: AtomicBool,
    connections: Mutex<Vec<Arc<Connection>>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

#[derive(Debug, Default)]
struct Connection {
    stalled: AtomicBool,
    /// The client sent `SUBSCRIBE`: a pub/sub connection.
    subscriber: AtomicBool,
}

impl StallProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let connection = Arc::new(Connection::default());
                connection
                    .stalled
                    .store(accepting.stall_new.load(Ordering::SeqCst), Ordering::SeqCst);
                accepting
                    .connections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(connection.clone());
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                let up = tokio::spawn(forward(client_read, server_write, connection.clone(), true));
                let down = tokio::spawn(forward(server_read, client_write, connection, false));
                accepting
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend([up.abort_handle(), down.abort_handle()]);
            }
        });
        shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task.abort_handle());
        Self { addr, shared }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://<addr>`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Stalls every pub/sub connection open now (those whose client sent `SUBSCRIBE`); the
    /// others, and new ones, keep working.
    pub fn stall_subscribers(&self) {
        for connection in self.connections() {
            if connection.subscriber.load(Ordering::SeqCst) {
                connection.stalled.store(true, Ordering::SeqCst);
            }
        }
    }

    /// Stalls every connection open now and every new one until [`StallProxy::reroute`].
    pub fn stall_all(&self) {
        self.shared.stall_new.store(true, Ordering::SeqCst);
        for connection in self.connections() {
            connection.stalled.store(true, Ordering::SeqCst);
        }
    }

    /// New connections work again; stalled ones stay stalled, as flows on a dead path do
    /// after the route has changed.
    pub fn reroute(&self) {
        self.shared.stall_new.store(false, Ordering::SeqCst);
    }

    fn connections(&self) -> Vec<Arc<Connection>> {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        for task in self
            .shared
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
            task.abort();
        }
    }
}

/// Copies `from` to `to` while the connection is not stalled; a stalled direction neither
/// reads nor writes, and closes nothing.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    connection: Arc<Connection>,
    from_client: bool,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        while connection.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(POLL).await;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        if from_client && chunk.windows(9).any(|window| window == b"SUBSCRIBE") {
            connection.subscriber.store(true, Ordering::SeqCst);
        }
        while connection.stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(POLL).await;
        }
        if to.write_all(chunk).await.is_err() {
            return;
        }
    }
}
