//! The authenticated caller as a mechanism found it: the user's serialized form plus how and when
//! they authenticated.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::UserJson;

/// Which mechanism authenticated the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mechanism {
    /// An opaque session ID in a cookie, state in a store.
    Session,
    /// A signed bearer token verified without a store.
    Bearer,
    /// A short-lived access token checked at the edge, backed by a refresh session.
    Hybrid,
    /// The testing layer (`testing` feature).
    Testing,
}

/// The authenticated caller.
///
/// Mechanisms differ in how they carry the user (a session record, JWT claims), so an identity
/// keeps the user as JSON and the extractors decode it into the application's own type `U`
/// once per request. Cloning is cheap: the JSON is shared.
#[derive(Clone)]
pub struct Identity {
    user: UserJson,
    mechanism: Mechanism,
    authenticated_at: Option<SystemTime>,
    session_handle: Option<Arc<str>>,
}

impl Identity {
    /// An identity from the user's JSON form, as a store or token carried it.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{Identity, Mechanism};
    /// let raw = serde_json::value::RawValue::from_string(r#"{"user":"alice"}"#.into()).unwrap();
    /// let identity = Identity::from_json(raw, Mechanism::Session);
    /// assert_eq!(identity.user_json(), r#"{"user":"alice"}"#);
    /// ```
    pub fn from_json(user: Box<RawValue>, mechanism: Mechanism) -> Self {
        Self::from_user_json(user.into(), mechanism)
    }

    /// An identity sharing a user a store already holds as [`UserJson`] (no copy).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{Identity, Mechanism, UserJson};
    /// let user = UserJson::from_text(r#"{"user":"alice"}"#).unwrap();
    /// let identity = Identity::from_user_json(user, Mechanism::Session);
    /// assert_eq!(identity.user_json(), r#"{"user":"alice"}"#);
    /// ```
    pub fn from_user_json(user: UserJson, mechanism: Mechanism) -> Self {
        Self {
            user,
            mechanism,
            authenticated_at: None,
            session_handle: None,
        }
    }

    /// An identity from any serializable user.
    ///
    /// # Errors
    ///
    /// Fails when `U`'s `Serialize` implementation fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{Identity, Mechanism};
    /// #[derive(serde::Serialize)]
    /// struct User { user: String }
    /// let identity = Identity::from_user(&User { user: "alice".into() }, Mechanism::Testing).unwrap();
    /// assert_eq!(identity.mechanism(), Mechanism::Testing);
    /// ```
    pub fn from_user<U: Serialize + ?Sized>(
        user: &U,
        mechanism: Mechanism,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self::from_user_json(UserJson::new(user)?, mechanism))
    }

    /// Records when the caller last proved who they are (the `auth_time` of OpenID Connect).
    #[must_use]
    pub fn with_authenticated_at(mut self, at: SystemTime) -> Self {
        self.authenticated_at = Some(at);
        self
    }

    /// Records the authentication time given in seconds since the Unix epoch, as tokens and
    /// stores carry it. A time the platform cannot represent is left out (the caller then
    /// counts as not recently authenticated) rather than overflowing: `auth_time` may come
    /// from a token, and a huge value must not panic the connection task.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{Identity, Mechanism};
    /// let identity = Identity::from_user(&"alice", Mechanism::Testing).unwrap();
    /// assert!(identity.clone().with_authenticated_at_unix(1_700_000_000).authenticated_at().is_some());
    /// assert!(identity.with_authenticated_at_unix(u64::MAX).authenticated_at().is_none());
    /// ```
    #[must_use]
    pub fn with_authenticated_at_unix(self, seconds: u64) -> Self {
        match UNIX_EPOCH.checked_add(Duration::from_secs(seconds)) {
            Some(at) => self.with_authenticated_at(at),
            None => self,
        }
    }

    /// Records the public handle of the session behind this identity (never the secret).
    #[must_use]
    pub fn with_session_handle(mut self, handle: impl Into<Arc<str>>) -> Self {
        self.session_handle = Some(handle.into());
        self
    }

    /// The user as JSON.
    pub fn user_json(&self) -> &str {
        self.user.as_str()
    }

    /// Decodes the user into the application's type.
    ///
    /// # Errors
    ///
    /// Fails when the stored JSON does not fit `U` (for example after `U` changed shape).
    pub fn user<U: serde::de::DeserializeOwned>(&self) -> Result<U, serde_json::Error> {
        self.user.decode()
    }

    /// The mechanism that authenticated the caller.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// When the caller last authenticated with their credentials, if the mechanism knows.
    pub fn authenticated_at(&self) -> Option<SystemTime> {
        self.authenticated_at
    }

    /// The public handle of the caller's session, for mechanisms that have sessions.
    pub fn session_handle(&self) -> Option<&str> {
        self.session_handle.as_deref()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The user JSON is application data, not a secret, but it may hold personal data that
        // has no place in logs; print its size only.
        f.debug_struct("Identity")
            .field("mechanism", &self.mechanism)
            .field("user_json_len", &self.user.as_str().len())
            .field("authenticated_at", &self.authenticated_at)
            .field("session_handle", &self.session_handle)
            .finish()
    }
}
