//! [`HybridEndpoints`]: the hybrid protocol's own routes (refresh, logout, logout-all, session
//! listing, revoke-by-handle) as tower services, and with the `axum` feature a `Router`, so an
//! application writes none of this security-sensitive glue itself.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, request::Parts};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use portcullis_core::credentials::{BodyFormat, body_format};
use portcullis_core::{AuthRejection, Authentication, CrossSiteCheck};
use portcullis_jwt::TokenVerifier;
use serde::Deserialize;
use tower_service::Service;

use crate::{
    AccessSession, CookieTransport, HybridError, HybridLayer, HybridSessions,
    refresh_token::is_session_id,
    response::{EndpointResponse, empty, json},
};

/// Largest request body the endpoints read (`{"refresh_token": ".."}` needs a few hundred).
const MAX_BODY_BYTES: usize = 16 * 1024;

/// The future of an [`Endpoint`]. Boxed: these routes run once per access-token lifetime at
/// most, not on the hot path.
pub type EndpointFuture =
    Pin<Box<dyn Future<Output = Result<EndpointResponse, Infallible>> + Send>>;

/// The hybrid protocol's endpoints, configured like the [`HybridLayer`] they come from (same
/// sessions, cookie transport, realm and cross-site check), so the two cannot disagree.
///
/// | route ([`HybridEndpoints::router`]) | service | answer |
/// |---|---|---|
/// | `POST /refresh` | [`refresh`](Self::refresh) | JSON `{"refresh_token"}` in, the RFC 6749 §5.1 body out; or the refresh cookie in, new cookies and the user out |
/// | `POST /logout` | [`logout`](Self::logout) | 204 when this request ended the session |
/// | `POST /logout-all` | [`logout_all`](Self::logout_all) | `{"sessions_ended": n}` |
/// | `GET /sessions` | [`sessions`](Self::sessions) | the caller's live sessions |
/// | `DELETE /sessions/{session_id}` | [`revoke_session`](Self::revoke_session) | 204, or 404 for a session not theirs |
///
/// Every answer carries `Cache-Control: no-store`; refusals are RFC 6750 challenges (401
/// `invalid_token`, 400 `invalid_request`, 503 with `Retry-After` when the store is down).
/// The routes must sit inside the layer (`.merge(..)` before `.layer(..)`), which finds the
/// caller. Requests carrying the transport's cookies must pass the cross-site check.
///
/// **Logout** identifies the session from whatever the client sends: a valid access token,
/// a refresh token (JSON body, or the refresh cookie), or else the access cookie *even if
/// expired*: the browser sends only that cookie to `/logout` when the refresh cookie is
/// scoped to `/refresh`. An expired token is accepted for this one purpose only, with its
/// signature, issuer, audience and type still verified and for no longer than a session can
/// outlive its last access token (the refresh TTL). Cookies are cleared only when the session
/// is known to be over; a 401 for a credential that ends nothing leaves them alone.
///
/// # Examples
///
/// ```
/// # async fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), Box<dyn std::error::Error>> {
/// use axum::{Router, routing::get};
/// use portcullis_core::CurrentUser;
/// use portcullis_hybrid::{CookieTransport, HybridLayer};
///
/// let layer = HybridLayer::new(&sessions).cookies(CookieTransport::new())?;
/// let app: Router = Router::new()
///     .route("/me", get(|CurrentUser(user): CurrentUser<serde_json::Value>| async move { user.to_string() }))
///     .merge(layer.endpoints().router())
///     .layer(layer);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HybridEndpoints {
    config: Arc<Config>,
}

struct Config {
    sessions: HybridSessions,
    cookies: Option<CookieTransport>,
    realm: Arc<str>,
    cross_site: CrossSiteCheck,
    /// Identifies the session of an expired access token, for logout only.
    revocation_verifier: TokenVerifier,
}

