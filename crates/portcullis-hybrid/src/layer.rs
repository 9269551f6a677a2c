//! [`HybridLayer`]: the edge check. It verifies the access token's signature and claims and
//! looks its `sid` up in the node's in-memory revocation list; it never reads the session
//! store for a request carrying a valid access token.

use std::{
    fmt,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, header};
use portcullis_core::{
    AuthRejection, Authentication, CrossSiteCheck, EdgeFinish, EdgeFuture, FinishHook,
    IdentityFuture, IdentitySource,
    credentials::{bearer_token, find_cookie},
};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    ConfigError, CookieTransport, HybridSessions,
    access::{AccessAttempt, AccessCheck, VerifiedAccess},
};

#[derive(Clone)]
pub(crate) struct Config {
    /// The edge check: verifier, revocation list, clock.
    pub(crate) access: AccessCheck,
    /// The refresh service, for transparent refresh only, through its public API.
    pub(crate) refresh: HybridSessions,
    pub(crate) cookies: Option<CookieTransport>,
    pub(crate) realm: Arc<str>,
    pub(crate) cross_site: CrossSiteCheck,
    pub(crate) detailed_errors: bool,
}

/// The edge check of hybrid sessions, as a tower layer.
///
/// For each request it looks for an access token in `Authorization: Bearer` (RFC 6750 §2.1)
/// or, with [`HybridLayer::cookies`], in the access cookie, and:
///
/// - no token: the request passes through anonymous (extractors answer 401 with a bearer
///   challenge), exactly like the plain bearer layer;
/// - a valid `at+jwt` token whose `sid` is not revoked: the caller is its user, and the
///   request carries an [`AccessSession`](crate::AccessSession);
/// - anything else: 401 `WWW-Authenticate: Bearer error="invalid_token"` (for a cookie,
///   only when a handler asks for the user, so a stale cookie does not break public pages).
///
/// Like [`BearerLayer`](portcullis_jwt::BearerLayer), a bearer token is verified eagerly on
/// every route (a repeated one costs a cache lookup; see `docs/BENCHMARKS.md`), so a bad one
/// gets RFC 6750's 401 whatever the route.
///
/// No store is read on this path; revocations arrive through the feed into the node's
/// [`RevocationList`](crate::RevocationList). Cookie-authenticated unsafe requests from other
/// sites are refused with 403 (OWASP CSRF Prevention Cheat Sheet). In transparent cookie mode
/// a request without a valid access cookie but with a refresh cookie is refreshed when the
/// handler asks for the user, and the response carries the new cookies.
///
/// # Examples
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, routing::get};
/// use portcullis_hybrid::{CookieTransport, HybridLayer, HybridSessions, InProcessFeed, MemoryRefreshStore};
/// use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
///
/// let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256)?);
/// let sessions = HybridSessions::builder(issuer, Validation::new())
///     .store(MemoryRefreshStore::new())
///     .feed(InProcessFeed::new())
///     .build()
///     .await?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(HybridLayer::new(&sessions).cookies(CookieTransport::new())?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HybridLayer {
    pub(crate) config: Arc<Config>,
}

impl fmt::Debug for HybridLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridLayer")
            .field("cookies", &self.config.cookies)
            .field("realm", &self.config.realm)
            .finish_non_exhaustive()
    }
}

impl HybridLayer {
    /// An edge check for `sessions`, reading access tokens from `Authorization: Bearer`.
    pub fn new(sessions: &HybridSessions) -> Self {
        Self {
            config: Arc::new(Config {
                access: sessions.access_check(),
                refresh: sessions.clone(),
                cookies: None,
                realm: "portcullis".into(),
                cross_site: CrossSiteCheck::new(),
                detailed_errors: false,
            }),
        }
    }

    /// Also reads the access token from the transport's cookie (the header wins when both
    /// are present), applies the cross-site check to cookie-authenticated unsafe requests and,
    /// in transparent mode, refreshes expired access cookies.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] when the cookie settings break a prefix or RFC 6265 rule.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), portcullis_hybrid::ConfigError> {
    /// use portcullis_hybrid::{CookieTransport, HybridLayer};
    /// let layer = HybridLayer::new(&sessions).cookies(CookieTransport::transparent())?;
    /// # Ok(()) }
    /// ```
    pub fn cookies(mut self, cookies: CookieTransport) -> Result<Self, ConfigError> {
        cookies.validate()?;
        Arc::make_mut(&mut self.config).cookies = Some(cookies);
        Ok(self)
    }

