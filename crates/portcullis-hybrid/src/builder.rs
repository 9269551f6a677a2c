//! [`HybridSessionsBuilder`]: the settings of [`HybridSessions`], validated when built.

use std::{
    fmt,
    sync::{Arc, Weak},
    time::Duration,
};

use portcullis_core::{SharedClock, SystemClock};
use portcullis_jwt::{TokenIssuer, Validation};

use crate::{
    ConfigError, HybridSessions, RefreshStore, ReloadUser, RevocationFeed, RevocationList,
    SessionLimit, access,
    erased::{DynRefreshStore, DynReloadUser, DynRevocationFeed},
    sessions::{Inner, Settings},
};

/// How often a node forgets revocations whose access tokens have all expired.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

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
    /// [`HybridError::LimitReached`](crate::HybridError::LimitReached) (403). `max` must be at least 1.
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
