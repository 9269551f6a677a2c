//! [`BearerLayer`]: authenticates requests carrying a bearer JWT (RFC 6750) and hands the
//! verified claims to the extractors through [`portcullis_core::Authentication`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use portcullis_core::{AuthRejection, Authentication, Mechanism};
use sync_wrapper::SyncFuture;
use tower_layer::Layer;
use tower_service::Service;

use crate::{TokenSources, TokenVerifier, verify::Attempt};

/// The realm of the `WWW-Authenticate` challenge unless configured.
pub const DEFAULT_REALM: &str = "api";

struct Config {
    verifier: TokenVerifier,
    realm: Arc<str>,
    sources: TokenSources,
}

/// Authenticates requests carrying a bearer JWT.
///
/// - No token at all: the request goes through anonymous; the extractor decides (401 with
///   `WWW-Authenticate: Bearer realm=".."`, RFC 6750 §3), so a `BearerLayer` and a session layer
///   can be stacked and `CurrentUser<U>` comes from whichever found credentials.
/// - A token that verifies: its claims object becomes the caller (the application's `U` is
///   decoded from it), with [`Mechanism::Bearer`].
/// - A token that does not verify: 401 `error="invalid_token"` right here, whatever the route
///   (503 while the keys that could verify it are unavailable).
/// - A malformed request (two `Authorization` headers, say): 400 `invalid_request`.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis_core::CurrentUser;
/// use portcullis_jwt::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};
///
/// #[derive(Clone, serde::Deserialize)]
/// struct User { user: String, role: String }
///
/// let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::ES256).unwrap());
/// let verifier = TokenVerifier::new(issuer.key_set(), Validation::new());
/// let app: Router = Router::new()
///     .route("/me", get(|CurrentUser(user): CurrentUser<User>| async move { user.user }))
///     .layer(BearerLayer::new(verifier).realm("api"));
/// ```
#[derive(Clone)]
pub struct BearerLayer {
    config: Arc<Config>,
}

impl BearerLayer {
    /// A layer verifying tokens with `verifier`, read from the `Authorization` header, realm
    /// `"api"`.
    pub fn new(verifier: TokenVerifier) -> Self {
        Self {
            config: Arc::new(Config {
                verifier,
                realm: DEFAULT_REALM.into(),
                sources: TokenSources::default(),
            }),
        }
    }

    fn update(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = match Arc::try_unwrap(self.config) {
            Ok(config) => config,
            Err(shared) => Config {
                verifier: shared.verifier.clone(),
                realm: shared.realm.clone(),
                sources: shared.sources.clone(),
            },
        };
        change(&mut config);
        Self {
            config: Arc::new(config),
        }
    }

    /// The realm named in `WWW-Authenticate` challenges (RFC 6750 §3).
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_jwt::{BearerLayer, KeySet, TokenVerifier, Validation};
    /// let layer = BearerLayer::new(TokenVerifier::new(KeySet::new(), Validation::new())).realm("ads");
    /// ```
    #[must_use]
    pub fn realm(self, realm: impl Into<Arc<str>>) -> Self {
        let realm = realm.into();
        self.update(|config| config.realm = realm)
    }

    /// Where tokens are read from (default: the `Authorization` header only).
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_jwt::{BearerLayer, KeySet, TokenSources, TokenVerifier, Validation};
    /// let layer = BearerLayer::new(TokenVerifier::new(KeySet::new(), Validation::new()))
    ///     .sources(TokenSources::authorization_header().cookie("__Host-access"));
    /// ```
    #[must_use]
    pub fn sources(self, sources: TokenSources) -> Self {
        self.update(|config| config.sources = sources)
    }

    /// The verifier.
    pub fn verifier(&self) -> &TokenVerifier {
        &self.config.verifier
    }
}

impl fmt::Debug for BearerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerLayer")
            .field("realm", &self.config.realm)
            .field("sources", &self.config.sources)
            .field("verifier", &self.config.verifier)
            .finish()
    }
}

impl<S> Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Bearer {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`BearerLayer`].
pub struct Bearer<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Bearer<S> {
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

impl<S: Clone> Clone for Bearer<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Bearer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer")
            .field("inner", &self.inner)
            .field("realm", &self.config.realm)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Bearer<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<Bytes> + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        let verified = match config.sources.find(request.headers()) {
            Err(rejection) => {
                return ResponseFuture::rejected(
                    rejection.with_bearer_challenge(config.realm.clone()),
                );
            }
            Ok(None) => None,
            Ok(Some(token)) => match config.verifier.attempt(token) {
                Attempt::Done(Ok(verified)) => Some(verified),
                Attempt::Done(Err(error)) => {
                    tracing::debug!(%error, "bearer token refused");
                    return ResponseFuture::rejected(
                        AuthRejection::from(error).with_bearer_challenge(config.realm.clone()),
                    );
                }
                Attempt::NeedsKeys => {
                    // Slow path (a JWKS refetch): boxed, since it is rare.
                    let token = token.to_owned();
                    let config = self.config.clone();
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture::waiting(Box::pin(async move {
                        match config.verifier.verify_after_refetch(&token).await {
                            Ok(verified) => {
                                Authentication::of(request.extensions_mut())
                                    .set_bearer_realm(config.realm.clone())
                                    .add_identity(verified.into_identity(Mechanism::Bearer));
                                inner.call(request).await
                            }
                            Err(error) => {
                                tracing::debug!(%error, "bearer token refused after a key refetch");
                                Ok(AuthRejection::from(error)
                                    .with_bearer_challenge(config.realm.clone())
                                    .to_response())
                            }
                        }
                    }));
                }
            },
        };
        let authentication = Authentication::of(request.extensions_mut());
        authentication.set_bearer_realm(config.realm.clone());
        if let Some(verified) = verified {
            authentication.add_identity(verified.into_identity(Mechanism::Bearer));
        }
        ResponseFuture {
            kind: Kind::Inner {
                future: self.inner.call(request),
            },
        }
    }
}

type Waiting<B, E> = SyncFuture<Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>>;

pin_project! {
    /// The response future of [`Bearer`]: the inner service's future unboxed on the hot path.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProjection]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
        Waiting { #[pin] future: Waiting<B, E> },
    }
}

impl<F, B: From<Bytes>, E> ResponseFuture<F, B, E> {
    fn rejected(rejection: AuthRejection) -> Self {
        Self {
            kind: Kind::Rejected {
                response: Some(rejection.to_response()),
            },
        }
    }

    fn waiting(future: Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>) -> Self {
        Self {
            kind: Kind::Waiting {
                future: SyncFuture::new(future),
            },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProjection::Inner { future } => future.poll(cx),
            KindProjection::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => panic!("ResponseFuture polled after completion"),
            },
            KindProjection::Waiting { future } => future.poll(cx),
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
