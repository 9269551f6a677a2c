//! adboard: advertisers manage their own ads, admins see and moderate all, and the same handler
//! functions serve under session cookies, bearer JWTs or the hybrid edge check. Only the
//! router's layers and the sign-in routes differ between modes (see [`modes`]).
//!
//! Routes in every mode: `POST /login`, `POST /logout`, `GET /me`, `GET /ads`, `POST /ads`,
//! `GET|PUT|DELETE /ads/{id}`, `PUT /users/{name}/role` (admins), and the re-authentication flow: `POST /reauth` (confirm the
//! password), then within five minutes `POST /password` (revokes every other session) or
//! `DELETE /account`.

pub mod ads;
mod jwt_keys;
mod login;
pub mod modes;
mod ops;
pub mod roles;
mod settings;
pub mod users;

use std::{fmt, net::SocketAddr, str::FromStr};

use axum::{Json, Router, extract::FromRef};
use portcullis_core::{AuthRejection, Credentials, CurrentUser};
use serde::Deserialize;

pub use ads::{Ad, AdBoard, CanEdit};
pub use jwt_keys::JwtSettingsError;
pub use login::LoginSettingsError;
pub use ops::shutdown_signal;
pub use users::{IsAdmin, Role, User, Users};

/// How long a password confirmation admits sensitive actions (OWASP Authentication Cheat
/// Sheet, "Require re-authentication for sensitive features").
pub const REAUTH_MAX_AGE_SECS: u64 = 300;

/// Which mechanism authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Session cookie, in-memory store.
    Session,
    /// Bearer JWT from `POST /login`.
    Jwt,
    /// Access and refresh cookies, refreshed transparently.
    Hybrid,
}

impl FromStr for Mode {
    type Err = SetupError;

    fn from_str(value: &str) -> Result<Self, SetupError> {
        match value {
            "session" => Ok(Self::Session),
            "jwt" => Ok(Self::Jwt),
            "hybrid" => Ok(Self::Hybrid),
            other => Err(SetupError::Setting(format!(
                "--mode must be session, jwt or hybrid, not {other:?}"
            ))),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Session => "session",
            Self::Jwt => "jwt",
            Self::Hybrid => "hybrid",
        })
    }
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A flag or environment variable is wrong.
    #[error("{0}")]
    Setting(String),
    /// The JWT settings are wrong.
    #[error(transparent)]
    Jwt(#[from] JwtSettingsError),
    /// The hybrid settings are wrong.
    #[error(transparent)]
    Hybrid(#[from] portcullis_hybrid::ConfigError),
    /// The session settings are wrong.
    #[error(transparent)]
    Session(#[from] portcullis_session::ConfigError),
    /// `REDIS_URL` is wrong.
    #[error("REDIS_URL: {0}")]
    Redis(#[from] portcullis_redis::ConfigError),
    /// A `LOGIN_*` variable could not be used.
    #[error(transparent)]
    LoginGuard(#[from] LoginSettingsError),
}

/// The state every mode shares: the ads and the users.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The ads.
    pub board: AdBoard,
    /// The users and their passwords.
    pub users: Users,
}

impl FromRef<AppState> for AdBoard {
    fn from_ref(state: &AppState) -> Self {
        state.board.clone()
    }
}

impl FromRef<AppState> for Users {
    fn from_ref(state: &AppState) -> Self {
        state.users.clone()
    }
}

/// The whole app in `mode`, configured from `lookup` (environment variables; see README.md).
///
/// # Errors
///
/// When a setting is invalid.
pub async fn app(
    mode: Mode,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Router, SetupError> {
    // Failed logins are counted in Redis when `REDIS_URL` is set, in every mode (issue 18).
    let redis = portcullis_redis::RedisConfig::from_lookup(&lookup)
        .map(|config| config.build())
        .transpose()?;
    let guard = login::login_guard(&lookup, redis.clone())?;
    // Role changes and deleted accounts are shared through Redis too, so every instance's
    // user loader reads the same table (a real application has one user database).
    let users = tokio::task::spawn_blocking(move || Users::new(guard, redis))
        .await
        .map_err(|_| SetupError::Setting("hashing the demo passwords failed".into()))?;
    let state = AppState {
        board: AdBoard::default(),
        users,
    };
    match mode {
        Mode::Session => modes::session::router(state, lookup).await,
        Mode::Jwt => modes::jwt::router(state, lookup).await,
        Mode::Hybrid => modes::hybrid::router(state, lookup).await,
    }
}

/// The mode and address from `--mode`, `--addr`, `ADBOARD_MODE` and `PORTCULLIS_ADDR`.
///
/// # Errors
///
/// On an unknown flag or an invalid value.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(Mode, SocketAddr), SetupError> {
    let mut mode = lookup("ADBOARD_MODE").unwrap_or_else(|| "session".to_owned());
    let mut addr = lookup("PORTCULLIS_ADDR").unwrap_or_else(|| "127.0.0.1:3000".to_owned());
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        let slot = match name.as_str() {
            "--mode" => &mut mode,
            "--addr" => &mut addr,
            other => return Err(SetupError::Setting(format!("unknown argument {other:?}"))),
        };
        *slot = inline
            .or_else(|| args.next())
            .ok_or_else(|| SetupError::Setting(format!("{name} expects a value")))?;
    }
    let addr = addr
        .parse()
        .map_err(|_| SetupError::Setting(format!("{addr:?} is not HOST:PORT")))?;
    Ok((mode.parse()?, addr))
}

/// `GET /me`: the caller, whatever the mode.
pub async fn me(CurrentUser(user): CurrentUser<User>) -> Json<User> {
    Json(user)
}

/// The body of `POST /reauth` and `POST /password`.
#[derive(Debug, Deserialize)]
pub struct PasswordBody {
    /// The current password (`/reauth`) or the new one (`/password`).
    pub password: String,
}

/// Confirms a signed-in user's password inside the login guard, so guesses here are limited
/// like those at the login route.
pub(crate) async fn check_password(
    users: &Users,
    username: &str,
    password: String,
) -> Result<User, AuthRejection> {
    users.sign_in(Credentials::new(username, password)).await
}

/// Sets a new password off the async runtime, refusing empty or oversized ones.
pub(crate) async fn set_password(
    users: &Users,
    user: &User,
    password: String,
) -> Result<(), AuthRejection> {
    if password.len() < 8 || password.len() > 256 {
        return Err(AuthRejection::invalid_request(
            "a password has 8 to 256 bytes",
        ));
    }
    let users = users.clone();
    let id = user.id().to_owned();
    let changed = tokio::task::spawn_blocking(move || users.set_password(&id, &password))
        .await
        .map_err(|_| AuthRejection::unavailable("the password change failed; retry"))?;
    if changed {
        Ok(())
    } else {
        Err(AuthRejection::invalid_credentials(
            "this account no longer exists",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_and_env() {
        let none = |_: &str| None;
        let (mode, addr) = parse_args(["--mode".into(), "jwt".into()], none).unwrap();
        assert_eq!((mode, addr.port()), (Mode::Jwt, 3000));
        let (mode, addr) = parse_args(["--addr=127.0.0.1:9".into()], |n: &str| {
            (n == "ADBOARD_MODE").then(|| "hybrid".to_owned())
        })
        .unwrap();
        assert_eq!((mode, addr.port()), (Mode::Hybrid, 9));
        assert!(parse_args(["--mode".into(), "cookies".into()], none).is_err());
        assert!(parse_args(["--mode".into()], none).is_err());
        assert!(parse_args(["--verbose".into()], none).is_err());
    }
}
