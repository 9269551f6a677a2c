//! Redis as managed services deploy it: TLS only (`rediss://`), the default user off, an ACL
//! user with a password in the URL, allowed only the keys under its prefix and no
//! `@dangerous` command (scripts/redis-tls.sh). Every store passes its conformance suite there;
//! session-app works over HTTP through it; a wrong CA, wrong or missing credentials and a
//! server that never finishes the handshake are store outages (503, fail closed) within the
//! timeout, never a panic; a URL that would skip certificate checks is refused at start-up
//! (OWASP Transport Layer Security Cheat Sheet).

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use portcullis_core::{ManualClock, StoreError};
use portcullis_redis::{
    ConfigError, RedisConfig, RedisRefreshStore, RedisRevocationFeed, RedisSessionStore,
};
use portcullis_session::SessionLayer;
use portcullis_tests::{
    http::{TestClient, serve},
    redis_server::unique_prefix,
    redis_tls::tls_redis,
};
use reqwest::{Method, header};
use serde_json::json;
use session_app::{DemoUsers, Settings};

/// A configuration for the TLS server trusting its CA, under a fresh `pct-` prefix (the only
/// keys the ACL user may touch).
fn config(tag: &str) -> RedisConfig {
    let redis = tls_redis();
    RedisConfig::new(&redis.url)
        .tls_root_certificates(redis.ca_pem())
        .key_prefix(unique_prefix(tag))
}

fn session_store(clock: ManualClock) -> RedisSessionStore {
    RedisSessionStore::new(config("tls-session").build().unwrap()).with_clock(Arc::new(clock))
}

fn refresh_store(clock: ManualClock) -> RedisRefreshStore {
    RedisRefreshStore::new(config("tls-refresh").build().unwrap()).with_clock(Arc::new(clock))
}

fn feed_nodes(clock: ManualClock) -> impl Fn() -> RedisRevocationFeed {
    let config = config("tls-feed");
    move || RedisRevocationFeed::new(config.build().unwrap()).with_clock(Arc::new(clock.clone()))
}

mod conformance {
    mod session_store {
        portcullis_tests::session_store_conformance!(super::super::session_store);
    }

    mod refresh_store {
        portcullis_tests::refresh_store_conformance!(super::super::refresh_store);
    }

    mod revocation_feed {
        portcullis_tests::revocation_feed_conformance!(super::super::feed_nodes);
    }
}

fn users() -> DemoUsers {
    static USERS: OnceLock<DemoUsers> = OnceLock::new();
    USERS.get_or_init(DemoUsers::new).clone()
}

/// session-app on the TLS Redis built from `config`, served on a loopback port.
async fn session_app(config: RedisConfig) -> TestClient {
    let settings = Settings::from_lookup(|_| None).unwrap();
    let store = RedisSessionStore::new(config.build().unwrap());
    let layer = SessionLayer::new(store, settings.session_config()).unwrap();
    TestClient::new(serve(session_app::app(layer, users())).await)
}

