//! [`HybridSessions`]: the one place that logs in, refreshes (rotating the refresh token),
//! logs out and revokes hybrid sessions, on top of a [`RefreshStore`] and a [`RevocationFeed`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, Weak},
    time::{Duration, UNIX_EPOCH},
};

use portcullis_core::{
    AuthRejection, Identity, Mechanism, SecretToken, SharedClock, StoreError, SystemClock,
    observe::{self, RefreshOutcome, RevocationScope},
    random_handle,
};
use portcullis_jwt::{IssueError, TokenIssuer, TokenVerifier, Validation};
use serde::Serialize;
use serde_json::Value;

use crate::{
    ConfigError, CreateOutcome, RefreshRecord, RefreshStore, RefreshToken, Revocation,
    RevocationFeed, RevocationList, SessionLimit, UserRevocation, access,
    refresh_token::family_hash,
    rotation::{Decision, Timing, decide},
};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How often a compare-and-swap lost to a concurrent refresh is retried before giving up.
/// Every retry re-reads the record, and a lost race turns into the grace case, so two or three
/// attempts suffice in practice.
const MAX_ATTEMPTS: usize = 8;
/// Longest `User-Agent` kept in a record.
const MAX_USER_AGENT: usize = 256;
/// How often a node forgets revocations whose access tokens have all expired.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

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

// Object-safe mirrors of the store traits, so `HybridSessions` has no type parameters and the
// backend can be chosen at run time (memory or Redis, from configuration).
trait DynRefreshStore: Send + Sync {
    fn create<'a>(
        &'a self,
        record: &'a RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>>;
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>>;
    fn compare_and_swap<'a>(
        &'a self,
        record: &'a RefreshRecord,
        expected: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    fn delete<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>>;
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>>;
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>>;
    fn purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>>;
}

impl<T: RefreshStore> DynRefreshStore for T {
    fn create<'a>(
        &'a self,
        record: &'a RefreshRecord,
        limit: Option<SessionLimit>,
    ) -> BoxFuture<'a, Result<CreateOutcome, StoreError>> {
        Box::pin(RefreshStore::create(self, record, limit))
    }
    fn load<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::load(self, id))
    }
    fn compare_and_swap<'a>(
        &'a self,
        record: &'a RefreshRecord,
        expected: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(RefreshStore::compare_and_swap(self, record, expected))
    }
    fn delete<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::delete(self, id))
    }
    fn list_by_user<'a>(
        &'a self,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::list_by_user(self, user))
    }
    fn delete_by_user<'a>(
        &'a self,
        user: &'a str,
        keep: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<RefreshRecord>, StoreError>> {
        Box::pin(RefreshStore::delete_by_user(self, user, keep))
    }
    fn purge_expired(&self) -> BoxFuture<'_, Result<usize, StoreError>> {
        Box::pin(RefreshStore::purge_expired(self))
    }
}

trait DynRevocationFeed: Send + Sync {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>>;
    fn publish_user<'a>(
        &'a self,
        revocation: &'a UserRevocation,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn subscribe(&self, list: RevocationList) -> BoxFuture<'_, Result<(), StoreError>>;
}

impl<T: RevocationFeed> DynRevocationFeed for T {
    fn publish<'a>(&'a self, revocation: &'a Revocation) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(RevocationFeed::publish(self, revocation))
    }
    fn publish_user<'a>(
        &'a self,
        revocation: &'a UserRevocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(RevocationFeed::publish_user(self, revocation))
    }
    fn subscribe(&self, list: RevocationList) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(RevocationFeed::subscribe(self, list))
    }
}

trait DynReloadUser: Send + Sync {
    fn reload(
        &self,
        user_id: String,
        user: Value,
    ) -> BoxFuture<'_, Result<Option<Value>, StoreError>>;
}

impl<T: ReloadUser> DynReloadUser for T {
    fn reload(
        &self,
        user_id: String,
        user: Value,
    ) -> BoxFuture<'_, Result<Option<Value>, StoreError>> {
        Box::pin(ReloadUser::reload(self, user_id, user))
    }
}

