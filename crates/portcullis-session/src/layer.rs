//! [`SessionLayer`] and its service: reads the session cookie, refuses cross-site unsafe
//! requests that carry it, registers the lazy identity source and the [`Session`] handle, and
//! after the handler writes what changed and sets or clears the cookie.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, header};
use pin_project_lite::pin_project;
use portcullis_core::{
    AuthRejection, Authentication, SecretToken,
    credentials::{CookieError, add_no_store, find_cookie},
};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    MemoryStore, Session, UserLoader,
    config::{ConfigError, SessionConfig},
    session::{RequestState, SetCookie, Shared},
    store::SessionStore,
};

/// Session-cookie authentication over a [`SessionStore`] (the in-memory [`MemoryStore`] by
/// default).
///
/// For each request the layer reads the session cookie and puts a [`Session`] handle and a
/// lazy identity source in the request extensions; the store is read only when a handler or
/// guard asks (`CurrentUser<U>`, `Session::get`, ...). A malformed cookie makes the request
/// anonymous and is cleared. Unsafe requests (POST, PUT, PATCH, DELETE) that carry the cookie
/// and come from another site are refused with 403 before the handler runs (OWASP CSRF
/// Prevention Cheat Sheet, "Fetch Metadata headers").
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::{get, post}};
/// use portcullis_core::CurrentUser;
/// use portcullis_session::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct User { user: String, role: String }
///
/// async fn login(session: Session) -> Result<&'static str, SessionError> {
///     // ... check the credentials first ...
///     let user = User { user: "alice".into(), role: "advertiser".into() };
///     session.login(&user.user, &user).await?;
///     Ok("welcome")
/// }
///
/// async fn me(CurrentUser(user): CurrentUser<User>) -> String {
///     user.user
/// }
///
/// let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap();
/// let app: Router = Router::new()
///     .route("/login", post(login))
///     .route("/me", get(me))
///     .layer(layer);
/// # }
/// ```
pub struct SessionLayer<S: SessionStore = MemoryStore> {
    shared: Arc<Shared>,
    store: Arc<S>,
}

impl<S: SessionStore> SessionLayer<S> {
    /// A layer over `store` with `config`, checked now.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for settings a browser would reject or lifetimes that make no sense.
    pub fn new(store: S, config: SessionConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let attributes = config.cookie_attributes();
        let too_large = |error: CookieError| match error {
            CookieError::TooLarge { size, .. } => ConfigError::CookieTooLarge(size),
            other => other.into(),
        };
        // The longest cookie this layer will write (a persistent one with the largest
        // Max-Age); refused now rather than silently dropped by the browser later.
        attributes
            .set_cookie(
                &config.cookie_name,
                SecretToken::generate().expose(),
                Some(u64::MAX),
            )
            .map_err(too_large)?;
        let clear_cookie = attributes
            .clear_cookie(&config.cookie_name)
            .map_err(too_large)?;
        let touch_secs = config.effective_touch_interval().as_secs().max(1);
        let store = Arc::new(store);
        Ok(Self {
            shared: Arc::new(Shared {
                store: store.clone(),
                config,
                attributes,
                clear_cookie,
                touch_secs,
                loader: None,
            }),
            store,
        })
    }

    /// Reads the signed-in user through `loader` (the application's user table, cached per
    /// node and refreshed on every node when [`UserLoader::user_changed`] announces a change)
    /// instead of the snapshot taken at login. A user the loader no longer finds ends every
    /// session of theirs: the request is anonymous (401 where a user is required).
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use portcullis_core::StoreError;
    /// use portcullis_session::{MemoryStore, SessionConfig, SessionLayer, UserLoader};
    ///
    /// let loader = UserLoader::builder(|user_id: String| async move {
    ///     Ok::<_, StoreError>(Some(serde_json::json!({"user": user_id, "role": "advertiser"})))
    /// })
    /// .build()
    /// .await?;
    /// let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default())
    ///     .unwrap()
    ///     .user_loader(loader);
    /// # Ok::<(), StoreError>(()) }).unwrap();
    /// ```
    #[must_use]
    pub fn user_loader(mut self, loader: UserLoader) -> Self {
        let mut shared = Shared::clone(&self.shared);
        shared.loader = Some(loader);
        self.shared = Arc::new(shared);
        self
    }

    /// The store, for maintenance outside requests (sweeping, metrics).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }
}

impl<S: SessionStore> Clone for SessionLayer<S> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            store: self.store.clone(),
        }
    }
}

impl<S: SessionStore> fmt::Debug for SessionLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("store", &std::any::type_name::<S>())
            .field("config", &self.shared.config)
            .finish()
    }
}

impl<S: SessionStore, I> Layer<I> for SessionLayer<S> {
    type Service = SessionService<I>;

