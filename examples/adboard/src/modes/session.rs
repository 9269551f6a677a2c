//! Session mode: `POST /login` sets a session cookie; logout, re-authentication and revocation
//! go through the [`Session`] handle. The signed-in user is read through a [`UserLoader`] from
//! the user table (cached per instance); a role change, password change or deleted account is
//! announced on the revocation feed (Redis pub/sub with `REDIS_URL`), so every instance serves
//! the user's very next request as the table has them now.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, State, rejection::JsonRejection},
    http::StatusCode,
    routing::{delete, get, post, put},
};
use portcullis_core::{
    AuthRejection, Authorized, Credentials, CurrentUser, Readiness, ReadinessChecks,
    RecentlyAuthenticated,
};
use portcullis_redis::{RedisConfig, RedisRevocationFeed, RedisSessionStore};
use portcullis_session::{
    MemoryStore, Session, SessionConfig, SessionLayer, SessionStore, UserLoader,
};

use crate::{
    AppState, IsAdmin, PasswordBody, REAUTH_MAX_AGE_SECS, SetupError, User, Users, ads,
    check_password, me,
    roles::{self, RoleError, RoleInput},
    set_password,
};

/// The session-mode router. Reads `SESSION_IDLE_SECS` and `SESSION_ABSOLUTE_SECS`; sessions
/// live in Redis when `REDIS_URL` is set, in memory otherwise.
///
/// # Errors
///
/// When a timeout is not a number of seconds or the session settings are inconsistent.
pub async fn router(
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
    let table = state.users.clone();
    let loader = UserLoader::builder(move |user_id: String| {
        let table = table.clone();
        async move { table.current(&user_id).await }
    });
    if let Some(redis) = RedisConfig::from_lookup(&lookup) {
        let redis = redis.build()?;
        let feed = RedisRevocationFeed::new(redis.clone());
        let loader = loader
            .feed(feed.clone())
            .build()
            .await
            .map_err(|error| SetupError::Setting(format!("revocation feed: {error}")))?;
        let checks = ReadinessChecks::new().check("revocation feed", feed);
        return with_layer(state, RedisSessionStore::new(redis), config, loader, checks);
    }
    let store = MemoryStore::new();
    // Frees expired sessions until the store (owned by the router) is dropped.
    store.spawn_sweeper(Duration::from_secs(30));
    let checks = ReadinessChecks::new();
    with_layer(state, store, config, loader.build_local(), checks)
}

fn with_layer<S: SessionStore + Readiness + Clone>(
    state: AppState,
    store: S,
    config: SessionConfig,
    loader: UserLoader,
    checks: ReadinessChecks,
) -> Result<Router, SetupError> {
    let health = crate::ops::health_routes(checks.check("session store", store.clone()));
    let layer = SessionLayer::new(store, config)?.user_loader(loader);
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
    State(users): State<Users>,
    credentials: Credentials,
) -> Result<Json<User>, AuthRejection> {
    let user = users.sign_in(credentials).await?;
    session.login(user.id(), &user).await?;
    Ok(Json(user))
}

/// `PUT /users/{name}/role`: the table changes, and the change is announced so every
/// instance drops its cached copy of the user: their next request anywhere has the new role.
async fn change_role(
    _: Authorized<User, IsAdmin>,
    session: Session,
    State(users): State<Users>,
    Path(name): Path<String>,
    input: Result<Json<RoleInput>, JsonRejection>,
) -> Result<Json<User>, RoleError> {
    let user = roles::set_role(&users, &name, input).await?;
    session
        .user_changed(user.id())
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
    State(users): State<Users>,
    Json(body): Json<PasswordBody>,
) -> Result<Json<User>, AuthRejection> {
    let user = check_password(&users, user.id(), body.password).await?;
    session.login(user.id(), &user).await?;
    Ok(Json(user))
}

async fn change_password(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    session: Session,
    State(users): State<Users>,
    Json(body): Json<PasswordBody>,
) -> Result<StatusCode, AuthRejection> {
    set_password(&users, &user, body.password).await?;
    // OWASP Session Management Cheat Sheet: a password change ends every other session.
    session.revoke_others().await?;
    session.user_changed(user.id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_account(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    session: Session,
    State(users): State<Users>,
) -> Result<StatusCode, AuthRejection> {
    users.delete(user.id()).await?;
    session.revoke_all().await?;
    session.logout().await?;
    // Every instance forgets the user: a session it still knew of is refused (401).
    session.user_changed(user.id()).await?;
    Ok(StatusCode::NO_CONTENT)
}
