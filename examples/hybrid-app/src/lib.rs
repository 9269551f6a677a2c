//! The hybrid example: short-lived access JWTs checked at the edge without a store read, and
//! a rotating refresh token per session, over cookies (`POST /login`) or bearer tokens
//! (`POST /token`). The routes and environment variables are described in README.md.

use std::{env, fmt, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{FromRequest, Path, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::{delete, get, post},
};
use demo_users::{
    Credentials, DemoUsers, IsAdmin, JwtKeySettings, JwtSettingsError, LoginGuardSettings,
    LoginGuardSettingsError, User,
};
use portcullis_core::{AuthRejection, Authentication, Authorized, CrossSiteCheck, CurrentUser};
use portcullis_hybrid::{
    AccessSession, ConfigError, CookieTransport, HybridLayer, HybridSessions,
    HybridSessionsBuilder, InProcessFeed, LimitPolicy, MemoryRefreshStore, SessionLimit, TokenPair,
};
use portcullis_jwt::{SigningKey, TokenIssuer};
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisRevocationFeed};
use serde::Deserialize;

/// Default issuer, the same for every instance so that instances sharing a key accept each
/// other's tokens.
const DEFAULT_ISSUER: &str = "portcullis-hybrid-app";
/// Largest request body the token routes read.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything the app reads from its environment.
#[derive(Clone)]
pub struct Settings {
    /// Where to listen (`--addr`, `PORTCULLIS_ADDR`; default `127.0.0.1:3000`).
    pub addr: SocketAddr,
    /// The `JWT_*` key, issuer, audience and leeway settings, read exactly as jwt-api reads
    /// them (`JWT_ISSUER` defaults to `portcullis-hybrid-app`).
    pub keys: JwtKeySettings,
    /// `ACCESS_TTL_SECS` (default 600).
    pub access_ttl: Duration,
    /// `REFRESH_TTL_SECS`: idle expiry of a session (default 14 days).
    pub refresh_ttl: Duration,
    /// `REFRESH_ABSOLUTE_SECS`: absolute lifetime of a session (default 30 days, at least
    /// `REFRESH_TTL_SECS`).
    pub absolute_ttl: Duration,
    /// `REFRESH_GRACE_SECS` (default 5).
    pub grace: Duration,
    /// `HYBRID_TRANSPARENT_REFRESH=1`: the layer refreshes expired access cookies itself.
    pub transparent_refresh: bool,
    /// `REDIS_URL` (and `REDIS_KEY_PREFIX`): sessions and revocations in Redis; in memory
    /// when unset.
    pub redis: Option<RedisConfig>,
    /// The `LOGIN_*` settings of the login guard (failed logins counted in Redis too when
    /// `REDIS_URL` is set).
    pub login_guard: LoginGuardSettings,
    /// `HYBRID_MAX_PER_USER` and `HYBRID_LIMIT_POLICY`: sessions per user (unset or 0:
    /// unlimited), `evict-oldest` (default) or `refuse-new`.
    pub limit: Option<SessionLimit>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("keys", &self.keys)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("absolute_ttl", &self.absolute_ttl)
            .field("grace", &self.grace)
            .field("transparent_refresh", &self.transparent_refresh)
            .field("redis", &self.redis)
            .field("login_guard", &self.login_guard)
            .field("limit", &self.limit)
            .finish()
    }
}

