//! Issue 18, token items, black-box over HTTP against examples/jwt-api and examples/hybrid-app:
//! `auth_time` bounds, `crit` headers, generic error descriptions, refresh-token reuse however
//! old, access tokens capped at their session, and logout-all reaching tokens of sessions that
//! had already expired.

use std::{
    collections::HashMap,
    net::SocketAddr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis_jwt::{IssueOptions, TokenIssuer};
use portcullis_tests::http::serve;
use reqwest::{Response, header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const SECRET: &str = "0123456789abcdef0123456789abcdef-hardening";

fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

/// jwt-api on an HS256 secret the test also holds, and an issuer signing as the app does.
async fn jwt_api(vars: &[(&str, &str)]) -> (SocketAddr, TokenIssuer) {
    let mut all = vec![("JWT_HS256_SECRET", SECRET), ("JWT_ALG", "HS256")];
    all.extend_from_slice(vars);
    let settings = jwt_api::Settings::from_lookup(lookup(&all)).unwrap();
    let state = jwt_api::AppState::from_settings(&settings).await.unwrap();
    let issuer = state.issuer().clone();
    (serve(jwt_api::app(state)).await, issuer)
}

/// hybrid-app on an HS256 secret the test also holds, and an issuer signing as the app does.
async fn hybrid_app(vars: &[(&str, &str)]) -> (SocketAddr, TokenIssuer) {
    let mut all = vec![("JWT_HS256_SECRET", SECRET), ("JWT_ALG", "HS256")];
    all.extend_from_slice(vars);
    let settings = hybrid_app::Settings::from_lookup(lookup(&all)).unwrap();
    let (_, issuer) = settings.sessions_builder().unwrap();
    let state = hybrid_app::AppState::from_settings(&settings)
        .await
        .unwrap();
    (serve(hybrid_app::app(state)).await, issuer)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// HMAC-SHA256 (RFC 2104), to sign headers `TokenIssuer` would never write.
fn hs256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn forge(header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = hs256(SECRET.as_bytes(), input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

async fn get_me(addr: SocketAddr, token: &str) -> Response {
    reqwest::Client::new()
        .get(format!("http://{addr}/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn post_json(addr: SocketAddr, path: &str, body: &Value) -> Response {
    reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

fn challenge(response: &Response) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn credentials_token(addr: SocketAddr) -> Value {
    let response = post_json(
        addr,
        "/token",
        &json!({"username": "alice", "password": "alice-password-1"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// Asserts a 401 `invalid_token` whose description names no check.
async fn assert_generic_invalid_token(response: Response, what: &str) {
    assert_eq!(response.status(), 401, "{what}");
    let challenge = challenge(&response);
    assert!(
        challenge
            .ends_with(r#"error="invalid_token", error_description="the access token is invalid""#),
        "{what}: {challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error_description"], "the access token is invalid",
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_api_refuses_future_or_impossible_auth_time_and_any_crit() {
    let (addr, issuer) = jwt_api(&[]).await;
    let user = json!({"user": "alice", "role": "advertiser"});
    let with_auth_time = |auth_time: Value| {
        let mut claims = user.clone();
        claims["auth_time"] = auth_time;
        issuer.issue("alice", &claims).unwrap().token
    };
    // u64::MAX used to panic the connection task (Duration overflow building the identity):
    // the client saw a dropped connection, not an answer.
    for auth_time in [json!(u64::MAX), json!(1e300), json!(unix_now() + 3_600)] {
        let what = format!("auth_time {auth_time}");
        assert_generic_invalid_token(get_me(addr, &with_auth_time(auth_time)).await, &what).await;
    }
    let recent = get_me(addr, &with_auth_time(json!(unix_now()))).await;
    assert_eq!(recent.status(), 200);

    // RFC 7515 §4.1.11: `crit` must list understood extensions; `null` used to pass as absent.
    let claims = json!({
        "sub": "alice", "iss": jwt_api::DEFAULT_ISSUER, "user": "alice", "role": "advertiser",
        "exp": unix_now() + 600, "iat": unix_now(),
    });
    let good = forge(&json!({"alg": "HS256", "typ": "JWT"}), &claims);
    assert_eq!(
        claims_of(&issuer.issue("alice", &user).unwrap().token)["iss"],
        claims["iss"],
        "the forged claims match the app's issuer"
    );
    assert_eq!(
        get_me(addr, &good).await.status(),
        200,
        "the forgery is sound"
    );
    for crit in [Value::Null, json!([]), json!(["exp"]), json!("exp")] {
        let token = forge(
            &json!({"alg": "HS256", "typ": "JWT", "crit": crit}),
            &claims,
        );
        assert_generic_invalid_token(get_me(addr, &token).await, &format!("crit {crit}")).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_app_auth_time_survives_refresh_and_impossible_ones_are_refused() {
    let (addr, issuer) = hybrid_app(&[]).await;
    let tokens = credentials_token(addr).await;
    let access = str_of(&tokens, "access_token");
    let auth_time = claims_of(access)["auth_time"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let refreshed: Value = post_json(
        addr,
        "/refresh",
        &json!({"refresh_token": str_of(&tokens, "refresh_token")}),
    )
    .await
    .json()
    .await
    .unwrap();
    let reminted = claims_of(str_of(&refreshed, "access_token"));
    assert_eq!(reminted["auth_time"], auth_time, "a refresh is not a login");
    assert!(reminted["iat"].as_u64().unwrap() > auth_time);

    let sid = str_of(&claims_of(access), "sid").to_owned();
    let forged = issuer
        .issue_with(
            "alice",
            &json!({"sid": sid, "user": {"user": "alice", "role": "advertiser"}, "auth_time": u64::MAX}),
            &IssueOptions::new().typ("at+jwt"),
        )
        .unwrap();
    // hybrid-app's realm differs; the description is the same generic one.
    let response = get_me(addr, &forged.token).await;
    assert_eq!(response.status(), 401);
    assert!(challenge(&response).contains(r#"error_description="the access token is invalid""#));
    assert_eq!(get_me(addr, access).await.status(), 200, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_app_revokes_a_session_on_a_refresh_token_retired_twenty_rotations_ago() {
    let (addr, _) = hybrid_app(&[("REFRESH_GRACE_SECS", "0")]).await;
    let tokens = credentials_token(addr).await;
    let first = str_of(&tokens, "refresh_token").to_owned();
    let mut current = tokens;
    for _ in 0..20 {
        let response = post_json(
            addr,
            "/refresh",
            &json!({"refresh_token": str_of(&current, "refresh_token")}),
        )
        .await;
        assert_eq!(response.status(), 200);
        current = response.json().await.unwrap();
    }
    let access = str_of(&current, "access_token");
    assert_eq!(get_me(addr, access).await.status(), 200);
    let replay = post_json(addr, "/refresh", &json!({"refresh_token": first})).await;
    assert_eq!(replay.status(), 401);
    // Before: "unknown token", nothing revoked. Now the session is over everywhere.
    assert_eq!(get_me(addr, access).await.status(), 401);
    let next = post_json(
        addr,
        "/refresh",
        &json!({"refresh_token": str_of(&current, "refresh_token")}),
    )
    .await;
    assert_eq!(next.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_app_access_tokens_end_with_their_session_and_logout_all_reaches_expired_ones() {
    // Sessions of 2 s, access tokens of 10 min, leeway 30 s.
    let (addr, _) = hybrid_app(&[
        ("REFRESH_TTL_SECS", "2"),
        ("REFRESH_ABSOLUTE_SECS", "2"),
        ("ACCESS_TTL_SECS", "600"),
        ("JWT_LEEWAY_SECS", "30"),
    ])
    .await;
    let old = credentials_token(addr).await;
    let expires_in = old["expires_in"].as_u64().unwrap();
    assert!(expires_in <= 2, "capped at the session's end: {expires_in}");
    let old_access = str_of(&old, "access_token").to_owned();
    assert!(claims_of(&old_access)["exp"].as_u64().unwrap() <= unix_now() + 2);

    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // The session is over; its access token is inside the leeway, and the store no longer
    // knows the session, so only a per-user revocation can reach the token.
    assert_eq!(get_me(addr, &old_access).await.status(), 200);
    let current = credentials_token(addr).await;
    let logout_all = reqwest::Client::new()
        .post(format!("http://{addr}/logout-all"))
        .bearer_auth(str_of(&current, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout_all.status(), 200);
    assert_generic_invalid_token(get_me(addr, &old_access).await, "expired session").await;
    assert_eq!(
        get_me(addr, str_of(&current, "access_token"))
            .await
            .status(),
        401
    );
    // A login right after (well within the same second) works.
    let fresh = credentials_token(addr).await;
    assert_eq!(
        get_me(addr, str_of(&fresh, "access_token")).await.status(),
        200
    );
}
