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