/// Why a login, refresh or logout failed. Converts into the matching [`AuthRejection`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HybridError {
    /// The refresh token is malformed, oversized, or not one this session ever had (401,
    /// nothing revoked).
    #[error("the refresh token is invalid")]
    InvalidRefreshToken,
    /// The session does not exist: logged out, revoked or expired (401).
    #[error("the session has ended")]
    SessionEnded,
    /// A rotated-out refresh token was presented after the grace window; the session has been
    /// revoked (401).
    #[error("the refresh token was already used; the session has been revoked")]
    TokenReuse,
    /// The reload hook found no such user any more; the session has been revoked (401).
    #[error("the user no longer exists")]
    UserGone,
    /// Too many concurrent refreshes of one session (503, retry).
    #[error("too many concurrent refreshes of this session")]
    Contention,
    /// The store or the feed failed (503).
    #[error("the session store failed")]
    Store(#[from] StoreError),
    /// Minting the access token failed (500).
    #[error("could not issue the access token")]
    Issue(#[from] IssueError),
    /// The user does not serialize to JSON (500).
    #[error("the user does not serialize to JSON")]
    User(#[source] serde_json::Error),
    /// A cookie would pass the 4096 bytes browsers keep, which they drop without a word: the
    /// access token's user claims are too large for the cookie transport (400, saying so).
    #[error(
        "the {cookie} cookie would be {bytes} bytes, over the {max} bytes browsers keep",
        max = crate::MAX_COOKIE_BYTES
    )]
    CookieTooLarge {
        /// The cookie's name.
        cookie: String,
        /// Its size: name, value and attributes.
        bytes: usize,
    },
    /// The per-user session limit ([`HybridSessionsBuilder::max_sessions_per_user`] with
    /// [`LimitPolicy::RefuseNew`](crate::LimitPolicy::RefuseNew)) refused the login (403).
    #[error("the user already has the maximum number of sessions")]
    LimitReached,
}

impl From<HybridError> for AuthRejection {
    fn from(error: HybridError) -> Self {
        match error {
            HybridError::InvalidRefreshToken
            | HybridError::SessionEnded
            | HybridError::TokenReuse
            | HybridError::UserGone => AuthRejection::invalid_credentials(match error {
                HybridError::TokenReuse => "the refresh token was already used; sign in again",
                HybridError::InvalidRefreshToken => "the refresh token is invalid",
                _ => "the session has ended; sign in again",
            }),
            HybridError::Contention => {
                AuthRejection::unavailable("too many concurrent refreshes; retry")
                    .with_retry_after(1)
            }
            HybridError::Store(error) => error.into(),
            HybridError::Issue(error) => {
                tracing::error!(%error, "could not issue an access token");
                AuthRejection::misconfigured("could not issue the access token")
            }
            HybridError::User(error) => {
                tracing::error!(%error, "the user does not serialize");
                AuthRejection::misconfigured("could not serialize the user")
            }
            error @ HybridError::CookieTooLarge { .. } => {
                tracing::warn!(%error, "login refused: the tokens do not fit in cookies");
                AuthRejection::invalid_request(format!(
                    "{error}: the user claims are too large for the cookie transport; \
                     use the bearer transport or a smaller user"
                ))
            }
            HybridError::LimitReached => {
                AuthRejection::forbidden("the user already has the maximum number of sessions")
            }
        }
    }
}

/// What a login or refresh hands the client: an access token and the refresh token.
#[derive(Clone)]
pub struct TokenPair {
    access_token: String,
    refresh_token: RefreshToken,
    expires_in: u64,
    issued_at: u64,
    access_expires_at: u64,
    refresh_expires_at: u64,
    user_id: String,
    identity: Identity,
}

impl TokenPair {
    /// The access JWT (`typ: at+jwt`).
    ///
    /// # Security
    ///
    /// A bearer credential: never log it.
    pub fn access_token(&self) -> &str {
        &self.access_token
    }

    /// The refresh token.
    pub fn refresh_token(&self) -> &RefreshToken {
        &self.refresh_token
    }

    /// The session id (`sid`).
    pub fn session_id(&self) -> &str {
        self.refresh_token.session_id()
    }

    /// The user's id (`sub`).
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// Seconds until the access token expires.
    pub fn expires_in(&self) -> u64 {
        self.expires_in
    }

    /// When the pair was issued (Unix seconds, by the sessions' clock).
    pub fn issued_at(&self) -> u64 {
        self.issued_at
    }

    /// When the access token expires (Unix seconds).
    pub fn access_expires_at(&self) -> u64 {
        self.access_expires_at
    }

    /// When the session expires unless refreshed (Unix seconds): the idle deadline, capped by
    /// the absolute lifetime.
    pub fn refresh_expires_at(&self) -> u64 {
        self.refresh_expires_at
    }

