//! Test helpers for applications: make a request come from a given user, so handlers can be
//! tested without real credentials. Behind the `testing` feature; never enable it in production
//! builds.

use std::{
    sync::Arc,
    task::{Context, Poll},
    time::SystemTime,
};

use http::Request;
use serde::Serialize;
use tower_layer::Layer;
use tower_service::Service;

use crate::{Authentication, Identity, Mechanism};

/// Makes every request come from one user (or from nobody).
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis_core::{CurrentUser, testing::AuthenticateAsLayer};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { user: String }
///
/// let app: Router = Router::new()
///     .route("/me", get(|CurrentUser(u): CurrentUser<User>| async move { u.user }))
///     .layer(AuthenticateAsLayer::new(&User { user: "alice".into() }));
/// ```
#[derive(Debug, Clone)]
pub struct AuthenticateAsLayer {
    identity: Option<Arc<Identity>>,
}

impl AuthenticateAsLayer {
    /// Requests come from `user`.
    ///
    /// # Panics
    ///
    /// When `user` cannot be serialized, which is a bug in the test.
    pub fn new<U: Serialize>(user: &U) -> Self {
        #[allow(clippy::expect_used)]
        let identity = Identity::from_user(user, Mechanism::Testing)
            .expect("the test user must serialize to JSON");
        Self {
            identity: Some(Arc::new(identity)),
        }
    }

    /// The user proved who they are at `at` (as a login or a password confirmation records
    /// it), so handlers behind `RecentlyAuthenticated<U, MAX_AGE_SECS>` can be tested both
    /// ways: a recent instant admits, an old one gets 401 asking to re-authenticate. Without
    /// it, the test user has no authentication time and such handlers refuse. No effect on
    /// [`AuthenticateAsLayer::anonymous`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use axum::{Router, routing::post};
    /// use portcullis_core::{RecentlyAuthenticated, testing::AuthenticateAsLayer};
    ///
    /// #[derive(Clone, serde::Serialize, serde::Deserialize)]
    /// struct User { user: String }
    ///
    /// async fn change_password(RecentlyAuthenticated(user): RecentlyAuthenticated<User, 300>) {}
    ///
    /// let alice = User { user: "alice".into() };
    /// let just_now: Router = Router::new()
    ///     .route("/password", post(change_password))
    ///     .layer(AuthenticateAsLayer::new(&alice).authenticated_at(SystemTime::now()));
    /// let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    /// let stale: Router = Router::new()
    ///     .route("/password", post(change_password))
    ///     .layer(AuthenticateAsLayer::new(&alice).authenticated_at(an_hour_ago));
    /// ```
    #[must_use]
    pub fn authenticated_at(mut self, at: SystemTime) -> Self {
        self.identity = self
            .identity
            .map(|identity| Arc::new(Identity::clone(&identity).with_authenticated_at(at)));
        self
    }

    /// Requests come from an anonymous caller (extractors answer 401, not 500).
    pub fn anonymous() -> Self {
        Self { identity: None }
    }
}

impl<S> Layer<S> for AuthenticateAsLayer {
    type Service = AuthenticateAs<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticateAs {
            inner,
            identity: self.identity.clone(),
        }
    }
}

/// The service of [`AuthenticateAsLayer`].
#[derive(Debug, Clone)]
pub struct AuthenticateAs<S> {
    inner: S,
    identity: Option<Arc<Identity>>,
}

impl<S, B> Service<Request<B>> for AuthenticateAs<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let authentication = Authentication::of(request.extensions_mut());
        if let Some(identity) = &self.identity {
            authentication.add_identity(Identity::clone(identity));
        }
        self.inner.call(request)
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use std::time::Duration;

    use axum::{Router, body::Body, routing::post};
    use http::StatusCode;
    use tower::ServiceExt;

    use super::*;
    use crate::RecentlyAuthenticated;

    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct User {
        user: String,
    }

    async fn status(layer: AuthenticateAsLayer) -> StatusCode {
        let app: Router = Router::new()
            .route(
                "/password",
                post(
                    |RecentlyAuthenticated(user): RecentlyAuthenticated<User, 300>| async move {
                        user.user
                    },
                ),
            )
            .layer(layer);
        let request = Request::post("/password").body(Body::empty()).unwrap();
        app.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn the_authentication_time_decides_recently_authenticated() {
        let alice = User {
            user: "alice".into(),
        };
        let now = SystemTime::now();
        for (layer, expected) in [
            (
                AuthenticateAsLayer::new(&alice).authenticated_at(now),
                StatusCode::OK,
            ),
            (
                AuthenticateAsLayer::new(&alice).authenticated_at(now - Duration::from_secs(299)),
                StatusCode::OK,
            ),
            (
                AuthenticateAsLayer::new(&alice).authenticated_at(now - Duration::from_secs(3600)),
                StatusCode::UNAUTHORIZED,
            ),
            (AuthenticateAsLayer::new(&alice), StatusCode::UNAUTHORIZED),
            (
                AuthenticateAsLayer::anonymous().authenticated_at(now),
                StatusCode::UNAUTHORIZED,
            ),
        ] {
            assert_eq!(status(layer).await, expected);
        }
    }
}
