//! The demo users and their password check: argon2id hashes made at start-up (OWASP Password
//! Storage Cheat Sheet), and a check that costs the same whether or not the user exists.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use serde::{Deserialize, Serialize};

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages their own ads.
    Advertiser,
    /// Sees and moderates everything.
    Admin,
}

/// The signed-in user as handlers see it, and as `GET /me` shows it:
/// `{"user": "alice", "role": "advertiser"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user name, also the id sessions are listed under.
    pub user: String,
    /// The user's role.
    pub role: Role,
}

impl User {
    /// Whether the user may enter the admin area.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

struct Account {
    user: User,
    hash: String,
}

/// The accounts the app knows, with argon2id password hashes.
pub struct Users {
    accounts: Vec<Account>,
    /// Checked for unknown user names, so they take as long as known ones.
    decoy: String,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field(
                "accounts",
                &self
                    .accounts
                    .iter()
                    .map(|a| &a.user.user)
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Hashing failed (the OS gave no randomness for the salt, say).
#[derive(Debug, thiserror::Error)]
#[error("could not hash a password: {0}")]
pub struct HashError(String);

fn hash(password: &str) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError(e.to_string()))
}

impl Users {
    /// `alice` / `alice-password-1` (advertiser) and `admin` / `admin-password-1` (admin).
    ///
    /// # Errors
    ///
    /// When hashing fails.
    pub fn demo() -> Result<Self, HashError> {
        let accounts = [
            ("alice", "alice-password-1", Role::Advertiser),
            ("admin", "admin-password-1", Role::Admin),
        ]
        .into_iter()
        .map(|(name, password, role)| {
            Ok(Account {
                user: User {
                    user: name.to_owned(),
                    role,
                },
                hash: hash(password)?,
            })
        })
        .collect::<Result<_, HashError>>()?;
        Ok(Self {
            accounts,
            decoy: hash("decoy password that nobody has")?,
        })
    }

    /// The user with these credentials, if they are right.
    pub fn verify(&self, username: &str, password: &str) -> Option<User> {
        let account = self.accounts.iter().find(|a| a.user.user == username);
        let hash = account.map_or(self.decoy.as_str(), |a| a.hash.as_str());
        let parsed = PasswordHash::new(hash).ok()?;
        let valid = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        match account {
            Some(account) if valid => Some(account.user.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_users_verify_and_strangers_do_not() {
        let users = Users::demo().unwrap();
        assert_eq!(
            users.verify("alice", "alice-password-1").unwrap().role,
            Role::Advertiser
        );
        assert!(
            users
                .verify("admin", "admin-password-1")
                .unwrap()
                .is_admin()
        );
        assert!(users.verify("alice", "admin-password-1").is_none());
        assert!(users.verify("mallory", "alice-password-1").is_none());
        assert!(users.verify("alice", "").is_none());
        assert!(!format!("{users:?}").contains("argon2"));
    }
}
