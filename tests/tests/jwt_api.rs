//! Black-box HTTP tests of examples/jwt-api over a real socket: the DESIGN contract, RFC 6750
//! challenges, malformed requests, expiry with zero leeway, key sharing and an outside issuer's
//! JWKS.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, http::StatusCode, response::IntoResponse, routing::get};
use jwt_api::{AppState, Settings, app};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer};
use serde_json::{Value, json};

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }
}

/// Sends one raw HTTP/1.1 request (so tests can send what clients should not: duplicate
/// headers, garbage) and reads the whole answer.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect::<Vec<_>>();
        assert!(
            !headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
            "the helper does not decode chunked bodies"
        );
        Reply {
            status,
            headers,
            body: body.to_owned(),
        }
    })
    .await
    .unwrap()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn start(vars: &[(&str, &str)]) -> SocketAddr {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let settings =
        Settings::from_lookup(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .unwrap();
    let state = AppState::from_settings(&settings).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    addr
}

async fn login(addr: SocketAddr, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password}).to_string();
    send(
        addr,
        "POST",
        "/token",
        &[("content-type", "application/json")],
        &body,
    )
    .await
}

async fn token(addr: SocketAddr, username: &str) -> String {
    let reply = login(addr, username, &format!("{username}-password-1")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_me_admin_and_rfc_6750_answers() {
    let addr = start(&[("JWT_AUDIENCE", "https://api.example")]).await;

    let reply = login(addr, "alice", "alice-password-1").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let alice = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(alice.split('.').count(), 3);

    let reply = send(
        addr,
        "GET",
        "/me",
        &[("authorization", &bearer(&alice))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"user": "alice", "role": "advertiser"}));

    // Scheme is case-insensitive (RFC 7235 §2.1).
    let reply = send(
        addr,
        "GET",
        "/me",
        &[("authorization", &format!("bEaReR {alice}"))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);

    let reply = send(addr, "GET", "/me", &[], "").await;
    assert_eq!(reply.status, 401);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="jwt-api""#)
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let reply = send(
        addr,
        "GET",
        "/admin",
        &[("authorization", &bearer(&alice))],
        "",
    )
    .await;
    assert_eq!(reply.status, 403);
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.starts_with(r#"Bearer realm="jwt-api", error="insufficient_scope""#),
        "{challenge}"
    );

    let admin = token(addr, "admin").await;
    let reply = send(
        addr,
        "GET",
        "/admin",
        &[("authorization", &bearer(&admin))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json(), json!({"user": "admin", "role": "admin"}));
    let reply = send(addr, "GET", "/admin", &[], "").await;
    assert_eq!(reply.status, 401);

    // A tampered token: 401 invalid_token with a description, on any route.
    let mut tampered = alice.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    for path in ["/me", "/admin", "/.well-known/jwks.json"] {
        let reply = send(
            addr,
            "GET",
            path,
            &[("authorization", &bearer(&tampered))],
            "",
        )
        .await;
        assert_eq!(reply.status, 401, "{path}");
        let challenge = reply.header("www-authenticate").unwrap();
        assert!(
            challenge.starts_with(
                r#"Bearer realm="jwt-api", error="invalid_token", error_description=""#
            ),
            "{challenge}"
        );
        assert_eq!(reply.json()["error"], "invalid_token");
    }
    let reply = send(
        addr,
        "GET",
        "/me",
        &[("authorization", "Bearer not-a-jwt")],
        "",
    )
    .await;
    assert_eq!(reply.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_logins_and_malformed_requests() {
    let addr = start(&[]).await;
    for (user, password) in [
        ("alice", "wrong"),
        ("mallory", "alice-password-1"),
        ("admin", ""),
    ] {
        let reply = login(addr, user, password).await;
        assert_eq!(reply.status, 401, "{user}");
        assert!(reply.json().get("access_token").is_none());
    }
    for body in ["{not json", "[]", r#"{"username":"alice"}"#, ""] {
        let reply = send(
            addr,
            "POST",
            "/token",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        assert_eq!(reply.status, 400, "{body:?}");
    }
    let reply = send(
        addr,
        "POST",
        "/token",
        &[("content-type", "application/x-www-form-urlencoded")],
        "username=alice&password=alice-password-1",
    )
    .await;
    assert_eq!(reply.status, 200);

    let alice = token(addr, "alice").await;
    let two = [
        ("authorization", bearer(&alice)),
        ("authorization", bearer(&alice)),
    ];
    let headers: Vec<(&str, &str)> = two.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let reply = send(addr, "GET", "/me", &headers, "").await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_request""#)
    );
    for value in ["", "Bearer", "Bearer a b c"] {
        let reply = send(addr, "GET", "/me", &[("authorization", value)], "").await;
        assert_eq!(reply.status, 400, "{value:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire_with_zero_leeway() {
    let addr = start(&[("JWT_TTL_SECS", "2"), ("JWT_LEEWAY_SECS", "0")]).await;
    let reply = login(addr, "alice", "alice-password-1").await;
    assert_eq!(reply.json()["expires_in"], 2);
    let alice = reply.json()["access_token"].as_str().unwrap().to_owned();
    let reply = send(
        addr,
        "GET",
        "/me",
        &[("authorization", &bearer(&alice))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let reply = send(
        addr,
        "GET",
        "/me",
        &[("authorization", &bearer(&alice))],
        "",
    )
    .await;
    assert_eq!(reply.status, 401);
    // Which check failed (expiry) is logged, not told (issue 18).
    let challenge = reply.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(!challenge.contains("expired"), "{challenge}");
}

fn header_of(token: &str) -> Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_publishes_public_keys_only() {
    for alg in ["ES256", "EdDSA", "RS256"] {
        let addr = start(&[("JWT_ALG", alg)]).await;
        let alice = token(addr, "alice").await;
        let header = header_of(&alice);
        assert_eq!(header["alg"], alg);
        let reply = send(addr, "GET", "/.well-known/jwks.json", &[], "").await;
        assert_eq!(reply.status, 200);
        let keys = reply.json()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 1, "{alg}");
        assert_eq!(keys[0]["kid"], header["kid"]);
        assert_eq!(keys[0]["alg"], alg);
        assert!(
            keys[0].get("d").is_none() && keys[0].get("p").is_none(),
            "private key published"
        );
    }
    let addr = start(&[("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef")]).await;
    let reply = send(addr, "GET", "/.well-known/jwks.json", &[], "").await;
    assert_eq!(reply.json(), json!({"keys": []}));
    assert_eq!(header_of(&token(addr, "alice").await)["alg"], "HS256");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_sharing_a_key_accept_each_others_tokens() {
    let secret = [("JWT_HS256_SECRET", "a shared secret of at least 32 bytes!!")];
    let (a, b) = (start(&secret).await, start(&secret).await);
    let from_a = token(a, "alice").await;
    let reply = send(b, "GET", "/me", &[("authorization", &bearer(&from_a))], "").await;
    assert_eq!(reply.status, 200);
    // A differently keyed instance refuses it.
    let c = start(&[("JWT_HS256_SECRET", "another secret of at least 32 bytes!!")]).await;
    let reply = send(c, "GET", "/me", &[("authorization", &bearer(&from_a))], "").await;
    assert_eq!(reply.status, 401);

    let pem = SigningKey::generate(Algorithm::EdDSA)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    let path = std::env::temp_dir().join(format!("jwt-api-test-{}.pem", std::process::id()));
    std::fs::write(&path, pem).unwrap();
    let file = [("JWT_PRIVATE_KEY_FILE", path.to_str().unwrap())];
    let (d, e) = (start(&file).await, start(&file).await);
    let from_d = token(d, "admin").await;
    assert_eq!(header_of(&from_d)["alg"], "EdDSA");
    let reply = send(
        e,
        "GET",
        "/admin",
        &[("authorization", &bearer(&from_d))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    let _ = std::fs::remove_file(path);
}

/// An outside issuer publishing its keys over HTTP, which can be switched off.
async fn outside_issuer(key: &SigningKey, up: bool) -> (String, Arc<AtomicBool>) {
    let jwks = Arc::new(Mutex::new(json!({"keys": [key.public_jwk().unwrap()]})));
    let up = Arc::new(AtomicBool::new(up));
    let flag = up.clone();
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let (jwks, up) = (jwks.clone(), flag.clone());
            async move {
                if !up.load(Ordering::SeqCst) {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
                axum::Json(jwks.lock().unwrap().clone()).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_issuers_tokens_are_accepted_through_its_jwks() {
    let outside_key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (url, _) = outside_issuer(&outside_key, true).await;
    let addr = start(&[
        ("JWT_JWKS_URL", &url),
        ("JWT_ISSUER", "https://auth.example"),
        ("JWT_AUDIENCE", "https://api.example"),
    ])
    .await;
    let outside = TokenIssuer::new(outside_key.clone())
        .issuer("https://auth.example")
        .audience("https://api.example");
    let user = json!({"user": "carol", "role": "admin"});
    let token = outside.issue("carol", &user).unwrap().token;
    let reply = send(
        addr,
        "GET",
        "/admin",
        &[("authorization", &bearer(&token))],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), user);

    // Same keys, wrong audience or issuer: refused.
    for (iss, aud) in [
        ("https://auth.example", "https://other.example"),
        ("https://evil.example", "https://api.example"),
    ] {
        let token = TokenIssuer::new(outside_key.clone())
            .issuer(iss)
            .audience(aud)
            .issue("carol", &user)
            .unwrap()
            .token;
        let reply = send(
            addr,
            "GET",
            "/me",
            &[("authorization", &bearer(&token))],
            "",
        )
        .await;
        assert_eq!(reply.status, 401, "{iss} {aud}");
    }
    // The app's own tokens still work next to the outside issuer's.
    let own = self::token(addr, "alice").await;
    let reply = send(addr, "GET", "/me", &[("authorization", &bearer(&own))], "").await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_issuer_down_at_start_up_gives_503_then_its_tokens_work() {
    let outside_key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let (url, up) = outside_issuer(&outside_key, false).await;
    let addr = start(&[("JWT_JWKS_URL", &url)]).await;
    let token = TokenIssuer::new(outside_key)
        .issuer(jwt_api::DEFAULT_ISSUER)
        .issue("carol", &json!({"user": "carol", "role": "advertiser"}))
        .unwrap()
        .token;
    let reply = send(
        addr,
        "GET",
        "/me",
        &[("authorization", &bearer(&token))],
        "",
    )
    .await;
    assert_eq!(reply.status, 503);
    assert!(reply.header("retry-after").is_some());
    // The app's own tokens are not affected by the outage.
    let own = self::token(addr, "alice").await;
    assert_eq!(
        send(addr, "GET", "/me", &[("authorization", &bearer(&own))], "")
            .await
            .status,
        200
    );

    up.store(true, Ordering::SeqCst);
    let mut status = 0;
    for _ in 0..100 {
        status = send(
            addr,
            "GET",
            "/me",
            &[("authorization", &bearer(&token))],
            "",
        )
        .await
        .status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "the outside issuer's keys never arrived");
}
