//! Run with: `cargo run -p session-app`
//!
//! The session-cookie demo of portcullis: a server-rendered page and a small JSON API, signed in
//! with an opaque session ID in a `__Host-session` cookie and the state in a store (in memory
//! here). Handlers ask for `CurrentUser<User>` or `Authorized<User, IsAdmin>` and never see the
//! mechanism.
//!
//! | route | what it does |
//! |---|---|
//! | `GET /` | the login form, or who is signed in, a logout button and their sessions |
//! | `GET /login` | the login form; `?next=/path` (a path on this site only) is where it returns |
//! | `GET /account` | the signed-in page; anonymous visitors are redirected to `/login?next=/account` |
//! | `POST /login` | JSON or form credentials; form: 303 to `next` or `/`; JSON: 200 `{"user", "role"}`; wrong: 401 |
//! | `POST /logout` | ends this session (form: 303 to `/`, else 204) |
//! | `POST /logout-all` | ends every session of the user (form: 303 to `/`, else 200 `{"revoked": n}`) |
//! | `GET /me` | the user body, 401 when anonymous |
//! | `GET /admin` | 200 for admins, 403 for others, 401 when anonymous |
//! | `GET /sessions` | the user's sessions: handle, created, last seen, user agent, current |
//! | `DELETE /sessions/{handle}` | ends one of the user's sessions (204, or 404) |
//! | `GET /ws` | a WebSocket greeting the signed-in user, then echoing; refused (403) from another site |
//! | `POST /preferences` | form field `theme`: an app cookie set with `tower-cookies`, beside the session cookie |
//!
//! Time-outs come from the environment, see [`Settings`] and the README.

mod page;
mod pages;
mod preferences;

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{
        DefaultBodyLimit, Path, State,
        ws::{Message, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{delete, get, post},
};
use portcullis_core::{AuthRejection, Authorized, CurrentUser, RejectionKind};
use portcullis_session::{
    LimitPolicy, LoginOptions, Session, SessionConfig, SessionLayer, SessionLimit, SessionStore,
};
use serde::Serialize;
use tower_cookies::Cookies;

pub use demo_users::{Credentials, DemoUsers, IsAdmin, Role, User};

/// The session settings the app reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `SESSION_IDLE_SECS`: idle (rolling) timeout, default 1800.
    pub idle: Duration,
    /// `SESSION_ABSOLUTE_SECS`: absolute timeout, default 43200.
    pub absolute: Duration,
    /// `SESSION_MAX_PER_USER`: sessions per user, default unlimited (0 also means unlimited).
    pub max_per_user: Option<u32>,
    /// `SESSION_LIMIT_POLICY`: `evict-oldest` (default) or `refuse-new`.
    pub limit_policy: LimitPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            max_per_user: None,
            limit_policy: LimitPolicy::EvictOldest,
        }
    }
}

/// An environment variable with a value the app cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?} is invalid: expected {expected}")]
pub struct SettingsError {
    name: &'static str,
    value: String,
    expected: &'static str,
}

