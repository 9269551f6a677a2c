//! The template over HTTP, without a socket: login, `/me`, 401 anonymous, 403 non-admin.

use axum::{
    Router,
    body::Body,
    http::{Request, Response, StatusCode, header},
};
use tower::ServiceExt;

async fn send(app: &Router, request: Request<Body>) -> Response<Body> {
    app.clone()
        .oneshot(request)
        .await
        .expect("the router is infallible")
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let request = Request::get(path);
    let request = match cookie {
        Some(cookie) => request.header(header::COOKIE, cookie),
        None => request,
    };
    request.body(Body::empty()).expect("a valid request")
}

/// Signs in and returns the session cookie (`name=value`).
async fn login(app: &Router, username: &str, password: &str) -> Response<Body> {
    let body = format!(r#"{{"username":"{username}","password":"{password}"}}"#);
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("a valid request");
    send(app, request).await
}

fn cookie(response: &Response<Body>) -> String {
    let set_cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ASCII");
    assert!(set_cookie.starts_with("__Host-session="), "{set_cookie}");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("Secure"),
        "{set_cookie}"
    );
    set_cookie.split(';').next().expect("name=value").to_owned()
}

async fn body(response: Response<Body>) -> serde_json::Value {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("a body");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[tokio::test]
async fn login_me_and_admin() {
    let app = session_template::app().expect("a valid configuration");

    let anonymous = send(&app, get("/me", None)).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(&app, get("/admin", None)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let wrong = login(&app, "alice", "not-her-password").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());

    let alice = login(&app, "alice", "alice-password-1").await;
    assert_eq!(alice.status(), StatusCode::OK);
    let alice = cookie(&alice);
    let me = send(&app, get("/me", Some(&alice))).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(
        body(me).await,
        serde_json::json!({"user": "alice", "role": "advertiser"})
    );
    assert_eq!(
        send(&app, get("/admin", Some(&alice))).await.status(),
        StatusCode::FORBIDDEN
    );

    let admin = cookie(&login(&app, "admin", "admin-password-1").await);
    assert_eq!(
        send(&app, get("/admin", Some(&admin))).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = session_template::app().expect("a valid configuration");
    let alice = cookie(&login(&app, "alice", "alice-password-1").await);
    let logout = Request::post("/logout")
        .header(header::COOKIE, &alice)
        .body(Body::empty())
        .expect("a valid request");
    assert_eq!(send(&app, logout).await.status(), StatusCode::OK);
    assert_eq!(
        send(&app, get("/me", Some(&alice))).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn cross_site_login_is_refused() {
    let app = session_template::app().expect("a valid configuration");
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/json")
        .header("sec-fetch-site", "cross-site")
        .body(Body::from(
            r#"{"username":"alice","password":"alice-password-1"}"#,
        ))
        .expect("a valid request");
    assert_eq!(send(&app, request).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forms_log_in_and_malformed_logins_get_400() {
    let app = session_template::app().expect("a valid configuration");
    let post = |content_type: &str, body: String| {
        Request::post("/login")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .expect("a valid request")
    };
    let form = "application/x-www-form-urlencoded";
    let ok = post(form, "username=alice&password=alice-password-1".into());
    assert_eq!(send(&app, ok).await.status(), StatusCode::OK);
    for (content_type, body) in [
        (
            "text/plain",
            "username=alice&password=alice-password-1".into(),
        ),
        (form, "username=alice&username=admin&password=x".into()),
        (form, "username=alice".into()),
        (
            form,
            format!("username=alice&password={}", "p".repeat(2000)),
        ),
        ("application/json", "{\"username\":".into()),
    ] {
        let refused = send(&app, post(content_type, body)).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{content_type}");
        assert!(refused.headers().get(header::SET_COOKIE).is_none());
    }
}
