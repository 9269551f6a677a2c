//! Session mode: `POST /login` sets a session cookie; logout, re-authentication and revocation
//! go through the [`Session`] handle.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    routing::{delete, get, post, put},
};
use demo_users::{Credentials, DemoUsers, IsAdmin, User};
use portcullis_core::{
    AuthRejection, Authorized, CurrentUser, Readiness, ReadinessChecks, RecentlyAuthenticated,
};
use portcullis_redis::{RedisConfig, RedisSessionStore};
use portcullis_session::{MemoryStore, Session, SessionConfig, SessionLayer, SessionStore};

use crate::{
    AppState, PasswordBody, REAUTH_MAX_AGE_SECS, SetupError, ads, check_password, me,
    roles::{self, RoleError, RoleInput},
    set_password, sign_in,
};

/// The session-mode router. Reads `SESSION_IDLE_SECS` and `SESSION_ABSOLUTE_SECS`; sessions
/// live in Redis when `REDIS_URL` is set, in memory otherwise.
///
/// # Errors
///
/// When a timeout is not a number of seconds or the session settings are inconsistent.
pub fn router(
    state: AppState,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Router, SetupError> {
    let secs = |name: &str| -> Result<Option<Duration>, SetupError> {
        lookup(name)
            .map(|v| {
                v.trim().parse().map(Duration::from_secs).map_err(|_| {
                    SetupError::Setting(format!("{name}: {v:?} is not a number of seconds"))
                })
            })
            .transpose()
    };
    let mut config = SessionConfig::default();
    if let Some(idle) = secs("SESSION_IDLE_SECS")? {
        config = config.idle_timeout(idle);
    }
    if let Some(absolute) = secs("SESSION_ABSOLUTE_SECS")? {
        config = config.absolute_timeout(absolute);
    }
    if let Some(redis) = RedisConfig::from_lookup(&lookup) {
        let store = RedisSessionStore::new(redis.build()?);
        return with_layer(state, store, config);
    }
    let store = MemoryStore::new();
    // Frees expired sessions until the store (owned by the router) is dropped.
    store.spawn_sweeper(Duration::from_secs(30));
    with_layer(state, store, config)
}

fn with_layer<S: SessionStore + Readiness + Clone>(
    state: AppState,
    store: S,
    config: SessionConfig,
) -> Result<Router, SetupError> {
    let health =
        demo_users::health_routes(ReadinessChecks::new().check("session store", store.clone()));
    let layer = SessionLayer::new(store, config)?;
    Ok(Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/reauth", post(reauth))
        .route("/password", post(change_password))
        .route("/account", delete(delete_account))
        .route("/users/{name}/role", put(change_role))
        .merge(ads::routes())
        .with_state(state)
        .layer(layer)
        .merge(health))
}

async fn login(
    session: Session,
    State(users): State<DemoUsers>,
    credentials: Credentials,
) -> Result<Json<User>, AuthRejection> {
    let user = sign_in(&users, credentials).await?;
    session.login(user.id(), &user).await?;
    Ok(Json(user))
}

/// `PUT /users/{name}/role`: the new role is written into every session of the user, so
/// their next request on any instance sharing the store runs with it.
async fn change_role(
    _: Authorized<User, IsAdmin>,
    session: Session,
    State(users): State<DemoUsers>,
    Path(name): Path<String>,
    input: Result<Json<RoleInput>, JsonRejection>,
) -> Result<Json<User>, RoleError> {
    let user = roles::set_role(&users, &name, input)?;
    session
        .replace_user(user.id(), &user)
        .await
        .map_err(AuthRejection::from)?;
    Ok(Json(user))
}

async fn logout(session: Session) -> Result<StatusCode, AuthRejection> {
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms the password: signing in again renews the session ID and its `auth_time`.
async fn reauth(
    session: Session,
    CurrentUser(user): CurrentUser<User>,
    State(users): State<DemoUsers>,
    Json(body): Json<PasswordBody>,
) -> Result<Json<User>, AuthRejection> {
    let user = check_password(&users, user.id(), body.password).await?;
    session.login(user.id(), &user).await?;
    Ok(Json(user))
}

async fn change_password(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    session: Session,
    State(users): State<DemoUsers>,
    Json(body): Json<PasswordBody>,
) -> Result<StatusCode, AuthRejection> {
    set_password(&users, &user, body.password).await?;
    // OWASP Session Management Cheat Sheet: a password change ends every other session.
    session.revoke_others().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_account(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    session: Session,
    State(users): State<DemoUsers>,
) -> Result<StatusCode, AuthRejection> {
    users.remove(user.id());
    session.revoke_all().await?;
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}
