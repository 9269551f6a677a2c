//! [`Entry`]: one session kept compactly, and the hasher of the key map.

use std::hash::Hasher;

use portcullis_core::{StoreError, UserJson};
use serde_json::{Map, Value};

use crate::store::SessionRecord;

/// A session kept compactly: its strings (handle, user id, user JSON, data JSON, user agent)
/// back to back in one allocation, boxed so the hash table's empty slots stay small.
pub(super) struct Entry {
    pub(super) text: Box<str>,
    /// Byte length of each part of `text`, [`ABSENT`] for `None`.
    pub(super) lengths: [u32; PARTS],
    pub(super) created_at: u64,
    pub(super) authenticated_at: Option<u64>,
    pub(super) last_seen_at: u64,
    pub(super) expires_at: u64,
    pub(super) absolute_expires_at: u64,
    pub(super) version: u64,
    pub(super) persistent: bool,
}

pub(super) const PARTS: usize = 5;
pub(super) const ABSENT: u32 = u32::MAX;
pub(super) const HANDLE: usize = 0;
pub(super) const USER_ID: usize = 1;
pub(super) const USER: usize = 2;
pub(super) const DATA: usize = 3;
pub(super) const USER_AGENT: usize = 4;

/// Keys are SHA-256 digests of random secrets that only this process generates, so their
/// first bytes are already a uniform hash: no need for SipHash (and no flooding risk, since
/// clients cannot choose which keys are inserted).
#[derive(Default)]
pub(super) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        for (slot, byte) in word.iter_mut().zip(bytes) {
            *slot = *byte;
        }
        self.0 = self.0.rotate_left(17) ^ u64::from_le_bytes(word);
    }

    fn write_usize(&mut self, _: usize) {
        // The length prefix of the digest is always 32: it carries no information.
    }
}

pub(super) fn to_json_text(value: &impl serde::Serialize) -> Result<Box<str>, StoreError> {
    serde_json::to_string(value)
        .map(String::into_boxed_str)
        .map_err(StoreError::corrupt)
}

impl Entry {
    pub(super) fn from_record(record: &SessionRecord) -> Result<Box<Self>, StoreError> {
        let user = record.user.as_ref().map(UserJson::as_str);
        let data = if record.data.is_empty() {
            None
        } else {
            Some(to_json_text(&record.data)?)
        };
        let parts: [Option<&str>; PARTS] = [
            Some(record.handle.as_str()),
            record.user_id.as_deref(),
            user,
            data.as_deref(),
            record.user_agent.as_deref(),
        ];
        let mut text = String::with_capacity(parts.iter().flatten().map(|p| p.len()).sum());
        let mut lengths = [ABSENT; PARTS];
        for (length, part) in lengths.iter_mut().zip(parts) {
            if let Some(part) = part {
                *length = u32::try_from(part.len())
                    .ok()
                    .filter(|&n| n != ABSENT)
                    .ok_or_else(|| StoreError::corrupt("a session record part exceeds 4 GiB"))?;
                text.push_str(part);
            }
        }
        Ok(Box::new(Self {
            text: text.into_boxed_str(),
            lengths,
            created_at: record.created_at,
            authenticated_at: record.authenticated_at,
            last_seen_at: record.last_seen_at,
            expires_at: record.expires_at,
            absolute_expires_at: record.absolute_expires_at,
            version: record.version,
            persistent: record.persistent,
        }))
    }

    pub(super) fn part(&self, index: usize) -> Option<&str> {
        let length = *self.lengths.get(index)?;
        if length == ABSENT {
            return None;
        }
        let start: usize = self
            .lengths
            .get(..index)?
            .iter()
            .filter(|&&n| n != ABSENT)
            .map(|&n| n as usize)
            .sum();
        self.text.get(start..start + length as usize)
    }

    pub(super) fn handle(&self) -> &str {
        self.part(HANDLE).unwrap_or_default()
    }

    pub(super) fn user_id(&self) -> Option<&str> {
        self.part(USER_ID)
    }

    pub(super) fn to_record(&self) -> Result<SessionRecord, StoreError> {
        let user = match self.part(USER) {
            Some(text) => Some(UserJson::from_text(text).map_err(StoreError::corrupt)?),
            None => None,
        };
        let data = match self.part(DATA) {
            Some(text) => {
                serde_json::from_str::<Map<String, Value>>(text).map_err(StoreError::corrupt)?
            }
            None => Map::new(),
        };
        Ok(SessionRecord {
            handle: self.handle().to_owned(),
            user_id: self.user_id().map(str::to_owned),
            user,
            data,
            created_at: self.created_at,
            authenticated_at: self.authenticated_at,
            last_seen_at: self.last_seen_at,
            expires_at: self.expires_at,
            absolute_expires_at: self.absolute_expires_at,
            user_agent: self.part(USER_AGENT).map(str::to_owned),
            persistent: self.persistent,
            version: self.version,
        })
    }

    pub(super) fn is_live(&self, now: u64) -> bool {
        self.expires_at > now && self.absolute_expires_at > now
    }
}
