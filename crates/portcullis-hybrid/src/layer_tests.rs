//! The edge layer's response future: decided at once with a static key set, one answer on a
//! second poll whatever the path.

use std::{
    convert::Infallible,
    future::Future,
    task::{Context, Poll, Waker},
};

use axum::body::Body;
use http::{Request, Response, StatusCode, header};
use portcullis_jwt::{Algorithm, IssueOptions, SigningKey, TokenIssuer, Validation};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::*;

async fn sessions(key: &SigningKey) -> HybridSessions {
    HybridSessions::builder(TokenIssuer::new(key.clone()), Validation::new())
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new())
        .build()
        .await
        .unwrap()
}

/// Calls the layer, polls its future to completion, then once more; also says which state the
/// future was in before its first poll.
async fn poll_twice(
    layer: HybridLayer,
    authorization: Option<String>,
) -> (String, StatusCode, StatusCode) {
    let mut service = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<Body>| async {
            tokio::task::yield_now().await;
            Ok::<_, Infallible>(Response::new(Body::from("ok")))
        });
    let mut request = Request::get("/");
    if let Some(value) = authorization {
        request = request.header(header::AUTHORIZATION, value);
    }
    let service = service.ready().await.unwrap();
    let mut future = std::pin::pin!(service.call(request.body(Body::empty()).unwrap()));
    let state = format!("{future:?}");
    let first = std::future::poll_fn(|cx| future.as_mut().poll(cx))
        .await
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else {
        panic!("a second poll is ready at once");
    };
    (state, first.status(), again.status())
}

#[tokio::test]
async fn a_future_polled_again_after_completion_answers_500_on_every_path() {
    let key = SigningKey::generate(Algorithm::HS256).unwrap();
    let sessions = sessions(&key).await;
    let pair = sessions
        .login("alice", &serde_json::json!({"user": "alice"}), None)
        .await
        .unwrap();
    let cases = [
        (
            Some(format!("Bearer {}", pair.access_token())),
            StatusCode::OK,
        ),
        (None, StatusCode::OK),
        (
            Some("Bearer not.a.token".to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        (Some("Bearer".to_owned()), StatusCode::BAD_REQUEST),
    ];
    for (authorization, expected) in cases {
        let (_, first, again) =
            poll_twice(HybridLayer::new(&sessions), authorization.clone()).await;
        assert_eq!(first, expected, "{authorization:?}");
        assert_eq!(
            again,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{authorization:?}"
        );
    }
}

#[tokio::test]
async fn a_static_key_set_never_takes_the_boxed_path() {
    let key = SigningKey::generate(Algorithm::HS256).unwrap();
    let sessions = sessions(&key).await;
    // Signed by a key the set does not know, under a `kid` it has never seen: a static set
    // decides at once (401) instead of waiting for a refetch that cannot happen.
    let stranger = SigningKey::generate(Algorithm::HS256).unwrap();
    assert_ne!(stranger.kid(), key.kid());
    let foreign = TokenIssuer::new(stranger)
        .issue_with(
            "mallory",
            &serde_json::json!({"sid": "x", "user": {}}),
            &IssueOptions::new().typ("at+jwt"),
        )
        .unwrap();
    let (state, first, _) = poll_twice(
        HybridLayer::new(&sessions),
        Some(format!("Bearer {}", foreign.token)),
    )
    .await;
    assert!(state.contains("Rejected"), "{state}");
    assert_eq!(first, StatusCode::UNAUTHORIZED);

    let pair = sessions
        .login("alice", &serde_json::json!({"user": "alice"}), None)
        .await
        .unwrap();
    let (state, first, _) = poll_twice(
        HybridLayer::new(&sessions),
        Some(format!("Bearer {}", pair.access_token())),
    )
    .await;
    assert!(state.contains("Inner"), "{state}");
    assert_eq!(first, StatusCode::OK);
}
