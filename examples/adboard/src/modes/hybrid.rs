//! Hybrid mode: `POST /login` sets an access cookie checked at the edge and a refresh cookie
//! that the layer uses transparently when the access token expires; logout and password changes
//! revoke sessions in the refresh store and on the revocation feed.

use axum::{
    Json, Router,
    extract::{FromRef, Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use portcullis_core::{AuthRejection, Authorized, Credentials, CurrentUser, RecentlyAuthenticated};
use portcullis_hybrid::{
    AccessSession, CookieTransport, HybridEndpoints, HybridLayer, HybridLogin, HybridSessions,
};

use crate::{
    AppState, IsAdmin, PasswordBody, REAUTH_MAX_AGE_SECS, SetupError, User, ads, check_password,
    me,
    roles::{self, RoleError, RoleInput},
    set_password,
};

#[derive(Clone)]
struct HybridState {
    app: AppState,
    sessions: HybridSessions,
    endpoints: HybridEndpoints,
    cookies: CookieTransport,
}

impl FromRef<HybridState> for crate::AdBoard {
    fn from_ref(state: &HybridState) -> Self {
        state.app.board.clone()
    }
}

impl FromRef<HybridState> for HybridEndpoints {
    fn from_ref(state: &HybridState) -> Self {
        state.endpoints.clone()
    }
}

/// The hybrid-mode router: keys and lifetimes from the same variables as hybrid-app
/// (`JWT_*`, `ACCESS_TTL_SECS`, `REFRESH_TTL_SECS`, `REFRESH_GRACE_SECS`, `REDIS_URL`),
/// transparent refresh. `POST /logout` (and `/refresh`, `/logout-all`, `/sessions`) are the
/// library's own endpoints.
///
/// # Errors
///
/// When the settings are invalid.
pub async fn router(
    state: AppState,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Router, SetupError> {
    let (builder, issuer, checks) = crate::settings::hybrid_mode(lookup)?;
    let health = crate::ops::health_routes(checks.check("keys", issuer.key_set()));
    let sessions = builder.build().await?;
    let cookies = CookieTransport::transparent();
    let layer = HybridLayer::new(&sessions)
        .realm("adboard")
        .cookies(cookies.clone())?;
    let endpoints = layer.endpoints();
    let state = HybridState {
        app: state,
        sessions,
        endpoints: endpoints.clone(),
        cookies,
    };
    Ok(Router::new()
        .route("/login", post(login))
        .route("/me", get(me))
        .route("/reauth", post(reauth))
        .route("/password", post(change_password))
        .route("/account", delete(delete_account))
        .route("/users/{name}/role", put(change_role))
        .merge(ads::routes())
        .merge(endpoints.router())
        .with_state(state)
        .layer(layer)
        .merge(health))
}

/// `POST /login`: `HybridLogin` refuses a cross-site request (login CSRF), then the library
/// sets the cookies.
async fn login(
    login: HybridLogin,
    State(state): State<HybridState>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = state.app.users.sign_in(credentials).await?;
    login.cookies(user.id(), &user).await
}

/// `PUT /users/{name}/role`: the new role goes into every session of the user, and every
/// node refuses their older access tokens, so their next request is refreshed (transparently)
/// into a token carrying the new role.
async fn change_role(
    _: Authorized<User, IsAdmin>,
    State(state): State<HybridState>,
    Path(name): Path<String>,
    input: Result<Json<RoleInput>, JsonRejection>,
) -> Result<Json<User>, RoleError> {
    let user = roles::set_role(&state.app.users, &name, input).await?;
    state
        .sessions
        .update_user(user.id(), &user)
        .await
        .map_err(AuthRejection::from)?;
    Ok(Json(user))
}

/// Confirms the password: a new session with a fresh `auth_time` replaces the current one
/// (the login helper ends the session the request came with).
async fn reauth(
    login: HybridLogin,
    _session: AccessSession,
    CurrentUser(user): CurrentUser<User>,
    State(state): State<HybridState>,
    Json(body): Json<PasswordBody>,
) -> Result<Response, AuthRejection> {
    let user = check_password(&state.app.users, user.id(), body.password).await?;
    login.cookies(user.id(), &user).await
}

async fn change_password(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    session: AccessSession,
    State(state): State<HybridState>,
    Json(body): Json<PasswordBody>,
) -> Result<StatusCode, AuthRejection> {
    set_password(&state.app.users, &user, body.password).await?;
    for other in state.sessions.list(user.id()).await? {
        if other.session_id != session.session_id() {
            state.sessions.revoke(&other.session_id).await?;
        }
    }
    // Announced like a role change: older access tokens refresh on their next request.
    state.sessions.user_changed(user.id()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_account(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    State(state): State<HybridState>,
) -> Result<Response, AuthRejection> {
    state.app.users.delete(user.id()).await?;
    state.sessions.revoke_all(user.id()).await?;
    state.sessions.user_changed(user.id()).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    state.cookies.clear_cookies(response.headers_mut());
    Ok(response)
}
