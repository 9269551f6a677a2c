//! [`Session`]: the handle handlers use for auxiliary data, login, logout and per-user session
//! management, over the request's `RequestState`.

use std::sync::Arc;

#[cfg(feature = "axum")]
use portcullis_core::AuthRejection;
use portcullis_core::{
    Mechanism, SecretToken, StoreKey, UserJson,
    observe::{self, RevocationScope},
    random_handle,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::MutexGuard;

use crate::{
    LoginOptions, SessionError, SessionInfo,
    session::{CookieAction, Current, RequestState, UPDATE_ATTEMPTS, apply, backoff},
};

/// The request's session: auxiliary data, login and logout, and the signed-in user's other
/// sessions. An axum extractor with the `axum` feature; without it, take it from the request
/// extensions with [`Session::from_extensions`].
///
/// Nothing touches the store until a method needs the record, and then only once per request.
/// Data changes are written once, after the handler (or at [`Session::save`]); login, logout,
/// [`Session::cycle_id`] and revocations take effect at once.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::post};
/// use portcullis_session::{MemoryStore, Session, SessionConfig, SessionError, SessionLayer};
///
/// async fn visit(session: Session) -> Result<String, SessionError> {
///     // A read-modify-write of one key: `update`, so parallel visits are all counted.
///     let visits = session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
///     session.insert("last_page", "/visit").await?; // plain writes: saved after the handler
///     Ok(format!("visit number {visits}"))
/// }
///
/// let app: Router = Router::new()
///     .route("/visit", post(visit))
///     .layer(SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap());
/// # }
/// ```
#[derive(Clone)]
pub struct Session {
    state: Arc<RequestState>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret (OWASP Logging Cheat Sheet: session IDs are not logged).
        f.debug_struct("Session")
            .field("cookie", &self.state.incoming.as_ref().map(|_| "REDACTED"))
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(state: Arc<RequestState>) -> Self {
        Self { state }
    }

    /// The session of a request the [`SessionLayer`](crate::SessionLayer) saw.
    pub fn from_extensions(extensions: &http::Extensions) -> Option<Self> {
        extensions.get::<Self>().cloned()
    }

    /// The value stored under `key`, including this request's own changes.
    ///
    /// # Errors
    ///
    /// The store failed, or the value does not fit `T`.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        let value = match current.changes.get(key) {
            Some(change) => change.as_ref(),
            None => current
                .live
                .as_ref()
                .and_then(|live| live.record.data.get(key)),
        };
        value
            .map(|value| T::deserialize(value).map_err(SessionError::Serialization))
            .transpose()
    }

    /// Stores `value` under `key`, written once after the handler. An anonymous visitor's
    /// first write starts their session (and only then do they get a cookie).
    ///
    /// # Errors
    ///
    /// The store failed, or `value` does not serialize.
    pub async fn insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), SessionError> {
        let value = serde_json::to_value(value).map_err(SessionError::Serialization)?;
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        current.changes.insert(key.to_owned(), Some(value));
        Ok(())
    }

    /// Removes `key`, returning its value.
    ///
    /// # Errors
    ///
    /// The store failed, or the value does not fit `T`.
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        let previous = self.get::<T>(key).await?;
        let mut current = self.state.lock().await;
        current.changes.insert(key.to_owned(), None);
        Ok(previous)
    }

    /// Replaces the value under `key` with `f(old)` atomically, and saves at once: on a lost
    /// race with a concurrent request, `f` runs again on the value that request wrote, so no
    /// update is lost (a counter incremented by 200 parallel requests ends at exactly 200).
    /// Returns the value written.
    ///
    /// Plain [`Session::insert`] is last-writer-wins *per key*: concurrent requests that write
    /// different keys never overwrite each other, but two read-modify-writes of one key can
    /// (both read 5, both write 6). Use `update` for those. A change this request already made
    /// to `key` (an `insert` before the `update`) is the value `f` starts from.
    ///
    /// # Errors
    ///
    /// The store failed, the value does not fit `T`, the session ended meanwhile, or other
    /// writers kept winning for longer than about a second.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "axum")] {
    /// use portcullis_session::{Session, SessionError};
    ///
    /// async fn visit(session: Session) -> Result<String, SessionError> {
    ///     let visits = session.update("visits", |n: Option<u64>| n.unwrap_or(0) + 1).await?;
    ///     Ok(format!("visit number {visits}"))
    /// }
    /// # }
    /// ```
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(Option<T>) -> T,
    {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        let pending = current.changes.remove(key);
        let decode = |value: Option<&Value>| -> Result<Option<T>, SessionError> {
            value
                .map(|value| T::deserialize(value).map_err(SessionError::Serialization))
                .transpose()
        };
        if current.live.is_none() {
            // An anonymous visitor: nobody else can write a session that does not exist yet.
            let new = f(decode(pending.as_ref().and_then(Option::as_ref))?);
            let value = serde_json::to_value(&new).map_err(SessionError::Serialization)?;
            current.changes.insert(key.to_owned(), Some(value));
            self.state.flush(&mut current).await?;
            return Ok(new);
        }
        let now = self.state.shared.now();
        for attempt in 0..UPDATE_ATTEMPTS {
            let old = match &pending {
                Some(change) => decode(change.as_ref())?,
                None => decode(
                    current
                        .live
                        .as_ref()
                        .and_then(|live| live.record.data.get(key)),
                )?,
            };
            let new = f(old);
            let value = serde_json::to_value(&new).map_err(SessionError::Serialization)?;
            current.changes.insert(key.to_owned(), Some(value));
            if self.state.save_once(&mut current, now).await? {
                return Ok(new);
            }
            // Lost to another writer: recompute from what it wrote, after a short random
            // pause so that a crowd of writers spreads out instead of colliding again.
            current.changes.remove(key);
            let pause = backoff(attempt);
            drop(current);
            tokio::time::sleep(pause).await;
            current = self.state.lock().await;
            if current.live.is_none() {
                return Err(SessionError::Ended);
            }
        }
        tracing::warn!("gave up updating a session value after repeated conflicts");
        Err(SessionError::Contention)
    }

    /// Writes this request's changes now rather than after the handler, to see a store error
    /// before answering.
    ///
    /// # Errors
    ///
    /// The store failed, the session ended meanwhile, or concurrent writers kept winning.
    pub async fn save(&self) -> Result<(), SessionError> {
        let mut current = self.state.lock().await;
        self.state.flush(&mut current).await
    }

    /// The signed-in user's id, if any.
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn user_id(&self) -> Result<Option<String>, SessionError> {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        Ok(current
            .live
            .as_ref()
            .and_then(|live| live.record.user_id.clone()))
    }

    /// The signed-in user as the application's type (handlers usually take `CurrentUser<U>`).
    ///
    /// # Errors
    ///
    /// The store failed, or the stored user does not fit `U`.
    pub async fn user<U: DeserializeOwned>(&self) -> Result<Option<U>, SessionError> {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        current
            .live
            .as_ref()
            .and_then(|live| live.record.user.as_ref())
            .map(|user| user.decode().map_err(SessionError::Serialization))
            .transpose()
    }

    /// The public handle of the current session (safe to show; not the secret).
    ///
    /// # Errors
    ///
    /// The store failed.
    pub async fn handle(&self) -> Result<Option<String>, SessionError> {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        Ok(current.live.as_ref().map(|live| live.record.handle.clone()))
    }

    /// Signs `user` in under `user_id` with a browser-session cookie. See
    /// [`Session::login_with`].
    ///
    /// # Errors
    ///
    /// As [`Session::login_with`].
    pub async fn login<U: Serialize + ?Sized>(
        &self,
        user_id: &str,
        user: &U,
    ) -> Result<(), SessionError> {
        self.login_with(user_id, user, LoginOptions::default())
            .await
    }

    /// Signs `user` in under `user_id` (the key of per-user listing and revocation).
    ///
    /// The session gets a new ID and the old one is deleted at once (OWASP Session Management
    /// Cheat Sheet, "Renew the Session ID After Any Privilege Level Change": session fixation).
    /// Auxiliary data carries over from an anonymous session or one of the same user, never
    /// from another user's. The per-user limit applies.
    ///
    /// # Errors
    ///
    /// [`SessionError::CrossSite`] for a login posted from another site (login CSRF),
    /// [`SessionError::LimitReached`] when the limit refuses new sessions, store errors.
    pub async fn login_with<U: Serialize + ?Sized>(
        &self,
        user_id: &str,
        user: &U,
        options: LoginOptions,
    ) -> Result<(), SessionError> {
        if self.state.cross_site {
            return Err(SessionError::CrossSite);
        }
        let user = UserJson::new(user).map_err(SessionError::Serialization)?;
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        let now = self.state.shared.now();
        let mut record = self.state.new_record(now, options.remember_me);
        if let Some(old) = current.live.take() {
            let same_user = old.record.user_id.as_deref().is_none_or(|id| id == user_id);
            if same_user {
                record.data = old.record.data;
            }
            current.cookie = CookieAction::Clear;
            self.state.store().delete(&old.key).await?;
        }
        apply(&mut record.data, &current.changes);
        current.changes.clear();
        record.user_id = Some(user_id.to_owned());
        record.user = Some(user);
        record.authenticated_at = Some(now);
        let limit = self.state.shared.config.limit;
        self.state.create(&mut current, record, limit).await?;
        // The public handle only, never the secret (OWASP Logging Cheat Sheet).
        let handle = current
            .live
            .as_ref()
            .map(|live| live.record.handle.as_str());
        observe::login(Mechanism::Session, handle);
        Ok(())
    }

    /// Signs out: deletes the session from the store at once and clears the cookie.
    ///
    /// # Errors
    ///
    /// The store failed (the cookie is cleared all the same).
    pub async fn logout(&self) -> Result<(), SessionError> {
        let mut current = self.state.lock().await;
        let key = current
            .live
            .take()
            .map(|live| live.key)
            .or_else(|| self.state.incoming.as_ref().map(SecretToken::store_key));
        current.loaded = true;
        current.changes.clear();
        if let Some(key) = key {
            current.cookie = CookieAction::Clear;
            self.state.store().delete(&key).await?;
            observe::revocation(Mechanism::Session, RevocationScope::Session, 1);
        }
        Ok(())
    }

    /// Gives the session a new ID, keeping its content, and deletes the old ID at once. Call it
    /// on any privilege change (OWASP Session Management Cheat Sheet, "Renew the Session ID
    /// After Any Privilege Level Change"). Does nothing without a session.
    ///
    /// # Errors
    ///
    /// The store failed; the old ID is dead either way.
    pub async fn cycle_id(&self) -> Result<(), SessionError> {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        let Some(old) = current.live.take() else {
            return Ok(());
        };
        current.cookie = CookieAction::Clear;
        self.state.store().delete(&old.key).await?;
        let now = self.state.shared.now();
        let mut record = old.record;
        apply(&mut record.data, &current.changes);
        current.changes.clear();
        record.handle = random_handle();
        record.version = 0;
        record.last_seen_at = now;
        record.expires_at = self.state.shared.rolled_expiry(&record, now);
        self.state.create(&mut current, record, None).await
    }

    async fn signed_in(
        &self,
    ) -> Result<(MutexGuard<'_, Current>, String, String, StoreKey), SessionError> {
        let mut current = self.state.lock().await;
        self.state.ensure_loaded(&mut current).await?;
        let Some(live) = current.live.as_ref() else {
            return Err(SessionError::NotSignedIn);
        };
        let Some(user_id) = live.record.user_id.clone() else {
            return Err(SessionError::NotSignedIn);
        };
        let handle = live.record.handle.clone();
        let key = live.key;
        Ok((current, user_id, handle, key))
    }

    /// The signed-in user's live sessions, oldest first, the current one flagged.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotSignedIn`], store errors.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, SessionError> {
        let (_current, user_id, handle, _) = self.signed_in().await?;
        let records = self.state.store().list_by_user(&user_id).await?;
        Ok(records
            .into_iter()
            .map(|record| SessionInfo {
                current: record.handle == handle,
                handle: record.handle,
                created_at: record.created_at,
                last_seen_at: record.last_seen_at,
                expires_at: record.expires_at.min(record.absolute_expires_at),
                user_agent: record.user_agent,
                persistent: record.persistent,
            })
            .collect())
    }

    /// Ends one of the signed-in user's sessions by its handle; `false` if the user has no
    /// such session. Revoking the current session signs out.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotSignedIn`], store errors.
    pub async fn revoke(&self, handle: &str) -> Result<bool, SessionError> {
        let (mut current, user_id, own_handle, key) = self.signed_in().await?;
        if handle == own_handle {
            current.live = None;
            current.changes.clear();
            current.cookie = CookieAction::Clear;
            self.state.store().delete(&key).await?;
            observe::revocation(Mechanism::Session, RevocationScope::Session, 1);
            return Ok(true);
        }
        let revoked = self
            .state
            .store()
            .delete_by_handle(&user_id, handle)
            .await?;
        if revoked {
            observe::revocation(Mechanism::Session, RevocationScope::Session, 1);
        }
        Ok(revoked)
    }

    /// Ends every other session of the signed-in user ("sign out other devices"); returns how
    /// many ended.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotSignedIn`], store errors.
    pub async fn revoke_others(&self) -> Result<u64, SessionError> {
        let (_current, user_id, _, key) = self.signed_in().await?;
        let revoked = self
            .state
            .store()
            .delete_by_user(&user_id, Some(&key))
            .await?;
        observe::revocation(Mechanism::Session, RevocationScope::User, revoked);
        Ok(revoked)
    }

    /// Ends every session of the signed-in user, this one included, and clears the cookie;
    /// returns how many ended.
    ///
    /// # Errors
    ///
    /// [`SessionError::NotSignedIn`], store errors.
    pub async fn revoke_all(&self) -> Result<u64, SessionError> {
        let (mut current, user_id, _, key) = self.signed_in().await?;
        current.live = None;
        current.changes.clear();
        current.cookie = CookieAction::Clear;
        let deleted = self.state.store().delete_by_user(&user_id, None).await?;
        // Belt and braces for stores whose index missed this key.
        self.state.store().delete(&key).await?;
        observe::revocation(Mechanism::Session, RevocationScope::User, deleted);
        Ok(deleted)
    }

    /// Announces that `user_id` changed (role, password, account deleted): every node drops
    /// its cached copy of the user, so their next request reloads them through the layer's
    /// [`UserLoader`](crate::UserLoader). Without a loader the layer serves the login snapshot
    /// and there is nothing to drop (use [`Session::replace_user`]).
    ///
    /// # Errors
    ///
    /// When the revocation feed could not publish (this node has dropped its copy anyway).
    pub async fn user_changed(&self, user_id: &str) -> Result<(), SessionError> {
        if let Some(loader) = &self.state.shared.loader {
            loader.user_changed(user_id).await?;
        }
        Ok(())
    }

    /// Replaces the user of every live session of `user_id` (any user, not only this
    /// request's) with `user`, and returns how many sessions changed. For a role change: the
    /// user's very next request, on any node sharing the store, sees the new roles, since
    /// authorization must follow the account's current privileges rather than those it had at
    /// login (OWASP Authorization Cheat Sheet, "Validate the permissions on every request").
    ///
    /// Each record's version moves, so a concurrent save of the old record conflicts and
    /// re-applies its own changes on top of the new user instead of undoing it.
    ///
    /// # Errors
    ///
    /// [`SessionError::Serialization`] when `user` does not serialize; store errors (a store
    /// that does not implement [`SessionStore::replace_user`](crate::SessionStore::replace_user)
    /// fails closed with 503).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "axum")] {
    /// use axum::extract::Path;
    /// use portcullis_session::{Session, SessionError};
    ///
    /// // An admin route: make `name` an admin in every session they have.
    /// async fn promote(session: Session, Path(name): Path<String>) -> Result<String, SessionError> {
    ///     let user = serde_json::json!({"user": name, "role": "admin"});
    ///     let changed = session.replace_user(&name, &user).await?;
    ///     Ok(format!("{changed} sessions updated"))
    /// }
    /// # }
    /// ```
    pub async fn replace_user<U: Serialize + ?Sized>(
        &self,
        user_id: &str,
        user: &U,
    ) -> Result<u64, SessionError> {
        let user = UserJson::new(user).map_err(SessionError::Serialization)?;
        Ok(self.state.store().replace_user(user_id, &user).await?)
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for Session {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::from_extensions(&parts.extensions).ok_or_else(|| {
            tracing::error!("the Session extractor ran on a request no SessionLayer saw");
            AuthRejection::misconfigured("no session layer is configured for this route")
        })
    }
}
