//! The stores' command connection silently stalls (a dead path: nothing is closed, so the
//! client sees no disconnection): operations fail within the command timeout meanwhile, and
//! once the route is back the stores work again within seconds, on a fresh connection, not
//! when the operating system finally gives up on the old one.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use portcullis_core::{ManualClock, StoreError};
use portcullis_redis::{RedisConfig, RedisSessionStore};
use portcullis_session::SessionStore;
use portcullis_tests::{
    conformance::session_store::{new_key, record, unique_user},
    redis_server::{RedisServer, unique_prefix},
    stall_proxy::StallProxy,
};

#[tokio::test]
async fn a_store_behind_a_stalled_connection_recovers_once_rerouted() {
    let server = RedisServer::start();
    let proxy = StallProxy::start(SocketAddr::from(([127, 0, 0, 1], server.port()))).await;
    let redis = RedisConfig::new(proxy.url())
        .key_prefix(unique_prefix("store-stall"))
        .connection_timeout(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let clock = ManualClock::new();
    let store = RedisSessionStore::new(redis).with_clock(Arc::new(clock.clone()));
    let key = new_key();
    let session = record(&clock, Some(&unique_user("stall")), 0, 600);
    store.create(&key, &session, None).await.unwrap();
    assert!(store.load(&key).await.unwrap().is_some());

    proxy.stall_all();
    for _ in 0..3 {
        let started = Instant::now();
        let error = store.load(&key).await.unwrap_err();
        assert!(
            matches!(error, StoreError::Timeout | StoreError::Unavailable(_)),
            "{error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_millis(1_500),
            "bounded: {:?}",
            started.elapsed()
        );
    }

    proxy.reroute();
    let rerouted = Instant::now();
    loop {
        if let Ok(Some(loaded)) = store.load(&key).await {
            assert_eq!(loaded, session);
            break;
        }
        assert!(
            rerouted.elapsed() < Duration::from_secs(5),
            "the store still fails {:?} after the route came back",
            rerouted.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "store served again {:?} after the route came back",
        rerouted.elapsed()
    );
}
