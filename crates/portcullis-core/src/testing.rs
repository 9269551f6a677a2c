//! Test helpers for applications: make a request come from a given user, so handlers can be
//! tested without real credentials. Behind the `testing` feature; never enable it in production
//! builds.

use std::{
    sync::Arc,
    task::{Context, Poll},
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