impl fmt::Debug for HybridEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridEndpoints")
            .field("cookies", &self.config.cookies)
            .field("realm", &self.config.realm)
            .finish_non_exhaustive()
    }
}

impl HybridLayer {
    /// The protocol's endpoints, configured like this layer.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn demo(sessions: portcullis_hybrid::HybridSessions) {
    /// let layer = portcullis_hybrid::HybridLayer::new(&sessions);
    /// let endpoints = layer.endpoints();
    /// # }
    /// ```
    pub fn endpoints(&self) -> HybridEndpoints {
        HybridEndpoints::new(self)
    }
}

impl HybridEndpoints {
    /// The endpoints of `layer`'s sessions, with its cookie transport, realm and cross-site
    /// check.
    pub fn new(layer: &HybridLayer) -> Self {
        let layer = &layer.config;
        let sessions = layer.refresh.clone();
        let inner = &sessions.inner;
        // A session outlives its last access token by at most the refresh (idle) TTL: an
        // access token expired longer ago belongs to a session that is over anyway.
        let window = inner.settings.idle_ttl;
        let validation = inner
            .verifier
            .validation()
            .clone()
            .dangerous_accept_expired_within(window);
        let revocation_verifier = TokenVerifier::new(inner.verifier.key_set().clone(), validation)
            .with_clock(inner.clock.clone());
        Self {
            config: Arc::new(Config {
                sessions,
                cookies: layer.cookies.clone(),
                realm: layer.realm.clone(),
                cross_site: layer.cross_site.clone(),
                revocation_verifier,
            }),
        }
    }

    /// `POST /refresh`: a refresh token from a JSON body `{"refresh_token": ".."}` gets the
    /// bearer body `{"access_token", "refresh_token", "token_type", "expires_in"}`; the refresh
    /// cookie gets new cookies and the user as the body. A failure that
    /// [ends the session](HybridError::ends_session) clears the cookies.
    pub fn refresh(&self) -> Endpoint {
        self.endpoint(Action::Refresh)
    }

    /// `POST /logout`: ends the caller's session (see the type's docs for how it is found):
    /// 204 and cleared cookies; 401 (cookies cleared) when it had already ended; 401 (cookies
    /// kept) when nothing identifies a session.
    pub fn logout(&self) -> Endpoint {
        self.endpoint(Action::Logout)
    }

    /// `POST /logout-all`: ends every session of the authenticated caller; answers
    /// `{"sessions_ended": n}` and clears the cookies.
    pub fn logout_all(&self) -> Endpoint {
        self.endpoint(Action::LogoutAll)
    }

    /// `GET /sessions`: the authenticated caller's live sessions, as
    /// [`SessionInfo`](crate::SessionInfo)s (no secrets).
    pub fn sessions(&self) -> Endpoint {
        self.endpoint(Action::ListSessions)
    }

    /// `DELETE /sessions/{session_id}` (the last path segment): ends one of the caller's
    /// sessions; 404 for a session that is not theirs, which stays alive.
    pub fn revoke_session(&self) -> Endpoint {
        self.endpoint(Action::RevokeSession)
    }