    fn layer(&self, inner: I) -> Self::Service {
        SessionService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service of [`SessionLayer`].
#[derive(Clone)]
pub struct SessionService<I> {
    inner: I,
    shared: Arc<Shared>,
}

impl<I> SessionService<I> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<I: fmt::Debug> fmt::Debug for SessionService<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<I, ReqBody, ResBody> Service<Request<ReqBody>> for SessionService<I>
where
    I: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = I::Error;
    type Future = ResponseFuture<I::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let config = &self.shared.config;
        let presented = find_cookie(request.headers(), &config.cookie_name);
        let has_cookie = presented.is_present();
        // Anything but one well-formed secret is anonymous (OWASP Session Management Cheat
        // Sheet, "Session ID Content": IDs are validated before use, never trusted as given).
        let incoming = presented.value().and_then(SecretToken::parse);
        // One malformed cookie is stale and cleared. Ambiguous cookies are not: a clearing
        // Set-Cookie would delete the victim's real `__Host-` cookie next to the one a sibling
        // domain tossed in, which the attacker could not do alone (RFC 6265bis §8.5).
        let malformed = presented.value().is_some() && incoming.is_none();

        let mut cross_site = false;
        if let Some(check) = &config.cross_site {
            if let Err(rejection) = check.check(&request) {
                if has_cookie {
                    return ResponseFuture::rejected(rejection);
                }
                // No cookie, so nothing is authenticated; but a login from here is login CSRF.
                cross_site = true;
            }
            if check.trusts_other_origins() {
                // So the `Credentials` extractor admits a login from the same trusted origins
                // (with the default check it needs no copy: it falls back to the same rule).
                request.extensions_mut().insert(check.clone());
            }
        }

        let user_agent = request.headers().get(header::USER_AGENT).cloned();
        let has_secret = incoming.is_some();
        let state = Arc::new(RequestState::new(
            self.shared.clone(),
            incoming,
            cross_site,
            user_agent,
        ));
        let extensions = request.extensions_mut();
        let authentication = Authentication::of(extensions);
        if has_secret {
            authentication
                .set_clock(self.shared.config.clock.clone())
                .add_source(state.clone());
        }
        extensions.insert(Session::new(state.clone()));
        ResponseFuture {
            state: State::Inner {
                future: self.inner.call(request),
                session: Some(state),
                clear: malformed.then(|| self.shared.clear_cookie.clone()),
            },
        }
    }
}

type Finishing = Pin<Box<dyn Future<Output = (Option<SetCookie>, Option<AuthRejection>)> + Send>>;

pin_project! {
    /// The response future of [`SessionService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, B> {
        Inner {
            #[pin]
            future: F,
            session: Option<Arc<RequestState>>,
            clear: Option<HeaderValue>,
        },
        Finishing {
            finishing: Finishing,
            response: Option<Response<B>>,
        },
        Rejected {
            rejection: Option<AuthRejection>,
            body: PhantomData<fn() -> B>,
        },
    }
}

impl<F, B> ResponseFuture<F, B> {
    fn rejected(rejection: AuthRejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
                body: PhantomData,
            },
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<Bytes> + Send + 'static,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProjection::Inner {
                    future,
                    session,
                    clear,
                } => {
                    let mut response = ready!(future.poll(cx))?;
                    let session = session.take();
                    if session.as_ref().is_some_and(|s| s.was_used()) {
                        // The handler read this caller's session: the answer is theirs alone.
                        add_no_store(response.headers_mut());
                    }
                    match session.filter(|s| s.needs_finish()) {
                        // The hot path: nobody asked for the session, so nothing to write.
                        None => {
                            if let Some(clear) = clear.take() {
                                response.headers_mut().append(header::SET_COOKIE, clear);
                            }
                            return Poll::Ready(Ok(response));
                        }
                        Some(session) => {
                            let finishing: Finishing = Box::pin(async move {
                                let (cookie, result) = session.finish().await;
                                (cookie, result.err().map(AuthRejection::from))
                            });
                            this.state.set(State::Finishing {
                                finishing,
                                response: Some(response),
                            });
                        }
                    }
                }
                StateProjection::Finishing {
                    finishing,
                    response,
                } => {
                    let (cookie, rejection) = ready!(finishing.as_mut().poll(cx));
                    let mut response = response.take().unwrap_or_default_response();
                    if let Some(rejection) = rejection {
                        // The handler answered, but what it changed could not be saved:
                        // failing the request beats silently losing the update.
                        response = rejection.to_response();
                    }
                    if let Some(cookie) = cookie {
                        let headers = response.headers_mut();
                        headers.append(header::SET_COOKIE, cookie.value);
                        // OWASP Session Management Cheat Sheet, "Web Content Caching": a
                        // response carrying a session ID must never sit in a shared cache.
                        if cookie.fresh_secret && !headers.contains_key(header::CACHE_CONTROL) {
                            headers.insert(
                                header::CACHE_CONTROL,
                                HeaderValue::from_static("no-store"),
                            );
                        }
                    }
                    return Poll::Ready(Ok(response));
                }
                StateProjection::Rejected { rejection, .. } => {
                    return Poll::Ready(Ok(AuthRejection::respond_once(rejection)));
                }
            }
        }
    }
}

trait DefaultResponse<B> {
    fn unwrap_or_default_response(self) -> Response<B>;
}

impl<B: From<Bytes>> DefaultResponse<B> for Option<Response<B>> {
    fn unwrap_or_default_response(self) -> Response<B> {
        // Polled again after completion: answer something harmless rather than panic.
        self.unwrap_or_else(|| {
            AuthRejection::misconfigured("response future polled after completion").to_response()
        })
    }
}

#[cfg(test)]
#[path = "layer_tests.rs"]
mod tests;
