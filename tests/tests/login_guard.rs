//! The login guard (issue 18) black-box over HTTP, on real sockets with the connection's address
//! recorded as the example binaries do: the N+1-th failed login of an account gets 429 with
//! `Retry-After`, the right password waits out the back-off, one address spraying accounts is
//! limited, a saturated check answers 503 with `Retry-After`, instances sharing a Redis share
//! the counts, and a Redis outage fails closed. Then `RedisAttemptCounter` against a real Redis.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use axum::Router;
use portcullis_core::{AttemptCounter, AttemptKey, Backoff, LoginAttempt, LoginGuard};
use portcullis_redis::{RedisAttemptCounter, RedisConfig};
use portcullis_tests::redis_server::{RedisServer, shared_url, unique_prefix};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

/// Serves `app` on a free loopback port, recording each connection's address (as the example
/// binaries do).
async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    addr
}

async fn jwt_api(vars: &[(&str, &str)]) -> SocketAddr {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = jwt_api::Settings::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let state = jwt_api::AppState::from_settings(&settings).await.unwrap();
    serve(jwt_api::app(state)).await
}

struct Answer {
    status: StatusCode,
    retry_after: Option<u64>,
    cache_control: Option<String>,
    body: Value,
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let retry_after = header(header::RETRY_AFTER).map(|v| v.parse().unwrap());
    let cache_control = header(header::CACHE_CONTROL);
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        retry_after,
        cache_control,
        body,
    }
}

async fn token(addr: SocketAddr, username: &str, password: &str) -> Answer {
    post_json(
        addr,
        "/token",
        &json!({"username": username, "password": password}),
    )
    .await
}

