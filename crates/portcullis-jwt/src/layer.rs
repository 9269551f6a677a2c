//! [`BearerLayer`]: authenticates requests carrying a bearer JWT (RFC 6750) and hands the
//! verified claims to the extractors through [`portcullis_core::Authentication`].

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Request, Response};
use portcullis_core::{
    AuthRejection, Authentication, CrossSiteCheck, EdgeFinish, EdgeFuture, Mechanism,
};
use tower_layer::Layer;
use tower_service::Service;

use portcullis_core::revocation::RevocationList;

use crate::{Attempt, TokenOrigin, TokenSources, TokenVerifier, VerifiedToken};

/// The realm of the `WWW-Authenticate` challenge unless configured.
pub const DEFAULT_REALM: &str = "api";

#[derive(Clone)]
struct Config {
    verifier: TokenVerifier,
    realm: Arc<str>,
    sources: TokenSources,
    cross_site: Option<CrossSiteCheck>,
    detailed_errors: bool,
    /// Revoked tokens, sessions and users, fed by the application's revocation feed.
    revocations: Option<RevocationList>,
}

impl Config {
    /// The revocation check (no store read: an in-memory list).
    fn admit(&self, verified: &crate::VerifiedToken) -> Result<(), AuthRejection> {
        match &self.revocations {
            Some(list) => crate::revocation::admit(list, verified, self.verifier.unix_now()),
            None => Ok(()),
        }
    }

