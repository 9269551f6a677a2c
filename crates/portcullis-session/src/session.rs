//! The per-request session: [`Session`], the handle handlers use for auxiliary data, login,
//! logout and per-user session management, and the identity source that lets `CurrentUser<U>`
//! read the same record. Both share one lazily loaded state, so a request reads the store at
//! most once, and only if something asks.

use std::{
    collections::BTreeMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use http::HeaderValue;
use portcullis_core::{
    AuthRejection, Identity, IdentityFuture, IdentitySource, Mechanism, SecretToken, StoreError,
    StoreKey, UserJson,
    credentials::CookieAttributes,
    observe::{self, RevocationScope},
    random_handle,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    config::SessionConfig,
    store::{CreateOutcome, SaveOutcome, SessionLimit, SessionRecord, SessionStore},
};

/// The longest `User-Agent` kept in a session record, in bytes.
const MAX_USER_AGENT: usize = 256;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// [`SessionStore`] with boxed futures, so the per-request state is not generic over the store
/// and `Session` is one type whatever the backend.
pub(crate) trait ErasedStore: Send + Sync + 'static {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>>;
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>>;
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<SaveOutcome, StoreError>>;
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>>;
    fn list_by_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>>;
    fn delete_by_handle<'a>(
        &'a self,
        user_id: &'a str,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete_by_user<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a StoreKey>,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
    fn replace_user<'a>(
        &'a self,
        user_id: &'a str,
        user: &'a UserJson,
    ) -> BoxFuture<'a, Result<u64, StoreError>>;
}

impl<S: SessionStore> ErasedStore for S {
    fn load<'a>(
        &'a self,
        key: &'a StoreKey,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>, StoreError>> {
        Box::pin(SessionStore::load(self, key))
    }
    fn create<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>> {
        Box::pin(SessionStore::create(self, key, record, limit))
    }
    fn save<'a>(
        &'a self,
        key: &'a StoreKey,
        record: &'a SessionRecord,
        expected_version: u64,
    ) -> BoxFuture<'a, Result<SaveOutcome, StoreError>> {
        Box::pin(SessionStore::save(self, key, record, expected_version))
    }
    fn touch<'a>(
        &'a self,
        key: &'a StoreKey,
        last_seen_at: u64,
        expires_at: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::touch(self, key, last_seen_at, expires_at))
    }
    fn delete<'a>(&'a self, key: &'a StoreKey) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::delete(self, key))
    }
    fn list_by_user<'a>(
        &'a self,
        user_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SessionRecord>, StoreError>> {
        Box::pin(SessionStore::list_by_user(self, user_id))
    }
    fn delete_by_handle<'a>(
        &'a self,
        user_id: &'a str,
        handle: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(SessionStore::delete_by_handle(self, user_id, handle))
    }
    fn delete_by_user<'a>(
        &'a self,
        user_id: &'a str,
        keep: Option<&'a StoreKey>,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(SessionStore::delete_by_user(self, user_id, keep))
    }
    fn replace_user<'a>(
        &'a self,
        user_id: &'a str,
        user: &'a UserJson,
    ) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(SessionStore::replace_user(self, user_id, user))
    }
}

/// What a layer shares with every request: the store and the validated settings.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn ErasedStore>,
    pub(crate) config: SessionConfig,
    pub(crate) attributes: CookieAttributes,
    pub(crate) clear_cookie: HeaderValue,
    pub(crate) touch_secs: u64,
    /// Reads the user from the application instead of the login snapshot.
    pub(crate) loader: Option<crate::UserLoader>,
}

impl Shared {
    fn now(&self) -> u64 {
        self.config.clock.unix_seconds()
    }

    fn timeouts(&self, persistent: bool) -> (u64, u64) {
        let (idle, absolute) = if persistent {
            (self.config.remember_idle, self.config.remember_absolute)
        } else {
            (self.config.idle, self.config.absolute)
        };
        (idle.as_secs(), absolute.as_secs())
    }

