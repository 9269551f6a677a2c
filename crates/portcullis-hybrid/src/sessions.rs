//! [`HybridSessions`]: the one place that logs in, refreshes (rotating the refresh token),
//! logs out and revokes hybrid sessions, on top of a [`RefreshStore`](crate::RefreshStore) and
//! a [`RevocationFeed`](crate::RevocationFeed).

use std::{
    fmt,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use portcullis_core::{
    Identity, Mechanism, SecretToken, SharedClock,
    observe::{self, RefreshOutcome, RevocationScope},
    random_handle,
};
use portcullis_jwt::{TokenIssuer, TokenVerifier};
use serde::Serialize;

use crate::{
    CreateOutcome, HybridError, RefreshRecord, RefreshToken, RevocationList, SessionInfo,
    SessionLimit, TokenPair, access,
    erased::{DynRefreshStore, DynReloadUser, DynRevocationFeed},
    refresh_token::family_hash,
    rotation::{Decision, Timing, decide},
};

/// How often a compare-and-swap lost to a concurrent refresh is retried before giving up.
/// Every retry re-reads the record, and a lost race turns into the grace case, so two or three
/// attempts suffice in practice.
const MAX_ATTEMPTS: usize = 8;
/// Longest `User-Agent` kept in a record.
const MAX_USER_AGENT: usize = 256;

/// The timing and limits of hybrid sessions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) access_ttl: Duration,
    pub(crate) access_jitter: Duration,
    pub(crate) idle_ttl: Duration,
    pub(crate) absolute_ttl: Duration,
    pub(crate) grace: Duration,
    pub(crate) limit: Option<SessionLimit>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(10 * 60),
            access_jitter: Duration::from_secs(30),
            idle_ttl: Duration::from_secs(14 * 24 * 3600),
            absolute_ttl: Duration::from_secs(30 * 24 * 3600),
            grace: Duration::from_secs(5),
            limit: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Box<dyn DynRefreshStore>,
    pub(crate) feed: Box<dyn DynRevocationFeed>,
    pub(crate) reload: Option<Box<dyn DynReloadUser>>,
    pub(crate) issuer: TokenIssuer,
    pub(crate) verifier: TokenVerifier,
    pub(crate) revoked: RevocationList,
    pub(crate) clock: SharedClock,
    pub(crate) settings: Settings,
}

/// Hybrid sessions: login, refresh with rotation and theft detection, logout, revocation.
///
/// One value per application, cheap to clone (an `Arc`). The edge check is
/// [`HybridLayer`](crate::HybridLayer), built from it.
///
/// - **Login** creates a session (a [`RefreshRecord`]) and returns a [`TokenPair`]: an access
///   JWT (`typ: at+jwt`, RFC 9068) carrying `sub`, `sid` and the user, and a refresh token.
/// - **Refresh** rotates the refresh token atomically (compare-and-swap, bounded retries) and
///   mints a new access token. A rotated-out token presented within the grace window gets the
///   current token; after it, the session is revoked (RFC 9700 §4.14.2).
/// - **Logout / revoke** delete the session and publish its id on the revocation feed; every
///   node refuses its access tokens until they could have expired.
///
/// # Examples
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_hybrid::{HybridSessions, InProcessFeed, MemoryRefreshStore};
/// use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
///
/// let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap()).issuer("https://auth.example");
/// let sessions = HybridSessions::builder(issuer, Validation::new().issuer("https://auth.example"))
///     .store(MemoryRefreshStore::new())
///     .feed(InProcessFeed::new())
///     .build()
///     .await?;
/// let pair = sessions.login("alice", &serde_json::json!({"user": "alice"}), None).await?;
/// let refreshed = sessions.refresh(&pair.refresh_token().expose()).await?;
/// assert_eq!(refreshed.session_id(), pair.session_id());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HybridSessions {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for HybridSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridSessions")
            .field("settings", &self.inner.settings)
            .field("revoked", &self.inner.revoked.len())
            .finish_non_exhaustive()
    }
}

impl HybridSessions {
    /// What the edge ([`HybridLayer`](crate::HybridLayer)) needs to check access tokens: the
    /// verifier, this node's revocation list and the clock, and nothing else.
    pub(crate) fn access_check(&self) -> access::AccessCheck {
        access::AccessCheck::new(
            self.inner.verifier.clone(),
            self.inner.revoked.clone(),
            self.inner.clock.clone(),
        )
    }