#[tokio::test]
async fn the_failed_login_after_the_free_ones_gets_429_and_the_right_password_waits_it_out() {
    let addr = jwt_api(&[("LOGIN_FREE_FAILURES", "3"), ("LOGIN_BACKOFF_SECS", "2")]).await;
    for _ in 0..3 {
        assert_eq!(
            token(addr, "alice", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = token(addr, "alice", "wrong").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    let retry_after = locked.retry_after.expect("Retry-After on 429");
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(locked.cache_control.as_deref(), Some("no-store"));
    assert_eq!(locked.body["error"], "too_many_attempts");
    // The right password does not cut the lock-out short ...
    let right = token(addr, "alice", "alice-password-1").await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(right.retry_after.is_some());
    // ... other accounts are not affected (the address is far from its own limit) ...
    assert_eq!(
        token(addr, "admin", "admin-password-1").await.status,
        StatusCode::OK
    );
    // ... and after the wait it signs in, which resets the account's count.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        token(addr, "alice", "alice-password-1").await.status,
        StatusCode::OK
    );
    for _ in 0..2 {
        assert_eq!(
            token(addr, "alice", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
}

#[tokio::test]
async fn one_address_spraying_many_accounts_is_locked_out_by_its_address() {
    let addr = jwt_api(&[
        ("LOGIN_CLIENT_FREE_FAILURES", "3"),
        ("LOGIN_BACKOFF_SECS", "30"),
    ])
    .await;
    for name in ["user1", "user2", "user3"] {
        assert_eq!(
            token(addr, name, "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    // A fourth account, even with its right password: this address waits.
    let locked = token(addr, "alice", "alice-password-1").await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.retry_after.unwrap() > 20);
}

#[tokio::test]
async fn saturated_password_checks_get_503_with_retry_after_never_500() {
    let addr = jwt_api(&[
        ("LOGIN_MAX_CONCURRENT", "1"),
        ("LOGIN_MAX_WAITING", "0"),
        ("LOGIN_FREE_FAILURES", "1000"),
        ("LOGIN_CLIENT_FREE_FAILURES", "1000"),
    ])
    .await;
    let answers = futures_util::future::join_all(
        (0..24).map(|n| async move { token(addr, &format!("user{n}"), "guess").await }),
    )
    .await;
    let busy: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    let checked = answers
        .iter()
        .filter(|a| a.status == StatusCode::UNAUTHORIZED)
        .count();
    assert_eq!(busy.len() + checked, answers.len(), "only 401 and 503");
    assert!(!busy.is_empty(), "24 logins at once through one check");
    assert!(checked >= 1);
    for answer in busy {
        assert_eq!(answer.retry_after, Some(1));
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
        assert_eq!(answer.body["error"], "temporarily_unavailable");
    }
    // Once the burst is over, logins are checked again.
    assert_eq!(
        token(addr, "alice", "alice-password-1").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn instances_sharing_a_redis_share_the_failed_login_counts() {
    let prefix = unique_prefix("guard-nodes");
    let url = shared_url();
    let vars = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("LOGIN_FREE_FAILURES", "2"),
        ("LOGIN_BACKOFF_SECS", "30"),
        (
            "JWT_HS256_SECRET",
            "a shared secret of at least thirty-two bytes",
        ),
    ];
    let first = jwt_api(&vars).await;
    let second = jwt_api(&vars).await;
    assert_eq!(
        token(first, "alice", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        token(second, "alice", "wrong").await.status,
        StatusCode::UNAUTHORIZED
    );
    for addr in [first, second] {
        let locked = token(addr, "alice", "alice-password-1").await;
        assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    }
}

#[tokio::test]
async fn a_redis_outage_fails_logins_closed_with_503_and_they_recover() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let addr = jwt_api(&[("REDIS_URL", url.as_str())]).await;
    assert_eq!(
        token(addr, "alice", "alice-password-1").await.status,
        StatusCode::OK
    );
    redis.kill();
    for password in ["alice-password-1", "wrong"] {
        let answer = token(addr, "alice", password).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{password}");
        assert!(answer.retry_after.is_some());
        assert_eq!(answer.cache_control.as_deref(), Some("no-store"));
    }
    redis.restart();
    let mut recovered = false;
    for _ in 0..50 {
        if token(addr, "alice", "alice-password-1").await.status == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "logins work again once Redis is back");
}

fn redis_counter(prefix: &str) -> RedisAttemptCounter {
    let redis = RedisConfig::new(shared_url())
        .key_prefix(prefix)
        .build()
        .unwrap();
    RedisAttemptCounter::new(redis)
}

#[tokio::test]
async fn redis_counter_backs_off_as_backoff_says_and_resets() {
    let counter = redis_counter(&unique_prefix("guard-counter"));
    let key = AttemptKey::from_bytes([3; 32]);
    let other = AttemptKey::from_bytes([4; 32]);
    let backoff = Backoff::new(3, Duration::from_secs(10)).max(Duration::from_secs(60));
    for failures in 1..=7 {
        let lockout = counter.record_failure(&key, &backoff).await.unwrap();
        assert_eq!(
            lockout,
            backoff.lockout_after(failures),
            "failure {failures}"
        );
    }
    let left = counter.lockout(&key).await.unwrap().unwrap();
    assert!(left > Duration::from_secs(55) && left <= Duration::from_secs(60));
    assert_eq!(counter.lockout(&other).await.unwrap(), None);
    counter.reset(&key).await.unwrap();
    assert_eq!(counter.lockout(&key).await.unwrap(), None);
    assert_eq!(counter.record_failure(&key, &backoff).await.unwrap(), None);
}

#[tokio::test]
async fn redis_lockouts_end_by_themselves() {
    let counter = redis_counter(&unique_prefix("guard-expiry"));
    let key = AttemptKey::from_bytes([5; 32]);
    let backoff = Backoff::new(1, Duration::from_millis(300));
    let lockout = counter.record_failure(&key, &backoff).await.unwrap();
    assert_eq!(lockout, Some(Duration::from_millis(300)));
    assert!(counter.lockout(&key).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(counter.lockout(&key).await.unwrap(), None);
}

#[tokio::test]
async fn redis_keys_name_no_account_or_address_and_all_expire() {
    let prefix = unique_prefix("guard-keys");
    let guard = LoginGuard::new(redis_counter(&prefix)).key_secret(b"test secret");
    let attempt = LoginAttempt::new("very-recognisable-name")
        .with_client(Some("192.0.2.77".parse().unwrap()));
    let refused = guard
        .verify(attempt, || {
            Err::<(), _>(portcullis_core::AuthRejection::invalid_credentials("no"))
        })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), 401);
    let client = redis::Client::open(shared_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(
        keys.len(),
        2,
        "one count per account and per address: {keys:?}"
    );
    for key in keys {
        let hash = key
            .strip_prefix(&format!("{{{prefix}:la:"))
            .and_then(|rest| rest.strip_suffix("}:n"))
            .unwrap_or_else(|| panic!("unexpected key {key}"));
        assert!(
            hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{key}"
        );
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} expires");
    }
}

const TWO_FREE_FAILURES: [(&str, &str); 2] =
    [("LOGIN_FREE_FAILURES", "2"), ("LOGIN_BACKOFF_SECS", "60")];

fn lookup(name: &str) -> Option<String> {
    TWO_FREE_FAILURES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| (*v).to_owned())
}

fn guarded_users() -> demo_users::DemoUsers {
    let settings = demo_users::LoginGuardSettings::from_lookup(lookup).unwrap();
    demo_users::DemoUsers::new().with_login_guard(settings.guard(None))
}

/// Two wrong passwords, then the right one: 429 with `Retry-After`, on `path` of the app at
/// `addr`.
async fn locks_out(addr: SocketAddr, path: &str) {
    for _ in 0..2 {
        let wrong = post_json(
            addr,
            path,
            &json!({"username": "alice", "password": "wrong"}),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let right = post_json(
        addr,
        path,
        &json!({"username": "alice", "password": "alice-password-1"}),
    )
    .await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "{path}");
    assert!(right.retry_after.unwrap() > 30, "{path}");
}

#[tokio::test]
async fn every_example_login_runs_inside_the_guard() {
    // session-app
    let settings = session_app::Settings::from_lookup(|_| None).unwrap();
    let layer = portcullis_session::SessionLayer::new(
        portcullis_session::MemoryStore::new(),
        settings.session_config(),
    )
    .unwrap();
    locks_out(
        serve(session_app::app(layer, guarded_users())).await,
        "/login",
    )
    .await;
    // hybrid-app
    let settings = hybrid_app::Settings::from_lookup(lookup).unwrap();
    let state = hybrid_app::AppState::from_settings(&settings)
        .await
        .unwrap();
    locks_out(serve(hybrid_app::app(state)).await, "/login").await;
    // adboard, in each mode
    for mode in [
        adboard::Mode::Session,
        adboard::Mode::Jwt,
        adboard::Mode::Hybrid,
    ] {
        let app = adboard::app(mode, lookup).await.unwrap();
        locks_out(serve(app).await, "/login").await;
    }
    // mixed: the cookie and the token route share the account's count.
    let addr = serve(mixed::app(guarded_users()).unwrap()).await;
    locks_out(addr, "/token").await;
    let login = post_json(
        addr,
        "/login",
        &json!({"username": "alice", "password": "alice-password-1"}),
    )
    .await;
    assert_eq!(login.status, StatusCode::TOO_MANY_REQUESTS);
    // hyper-plain, whose accept loop records each connection's address itself.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper_plain::service(guarded_users()).unwrap();
    tokio::spawn(hyper_plain::serve(listener, service));
    locks_out(addr, "/login").await;
}

#[tokio::test]
async fn session_app_form_logins_see_the_lockout_on_the_login_page() {
    let settings = session_app::Settings::from_lookup(|_| None).unwrap();
    let layer = portcullis_session::SessionLayer::new(
        portcullis_session::MemoryStore::new(),
        settings.session_config(),
    )
    .unwrap();
    let addr = serve(session_app::app(layer, guarded_users())).await;
    let form = |password: &'static str| {
        reqwest::Client::new()
            .post(format!("http://{addr}/login"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("username=alice&password={password}"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            form("wrong").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let locked = form("alice-password-1").await.unwrap();
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(locked.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(locked.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        locked
            .text()
            .await
            .unwrap()
            .contains("Too many failed logins")
    );
}