impl Settings {
    /// Reads the settings from the process environment.
    ///
    /// # Errors
    ///
    /// A variable that is set to something unusable.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// A variable that is set to something unusable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let seconds = |name: &'static str| -> Result<Option<u64>, SettingsError> {
            lookup(name)
                .map(|value| match value.trim().parse::<u64>() {
                    Ok(secs) if secs > 0 => Ok(secs),
                    _ => Err(SettingsError {
                        name,
                        value,
                        expected: "a whole number of seconds, at least 1",
                    }),
                })
                .transpose()
        };
        let defaults = Self::default();
        let absolute =
            seconds("SESSION_ABSOLUTE_SECS")?.map_or(defaults.absolute, Duration::from_secs);
        // An idle timeout beyond the absolute one could never apply: cap it, so setting only
        // SESSION_ABSOLUTE_SECS to a few seconds works.
        let idle = seconds("SESSION_IDLE_SECS")?
            .map_or(defaults.idle, Duration::from_secs)
            .min(absolute);
        let max_per_user = match lookup("SESSION_MAX_PER_USER") {
            None => None,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(max) => Some(max),
                Err(_) => {
                    return Err(SettingsError {
                        name: "SESSION_MAX_PER_USER",
                        value,
                        expected: "a whole number (0 for unlimited)",
                    });
                }
            },
        };
        let limit_policy = match lookup("SESSION_LIMIT_POLICY").as_deref().map(str::trim) {
            None | Some("evict-oldest") => LimitPolicy::EvictOldest,
            Some("refuse-new") => LimitPolicy::RefuseNew,
            Some(other) => {
                return Err(SettingsError {
                    name: "SESSION_LIMIT_POLICY",
                    value: other.to_owned(),
                    expected: "evict-oldest or refuse-new",
                });
            }
        };
        Ok(Self {
            idle,
            absolute,
            max_per_user,
            limit_policy,
        })
    }

    /// The session layer settings: the library defaults (`__Host-session`, HttpOnly, Secure,
    /// SameSite=Lax, cross-site check on) with these time-outs and limit.
    pub fn session_config(&self) -> SessionConfig {
        let mut config = SessionConfig::default()
            .idle_timeout(self.idle)
            .absolute_timeout(self.absolute);
        if let Some(max) = self.max_per_user {
            config = config.max_sessions_per_user(SessionLimit {
                max,
                policy: self.limit_policy,
            });
        }
        config
    }
}

#[derive(Clone)]
struct AppState {
    users: DemoUsers,
}

/// The whole app over any session store: the in-memory one in `main`, another in tests or
/// production (`SessionLayer::new(store, settings.session_config())`).
///
/// The signed-in user is read from `users` through a [`UserLoader`](portcullis_session::UserLoader)
/// (cached on this instance), not from the snapshot taken at login: a user removed from the
/// table loses every session at their next request.
pub fn app<S: SessionStore>(sessions: SessionLayer<S>, users: DemoUsers) -> Router {
    let table = users.clone();
    let loader = portcullis_session::UserLoader::builder(move |user_id: String| {
        let table = table.clone();
        async move { table.current(&user_id).await }
    })
    .build_local();
    let sessions = sessions.user_loader(loader);
    Router::new()
        .route("/", get(home))
        .route("/login", get(pages::login_page).post(login))
        .route("/logout", post(logout))
        .route("/logout-all", post(logout_all))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{handle}", delete(revoke_session))
        .route("/preferences", post(preferences::set_theme))
        .route("/ws", get(websocket))
        .merge(pages::protected())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(sessions)
        // The app's own cookies (a theme preference) through tower-cookies, beside
        // portcullis' session cookie: each layer appends its own Set-Cookie headers.
        .layer(tower_cookies::CookieManagerLayer::new())
        .with_state(AppState { users })
}

/// A JSON error `{"error", "error_description"}` that is never cached.
fn error(status: StatusCode, code: &str, description: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description.into() });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Whether the request is a browser form post (which gets redirects and HTML back).
fn is_form(headers: &HeaderMap) -> bool {
    matches!(
        media_type(headers).as_str(),
        "application/x-www-form-urlencoded" | "multipart/form-data"
    )
}

async fn home(
    user: Option<CurrentUser<User>>,
    session: Session,
) -> Result<Response, AuthRejection> {
    let page = match user {
        None => page::login(None, None),
        Some(CurrentUser(user)) => {
            let sessions = session.sessions().await.map_err(AuthRejection::from)?;
            page::home(&user, &sessions)
        }
    };
    Ok(no_store(Html(page)))
}

async fn login(
    State(state): State<AppState>,
    session: Session,
    cookies: Cookies,
    headers: HeaderMap,
    // The library's parser: JSON or form (with `remember` and `next`), 4xx with the reason.
    credentials: Credentials,
) -> Response {
    let form = is_form(&headers);
    let (remember, next) = (credentials.remember, credentials.next.clone());
    // Inside the login guard: 429 while locked out, 503 when too many checks run (issue 18).
    let user = match state.users.login(credentials).await {
        Ok(user) => user,
        Err(rejection) => return login_refused(&rejection, form, next.as_deref()),
    };
    let options = LoginOptions::default().remember_me(remember);
    if let Err(error) = session.login_with(&user.user, &user, options).await {
        return error.into_response();
    }
    preferences::keep_theme(&cookies);
    if form {
        Redirect::to(pages::return_to(next.as_deref())).into_response()
    } else {
        no_store(Json(user))
    }
}

