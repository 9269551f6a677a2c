//! `run_all` against the built-in memory stores: every case listed, every case passing.

use std::sync::Arc;

use portcullis_hybrid::MemoryRefreshStore;
use portcullis_session::{MemoryStore, MemoryStoreConfig};
use portcullis_testkit::conformance::{refresh_store, session_store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_session_store_passes_every_case() {
    session_store::run_all(|clock| {
        MemoryStore::with_config(MemoryStoreConfig::default().clock(Arc::new(clock)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_refresh_store_passes_every_case() {
    refresh_store::run_all(|clock| MemoryRefreshStore::new().with_clock(Arc::new(clock))).await;
}
