//! [`ReloadUser`]: the application's hook that re-reads the user at every refresh.

use std::future::Future;

use portcullis_core::StoreError;
use serde_json::Value;

/// Re-reads the user at every refresh, so a deleted or demoted user loses access at the next
/// refresh instead of keeping their old roles for the session's whole lifetime.
///
/// `Ok(None)` means the user no longer exists: the session is revoked. Implemented for closures
/// `Fn(user_id: String, stored_user: Value) -> impl Future<Output = Result<Option<Value>,
/// StoreError>>`.
///
/// # Examples
///
/// ```
/// use portcullis_core::StoreError;
/// use portcullis_hybrid::ReloadUser;
/// use serde_json::{Value, json};
///
/// fn assert_reload(_: impl ReloadUser) {}
/// assert_reload(|user_id: String, _stored: Value| async move {
///     // Look the user up in the application's database here.
///     Ok::<_, StoreError>((user_id == "alice").then(|| json!({"user": "alice", "role": "advertiser"})))
/// });
/// ```
pub trait ReloadUser: Send + Sync + 'static {
    /// The user as they are now, or `None` if they no longer exist.
    fn reload(
        &self,
        user_id: String,
        stored_user: Value,
    ) -> impl Future<Output = Result<Option<Value>, StoreError>> + Send;
}

impl<F, Fut> ReloadUser for F
where
    F: Fn(String, Value) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<Value>, StoreError>> + Send,
{
    fn reload(
        &self,
        user_id: String,
        stored_user: Value,
    ) -> impl Future<Output = Result<Option<Value>, StoreError>> + Send {
        self(user_id, stored_user)
    }
}
