//! The login helper: the application checks the password, the library does the rest (refuse
//! cross-site requests, start the session, hand out the tokens per transport).

use http::{Request, StatusCode, header, request::Parts};
use portcullis_core::AuthRejection;
use serde::Serialize;

use crate::{
    AccessSession, HybridEndpoints,
    response::{EndpointResponse, json},
};

/// How a login hands the client its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginTransport {
    /// The access and refresh cookies of the layer's [`CookieTransport`](crate::CookieTransport);
    /// the body is the user.
    Cookies,
    /// The body `{"access_token", "refresh_token", "token_type": "Bearer", "expires_in"}`
    /// (RFC 6749 §5.1); no cookies.
    Bearer,
}

impl HybridEndpoints {
    /// Signs in a user the application has just verified (password checked), for the request
    /// whose head is `request`:
    ///
    /// 1. refuses a cross-site request with 403 (login CSRF, OWASP CSRF Prevention Cheat Sheet,
    ///    "Login CSRF": another site must not sign the browser in to an account of its choosing),
    ///    with the same [`CrossSiteCheck`](portcullis_core::CrossSiteCheck) as the layer;
    /// 2. starts a session (`user_id` for listings and logout-all, `user` in every access token);
    /// 3. answers per `transport`, with `Cache-Control: no-store`; a cookie the browser would
    ///    drop for its size is a clear 400 and the session is ended, never a silent failure;
    /// 4. ends the session this request was signed in with, if any (OWASP Session Management
    ///    Cheat Sheet, "Renew the Session ID After Any Privilege Level Change").
    ///
    /// With axum, the [`HybridLogin`] extractor does step 1 before the body is read.
    ///
    /// # Errors
    ///
    /// The rejection to answer with: 403 cross-site, 400 oversized cookie, 503 store outage,
    /// 500 when `Cookies` is asked of a layer without a cookie transport.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo(endpoints: portcullis_hybrid::HybridEndpoints, request: http::Request<()>) -> Result<(), portcullis_core::AuthRejection> {
    /// use portcullis_hybrid::LoginTransport;
    /// let (parts, _body) = request.into_parts();
    /// // ... the application has checked the password of "alice" ...
    /// let user = serde_json::json!({"user": "alice", "role": "advertiser"});
    /// let response = endpoints.login(&parts, LoginTransport::Cookies, "alice", &user).await?;
    /// # Ok(()) }
    /// ```
    pub async fn login<U: Serialize + ?Sized>(
        &self,
        request: &Parts,
        transport: LoginTransport,
        user_id: &str,
        user: &U,
    ) -> Result<EndpointResponse, AuthRejection> {
        self.check_login(request)?;
        let cookies = match transport {
            LoginTransport::Cookies => Some(self.cookie_transport().ok_or_else(|| {
                AuthRejection::misconfigured("cookie login needs a HybridLayer with cookies")
            })?),
            LoginTransport::Bearer => None,
        };
        let sessions = self.sessions_ref();
        let user_agent = request
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok());
        let pair = sessions
            .login(user_id, user, user_agent)
            .await
            .map_err(|error| self.challenge(error))?;
        let response = match cookies {
            None => json(StatusCode::OK, pair.to_json().to_string()),
            Some(cookies) => {
                let mut response = json(StatusCode::OK, pair.identity().user_json().to_owned());
                if let Err(error) = cookies.set_cookies(&pair, response.headers_mut()) {
                    // Nobody can use this session: end it rather than leave it in the store.
                    if let Err(error) = sessions.revoke(pair.session_id()).await {
                        tracing::warn!(%error, "could not end a session whose cookies did not fit");
                    }
                    return Err(self.challenge(error));
                }
                response
            }
        };
        if let Some(previous) = request.extensions.get::<AccessSession>() {
            // The login itself has succeeded, so a failure here is only logged.
            if let Err(error) = sessions.revoke(previous.session_id()).await {
                tracing::warn!(%error, "could not end the session a login replaced");
            }
        }
        Ok(response)
    }

    /// Step 1 of [`HybridEndpoints::login`]: 403 for a cross-site login.
    fn check_login(&self, request: &Parts) -> Result<(), AuthRejection> {
        let mut head = Request::new(());
        *head.method_mut() = request.method.clone();
        *head.uri_mut() = request.uri.clone();
        *head.headers_mut() = request.headers.clone();
        self.cross_site().check(&head)
    }
}