    /// The caller these tokens authenticate.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The bearer-transport body: `{"access_token", "refresh_token", "token_type": "Bearer",
    /// "expires_in"}` (RFC 6749 §5.1).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "access_token": self.access_token,
            "refresh_token": self.refresh_token.expose(),
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        })
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"REDACTED")
            .field("refresh_token", &self.refresh_token)
            .field("session_id", &self.session_id())
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// A live session as listings show it: no secret in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    /// The session id (`sid`), usable with [`HybridSessions::revoke`].
    pub session_id: String,
    /// When the session was created (Unix seconds).
    pub created_at: u64,
    /// When it was last refreshed (Unix seconds).
    pub refreshed_at: u64,
    /// When it expires unless refreshed (Unix seconds).
    pub expires_at: u64,
    /// The `User-Agent` at login.
    pub user_agent: Option<String>,
}

impl From<&RefreshRecord> for SessionInfo {
    fn from(record: &RefreshRecord) -> Self {
        Self {
            session_id: record.session_id.clone(),
            created_at: record.created_at,
            refreshed_at: record.refreshed_at,
            expires_at: record.expires_at(),
            user_agent: record.user_agent.clone(),
        }
    }
}

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
    store: Box<dyn DynRefreshStore>,
    feed: Box<dyn DynRevocationFeed>,
    reload: Option<Box<dyn DynReloadUser>>,
    issuer: TokenIssuer,
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

/// Builds [`HybridSessions`]; see [`HybridSessions::builder`].
#[must_use]
pub struct HybridSessionsBuilder {
    issuer: TokenIssuer,
    validation: Validation,
    key_set: Option<portcullis_jwt::KeySet>,
    store: Option<Box<dyn DynRefreshStore>>,
    feed: Option<Box<dyn DynRevocationFeed>>,
    reload: Option<Box<dyn DynReloadUser>>,
    clock: SharedClock,
    settings: Settings,
    leeway: Option<Duration>,
}

impl fmt::Debug for HybridSessionsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HybridSessionsBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl HybridSessions {
    /// Starts building: `issuer` mints access tokens; `validation` (issuer, audience, leeway)
    /// checks them at the edge. The builder adds `typ: at+jwt` and a required `sid` to it, so
    /// no other kind of JWT from the same issuer passes as an access token (RFC 9068 §4).
    pub fn builder(issuer: TokenIssuer, validation: Validation) -> HybridSessionsBuilder {
        HybridSessionsBuilder {
            issuer,
            validation,
            key_set: None,
            store: None,
            feed: None,
            reload: None,
            clock: Arc::new(SystemClock),
            settings: Settings::default(),
            leeway: None,
        }
    }

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

    fn now(&self) -> u64 {
        self.inner.clock.unix_seconds()
    }

    fn now_ms(&self) -> u64 {
        unix_millis(self.inner.clock.now())
    }