    /// The idle deadline a request at `now` gives the record, never past the absolute one.
    fn rolled_expiry(&self, record: &SessionRecord, now: u64) -> u64 {
        let (idle, _) = self.timeouts(record.persistent);
        now.saturating_add(idle).min(record.absolute_expires_at)
    }
}

/// Why a session operation failed. Converts into the matching [`AuthRejection`] (and, with the
/// `axum` feature, into a response), so handlers can use `?`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store could not answer: 503 with `Retry-After`.
    #[error("the session store failed")]
    Store(#[from] StoreError),
    /// A value could not be converted to or from JSON: 500 (a bug in the application).
    #[error("a session value could not be converted to or from JSON")]
    Serialization(#[source] serde_json::Error),
    /// The per-user session limit refused the login: 403.
    #[error("the user already has the maximum number of sessions")]
    LimitReached,
    /// A login from another site (login CSRF): 403.
    #[error("the request came from another site")]
    CrossSite,
    /// The session ended (logout elsewhere, revocation, expiry) while this request used it:
    /// 401. Its changes were not saved.
    #[error("the session ended while this request was using it")]
    Ended,
    /// Concurrent requests kept winning the race to save the session: 503, try again.
    #[error("too many concurrent writes to the session")]
    Contention,
    /// The operation needs a signed-in user: 401.
    #[error("no user is signed in")]
    NotSignedIn,
}

impl From<SessionError> for AuthRejection {
    fn from(error: SessionError) -> Self {
        match error {
            SessionError::Store(error) => error.into(),
            SessionError::Serialization(error) => {
                tracing::error!(%error, "a session value does not fit its type");
                AuthRejection::misconfigured("a session value could not be converted")
            }
            SessionError::LimitReached => {
                AuthRejection::forbidden("the user already has the maximum number of sessions")
            }
            SessionError::CrossSite => {
                AuthRejection::cross_site("the request came from another site")
            }
            SessionError::Ended => AuthRejection::invalid_credentials("the session has ended"),
            SessionError::Contention => {
                AuthRejection::unavailable("the session is busy, try again")
            }
            SessionError::NotSignedIn => AuthRejection::missing_credentials(),
        }
    }
}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for SessionError {
    fn into_response(self) -> axum_core::response::Response {
        AuthRejection::from(self).to_response()
    }
}

/// Options of [`Session::login_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginOptions {
    remember_me: bool,
}

impl LoginOptions {
    /// A persistent ("remember me") cookie with the remember-me timeouts, instead of a cookie
    /// that ends with the browser session.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_session::LoginOptions::default().remember_me(true);
    /// ```
    ///
    /// # Security
    ///
    /// The session survives the browser being closed; offer it as an explicit choice.
    #[must_use]
    pub fn remember_me(mut self, remember: bool) -> Self {
        self.remember_me = remember;
        self
    }
}

/// One of the signed-in user's sessions, as [`Session::sessions`] lists them. Times are Unix
/// seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The public handle, for [`Session::revoke`]; not the secret.
    pub handle: String,
    /// When the session started (the login).
    pub created_at: u64,
    /// When a request last used it (moved by throttled touches).
    pub last_seen_at: u64,
    /// When it expires unless used again.
    pub expires_at: u64,
    /// The `User-Agent` of the login request, truncated.
    pub user_agent: Option<String>,
    /// Whether it has a persistent ("remember me") cookie.
    pub persistent: bool,
    /// Whether it is the session of the current request.
    pub current: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CookieAction {
    Keep,
    Set,
    Clear,
}

struct Live {
    secret: SecretToken,
    key: StoreKey,
    record: SessionRecord,
    /// Created by this request: its cookie is being set, no touch needed.
    fresh: bool,
}

struct Current {
    loaded: bool,
    /// Boxed: the record is large, and most requests never load one.
    live: Option<Box<Live>>,
    /// This request's changes to the auxiliary data, re-applied on a save conflict.
    changes: BTreeMap<String, Option<Value>>,
    cookie: CookieAction,
}

