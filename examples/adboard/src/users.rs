//! The users: [`User`] and its capabilities, the [`IsAdmin`] policy, and the demo user table
//! (`alice` / `alice-password-1`, an advertiser; `admin` / `admin-password-1`, an admin).
//! With `REDIS_URL`, role changes and deleted accounts are kept in Redis, so every instance
//! reads the same table. Replace [`Users`] with your user database.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use argon2::{
    Argon2, PasswordHasher,
    password_hash::{SaltString, rand_core::OsRng},
};
use portcullis_core::{AuthRejection, Credentials, LoginGuard, PasswordCheck, Policy, StoreError};
use portcullis_redis::RedisConnection;
use serde::{Deserialize, Serialize};

use crate::login::Attempts;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Manages their own ads.
    Advertiser,
    /// Sees and moderates everything.
    Admin,
}

/// The signed-in user, the same JSON in every mode: `{"user": "alice", "role": "advertiser"}`.
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

    /// The user's id, by which the stores index sessions.
    pub fn id(&self) -> &str {
        &self.user
    }
}

/// The policy of `PUT /users/{name}/role`: admins only.
#[derive(Debug, Clone, Copy, Default)]
pub struct IsAdmin;

impl Policy<User> for IsAdmin {
    fn allows(&self, user: &User) -> bool {
        user.is_admin()
    }
}

/// The user table: users with argon2 password hashes, checked inside the login guard.
#[derive(Clone)]
pub struct Users {
    /// Name → (password hash, user).
    accounts: Arc<RwLock<HashMap<String, (String, User)>>>,
    check: PasswordCheck<Attempts>,
    /// Where changes are shared with every instance (`REDIS_URL`).
    shared: Option<RedisConnection>,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

/// An argon2id PHC string, or `None` when argon2 refuses the input (never for the demo
/// passwords; a refused new password keeps the old one rather than storing an empty hash).
fn hash(password: &str) -> Option<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .ok()
}

impl Users {
    /// The demo users, hashed now (slow: call it off the async runtime), their passwords
    /// checked inside `guard`, changes shared through `shared`.
    pub(crate) fn new(guard: LoginGuard<Attempts>, shared: Option<RedisConnection>) -> Self {
        let accounts = [
            ("alice", "alice-password-1", Role::Advertiser),
            ("admin", "admin-password-1", Role::Admin),
        ]
        .map(|(name, password, role)| {
            let user = User {
                user: name.into(),
                role,
            };
            (name.to_owned(), (hash(password).unwrap_or_default(), user))
        });
        Self {
            accounts: Arc::new(RwLock::new(HashMap::from(accounts))),
            check: PasswordCheck::new(guard),
            shared,
        }
    }

    /// Signs in inside the login guard (401 wrong credentials, 429 locked out, 503 busy), and
    /// answers with the user as every instance has them now.
    pub(crate) async fn sign_in(&self, credentials: Credentials) -> Result<User, AuthRejection> {
        let account = self.read().get(&credentials.username).cloned();
        let user = self.check.verify(credentials, account).await?;
        self.current(user.id())
            .await?
            .ok_or_else(|| AuthRejection::invalid_credentials("wrong username or password"))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, (String, User)>> {
        self.accounts.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, (String, User)>> {
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets a new password (slow: argon2); `false` when the user does not exist.
    pub(crate) fn set_password(&self, user_id: &str, password: &str) -> bool {
        let Some(new_hash) = hash(password) else {
            return false;
        };
        self.write()
            .get_mut(user_id)
            .map(|(hash, _)| *hash = new_hash)
            .is_some()
    }

    /// `<prefix>:demo-user:<name>` holds a changed user's JSON, or `null` once deleted.
    fn shared_key(redis: &RedisConnection, user_id: &str) -> String {
        format!("{}:demo-user:{user_id}", redis.key_prefix())
    }

    /// The user as they are now on every instance: `None` when deleted or unknown.
    ///
    /// # Errors
    ///
    /// When the shared table (Redis) does not answer or holds a corrupt record.
    pub async fn current(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        if let Some(redis) = &self.shared {
            let key = Self::shared_key(redis, user_id);
            let stored: Option<String> = redis.query(redis::cmd("GET").arg(&key)).await?;
            if let Some(text) = stored {
                return serde_json::from_str(&text).map_err(StoreError::corrupt);
            }
        }
        Ok(self.read().get(user_id).map(|(_, user)| user.clone()))
    }

    async fn write_shared(&self, user_id: &str, user: Option<&User>) -> Result<(), StoreError> {
        if let Some(redis) = &self.shared {
            let key = Self::shared_key(redis, user_id);
            let text = serde_json::to_string(&user).map_err(StoreError::corrupt)?;
            redis
                .query::<()>(redis::cmd("SET").arg(&key).arg(text))
                .await?;
        }
        Ok(())
    }

    /// Gives a user a new role on every instance; `None` when the user does not exist.
    pub(crate) async fn change_role(
        &self,
        user_id: &str,
        role: Role,
    ) -> Result<Option<User>, StoreError> {
        let Some(mut user) = self.current(user_id).await? else {
            return Ok(None);
        };
        user.role = role;
        if let Some((_, local)) = self.write().get_mut(user_id) {
            local.role = role;
        }
        self.write_shared(user_id, Some(&user)).await?;
        Ok(Some(user))
    }

    /// Deletes a user on every instance; `false` when there was none.
    pub(crate) async fn delete(&self, user_id: &str) -> Result<bool, StoreError> {
        let existed = self.current(user_id).await?.is_some();
        self.write().remove(user_id);
        self.write_shared(user_id, None).await?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn sign_in(users: &Users, name: &str, password: &str) -> Result<User, AuthRejection> {
        users.sign_in(Credentials::new(name, password)).await
    }

    #[tokio::test]
    async fn sign_in_password_role_and_deletion() {
        let guard = LoginGuard::new(Attempts::Memory(Default::default()));
        let users = Users::new(guard, None);
        assert!(
            sign_in(&users, "admin", "admin-password-1")
                .await
                .unwrap()
                .is_admin()
        );
        for (name, password) in [("alice", "admin-password-1"), ("bob", "alice-password-1")] {
            let refused = sign_in(&users, name, password).await.unwrap_err();
            assert_eq!(refused.status(), 401, "{name}");
        }
        assert!(users.set_password("alice", "new-password-2"));
        assert!(sign_in(&users, "alice", "alice-password-1").await.is_err());
        let changed = users.change_role("alice", Role::Admin).await.unwrap();
        assert!(changed.is_some_and(|user| user.is_admin()));
        assert!(
            sign_in(&users, "alice", "new-password-2")
                .await
                .unwrap()
                .is_admin()
        );
        assert!(users.delete("alice").await.unwrap());
        assert!(users.current("alice").await.unwrap().is_none());
        assert!(
            users
                .change_role("alice", Role::Admin)
                .await
                .unwrap()
                .is_none()
        );
    }
}