/// An axum extractor for a login handler: refuses a cross-site request with 403 before the
/// body (the credentials) is read, then [`HybridLogin::cookies`] or [`HybridLogin::bearer`]
/// signs the verified user in (see [`HybridEndpoints::login`]). The state must give the
/// [`HybridEndpoints`] (`FromRef`).
///
/// # Examples
///
/// ```
/// use axum::{Json, extract::FromRef, response::Response};
/// use portcullis_core::AuthRejection;
/// use portcullis_hybrid::{HybridEndpoints, HybridLogin};
///
/// #[derive(Clone)]
/// struct AppState { endpoints: HybridEndpoints }
/// impl FromRef<AppState> for HybridEndpoints {
///     fn from_ref(state: &AppState) -> Self { state.endpoints.clone() }
/// }
///
/// #[derive(serde::Deserialize)]
/// struct Credentials { username: String, password: String }
///
/// async fn login(login: HybridLogin, Json(credentials): Json<Credentials>) -> Result<Response, AuthRejection> {
///     if credentials.password != "alice-password-1" { // a real app checks a password hash
///         return Err(AuthRejection::invalid_credentials("wrong username or password"));
///     }
///     let user = serde_json::json!({"user": credentials.username, "role": "advertiser"});
///     login.cookies(&credentials.username, &user).await
/// }
/// let _: axum::routing::MethodRouter<AppState> = axum::routing::post(login);
/// ```
#[cfg(feature = "axum")]
#[derive(Debug)]
pub struct HybridLogin {
    endpoints: HybridEndpoints,
    request: Parts,
}

#[cfg(feature = "axum")]
impl HybridLogin {
    /// Signs `user` in with the cookie transport; the response body is the user.
    ///
    /// # Errors
    ///
    /// As [`HybridEndpoints::login`].
    pub async fn cookies<U: Serialize + ?Sized>(
        self,
        user_id: &str,
        user: &U,
    ) -> Result<axum_core::response::Response, AuthRejection> {
        self.sign_in(LoginTransport::Cookies, user_id, user).await
    }

    /// Signs `user` in with the bearer transport; the response body holds both tokens.
    ///
    /// # Errors
    ///
    /// As [`HybridEndpoints::login`].
    pub async fn bearer<U: Serialize + ?Sized>(
        self,
        user_id: &str,
        user: &U,
    ) -> Result<axum_core::response::Response, AuthRejection> {
        self.sign_in(LoginTransport::Bearer, user_id, user).await
    }

    async fn sign_in<U: Serialize + ?Sized>(
        self,
        transport: LoginTransport,
        user_id: &str,
        user: &U,
    ) -> Result<axum_core::response::Response, AuthRejection> {
        let response = self
            .endpoints
            .login(&self.request, transport, user_id, user)
            .await?;
        Ok(response.map(axum_core::body::Body::new))
    }
}

#[cfg(feature = "axum")]
impl<S> axum_core::extract::FromRequestParts<S> for HybridLogin
where
    HybridEndpoints: axum_core::extract::FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AuthRejection> {
        let endpoints = <HybridEndpoints as axum_core::extract::FromRef<S>>::from_ref(state);
        endpoints.check_login(parts)?;
        // The `Credentials` extractor after this one then judges the login by the same check
        // (trusted origins included).
        parts.extensions.insert(endpoints.cross_site().clone());
        let mut request = Request::new(());
        *request.method_mut() = parts.method.clone();
        *request.uri_mut() = parts.uri.clone();
        *request.headers_mut() = parts.headers.clone();
        if let Some(session) = parts.extensions.get::<AccessSession>() {
            request.extensions_mut().insert(session.clone());
        }
        let (request, ()) = request.into_parts();
        Ok(Self { endpoints, request })
    }
}
