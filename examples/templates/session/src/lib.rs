//! A session-cookie app to copy: login, the caller in a handler, an admin-only route.
//! Sessions live in memory; for several servers use `portcullis::redis::RedisSessionStore`
//! (feature `redis`).

mod users;

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use portcullis::session::{MemoryStore, Session, SessionConfig, SessionLayer};
use portcullis::{AuthRejection, Authorized, Credentials, CurrentUser, PasswordCheck};

pub use users::{IsAdmin, User};

/// The app: `POST /login`, `POST /logout`, `GET /me`, `GET /admin`.
pub fn app() -> Result<Router, portcullis::session::ConfigError> {
    // __Host-session cookie: HttpOnly, Secure, SameSite=Lax; idle and absolute timeouts.
    let sessions = SessionLayer::new(MemoryStore::new(), SessionConfig::default())?;
    Ok(Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .with_state(PasswordCheck::default())
        .layer(sessions))
}

/// JSON or form credentials; 401 for wrong ones, 403 when posted from another site (login CSRF).
async fn login(
    State(passwords): State<PasswordCheck>,
    session: Session,
    credentials: Credentials,
) -> Result<Json<User>, AuthRejection> {
    let user = users::login(&passwords, credentials).await?;
    // A new session ID on every login (OWASP Session Management Cheat Sheet, fixation).
    session
        .login(&user.user, &user)
        .await
        .map_err(AuthRejection::from)?;
    Ok(Json(user))
}

async fn logout(session: Session) -> Result<(), AuthRejection> {
    session.logout().await.map_err(AuthRejection::from)
}

/// 401 when anonymous.
async fn me(CurrentUser(user): CurrentUser<User>) -> Json<User> {
    Json(user)
}

/// 403 for non-admins.
async fn admin(admin: Authorized<User, IsAdmin>) -> Json<User> {
    Json(admin.into_inner())
}
