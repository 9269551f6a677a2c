//! The bearer-token example: `POST /token` trades a username and password for a short-lived
//! signed JWT; `GET /me` and `GET /admin` accept it in `Authorization: Bearer`; the public keys
//! are served at `GET /.well-known/jwks.json`. No server-side state: any instance given the same
//! key accepts the tokens of the others. Routes and environment variables: see README.md.

use std::{env, fmt, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use demo_users::{
    Credentials, DemoUsers, IsAdmin, JwtKeySettings, JwtSettingsError, LoginGuardSettings,
    LoginGuardSettingsError, User,
};
use portcullis_core::{AuthRejection, Authorized, CurrentUser};
use portcullis_jwt::{
    BearerLayer, JwksOptions, KeyError, KeySet, SigningKey, TokenIssuer, TokenVerifier,
};
use portcullis_redis::{ConfigError, RedisConfig};

/// The issuer written into tokens unless `JWT_ISSUER` says otherwise.
pub const DEFAULT_ISSUER: &str = "portcullis-jwt-api";
/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "jwt-api";

/// Everything the app reads from its environment.
#[derive(Clone)]
pub struct Settings {
    /// Where to listen (`--addr`, `PORTCULLIS_ADDR`; default `127.0.0.1:3000`).
    pub addr: SocketAddr,
    /// The `JWT_*` key, issuer, audience and leeway settings (`JWT_ISSUER` defaults to
    /// `portcullis-jwt-api`).
    pub keys: JwtKeySettings,
    /// `JWT_JWKS_URL`: also accept tokens signed by the keys published there.
    pub jwks_url: Option<String>,
    /// `JWT_TTL_SECS` (or `ACCESS_TTL_SECS`): lifetime of issued tokens (default 900).
    pub ttl: Duration,
    /// The `LOGIN_*` settings of the login guard.
    pub login_guard: LoginGuardSettings,
    /// `REDIS_URL`: count failed logins in Redis, shared by every instance.
    pub redis: Option<RedisConfig>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("addr", &self.addr)
            .field("keys", &self.keys)
            .field("jwks_url", &self.jwks_url)
            .field("ttl", &self.ttl)
            .field("login_guard", &self.login_guard)
            .field("redis", &self.redis)
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
    /// The `JWT_*` key settings could not be used.
    #[error(transparent)]
    Jwt(#[from] JwtSettingsError),
    /// The JWKS URL could not be used.
    #[error("unusable JWT_JWKS_URL")]
    Key(#[from] KeyError),
    /// A `LOGIN_*` variable could not be used.
    #[error(transparent)]
    LoginGuard(#[from] LoginGuardSettingsError),
    /// `REDIS_URL` or `REDIS_KEY_PREFIX` could not be used.
    #[error("unusable REDIS_URL or REDIS_KEY_PREFIX")]
    Redis(#[from] ConfigError),
}

fn setting(name: &'static str, reason: impl Into<String>) -> SetupError {
    SetupError::Setting {
        name,
        reason: reason.into(),
    }
}

impl Settings {
    /// Reads the process environment and the command line (`--addr HOST:PORT`).
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the variable or flag that does not parse.
    pub fn from_env() -> Result<Self, SetupError> {
        let mut settings = Self::from_lookup(|name| env::var(name).ok())?;
        let mut args = env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = match arg.strip_prefix("--addr=") {
                Some(value) => value.to_owned(),
                None if arg == "--addr" => args
                    .next()
                    .ok_or_else(|| setting("--addr", "expects an address"))?,
                None => return Err(setting("arguments", format!("unknown argument {arg:?}"))),
            };
            settings.addr = value
                .parse()
                .map_err(|_| setting("--addr", format!("{value:?} is not HOST:PORT")))?;
        }
        Ok(settings)
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the variable that does not parse.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SetupError> {
        let lookup = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let secs =
            |name: &'static str| -> Result<Option<Duration>, SetupError> {
                lookup(name)
                    .map(|value| {
                        value.trim().parse().map(Duration::from_secs).map_err(|_| {
                            setting(name, format!("{value:?} is not a number of seconds"))
                        })
                    })
                    .transpose()
            };
        let addr = match lookup("PORTCULLIS_ADDR") {
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| setting("PORTCULLIS_ADDR", format!("{value:?} is not HOST:PORT")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let keys = JwtKeySettings::from_lookup(lookup, DEFAULT_ISSUER)?;
        let ttl = match secs("JWT_TTL_SECS")? {
            Some(ttl) => ttl,
            None => secs("ACCESS_TTL_SECS")?.unwrap_or(portcullis_jwt::DEFAULT_TTL),
        };
        if ttl.is_zero() {
            return Err(setting("JWT_TTL_SECS", "must be at least 1"));
        }
        Ok(Self {
            addr,
            keys,
            jwks_url: lookup("JWT_JWKS_URL"),
            ttl,
            login_guard: LoginGuardSettings::from_lookup(lookup)?,
            redis: RedisConfig::from_lookup(lookup),
        })
    }

    /// The signing key (see [`JwtKeySettings::signing_key`]).
    ///
    /// # Errors
    ///
    /// An unreadable key file, a key that does not fit `JWT_ALG`.
    pub fn signing_key(&self) -> Result<SigningKey, SetupError> {
        Ok(self.keys.signing_key()?)
    }
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    issuer: TokenIssuer,
    verifier: TokenVerifier,
    users: DemoUsers,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("issuer", &self.issuer)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State from its parts (tests use a manual clock).
    pub fn new(issuer: TokenIssuer, verifier: TokenVerifier, users: DemoUsers) -> Self {
        Self {
            issuer,
            verifier,
            users,
        }
    }

    /// Builds everything from `settings`: the demo users (argon2-hashed now), the signing key,
    /// and the verifier trusting it plus `JWT_JWKS_URL`'s keys. Must run inside Tokio.
    ///
    /// # Errors
    ///
    /// Any [`SetupError`].
    pub async fn from_settings(settings: &Settings) -> Result<Self, SetupError> {
        let issuer = settings
            .keys
            .token_issuer(settings.signing_key()?)
            .ttl(settings.ttl);
        let validation = settings.keys.validation();
        let mut keys = issuer.key_set();
        if let Some(url) = &settings.jwks_url {
            // The outside issuer's tokens are held to the same iss/aud (DESIGN: jwt-api).
            keys = keys.merge(KeySet::from_jwks_url(url, JwksOptions::new())?);
            if settings.keys.audience.is_none() {
                // Identity providers put `aud` in their access tokens; RFC 7519 §4.1.3 makes
                // us refuse those when we cannot name our own audience. Say so at start-up.
                tracing::warn!(
                    "JWT_JWKS_URL is set without JWT_AUDIENCE: the outside issuer's tokens that \
                     carry an `aud` claim will be refused; set JWT_AUDIENCE to this API's \
                     identifier at the issuer"
                );
            }
        }
        let verifier = TokenVerifier::new(keys, validation);
        let redis = settings
            .redis
            .as_ref()
            .map(RedisConfig::build)
            .transpose()?;
        let users = tokio::task::spawn_blocking(DemoUsers::new)
            .await
            .unwrap_or_else(|_| DemoUsers::new())
            .with_login_guard(settings.login_guard.guard(redis));
        Ok(Self::new(issuer, verifier, users))
    }

    /// The token issuer.
    pub fn issuer(&self) -> &TokenIssuer {
        &self.issuer
    }
}

/// The router: `POST /token`, `GET /me`, `GET /admin`, `GET /.well-known/jwks.json`.
pub fn app(state: AppState) -> Router {
    let bearer = BearerLayer::new(state.verifier.clone()).realm(REALM);
    // Ready once every key source has keys (a JWKS URL: after its first fetch).
    let checks =
        portcullis_core::ReadinessChecks::new().check("keys", state.verifier.key_set().clone());
    Router::new()
        .route("/token", post(token))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/.well-known/jwks.json", get(jwks))
        .layer(bearer)
        .with_state(state)
        .merge(demo_users::health_routes(checks))
}

/// Responses that carry credentials or user data are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /token`: JSON (or form) credentials → `{"access_token", "token_type", "expires_in"}`.
async fn token(
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    // Inside the login guard: 429 while locked out, 503 when too many checks run (issue 18).
    let user = state.users.login(credentials).await?;
    let issued = state.issuer.issue(&user.user, &user).map_err(|error| {
        tracing::error!(%error, "cannot issue a token");
        AuthRejection::misconfigured("cannot issue a token")
    })?;
    tracing::info!(user = %user.user, jti = %issued.jti, "token issued");
    Ok(no_store(
        Json(serde_json::json!({
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
        }))
        .into_response(),
    ))
}

/// `GET /me`: the caller.
async fn me(CurrentUser(user): CurrentUser<User>) -> Response {
    no_store(Json(user).into_response())
}

/// `GET /admin`: admins only (403 `insufficient_scope` for others).
async fn admin(admin: Authorized<User, IsAdmin>) -> Response {
    no_store(Json(admin.into_inner()).into_response())
}

/// `GET /.well-known/jwks.json`: the public keys (none for HMAC), current and recently retired.
async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.issuer.jwks()).into_response();
    // Short enough that verifiers see a rotation well before the retired key is dropped.
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use portcullis_jwt::Algorithm;
    use tower::ServiceExt;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SetupError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn settings_parse_and_refuse_bad_values() {
        let defaults = settings(&[]).unwrap();
        assert_eq!(defaults.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(defaults.keys.leeway, Duration::from_secs(30));
        assert_eq!(defaults.ttl, Duration::from_secs(900));
        assert_eq!(defaults.keys.issuer, DEFAULT_ISSUER);
        assert_eq!(
            defaults.signing_key().unwrap().algorithm(),
            Algorithm::ES256
        );
        let custom = settings(&[
            ("JWT_TTL_SECS", "2"),
            ("JWT_LEEWAY_SECS", "0"),
            ("JWT_ALG", "EdDSA"),
        ])
        .unwrap();
        assert_eq!(
            (custom.ttl, custom.keys.leeway),
            (Duration::from_secs(2), Duration::ZERO)
        );
        assert_eq!(custom.signing_key().unwrap().algorithm(), Algorithm::EdDSA);
        let hs = settings(&[("JWT_HS256_SECRET", "short")]).unwrap();
        assert!(hs.signing_key().is_err(), "a short HS256 secret is refused");
        for bad in [
            ("JWT_ALG", "none"),
            ("JWT_LEEWAY_SECS", "3600"),
            ("JWT_TTL_SECS", "-1"),
            ("JWT_TTL_SECS", "0"),
            ("PORTCULLIS_ADDR", "nowhere"),
        ] {
            assert!(settings(&[bad]).is_err(), "{bad:?}");
        }
        assert!(!format!("{hs:?}").contains("short"));
    }

    #[tokio::test]
    async fn token_me_admin_round_trip() {
        let state = AppState::from_settings(&settings(&[("JWT_AUDIENCE", "ads")]).unwrap())
            .await
            .unwrap();
        let app = app(state);
        let login = Request::post("/token")
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"username":"alice","password":"alice-password-1"}"#,
            ))
            .unwrap();
        let response = app.clone().oneshot(login).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 900);
        let token = body["access_token"].as_str().unwrap();
        let me = Request::get("/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(me).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"user":"alice","role":"advertiser"}"#);
        let admin = Request::get("/admin")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.oneshot(admin).await.unwrap().status(), 403);
    }
}
