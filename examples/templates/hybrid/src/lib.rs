//! A hybrid app to copy: a short-lived access JWT checked at the edge without a store read, and
//! a rotating refresh token that is one revocable session. Sessions and revocations live in
//! memory here; for several nodes use `portcullis::redis::{RedisRefreshStore,
//! RedisRevocationFeed}` (feature `redis`).

mod users;

use axum::{
    Extension, Json, Router,
    response::Response,
    routing::{get, post},
};
use portcullis::hybrid::{
    CookieTransport, HybridLayer, HybridLogin, HybridSessions, InProcessFeed, MemoryRefreshStore,
};
use portcullis::jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
use portcullis::{AuthRejection, Authorized, Credentials, CurrentUser, PasswordCheck};

pub use users::{IsAdmin, User};

const ISSUER: &str = "https://template.example";

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
        .with_state(endpoints) // what `HybridLogin` and the ready-made routes need
        .layer(Extension(PasswordCheck::default()))
        .layer(layer))
}

/// Cookie transport; 401 for wrong credentials, 403 when posted from another site.
async fn login(
    login: HybridLogin,
    Extension(passwords): Extension<PasswordCheck>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = users::login(&passwords, credentials).await?;
    login.cookies(&user.user, &user).await
}

/// Bearer transport: `{"access_token", "refresh_token", "token_type", "expires_in"}`.
async fn token(
    login: HybridLogin,
    Extension(passwords): Extension<PasswordCheck>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = users::login(&passwords, credentials).await?;
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
