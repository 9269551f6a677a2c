//! One router, two mechanisms, chosen per route: read-only API routes accept a bearer JWT *or*
//! the browser's session cookie, while sensitive operations accept only the session cookie (a
//! leaked API token must not change a password).
//!
//! The shape to copy:
//!
//! ```text
//! Router
//! ├── /api/*        .layer(BearerLayer)         per router: bearer tokens here only
//! ├── /settings/*   .route_layer(RequireLayer)  per route: signed in, by cookie only
//! ├── /login, /logout, /token
//! └── .layer(SessionLayer)                      the whole app: the session cookie
//! ```
//!
//! `CurrentUser<User>` comes from whichever layer found credentials; the handlers do not care.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use demo_users::{Credentials, DemoUsers, User};
use portcullis_core::{AuthRejection, CurrentUser, Identity, Mechanism, RequireLayer};
use portcullis_jwt::{
    Algorithm, BearerLayer, KeyError, SigningKey, TokenIssuer, TokenVerifier, Validation,
};
use portcullis_session::{ConfigError, MemoryStore, Session, SessionConfig, SessionLayer};
use serde::Deserialize;

/// The app's state: users and the token issuer.
#[derive(Debug, Clone)]
pub struct AppState {
    users: DemoUsers,
    issuer: TokenIssuer,
}

/// Why the app could not start.
#[derive(Debug)]
pub enum SetupError {
    /// The signing key could not be made.
    Key(KeyError),
    /// The session settings are inconsistent.
    Session(ConfigError),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Key(error) => write!(f, "signing key: {error}"),
            Self::Session(error) => write!(f, "session settings: {error}"),
        }
    }
}

impl std::error::Error for SetupError {}

/// The whole app: API tokens signed with a fresh Ed25519 key, sessions in memory.
///
/// # Errors
///
/// When the key or the session settings cannot be made.
pub fn app(users: DemoUsers) -> Result<Router, SetupError> {
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::EdDSA).map_err(SetupError::Key)?)
        .issuer("mixed-example");
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().issuer("mixed-example"));
    let store = MemoryStore::new();
    let health = demo_users::health_routes(
        portcullis_core::ReadinessChecks::new()
            .check("session store", store.clone())
            .check("keys", issuer.key_set()),
    );
    let sessions =
        SessionLayer::new(store, SessionConfig::default()).map_err(SetupError::Session)?;

    // Per router: only the API accepts bearer tokens.
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/whoami", get(whoami))
        .layer(BearerLayer::new(verifier).realm("mixed-api"));

    // Per route: sensitive operations need a signed-in user, and only the cookie can sign
    // them in because the bearer layer does not wrap these routes.
    let settings = Router::new()
        .route("/settings/password", post(change_password))
        .route_layer(RequireLayer::<User>::authenticated());

    Ok(Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/token", post(token))
        .merge(api)
        .merge(settings)
        .with_state(AppState { users, issuer })
        .layer(sessions)
        .merge(health))
}

/// Signs in inside the login guard: 429 while locked out, 503 when too many checks run.
async fn sign_in(users: &DemoUsers, credentials: Credentials) -> Result<User, AuthRejection> {
    users.login(credentials).await
}

/// `POST /login`: a session cookie for the browser.
async fn login(
    session: Session,
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Json<User>, AuthRejection> {
    let user = sign_in(&state.users, credentials).await?;
    session.login(user.id(), &user).await?;
    Ok(Json(user))
}

/// `POST /logout`: ends the browser session.
async fn logout(session: Session) -> Result<StatusCode, AuthRejection> {
    session.logout().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /token`: a bearer token for API clients.
async fn token(
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = sign_in(&state.users, credentials).await?;
    let token = state
        .issuer
        .issue(user.id(), &user)
        .map_err(|_| AuthRejection::unavailable("could not issue a token"))?;
    let mut response = Json(serde_json::json!({
        "access_token": token.token,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /api/me`: the caller, by token or by cookie.
async fn me(CurrentUser(user): CurrentUser<User>) -> Json<User> {
    Json(user)
}

/// `GET /api/whoami`: which mechanism authenticated the caller.
async fn whoami(
    CurrentUser(user): CurrentUser<User>,
    request: axum::extract::Request,
) -> Json<serde_json::Value> {
    let mechanism = match request
        .extensions()
        .get::<portcullis_core::Authentication>()
    {
        Some(authentication) => authentication
            .identity()
            .await
            .ok()
            .flatten()
            .map(Identity::mechanism),
        None => None,
    };
    let mechanism = match mechanism {
        Some(Mechanism::Bearer) => "bearer",
        Some(Mechanism::Session) => "session",
        _ => "other",
    };
    Json(serde_json::json!({ "user": user.user, "mechanism": mechanism }))
}

/// The body of `POST /settings/password`.
#[derive(Debug, Deserialize)]
struct NewPassword {
    password: String,
}

/// `POST /settings/password`: cookie sessions only; ends the user's other sessions.
async fn change_password(
    CurrentUser(user): CurrentUser<User>,
    session: Session,
    State(state): State<AppState>,
    Json(body): Json<NewPassword>,
) -> Result<StatusCode, AuthRejection> {
    if body.password.len() < 8 {
        return Err(AuthRejection::invalid_request(
            "a password has at least 8 bytes",
        ));
    }
    let users = state.users.clone();
    let id = user.id().to_owned();
    tokio::task::spawn_blocking(move || users.set_password(&id, &body.password))
        .await
        .map_err(|_| AuthRejection::unavailable("the password change failed; retry"))?;
    session.revoke_others().await?;
    Ok(StatusCode::NO_CONTENT)
}