async fn login(client: &TestClient) -> reqwest::Response {
    client
        .json(
            Method::POST,
            "/login",
            &json!({"username": "alice", "password": "alice-password-1"}),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_app_signs_in_and_out_through_tls_and_an_acl_user() {
    let client = session_app(config("tls-app")).await;
    assert_eq!(client.get("/me").await.status(), 401);
    let response = login(&client).await;
    assert_eq!(response.status(), 200);
    let me = client.get("/me").await;
    assert_eq!(me.status(), 200);
    assert_eq!(
        me.json::<serde_json::Value>().await.unwrap(),
        json!({"user": "alice", "role": "advertiser"})
    );
    assert_eq!(
        client
            .json(Method::POST, "/logout", &json!({}))
            .await
            .status(),
        204
    );
    assert_eq!(client.get("/me").await.status(), 401);
}

/// What a store outage looks like to a client: 503 with `Retry-After`, not a 500.
async fn assert_login_is_unavailable(config: RedisConfig, why: &str) {
    let client = session_app(config.command_timeout(Duration::from_millis(800))).await;
    let started = Instant::now();
    let response = login(&client).await;
    assert_eq!(response.status(), 503, "{why}");
    assert!(
        response.headers().contains_key(header::RETRY_AFTER),
        "{why}"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_trust_or_credentials_fail_closed() {
    let redis = tls_redis();
    let prefix = unique_prefix("tls-refused");
    // The system roots do not know the test CA: the handshake fails.
    assert_login_is_unavailable(
        RedisConfig::new(&redis.url).key_prefix(&prefix),
        "untrusted certificate",
    )
    .await;
    for (credentials, why) in [
        ("portcullis:wrong-password", "wrong password"),
        ("", "no credentials: the default user is off"),
        ("nobody:secret", "unknown ACL user"),
    ] {
        let config = RedisConfig::new(redis.url_with_credentials(credentials))
            .tls_root_certificates(redis.ca_pem())
            .key_prefix(&prefix);
        assert_login_is_unavailable(config, why).await;
    }
    // What an operator sees: an outage, without the password that was refused.
    let refused = RedisConfig::new(redis.url_with_credentials("portcullis:wrong-password-42"))
        .tls_root_certificates(redis.ca_pem())
        .build()
        .unwrap()
        .ping()
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    assert!(
        !format!("{refused} {refused:?}").contains("wrong-password-42"),
        "{refused:?}"
    );
    // The ACL user is confined to its prefix: a store under another prefix is refused.
    let outside = RedisConfig::new(&redis.url)
        .tls_root_certificates(redis.ca_pem())
        .key_prefix("elsewhere");
    assert_login_is_unavailable(outside, "key outside the ACL").await;
}

#[tokio::test]
async fn a_server_that_never_finishes_the_handshake_is_a_timeout() {
    // Accepts TCP connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let connection = RedisConfig::new(format!("rediss://u:p@{addr}"))
        .tls_root_certificates(tls_redis().ca_pem())
        .connection_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = connection.ping().await.unwrap_err();
    assert!(
        matches!(error, StoreError::Timeout | StoreError::Unavailable(_)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    held.abort();
}

#[tokio::test]
async fn configurations_that_cannot_be_safe_are_refused_at_start_up() {
    let redis = tls_redis();
    let insecure = RedisConfig::new(format!("{}/#insecure", redis.url)).build();
    assert!(
        matches!(insecure, Err(ConfigError::InsecureTls)),
        "{insecure:?}"
    );
    let not_pem = RedisConfig::new(&redis.url)
        .tls_root_certificates(b"not a certificate".to_vec())
        .build();
    assert!(
        matches!(not_pem, Err(ConfigError::InvalidTlsRootCertificates)),
        "{not_pem:?}"
    );
    let missing = RedisConfig::new(&redis.url)
        .tls_root_certificates_file("/nonexistent/ca.pem")
        .build();
    assert!(
        matches!(missing, Err(ConfigError::TlsRootCertificatesFile(_))),
        "{missing:?}"
    );
    // The environment the example apps read: REDIS_URL plus REDIS_TLS_CA_FILE.
    let ca_file = redis.ca_file.to_string_lossy().into_owned();
    let from_env = RedisConfig::from_lookup(|name| match name {
        "REDIS_URL" => Some(redis.url.clone()),
        "REDIS_TLS_CA_FILE" => Some(ca_file.clone()),
        "REDIS_KEY_PREFIX" => Some(unique_prefix("tls-env")),
        _ => None,
    })
    .unwrap()
    .build()
    .unwrap();
    from_env.ping().await.unwrap();
    // Debug output never shows the password.
    let password = redis
        .url
        .rsplit_once('@')
        .unwrap()
        .0
        .rsplit_once(':')
        .unwrap()
        .1;
    assert!(!format!("{from_env:?}{:?}", config("x")).contains(password));
}
