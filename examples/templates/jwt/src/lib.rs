//! A bearer-JWT API to copy: `POST /token` mints a short-lived ES256 token, `GET /me` and
//! `GET /admin` check it without a store. To accept an identity provider's tokens instead, build
//! the key set with `KeySet::from_jwks_url` (see the portcullis README).

mod users;

use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use portcullis::jwt::{
    Algorithm, BearerLayer, KeyError, SigningKey, TokenIssuer, TokenVerifier, Validation,
};
use portcullis::{AuthRejection, Authorized, Credentials, CurrentUser, PasswordCheck};
use serde_json::{Value, json};

pub use users::{IsAdmin, User};

const ISSUER: &str = "https://template.example";

#[derive(Clone)]
struct AppState {
    passwords: PasswordCheck,
    issuer: TokenIssuer,
}

/// The app: `POST /token`, `GET /me`, `GET /admin`, `GET /.well-known/jwks.json`.
pub fn app() -> Result<Router, KeyError> {
    // A fresh key per start; load a PEM (`SigningKey::from_pem`) to keep tokens across restarts.
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::ES256)?).issuer(ISSUER);
    // Pinned algorithm, `exp` required, `iss` checked (RFC 8725).
    let verifier = TokenVerifier::new(issuer.key_set(), Validation::new().issuer(ISSUER));
    Ok(Router::new()
        .route("/token", post(token))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(AppState {
            passwords: PasswordCheck::default(),
            issuer,
        })
        // RFC 6750 answers: 401 `invalid_token`, 403 `insufficient_scope`.
        .layer(BearerLayer::new(verifier)))
}

/// `{"access_token", "token_type": "Bearer", "expires_in"}`; 401 for wrong credentials.
async fn token(
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Json<Value>, AuthRejection> {
    let user = users::login(&state.passwords, credentials).await?;
    let issued = state
        .issuer
        .issue(&user.user, &user)
        .map_err(|_| AuthRejection::misconfigured("cannot issue a token"))?;
    Ok(Json(json!({
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    })))
}

async fn jwks(State(state): State<AppState>) -> Json<Value> {
    Json(state.issuer.jwks())
}

/// 401 without a valid token.
async fn me(CurrentUser(user): CurrentUser<User>) -> Json<User> {
    Json(user)
}

/// 403 for non-admins.
async fn admin(admin: Authorized<User, IsAdmin>) -> Json<User> {
    Json(admin.into_inner())
}
