//! The user type, the admin policy and a tiny user table: replace the table with your database.

use std::net::IpAddr;

use portcullis::{Argon2Verifier, AuthRejection, LoginAttempt, LoginGuard, Policy};
use serde::{Deserialize, Serialize};

/// The application's user, as handlers see it: small and cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user: String,
    pub role: String,
}

/// `Authorized<User, IsAdmin>`: admins only (403 for others).
#[derive(Default)]
pub struct IsAdmin;

impl Policy<User> for IsAdmin {
    fn allows(&self, user: &User) -> bool {
        user.role == "admin"
    }
}

/// Demo users `alice` / `alice-password-1` and `admin` / `admin-password-1`: name, argon2id
/// PHC hash (OWASP Password Storage Cheat Sheet parameters: m=19456, t=2, p=1), role.
#[rustfmt::skip]
const USERS: &[(&str, &str, &str)] = &[
    ("alice", "$argon2id$v=19$m=19456,t=2,p=1$QfxlxXqHWGEeRafVUkgCrw$VEoTtZTnipB6jcEu9l129wUQ8ttM0gKN4tA+D9lVYt4", "advertiser"),
    ("admin", "$argon2id$v=19$m=19456,t=2,p=1$/z8hh34EXLhHWkY7PY1YKg$JV+WCKXI4fJLAtmS7T+J6hMm0r9iQD/4MVfWTNHo3HE", "admin"),
];
/// Checked for unknown names, so they cost as long as a wrong password (OWASP Authentication
/// Cheat Sheet, "Authentication Responses").
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$YPdH5vlACO32kOer7yviCg$KGyYm0Nwkyunmv44E0//12Ec4EY72ViGipBzaE8nm54";

/// A login as posted: JSON `{"username", "password"}`.
#[derive(Deserialize)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// Password checks inside a `LoginGuard`: back-off per account and per client address (429
/// with `Retry-After`), a cap on concurrent argon2 checks (503 when saturated).
#[derive(Clone)]
pub struct Users {
    guard: LoginGuard,
    verifier: Argon2Verifier,
}

impl Default for Users {
    fn default() -> Self {
        let guard = LoginGuard::default();
        let verifier = Argon2Verifier::new(guard.concurrency_limit());
        Self { guard, verifier }
    }
}

impl Users {
    /// The user these credentials prove; 401 for wrong ones.
    pub async fn login(
        &self,
        client: Option<IpAddr>,
        credentials: Credentials,
    ) -> Result<User, AuthRejection> {
        let (verifier, account) = (self.verifier.clone(), credentials.username.clone());
        let check = move || {
            let row = USERS
                .iter()
                .find(|(name, ..)| *name == credentials.username);
            let hash = row.map_or(DECOY, |(_, hash, _)| hash);
            let matches = verifier.verify(credentials.password.as_bytes(), hash);
            let (name, _, role) = row
                .filter(|_| matches)
                .ok_or_else(|| AuthRejection::invalid_credentials("wrong username or password"))?;
            Ok(User {
                user: (*name).into(),
                role: (*role).into(),
            })
        };
        let attempt = LoginAttempt::new(&account).with_client(client);
        self.guard.verify(attempt, check).await
    }
}