/// A refused login: the form gets the login page again, with the rejection's status (and
/// `Retry-After`); JSON gets the rejection.
fn login_refused(rejection: &AuthRejection, form: bool, next: Option<&str>) -> Response {
    let message = match rejection.kind() {
        RejectionKind::InvalidCredentials => "Unknown user name or wrong password.",
        RejectionKind::TooManyAttempts => "Too many failed logins: wait a little, then try again.",
        _ => "Signing in is not possible right now: try again shortly.",
    };
    match form {
        false if rejection.kind() == RejectionKind::InvalidCredentials => {
            AuthRejection::invalid_credentials("unknown user name or wrong password")
                .into_response()
        }
        false => rejection.clone().into_response(),
        true => {
            let mut response = rejection.clone().into_response();
            let retry_after = response.headers_mut().remove(header::RETRY_AFTER);
            let mut page = no_store((response.status(), Html(page::login(Some(message), next))));
            if let Some(retry_after) = retry_after {
                page.headers_mut().insert(header::RETRY_AFTER, retry_after);
            }
            page
        }
    }
}

async fn logout(session: Session, cookies: Cookies, headers: HeaderMap) -> Response {
    if let Err(error) = session.logout().await {
        return error.into_response();
    }
    preferences::keep_theme(&cookies);
    if is_form(&headers) {
        Redirect::to("/").into_response()
    } else {
        no_store(StatusCode::NO_CONTENT)
    }
}

async fn logout_all(
    CurrentUser(_user): CurrentUser<User>,
    session: Session,
    headers: HeaderMap,
) -> Response {
    match session.revoke_all().await {
        Err(error) => error.into_response(),
        Ok(_) if is_form(&headers) => Redirect::to("/").into_response(),
        Ok(revoked) => no_store(Json(serde_json::json!({ "revoked": revoked }))),
    }
}

/// `GET /ws`: a WebSocket for the signed-in user: greets them, then echoes text. The session
/// layer refuses a handshake from another site with the user's cookie (403, cross-site
/// WebSocket hijacking) before this runs.
async fn websocket(CurrentUser(user): CurrentUser<User>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |mut socket| async move {
        let hello = format!("hello {}", user.user);
        if socket.send(Message::Text(hello.into())).await.is_err() {
            return;
        }
        while let Some(Ok(message)) = socket.recv().await {
            let reply = match message {
                Message::Text(text) => Message::Text(text),
                Message::Close(_) => return,
                _ => continue,
            };
            if socket.send(reply).await.is_err() {
                return;
            }
        }
    })
}

async fn me(CurrentUser(user): CurrentUser<User>) -> Response {
    no_store(Json(user))
}

async fn admin(admin: Authorized<User, IsAdmin>) -> Response {
    no_store(Json(admin.into_inner()))
}

/// One session in `GET /sessions`. Times are Unix seconds.
#[derive(Debug, Serialize)]
struct SessionView {
    handle: String,
    created: u64,
    last_seen: u64,
    expires: u64,
    user_agent: Option<String>,
    persistent: bool,
    current: bool,
}

async fn list_sessions(
    CurrentUser(_user): CurrentUser<User>,
    session: Session,
) -> Result<Response, AuthRejection> {
    let sessions = session.sessions().await.map_err(AuthRejection::from)?;
    let view: Vec<SessionView> = sessions
        .into_iter()
        .map(|s| SessionView {
            handle: s.handle,
            created: s.created_at,
            last_seen: s.last_seen_at,
            expires: s.expires_at,
            user_agent: s.user_agent,
            persistent: s.persistent,
            current: s.current,
        })
        .collect();
    Ok(no_store(Json(view)))
}

async fn revoke_session(
    CurrentUser(_user): CurrentUser<User>,
    session: Session,
    Path(handle): Path<String>,
) -> Result<Response, AuthRejection> {
    if session.revoke(&handle).await.map_err(AuthRejection::from)? {
        Ok(no_store(StatusCode::NO_CONTENT))
    } else {
        Ok(error(
            StatusCode::NOT_FOUND,
            "not_found",
            "you have no session with this handle",
        ))
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[cfg(test)]
mod tests;