    /// Every endpoint as an axum router: `POST /refresh`, `POST /logout`, `POST /logout-all`,
    /// `GET /sessions`, `DELETE /sessions/{session_id}`. `.merge()` it, or `.nest()` it under a
    /// prefix (then point [`CookieTransport::refresh_cookie_path`] at the prefixed refresh
    /// route), inside the [`HybridLayer`].
    #[cfg(feature = "axum")]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        use axum::routing::{delete_service, get_service, post_service};
        axum::Router::new()
            .route("/refresh", post_service(self.refresh()))
            .route("/logout", post_service(self.logout()))
            .route("/logout-all", post_service(self.logout_all()))
            .route("/sessions", get_service(self.sessions()))
            .route(
                "/sessions/{session_id}",
                delete_service(self.revoke_session()),
            )
    }

    fn endpoint(&self, action: Action) -> Endpoint {
        Endpoint {
            endpoints: self.clone(),
            action,
        }
    }

    pub(crate) fn sessions_ref(&self) -> &HybridSessions {
        &self.config.sessions
    }

    pub(crate) fn cookie_transport(&self) -> Option<&CookieTransport> {
        self.config.cookies.as_ref()
    }

    pub(crate) fn cross_site(&self) -> &CrossSiteCheck {
        &self.config.cross_site
    }

    /// Adds the bearer challenge (RFC 6750 §3) of this realm.
    pub(crate) fn challenge(&self, rejection: impl Into<AuthRejection>) -> AuthRejection {
        rejection
            .into()
            .with_bearer_challenge(self.config.realm.clone())
    }

    /// Renders a refusal; `end` also clears the cookies (the session is over).
    pub(crate) fn refuse(
        &self,
        rejection: impl Into<AuthRejection>,
        end: bool,
    ) -> EndpointResponse {
        let mut response = self.challenge(rejection).to_response();
        if end {
            self.clear_cookies(response.headers_mut());
        }
        response
    }

    fn clear_cookies(&self, headers: &mut HeaderMap) {
        if let Some(cookies) = &self.config.cookies {
            cookies.clear_cookies(headers);
        }
    }

    fn has_cookies(&self, headers: &HeaderMap) -> bool {
        self.config
            .cookies
            .as_ref()
            .is_some_and(|cookies| cookies.has_cookies(headers))
    }

    async fn handle(&self, action: Action, parts: Parts, body: Bytes) -> EndpointResponse {
        match action {
            Action::Refresh => self.handle_refresh(&parts, &body).await,
            Action::Logout => self.handle_logout(&parts, &body).await,
            Action::LogoutAll => self.handle_logout_all(&parts).await,
            Action::ListSessions => self.handle_list(&parts).await,
            Action::RevokeSession => self.handle_revoke(&parts).await,
        }
    }

    async fn handle_refresh(&self, parts: &Parts, body: &Bytes) -> EndpointResponse {
        let sessions = &self.config.sessions;
        let from_body = match body_refresh_token(&parts.headers, body) {
            Ok(token) => token,
            Err(rejection) => return self.refuse(rejection, false),
        };
        if let Some(presented) = from_body {
            // Bearer transport: the client holds the tokens, there are no cookies to clear.
            return match sessions.refresh(&presented).await {
                Ok(pair) => json(StatusCode::OK, pair.to_json().to_string()),
                Err(error) => self.refuse(error, false),
            };
        }
        let cookies = self.config.cookies.as_ref();
        let Some(presented) = cookies.and_then(|c| c.refresh_token(&parts.headers)) else {
            return self.refuse(AuthRejection::missing_credentials(), false);
        };
        match sessions.refresh(presented).await {
            Ok(pair) => {
                let mut response = json(StatusCode::OK, pair.identity().user_json().to_owned());
                match cookies.map(|c| c.set_cookies(&pair, response.headers_mut())) {
                    Some(Err(error)) => self.refuse(error, false),
                    _ => response,
                }
            }
            Err(error) => {
                let end = error.ends_session();
                self.refuse(error, end)
            }
        }
    }

    async fn handle_logout(&self, parts: &Parts, body: &Bytes) -> EndpointResponse {
        match self.end_callers_session(parts, body).await {
            Ok(Ended::Now) => {
                let mut response = empty(StatusCode::NO_CONTENT);
                self.clear_cookies(response.headers_mut());
                response
            }
            Ok(Ended::Already) => self.refuse(HybridError::SessionEnded, true),
            Err(rejection) => self.refuse(rejection, false),
        }
    }

    /// Ends the session the request identifies, trying what a client may hold in turn.
    async fn end_callers_session(
        &self,
        parts: &Parts,
        body: &Bytes,
    ) -> Result<Ended, AuthRejection> {
        let sessions = &self.config.sessions;
        if let Some(session) = parts.extensions.get::<AccessSession>() {
            return Ok(Ended::from(sessions.revoke(session.session_id()).await?));
        }
        let cookies = self.config.cookies.as_ref();
        let refresh_token = match body_refresh_token(&parts.headers, body)? {
            Some(token) => Some(token),
            None => cookies
                .and_then(|c| c.refresh_token(&parts.headers))
                .map(str::to_owned),
        };
        if let Some(token) = refresh_token {
            return match sessions.logout_with_refresh_token(&token).await {
                Ok(()) => Ok(Ended::Now),
                Err(HybridError::SessionEnded) => Ok(Ended::Already),
                Err(error) => Err(error.into()),
            };
        }
        if let Some(token) = cookies.and_then(|c| c.access_token(&parts.headers)) {
            let session_id = self.expired_access_session(token).await?;
            return Ok(Ended::from(sessions.revoke(&session_id).await?));
        }
        Err(missing(&parts.extensions).await)
    }

    /// The session of an access token that may have expired (within the refresh TTL): for
    /// revocation only, never to authenticate.
    async fn expired_access_session(&self, token: &str) -> Result<String, AuthRejection> {
        #[derive(Deserialize)]
        struct SessionClaim {
            sid: String,
        }
        let verified = self.config.revocation_verifier.verify(token).await?;
        let claim: Option<SessionClaim> = serde_json::from_str(verified.claims_json()).ok();
        match claim {
            Some(claim) if is_session_id(&claim.sid) => Ok(claim.sid),
            _ => Err(AuthRejection::invalid_credentials(
                "the access token lacks a session",
            )),
        }
    }

    async fn handle_logout_all(&self, parts: &Parts) -> EndpointResponse {
        let caller = match self.caller(parts).await {
            Ok(caller) => caller,
            Err(rejection) => return self.refuse(rejection, false),
        };
        match self.config.sessions.revoke_all(&caller.user_id).await {
            Ok(ended) => {
                let body = serde_json::json!({ "sessions_ended": ended });
                let mut response = json(StatusCode::OK, body.to_string());
                self.clear_cookies(response.headers_mut());
                response
            }
            Err(error) => self.refuse(error, false),
        }
    }

    async fn handle_list(&self, parts: &Parts) -> EndpointResponse {
        let caller = match self.caller(parts).await {
            Ok(caller) => caller,
            Err(rejection) => return self.refuse(rejection, false),
        };
        match self.config.sessions.list(&caller.user_id).await {
            Ok(list) => match serde_json::to_string(&list) {
                Ok(body) => json(StatusCode::OK, body),
                Err(_) => self.refuse(AuthRejection::misconfigured("could not list"), false),
            },
            Err(error) => self.refuse(error, false),
        }
    }

    async fn handle_revoke(&self, parts: &Parts) -> EndpointResponse {
        let caller = match self.caller(parts).await {
            Ok(caller) => caller,
            Err(rejection) => return self.refuse(rejection, false),
        };
        let sessions = &self.config.sessions;
        let target = parts.uri.path().rsplit('/').next().unwrap_or_default();
        let theirs = match sessions.list(&caller.user_id).await {
            Ok(list) => is_session_id(target) && list.iter().any(|s| s.session_id == target),
            Err(error) => return self.refuse(error, false),
        };
        // Another user's session is "not found": its existence is not the caller's business.
        if !theirs {
            return empty(StatusCode::NOT_FOUND);
        }
        match sessions.revoke(target).await {
            Ok(_) => {
                let mut response = empty(StatusCode::NO_CONTENT);
                if target == caller.session_id {
                    self.clear_cookies(response.headers_mut());
                }
                response
            }
            Err(error) => self.refuse(error, false),
        }
    }

    /// The authenticated caller: the layer's verified access token, or else whatever the
    /// layer left to resolve on demand (a transparent refresh, or its verdict on a bad
    /// credential).
    async fn caller(&self, parts: &Parts) -> Result<Caller, AuthRejection> {
        if let Some(session) = parts.extensions.get::<AccessSession>() {
            return Ok(Caller {
                user_id: session.user_id().to_owned(),
                session_id: session.session_id().to_owned(),
            });
        }
        let Some(authentication) = parts.extensions.get::<Authentication>() else {
            return Err(AuthRejection::missing_credentials());
        };
        let identity = authentication
            .identity()
            .await?
            .ok_or_else(AuthRejection::missing_credentials)?;
        let session_id = identity
            .session_handle()
            .ok_or_else(AuthRejection::missing_credentials)?
            .to_owned();
        let user_id = self
            .config
            .sessions
            .session_user(&session_id)
            .await?
            .ok_or(HybridError::SessionEnded)?;
        Ok(Caller {
            user_id,
            session_id,
        })
    }
}