/// A setting the app cannot start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An environment variable or flag has a value the app cannot use.
    #[error("{name}: {reason}")]
    Setting {
        /// The variable or flag.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing key could not be loaded or generated.
    #[error(transparent)]
    Jwt(#[from] JwtSettingsError),
    /// The hybrid sessions refused the configuration.
    #[error("invalid hybrid configuration")]
    Hybrid(#[from] ConfigError),
    /// `REDIS_URL` (or `REDIS_KEY_PREFIX`) is not a usable Redis configuration.
    #[error("invalid REDIS_URL or REDIS_KEY_PREFIX")]
    Redis(#[from] portcullis_redis::ConfigError),
    /// A `LOGIN_*` variable could not be used.
    #[error(transparent)]
    LoginGuard(#[from] LoginGuardSettingsError),
}

fn setting(name: &'static str, reason: impl Into<String>) -> SetupError {
    SetupError::Setting {
        name,
        reason: reason.into(),
    }
}

impl Settings {
    /// Reads the process environment and command line.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the variable that does not parse.
    pub fn from_env() -> Result<Self, SetupError> {
        let mut flag_addr = None;
        let mut args = env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = match arg.strip_prefix("--addr=") {
                Some(value) => value.to_owned(),
                None if arg == "--addr" => args
                    .next()
                    .ok_or_else(|| setting("--addr", "expects an address"))?,
                None => return Err(setting("arguments", format!("unknown argument {arg:?}"))),
            };
            flag_addr = Some(
                value
                    .parse()
                    .map_err(|_| setting("--addr", format!("{value:?} is not HOST:PORT")))?,
            );
        }
        // The flag wins over PORTCULLIS_ADDR, which is then not even parsed.
        let mut settings = Self::from_lookup(|name| match (name, flag_addr) {
            ("PORTCULLIS_ADDR", Some(_)) => None,
            _ => env::var(name).ok(),
        })?;
        if let Some(addr) = flag_addr {
            settings.addr = addr;
        }
        Ok(settings)
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the variable that does not parse.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SetupError> {
        let secs =
            |name: &'static str, default: u64| -> Result<Duration, SetupError> {
                match lookup(name) {
                    None => Ok(Duration::from_secs(default)),
                    Some(value) => value.trim().parse().map(Duration::from_secs).map_err(|_| {
                        setting(name, format!("{value:?} is not a number of seconds"))
                    }),
                }
            };
        let addr = match lookup("PORTCULLIS_ADDR") {
            Some(value) => value
                .parse()
                .map_err(|_| setting("PORTCULLIS_ADDR", format!("{value:?} is not HOST:PORT")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let keys = JwtKeySettings::from_lookup(&lookup, DEFAULT_ISSUER)?;
        let refresh_ttl = secs("REFRESH_TTL_SECS", 14 * 24 * 3600)?;
        let absolute_ttl = secs("REFRESH_ABSOLUTE_SECS", 30 * 24 * 3600)?.max(refresh_ttl);
        let transparent_refresh = match lookup("HYBRID_TRANSPARENT_REFRESH").as_deref() {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(setting(
                    "HYBRID_TRANSPARENT_REFRESH",
                    format!("{other:?} is not 0 or 1"),
                ));
            }
        };
        let policy = match lookup("HYBRID_LIMIT_POLICY").as_deref().map(str::trim) {
            None | Some("evict-oldest") => LimitPolicy::EvictOldest,
            Some("refuse-new") => LimitPolicy::RefuseNew,
            Some(other) => {
                return Err(setting(
                    "HYBRID_LIMIT_POLICY",
                    format!("{other:?} is not evict-oldest or refuse-new"),
                ));
            }
        };
        let limit = match lookup("HYBRID_MAX_PER_USER") {
            None => None,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(max) => Some(SessionLimit { max, policy }),
                Err(_) => {
                    return Err(setting(
                        "HYBRID_MAX_PER_USER",
                        format!("{value:?} is not a whole number (0 for unlimited)"),
                    ));
                }
            },
        };
        Ok(Self {
            addr,
            keys,
            access_ttl: secs("ACCESS_TTL_SECS", 600)?,
            refresh_ttl,
            absolute_ttl,
            grace: secs("REFRESH_GRACE_SECS", 5)?,
            transparent_refresh,
            redis: RedisConfig::from_lookup(&lookup),
            login_guard: LoginGuardSettings::from_lookup(&lookup)?,
            limit,
        })
    }

    /// The signing key (see [`JwtKeySettings::signing_key`]).
    ///
    /// # Errors
    ///
    /// An unreadable or mismatched key file.
    pub fn signing_key(&self) -> Result<SigningKey, SetupError> {
        Ok(self.keys.signing_key()?)
    }

    /// The hybrid sessions builder for these settings, without a store or feed yet: see
    /// [`with_backend_from`].
    ///
    /// # Errors
    ///
    /// As [`Settings::signing_key`].
    pub fn sessions_builder(&self) -> Result<(HybridSessionsBuilder, TokenIssuer), SetupError> {
        let issuer = self
            .keys
            .token_issuer(self.signing_key()?)
            .ttl(self.access_ttl);
        let mut builder = HybridSessions::builder(issuer.clone(), self.keys.validation())
            .access_ttl(self.access_ttl)
            .refresh_ttl(self.refresh_ttl)
            .absolute_ttl(self.absolute_ttl)
            .grace_window(self.grace)
            .leeway(self.keys.leeway);
        if let Some(limit) = self.limit {
            builder = builder.max_sessions_per_user(limit);
        }
        Ok((builder, issuer))
    }

    /// The cookie transport: path-scoped refresh cookie, or transparent refresh.
    pub fn cookies(&self) -> CookieTransport {
        if self.transparent_refresh {
            CookieTransport::transparent()
        } else {
            CookieTransport::new()
        }
    }
}

/// Chooses where sessions live and how revocations travel: Redis when `redis` is given
/// (`REDIS_URL` in [`Settings`]), so several instances behave as one service; else the in-memory
/// store and the in-process feed.
///
/// # Errors
///
/// [`SetupError::Redis`] when the Redis configuration is unusable.
pub fn with_backend_from(
    builder: HybridSessionsBuilder,
    redis: Option<&RedisConfig>,
) -> Result<HybridSessionsBuilder, SetupError> {
    if let Some(config) = redis {
        let redis = config.build()?;
        tracing::info!("sessions and revocations in Redis (REDIS_URL)");
        return Ok(builder
            .store(RedisRefreshStore::new(redis.clone()))
            .feed(RedisRevocationFeed::new(redis)));
    }
    Ok(builder
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new()))
}

/// The in-memory backend: [`with_backend_from`] without Redis.
///
/// # Errors
///
/// None; fallible like [`with_backend_from`].
pub fn with_backend(builder: HybridSessionsBuilder) -> Result<HybridSessionsBuilder, SetupError> {
    with_backend_from(builder, None)
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    sessions: HybridSessions,
    issuer: TokenIssuer,
    users: DemoUsers,
    cookies: CookieTransport,
    layer: HybridLayer,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("sessions", &self.sessions)
            .field("cookies", &self.cookies)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State from its parts (tests build sessions with a manual clock).
    ///
    /// # Errors
    ///
    /// [`SetupError::Hybrid`] when the cookie settings are invalid.
    pub fn new(
        sessions: HybridSessions,
        issuer: TokenIssuer,
        users: DemoUsers,
        cookies: CookieTransport,
    ) -> Result<Self, SetupError> {
        let layer = HybridLayer::new(&sessions)
            .realm("hybrid-app")
            .cookies(cookies.clone())?;
        Ok(Self {
            sessions,
            issuer,
            users,
            cookies,
            layer,
        })
    }

    /// Builds everything from `settings`: demo users (argon2-hashed now), keys, sessions on
    /// the backend [`with_backend_from`] picks.
    ///
    /// # Errors
    ///
    /// Any [`SetupError`].
    pub async fn from_settings(settings: &Settings) -> Result<Self, SetupError> {
        let (builder, issuer) = settings.sessions_builder()?;
        let guard_redis = settings
            .redis
            .as_ref()
            .map(RedisConfig::build)
            .transpose()?;
        let users = tokio::task::spawn_blocking(DemoUsers::new)
            .await
            .unwrap_or_else(|_| DemoUsers::new())
            .with_login_guard(settings.login_guard.guard(guard_redis));
        // Every refresh re-reads the user, so a removed or demoted user loses access at the
        // next refresh, at most one access-token lifetime later.
        let directory = users.clone();
        let builder = builder.reload_user(move |user_id: String, _stored: serde_json::Value| {
            let user = directory.find(&user_id);
            async move { Ok(user.and_then(|user| serde_json::to_value(user).ok())) }
        });
        let sessions = with_backend_from(builder, settings.redis.as_ref())?
            .build()
            .await?;
        Self::new(sessions, issuer, users, settings.cookies())
    }

    /// The hybrid sessions.
    pub fn sessions(&self) -> &HybridSessions {
        &self.sessions
    }

    /// The user directory (tests remove users from it).
    pub fn users(&self) -> &DemoUsers {
        &self.users
    }
}

/// The application: every route behind the hybrid edge check.
pub fn app(state: AppState) -> Router {
    let layer = state.layer.clone();
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/token", post(token))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{session_id}", delete(revoke_session))
        .route("/.well-known/jwks.json", get(jwks))
        .layer(layer)
        .with_state(state)
}

/// Responses that carry credentials are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

fn challenge(rejection: impl Into<AuthRejection>) -> AuthRejection {
    rejection.into().with_bearer_challenge("hybrid-app")
}

/// Checks the password inside the login guard (429 while locked out, 503 when saturated).
async fn authenticate(users: &DemoUsers, credentials: Credentials) -> Result<User, AuthRejection> {
    users.login(credentials).await
}

async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    credentials: Credentials,
) -> Result<(User, TokenPair), AuthRejection> {
    let user = authenticate(&state.users, credentials).await?;
    let pair = state
        .sessions
        .login(user.id(), &user, user_agent(headers))
        .await?;
    Ok((user, pair))
}

/// `POST /login`: cookie transport; the body is the user.
async fn login(State(state): State<AppState>, request: Request) -> Result<Response, AuthRejection> {
    // Login CSRF (OWASP CSRF Prevention Cheat Sheet, "Login CSRF"): another site must not
    // sign the browser in to an account of its choosing, so the cross-site check applies here
    // too, although the request carries no session yet.
    CrossSiteCheck::new().check(&request)?;
    let previous = request
        .extensions()
        .get::<AccessSession>()
        .map(|session| session.session_id().to_owned());
    let headers = request.headers().clone();
    let credentials = Credentials::from_request(request, &state).await?;
    let (user, pair) = start_session(&state, &headers, credentials).await?;
    if let Some(previous) = previous {
        // A new login gets a new session (OWASP Session Management Cheat Sheet, "Renew the
        // Session ID After Any Privilege Level Change"); the one it replaces ends. The login
        // itself has succeeded, so a failure here is only logged.
        if let Err(error) = state.sessions.revoke(&previous).await {
            tracing::warn!(%error, "could not end the session a login replaced");
        }
    }
    let mut response = Json(user).into_response();
    state.cookies.set_cookies(&pair, response.headers_mut());
    Ok(no_store(response))
}

/// `POST /token`: bearer transport; the body holds both tokens.
async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let (_, pair) = start_session(&state, &headers, credentials).await?;
    Ok(no_store(Json(pair.to_json()).into_response()))
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
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(AuthRejection::invalid_request(
            "send {\"refresh_token\": \"...\"} as application/json, or the refresh cookie",
        ));
    }
    serde_json::from_slice::<RefreshBody>(body)
        .map(|body| Some(body.refresh_token))
        .map_err(|error| {
            AuthRejection::invalid_request(format!("invalid refresh request JSON: {error}"))
        })
}

