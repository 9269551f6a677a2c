//! Black-box tests of examples/hybrid-app over real TCP on 127.0.0.1:0: the HTTP contract of
//! DESIGN.md (routes, bodies, cookie names and attributes, challenges), logout honoured at
//! once, refresh rotation and theft detection, transparent refresh under concurrency.

use std::{
    collections::HashMap,
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use hybrid_app::{AppState, Settings, app};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A response as the wire carried it.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The whole `Set-Cookie` line of cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The value `Set-Cookie` gives cookie `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookie(name).map(|c| {
            c[name.len() + 1..]
                .split(';')
                .next()
                .unwrap_or("")
                .to_owned()
        })
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn challenge(&self) -> &str {
        self.header("www-authenticate").unwrap_or("")
    }
}

/// One HTTP/1.1 request on a fresh connection (a blocking socket on the blocking pool: the
/// test needs nothing more than a few bytes each way).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let method = method.to_owned();
    let path = path.to_owned();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let body = body.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        blocking_http(addr, &method, &path, &headers, body.as_deref())
    })
    .await
    .unwrap()
}

fn blocking_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const SECRET: &str = "0123456789abcdef0123456789abcdef-test-only";

/// Starts hybrid-app with `env` (the variables its README names) on 127.0.0.1:0.
async fn start(env: &[(&str, &str)]) -> SocketAddr {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings = Settings::from_lookup(|name| env.get(name).cloned()).unwrap();
    let state = AppState::from_settings(&settings).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    addr
}

fn credentials(user: &str) -> String {
    json!({"username": user, "password": format!("{user}-password-1")}).to_string()
}

async fn login_cookies(addr: SocketAddr, user: &str) -> Reply {
    http(addr, "POST", "/login", &[JSON], Some(&credentials(user))).await
}

async fn token(addr: SocketAddr, user: &str) -> Value {
    let reply = http(addr, "POST", "/token", &[JSON], Some(&credentials(user))).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()
}

async fn me_bearer(addr: SocketAddr, access: &str) -> Reply {
    let auth = format!("Bearer {access}");
    http(addr, "GET", "/me", &[("authorization", &auth)], None).await
}

async fn refresh_bearer(addr: SocketAddr, refresh: &str) -> Reply {
    let body = json!({ "refresh_token": refresh }).to_string();
    http(addr, "POST", "/refresh", &[JSON], Some(&body)).await
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

#[tokio::test]
async fn cookie_login_sets_the_contract_cookies() {
    let addr = start(&[]).await;
    let reply = login_cookies(addr, "alice").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json(), json!({"user": "alice", "role": "advertiser"}));
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let access = reply.set_cookie("__Host-access").expect("access cookie");
    let refresh = reply
        .set_cookie("__Secure-refresh")
        .expect("refresh cookie");
    for cookie in [access, refresh] {
        for attribute in ["HttpOnly", "Secure", "SameSite=Lax"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
        assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    }
    assert!(access.contains("Path=/;"), "{access}");
    assert!(refresh.contains("Path=/refresh;"), "{refresh}");

    // The access cookie authenticates; the page-level routes answer per role.
    let cookie = format!("__Host-access={}", reply.cookie("__Host-access").unwrap());
    let me = http(addr, "GET", "/me", &[("cookie", &cookie)], None).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json(), json!({"user": "alice", "role": "advertiser"}));
    let admin = http(addr, "GET", "/admin", &[("cookie", &cookie)], None).await;
    assert_eq!(admin.status, 403);

    let admin_login = login_cookies(addr, "admin").await;
    assert_eq!(
        admin_login.json(),
        json!({"user": "admin", "role": "admin"})
    );
    let cookie = format!(
        "__Host-access={}",
        admin_login.cookie("__Host-access").unwrap()
    );
    let admin = http(addr, "GET", "/admin", &[("cookie", &cookie)], None).await;
    assert_eq!(admin.status, 200);

    // The refresh cookie works on POST /refresh and rotates.
    let refresh_cookie = format!(
        "__Secure-refresh={}",
        reply.cookie("__Secure-refresh").unwrap()
    );
    let refreshed = http(
        addr,
        "POST",
        "/refresh",
        &[("cookie", &refresh_cookie)],
        None,
    )
    .await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    assert!(refreshed.cookie("__Host-access").is_some());
    assert_ne!(
        refreshed.cookie("__Secure-refresh"),
        reply.cookie("__Secure-refresh")
    );
    assert!(
        refreshed
            .set_cookie("__Secure-refresh")
            .unwrap()
            .contains("Path=/refresh;")
    );

    // The same request from another site is refused.
    let cross = http(
        addr,
        "POST",
        "/refresh",
        &[
            ("cookie", &refresh_cookie),
            ("sec-fetch-site", "cross-site"),
        ],
        None,
    )
    .await;
    assert_eq!(cross.status, 403);
}

#[tokio::test]
async fn bearer_transport_and_rfc_6750_challenges() {
    let addr = start(&[]).await;
    let tokens = token(addr, "alice").await;
    assert_eq!(tokens["token_type"], "Bearer");
    let expires_in = tokens["expires_in"].as_u64().unwrap();
    assert!((570..=600).contains(&expires_in), "{expires_in}");
    let access = str_of(&tokens, "access_token");
    assert!(!str_of(&tokens, "refresh_token").is_empty());

    let me = me_bearer(addr, access).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json(), json!({"user": "alice", "role": "advertiser"}));
    let admin = http(
        addr,
        "GET",
        "/admin",
        &[("authorization", &format!("Bearer {access}"))],
        None,
    )
    .await;
    assert_eq!(admin.status, 403);
    assert!(admin.challenge().contains("insufficient_scope"));

    let anonymous = http(addr, "GET", "/me", &[], None).await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.challenge().starts_with("Bearer"), "{anonymous:?}");
    assert!(!anonymous.challenge().contains("error="));
    assert_eq!(anonymous.header("cache-control"), Some("no-store"));

    let forged = me_bearer(addr, "eyJhbGciOiJIUzI1NiJ9.e30.x").await;
    assert_eq!(forged.status, 401);
    assert!(forged.challenge().contains(r#"error="invalid_token""#));

    // Without a configured key the app signs with a fresh ES256 key (as jwt-api does) and
    // publishes its public half, never the private one.
    let jwks = http(addr, "GET", "/.well-known/jwks.json", &[], None).await;
    assert_eq!(jwks.status, 200);
    let keys = jwks.json()["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["kty"], "EC");
    assert!(
        keys[0].get("d").is_none(),
        "a private key part was published"
    );
}

#[tokio::test]
async fn rotation_grace_and_reuse_over_http() {
    let addr = start(&[]).await;
    let tokens = token(addr, "alice").await;
    let t0 = str_of(&tokens, "refresh_token").to_owned();
    let first = refresh_bearer(addr, &t0).await;
    assert_eq!(first.status, 200, "{first:?}");
    let t1 = str_of(&first.json(), "refresh_token").to_owned();
    assert_ne!(t0, t1);
    // Inside the grace window (5 s by default) the old token gets the current one.
    let racer = refresh_bearer(addr, &t0).await;
    assert_eq!(racer.status, 200);
    assert_eq!(str_of(&racer.json(), "refresh_token"), t1);
    let access = str_of(&first.json(), "access_token").to_owned();
    assert_eq!(me_bearer(addr, &access).await.status, 200);

    // Without a grace window, replaying t0 is theft: the session is revoked at once.
    let strict = start(&[("REFRESH_GRACE_SECS", "0")]).await;
    let tokens = token(strict, "alice").await;
    let t0 = str_of(&tokens, "refresh_token").to_owned();
    let rotated = refresh_bearer(strict, &t0).await.json();
    let access = str_of(&rotated, "access_token").to_owned();
    let t1 = str_of(&rotated, "refresh_token").to_owned();
    let replay = refresh_bearer(strict, &t0).await;
    assert_eq!(replay.status, 401);
    assert!(replay.challenge().contains(r#"error="invalid_token""#));
    let me = me_bearer(strict, &access).await;
    assert_eq!(
        me.status, 401,
        "the revoked access token is refused immediately"
    );
    assert!(me.challenge().contains(r#"error="invalid_token""#));
    assert_eq!(refresh_bearer(strict, &t1).await.status, 401);
}

#[tokio::test]
async fn bad_and_oversized_refresh_tokens_revoke_nothing() {
    let addr = start(&[]).await;
    let tokens = token(addr, "alice").await;
    let access = str_of(&tokens, "access_token").to_owned();
    let refresh = str_of(&tokens, "refresh_token").to_owned();
    let sid = refresh.split('.').next().unwrap();
    let forged = format!("{sid}.{}", "A".repeat(43));
    let oversized = format!("{sid}.{}", "A".repeat(100_000 / 10));
    for presented in [forged.as_str(), &oversized, "x", "", "a.b"] {
        let reply = refresh_bearer(addr, presented).await;
        assert_eq!(reply.status, 401, "{presented:.30}: {reply:?}");
        let body = json!({ "refresh_token": presented }).to_string();
        let logout = http(addr, "POST", "/logout", &[JSON], Some(&body)).await;
        assert_eq!(logout.status, 401, "{presented:.30}");
    }
    assert_eq!(me_bearer(addr, &access).await.status, 200);
    assert_eq!(refresh_bearer(addr, &refresh).await.status, 200);

    // Malformed bodies are 400 with a reason, never 500.
    for (path, body) in [
        ("/refresh", "{not json"),
        ("/refresh", r#"{"refresh": 1}"#),
        ("/token", "{not json"),
        ("/login", r#"{"username": "alice"}"#),
    ] {
        let reply = http(addr, "POST", path, &[JSON], Some(body)).await;
        assert_eq!(reply.status, 400, "{path} {body}: {reply:?}");
        assert_eq!(reply.json()["error"], "invalid_request");
        assert!(!str_of(&reply.json(), "error_description").is_empty());
    }
    let wrong_type = http(
        addr,
        "POST",
        "/token",
        &[("content-type", "text/plain")],
        Some("x"),
    )
    .await;
    assert_eq!(wrong_type.status, 400);
    let wrong_password = http(
        addr,
        "POST",
        "/token",
        &[JSON],
        Some(r#"{"username": "alice", "password": "nope"}"#),
    )
    .await;
    assert_eq!(wrong_password.status, 401);
    let form = http(
        addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Some("username=alice&password=alice-password-1"),
    )
    .await;
    assert_eq!(form.status, 200);
}

#[tokio::test]
async fn logout_and_logout_all_are_honoured_at_once() {
    let addr = start(&[]).await;
    // Bearer logout.
    let tokens = token(addr, "alice").await;
    let access = str_of(&tokens, "access_token").to_owned();
    let auth = format!("Bearer {access}");
    let logout = http(addr, "POST", "/logout", &[("authorization", &auth)], None).await;
    assert_eq!(logout.status, 204);
    let me = me_bearer(addr, &access).await;
    assert_eq!(me.status, 401);
    assert!(me.challenge().contains(r#"error="invalid_token""#));
    assert_eq!(
        refresh_bearer(addr, str_of(&tokens, "refresh_token"))
            .await
            .status,
        401
    );

    // Cookie logout clears both cookies and the old access cookie stops working.
    let login = login_cookies(addr, "alice").await;
    let cookie = format!("__Host-access={}", login.cookie("__Host-access").unwrap());
    let logout = http(addr, "POST", "/logout", &[("cookie", &cookie)], None).await;
    assert_eq!(logout.status, 204);
    for name in ["__Host-access", "__Secure-refresh"] {
        assert!(logout.set_cookie(name).unwrap().contains("Max-Age=0"));
    }
    assert_eq!(
        http(addr, "GET", "/me", &[("cookie", &cookie)], None)
            .await
            .status,
        401
    );

    // Logout-all ends every session of the user, not other users'.
    let laptop = token(addr, "alice").await;
    let phone = token(addr, "alice").await;
    let admin = token(addr, "admin").await;
    let auth = format!("Bearer {}", str_of(&laptop, "access_token"));
    let all = http(
        addr,
        "POST",
        "/logout-all",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(all.status, 200, "{all:?}");
    for session in [&laptop, &phone] {
        assert_eq!(
            me_bearer(addr, str_of(session, "access_token"))
                .await
                .status,
            401
        );
        assert_eq!(
            refresh_bearer(addr, str_of(session, "refresh_token"))
                .await
                .status,
            401
        );
    }
    assert_eq!(
        me_bearer(addr, str_of(&admin, "access_token")).await.status,
        200
    );

    let anonymous = http(addr, "POST", "/logout", &[], None).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test]
async fn short_access_tokens_expire_and_refresh_brings_them_back() {
    let addr = start(&[("ACCESS_TTL_SECS", "1"), ("JWT_LEEWAY_SECS", "0")]).await;
    let tokens = token(addr, "alice").await;
    assert_eq!(tokens["expires_in"], 1);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let me = me_bearer(addr, str_of(&tokens, "access_token")).await;
    assert_eq!(me.status, 401);
    assert!(me.challenge().contains(r#"error="invalid_token""#));
    let refreshed = refresh_bearer(addr, str_of(&tokens, "refresh_token")).await;
    assert_eq!(refreshed.status, 200);
    assert_eq!(
        me_bearer(addr, str_of(&refreshed.json(), "access_token"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn transparent_refresh_serves_parallel_requests_with_one_new_token() {
    let addr = start(&[
        ("HYBRID_TRANSPARENT_REFRESH", "1"),
        ("ACCESS_TTL_SECS", "1"),
        ("JWT_LEEWAY_SECS", "0"),
    ])
    .await;
    let login = login_cookies(addr, "alice").await;
    assert_eq!(login.status, 200);
    let refresh = login
        .set_cookie("__Host-refresh")
        .expect("__Host-refresh cookie");
    assert!(
        refresh.contains("Path=/;") && refresh.contains("HttpOnly") && refresh.contains("Secure")
    );
    assert!(login.set_cookie("__Secure-refresh").is_none());
    let access = login.cookie("__Host-access").unwrap();
    let refresh = login.cookie("__Host-refresh").unwrap();

    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // The expired access cookie still rides along (or the browser dropped it): both work.
    let stale = format!("__Host-access={access}; __Host-refresh={refresh}");
    let dropped = format!("__Host-refresh={refresh}");
    let requests: Vec<_> = (0..8)
        .map(|i| {
            let cookie = if i % 2 == 0 {
                stale.clone()
            } else {
                dropped.clone()
            };
            tokio::spawn(
                async move { http(addr, "GET", "/me", &[("cookie", &cookie)], None).await },
            )
        })
        .collect();
    let mut new_refresh = Vec::new();
    let mut new_access = String::new();
    for request in requests {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json(), json!({"user": "alice", "role": "advertiser"}));
        new_refresh.push(
            reply
                .cookie("__Host-refresh")
                .expect("a new refresh cookie"),
        );
        new_access = reply.cookie("__Host-access").expect("a new access cookie");
    }
    new_refresh.dedup();
    assert_eq!(
        new_refresh.len(),
        1,
        "every parallel request got the same refresh token"
    );
    assert_ne!(new_refresh[0], refresh);

    // The browser's new cookies keep working, and no theft was detected.
    let cookie = format!(
        "__Host-access={new_access}; __Host-refresh={}",
        new_refresh[0]
    );
    assert_eq!(
        http(addr, "GET", "/me", &[("cookie", &cookie)], None)
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let later = http(addr, "GET", "/me", &[("cookie", &cookie)], None).await;
    assert_eq!(later.status, 200, "{later:?}");
}

#[tokio::test]
async fn instances_sharing_a_key_accept_each_others_tokens() {
    let env = [
        ("JWT_HS256_SECRET", SECRET),
        ("JWT_ISSUER", "https://ads.test"),
    ];
    let first = start(&env).await;
    let second = start(&env).await;
    let tokens = token(first, "alice").await;
    assert_eq!(
        me_bearer(second, str_of(&tokens, "access_token"))
            .await
            .status,
        200
    );

    let stranger = start(&[("JWT_HS256_SECRET", "another-secret-of-thirty-two-bytes!!")]).await;
    assert_eq!(
        me_bearer(stranger, str_of(&tokens, "access_token"))
            .await
            .status,
        401
    );

    let eddsa = start(&[("JWT_ALG", "EdDSA")]).await;
    let jwks = http(eddsa, "GET", "/.well-known/jwks.json", &[], None)
        .await
        .json();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    let tokens = token(eddsa, "admin").await;
    let auth = format!("Bearer {}", str_of(&tokens, "access_token"));
    assert_eq!(
        http(eddsa, "GET", "/admin", &[("authorization", &auth)], None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn the_home_page_is_html() {
    let addr = start(&[]).await;
    let reply = http(addr, "GET", "/", &[], None).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(String::from_utf8_lossy(&reply.body).contains("/refresh"));
}

#[tokio::test]
async fn session_listing_revoke_by_handle_and_login_csrf() {
    let addr = start(&[]).await;
    let laptop = token(addr, "alice").await;
    let phone = token(addr, "alice").await;
    let auth = format!("Bearer {}", str_of(&laptop, "access_token"));
    let listed = http(addr, "GET", "/sessions", &[("authorization", &auth)], None).await;
    assert_eq!(listed.status, 200);
    let listed = listed.json();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let text = listed.to_string();
    assert!(
        !text.contains(str_of(&laptop, "refresh_token")),
        "no secrets in listings"
    );

    // Revoke the phone's session by its id from the laptop: refused at once.
    let phone_sid = str_of(&phone, "refresh_token")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let path = format!("/sessions/{phone_sid}");
    let revoked = http(addr, "DELETE", &path, &[("authorization", &auth)], None).await;
    assert_eq!(revoked.status, 204);
    assert_eq!(
        me_bearer(addr, str_of(&phone, "access_token")).await.status,
        401
    );
    assert_eq!(
        me_bearer(addr, str_of(&laptop, "access_token"))
            .await
            .status,
        200
    );

    // Another user's session is not found, and stays alive.
    let admin = token(addr, "admin").await;
    let admin_sid = str_of(&admin, "refresh_token")
        .split('.')
        .next()
        .unwrap()
        .to_owned();
    let path = format!("/sessions/{admin_sid}");
    let foreign = http(addr, "DELETE", &path, &[("authorization", &auth)], None).await;
    assert_eq!(foreign.status, 404);
    assert_eq!(
        me_bearer(addr, str_of(&admin, "access_token")).await.status,
        200
    );

    // Login CSRF: another site cannot sign the browser in.
    let cross = http(
        addr,
        "POST",
        "/login",
        &[JSON, ("sec-fetch-site", "cross-site")],
        Some(&credentials("alice")),
    )
    .await;
    assert_eq!(cross.status, 403);
    assert!(cross.set_cookies().is_empty());

    // Signing in again from a browser with a session ends the old one.
    let first = login_cookies(addr, "alice").await;
    let old = format!("__Host-access={}", first.cookie("__Host-access").unwrap());
    let again = http(
        addr,
        "POST",
        "/login",
        &[JSON, ("cookie", &old)],
        Some(&credentials("alice")),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        http(addr, "GET", "/me", &[("cookie", &old)], None)
            .await
            .status,
        401
    );
}