    /// Creates a session for a user who just proved who they are, returning its tokens.
    ///
    /// `user_id` is the user's stable id (for listing and logout-all); `user` is what
    /// extractors decode into the application's user type. Keep it small: it rides in every
    /// access token, readable by the client (JWTs are signed, not encrypted).
    ///
    /// With a per-user limit ([`HybridSessionsBuilder::max_sessions_per_user`]) the store
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
    async fn end_session(&self, session_id: &str) -> Result<bool, HybridError> {
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
    async fn publish_all<'a>(
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
    /// as they are now (re-read by the [`ReloadUser`] hook, if set). Use it when a change to
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

    /// Revokes, logging a failure instead of returning it (theft, deleted user: the refusal
    /// stands whatever the store says).
    async fn revoke_quietly(&self, session_id: &str, scope: RevocationScope) {
        if let Err(error) = self.end_session(session_id).await {
            tracing::error!(%error, session_id, "could not fully revoke the session");
        }
        observe::revocation(Mechanism::Hybrid, scope, 1);
    }

    /// The revocation of `session_id`, in force until the longest access token of the session
    /// could have expired.
    fn revocation(&self, session_id: &str) -> Revocation {
        Revocation {
            session_id: session_id.to_owned(),
            until: self.revocation_deadline(),
        }
    }

    /// When an access token issued now could have expired at the latest: the access TTL, plus
    /// the leeway the edge's own verifier allows past `exp` (one setting, so the two cannot
    /// disagree), plus a second for rounding.
    fn revocation_deadline(&self) -> u64 {
        let settings = &self.inner.settings;
        self.now()
            .saturating_add(settings.access_ttl.as_secs())
            .saturating_add(self.inner.verifier.validation().leeway_duration().as_secs())
            .saturating_add(1)
    }

    /// Lists the session locally at once, then tells the other nodes.
    async fn publish(&self, session_id: &str) -> Result<(), HybridError> {
        let revocation = self.revocation(session_id);
        self.inner.revoked.purge_expired(self.now());
        self.inner.revoked.insert(&revocation);
        self.inner.feed.publish(&revocation).await?;
        Ok(())
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

impl HybridSessionsBuilder {
    /// The store of sessions (required): [`MemoryRefreshStore`](crate::MemoryRefreshStore) for
    /// one node, a shared store (Redis) for several.
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_hybrid::{HybridSessions, MemoryRefreshStore};
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new()).store(MemoryRefreshStore::new());
    /// ```
    pub fn store(mut self, store: impl RefreshStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The revocation feed (required): [`InProcessFeed`](crate::InProcessFeed) for one node, a
    /// shared feed (Redis) for several.
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_hybrid::{HybridSessions, InProcessFeed};
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new()).feed(InProcessFeed::new());
    /// ```
    pub fn feed(mut self, feed: impl RevocationFeed) -> Self {
        self.feed = Some(Box::new(feed));
        self
    }

    /// Verifies access tokens against `key_set` instead of the issuer's own keys (to keep
    /// accepting tokens signed with a key being rotated out, say).
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let keys = issuer.key_set();
    /// let builder = HybridSessions::builder(issuer, Validation::new()).key_set(keys);
    /// ```
    pub fn key_set(mut self, key_set: portcullis_jwt::KeySet) -> Self {
        self.key_set = Some(key_set);
        self
    }

    /// Re-reads the user at every refresh (see [`ReloadUser`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .reload_user(|_id: String, stored: serde_json::Value| async move {
    ///         Ok::<_, portcullis_core::StoreError>(Some(stored))
    ///     });
    /// ```
    pub fn reload_user(mut self, reload: impl ReloadUser) -> Self {
        self.reload = Some(Box::new(reload));
        self
    }

    /// The clock for expiry and token times (tests pass a
    /// [`ManualClock`](portcullis_core::ManualClock)). Also given to the verifier.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let clock = Arc::new(portcullis_core::ManualClock::new());
    /// let builder = HybridSessions::builder(issuer, Validation::new()).clock(clock);
    /// ```
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Access token lifetime; default 10 minutes. Short, since an access token outlives a
    /// password change until it expires unless its session is revoked.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .access_ttl(Duration::from_secs(300));
    /// ```
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.settings.access_ttl = ttl;
        self
    }

    /// The largest random shortening of each access token's lifetime; default 30 seconds,
    /// never more than a tenth of the lifetime.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .access_jitter(Duration::ZERO);
    /// ```
    pub fn access_jitter(mut self, jitter: Duration) -> Self {
        self.settings.access_jitter = jitter;
        self
    }

    /// How long a session lives without a refresh (idle expiry); default 14 days.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .refresh_ttl(Duration::from_secs(24 * 3600));
    /// ```
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.settings.idle_ttl = ttl;
        self
    }

    /// The absolute lifetime of a session, which refreshes never extend; default 30 days
    /// (OWASP Session Management Cheat Sheet, "Absolute Timeout").
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .absolute_ttl(Duration::from_secs(7 * 24 * 3600));
    /// ```
    pub fn absolute_ttl(mut self, ttl: Duration) -> Self {
        self.settings.absolute_ttl = ttl;
        self
    }

    /// How long a rotated-out refresh token is still honoured (two tabs, a retry after a lost
    /// response); default 5 seconds, at most 60. Zero disables it.
    ///
    /// # Security
    ///
    /// Within the window, whoever replays a rotated-out token gets the current one, so a thief
    /// racing the victim inside it is not detected (RFC 9700 §4.14.2 trade-off). Keep it short.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .grace_window(Duration::from_secs(2));
    /// ```
    pub fn grace_window(mut self, grace: Duration) -> Self {
        self.settings.grace = grace;
        self
    }