struct Caller {
    user_id: String,
    session_id: String,
}

/// Whether a logout ended a live session or found it over already.
enum Ended {
    Now,
    Already,
}

impl From<bool> for Ended {
    fn from(existed: bool) -> Self {
        if existed { Self::Now } else { Self::Already }
    }
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Refresh,
    Logout,
    LogoutAll,
    ListSessions,
    RevokeSession,
}

/// One of the [`HybridEndpoints`] as a tower service, for any router (axum's `post_service`,
/// or a hand-written match on the path for bare hyper).
#[derive(Clone)]
pub struct Endpoint {
    endpoints: HybridEndpoints,
    action: Action,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for Endpoint
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = EndpointResponse;
    type Error = Infallible;
    type Future = EndpointFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let endpoints = self.endpoints.clone();
        let action = self.action;
        Box::pin(async move {
            // Cookies ride along on requests other sites trigger (OWASP CSRF Prevention Cheat
            // Sheet): refuse unsafe ones before anything else, as the layer does.
            if endpoints.has_cookies(request.headers())
                && let Err(rejection) = endpoints.config.cross_site.check(&request)
            {
                return Ok(endpoints.refuse(rejection, false));
            }
            let (parts, body) = request.into_parts();
            let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    let rejection = AuthRejection::invalid_request(
                        "the request body is too large or unreadable",
                    );
                    return Ok(endpoints.refuse(rejection, false));
                }
            };
            Ok(endpoints.handle(action, parts, body).await)
        })
    }
}

