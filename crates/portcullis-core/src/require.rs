//! A guard layer that applies a policy to a whole router or one route (`route_layer`), with the
//! same policies as the [`Authorized`](crate::Authorized) extractor.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use serde::de::DeserializeOwned;
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    Authenticated, Policy,
    authentication::{forbidden, missing_credentials, resolve_user},
};

/// Refuses requests whose caller the policy does not admit: 401 anonymous, 403 refused.
///
/// Place it inside (after) the authentication layer. With axum prefer `route_layer`, so
/// unmatched paths still answer 404 rather than 401.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis_core::{RequireLayer, testing::AuthenticateAsLayer};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { user: String, role: String }
///
/// let admin_only = RequireLayer::new(|user: &User| user.role == "admin");
/// let app: Router = Router::new()
///     .route("/admin", get(|| async { "secret dashboard" }))
///     .route_layer(admin_only);
/// ```
pub struct RequireLayer<U> {
    policy: Arc<dyn Policy<U>>,
}

impl<U: 'static> RequireLayer<U> {
    /// A guard admitting the users `policy` allows.
    pub fn new(policy: impl Policy<U>) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// A guard admitting every authenticated user.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[derive(Clone, serde::Deserialize)] struct User;
    /// let signed_in = portcullis_core::RequireLayer::<User>::authenticated();
    /// ```
    pub fn authenticated() -> Self {
        Self::new(Authenticated)
    }
}

impl<U> Clone for RequireLayer<U> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
        }
    }
}

impl<U> fmt::Debug for RequireLayer<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireLayer")
            .field("user", &std::any::type_name::<U>())
            .finish_non_exhaustive()
    }
}

impl<S, U> Layer<S> for RequireLayer<U> {
    type Service = Require<S, U>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            policy: self.policy.clone(),
            user: PhantomData,
        }
    }
}

/// The service of [`RequireLayer`].
pub struct Require<S, U> {
    inner: S,
    policy: Arc<dyn Policy<U>>,
    user: PhantomData<fn() -> U>,
}

impl<S, U> Require<S, U> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, U> Clone for Require<S, U> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
            user: PhantomData,
        }
    }
}

impl<S: fmt::Debug, U> fmt::Debug for Require<S, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Require")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, U, ReqBody, ResBody> Service<Request<ReqBody>> for Require<S, U>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    U: DeserializeOwned + Clone + Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request (tower's usual pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let policy = self.policy.clone();
        Box::pin(async move {
            let extensions = request.extensions_mut();
            let rejection = match resolve_user::<U>(extensions).await {
                Ok(Some(user)) if policy.allows(&user) => return inner.call(request).await,
                Ok(Some(_)) => forbidden(extensions),
                Ok(None) => missing_credentials(extensions),
                Err(rejection) => rejection,
            };
            Ok(rejection.to_response())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use http::StatusCode;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;
    use crate::testing::AuthenticateAsLayer;

    #[derive(Clone, serde::Serialize, serde::Deserialize)]
    struct User {
        role: String,
    }

    fn user(role: &str) -> User {
        User { role: role.into() }
    }

    async fn run(auth: Option<AuthenticateAsLayer>) -> (StatusCode, Option<String>) {
        let guard = RequireLayer::new(|u: &User| u.role == "admin");
        let service = ServiceBuilder::new()
            .option_layer(auth)
            .layer(guard)
            .service_fn(|_: Request<Body>| async {
                Ok::<_, Infallible>(Response::new(Body::from("ok")))
            });
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        let challenge = response
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status(), challenge)
    }

    #[tokio::test]
    async fn admits_refuses_and_asks_for_credentials() {
        assert_eq!(
            run(Some(AuthenticateAsLayer::new(&user("admin")))).await.0,
            StatusCode::OK
        );
        assert_eq!(
            run(Some(AuthenticateAsLayer::new(&user("advertiser"))))
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            run(Some(AuthenticateAsLayer::anonymous())).await.0,
            StatusCode::UNAUTHORIZED
        );
        // Without any authentication layer the wiring is wrong: say so loudly.
        assert_eq!(run(None).await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn services_are_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RequireLayer<User>>();
        assert_send_sync::<Require<axum::routing::Route, User>>();
    }
}
