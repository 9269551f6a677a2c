//! The hybrid protocol as the library now owns it (issue 13), black-box over real TCP on
//! 127.0.0.1: logout with an expired access cookie ends the session (memory and Redis), a
//! logout that ends nothing clears nothing, login CSRF is refused in every app and mode, and a
//! user too large for a cookie is a clear 400 at login.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use adboard::Mode;
use axum::{Router, extract::FromRef, response::Response, routing};
use portcullis_core::AuthRejection;
use portcullis_hybrid::{
    CookieTransport, HybridEndpoints, HybridLayer, HybridLogin, HybridSessions, InProcessFeed,
    MemoryRefreshStore,
};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
use portcullis_tests::{http::serve, redis_server};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

const SECRET: &str = "hybrid-protocol-test-secret-of-32-bytes!";

/// hybrid-app with `env`, served on a free loopback port.
async fn hybrid_app(env: &[(&str, &str)]) -> SocketAddr {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = hybrid_app::Settings::from_lookup(|name| env.get(name).cloned()).unwrap();
    let state = hybrid_app::AppState::from_settings(&settings)
        .await
        .unwrap();
    serve(hybrid_app::app(state)).await
}

async fn adboard(mode: Mode, env: &[(&str, &str)]) -> SocketAddr {
    let mut env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.insert("JWT_HS256_SECRET".into(), SECRET.into());
    serve(
        adboard::app(mode, |name| env.get(name).cloned())
            .await
            .unwrap(),
    )
    .await
}