/// `POST /refresh`: `{"refresh_token"}` in, a new pair out (bearer); or the refresh cookie in,
/// new cookies out (cookie transport).
async fn refresh(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return AuthRejection::invalid_request("the request body is too large").into_response();
        }
    };
    let from_body = match body_refresh_token(&parts.headers, &body) {
        Ok(token) => token,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(presented) = from_body {
        return match state.sessions.refresh(&presented).await {
            Ok(pair) => no_store(Json(pair.to_json()).into_response()),
            Err(error) => challenge(error).into_response(),
        };
    }
    let Some(presented) = state.cookies.refresh_token(&parts.headers) else {
        return challenge(AuthRejection::missing_credentials()).into_response();
    };
    match state.sessions.refresh(presented).await {
        Ok(pair) => {
            let user: Option<User> = pair.identity().user().ok();
            let mut response = Json(user).into_response();
            state.cookies.set_cookies(&pair, response.headers_mut());
            no_store(response)
        }
        Err(error) => {
            let ended = !matches!(
                error,
                portcullis_hybrid::HybridError::Store(_)
                    | portcullis_hybrid::HybridError::Contention
            );
            let mut response = challenge(error).into_response();
            if ended {
                state.cookies.clear_cookies(response.headers_mut());
            }
            response
        }
    }
}

