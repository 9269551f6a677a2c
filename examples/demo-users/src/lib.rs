//! The demo users every example app signs in (`alice` / `alice-password-1`, an advertiser, and
//! `admin` / `admin-password-1`, an admin), their argon2 password check, and the [`Credentials`]
//! extractor that reads a login from JSON or a form.
//!
//! Copy this into your application and replace the user table with your database.
//!
//! [`JwtKeySettings`] reads the `JWT_*` variables the token-issuing examples share;
//! [`listen_addr`], [`health_routes`] and [`shutdown_signal`] are the operations contract every
//! app honours; [`metrics_routes`] serves `GET /metrics` for Prometheus.
//!
//! [`DemoUsers::login`] runs the password check inside a [`LoginGuard`](portcullis_core::LoginGuard)
//! (see [`LoginGuardSettings`] for its `LOGIN_*` variables): the apps sign users in through it.

mod jwt_keys;
mod login_guard;
mod metrics;
mod ops;
mod shared;

pub use jwt_keys::{JwtKeySettings, JwtSettingsError};
pub use login_guard::{
    DemoAttemptCounter, DemoLoginGuard, LoginGuardSettings, LoginGuardSettingsError,
};
pub use metrics::metrics_routes;
pub use ops::{DEFAULT_ADDR, health_routes, healthz, listen_addr, shutdown_signal};

use std::{
    collections::HashMap,
    fmt,
    net::IpAddr,
    sync::{Arc, PoisonError, RwLock},
};

use argon2::{
    Argon2, PasswordHasher,
    password_hash::{SaltString, rand_core::OsRng},
};
use axum::{
    Form, Json,
    extract::{FromRequest, Request},
    http::header,
};
use portcullis_core::{Argon2Verifier, AuthRejection, ClientAddress, LoginAttempt, Policy};
use serde::{Deserialize, Serialize};

/// What a user may do: the capabilities the handlers ask about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages their own ads.
    Advertiser,
    /// Sees and moderates everything.
    Admin,
}

/// The application's user: small, cheap to clone, and the same JSON in every mechanism
/// (`{"user": "alice", "role": "advertiser"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's name, which is also their id.
    pub user: String,
    /// Their role.
    pub role: Role,
}

impl User {
    /// Whether the user moderates everything.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether the user manages ads of their own.
    pub fn is_advertiser(&self) -> bool {
        self.role == Role::Advertiser
    }

    /// The user's id, as the stores index sessions by it.
    pub fn id(&self) -> &str {
        &self.user
    }
}

/// The policy behind `GET /admin`: admins only.
#[derive(Debug, Clone, Copy, Default)]
pub struct IsAdmin;

impl Policy<User> for IsAdmin {
    fn allows(&self, user: &User) -> bool {
        user.is_admin()
    }
}

/// A username and password, as posted to a login route, and the address they came from.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    /// The claimed username.
    pub username: String,
    /// The password. Never logged.
    pub password: String,
    /// The client's address, from the connection (never from a header the client controls),
    /// for the per-client login limit. `None` when the server did not record it.
    #[serde(skip)]
    pub client: Option<IpAddr>,
}

impl Credentials {
    /// Credentials with no client address.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            client: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"REDACTED")
            .field("client", &self.client)
            .finish()
    }
}

/// Longest username or password accepted, so hashing cost stays bounded.
const MAX_FIELD_LEN: usize = 256;

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = AuthRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ClientAddress(client) = ClientAddress::from_extensions(request.extensions());
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mut credentials = if content_type.starts_with("application/x-www-form-urlencoded") {
            Form::<Credentials>::from_request(request, state)
                .await
                .map(|Form(c)| c)
                .map_err(|e| {
                    AuthRejection::invalid_request(format!("invalid login form: {}", e.body_text()))
                })?
        } else if content_type.starts_with("application/json") {
            Json::<Credentials>::from_request(request, state)
                .await
                .map(|Json(c)| c)
                .map_err(|e| {
                    AuthRejection::invalid_request(format!("invalid login JSON: {}", e.body_text()))
                })?
        } else {
            return Err(AuthRejection::invalid_request(
                "send credentials as application/json or application/x-www-form-urlencoded",
            ));
        };
        if credentials.username.len() > MAX_FIELD_LEN || credentials.password.len() > MAX_FIELD_LEN
        {
            return Err(AuthRejection::invalid_request(
                "username or password too long",
            ));
        }
        credentials.client = client;
        Ok(credentials)
    }
}

struct Account {
    user: User,
    password_hash: String,
}

