//! A TCP proxy on loopback that can take its upstream "down" and bring it back: while down it
//! resets every open connection and refuses new ones (accepts and closes them at once), as a
//! crashed or restarting database server does. Lets a test cut an app off the shared database
//! without stopping the server other tests use. Plain threads, so sync tests can use it.

use std::{
    io,
    net::{Shutdown, TcpListener, TcpStream},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
    },
    thread,
};

/// A proxy from a free loopback port to an upstream address. Dropping it takes it down.
#[derive(Debug)]
pub struct SwitchProxy {
    addr: String,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    up: AtomicBool,
    /// Both ends of every forwarded connection, to reset them when going down.
    open: Mutex<Vec<TcpStream>>,
}

impl SwitchProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`HOST:PORT`) while `up`.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound.
    pub fn start(upstream: &str, up: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("a bound address").to_string();
        let shared = Arc::new(Shared::default());
        shared.up.store(up, Ordering::SeqCst);
        let accepting = shared.clone();
        let upstream = upstream.to_owned();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !accepting.up.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                if let Err(error) = accepting.track(&client, &server) {
                    eprintln!("switch proxy: {error}");
                    continue;
                }
                pipe(&client, &server);
                pipe(&server, &client);
            }
        });
        Self { addr, shared }
    }

    /// `127.0.0.1:PORT`, where clients connect.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Resets every open connection and refuses new ones until [`SwitchProxy::up`].
    pub fn down(&self) {
        self.shared.up.store(false, Ordering::SeqCst);
        let open = std::mem::take(
            &mut *self
                .shared
                .open
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for stream in open {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Forwards new connections again.
    pub fn up(&self) {
        self.shared.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for SwitchProxy {
    fn drop(&mut self) {
        self.down();
    }
}

impl Shared {
    fn track(&self, client: &TcpStream, server: &TcpStream) -> io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.push(client.try_clone()?);
        open.push(server.try_clone()?);
        Ok(())
    }
}

/// Copies `from` into `to` on a thread of its own until either side closes.
fn pipe(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    });
}