/// `POST /logout`: ends this session (the access token's, else the refresh token's), so its
/// access tokens are refused at once on every instance.
async fn logout(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let result = if let Some(session) = parts.extensions.get::<AccessSession>() {
        state
            .sessions
            .revoke(session.session_id())
            .await
            .map(|_| ())
            .map_err(AuthRejection::from)
    } else {
        let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
            .await
            .unwrap_or_default();
        match body_refresh_token(&parts.headers, &body) {
            Err(rejection) => Err(rejection),
            Ok(from_body) => {
                let presented = from_body.or_else(|| {
                    state
                        .cookies
                        .refresh_token(&parts.headers)
                        .map(str::to_owned)
                });
                match presented {
                    Some(presented) => state
                        .sessions
                        .logout_with_refresh_token(&presented)
                        .await
                        .map_err(AuthRejection::from),
                    None => Err(missing(&parts.extensions).await),
                }
            }
        }
    };
    let mut response = match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(rejection) => challenge(rejection).into_response(),
    };
    // Whatever happened, this browser's cookies are of no further use.
    state.cookies.clear_cookies(response.headers_mut());
    no_store(response)
}

/// The rejection for a request without usable credentials: the layer's own verdict on a bad
/// cookie when there was one, else "authentication is required".
async fn missing(extensions: &axum::http::Extensions) -> AuthRejection {
    match extensions.get::<Authentication>() {
        Some(authentication) => match authentication.identity().await {
            Err(rejection) => rejection,
            Ok(_) => authentication.challenge(AuthRejection::missing_credentials()),
        },
        None => AuthRejection::missing_credentials(),
    }
}

