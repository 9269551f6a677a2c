//! The opaque refresh token a client holds: `<session_id>.<secret>`, where the session id is
//! public (it is the `sid` of access tokens) and the secret is 256 random bits.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis_core::{SecretToken, StoreKey};
use sha2::{Digest, Sha256};

use crate::store::SealedSecret;

/// Longest refresh token accepted, checked before any parsing: a session id of 16 characters,
/// a dot and a 43-character secret, with room to spare for longer session ids.
pub const MAX_REFRESH_TOKEN_LEN: usize = 128;

/// A refresh token: the session it belongs to and the secret that proves possession.
///
/// Prints as `REDACTED`; use [`RefreshToken::expose`] to hand it to the client.
///
/// # Examples
///
/// ```
/// use portcullis_hybrid::RefreshToken;
///
/// let token = RefreshToken::parse("AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
/// assert_eq!(token.session_id(), "AAAAAAAAAAAAAAAA");
/// assert!(RefreshToken::parse("no-dot").is_none());
/// assert_eq!(format!("{token:?}"), "RefreshToken(REDACTED)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    session_id: String,
    secret: SecretToken,
}

impl RefreshToken {
    /// A token of `session_id` carrying `secret`.
    pub fn new(session_id: impl Into<String>, secret: SecretToken) -> Self {
        Self {
            session_id: session_id.into(),
            secret,
        }
    }

    /// Parses a token a client presented; anything oversized or malformed is `None` before any
    /// store is asked.
    pub fn parse(presented: &str) -> Option<Self> {
        if presented.len() > MAX_REFRESH_TOKEN_LEN {
            return None;
        }
        let (session_id, secret) = presented.split_once('.')?;
        if !is_session_id(session_id) {
            return None;
        }
        Some(Self {
            session_id: session_id.to_owned(),
            secret: SecretToken::parse(secret)?,
        })
    }

    /// The public session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The secret half.
    pub fn secret(&self) -> &SecretToken {
        &self.secret
    }

    /// The token as the client must present it.
    ///
    /// # Security
    ///
    /// Whoever holds it can refresh the session: never log it or store it.
    pub fn expose(&self) -> String {
        format!("{}.{}", self.session_id, self.secret.expose())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(REDACTED)")
    }
}

/// Session ids are URL-safe base64 of 8 to 64 characters (ours are 16: 96 random bits).
pub(crate) fn is_session_id(candidate: &str) -> bool {
    (8..=64).contains(&candidate.len())
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Bytes of a refresh secret (256 bits) that are drawn afresh at every rotation. The rest,
/// the *family key*, is drawn once at login and shared by every refresh token of the session.
const ROTATING_BYTES: usize = 16;

/// The raw 32 bytes of a secret.
fn raw(secret: &SecretToken) -> Option<[u8; 32]> {
    URL_SAFE_NO_PAD
        .decode(secret.expose())
        .ok()?
        .try_into()
        .ok()
}

/// SHA-256 over a domain label and the family key of `secret` (its last 128 bits). The record
/// keeps it, so a presented token that is of this session but is neither current nor honoured
/// is known to be a *retired* token however old, and not a guess by someone who only read the
/// `sid` (RFC 9700 §4.14.2: reuse of any invalidated refresh token revokes the family). A store
/// dump yields only this hash: no token, not even a family key.
pub(crate) fn family_hash(secret: &SecretToken) -> Option<StoreKey> {
    let raw = raw(secret)?;
    let mut hasher = Sha256::new();
    hasher.update(b"portcullis-hybrid/family/v1\0");
    hasher.update(&raw[ROTATING_BYTES..]);
    Some(StoreKey::from_bytes(hasher.finalize().into()))
}

/// The secret replacing `presented` at a rotation: 128 fresh random bits (from the OS CSPRNG)
/// and the family key of `presented`. A holder of a retired token knows the family key but
/// cannot guess the 128 fresh bits; anyone else knows neither half.
pub(crate) fn successor_of(presented: &SecretToken) -> SecretToken {
    let fresh = SecretToken::generate();
    let (Some(mut bytes), Some(presented)) = (raw(&fresh), raw(presented)) else {
        return fresh;
    };
    bytes[ROTATING_BYTES..].copy_from_slice(&presented[ROTATING_BYTES..]);
    SecretToken::parse(&URL_SAFE_NO_PAD.encode(bytes)).unwrap_or(fresh)
}

/// The one-time pad that seals a successor: SHA-256 over a domain label and the predecessor,
/// unrelated to the store key (plain SHA-256 of the secret), so the store cannot unseal.
fn pad(predecessor: &SecretToken) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"portcullis-hybrid/successor/v1\0");
    hasher.update(predecessor.expose().as_bytes());
    hasher.finalize().into()
}

/// Seals `successor` so that only a holder of `predecessor` can recover it.
pub(crate) fn seal(successor: &SecretToken, predecessor: &SecretToken) -> Option<SealedSecret> {
    let raw = URL_SAFE_NO_PAD.decode(successor.expose()).ok()?;
    let raw: [u8; 32] = raw.try_into().ok()?;
    Some(SealedSecret(xor(raw, pad(predecessor))))
}

/// Recovers the successor sealed under `predecessor`.
pub(crate) fn unseal(sealed: &SealedSecret, predecessor: &SecretToken) -> Option<SecretToken> {
    let raw = xor(sealed.0, pad(predecessor));
    SecretToken::parse(&URL_SAFE_NO_PAD.encode(raw))
}

/// `a XOR b`, byte by byte.
fn xor(mut a: [u8; 32], b: [u8; 32]) -> [u8; 32] {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let token = RefreshToken::new(portcullis_core::random_handle(), SecretToken::generate());
        assert_eq!(RefreshToken::parse(&token.expose()).as_ref(), Some(&token));
        let secret = SecretToken::generate();
        let bad = [
            String::new(),
            ".".into(),
            secret.expose().to_owned(),
            format!("short.{}", secret.expose()),
            format!("{}.{}", "a".repeat(16), "b".repeat(43)),
            format!("{}.{}x", "a".repeat(16), secret.expose()),
            format!("{}!.{}", "a".repeat(16), secret.expose()),
            format!("{}.{}", "a".repeat(65), secret.expose()),
            "a".repeat(10_000),
        ];
        for candidate in bad {
            assert!(RefreshToken::parse(&candidate).is_none(), "{candidate:.40}");
        }
    }

    #[test]
    fn successors_share_the_family_key_and_nothing_else() {
        let login = SecretToken::generate();
        let next = successor_of(&login);
        let after = successor_of(&next);
        assert_eq!(family_hash(&login), family_hash(&next));
        assert_eq!(family_hash(&login), family_hash(&after));
        assert_ne!(family_hash(&login), family_hash(&SecretToken::generate()));
        assert_ne!(login, next);
        assert_ne!(next, after);
        assert_ne!(login.store_key(), next.store_key());
        // The family hash is not the store key of anything.
        assert_ne!(family_hash(&login), Some(login.store_key()));
    }

    #[test]
    fn sealing_needs_the_predecessor() {
        let (old, new) = (SecretToken::generate(), SecretToken::generate());
        let sealed = seal(&new, &old).unwrap();
        assert_eq!(unseal(&sealed, &old), Some(new.clone()));
        assert_ne!(unseal(&sealed, &SecretToken::generate()), Some(new));
        assert_ne!(sealed.as_bytes(), old.store_key().as_bytes());
    }
}
