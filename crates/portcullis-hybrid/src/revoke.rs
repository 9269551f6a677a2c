//! Ending hybrid sessions: logout, revoke one, revoke all of a user's, revoke the others, and
//! publishing each on the revocation feed.

use portcullis_core::{
    Mechanism,
    observe::{self, RevocationScope},
};

use crate::{
    HybridError, HybridSessions, RefreshToken, Revocation, UserRevocation,
    rotation::{Decision, Timing, decide},
};

impl HybridSessions {
    /// Ends one session (logout, or revoke-by-handle from a session listing): deletes it and
    /// publishes the revocation, so its access tokens are refused at once on every node.
    /// Returns whether the session existed.
    ///
    /// # Errors
    ///
    /// [`HybridError::Store`] when the store or the feed fails. The revocation is in this
    /// node's list either way.
    pub async fn revoke(&self, session_id: &str) -> Result<bool, HybridError> {
        let existed = self.end_session(session_id).await?;
        if existed {
            observe::revocation(Mechanism::Hybrid, RevocationScope::Session, 1);
        }
        Ok(existed)
    }

    /// [`HybridSessions::revoke`] without recording it: the caller records the scope.
    pub(crate) async fn end_session(&self, session_id: &str) -> Result<bool, HybridError> {
        // This node refuses the session's access tokens first, whatever the store says.
        self.inner.revoked.insert(&self.revocation(session_id));
        let deleted = self.inner.store.delete(session_id).await?;
        self.publish(session_id).await?;
        Ok(deleted.is_some())
    }

    /// Logs out with a refresh token, for clients without a valid access token. The secret
    /// must be the session's current one or one rotated out within the grace window, so
    /// knowing a `sid` is not enough to log someone out.
    ///
    /// # Errors
    ///
    /// As [`HybridSessions::refresh`], except that a stale token is refused without revoking.
    pub async fn logout_with_refresh_token(&self, presented: &str) -> Result<(), HybridError> {
        let token = RefreshToken::parse(presented).ok_or(HybridError::InvalidRefreshToken)?;
        let Some(record) = self.inner.store.load(token.session_id()).await? else {
            return Err(HybridError::SessionEnded);
        };
        let timing = Timing {
            idle_secs: 0,
            grace_secs: self.inner.settings.grace.as_secs(),
        };
        match decide(&record, token.secret(), timing, self.now()) {
            Decision::Rotate { .. } | Decision::Grace { .. } => {
                self.revoke(token.session_id()).await?;
                Ok(())
            }
            Decision::Expired => Err(HybridError::SessionEnded),
            Decision::Reuse | Decision::Unknown => Err(HybridError::InvalidRefreshToken),
        }
    }

    /// Ends every session of the user (logout-all, or after a password change). Returns how
    /// many there were.
    ///
    /// # Errors
    ///
    /// [`HybridError::Store`] when the store or the feed fails.
    pub async fn revoke_all(&self, user_id: &str) -> Result<usize, HybridError> {
        // The user's tokens issued until now are refused first, on every node, including those
        // of sessions that already expired (the store no longer knows them, so the deletion
        // below could not publish their ids).
        let user_published = self.revoke_user_tokens(user_id).await;
        let deleted = self.inner.store.delete_by_user(user_id, None).await?;
        observe::revocation(
            Mechanism::Hybrid,
            RevocationScope::User,
            deleted.len() as u64,
        );
        let published = self
            .publish_all(deleted.iter().map(|record| record.session_id.as_str()))
            .await;
        user_published?;
        published?;
        Ok(deleted.len())
    }

