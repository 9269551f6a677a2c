//! [`UserJson`]: the application's user in its serialized form, validated once and shared, so
//! a store can hand it to the extractors without decoding it into a tree and encoding it again.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::DeserializeOwned};
use serde_json::value::RawValue;

/// The user as JSON text: known to be valid JSON, cheap to clone (the text is shared), and
/// decoded into the application's type `U` only when an extractor asks.
///
/// With `serde_json` it serializes as the JSON it holds (not as a string), so a record that
/// embeds it keeps the user as a nested object; with a binary serde format (one that is not
/// human-readable, such as MessagePack or bincode) it is a string holding that JSON. It compares
/// by text.
///
/// # Examples
///
/// ```
/// use portcullis_core::UserJson;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct User { user: String, role: String }
///
/// let json = UserJson::new(&User { user: "alice".into(), role: "admin".into() }).unwrap();
/// assert_eq!(json.as_str(), r#"{"user":"alice","role":"admin"}"#);
/// let user: User = json.decode().unwrap();
/// assert_eq!(user.role, "admin");
///
/// // Embedded in a record, it stays an object.
/// #[derive(serde::Serialize)]
/// struct Record { user: UserJson }
/// let record = serde_json::to_string(&Record { user: json }).unwrap();
/// assert_eq!(record, r#"{"user":{"user":"alice","role":"admin"}}"#);
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserJson(Arc<str>);

impl UserJson {
    /// Serializes `user`.
    ///
    /// # Errors
    ///
    /// Fails when `U`'s `Serialize` implementation fails.
    pub fn new<U: Serialize + ?Sized>(user: &U) -> Result<Self, serde_json::Error> {
        serde_json::to_string(user).map(|text| Self(text.into()))
    }

    /// Takes JSON text a store kept, checking that it is one well-formed JSON value.
    ///
    /// # Errors
    ///
    /// Fails when `text` is not valid JSON.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::UserJson;
    /// assert!(UserJson::from_text(r#"{"user":"alice"}"#).is_ok());
    /// assert!(UserJson::from_text(r#"{"user":"#).is_err());
    /// ```
    pub fn from_text(text: &str) -> Result<Self, serde_json::Error> {
        // A borrowed RawValue only scans the text: no allocation, no tree.
        let raw: &RawValue = serde_json::from_str(text)?;
        Ok(Self(raw.get().into()))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Decodes the user into the application's type.
    ///
    /// # Errors
    ///
    /// Fails when the JSON does not fit `U` (for example after `U` changed shape).
    pub fn decode<U: DeserializeOwned>(&self) -> Result<U, serde_json::Error> {
        serde_json::from_str(&self.0)
    }
}

impl From<&RawValue> for UserJson {
    fn from(raw: &RawValue) -> Self {
        Self(raw.get().into())
    }
}

impl From<Box<RawValue>> for UserJson {
    fn from(raw: Box<RawValue>) -> Self {
        Self::from(&*raw)
    }
}

impl Serialize for UserJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            // RawValue is understood by serde_json only: binary formats get the text.
            return serializer.serialize_str(&self.0);
        }
        // Valid by construction; re-borrowing it as a RawValue only scans it.
        let raw: &RawValue = serde_json::from_str(&self.0).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for UserJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !deserializer.is_human_readable() {
            let text = String::deserialize(deserializer)?;
            return Self::from_text(&text).map_err(serde::de::Error::custom);
        }
        Box::<RawValue>::deserialize(deserializer).map(Self::from)
    }
}

impl fmt::Debug for UserJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Application data, not a secret, but it may hold personal data that has no place in
        // logs: its size only, as `Identity` does.
        f.debug_struct("UserJson")
            .field("len", &self.0.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn round_trips_inside_a_record_and_compares_by_text() {
        let user = UserJson::new(&json!({"user": "alice", "role": "advertiser"})).unwrap();
        let record = format!(r#"{{"user": {}, "n": 1}}"#, user.as_str());
        #[derive(Deserialize)]
        struct Record {
            user: UserJson,
        }
        let back: Record = serde_json::from_str(&record).unwrap();
        assert_eq!(back.user, user);
        assert_ne!(back.user, UserJson::new(&json!({"user": "bob"})).unwrap());
        let value: serde_json::Value = back.user.decode().unwrap();
        assert_eq!(value["role"], "advertiser");
    }

    #[test]
    fn round_trips_through_a_binary_format_as_text() {
        #[derive(Serialize, Deserialize)]
        struct Record {
            user: UserJson,
        }
        let user = UserJson::new(&json!({"user": "alice"})).unwrap();
        let bytes = rmp_serde::to_vec(&Record { user: user.clone() }).unwrap();
        let back: Record = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.user, user);
        // Text that is not JSON does not become a user on the way in.
        #[derive(Serialize)]
        struct Forged<'a> {
            user: &'a str,
        }
        let forged = rmp_serde::to_vec(&Forged { user: "{not json" }).unwrap();
        assert!(rmp_serde::from_slice::<Record>(&forged).is_err());
    }

    #[test]
    fn refuses_text_that_is_not_json_and_never_prints_the_user() {
        for bad in ["", "{", r#"{"a":1} trailing"#, "nul"] {
            assert!(UserJson::from_text(bad).is_err(), "{bad:?} was accepted");
        }
        let user = UserJson::from_text(r#"{"email":"alice@example.com"}"#).unwrap();
        assert!(!format!("{user:?}").contains("alice"));
    }
}
