//! Secrets that authenticate a caller (session IDs, refresh tokens) and the store keys derived
//! from them.
//!
//! OWASP Session Management Cheat Sheet, "Session ID Entropy": at least 64 bits of entropy; we
//! use 256 bits from the OS CSPRNG, encoded as unpadded URL-safe base64 (43 characters). Stores
//! are keyed by the SHA-256 of the secret, so a dump of the store grants no sessions, and
//! secrets are compared in constant time.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const SECRET_BYTES: usize = 32;
/// Length of an encoded secret: 32 bytes in unpadded base64.
const SECRET_CHARS: usize = 43;

/// A bearer secret: whoever holds it is the caller. Prints as `REDACTED`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// A new secret of 256 bits from the operating system's CSPRNG.
    ///
    /// # Panics
    ///
    /// When the operating system cannot provide randomness, which leaves no safe way to go on.
    ///
    /// # Examples
    ///
    /// ```
    /// let secret = portcullis_core::SecretToken::generate();
    /// assert_eq!(secret.expose().len(), 43);
    /// assert_eq!(format!("{secret:?}"), "SecretToken(REDACTED)");
    /// ```
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parses a secret a client presented. Anything but exactly 43 canonical URL-safe base64
    /// characters is refused before any store is asked.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::SecretToken;
    /// let secret = SecretToken::generate();
    /// assert_eq!(SecretToken::parse(secret.expose()), Some(secret));
    /// assert_eq!(SecretToken::parse("short"), None);
    /// ```
    pub fn parse(encoded: &str) -> Option<Self> {
        if encoded.len() != SECRET_CHARS {
            return None;
        }
        // Decoding also rejects non-canonical trailing bits, so one secret has one spelling.
        let decoded = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        (decoded.len() == SECRET_BYTES).then(|| Self(encoded.to_owned()))
    }

    /// The secret itself, to put in a cookie or a response body.
    ///
    /// # Security
    ///
    /// Never log it or store it: store [`SecretToken::store_key`] instead.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key under which a store keeps this secret's record: its SHA-256.
    pub fn store_key(&self) -> StoreKey {
        StoreKey(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(REDACTED)")
    }
}

/// The SHA-256 of a secret: what stores are keyed by. Compares in constant time.
#[derive(Clone, Copy, Eq)]
pub struct StoreKey([u8; 32]);

impl StoreKey {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from a raw digest, as read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The digest as lowercase hex, for stores keyed by strings.
    pub fn to_hex(&self) -> String {
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            for nibble in [byte >> 4, byte & 0xf] {
                // A nibble is always a hex digit; `from_digit` writes lowercase.
                hex.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
            }
        }
        hex
    }

    /// Parses lowercase or uppercase hex.
    pub fn from_hex(hex: &str) -> Option<Self> {
        // `u8::from_str_radix` also takes a leading `+` ("+f" is 15): check the digits first,
        // so one key has one spelling.
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let text = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(text, 16).ok()?;
        }
        Some(Self(bytes))
    }
}

impl serde::Serialize for StoreKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> serde::Deserialize<'de> for StoreKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::from_hex(&hex).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

impl PartialEq for StoreKey {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl std::hash::Hash for StoreKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines and grants nothing.
        write!(f, "StoreKey({}…)", &self.to_hex()[..8])
    }
}

/// A public identifier for a session, safe to list and send to the client: 96 random bits,
/// unrelated to the secret, so knowing it grants nothing.
///
/// # Examples
///
/// ```
/// let handle = portcullis_core::random_handle();
/// assert_eq!(handle.len(), 16);
/// ```
pub fn random_handle() -> String {
    let mut bytes = [0u8; 12];
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two byte strings in time that depends only on their lengths.
///
/// Eight bytes at a time: the differences are OR-ed into one word with no branch on the data,
/// and only that word goes through `subtle`'s constant-time check (per-byte `ct_eq` cost the
/// verified-token cache's hit path 20 instructions a byte; a bearer token is 200-400 bytes).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = a_words
        .remainder()
        .iter()
        .zip(b_words.remainder())
        .fold(0u64, |acc, (x, y)| acc | u64::from(x ^ y));
    let difference = a_words.zip(b_words).fold(tail, |acc, (x, y)| {
        acc | (u64::from_ne_bytes(word(x)) ^ u64::from_ne_bytes(word(y)))
    });
    bool::from(std::hint::black_box(difference).ct_eq(&0))
}

/// An 8-byte chunk as an array (`chunks_exact(8)` yields only those).
fn word(chunk: &[u8]) -> [u8; 8] {
    chunk.try_into().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_agrees_with_eq_at_every_length_and_position() {
        for len in 0..40 {
            let a: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            assert!(constant_time_eq(&a, &a.clone()));
            for at in 0..len {
                for bit in [1u8, 0x80] {
                    let mut b = a.clone();
                    b[at] ^= bit;
                    assert!(!constant_time_eq(&a, &b), "len {len}, byte {at}");
                }
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!constant_time_eq(&a, &longer));
        }
    }

    #[test]
    fn generated_secrets_are_distinct_and_parse_back() {
        let secrets: Vec<_> = (0..100).map(|_| SecretToken::generate()).collect();
        for (i, secret) in secrets.iter().enumerate() {
            assert_eq!(SecretToken::parse(secret.expose()).as_ref(), Some(secret));
            assert!(secrets[i + 1..].iter().all(|other| other != secret));
        }
    }

    #[test]
    fn parse_refuses_anything_but_a_canonical_secret() {
        let good = SecretToken::generate();
        let mut non_canonical = good.expose().to_owned();
        // The last character carries 4 unused bits; flipping one gives another spelling.
        let last = non_canonical.pop().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let index = alphabet.find(last).unwrap();
        non_canonical.push(alphabet.as_bytes()[index ^ 1] as char);
        let bad = [
            "".to_owned(),
            "a".repeat(42),
            "a".repeat(44),
            format!("{}=", &good.expose()[..42]),
            format!("{}+", &good.expose()[..42]),
            format!("{}é", &good.expose()[..41]),
            non_canonical,
        ];
        for candidate in bad {
            assert!(SecretToken::parse(&candidate).is_none(), "{candidate:?}");
        }
    }

    #[test]
    fn store_keys_hash_the_secret_and_round_trip_through_hex() {
        let secret = SecretToken::generate();
        let key = secret.store_key();
        assert_ne!(key.to_hex(), secret.expose());
        assert_eq!(StoreKey::from_hex(&key.to_hex()), Some(key));
        assert_eq!(StoreKey::from_hex("zz"), None);
        assert_eq!(StoreKey::from_hex(&"+f".repeat(32)), None);
        assert!(!format!("{key:?}").contains(&key.to_hex()));
        assert_ne!(key, SecretToken::generate().store_key());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