    /// The clock skew the edge allows past `exp` (and `nbf`, `iat`, `auth_time`): it sets the
    /// leeway of the edge's [`Validation`], and revocations are kept for the access TTL plus
    /// this leeway, so the two cannot disagree. Without it, the `Validation`'s leeway (30
    /// seconds unless set) is used for both. At most 5 minutes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use portcullis_hybrid::HybridSessions;
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .leeway(Duration::ZERO);
    /// ```
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Caps the number of live sessions per user, enforced atomically by the store at login
    /// (default: no cap), as [`SessionConfig::max_sessions_per_user`] does for session cookies.
    /// [`LimitPolicy::EvictOldest`](crate::LimitPolicy::EvictOldest) ends the oldest sessions
    /// to make room and revokes their access tokens on every node, like a logout;
    /// [`LimitPolicy::RefuseNew`](crate::LimitPolicy::RefuseNew) refuses the login with
    /// [`HybridError::LimitReached`] (403). `max` must be at least 1.
    ///
    /// [`SessionConfig::max_sessions_per_user`]: https://docs.rs/portcullis-session/latest/portcullis_session/struct.SessionConfig.html#method.max_sessions_per_user
    ///
    /// # Examples
    ///
    /// ```
    /// # use portcullis_hybrid::{HybridSessions, LimitPolicy, SessionLimit};
    /// # use portcullis_jwt::{SigningKey, TokenIssuer, Validation};
    /// # let issuer = TokenIssuer::new(SigningKey::generate(portcullis_jwt::Algorithm::HS256).unwrap());
    /// let builder = HybridSessions::builder(issuer, Validation::new())
    ///     .max_sessions_per_user(SessionLimit { max: 3, policy: LimitPolicy::EvictOldest });
    /// ```
    pub fn max_sessions_per_user(mut self, limit: SessionLimit) -> Self {
        self.settings.limit = Some(limit);
        self
    }

    /// Validates the settings, subscribes this node's revocation list to the feed, and starts
    /// a background task (on the current Tokio runtime, if any) that every minute forgets
    /// revocations whose access tokens have expired and purges expired sessions from the
    /// store ([`RefreshStore::purge_expired`]).
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for a missing store or feed, out-of-range durations, or a feed that
    /// cannot be joined.
    pub async fn build(self) -> Result<HybridSessions, ConfigError> {
        let settings = self.settings;
        if settings.access_ttl < Duration::from_secs(1)
            || settings.access_ttl > Duration::from_secs(24 * 3600)
        {
            return Err(ConfigError::AccessTtlOutOfRange(settings.access_ttl));
        }
        if settings.idle_ttl.as_secs() == 0 {
            return Err(ConfigError::TooShort("refresh_ttl"));
        }
        if settings.absolute_ttl.as_secs() == 0 {
            return Err(ConfigError::TooShort("absolute_ttl"));
        }
        if settings.idle_ttl > settings.absolute_ttl {
            return Err(ConfigError::IdleExceedsAbsolute);
        }
        if settings.grace > Duration::from_secs(60) {
            return Err(ConfigError::GraceWindowTooLong(settings.grace));
        }
        let mut validation = self.validation;
        if let Some(leeway) = self.leeway {
            if leeway > portcullis_jwt::MAX_LEEWAY {
                return Err(ConfigError::LeewayTooLong(leeway));
            }
            validation = validation.leeway(leeway);
        }
        if settings.limit.is_some_and(|limit| limit.max == 0) {
            return Err(ConfigError::ZeroSessionLimit);
        }
        let store = self.store.ok_or(ConfigError::MissingStore)?;
        let feed = self.feed.ok_or(ConfigError::MissingFeed)?;
        let key_set = self.key_set.unwrap_or_else(|| self.issuer.key_set());
        let verifier = access::verifier(key_set, validation, self.clock.clone());
        let issuer = self.issuer.with_clock(self.clock.clone());
        let revoked = RevocationList::new();
        feed.subscribe(revoked.clone())
            .await
            .map_err(ConfigError::Feed)?;
        let inner = Arc::new(Inner {
            store,
            feed,
            reload: self.reload,
            issuer,
            verifier,
            revoked,
            clock: self.clock,
            settings,
        });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(purge_expired(Arc::downgrade(&inner)));
        }
        Ok(HybridSessions { inner })
    }
}

/// Every minute, until the sessions are dropped: forgets expired revocations and has the store
/// free expired records (the memory store would otherwise keep abandoned sessions forever).
async fn purge_expired(inner: Weak<Inner>) {
    let mut interval = tokio::time::interval(PURGE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.revoked.purge_expired(inner.clock.unix_seconds());
        match inner.store.purge_expired().await {
            Ok(0) => {}
            Ok(freed) => tracing::debug!(freed, "purged expired hybrid sessions"),
            Err(error) => tracing::warn!(%error, "could not purge expired hybrid sessions"),
        }
    }
}
