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
    sync::{Arc, PoisonError, RwLock},
};

use argon2::{
    Argon2, PasswordHasher,
    password_hash::{SaltString, rand_core::OsRng},
};
use portcullis_core::{AuthRejection, PasswordCheck, Policy};
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

/// A username and password as posted (JSON or form), from the library: one parser and one
/// set of 400 answers for every app.
pub use portcullis_core::Credentials;

struct Account {
    user: User,
    password_hash: String,
}

/// The demo user table, with passwords hashed by argon2 at start-up, and the login guard
/// its password checks run in.
#[derive(Clone)]
pub struct DemoUsers {
    accounts: Arc<RwLock<HashMap<String, Account>>>,
    // argon2 (pooled memory), a decoy for unknown names, inside the login guard.
    passwords: PasswordCheck<DemoAttemptCounter>,
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
        Self {
            accounts: Arc::new(RwLock::new(accounts)),
            passwords: PasswordCheck::new(LoginGuardSettings::default().guard(None)),
            shared: None,
        }
    }

    /// Checks passwords inside `guard` instead (one built from [`LoginGuardSettings`]).
    #[must_use]
    pub fn with_login_guard(mut self, guard: DemoLoginGuard) -> Self {
        self.passwords = PasswordCheck::new(guard);
        self
    }

    /// The login guard.
    pub fn login_guard(&self) -> &DemoLoginGuard {
        self.passwords.guard()
    }

    /// Signs in: the argon2 check inside the login guard (a decoy hash for unknown names).
    ///
    /// # Errors
    ///
    /// 401 for wrong credentials (the same answer for an unknown user and a wrong password);
    /// 429 with `Retry-After` while the account or the client address is locked out (even for
    /// the right password); 503 with `Retry-After` when too many checks are running or the
    /// attempt counter is unreachable.
    pub async fn login(&self, credentials: Credentials) -> Result<User, AuthRejection> {
        // Copy the hash out: argon2 is slow and must not run under the lock.
        let account = self
            .accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&credentials.username)
            .map(|a| (a.password_hash.clone(), a.user.clone()));
        self.passwords.verify(credentials, account).await
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
    use super::*;

    fn credentials(username: &str, password: &str) -> Credentials {
        Credentials::new(username, password)
    }

    #[tokio::test]
    async fn authenticates_the_demo_users_only() {
        let users = DemoUsers::new();
        let alice = users.login(credentials("alice", "alice-password-1")).await;
        assert_eq!(alice.unwrap().role, Role::Advertiser);
        let admin = users.login(credentials("admin", "admin-password-1")).await;
        assert!(admin.unwrap().is_admin());
        for (name, password) in [
            ("alice", "admin-password-1"),
            ("bob", "alice-password-1"),
            ("", ""),
            ("admin", ""),
        ] {
            let error = users.login(credentials(name, password)).await.unwrap_err();
            assert_eq!(error.status(), 401, "{name}");
        }
    }

    #[tokio::test]
    async fn password_change_and_removal() {
        let users = DemoUsers::new();
        assert!(users.set_password("alice", "new-password-2"));
        let old = users.login(credentials("alice", "alice-password-1")).await;
        assert!(old.is_err());
        let new = users.login(credentials("alice", "new-password-2")).await;
        assert!(new.is_ok());
        assert!(users.remove("alice"));
        let removed = users.login(credentials("alice", "new-password-2")).await;
        assert!(removed.is_err());
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

    #[test]
    fn role_change() {
        let users = DemoUsers::new();
        assert!(users.set_role("alice", Role::Admin).unwrap().is_admin());
        assert!(users.find("alice").unwrap().is_admin());
        assert!(users.set_role("bob", Role::Admin).is_none());
    }
}