/// The demo user table, with passwords hashed by argon2 at start-up, and the login guard
/// its password checks run in.
#[derive(Clone)]
pub struct DemoUsers {
    accounts: Arc<RwLock<HashMap<String, Account>>>,
    // Checked when the username is unknown, so a wrong username costs as much time as a wrong
    // password (OWASP Authentication Cheat Sheet, "Authentication Responses").
    decoy_hash: Arc<str>,
    guard: DemoLoginGuard,
    // One 19 MiB argon2 buffer per check the guard lets run at once, reused (issue 18).
    verifier: Argon2Verifier,
    // Changes shared by every instance (`REDIS_URL`), see `shared.rs`.
    shared: Option<portcullis_redis::RedisConnection>,
}

impl fmt::Debug for DemoUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoUsers")
            .field("users", &self.accounts.read().map(|a| a.len()).unwrap_or(0))
            .finish()
    }
}

fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .unwrap_or_default()
}

impl DemoUsers {
    /// `alice` (advertiser) and `admin` (admin), hashed now, behind a login guard with the
    /// default settings counting in memory.
    pub fn new() -> Self {
        let accounts = [
            ("alice", "alice-password-1", Role::Advertiser),
            ("admin", "admin-password-1", Role::Admin),
        ]
        .into_iter()
        .map(|(name, password, role)| {
            let user = User {
                user: name.to_owned(),
                role,
            };
            (
                name.to_owned(),
                Account {
                    user,
                    password_hash: hash(password),
                },
            )
        })
        .collect();
        let guard = LoginGuardSettings::default().guard(None);
        Self {
            accounts: Arc::new(RwLock::new(accounts)),
            decoy_hash: hash("decoy password that matches nothing").into(),
            verifier: Argon2Verifier::new(guard.concurrency_limit()),
            guard,
            shared: None,
        }
    }

    /// Checks passwords inside `guard` instead (one built from [`LoginGuardSettings`]).
    #[must_use]
    pub fn with_login_guard(mut self, guard: DemoLoginGuard) -> Self {
        self.verifier = Argon2Verifier::new(guard.concurrency_limit());
        self.guard = guard;
        self
    }

    /// The login guard.
    pub fn login_guard(&self) -> &DemoLoginGuard {
        &self.guard
    }

    /// Signs in: [`DemoUsers::authenticate`] on a blocking thread, inside the login guard.
    ///
    /// # Errors
    ///
    /// 401 for wrong credentials; 429 with `Retry-After` while the account or the client
    /// address is locked out (even for the right password); 503 with `Retry-After` when too
    /// many checks are running or the attempt counter is unreachable.
    pub async fn login(&self, credentials: Credentials) -> Result<User, AuthRejection> {
        let users = self.clone();
        let account = credentials.username.clone();
        let attempt = LoginAttempt::new(&account).with_client(credentials.client);
        self.guard
            .verify(attempt, move || users.authenticate(&credentials))
            .await
    }

    /// The user these credentials prove, or 401. Slow (argon2) and unguarded: handlers call
    /// [`DemoUsers::login`].
    ///
    /// # Errors
    ///
    /// 401 `invalid_credentials` for an unknown user or a wrong password (the same answer for
    /// both, so the response does not reveal which usernames exist).
    pub fn authenticate(&self, credentials: &Credentials) -> Result<User, AuthRejection> {
        // Copy the hash out: argon2 is slow and must not run under the lock.
        let account = self
            .accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&credentials.username)
            .map(|a| (a.user.clone(), a.password_hash.clone()));
        let hash = account
            .as_ref()
            .map_or(&*self.decoy_hash, |(_, hash)| hash.as_str());
        let verified = self.verifier.verify(credentials.password.as_bytes(), hash);
        match account {
            Some((user, _)) if verified => Ok(user),
            _ => Err(AuthRejection::invalid_credentials(
                "wrong username or password",
            )),
        }
    }

    /// The current record of a user, for re-reading a user at refresh.
    pub fn find(&self, user_id: &str) -> Option<User> {
        self.accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user_id)
            .map(|a| a.user.clone())
    }

    /// Sets a new password; `false` when the user does not exist.
    pub fn set_password(&self, user_id: &str, password: &str) -> bool {
        let password_hash = hash(password);
        match self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(user_id)
        {
            Some(account) => {
                account.password_hash = password_hash;
                true
            }
            None => false,
        }
    }

    /// Gives a user a new role; the updated user, or `None` when the user does not exist.
    pub fn set_role(&self, user_id: &str, role: Role) -> Option<User> {
        let mut accounts = self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let account = accounts.get_mut(user_id)?;
        account.user.role = role;
        Some(account.user.clone())
    }

    /// Deletes a user; `false` when there was none.
    pub fn remove(&self, user_id: &str) -> bool {
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(user_id)
            .is_some()
    }
}