/// The state of one request's session, shared by the `Session` handle, the identity source
/// and the response future.
pub(crate) struct RequestState {
    shared: Arc<Shared>,
    incoming: Option<SecretToken>,
    cross_site: bool,
    user_agent: Option<HeaderValue>,
    used: AtomicBool,
    current: Mutex<Current>,
}

fn apply(data: &mut Map<String, Value>, changes: &BTreeMap<String, Option<Value>>) {
    for (key, change) in changes {
        match change {
            Some(value) => {
                data.insert(key.clone(), value.clone());
            }
            None => {
                data.remove(key);
            }
        }
    }
}

/// How often [`Session::update`] recomputes after losing a race before giving up.
const UPDATE_ATTEMPTS: u32 = 200;

/// A random pause of up to `min(attempt + 1, 8)` milliseconds.
fn backoff(attempt: u32) -> std::time::Duration {
    let mut byte = [0u8; 2];
    // A failed draw only makes the pause predictable, never unsafe.
    let _ = getrandom::fill(&mut byte);
    let max_micros = u64::from(attempt.saturating_add(1).min(8)) * 1_000;
    std::time::Duration::from_micros(u64::from(u16::from_le_bytes(byte)) % max_micros)
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl RequestState {
    pub(crate) fn new(
        shared: Arc<Shared>,
        incoming: Option<SecretToken>,
        cross_site: bool,
        user_agent: Option<HeaderValue>,
    ) -> Self {
        Self {
            shared,
            incoming,
            cross_site,
            user_agent,
            used: AtomicBool::new(false),
            current: Mutex::new(Current {
                loaded: false,
                live: None,
                changes: BTreeMap::new(),
                cookie: CookieAction::Keep,
            }),
        }
    }

    /// Whether [`RequestState::finish`] has anything to do, decided without waiting: the hot
    /// path of a read-only request skips the asynchronous finish (and its allocation).
    /// Whether a handler or extractor touched the session during this request.
    pub(crate) fn was_used(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    pub(crate) fn needs_finish(&self) -> bool {
        if !self.used.load(Ordering::Acquire) {
            return false;
        }
        // Held by a task the handler spawned: let `finish` wait for it.
        let Ok(current) = self.current.try_lock() else {
            return true;
        };
        if !current.changes.is_empty() || current.cookie != CookieAction::Keep {
            return true;
        }
        match &current.live {
            Some(live) if !live.fresh => {
                let now = self.shared.now();
                let expires_at = self.shared.rolled_expiry(&live.record, now);
                expires_at
                    >= live
                        .record
                        .expires_at
                        .saturating_add(self.shared.touch_secs)
            }
            _ => false,
        }
    }

    async fn lock(&self) -> MutexGuard<'_, Current> {
        self.used.store(true, Ordering::Release);
        self.current.lock().await
    }

    fn store(&self) -> &dyn ErasedStore {
        &*self.shared.store
    }

    async fn ensure_loaded(&self, current: &mut Current) -> Result<(), SessionError> {
        if current.loaded {
            return Ok(());
        }
        if let Some(secret) = &self.incoming {
            let key = secret.store_key();
            match self.store().load(&key).await? {
                Some(record) => {
                    let now = self.shared.now();
                    // The store drops expired records, but its clock may lag ours.
                    if record.expires_at <= now || record.absolute_expires_at <= now {
                        current.cookie = CookieAction::Clear;
                    } else {
                        current.live = Some(Box::new(Live {
                            secret: secret.clone(),
                            key,
                            record,
                            fresh: false,
                        }));
                    }
                }
                // Forged, expired or revoked: anonymous, and the stale cookie goes.
                None => current.cookie = CookieAction::Clear,
            }
        }
        current.loaded = true;
        Ok(())
    }

    fn user_agent(&self) -> Option<String> {
        let agent = self.user_agent.as_ref()?.to_str().ok()?;
        Some(truncate(agent, MAX_USER_AGENT).to_owned())
    }

    fn new_record(&self, now: u64, persistent: bool) -> SessionRecord {
        let (idle, absolute) = self.shared.timeouts(persistent);
        SessionRecord {
            handle: random_handle(),
            user_id: None,
            user: None,
            data: Map::new(),
            created_at: now,
            authenticated_at: None,
            last_seen_at: now,
            expires_at: now.saturating_add(idle.min(absolute)),
            absolute_expires_at: now.saturating_add(absolute),
            user_agent: self.user_agent(),
            persistent,
            version: 0,
        }
    }

    /// Writes the record under a new secret; the caller has already deleted the old one.
    async fn create(
        &self,
        current: &mut Current,
        record: SessionRecord,
        limit: Option<SessionLimit>,
    ) -> Result<(), SessionError> {
        let secret = SecretToken::generate();
        let key = secret.store_key();
        match self.store().create(&key, &record, limit).await? {
            CreateOutcome::LimitReached => return Err(SessionError::LimitReached),
            CreateOutcome::Created { evicted } => {
                if !evicted.is_empty() {
                    tracing::info!(
                        evicted = evicted.len(),
                        "per-user session limit: evicted the oldest sessions"
                    );
                }
            }
        }
        current.live = Some(Box::new(Live {
            secret,
            key,
            record,
            fresh: true,
        }));
        current.cookie = CookieAction::Set;
        Ok(())
    }

    /// Saves this request's pending changes: compare-and-set on the version, re-applying the
    /// changed keys to the fresh record after each lost race, so concurrent requests writing
    /// different keys never overwrite each other.
    async fn flush(&self, current: &mut Current) -> Result<(), SessionError> {
        if current.changes.is_empty() {
            return Ok(());
        }
        self.ensure_loaded(current).await?;
        let now = self.shared.now();
        if current.live.is_none() {
            // An anonymous visitor wrote something: this is when their session starts.
            let mut record = self.new_record(now, false);
            apply(&mut record.data, &current.changes);
            current.changes.clear();
            return self.create(current, record, None).await;
        }
        let mut attempts = 0;
        while !self.save_once(current, now).await? {
            attempts += 1;
            if attempts > self.shared.config.save_retries {
                tracing::warn!(
                    attempts,
                    "gave up saving a session after repeated conflicts"
                );
                return Err(SessionError::Contention);
            }
        }
        Ok(())
    }

    /// One compare-and-set of the live record with the pending changes applied: `true` when
    /// saved, `false` when another request won (the fresh record is then loaded, and the
    /// changes stay pending for another try).
    async fn save_once(&self, current: &mut Current, now: u64) -> Result<bool, SessionError> {
        let Some(live) = current.live.as_mut() else {
            return Ok(true);
        };
        let mut record = live.record.clone();
        apply(&mut record.data, &current.changes);
        record.version = live.record.version.wrapping_add(1);
        record.last_seen_at = now;
        record.expires_at = self.shared.rolled_expiry(&record, now);
        let outcome = self
            .store()
            .save(&live.key, &record, live.record.version)
            .await?;
        match outcome {
            SaveOutcome::Saved => {
                live.record = record;
                current.changes.clear();
                Ok(true)
            }
            SaveOutcome::Conflict => match self.store().load(&live.key).await? {
                Some(fresh) => {
                    live.record = fresh;
                    Ok(false)
                }
                None => Err(ended(current)),
            },
            SaveOutcome::Missing => Err(ended(current)),
        }
    }

    /// After the handler: saves pending changes, or moves the idle deadline when it has
    /// drifted by the touch interval, and decides the `Set-Cookie` (sent even when saving
    /// failed, so an ended session's cookie is cleared).
    pub(crate) async fn finish(&self) -> (Option<SetCookie>, Result<(), SessionError>) {
        let mut current = self.current.lock().await;
        let flushed = self.flush(&mut current).await;
        if flushed.is_ok() {
            self.touch(&mut current).await;
        }
        let now = self.shared.now();
        let header = match current.cookie {
            CookieAction::Keep => None,
            CookieAction::Clear => Some(SetCookie {
                value: self.shared.clear_cookie.clone(),
                fresh_secret: false,
            }),
            CookieAction::Set => current.live.as_ref().and_then(|live| {
                let max_age = live
                    .record
                    .persistent
                    .then(|| live.record.absolute_expires_at.saturating_sub(now));
                self.shared
                    .attributes
                    .set_cookie(
                        &self.shared.config.cookie_name,
                        live.secret.expose(),
                        max_age,
                    )
                    .inspect_err(|error| tracing::error!(%error, "cannot write the session cookie"))
                    .ok()
                    .map(|value| SetCookie {
                        value,
                        fresh_secret: true,
                    })
            }),
        };
        (header, flushed)
    }

    /// The throttled touch (OWASP Session Management Cheat Sheet, "Idle Timeout"): a
    /// read-only request writes only when the idle deadline would move by the touch interval.
    async fn touch(&self, current: &mut Current) {
        let Some(live) = current.live.as_mut().filter(|live| !live.fresh) else {
            return;
        };
        let now = self.shared.now();
        let expires_at = self.shared.rolled_expiry(&live.record, now);
        if expires_at
            < live
                .record
                .expires_at
                .saturating_add(self.shared.touch_secs)
        {
            return;
        }
        match self.store().touch(&live.key, now, expires_at).await {
            Ok(true) => {
                live.record.last_seen_at = now;
                live.record.expires_at = expires_at;
            }
            Ok(false) => {
                current.live = None;
                current.cookie = CookieAction::Clear;
            }
            // The request itself succeeded; a missed touch only shortens the idle window.
            Err(error) => tracing::warn!(%error, "could not extend the session"),
        }
    }
}

/// The session vanished under this request (logout elsewhere, revocation, expiry): its
/// changes are dropped rather than resurrecting it, and its cookie goes.
fn ended(current: &mut Current) -> SessionError {
    current.live = None;
    current.changes.clear();
    current.cookie = CookieAction::Clear;
    SessionError::Ended
}

/// A `Set-Cookie` the response must carry.
pub(crate) struct SetCookie {
    pub(crate) value: HeaderValue,
    /// It carries a new secret: the response must not be cached.
    pub(crate) fresh_secret: bool,
}

/// The request state is the identity source the layer registers, so `CurrentUser<U>` and
/// `Session` share one store read (and no extra allocation).
impl IdentitySource for RequestState {
    fn identify(&self) -> IdentityFuture<'_> {
        Box::pin(async move {
            let state = self;
            let mut current = state.lock().await;
            state
                .ensure_loaded(&mut current)
                .await
                .map_err(AuthRejection::from)?;
            let Some(live) = &current.live else {
                return Ok(None);
            };
            let (Some(user_id), Some(snapshot)) = (&live.record.user_id, &live.record.user) else {
                return Ok(None);
            };
            let user = match &state.shared.loader {
                None => snapshot.clone(),
                Some(loader) => match crate::loader::current_user(loader, user_id).await? {
                    Some(user) => user,
                    None => {
                        // The account is gone or disabled: every session of it ends.
                        let user_id = user_id.clone();
                        state
                            .store()
                            .delete_by_user(&user_id, None)
                            .await
                            .map_err(|error| AuthRejection::from(SessionError::from(error)))?;
                        ended(&mut current);
                        return Ok(None);
                    }
                },
            };
            let Some(live) = &current.live else {
                return Ok(None);
            };
            let mut identity = Identity::from_user_json(user, Mechanism::Session)
                .with_session_handle(live.record.handle.as_str());
            if let Some(at) = live.record.authenticated_at {
                identity = identity.with_authenticated_at_unix(at);
            }
            Ok(Some(identity))
        })
    }
}

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