/// `POST /logout-all`: ends every session of the caller.
async fn logout_all(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser<User>,
) -> Result<Response, AuthRejection> {
    let ended = state.sessions.revoke_all(user.id()).await?;
    let mut response = Json(serde_json::json!({ "sessions_ended": ended })).into_response();
    state.cookies.clear_cookies(response.headers_mut());
    Ok(no_store(response))
}

/// `GET /me`: the caller.
async fn me(CurrentUser(user): CurrentUser<User>) -> Response {
    no_store(Json(user).into_response())
}

/// `GET /admin`: admins only.
async fn admin(admin: Authorized<User, IsAdmin>) -> Response {
    no_store(Json(admin.into_inner()).into_response())
}

/// `GET /sessions`: the caller's live sessions.
async fn list_sessions(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser<User>,
) -> Result<Response, AuthRejection> {
    let sessions = state.sessions.list(user.id()).await?;
    Ok(no_store(Json(sessions).into_response()))
}

/// `DELETE /sessions/{session_id}`: ends one of the caller's sessions (revoke by handle);
/// 404 for a session that is not theirs.
async fn revoke_session(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser<User>,
    Path(session_id): Path<String>,
) -> Result<Response, AuthRejection> {
    let theirs = state
        .sessions
        .list(user.id())
        .await?
        .iter()
        .any(|session| session.session_id == session_id);
    if !theirs {
        return Ok(no_store(StatusCode::NOT_FOUND.into_response()));
    }
    state.sessions.revoke(&session_id).await?;
    Ok(no_store(StatusCode::NO_CONTENT.into_response()))
}

/// `GET /.well-known/jwks.json`: the public keys (none for HMAC).
async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.issuer.jwks())
}

/// `GET /`: a small page that signs in with cookies and refreshes once on a 401.
async fn home() -> Html<&'static str> {
    Html(HOME_PAGE)
}

const HOME_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>hybrid-app</title></head>
<body>
<h1>hybrid-app</h1>
<form id="login">
  <input name="username" placeholder="username" autocomplete="username">
  <input name="password" type="password" placeholder="password" autocomplete="current-password">
  <button>Sign in</button>
</form>
<p><button id="me">Who am I?</button> <button id="logout">Sign out</button>
   <button id="logout-all">Sign out everywhere</button></p>
