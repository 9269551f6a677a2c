//! A hybrid app to copy: a short-lived access JWT checked at the edge without a store read, and
//! a rotating refresh token that is one revocable session. Sessions and revocations live in
//! memory here; for several nodes use `portcullis::redis::{RedisRefreshStore,
//! RedisRevocationFeed}` (feature `redis`).

mod users;

use axum::{
    Json, Router,
    extract::{FromRef, State},
    response::Response,
    routing::{get, post},
};
use portcullis::hybrid::{
    CookieTransport, HybridEndpoints, HybridLayer, HybridLogin, HybridSessions, InProcessFeed,
    MemoryRefreshStore,
};
use portcullis::jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
use portcullis::{AuthRejection, Authorized, ClientAddress, CurrentUser};

pub use users::{Credentials, IsAdmin, User, Users};

const ISSUER: &str = "https://template.example";

#[derive(Clone)]
struct AppState {
    users: Users,
    endpoints: HybridEndpoints,
}

impl FromRef<AppState> for HybridEndpoints {
    fn from_ref(state: &AppState) -> Self {
        state.endpoints.clone()
    }
}

/// The app: `POST /login` (cookies), `POST /token` (bearer), `GET /me`, `GET /admin`, and the
/// library's `POST /refresh`, `/logout`, `/logout-all`, `GET /sessions`.
pub async fn app() -> Result<Router, Box<dyn std::error::Error>> {
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::ES256)?).issuer(ISSUER);
    let sessions = HybridSessions::builder(issuer, Validation::new().issuer(ISSUER))
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new())
        .build()
        .await?;
    // __Host-access cookie, and __Secure-refresh sent to /refresh only.
    let layer = HybridLayer::new(&sessions).cookies(CookieTransport::new())?;
    let endpoints = layer.endpoints();
    Ok(Router::new()
        .route("/login", post(login))
        .route("/token", post(token))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .merge(endpoints.router())
        .with_state(AppState {
            users: Users::default(),
            endpoints,
        })
        .layer(layer))
}

/// Cookie transport; 401 for wrong credentials, 403 when posted from another site.
async fn login(
    login: HybridLogin,
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(credentials): Json<Credentials>,
) -> Result<Response, AuthRejection> {
    let user = state.users.login(client, credentials).await?;
    login.cookies(&user.user, &user).await
}

/// Bearer transport: `{"access_token", "refresh_token", "token_type", "expires_in"}`.
async fn token(
    login: HybridLogin,
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Json(credentials): Json<Credentials>,
) -> Result<Response, AuthRejection> {
    let user = state.users.login(client, credentials).await?;
    login.bearer(&user.user, &user).await
}

/// 401 without a valid access token.
async fn me(CurrentUser(user): CurrentUser<User>) -> Json<User> {
    Json(user)
}

/// 403 for non-admins.
async fn admin(admin: Authorized<User, IsAdmin>) -> Json<User> {
    Json(admin.into_inner())
}
