//! The template over HTTP, without a socket: login, `/me`, 401 anonymous, 403 non-admin,
//! refresh and logout.

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode, header},
};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone()
        .oneshot(request)
        .await
        .expect("the router is infallible")
}

fn request(method: &str, path: &str, cookie: Option<&str>) -> Request<Body> {
    let request = Request::builder().method(method).uri(path);
    let request = match cookie {
        Some(cookie) => request.header(header::COOKIE, cookie),
        None => request,
    };
    request.body(Body::empty()).expect("a valid request")
}

async fn body(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("a body");
    serde_json::from_slice(&bytes).expect("JSON")
}

async fn login(app: &Router, path: &str, username: &str, password: &str) -> Response<Body> {
    let credentials = json!({"username": username, "password": password}).to_string();
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(credentials))
        .expect("a valid request");
    send(app, request).await
}

/// The `name=value` of the cookie called `name` the response sets.
fn cookie(response: &Response<Body>, name: &str) -> String {
    let found = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .find_map(|value| {
            let value = value.to_str().ok()?;
            value
                .starts_with(&format!("{name}="))
                .then(|| value.split(';').next())?
        });
    found
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_owned()
}

#[tokio::test]
async fn login_me_admin_refresh_logout() {
    let app = hybrid_template::app().await.expect("a valid configuration");
    assert_eq!(
        send(&app, request("GET", "/me", None)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let wrong = login(&app, "/login", "alice", "wrong").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let alice = login(&app, "/login", "alice", "alice-password-1").await;
    assert_eq!(alice.status(), StatusCode::OK);
    let access = cookie(&alice, "__Host-access");
    let refresh = cookie(&alice, "__Secure-refresh");
    assert_eq!(
        body(alice).await,
        json!({"user": "alice", "role": "advertiser"})
    );
    let me = send(&app, request("GET", "/me", Some(&access))).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(body(me).await["user"], "alice");
    let admin = send(&app, request("GET", "/admin", Some(&access))).await;
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);

    // Refresh rotates the refresh token; the old one is then spent.
    let refreshed = send(&app, request("POST", "/refresh", Some(&refresh))).await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let access = cookie(&refreshed, "__Host-access");
    assert_ne!(cookie(&refreshed, "__Secure-refresh"), refresh);

    // Logout revokes the session: its access token is refused at once.
    let logout = send(&app, request("POST", "/logout", Some(&access))).await;
    assert!(logout.status().is_success(), "{}", logout.status());
    assert_eq!(
        send(&app, request("GET", "/me", Some(&access)))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bearer_transport_and_admin() {
    let app = hybrid_template::app().await.expect("a valid configuration");
    let response = login(&app, "/token", "admin", "admin-password-1").await;
    assert_eq!(response.status(), StatusCode::OK);
    let tokens = body(response).await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let bearer = format!(
        "Bearer {}",
        tokens["access_token"].as_str().expect("a token")
    );
    let admin = Request::get("/admin")
        .header(header::AUTHORIZATION, bearer)
        .body(Body::empty())
        .expect("a valid request");
    assert_eq!(send(&app, admin).await.status(), StatusCode::OK);
}