<pre id="out"></pre>
<script>
const out = (text) => { document.getElementById("out").textContent = text; };
// On 401 the access cookie has expired: refresh once, then retry.
async function call(method, path, body) {
  const init = { method, headers: body ? { "content-type": "application/json" } : {}, body };
  let response = await fetch(path, init);
  if (response.status === 401) {
    const refreshed = await fetch("/refresh", { method: "POST" });
    if (refreshed.ok) response = await fetch(path, init);
  }
  return response;
}
document.getElementById("login").onsubmit = async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const response = await fetch("/login", { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: form.get("username"), password: form.get("password") }) });
  out(response.status + " " + await response.text());
};
document.getElementById("me").onclick = async () => {
  const response = await call("GET", "/me");
  out(response.status + " " + await response.text());
};
document.getElementById("logout").onclick = async () => {
  const response = await call("POST", "/logout");
  out(response.status === 204 ? "signed out" : response.status + " " + await response.text());
};
document.getElementById("logout-all").onclick = async () => {
  const response = await call("POST", "/logout-all");
  out(response.status + " " + await response.text());
};
</script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SetupError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| env.get(name).cloned())
    }

    #[test]
    fn settings_defaults_and_overrides() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(defaults.access_ttl, Duration::from_secs(600));
        assert_eq!(defaults.grace, Duration::from_secs(5));
        assert_eq!(defaults.keys.leeway, Duration::from_secs(30));
        assert!(!defaults.transparent_refresh);
        assert_eq!(defaults.cookies().refresh_cookie(), "__Secure-refresh");

        let custom = settings(&[
            ("ACCESS_TTL_SECS", "2"),
            ("REFRESH_TTL_SECS", "60"),
            ("REFRESH_GRACE_SECS", "0"),
            ("JWT_LEEWAY_SECS", "0"),
            ("HYBRID_TRANSPARENT_REFRESH", "1"),
            ("JWT_ALG", "ES256"),
        ])
        .unwrap();
        assert_eq!(custom.access_ttl, Duration::from_secs(2));
        assert_eq!(custom.refresh_ttl, Duration::from_secs(60));
        assert_eq!(custom.grace, Duration::ZERO);
        assert_eq!(
            custom.keys.algorithm,
            Some(portcullis_jwt::Algorithm::ES256)
        );
        assert_eq!(custom.cookies().refresh_cookie(), "__Host-refresh");
        assert!(!format!("{custom:?}").contains("secret\":"));

        for bad in [
            ("ACCESS_TTL_SECS", "-1"),
            ("JWT_ALG", "none"),
            ("JWT_LEEWAY_SECS", "301"),
            ("PORTCULLIS_ADDR", "nowhere"),
        ] {
            assert!(settings(&[bad]).is_err(), "{bad:?}");
        }
        let secret =
            settings(&[("JWT_HS256_SECRET", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")]).unwrap();
        assert!(!format!("{secret:?}").contains("s3cr3t"));
    }

    #[tokio::test]
    async fn the_per_user_limit_comes_from_the_environment() {
        assert_eq!(settings(&[]).unwrap().limit, None);
        assert_eq!(
            settings(&[("HYBRID_MAX_PER_USER", "0")]).unwrap().limit,
            None
        );
        let evict = settings(&[("HYBRID_MAX_PER_USER", "3")]).unwrap();
        assert_eq!(
            evict.limit,
            Some(SessionLimit {
                max: 3,
                policy: LimitPolicy::EvictOldest
            })
        );
        for bad in [
            ("HYBRID_MAX_PER_USER", "-1"),
            ("HYBRID_LIMIT_POLICY", "newest"),
        ] {
            assert!(settings(&[bad]).is_err(), "{bad:?}");
        }
        // refuse-new: the second token login of alice is refused with 403.
        let refuse = settings(&[
            ("HYBRID_MAX_PER_USER", "1"),
            ("HYBRID_LIMIT_POLICY", "refuse-new"),
        ])
        .unwrap();
        let app = app(AppState::from_settings(&refuse).await.unwrap());
        let login = || {
            Request::post("/token")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    r#"{"username":"alice","password":"alice-password-1"}"#,
                ))
                .unwrap()
        };
        let first = app.clone().oneshot(login()).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let second = app.oneshot(login()).await.unwrap();
        assert_eq!(second.status(), StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn form_login_and_me_without_a_socket() {
        let state = AppState::from_settings(&settings(&[]).unwrap())
            .await
            .unwrap();
        let app = app(state);
        let login = app
            .clone()
            .oneshot(
                Request::post("/login")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from("username=admin&password=admin-password-1"))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(login.status(), StatusCode::OK);
        let access = login
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| v.strip_prefix("__Host-access="))
            .and_then(|v| v.split(';').next())
            .unwrap()
            .to_owned();
        let admin = app
            .oneshot(
                Request::get("/admin")
                    .header(header::COOKIE, format!("__Host-access={access}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(admin.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_removed_user_loses_access_at_the_next_refresh() {
        let state = AppState::from_settings(&settings(&[]).unwrap())
            .await
            .unwrap();
        let admin = state.users().find("admin").unwrap();
        let pair = state
            .sessions()
            .login(admin.id(), &admin, None)
            .await
            .unwrap();
        let refreshed = state
            .sessions()
            .refresh(&pair.refresh_token().expose())
            .await
            .unwrap();
        assert!(refreshed.identity().user::<User>().unwrap().is_admin());
        assert!(state.users().remove("admin"));
        let error = state
            .sessions()
            .refresh(&refreshed.refresh_token().expose())
            .await
            .unwrap_err();
        assert!(
            matches!(error, portcullis_hybrid::HybridError::UserGone),
            "{error:?}"
        );
        let me = app(state)
            .oneshot(
                Request::get("/me")
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", refreshed.access_token()),
                    )
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    }
}
