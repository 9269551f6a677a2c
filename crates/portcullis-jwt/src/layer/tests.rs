use std::convert::Infallible;

use axum::{Router, body::Body, routing::get};
use http::{StatusCode, header};
use http_body_util::BodyExt;
use portcullis_core::{Authorized, CurrentUser, Policy, testing::AuthenticateAsLayer};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt};

use super::*;
use crate::{Algorithm, SigningKey, TokenIssuer, Validation};

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct User {
    user: String,
    role: String,
}

#[derive(Default)]
struct IsAdmin;
impl Policy<User> for IsAdmin {
    fn allows(&self, user: &User) -> bool {
        user.role == "admin"
    }
}

fn issuer() -> TokenIssuer {
    TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap()).audience("api")
}

fn app(issuer: &TokenIssuer, session: Option<AuthenticateAsLayer>) -> Router {
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().audience("api"));
    Router::new()
        .route(
            "/me",
            get(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
        )
        .route(
            "/maybe",
            get(|user: Option<CurrentUser<User>>| async move {
                user.map_or("anonymous".to_owned(), |CurrentUser(u)| u.user)
            }),
        )
        .route(
            "/admin",
            get(|_: Authorized<User, IsAdmin>| async { "welcome" }),
        )
        .route("/public", get(|| async { "public" }))
        .layer(
            ServiceBuilder::new()
                .layer(BearerLayer::new(verifier).realm("ads"))
                .option_layer(session),
        )
}

fn token(issuer: &TokenIssuer, role: &str) -> String {
    issuer
        .issue("alice", &json!({"user": "alice", "role": role}))
        .unwrap()
        .token
}