/// `POST path` with `headers` and an optional JSON body, on a fresh client (no cookie jar).
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(format!("http://{addr}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

fn credentials(user: &str) -> Value {
    json!({"username": user, "password": format!("{user}-password-1")})
}

/// The value each `Set-Cookie` gives, by name; an empty value is a deletion.
fn set_cookies(response: &reqwest::Response) -> HashMap<String, String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next()?.split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn challenge(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Signs in with cookies: (access, refresh) cookie values.
async fn cookie_login(addr: SocketAddr, refresh_name: &str) -> (String, String) {
    let login = post(addr, "/login", &[], Some(&credentials("alice"))).await;
    assert_eq!(login.status(), StatusCode::OK);
    let cookies = set_cookies(&login);
    (
        cookies["__Host-access"].clone(),
        cookies[refresh_name].clone(),
    )
}

async fn refresh_with_cookie(addr: SocketAddr, name: &str, value: &str) -> reqwest::Response {
    let cookie = format!("{name}={value}");
    post(addr, "/refresh", &[("cookie", &cookie)], None).await
}

/// The browser idle past the access TTL sends only its (expired) access cookie to
/// `POST /logout`, since the refresh cookie is scoped to `/refresh`: the session must end.
async fn logout_with_an_expired_access_cookie(env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.extend([("ACCESS_TTL_SECS", "1"), ("JWT_LEEWAY_SECS", "0")]);
    let addr = hybrid_app(&env).await;
    let (access, refresh) = cookie_login(addr, "__Secure-refresh").await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let cookie = format!("__Host-access={access}");
    let me = reqwest::Client::new()
        .get(format!("http://{addr}/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "the access cookie expired"
    );

    let logout = post(addr, "/logout", &[("cookie", &cookie)], None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(logout.headers()[header::CACHE_CONTROL], "no-store");
    let cleared = set_cookies(&logout);
    assert_eq!(cleared.get("__Host-access").map(String::as_str), Some(""));
    assert_eq!(
        cleared.get("__Secure-refresh").map(String::as_str),
        Some("")
    );

    let refreshed = refresh_with_cookie(addr, "__Secure-refresh", &refresh).await;
    assert_eq!(
        refreshed.status(),
        StatusCode::UNAUTHORIZED,
        "the session ended"
    );
    assert!(challenge(&refreshed).contains(r#"error="invalid_token""#));
}

#[tokio::test]
async fn logout_with_an_expired_access_cookie_ends_the_session_in_memory() {
    logout_with_an_expired_access_cookie(&[]).await;
}

#[tokio::test]
async fn logout_with_an_expired_access_cookie_ends_the_session_in_redis() {
    let url = redis_server::shared_url();
    let prefix = redis_server::unique_prefix("hproto-logout");
    logout_with_an_expired_access_cookie(&[
        ("REDIS_URL", &url),
        ("REDIS_KEY_PREFIX", &prefix),
        ("JWT_HS256_SECRET", SECRET),
    ])
    .await;
}

#[tokio::test]
async fn a_logout_that_ends_nothing_clears_nothing() {
    let addr = hybrid_app(&[]).await;
    let (access, refresh) = cookie_login(addr, "__Secure-refresh").await;
    let stranger = hybrid_app(&[]).await;
    let (foreign, _) = cookie_login(stranger, "__Secure-refresh").await;
    let mut tampered = access.clone();
    tampered.pop();
    for bad in [foreign.as_str(), &tampered, "garbage"] {
        let cookie = format!("__Host-access={bad}");
        let logout = post(addr, "/logout", &[("cookie", &cookie)], None).await;
        assert_eq!(logout.status(), StatusCode::UNAUTHORIZED, "{bad:.20}");
        assert!(
            set_cookies(&logout).is_empty(),
            "{bad:.20}: cookies cleared"
        );
    }
    // Nothing at all: 401, nothing cleared (issue 18: no more "signed out" answers for a
    // session that lives on).
    let anonymous = post(addr, "/logout", &[], None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&anonymous).is_empty());
    // Cross-site, with the real cookie: refused.
    let cookie = format!("__Host-access={access}");
    let cross = post(
        addr,
        "/logout",
        &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
        None,
    )
    .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(set_cookies(&cross).is_empty());
    // The session is intact.
    let refreshed = refresh_with_cookie(addr, "__Secure-refresh", &refresh).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
}

#[tokio::test]
async fn endpoints_in_both_transports_with_redis() {
    let url = redis_server::shared_url();
    let prefix = redis_server::unique_prefix("hproto-endpoints");
    let env = [
        ("REDIS_URL", url.as_str()),
        ("REDIS_KEY_PREFIX", prefix.as_str()),
        ("JWT_HS256_SECRET", SECRET),
        ("REFRESH_GRACE_SECS", "0"),
    ];
    let addr = hybrid_app(&env).await;
    // Bearer: refresh and logout with the refresh token in a JSON body.
    let tokens: Value = post(addr, "/token", &[], Some(&credentials("alice")))
        .await
        .json()
        .await
        .unwrap();
    let body = json!({"refresh_token": tokens["refresh_token"]});
    let refreshed = post(addr, "/refresh", &[], Some(&body)).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()[header::CACHE_CONTROL], "no-store");
    let tokens: Value = refreshed.json().await.unwrap();
    let body = json!({"refresh_token": tokens["refresh_token"]});
    assert_eq!(
        post(addr, "/logout", &[], Some(&body)).await.status(),
        StatusCode::NO_CONTENT
    );
    let after = post(addr, "/refresh", &[], Some(&body)).await;
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&after).contains(r#"error="invalid_token""#));

    // Cookies: refresh rotates; a refresh of the ended session clears the cookies.
    let (_, refresh) = cookie_login(addr, "__Secure-refresh").await;
    let rotated = refresh_with_cookie(addr, "__Secure-refresh", &refresh).await;
    assert_eq!(rotated.status(), StatusCode::OK);
    let cookies = set_cookies(&rotated);
    let access = cookies["__Host-access"].clone();
    assert_ne!(cookies["__Secure-refresh"], refresh);
    let cookie = format!("__Host-access={access}");
    let all = post(addr, "/logout-all", &[("cookie", &cookie)], None).await;
    assert_eq!(all.status(), StatusCode::OK);
    assert_eq!(all.json::<Value>().await.unwrap()["sessions_ended"], 1);
    let dead = refresh_with_cookie(addr, "__Secure-refresh", &cookies["__Secure-refresh"]).await;
    assert_eq!(dead.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        set_cookies(&dead)
            .get("__Secure-refresh")
            .map(String::as_str),
        Some("")
    );

    // Garbage and duplicates: 400 with a reason, or 401; never a 500.
    for (headers, body) in [
        (
            vec![("content-type", "application/json")],
            r#"{"refresh_token":"a","refresh_token":"b"}"#,
        ),
        (vec![("content-type", "application/json")], "{"),
        (vec![("content-type", "text/plain")], "refresh_token=x"),
    ] {
        let mut request = reqwest::Client::new().post(format!("http://{addr}/refresh"));
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let reply = request.body(body).send().await.unwrap();
        assert_eq!(reply.status(), StatusCode::BAD_REQUEST, "{body}");
    }
    let twice = reqwest::Client::new()
        .post(format!("http://{addr}/logout"))
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
}

/// DESIGN.md: "A cross-site POST /login (by Sec-Fetch-Site or Origin) is refused with 403 in
/// every app and mode" (login CSRF; issue 18 item 4 found adboard's hybrid mode open).
#[tokio::test]
async fn cross_site_login_is_refused_in_every_app_and_mode() {
    let session_app = {
        let settings = session_app::Settings::default();
        let layer = portcullis_session::SessionLayer::new(
            portcullis_session::MemoryStore::new(),
            settings.session_config(),
        )
        .unwrap();
        serve(session_app::app(layer, demo_users::DemoUsers::new())).await
    };
    let jwt_api = {
        let settings = jwt_api::Settings::from_lookup(|name| {
            (name == "JWT_HS256_SECRET").then(|| SECRET.to_owned())
        })
        .unwrap();
        serve(jwt_api::app(
            jwt_api::AppState::from_settings(&settings).await.unwrap(),
        ))
        .await
    };
    let mut targets = vec![
        ("hybrid-app /login", hybrid_app(&[]).await, "/login"),
        ("hybrid-app /token", hybrid_app(&[]).await, "/token"),
        ("session-app", session_app, "/login"),
        ("jwt-api", jwt_api, "/token"),
    ];
    for mode in [Mode::Session, Mode::Jwt, Mode::Hybrid] {
        targets.push(("adboard", adboard(mode, &[]).await, "/login"));
    }
    let wrong = json!({"username": "alice", "password": "not-her-password"});
    for (name, addr, path) in targets {
        for site in [
            [("sec-fetch-site", "cross-site")],
            [("origin", "https://evil.test")],
        ] {
            // Refused before the password is looked at: a wrong one gets 403 as well, not 401
            // (and is not counted against the account).
            for body in [credentials("alice"), wrong.clone()] {
                let reply = post(addr, path, &site, Some(&body)).await;
                assert_eq!(
                    reply.status(),
                    StatusCode::FORBIDDEN,
                    "{name} {path} {site:?} {body}"
                );
                assert!(set_cookies(&reply).is_empty(), "{name}: a cookie was set");
                let body: Value = reply.json().await.unwrap();
                assert_eq!(body["error"], "cross_site_request", "{name}");
            }
        }
        // The same login from the site itself succeeds.
        let same = post(
            addr,
            path,
            &[("sec-fetch-site", "same-origin")],
            Some(&credentials("alice")),
        )
        .await;
        assert_eq!(same.status(), StatusCode::OK, "{name} {path}");
    }
}

#[tokio::test]
async fn adboard_hybrid_logout_ends_the_session_or_says_it_did_not() {
    let env = [("ACCESS_TTL_SECS", "1"), ("JWT_LEEWAY_SECS", "0")];
    let addr = adboard(Mode::Hybrid, &env).await;
    // It used to answer 204 while revoking nothing.
    let anonymous = post(addr, "/logout", &[], None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    let (access, refresh) = cookie_login(addr, "__Host-refresh").await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let cookie = format!("__Host-access={access}; __Host-refresh={refresh}");
    let logout = post(addr, "/logout", &[("cookie", &cookie)], None).await;
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let refreshed = refresh_with_cookie(addr, "__Host-refresh", &refresh).await;
    assert_eq!(refreshed.status(), StatusCode::UNAUTHORIZED);
}

#[derive(Clone)]
struct BigState {
    endpoints: HybridEndpoints,
}

impl FromRef<BigState> for HybridEndpoints {
    fn from_ref(state: &BigState) -> Self {
        state.endpoints.clone()
    }
}

/// An application whose users carry a large profile: too large for a cookie.
async fn big_user_app() -> SocketAddr {
    let key = SigningKey::generate(Algorithm::HS256).unwrap();
    let sessions = HybridSessions::builder(TokenIssuer::new(key), Validation::new())
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new())
        .build()
        .await
        .unwrap();
    let layer = HybridLayer::new(&sessions)
        .cookies(CookieTransport::new())
        .unwrap();
    let user = json!({"user": "alice", "profile": "p".repeat(5_000)});
    let (cookie_user, bearer_user) = (user.clone(), user);
    let state = BigState {
        endpoints: layer.endpoints(),
    };
    let app: Router = Router::new()
        .route(
            "/login",
            routing::post(move |login: HybridLogin| async move {
                login.cookies("alice", &cookie_user).await
            }),
        )
        .route(
            "/token",
            routing::post(move |login: HybridLogin| async move {
                let response: Result<Response, AuthRejection> =
                    login.bearer("alice", &bearer_user).await;
                response
            }),
        )
        .merge(state.endpoints.router())
        .layer(layer)
        .with_state(state);
    serve(app).await
}

#[tokio::test]
async fn a_user_too_large_for_a_cookie_is_refused_at_login_with_a_clear_error() {
    let addr = big_user_app().await;
    let login = post(addr, "/login", &[], None).await;
    assert_eq!(login.status(), StatusCode::BAD_REQUEST);
    assert!(set_cookies(&login).is_empty());
    let body: Value = login.json().await.unwrap();
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("__Host-access") && description.contains("4096"),
        "{description}"
    );
    let token = post(addr, "/token", &[], None).await;
    assert_eq!(
        token.status(),
        StatusCode::OK,
        "the bearer transport has no such limit"
    );
}
