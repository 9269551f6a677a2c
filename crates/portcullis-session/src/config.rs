//! [`SessionConfig`]: the cookie and lifetime settings of a [`SessionLayer`](crate::SessionLayer),
//! checked once when the layer is built ([`ConfigError`]) so a browser never receives a cookie
//! it would silently drop.

use std::{fmt, sync::Arc, time::Duration};

pub use portcullis_core::credentials::SameSite;
use portcullis_core::{
    CrossSiteCheck, SharedClock, SystemClock,
    credentials::{CookieAttributes, CookieError},
};

use crate::store::SessionLimit;

/// A setting a browser would reject, or a lifetime that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A cookie setting a browser would reject (name, prefix, path, domain, `SameSite`).
    #[error(transparent)]
    Cookie(#[from] CookieError),
    /// A timeout shorter than one second (records keep whole seconds).
    #[error("the {0} must be at least one second")]
    TooShort(&'static str),
    /// A timeout longer than a cookie may live (400 days, RFC 6265bis §5.6.2).
    #[error("the {0} must be at most 400 days")]
    TooLong(&'static str),
    /// The idle timeout exceeds the absolute timeout, so it could never apply.
    #[error("the {0} idle timeout exceeds its absolute timeout")]
    IdleExceedsAbsolute(&'static str),
    /// The touch interval is not shorter than the idle timeout, so sessions would expire
    /// while in use.
    #[error("the touch interval must be shorter than the idle timeout")]
    TouchIntervalTooLong,
    /// A per-user limit of zero sessions.
    #[error("the per-user session limit must be at least 1")]
    ZeroSessionLimit,
    /// The session cookie, name, value and attributes together, would pass the 4096 bytes
    /// browsers keep (RFC 6265 §6.1), so they would drop it without a word.
    #[error("the session cookie would be {0} bytes, over the 4096 bytes browsers keep")]
    CookieTooLarge(usize),
}

/// The largest cookie lifetime browsers honour: 400 days (RFC 6265bis §5.6.2).
const MAX_LIFETIME: Duration = Duration::from_secs(400 * 24 * 3600);

/// Settings of a [`SessionLayer`](crate::SessionLayer). The defaults follow the OWASP Session
/// Management Cheat Sheet: a `__Host-session` cookie (HttpOnly, Secure, SameSite=Lax, Path=/),
/// a browser-session cookie unless the user asks to be remembered, 30 minutes of idle timeout
/// and 12 hours of absolute timeout.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_session::{MemoryStore, SessionConfig, SessionLayer};
///
/// let config = SessionConfig::default()
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .absolute_timeout(Duration::from_secs(8 * 3600));
/// let layer = SessionLayer::new(MemoryStore::new(), config)?;
/// # Ok::<(), portcullis_session::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct SessionConfig {
    pub(crate) cookie_name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) idle: Duration,
    pub(crate) absolute: Duration,
    pub(crate) remember_idle: Duration,
    pub(crate) remember_absolute: Duration,
    pub(crate) touch_interval: Option<Duration>,
    pub(crate) limit: Option<SessionLimit>,
    pub(crate) cross_site: Option<CrossSiteCheck>,
    pub(crate) clock: SharedClock,
    pub(crate) save_retries: u32,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "__Host-session".into(),
            path: "/".into(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            idle: Duration::from_secs(30 * 60),
            absolute: Duration::from_secs(12 * 3600),
            remember_idle: Duration::from_secs(7 * 24 * 3600),
            remember_absolute: Duration::from_secs(30 * 24 * 3600),
            touch_interval: None,
            limit: None,
            cross_site: Some(CrossSiteCheck::new()),
            clock: Arc::new(SystemClock),
            save_retries: 16,
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("cookie_name", &self.cookie_name)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("secure", &self.secure)
            .field("http_only", &self.http_only)
            .field("same_site", &self.same_site)
            .field("idle", &self.idle)
            .field("absolute", &self.absolute)
            .field("remember_idle", &self.remember_idle)
            .field("remember_absolute", &self.remember_absolute)
            .field("touch_interval", &self.effective_touch_interval())
            .field("limit", &self.limit)
            .field("cross_site", &self.cross_site)
            .field("save_retries", &self.save_retries)
            .finish()
    }
}

impl SessionConfig {
    /// The cookie's name (default `__Host-session`). A `__Host-` name requires Secure, Path=/
    /// and no Domain; a `__Secure-` name requires Secure.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default().cookie_name("__Host-id");
    /// ```
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = name.into();
        self
    }

    /// The cookie's `Path` (default `/`).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default()
    ///     .cookie_name("__Secure-session")
    ///     .cookie_path("/app");
    /// ```
    #[must_use]
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: host-only).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default()
    ///     .cookie_name("__Secure-session")
    ///     .cookie_domain("example.com");
    /// ```
    ///
    /// # Security
    ///
    /// A domain cookie is sent to, and can be overwritten by, every subdomain: any of them can
    /// read or plant session IDs (OWASP Session Management Cheat Sheet, "Domain and Path
    /// Attributes"). Keep the host-only default unless subdomains must share sessions.
    #[must_use]
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// The cookie's `SameSite` attribute (default `Lax`).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_session::{SameSite, SessionConfig};
    /// let config = SessionConfig::default().same_site(SameSite::Strict);
    /// ```
    ///
    /// # Security
    ///
    /// `None` sends the cookie on cross-site requests; the cross-site check still refuses
    /// unsafe ones, but safe ones (GET) run as the user.
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Drops the `Secure` attribute so the cookie also travels over plain HTTP. Needs a cookie
    /// name without the `__Host-`/`__Secure-` prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default()
    ///     .cookie_name("session")
    ///     .dangerous_insecure_cookie();
    /// ```
    ///
    /// # Security
    ///
    /// Anyone on the network path can read the session ID from plain HTTP traffic and become
    /// the user (OWASP Session Management Cheat Sheet, "Secure Attribute"). Browsers treat
    /// `http://localhost` as secure, so local development does not need this.
    #[must_use]
    pub fn dangerous_insecure_cookie(mut self) -> Self {
        self.secure = false;
        self
    }

    /// Drops the `HttpOnly` attribute so page scripts can read the cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default().dangerous_script_readable_cookie();
    /// ```
    ///
    /// # Security
    ///
    /// Any cross-site scripting flaw then leaks the session ID (OWASP Session Management Cheat
    /// Sheet, "HttpOnly Attribute").
    #[must_use]
    pub fn dangerous_script_readable_cookie(mut self) -> Self {
        self.http_only = false;
        self
    }

    /// How long a session survives without requests (default 30 minutes). Each request that
    /// uses the session moves the deadline (rolling), at most once per touch interval.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = portcullis_session::SessionConfig::default().idle_timeout(Duration::from_secs(600));
    /// ```
    #[must_use]
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }

    /// How long a session lives at most, however active (default 12 hours).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = portcullis_session::SessionConfig::default().absolute_timeout(Duration::from_secs(8 * 3600));
    /// ```
    #[must_use]
    pub fn absolute_timeout(mut self, absolute: Duration) -> Self {
        self.absolute = absolute;
        self
    }

    /// The idle and absolute timeouts of "remember me" sessions, whose cookie is persistent
    /// (defaults 7 and 30 days).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let day = Duration::from_secs(24 * 3600);
    /// let config = portcullis_session::SessionConfig::default().remember_me_timeouts(3 * day, 14 * day);
    /// ```
    ///
    /// # Security
    ///
    /// A persistent cookie survives the browser being closed, so a shared computer stays
    /// signed in; offer it as an explicit choice at login.
    #[must_use]
    pub fn remember_me_timeouts(mut self, idle: Duration, absolute: Duration) -> Self {
        self.remember_idle = idle;
        self.remember_absolute = absolute;
        self
    }

    /// How far the idle deadline must move before a read-only request writes it to the store
    /// (default a tenth of the idle timeout, between 1 second and 5 minutes). A session may
    /// therefore expire up to this much earlier than the idle timeout after its last request.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let config = portcullis_session::SessionConfig::default().touch_interval(Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn touch_interval(mut self, interval: Duration) -> Self {
        self.touch_interval = Some(interval);
        self
    }

    /// Caps the number of live sessions per signed-in user, evicting the oldest or refusing
    /// the new login (default: no cap).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_session::{LimitPolicy, SessionConfig, SessionLimit};
    /// let config = SessionConfig::default()
    ///     .max_sessions_per_user(SessionLimit { max: 1, policy: LimitPolicy::EvictOldest });
    /// ```
    #[must_use]
    pub fn max_sessions_per_user(mut self, limit: SessionLimit) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Replaces the cross-site check applied to unsafe requests that carry the session cookie
    /// (and to logins), for example to trust a front-end on another origin.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::CrossSiteCheck;
    /// let check = CrossSiteCheck::new().trust_origin("https://app.example.com").unwrap();
    /// let config = portcullis_session::SessionConfig::default().cross_site_check(check);
    /// ```
    #[must_use]
    pub fn cross_site_check(mut self, check: CrossSiteCheck) -> Self {
        self.cross_site = Some(check);
        self
    }

    /// Turns the cross-site check off.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default().dangerous_disable_cross_site_check();
    /// ```
    ///
    /// # Security
    ///
    /// Without it any site can make a signed-in user's browser send authenticated POST, PUT,
    /// PATCH and DELETE requests (OWASP Cross-Site Request Forgery Prevention Cheat Sheet);
    /// only do this when another layer checks CSRF tokens.
    #[must_use]
    pub fn dangerous_disable_cross_site_check(mut self) -> Self {
        self.cross_site = None;
        self
    }

    /// The clock that decides expiry (default the system clock).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// let clock = portcullis_core::ManualClock::new();
    /// let config = portcullis_session::SessionConfig::default().clock(Arc::new(clock));
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How often a save that lost a race with a concurrent request is retried on the fresh
    /// record before the request fails with 503 (default 16).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = portcullis_session::SessionConfig::default().save_retries(4);
    /// ```
    #[must_use]
    pub fn save_retries(mut self, retries: u32) -> Self {
        self.save_retries = retries;
        self
    }

    pub(crate) fn effective_touch_interval(&self) -> Duration {
        self.touch_interval.unwrap_or_else(|| {
            (self.idle / 10).clamp(Duration::from_secs(1), Duration::from_secs(300))
        })
    }

    /// Checks the settings the way a browser would.
    ///
    /// # Errors
    ///
    /// The first setting that is invalid, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.cookie_attributes().validate(&self.cookie_name)?;
        for (what, idle, absolute) in [
            ("session", self.idle, self.absolute),
            ("remember-me", self.remember_idle, self.remember_absolute),
        ] {
            for (which, duration) in [("idle timeout", idle), ("absolute timeout", absolute)] {
                if duration < Duration::from_secs(1) {
                    return Err(ConfigError::TooShort(which));
                }
                if duration > MAX_LIFETIME {
                    return Err(ConfigError::TooLong(which));
                }
            }
            if idle > absolute {
                return Err(ConfigError::IdleExceedsAbsolute(what));
            }
        }
        let touch = self.effective_touch_interval();
        if touch >= self.idle && self.idle > Duration::from_secs(1) {
            return Err(ConfigError::TouchIntervalTooLong);
        }
        if self.limit.is_some_and(|limit| limit.max == 0) {
            return Err(ConfigError::ZeroSessionLimit);
        }
        Ok(())
    }

    /// The cookie's attributes, shared by every `Set-Cookie`.
    pub(crate) fn cookie_attributes(&self) -> CookieAttributes {
        let mut attributes = CookieAttributes::new()
            .path(&self.path)
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site);
        if let Some(domain) = &self.domain {
            attributes = attributes.domain(domain);
        }
        attributes
    }
}

#[cfg(test)]
mod tests;