    /// Ends every session of the user except `current_session_id` ("sign out other devices",
    /// or after a password change, OWASP ASVS 3.3.3): each ended session is published on the
    /// revocation feed, so its access tokens are refused at every edge. Returns how many ended.
    ///
    /// `current_session_id` is the caller's own session (the `sid` of the access token, see
    /// [`AccessSession::session_id`](crate::AccessSession::session_id)); it names the user.
    ///
    /// # Errors
    ///
    /// [`HybridError::SessionEnded`] when the current session no longer exists (it cannot
    /// speak for the user any more); [`HybridError::Store`] when the store or the feed fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use portcullis_hybrid::{HybridSessions, InProcessFeed, MemoryRefreshStore};
    /// use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
    ///
    /// let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256)?);
    /// let sessions = HybridSessions::builder(issuer, Validation::new())
    ///     .store(MemoryRefreshStore::new())
    ///     .feed(InProcessFeed::new())
    ///     .build()
    ///     .await?;
    /// let laptop = sessions.login("alice", &serde_json::json!({"user": "alice"}), None).await?;
    /// let phone = sessions.login("alice", &serde_json::json!({"user": "alice"}), None).await?;
    /// assert_eq!(sessions.revoke_others(laptop.session_id()).await?, 1);
    /// assert!(sessions.revocations().is_revoked(phone.session_id(), 0));
    /// assert!(!sessions.revocations().is_revoked(laptop.session_id(), 0));
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn revoke_others(&self, current_session_id: &str) -> Result<usize, HybridError> {
        let Some(current) = self.inner.store.load(current_session_id).await? else {
            return Err(HybridError::SessionEnded);
        };
        let deleted = self
            .inner
            .store
            .delete_by_user(&current.user_id, Some(current_session_id))
            .await?;
        observe::revocation(
            Mechanism::Hybrid,
            RevocationScope::User,
            deleted.len() as u64,
        );
        self.publish_all(deleted.iter().map(|record| record.session_id.as_str()))
            .await?;
        Ok(deleted.len())
    }

    /// Publishes every session id, trying them all; returns the last failure, if any.
    pub(crate) async fn publish_all<'a>(
        &self,
        session_ids: impl Iterator<Item = &'a str>,
    ) -> Result<(), HybridError> {
        let mut failure = None;
        for session_id in session_ids {
            if let Err(error) = self.publish(session_id).await {
                failure = Some(error);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Refuses, on every node, every access token of `user_id` issued until now, without
    /// ending the user's sessions: their clients refresh and get tokens minted from the user
    /// as they are now (re-read by the [`ReloadUser`](crate::ReloadUser) hook, if set). Use it when a change to
    /// the user (a new role, a suspension) must take effect before their access tokens
    /// expire. [`HybridSessions::revoke_all`] does this and ends the sessions too.
    ///
    /// Tokens issued later, even within the same second, are not affected: the instant has
    /// millisecond precision. Nodes compare it with their own clocks, so keep them in sync.
    ///
    /// # Errors
    ///
    /// [`HybridError::Store`] when the feed fails; this node refuses the tokens either way.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), portcullis_hybrid::HybridError> {
    /// // alice was just made an admin: her next request refreshes into a token saying so.
    /// sessions.revoke_user_tokens("alice").await?;
    /// # Ok(()) }
    /// ```
    pub async fn revoke_user_tokens(&self, user_id: &str) -> Result<(), HybridError> {
        let revocation = UserRevocation {
            user_id: user_id.to_owned(),
            not_before_ms: self.now_ms(),
            until: self.revocation_deadline(),
        };
        self.inner.revoked.purge_expired(self.now());
        self.inner.revoked.insert_user(&revocation);
        self.inner.feed.publish_user(&revocation).await?;
        Ok(())
    }

    /// Revokes, logging a failure instead of returning it (theft, deleted user: the refusal
    /// stands whatever the store says).
    pub(crate) async fn revoke_quietly(&self, session_id: &str, scope: RevocationScope) {
        if let Err(error) = self.end_session(session_id).await {
            tracing::error!(%error, session_id, "could not fully revoke the session");
        }
        observe::revocation(Mechanism::Hybrid, scope, 1);
    }

    /// The revocation of `session_id`, in force until the longest access token of the session
    /// could have expired.
    pub(crate) fn revocation(&self, session_id: &str) -> Revocation {
        Revocation {
            session_id: session_id.to_owned(),
            until: self.revocation_deadline(),
        }
    }

    /// When an access token issued now could have expired at the latest: the access TTL, plus
    /// the leeway the edge's own verifier allows past `exp` (one setting, so the two cannot
    /// disagree), plus a second for rounding.
    pub(crate) fn revocation_deadline(&self) -> u64 {
        let settings = &self.inner.settings;
        self.now()
            .saturating_add(settings.access_ttl.as_secs())
            .saturating_add(self.inner.verifier.validation().leeway_duration().as_secs())
            .saturating_add(1)
    }

    /// Lists the session locally at once, then tells the other nodes.
    pub(crate) async fn publish(&self, session_id: &str) -> Result<(), HybridError> {
        let revocation = self.revocation(session_id);
        self.inner.revoked.purge_expired(self.now());
        self.inner.revoked.insert(&revocation);
        self.inner.feed.publish(&revocation).await?;
        Ok(())
    }
}