/// The rejection for a request without usable credentials: the layer's own verdict on a bad
/// credential when there was one, else "authentication is required".
async fn missing(extensions: &http::Extensions) -> AuthRejection {
    match extensions.get::<Authentication>() {
        Some(authentication) => match authentication.identity().await {
            Err(rejection) => rejection,
            Ok(_) => authentication.challenge(AuthRejection::missing_credentials()),
        },
        None => AuthRejection::missing_credentials(),
    }
}

#[derive(Deserialize)]
struct RefreshBody {
    refresh_token: String,
}

/// The refresh token of a JSON body `{"refresh_token": ".."}`, if the request has a body.
fn body_refresh_token(headers: &HeaderMap, body: &Bytes) -> Result<Option<String>, AuthRejection> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    // The same media-type rule as every credential body (`Credentials` included).
    if body_format(headers).ok() != Some(BodyFormat::Json) {
        return Err(AuthRejection::invalid_request(
            "send {\"refresh_token\": \"...\"} as application/json, or the refresh cookie",
        ));
    }
    // A duplicated key is refused by serde, so two parsers never disagree on which counts.
    serde_json::from_slice::<RefreshBody>(body)
        .map(|body| Some(body.refresh_token))
        .map_err(|_| {
            AuthRejection::invalid_request(
                "the body must be a JSON object {\"refresh_token\": \"...\"}",
            )
        })
}

#[cfg(test)]
#[path = "endpoints_tests.rs"]
mod tests;