    /// The node's revocation list (shared with every [`HybridLayer`](crate::HybridLayer)).
    pub fn revocations(&self) -> &RevocationList {
        &self.inner.revoked
    }

    /// The longest an access token lives, jitter aside.
    pub fn access_ttl(&self) -> Duration {
        self.inner.settings.access_ttl
    }

    pub(crate) fn now(&self) -> u64 {
        self.inner.clock.unix_seconds()
    }

    pub(crate) fn now_ms(&self) -> u64 {
        unix_millis(self.inner.clock.now())
    }

    /// Creates a session for a user who just proved who they are, returning its tokens.
    ///
    /// `user_id` is the user's stable id (for listing and logout-all); `user` is what
    /// extractors decode into the application's user type. Keep it small: it rides in every
    /// access token, readable by the client (JWTs are signed, not encrypted).
    ///
    /// With a per-user limit ([`HybridSessionsBuilder::max_sessions_per_user`](crate::HybridSessionsBuilder::max_sessions_per_user)) the store
    /// enforces it atomically: evicted sessions are revoked on every node like a logout.
    ///
    /// # Errors
    ///
    /// [`HybridError::Store`] when the store or the feed fails; [`HybridError::User`] when
    /// `user` does not serialize; [`HybridError::LimitReached`] when the limit refuses new
    /// sessions.
    pub async fn login<U: Serialize + ?Sized>(
        &self,
        user_id: &str,
        user: &U,
        user_agent: Option<&str>,
    ) -> Result<TokenPair, HybridError> {
        let user = serde_json::to_value(user).map_err(HybridError::User)?;
        let now = self.now();
        let settings = &self.inner.settings;
        let secret = SecretToken::generate();
        let absolute_expires_at = now.saturating_add(settings.absolute_ttl.as_secs());
        let record = RefreshRecord {
            session_id: random_handle(),
            user_id: user_id.to_owned(),
            user,
            created_at: now,
            authenticated_at: now,
            refreshed_at: now,
            idle_expires_at: now
                .saturating_add(settings.idle_ttl.as_secs())
                .min(absolute_expires_at),
            absolute_expires_at,
            current_hash: secret.store_key(),
            previous: Vec::new(),
            generation: 0,
            family_hash: family_hash(&secret),
            user_agent: user_agent.map(truncate_user_agent),
        };
        match self.inner.store.create(&record, settings.limit).await? {
            CreateOutcome::LimitReached => return Err(HybridError::LimitReached),
            CreateOutcome::Created { evicted } if !evicted.is_empty() => {
                tracing::info!(
                    evicted = evicted.len(),
                    "per-user session limit: evicted the oldest sessions"
                );
                observe::revocation(
                    Mechanism::Hybrid,
                    RevocationScope::Session,
                    evicted.len() as u64,
                );
                if let Err(error) = self.publish_all(evicted.iter().map(String::as_str)).await {
                    // Fail closed: the evicted sessions' access tokens may still pass at other
                    // nodes, so hand out no tokens; the new session is dropped (best effort) so
                    // a retry finds room.
                    if let Err(error) = self.inner.store.delete(&record.session_id).await {
                        tracing::warn!(%error, "could not drop the session of a failed login");
                    }
                    return Err(error);
                }
            }
            CreateOutcome::Created { .. } => {}
        }
        // The session id is public (it rides in every access token); the secret never is logged.
        observe::login(Mechanism::Hybrid, Some(&record.session_id));
        let refresh = RefreshToken::new(record.session_id.clone(), secret);
        self.pair(&record, refresh, now)
    }

