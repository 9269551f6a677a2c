//! What a scenario logs, captured by a subscriber local to the thread that runs it, so tests
//! running in parallel never see each other's lines.

use std::{
    future::Future,
    io,
    sync::{Arc, Mutex, PoisonError},
};

/// Log lines written by a test's subscriber.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// A plain-text subscriber at `level` writing here.
    pub fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

/// Runs `scenario` on a current-thread runtime (the servers and background tasks it starts
/// included) under a subscriber at `level` local to this thread; returns what was logged.
pub fn logged<F: Future<Output = ()>>(
    level: tracing::Level,
    scenario: impl FnOnce() -> F,
) -> String {
    let logs = Captured::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime");
    tracing::subscriber::with_default(logs.subscriber(level), || runtime.block_on(scenario()));
    drop(runtime);
    logs.text()
}
