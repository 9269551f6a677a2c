//! [`VerifiedToken`]: a token whose signature and claims passed validation.

use std::{borrow::Cow, collections::BTreeMap, fmt, sync::Arc};

use portcullis_core::{Identity, Mechanism, UserJson};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

/// A token whose signature and claims passed validation. Cheap to clone (the claims are
/// shared).
#[derive(Clone)]
pub struct VerifiedToken {
    pub(crate) claims: UserJson,
    pub(crate) subject: Arc<str>,
    pub(crate) expires_at: u64,
    pub(crate) issued_at: Option<u64>,
    pub(crate) authenticated_at: Option<u64>,
}

impl VerifiedToken {
    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The `exp` claim, in seconds since the Unix epoch.
    pub fn expires_at(&self) -> u64 {
        self.expires_at
    }

    /// The `iat` claim, if present.
    pub fn issued_at(&self) -> Option<u64> {
        self.issued_at
    }

    /// One claim decoded into `T`; `None` when absent or of another shape.
    pub fn claim<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let claims: BTreeMap<Cow<'_, str>, &RawValue> =
            serde_json::from_str(self.claims.as_str()).ok()?;
        serde_json::from_str(claims.get(name)?.get()).ok()
    }

    /// All claims: the text of the JSON object, exactly as the token carried it.
    pub fn claims_json(&self) -> &str {
        self.claims.as_str()
    }

    /// What the token's claims occupy in memory, for cache accounting.
    pub(crate) fn approximate_bytes(&self) -> usize {
        self.claims.as_str().len() + self.subject.len()
    }

    /// The `auth_time` claim (when the user last proved who they are), if present.
    pub fn authenticated_at(&self) -> Option<u64> {
        self.authenticated_at
    }

    /// The caller for [`portcullis_core::Authentication`]: the claims object is the user JSON
    /// the application's `U` is decoded from; `auth_time` (or else `iat`) is when they
    /// authenticated.
    ///
    /// # Security
    ///
    /// The `iat` fallback treats every token without `auth_time` as minted at a login, which
    /// holds for an issuer that signs a token only after checking credentials (jwt-api's
    /// `POST /token`). An issuer that re-mints tokens without a new login (a refresh) must
    /// carry the original `auth_time` in them, as the hybrid mechanism does; otherwise a
    /// re-minted token would pass [`RecentlyAuthenticated`](portcullis_core::RecentlyAuthenticated)
    /// as a fresh login.
    pub fn into_identity(self, mechanism: Mechanism) -> Identity {
        let at = self.authenticated_at.or(self.issued_at);
        let identity = Identity::from_user_json(self.claims, mechanism);
        match at {
            // Checked: validation bounds `auth_time` and `iat` by now + leeway, and this adds
            // nothing that could overflow even if it did not.
            Some(seconds) => identity.with_authenticated_at_unix(seconds),
            None => identity,
        }
    }
}

impl fmt::Debug for VerifiedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifiedToken")
            .field("subject", &self.subject)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}
