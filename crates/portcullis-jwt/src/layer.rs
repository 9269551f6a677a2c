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
mod tests;
