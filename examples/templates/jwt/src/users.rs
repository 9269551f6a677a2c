//! The user type, the admin policy and a tiny user table: replace the table with your database.

use portcullis::{AuthRejection, Credentials, PasswordCheck, Policy};
use serde::{Deserialize, Serialize};

/// The application's user, as handlers see it: small and cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user: String,
    pub role: String,
}

impl User {
    fn new(user: &str, role: &str) -> Self {
        let (user, role) = (user.into(), role.into());
        Self { user, role }
    }
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

/// The user these credentials prove. `PasswordCheck` does the rest: 401 for a wrong password
/// or an unknown name (after the same work), 429 while locked out after failures, 503 when
/// too many checks run.
pub async fn login(
    passwords: &PasswordCheck,
    credentials: Credentials,
) -> Result<User, AuthRejection> {
    let row = USERS.iter().find(|row| row.0 == credentials.username);
    let account = row.map(|&(user, hash, role)| (hash.into(), User::new(user, role)));
    passwords.verify(credentials, account).await
}