    /// The bearer challenge (RFC 6750 §3) and the configured level of detail.
    fn challenge(&self, rejection: AuthRejection) -> AuthRejection {
        rejection
            .with_bearer_challenge(self.realm.clone())
            .dangerous_detailed_description(self.detailed_errors)
    }
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
/// Verification is eager, on every route the layer wraps, whether or not its handler asks for
/// the user: a bad token gets the same 401 everywhere (RFC 6750 §3.1), and no store is read on
/// the way (the session layer's lazy load exists to spare a store round trip). A token seen
/// before costs a lookup in the verifier's cache, so a route that never asks pays about a
/// hash lookup for a repeated token and one verification for a new one (measured in
/// `docs/BENCHMARKS.md`). To keep tokens away from public routes entirely, put the layer on
/// the protected routes only (`Router::route_layer`).
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
                cross_site: Some(CrossSiteCheck::new()),
                detailed_errors: false,
                revocations: None,
            }),
        }
    }

    fn update(self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
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

    /// Refuses tokens listed in `list`: by `jti` ([`token_revocation`](crate::token_revocation)),
    /// by session (`sid`), or every token of a user issued before an instant (a
    /// `UserRevocation`), with no store read per request. Subscribe `list` to the application's
    /// revocation feed (Redis for several instances) so a logout or a password change holds on
    /// every node; while the feed is not caught up, tokens get 503 (fail closed). See the
    /// module docs of `portcullis_core::revocation` and the precision note on `iat`.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use portcullis_core::revocation::{InProcessFeed, RevocationFeed, RevocationList};
    /// # use portcullis_jwt::{BearerLayer, KeySet, TokenVerifier, Validation};
    ///
    /// let feed = InProcessFeed::new(); // RedisRevocationFeed across instances
    /// let revoked = RevocationList::new();
    /// feed.subscribe(revoked.clone()).await?;
    /// let layer = BearerLayer::new(TokenVerifier::new(KeySet::new(), Validation::new()))
    ///     .revocations(revoked);
    /// // At logout: feed.publish(&portcullis_jwt::token_revocation(jti, exp)).await?
    /// # Ok::<(), portcullis_core::StoreError>(()) }).unwrap();
    /// ```
    #[must_use]
    pub fn revocations(self, list: RevocationList) -> Self {
        self.update(|config| config.revocations = Some(list))
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

    /// Replaces the cross-site check applied to unsafe requests (POST, PUT, PATCH, DELETE)
    /// whose token comes from a cookie (see [`TokenSources::cookie`]). On by default; tokens
    /// from the `Authorization` header need none, since browsers never add that header on their
    /// own.
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_jwt::{BearerLayer, KeySet, TokenVerifier, Validation};
    /// use portcullis_core::CrossSiteCheck;
    /// let check = CrossSiteCheck::new().trust_origin("https://app.example.com").unwrap();
    /// let layer = BearerLayer::new(TokenVerifier::new(KeySet::new(), Validation::new()))
    ///     .cross_site_check(check);
    /// ```
    #[must_use]
    pub fn cross_site_check(self, check: CrossSiteCheck) -> Self {
        self.update(|config| config.cross_site = Some(check))
    }

    /// Turns off the cross-site check for cookie-borne tokens.
    ///
    /// # Security
    ///
    /// Without it any site can make a signed-in user's browser send authenticated POST, PUT,
    /// PATCH and DELETE requests with the token cookie (OWASP Cross-Site Request Forgery
    /// Prevention Cheat Sheet); only do this when another layer checks CSRF tokens.
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_jwt::{BearerLayer, KeySet, TokenVerifier, Validation};
    /// let layer = BearerLayer::new(TokenVerifier::new(KeySet::new(), Validation::new()))
    ///     .dangerous_disable_cross_site_check();
    /// ```
    #[must_use]
    pub fn dangerous_disable_cross_site_check(self) -> Self {
        self.update(|config| config.cross_site = None)
    }

    /// Tells clients which check their token failed (`error_description="the token has
    /// expired"`) instead of the generic "the access token is invalid". Off by default.
    ///
    /// # Security
    ///
    /// Helps a prober learn which checks its forged tokens pass (RFC 8725 §2, OWASP
    /// Authentication Cheat Sheet on error messages). Use in development only; the detail is
    /// always logged.
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_jwt::{BearerLayer, KeySet, TokenVerifier, Validation};
    /// let layer = BearerLayer::new(TokenVerifier::new(KeySet::new(), Validation::new()))
    ///     .dangerous_detailed_errors(true);
    /// ```
    #[must_use]
    pub fn dangerous_detailed_errors(self, detailed: bool) -> Self {
        self.update(|config| config.detailed_errors = detailed)
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
        let located = config.sources.locate(request.headers()).and_then(|found| {
            if let Some((_, TokenOrigin::Cookie)) = found
                && let Some(check) = &config.cross_site
            {
                // The browser attaches the cookie to requests other sites trigger: refuse
                // unsafe ones (OWASP CSRF Prevention Cheat Sheet), as the session layer does.
                check.check(&request)?;
            }
            Ok(found)
        });
        let verified = match located {
            Err(rejection) => {
                return ResponseFuture::rejected(config.challenge(rejection));
            }
            Ok(None) => None,
            Ok(Some((token, _))) => match config.verifier.attempt(token) {
                Attempt::Done(Ok(verified)) => {
                    if let Err(rejection) = config.admit(&verified) {
                        return ResponseFuture::rejected(config.challenge(rejection));
                    }
                    Some(verified)
                }
                Attempt::Done(Err(error)) => {
                    tracing::debug!(%error, "bearer token refused");
                    return ResponseFuture::rejected(config.challenge(AuthRejection::from(error)));
                }
                Attempt::NeedsKeys(_) => {
                    // Slow path (a JWKS refetch): boxed, since it is rare.
                    let token = token.to_owned();
                    let config = self.config.clone();
                    let clone = self.inner.clone();
                    let mut inner = std::mem::replace(&mut self.inner, clone);
                    return ResponseFuture::waiting(async move {
                        match config.verifier.verify_after_refetch(&token).await {
                            Ok(verified) => {
                                if let Err(rejection) = config.admit(&verified) {
                                    return Ok(config.challenge(rejection).to_response());
                                }
                                config.record(request.extensions_mut(), Some(verified));
                                let mut response = inner.call(request).await?;
                                EdgeFinish::identified(true).apply(response.headers_mut());
                                Ok(response)
                            }
                            Err(error) => {
                                tracing::debug!(%error, "bearer token refused after a key refetch");
                                Ok(config.challenge(AuthRejection::from(error)).to_response())
                            }
                        }
                    });
                }
            },
        };
        let identified = verified.is_some();
        config.record(request.extensions_mut(), verified);
        ResponseFuture::inner(self.inner.call(request), EdgeFinish::identified(identified))
    }
}

impl Config {
    /// Records the realm and, if a token verified, the caller in the request.
    fn record(&self, extensions: &mut http::Extensions, verified: Option<VerifiedToken>) {
        let authentication = Authentication::of(extensions);
        authentication.set_bearer_realm(self.realm.clone());
        if let Some(verified) = verified {
            authentication.add_identity(verified.into_identity(Mechanism::Bearer));
        }
    }
}

/// The response future of [`Bearer`]: the inner service's future unboxed on the hot path, one
/// answer (500) if polled again after completion. See [`EdgeFuture`].
pub type ResponseFuture<F, B, E> = EdgeFuture<F, B, E>;

#[cfg(test)]
mod tests {
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

        let (status, challenge, body) =
            call(app(&issuer, None), "/public", &["Bearer a.b.c"]).await;
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
        assert_send::<
            ResponseFuture<axum::routing::future::RouteFuture<Infallible>, Body, Infallible>,
        >();
        type Full = http_body_util::Full<Bytes>;
        type SyncFuture = ResponseFuture<
            std::future::Ready<Result<Response<Full>, Infallible>>,
            Full,
            Infallible,
        >;
        assert_send::<SyncFuture>();
        assert_sync::<SyncFuture>();
        assert_send::<TokenVerifier>();
        assert_sync::<TokenVerifier>();
        assert_send::<crate::KeySet>();
        assert_sync::<crate::KeySet>();
        assert_send::<TokenIssuer>();
        assert_sync::<TokenIssuer>();
    }
}