async fn call(
    app: Router,
    path: &str,
    authorization: &[&str],
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::get(path);
    for value in authorization {
        request = request.header(header::AUTHORIZATION, *value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, challenge, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn rfc_6750_responses() {
    let issuer = issuer();
    let good = format!("Bearer {}", token(&issuer, "advertiser"));
    let admin = format!("bearer {}", token(&issuer, "admin"));

    let (status, challenge, body) = call(app(&issuer, None), "/me", &[&good]).await;
    assert_eq!(
        (status, challenge, body.as_str()),
        (StatusCode::OK, None, "alice")
    );

    let (status, challenge, _) = call(app(&issuer, None), "/me", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="ads""#));

    let (status, _, body) = call(app(&issuer, None), "/maybe", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));

    let (status, challenge, body) = call(app(&issuer, None), "/public", &["Bearer a.b.c"]).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an invalid token is refused on any route"
    );
    assert!(
        challenge
            .unwrap()
            .starts_with(r#"Bearer realm="ads", error="invalid_token", error_description=""#)
    );
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_token"
    );

    let (status, challenge, _) = call(app(&issuer, None), "/admin", &[&good]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(challenge.unwrap().contains(r#"error="insufficient_scope""#));
    let (status, _, _) = call(app(&issuer, None), "/admin", &[&admin]).await;
    assert_eq!(status, StatusCode::OK);

    let (status, challenge, body) = call(app(&issuer, None), "/me", &[&good, &good]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(challenge.unwrap().contains(r#"error="invalid_request""#));
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "invalid_request"
    );
    let (status, _, _) = call(app(&issuer, None), "/me", &["Bearer"]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let foreign = format!("Bearer {}", token(&self::issuer(), "admin"));
    let (status, _, _) = call(app(&issuer, None), "/admin", &[&foreign]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn stacks_with_another_mechanism() {
    let issuer = issuer();
    let session = || {
        Some(AuthenticateAsLayer::new(&User {
            user: "bob".into(),
            role: "advertiser".into(),
        }))
    };
    // No bearer token: the other mechanism's caller is used.
    let (status, _, body) = call(app(&issuer, session()), "/me", &[]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "bob"));
    // A valid bearer token comes first (outer layer).
    let good = format!("Bearer {}", token(&issuer, "advertiser"));
    let (_, _, body) = call(app(&issuer, session()), "/me", &[&good]).await;
    assert_eq!(body, "alice");
    // An invalid one is refused, never silently downgraded to the other mechanism.
    let (status, _, _) = call(app(&issuer, session()), "/me", &["Bearer x.y.z"]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn works_on_a_bare_tower_service() {
    let issuer = issuer();
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().audience("api"));
    let service = ServiceBuilder::new()
        .layer(BearerLayer::new(verifier))
        .service_fn(|request: Request<Body>| async move {
            let authentication = request.extensions().get::<Authentication>().unwrap();
            let user: Option<User> = authentication.user().await.unwrap();
            Ok::<_, Infallible>(Response::new(Body::from(
                user.map_or("none".into(), |u| u.role),
            )))
        });
    let request = Request::get("/")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token(&issuer, "admin")),
        )
        .body(Body::empty())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"admin");
}

#[tokio::test]
async fn cookie_tokens_get_the_cross_site_check() {
    let issuer = issuer();
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().audience("api"));
    let app = |layer: BearerLayer| {
        Router::new()
            .route(
                "/me",
                get(|CurrentUser(user): CurrentUser<User>| async move { user.user })
                    .post(|CurrentUser(user): CurrentUser<User>| async move { user.user }),
            )
            .layer(layer)
    };
    let layer = BearerLayer::new(verifier.clone())
        .sources(TokenSources::authorization_header().cookie("__Host-access"));
    let token = token(&issuer, "advertiser");
    let send = |layer: BearerLayer, method: &str, site: &str, cookie: bool| {
        let mut request = Request::builder()
            .method(method)
            .uri("/me")
            .header("sec-fetch-site", site);
        request = if cookie {
            request.header(header::COOKIE, format!("__Host-access={token}"))
        } else {
            request.header(header::AUTHORIZATION, format!("Bearer {token}"))
        };
        app(layer).oneshot(request.body(Body::empty()).unwrap())
    };
    let cases = [
        ("POST", "cross-site", true, StatusCode::FORBIDDEN),
        ("POST", "same-site", true, StatusCode::FORBIDDEN),
        ("POST", "same-origin", true, StatusCode::OK),
        ("GET", "cross-site", true, StatusCode::OK),
        // The header is never sent by a browser on its own: no CSRF exposure.
        ("POST", "cross-site", false, StatusCode::OK),
    ];
    for (method, site, cookie, expected) in cases {
        let response = send(layer.clone(), method, site, cookie).await.unwrap();
        assert_eq!(
            response.status(),
            expected,
            "{method} {site} cookie={cookie}"
        );
    }
    let off = layer.dangerous_disable_cross_site_check();
    let response = send(off, "POST", "cross-site", true).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// Polls the layer's future to completion, then once more.
async fn poll_twice(authorization: Option<String>) -> (StatusCode, StatusCode) {
    use std::task::{Context, Poll};
    let issuer = issuer();
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().audience("api"));
    let mut service = ServiceBuilder::new()
        .layer(BearerLayer::new(verifier))
        .service_fn(|_: Request<Body>| async {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        });
    let mut request = Request::get("/");
    if let Some(value) = authorization {
        let value = value.replace("{token}", &token(&issuer, "advertiser"));
        request = request.header(header::AUTHORIZATION, value);
    }
    let service = service.ready().await.unwrap();
    let mut future = std::pin::pin!(service.call(request.body(Body::empty()).unwrap()));
    let first = std::future::poll_fn(|cx| future.as_mut().poll(cx))
        .await
        .unwrap();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else {
        panic!("a second poll is ready at once");
    };
    (first.status(), again.status())
}

#[tokio::test]
async fn a_future_polled_again_after_completion_answers_500_on_every_path() {
    let cases = [
        (Some("Bearer {token}"), StatusCode::OK),
        (None, StatusCode::OK),
        (Some("Bearer not.a.token"), StatusCode::UNAUTHORIZED),
        (Some("Bearer"), StatusCode::BAD_REQUEST),
    ];
    for (authorization, expected) in cases {
        let (first, again) = poll_twice(authorization.map(str::to_owned)).await;
        assert_eq!(first, expected, "{authorization:?}");
        assert_eq!(
            again,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{authorization:?}"
        );
    }
}

#[cfg(feature = "jwks-url")]
#[tokio::test]
async fn the_boxed_key_fetch_path_also_answers_500_on_a_second_poll() {
    use std::task::{Context, Poll};
    // Nothing listens on port 1: the set never loads, so the token waits for a refetch
    // (the boxed path), then fails closed with 503.
    let keys = crate::KeySet::from_jwks_url(
        "http://127.0.0.1:1/jwks.json",
        crate::JwksOptions::new().timeout(std::time::Duration::from_millis(200)),
    )
    .unwrap();
    let verifier = TokenVerifier::new(keys, Validation::new().audience("api"));
    let mut service = ServiceBuilder::new()
        .layer(BearerLayer::new(verifier))
        .service_fn(|_: Request<Body>| async {
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        });
    let request = Request::get("/")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", token(&issuer(), "admin")),
        )
        .body(Body::empty())
        .unwrap();
    let service = service.ready().await.unwrap();
    let mut future = std::pin::pin!(service.call(request));
    assert!(format!("{future:?}").contains("Waiting"));
    let first = std::future::poll_fn(|cx| future.as_mut().poll(cx))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else {
        panic!("a second poll is ready at once");
    };
    assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    assert_send::<BearerLayer>();
    assert_sync::<BearerLayer>();
    assert_send::<Bearer<axum::routing::Route>>();
    assert_sync::<Bearer<axum::routing::Route>>();
    assert_send::<ResponseFuture<axum::routing::future::RouteFuture<Infallible>, Body, Infallible>>(
    );
    type Full = http_body_util::Full<Bytes>;
    type SyncFuture =
        ResponseFuture<std::future::Ready<Result<Response<Full>, Infallible>>, Full, Infallible>;
    assert_send::<SyncFuture>();
    assert_sync::<SyncFuture>();
    assert_send::<TokenVerifier>();
    assert_sync::<TokenVerifier>();
    assert_send::<crate::KeySet>();
    assert_sync::<crate::KeySet>();
    assert_send::<TokenIssuer>();
    assert_sync::<TokenIssuer>();
}