    /// The realm of the `WWW-Authenticate` challenge (default `portcullis`).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(sessions: portcullis_hybrid::HybridSessions) {
    /// let layer = portcullis_hybrid::HybridLayer::new(&sessions).realm("ads");
    /// # }
    /// ```
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        Arc::make_mut(&mut self.config).realm = realm.into();
        self
    }

    /// Tells clients which check their access token failed (`error_description="the session
    /// has been revoked"`) instead of the generic "the access token is invalid". Off by
    /// default.
    ///
    /// # Security
    ///
    /// Helps a prober learn which checks a token passes (OWASP Authentication Cheat Sheet on
    /// error messages). Use in development only; the detail is always logged.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(sessions: portcullis_hybrid::HybridSessions) {
    /// let layer = portcullis_hybrid::HybridLayer::new(&sessions).dangerous_detailed_errors(true);
    /// # }
    /// ```
    #[must_use]
    pub fn dangerous_detailed_errors(mut self, detailed: bool) -> Self {
        Arc::make_mut(&mut self.config).detailed_errors = detailed;
        self
    }

    /// Replaces the cross-site check (to trust another origin, say).
    ///
    /// # Security
    ///
    /// Every trusted origin can make cookie-authenticated unsafe requests for signed-in users.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), portcullis_core::InvalidOrigin> {
    /// use portcullis_core::CrossSiteCheck;
    /// let layer = portcullis_hybrid::HybridLayer::new(&sessions)
    ///     .cross_site_check(CrossSiteCheck::new().trust_origin("https://admin.example.com")?);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn cross_site_check(mut self, check: CrossSiteCheck) -> Self {
        Arc::make_mut(&mut self.config).cross_site = check;
        self
    }
}

impl<S> Layer<S> for HybridLayer {
    type Service = Hybrid<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Hybrid {
            inner,
            config: self.config.clone(),
        }
    }
}

/// The service of [`HybridLayer`].
#[derive(Clone)]
pub struct Hybrid<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for Hybrid<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hybrid")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Hybrid<S> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The response future of [`Hybrid`]: the inner service's future, unboxed on the hot path
/// (a token decided with the keys at hand; always, for a static key set). Only a key set that
/// must first fetch keys (a JWKS URL) takes a boxed path. Polled again after completion, it
/// answers 500. See [`EdgeFuture`].
pub type ResponseFuture<F, B, E> = EdgeFuture<F, B, E>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Hybrid<S>
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
        let (attempt, refresh_token, from_cookie) = {
            let found = match config.find(&request) {
                Ok(found) => found,
                Err(rejection) => return ResponseFuture::rejected(rejection),
            };
            let attempt = found.token.map(|token| match config.access.attempt(token) {
                AccessAttempt::Done(result) => Ok(result),
                AccessAttempt::NeedsKeys => Err(token.to_owned()),
            });
            (
                attempt,
                found.refresh_token.map(str::to_owned),
                found.from_cookie,
            )
        };
        let verified = match attempt {
            None => None,
            Some(Ok(result)) => Some(result),
            Some(Err(token)) => {
                // Slow path: the key set must fetch keys first. Boxed, since it is rare.
                let config = self.config.clone();
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                return ResponseFuture::waiting(async move {
                    let verified = config.access.verify_after_refetch(&token).await;
                    match config.record(&mut request, Some(verified), refresh_token, from_cookie) {
                        Ok(finish) => {
                            let mut response = inner.call(request).await?;
                            finish.apply(response.headers_mut());
                            Ok(response)
                        }
                        Err(rejection) => Ok(rejection.to_response()),
                    }
                });
            }
        };
        match config.record(&mut request, verified, refresh_token, from_cookie) {
            Ok(finish) => ResponseFuture::inner(self.inner.call(request), finish),
            Err(rejection) => ResponseFuture::rejected(rejection),
        }
    }
}

/// Where a request's credentials are.
struct Found<'a> {
    /// The access token, from the header or else the cookie.
    token: Option<&'a str>,
    from_cookie: bool,
    /// The refresh cookie, in transparent mode only.
    refresh_token: Option<&'a str>,
}

impl Config {
    fn challenge(&self, rejection: AuthRejection) -> AuthRejection {
        rejection
            .with_bearer_challenge(self.realm.clone())
            .dangerous_detailed_description(self.detailed_errors)
    }

