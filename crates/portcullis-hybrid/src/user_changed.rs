//! [`HybridSessions::user_changed`]: the one call an application makes when a user changes
//! (role, password, account deleted), the same announcement as the session layer's
//! `UserLoader::user_changed` on the same revocation feed.

use crate::{HybridError, HybridSessions};

impl HybridSessions {
    /// Announces that `user_id` changed: every node refuses the user's access tokens minted
    /// until now ([`HybridSessions::revoke_user_tokens`]), so their next request refreshes
    /// (transparently with [`CookieTransport::transparent`](crate::CookieTransport::transparent),
    /// else by the client after a 401), and the refresh reloads the user through
    /// [`ReloadUser`](crate::ReloadUser) (OWASP Authorization Cheat Sheet: privileges follow the
    /// account as it is now). A user the reload no longer finds loses the session at that
    /// refresh. A session layer's `UserLoader` subscribed to the same feed drops its cached
    /// copy too.
    ///
    /// Use [`HybridSessions::update_user`] instead when no [`ReloadUser`](crate::ReloadUser) is
    /// configured: it writes the new user into the sessions first.
    ///
    /// # Errors
    ///
    /// [`HybridError::Store`] when the feed could not publish (this node refuses the old
    /// tokens either way).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), portcullis_hybrid::HybridError> {
    /// // After changing alice's role in the user table:
    /// sessions.user_changed("alice").await?;
    /// # Ok(()) }
    /// ```
    pub async fn user_changed(&self, user_id: &str) -> Result<(), HybridError> {
        self.revoke_user_tokens(user_id).await
    }
}