    /// Exchanges a refresh token for a new pair, rotating the refresh token.
    ///
    /// # Errors
    ///
    /// - [`HybridError::InvalidRefreshToken`]: malformed, oversized or unknown secret; nothing
    ///   is revoked, since the `sid` half is public.
    /// - [`HybridError::SessionEnded`]: logged out, revoked or expired (idle or absolute).
    /// - [`HybridError::TokenReuse`]: a rotated-out token after the grace window; the session
    ///   has been revoked (RFC 9700 §4.14.2).
    /// - [`HybridError::UserGone`]: the reload hook found no such user; revoked.
    /// - [`HybridError::Contention`], [`HybridError::Store`]: retry later.
    pub async fn refresh(&self, presented: &str) -> Result<TokenPair, HybridError> {
        let Some(token) = RefreshToken::parse(presented) else {
            observe::refresh(RefreshOutcome::Invalid, None);
            return Err(HybridError::InvalidRefreshToken);
        };
        let session_id = token.session_id();
        let timing = Timing {
            idle_secs: self.inner.settings.idle_ttl.as_secs(),
            grace_secs: self.inner.settings.grace.as_secs(),
        };
        for _ in 0..MAX_ATTEMPTS {
            let Some(record) = self.inner.store.load(session_id).await? else {
                observe::refresh(RefreshOutcome::Expired, Some(session_id));
                return Err(HybridError::SessionEnded);
            };
            let now = self.now();
            match decide(&record, token.secret(), timing, now) {
                Decision::Rotate {
                    record: next,
                    secret,
                } => {
                    let mut next = *next;
                    if let Some(reload) = &self.inner.reload {
                        match reload
                            .reload(next.user_id.clone(), next.user.clone())
                            .await?
                        {
                            Some(user) => next.user = user,
                            None => {
                                self.revoke_quietly(session_id, RevocationScope::Session)
                                    .await;
                                return Err(HybridError::UserGone);
                            }
                        }
                    }
                    if self
                        .inner
                        .store
                        .compare_and_swap(&next, record.generation)
                        .await?
                    {
                        observe::refresh(RefreshOutcome::Rotated, Some(session_id));
                        return self.pair(&next, RefreshToken::new(session_id, secret), now);
                    }
                    // Another refresh won: reload; ours is now a grace-window case.
                }
                Decision::Grace { secret } => {
                    observe::refresh(RefreshOutcome::Grace, Some(session_id));
                    return self.pair(&record, RefreshToken::new(session_id, secret), now);
                }
                Decision::Reuse => {
                    // RFC 9700 §4.14.2: a replayed, invalidated refresh token means the
                    // family is compromised; revoke it so neither party can go on.
                    tracing::warn!(
                        session_id,
                        user_id = %record.user_id,
                        "rotated-out refresh token replayed after the grace window: revoking the session"
                    );
                    observe::refresh(RefreshOutcome::ReuseDetected, Some(session_id));
                    self.revoke_quietly(session_id, RevocationScope::Theft)
                        .await;
                    return Err(HybridError::TokenReuse);
                }
                Decision::Unknown => {
                    observe::refresh(RefreshOutcome::Invalid, Some(session_id));
                    return Err(HybridError::InvalidRefreshToken);
                }
                Decision::Expired => {
                    observe::refresh(RefreshOutcome::Expired, Some(session_id));
                    return Err(HybridError::SessionEnded);
                }
            }
        }
        Err(HybridError::Contention)
    }

