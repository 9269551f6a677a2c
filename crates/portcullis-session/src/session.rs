//! The per-request session state machine: [`RequestState`], loaded lazily and at most once per
//! request, shared by the [`Session`](crate::Session) handle (`handle.rs`) and the identity
//! source that lets `CurrentUser<U>` read the same record; and [`Shared`], the layer's settings
//! and store.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use http::HeaderValue;
use portcullis_core::{
    AuthRejection, Identity, IdentityFuture, IdentitySource, Mechanism, SecretToken, StoreKey,
    credentials::CookieAttributes, random_handle,
};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, MutexGuard};

use crate::{
    SessionError,
    config::SessionConfig,
    erased::ErasedStore,
    store::{CreateOutcome, SaveOutcome, SessionLimit, SessionRecord},
};

/// The longest `User-Agent` kept in a session record, in bytes.
const MAX_USER_AGENT: usize = 256;

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
    pub(crate) fn now(&self) -> u64 {
        self.config.clock.unix_seconds()
    }

    pub(crate) fn timeouts(&self, persistent: bool) -> (u64, u64) {
        let (idle, absolute) = if persistent {
            (self.config.remember_idle, self.config.remember_absolute)
        } else {
            (self.config.idle, self.config.absolute)
        };
        (idle.as_secs(), absolute.as_secs())
    }

    /// The idle deadline a request at `now` gives the record, never past the absolute one.
    pub(crate) fn rolled_expiry(&self, record: &SessionRecord, now: u64) -> u64 {
        let (idle, _) = self.timeouts(record.persistent);
        now.saturating_add(idle).min(record.absolute_expires_at)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CookieAction {
    Keep,
    Set,
    Clear,
}

pub(crate) struct Live {
    pub(crate) secret: SecretToken,
    pub(crate) key: StoreKey,
    pub(crate) record: SessionRecord,
    /// Created by this request: its cookie is being set, no touch needed.
    pub(crate) fresh: bool,
}

pub(crate) struct Current {
    pub(crate) loaded: bool,
    /// Boxed: the record is large, and most requests never load one.
    pub(crate) live: Option<Box<Live>>,
    /// This request's changes to the auxiliary data, re-applied on a save conflict.
    pub(crate) changes: BTreeMap<String, Option<Value>>,
    pub(crate) cookie: CookieAction,
}

/// The state of one request's session, shared by the `Session` handle, the identity source
/// and the response future.
pub(crate) struct RequestState {
    pub(crate) shared: Arc<Shared>,
    pub(crate) incoming: Option<SecretToken>,
    pub(crate) cross_site: bool,
    pub(crate) user_agent: Option<HeaderValue>,
    pub(crate) used: AtomicBool,
    pub(crate) current: Mutex<Current>,
}

pub(crate) fn apply(data: &mut Map<String, Value>, changes: &BTreeMap<String, Option<Value>>) {
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
pub(crate) const UPDATE_ATTEMPTS: u32 = 200;

/// A random pause of up to `min(attempt + 1, 8)` milliseconds.
pub(crate) fn backoff(attempt: u32) -> std::time::Duration {
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

    pub(crate) async fn lock(&self) -> MutexGuard<'_, Current> {
        self.used.store(true, Ordering::Release);
        self.current.lock().await
    }

    pub(crate) fn store(&self) -> &dyn ErasedStore {
        &*self.shared.store
    }

    pub(crate) async fn ensure_loaded(&self, current: &mut Current) -> Result<(), SessionError> {
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

    pub(crate) fn user_agent(&self) -> Option<String> {
        let agent = self.user_agent.as_ref()?.to_str().ok()?;
        Some(truncate(agent, MAX_USER_AGENT).to_owned())
    }

    pub(crate) fn new_record(&self, now: u64, persistent: bool) -> SessionRecord {
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
    pub(crate) async fn create(
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
    pub(crate) async fn flush(&self, current: &mut Current) -> Result<(), SessionError> {
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
    pub(crate) async fn save_once(
        &self,
        current: &mut Current,
        now: u64,
    ) -> Result<bool, SessionError> {
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
    pub(crate) async fn touch(&self, current: &mut Current) {
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
