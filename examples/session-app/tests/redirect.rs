//! The server-rendered flow over real HTTP: an anonymous visitor to a protected page is sent to
//! the login page with a `next` parameter and comes back there after signing in; a hostile
//! `next` never leads off the site (OWASP Unvalidated Redirects and Forwards Cheat Sheet); the
//! JSON routes keep answering 401.

use std::net::SocketAddr;

use portcullis_session::{MemoryStore, SessionLayer};
use reqwest::{Client, Response, StatusCode, header, redirect::Policy};
use session_app::{DemoUsers, Settings, app};

async fn start() -> (Client, String) {
    let layer = SessionLayer::new(MemoryStore::new(), Settings::default().session_config())
        .expect("a valid session configuration");
    let addr: SocketAddr = portcullis_tests::http::serve(app(layer, DemoUsers::new())).await;
    // Redirects are what is under test: never follow them.
    let client = Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("a client");
    (client, format!("http://{addr}"))
}

fn location(response: &Response) -> &str {
    response.headers()[header::LOCATION]
        .to_str()
        .expect("ASCII")
}

/// The `__Host-session=...` pair a response sets.
fn session_cookie(response: &Response) -> String {
    let set_cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .expect("ASCII");
    assert!(set_cookie.starts_with("__Host-session="), "{set_cookie}");
    set_cookie.split(';').next().expect("a pair").to_owned()
}

/// Posts the login form as a browser does (same-origin, form-encoded).
async fn login_form(client: &Client, base: &str, password: &str, next: &str) -> Response {
    let form = serde_urlencoded::to_string([
        ("username", "alice"),
        ("password", password),
        ("next", next),
    ])
    .expect("an encodable form");
    client
        .post(format!("{base}/login"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(form)
        .send()
        .await
        .expect("the server answers")
}

#[tokio::test]
async fn anonymous_visitors_go_to_login_and_come_back() {
    let (client, base) = start().await;

    let page = client
        .get(format!("{base}/account?tab=sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&page), "/login?next=%2Faccount%3Ftab%3Dsessions");
    assert_eq!(page.headers()[header::CACHE_CONTROL], "no-store");

    let form = client
        .get(format!("{base}{}", location(&page)))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(
        html.contains(r#"name="next" value="/account?tab=sessions""#),
        "{html}"
    );

    // A wrong password shows the form again, still carrying `next`.
    let wrong = login_form(&client, &base, "wrong", "/account?tab=sessions").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
    let html = wrong.text().await.unwrap();
    assert!(
        html.contains(r#"name="next" value="/account?tab=sessions""#),
        "{html}"
    );

    let signed_in = login_form(&client, &base, "alice-password-1", "/account?tab=sessions").await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&signed_in), "/account?tab=sessions");
    let cookie = session_cookie(&signed_in);

    let account = client
        .get(format!("{base}/account?tab=sessions"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), StatusCode::OK);
    assert!(account.text().await.unwrap().contains("Signed in as alice"));

    // Signed in already: the login page goes straight to `next`.
    let again = client
        .get(format!("{base}/login?next=%2Faccount"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&again), "/account");

    // A session that has ended is anonymous again: back to the login page.
    let logout = client
        .post(format!("{base}/logout"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{}", logout.status());
    let ended = client
        .get(format!("{base}/account"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&ended), "/login?next=%2Faccount");
}

/// `next` values that would lead off the site, or break the `Location` header.
const HOSTILE: &[&str] = &[
    "//evil.example/",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "https://evil.example/",
    "HTTPS://evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "%2F%2Fevil.example",
    "%2f%5cevil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/ok\r\nSet-Cookie: stolen=1",
    "/\u{e9}vil",
    " //evil.example",
];

#[tokio::test]
async fn hostile_next_values_lead_home() {
    let (client, base) = start().await;
    for next in HOSTILE {
        let response = login_form(&client, &base, "alice-password-1", next).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(location(&response), "/", "{next:?}");
        assert!(response.headers().get("stolen").is_none());

        let query = serde_urlencoded::to_string([("next", next)]).unwrap();
        let form = client
            .get(format!("{base}/login?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::OK, "{next:?}");
        let html = form.text().await.unwrap();
        assert!(
            html.contains(r#"name="next" value="/""#),
            "{next:?}: {html}"
        );
        assert!(!html.contains("evil"), "{next:?} echoed: {html}");
    }
}

#[tokio::test]
async fn json_routes_still_answer_401() {
    let (client, base) = start().await;
    for path in ["/me", "/admin", "/sessions"] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(response.headers().get(header::LOCATION).is_none(), "{path}");
    }
    // The home page still shows the login form itself.
    let home = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(home.status(), StatusCode::OK);
    // Broken escapes and invalid UTF-8 are not paths either: the form returns home.
    for query in ["next=%ZZ", "next=%FF%FE", "next=%2F%2F%ZZ"] {
        let form = client
            .get(format!("{base}/login?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::OK, "{query}");
        let html = form.text().await.unwrap();
        assert!(html.contains(r#"name="next" value="/""#), "{query}: {html}");
    }
}