impl Default for DemoUsers {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    fn credentials(username: &str, password: &str) -> Credentials {
        Credentials::new(username, password)
    }

    #[test]
    fn authenticates_the_demo_users_only() {
        let users = DemoUsers::new();
        assert_eq!(
            users
                .authenticate(&credentials("alice", "alice-password-1"))
                .unwrap()
                .role,
            Role::Advertiser
        );
        assert!(
            users
                .authenticate(&credentials("admin", "admin-password-1"))
                .unwrap()
                .is_admin()
        );
        for (name, password) in [
            ("alice", "admin-password-1"),
            ("bob", "alice-password-1"),
            ("", ""),
            ("alice", ""),
        ] {
            let error = users
                .authenticate(&credentials(name, password))
                .unwrap_err();
            assert_eq!(error.status(), 401, "{name}");
        }
    }

    async fn parse(
        content_type: Option<&str>,
        body: &'static str,
    ) -> Result<Credentials, AuthRejection> {
        let mut request = axum::http::Request::post("/login");
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        Credentials::from_request(request.body(Body::from(body)).unwrap(), &()).await
    }

    #[tokio::test]
    async fn credentials_from_json_or_form_and_clear_errors_otherwise() {
        let json = parse(
            Some("application/json"),
            r#"{"username":"alice","password":"p"}"#,
        )
        .await
        .unwrap();
        assert_eq!(json.username, "alice");
        let form = parse(
            Some("application/x-www-form-urlencoded"),
            "username=alice&password=p%26q",
        )
        .await
        .unwrap();
        assert_eq!(form.password, "p&q");
        for (content_type, body) in [
            (Some("application/json"), "{not json"),
            (Some("application/json"), r#"{"username":"alice"}"#),
            (Some("application/x-www-form-urlencoded"), "username=alice"),
            (Some("text/plain"), "alice"),
            (None, ""),
        ] {
            let error = parse(content_type, body).await.unwrap_err();
            assert_eq!(error.status(), 400, "{content_type:?} {body}");
        }
        let long = Box::leak(
            format!(r#"{{"username":"{}","password":"p"}}"#, "a".repeat(300)).into_boxed_str(),
        );
        assert_eq!(
            parse(Some("application/json"), long)
                .await
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn password_change_and_removal() {
        let users = DemoUsers::new();
        assert!(users.set_password("alice", "new-password-2"));
        assert!(
            users
                .authenticate(&credentials("alice", "alice-password-1"))
                .is_err()
        );
        assert!(
            users
                .authenticate(&credentials("alice", "new-password-2"))
                .is_ok()
        );
        assert!(users.remove("alice"));
        assert!(
            users
                .authenticate(&credentials("alice", "new-password-2"))
                .is_err()
        );
        assert!(users.find("alice").is_none());
        assert!(!users.set_password("alice", "x"));
    }

    #[tokio::test]
    async fn login_runs_inside_the_guard() {
        let settings = LoginGuardSettings::from_lookup(|name| {
            (name == "LOGIN_FREE_FAILURES").then(|| "2".into())
        })
        .unwrap();
        let users = DemoUsers::new().with_login_guard(settings.guard(None));
        for _ in 0..2 {
            let error = users
                .login(credentials("alice", "wrong"))
                .await
                .unwrap_err();
            assert_eq!(error.status(), 401);
        }
        let locked = users
            .login(credentials("alice", "alice-password-1"))
            .await
            .unwrap_err();
        assert_eq!(locked.status(), 429);
        let admin = users.login(credentials("admin", "admin-password-1")).await;
        assert!(admin.unwrap().is_admin());
    }

    #[tokio::test]
    async fn credentials_carry_the_connection_address_not_a_forwarded_one() {
        let peer: std::net::SocketAddr = "192.0.2.7:4000".parse().unwrap();
        let mut request = axum::http::Request::post("/login")
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-forwarded-for", "203.0.113.1")
            .body(Body::from(r#"{"username":"alice","password":"p"}"#))
            .unwrap();
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        let credentials = Credentials::from_request(request, &()).await.unwrap();
        assert_eq!(credentials.client, Some(peer.ip()));
    }

    #[test]
    fn role_change() {
        let users = DemoUsers::new();
        assert!(users.set_role("alice", Role::Admin).unwrap().is_admin());
        assert!(users.find("alice").unwrap().is_admin());
        assert!(users.set_role("bob", Role::Admin).is_none());
    }

    #[test]
    fn debug_hides_the_password() {
        assert!(!format!("{:?}", credentials("alice", "hunter2")).contains("hunter2"));
    }
}
