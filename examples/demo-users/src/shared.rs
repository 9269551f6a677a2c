//! The demo user table's changes, shared by every instance through Redis when `REDIS_URL` is
//! set: a role change or a deleted account on one instance is what every other instance's
//! user loader reads next. A real application has one user database; this stands in for it.
//!
//! Each changed user is one key, `<prefix>:demo-user:<name>`, holding the user's JSON, or
//! `null` once deleted. A user never changed is read from the table built at start-up.

use portcullis_core::StoreError;
use portcullis_redis::RedisConnection;

use crate::{DemoUsers, Role, User};

impl DemoUsers {
    /// Keeps changes to the table in Redis, shared with every instance given the same
    /// connection settings (`None`: this instance only).
    #[must_use]
    pub fn with_shared_table(mut self, redis: Option<RedisConnection>) -> Self {
        self.shared = redis;
        self
    }

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
                return serde_json::from_str::<Option<User>>(&text).map_err(StoreError::corrupt);
            }
        }
        Ok(self.find(user_id))
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

    /// Gives a user a new role on every instance; the updated user, or `None` when the user
    /// does not exist.
    ///
    /// # Errors
    ///
    /// When the shared table does not answer.
    pub async fn change_role(&self, user_id: &str, role: Role) -> Result<Option<User>, StoreError> {
        let Some(mut user) = self.current(user_id).await? else {
            return Ok(None);
        };
        user.role = role;
        self.set_role(user_id, role);
        self.write_shared(user_id, Some(&user)).await?;
        Ok(Some(user))
    }

    /// Deletes a user on every instance; `false` when there was none.
    ///
    /// # Errors
    ///
    /// When the shared table does not answer.
    pub async fn delete(&self, user_id: &str) -> Result<bool, StoreError> {
        let existed = self.current(user_id).await?.is_some();
        self.remove(user_id);
        self.write_shared(user_id, None).await?;
        Ok(existed)
    }
}