    /// Replaces the user of every live session of `user_id` with `user` (a role change), then
    /// refuses the user's access tokens minted until now on every node
    /// ([`HybridSessions::revoke_user_tokens`]): their `user` claim is stale, so the user's next request
    /// is refreshed (transparently with [`CookieTransport::transparent`](crate::CookieTransport),
    /// else by the client after a 401) into tokens carrying the new user. Authorization then
    /// follows the account's current privileges, not those at login (OWASP Authorization Cheat
    /// Sheet). Returns how many sessions were updated.
    ///
    /// Each record is rewritten by compare-and-swap with its generation moved, so a concurrent
    /// refresh of the old record retries on the new one instead of undoing the change.
    ///
    /// # Errors
    ///
    /// [`HybridError::User`] when `user` does not serialize, [`HybridError::Contention`] when
    /// concurrent refreshes keep winning, [`HybridError::Store`] when the store or the feed
    /// fails (this node refuses the old tokens either way).
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn demo(sessions: portcullis_hybrid::HybridSessions) -> Result<(), portcullis_hybrid::HybridError> {
    /// let updated = sessions
    ///     .update_user("alice", &serde_json::json!({"user": "alice", "role": "admin"}))
    ///     .await?;
    /// # let _ = updated;
    /// # Ok(()) }
    /// ```
    pub async fn update_user<U: Serialize + ?Sized>(
        &self,
        user_id: &str,
        user: &U,
    ) -> Result<usize, HybridError> {
        let user = serde_json::to_value(user).map_err(HybridError::User)?;
        let mut updated = 0;
        for info in self.inner.store.list_by_user(user_id).await? {
            let mut attempts = 0;
            while let Some(record) = self.inner.store.load(&info.session_id).await? {
                if record.user_id != user_id {
                    break;
                }
                let mut next = record.clone();
                next.user = user.clone();
                next.generation = record.generation.wrapping_add(1);
                if self
                    .inner
                    .store
                    .compare_and_swap(&next, record.generation)
                    .await?
                {
                    updated += 1;
                    break;
                }
                attempts += 1;
                if attempts == MAX_ATTEMPTS {
                    return Err(HybridError::Contention);
                }
            }
        }
        // Every access token minted until now carries the old user: refused on every node,
        // so the next request refreshes into a token with the new one.
        self.revoke_user_tokens(user_id).await?;
        Ok(updated)
    }

    /// The user's live sessions, oldest first.
    ///
    /// # Errors
    ///
    /// [`HybridError::Store`] when the store fails.
    pub async fn list(&self, user_id: &str) -> Result<Vec<SessionInfo>, HybridError> {
        let records = self.inner.store.list_by_user(user_id).await?;
        Ok(records.iter().map(SessionInfo::from).collect())
    }

    /// The user id of a live session (endpoints whose caller a transparent refresh found: its
    /// identity carries the session, not the `sub`).
    pub(crate) async fn session_user(
        &self,
        session_id: &str,
    ) -> Result<Option<String>, HybridError> {
        let record = self.inner.store.load(session_id).await?;
        Ok(record.map(|record| record.user_id))
    }

    /// Mints the access token for `record` and pairs it with `refresh`.
    fn pair(
        &self,
        record: &RefreshRecord,
        refresh: RefreshToken,
        now: u64,
    ) -> Result<TokenPair, HybridError> {
        // An access token never outlives its session (idle or absolute deadline): once the
        // session is over, nothing it issued is still valid (OWASP Session Management Cheat
        // Sheet, "Session Expiration"; RFC 9700 §4.14.2 ties access to the refresh grant).
        let session_left = Duration::from_secs(record.expires_at().saturating_sub(now).max(1));
        let ttl = self.jittered_ttl().min(session_left);
        let issued = access::mint(&self.inner.issuer, record, ttl, self.now_ms())?;
        let user = serde_json::value::to_raw_value(&record.user).map_err(HybridError::User)?;
        let identity = Identity::from_json(user, Mechanism::Hybrid)
            .with_authenticated_at_unix(record.authenticated_at)
            .with_session_handle(record.session_id.as_str());
        Ok(TokenPair {
            access_token: issued.token,
            refresh_token: refresh,
            expires_in: issued.expires_at.saturating_sub(now),
            issued_at: now,
            access_expires_at: issued.expires_at,
            refresh_expires_at: record.expires_at(),
            user_id: record.user_id.clone(),
            identity,
        })
    }

    /// The access token lifetime minus a random shortening, so clients logged in together do
    /// not all refresh in the same second.
    fn jittered_ttl(&self) -> Duration {
        let settings = &self.inner.settings;
        // Whole seconds: tokens carry whole-second times, and a fraction would be truncated
        // into a full second lost (a 2-second token must not become a 1-second one).
        let jitter = settings
            .access_jitter
            .as_secs()
            .min(settings.access_ttl.as_secs() / 10);
        if jitter == 0 {
            return settings.access_ttl;
        }
        let mut bytes = [0u8; 8];
        if getrandom::fill(&mut bytes).is_err() {
            return settings.access_ttl;
        }
        let shortening = u64::from_le_bytes(bytes) % (jitter + 1);
        settings
            .access_ttl
            .saturating_sub(Duration::from_secs(shortening))
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating far after it).
fn unix_millis(at: std::time::SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn truncate_user_agent(agent: &str) -> String {
    let mut end = agent.len().min(MAX_USER_AGENT);
    while !agent.is_char_boundary(end) {
        end -= 1;
    }
    agent[..end].to_owned()
}