    /// Finds the credentials and applies the cross-site check to cookie-borne ones.
    fn find<'a, B>(&self, request: &'a Request<B>) -> Result<Found<'a>, AuthRejection> {
        let headers = request.headers();
        let bearer = bearer_token(headers).map_err(|r| self.challenge(r))?;
        let cookies = self.cookies.as_ref().filter(|_| bearer.is_none());
        // Each cookie is looked up once per request.
        let presented = cookies.map(|c| {
            (
                find_cookie(headers, c.access_cookie()),
                find_cookie(headers, c.refresh_cookie()),
            )
        });
        if presented.is_some_and(|(access, refresh)| access.is_present() || refresh.is_present()) {
            // Cookies ride along on requests other sites trigger: refuse unsafe ones
            // (OWASP CSRF Prevention Cheat Sheet).
            self.cross_site
                .check(request)
                .map_err(|r| self.challenge(r))?;
        }
        Ok(Found {
            token: bearer.or_else(|| presented.and_then(|(access, _)| access.value())),
            from_cookie: bearer.is_none(),
            refresh_token: cookies
                .filter(|c| c.is_transparent())
                .and(presented)
                .and_then(|(_, refresh)| refresh.value()),
        })
    }

    /// Records what the credentials proved in the request; says how to finish the response
    /// (`no-store` for an identified caller, the cookies of a transparent refresh).
    fn record<B>(
        &self,
        request: &mut Request<B>,
        verified: Option<Result<VerifiedAccess, AuthRejection>>,
        refresh_token: Option<String>,
        from_cookie: bool,
    ) -> Result<EdgeFinish, AuthRejection> {
        let extensions = request.extensions_mut();
        Authentication::of(extensions).set_bearer_realm(self.realm.clone());
        match (verified, refresh_token) {
            (None, None) => Ok(EdgeFinish::identified(false)),
            (Some(Ok(access)), _) => {
                let (identity, session) = access.into_parts();
                extensions.insert(session);
                Authentication::of(extensions).add_identity(identity);
                // A verified access token: the response is this user's alone.
                Ok(EdgeFinish::identified(true))
            }
            (Some(Err(_)) | None, Some(token)) => {
                let refresh = Arc::new(TransparentRefresh {
                    sessions: self.refresh.clone(),
                    cookies: self.cookies.clone().unwrap_or_default(),
                    token,
                    outcome: Mutex::new(None),
                });
                Authentication::of(extensions).add_source(refresh.clone());
                Ok(EdgeFinish::identified(false).with_hook(refresh))
            }
            (Some(Err(rejection)), None) if from_cookie => {
                // A stale cookie must not break public pages: refuse only when asked.
                Authentication::of(extensions)
                    .add_source(Arc::new(Refused(self.challenge(rejection))));
                Ok(EdgeFinish::identified(false))
            }
            (Some(Err(rejection)), None) => Err(self.challenge(rejection)),
        }
    }
}

/// A credential that was present but bad, refused only if a handler asks for the user.
struct Refused(AuthRejection);

impl IdentitySource for Refused {
    fn identify(&self) -> IdentityFuture<'_> {
        let rejection = self.0.clone();
        Box::pin(async move { Err(rejection) })
    }
}

enum Outcome {
    /// The new cookies' `Set-Cookie` headers.
    Refreshed(HeaderMap),
    Ended,
}

/// A refresh run on first use of the user, whose outcome decides the response's cookies.
struct TransparentRefresh {
    sessions: HybridSessions,
    cookies: CookieTransport,
    token: String,
    outcome: Mutex<Option<Outcome>>,
}

impl IdentitySource for TransparentRefresh {
    fn identify(&self) -> IdentityFuture<'_> {
        Box::pin(async move {
            let result = self.sessions.refresh(&self.token).await;
            let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
            match result {
                Ok(pair) => {
                    let mut set_cookies = HeaderMap::new();
                    self.cookies.set_cookies(&pair, &mut set_cookies)?;
                    *outcome = Some(Outcome::Refreshed(set_cookies));
                    Ok(Some(pair.identity().clone()))
                }
                // The one rule of which failures end the session (and so the cookies); an
                // outage, say, keeps them for the retry.
                Err(error) if error.ends_session() => {
                    *outcome = Some(Outcome::Ended);
                    Err(error.into())
                }
                Err(error) => Err(error.into()),
            }
        })
    }
}

impl FinishHook for TransparentRefresh {
    fn finish(&self, headers: &mut HeaderMap) {
        let cookies = &self.cookies;
        let outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome.as_ref() {
            Some(Outcome::Refreshed(set_cookies)) => {
                for value in set_cookies.get_all(header::SET_COOKIE) {
                    headers.append(header::SET_COOKIE, value.clone());
                }
                // The new cookies must reach the browser, not a shared cache (RFC 9111 §5.2.2.5).
                headers.insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-store"),
                );
            }
            Some(Outcome::Ended) => cookies.clear_cookies(headers),
            None => {}
        }
    }
}
