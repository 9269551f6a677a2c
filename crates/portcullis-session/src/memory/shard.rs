//! [`Shard`]: one lock's worth of sessions, with the min-heap of their expiry times.

use std::{
    cmp::Reverse,
    collections::{BinaryHeap, HashMap},
    hash::BuildHasherDefault,
};

use portcullis_core::StoreKey;

use super::entry::{Entry, KeyHasher};

pub(super) type KeyMap = HashMap<StoreKey, Box<Entry>, BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
pub(super) struct Shard {
    pub(super) entries: KeyMap,
    /// (expiry, key): every live entry has an item no later than its expiry.
    pub(super) expiry: BinaryHeap<Reverse<(u64, [u8; 32])>>,
}

/// A session removed from a key shard whose user index entry must be dropped once no shard
/// lock is held (lock order: user shard, then key shard).
pub(super) type Orphan = (Box<str>, StoreKey);

impl Shard {
    /// Frees up to `budget` expired entries; returns the user-index entries to drop.
    pub(super) fn sweep(&mut self, now: u64, budget: usize, orphans: &mut Vec<Orphan>) -> usize {
        let mut freed = 0;
        while freed < budget {
            let Some(Reverse((at, bytes))) = self.expiry.peek().copied() else {
                break;
            };
            if at > now {
                break;
            }
            self.expiry.pop();
            let key = StoreKey::from_bytes(bytes);
            match self.entries.get(&key) {
                None => {}
                Some(entry) if entry.is_live(now) => {
                    let real = entry.expires_at.min(entry.absolute_expires_at);
                    self.expiry.push(Reverse((real, bytes)));
                }
                Some(_) => {
                    if let Some(entry) = self.entries.remove(&key)
                        && let Some(user_id) = entry.user_id().map(Box::from)
                    {
                        orphans.push((user_id, key));
                    }
                    freed += 1;
                }
            }
        }
        self.compact_heap();
        freed
    }

    /// Removes one live entry to make room at the cap, chosen so that whoever creates
    /// sessions fastest evicts their own: anonymous sessions first (they cost an attacker
    /// nothing to make), then the sessions of the user holding the most in this shard; within
    /// either, the one closest to expiry. A flood of anonymous requests, or one account signing
    /// in again and again, never pushes other users' sessions out (OWASP Session Management
    /// Cheat Sheet, "Session ID Life Cycle": the store must not let one client end others'
    /// sessions).
    pub(super) fn evict_one(&mut self, orphans: &mut Vec<Orphan>) -> bool {
        let mut anonymous: Option<(u64, StoreKey)> = None;
        // Per user: (sessions in this shard, soonest expiry, its key).
        let mut users: HashMap<&str, (usize, u64, StoreKey)> = HashMap::new();
        for (key, entry) in &self.entries {
            let expiry = entry.expires_at.min(entry.absolute_expires_at);
            match entry.user_id() {
                None => {
                    if anonymous.is_none_or(|(soonest, _)| expiry < soonest) {
                        anonymous = Some((expiry, *key));
                    }
                }
                Some(user_id) => {
                    let slot = users.entry(user_id).or_insert((0, expiry, *key));
                    slot.0 += 1;
                    if expiry < slot.1 {
                        (slot.1, slot.2) = (expiry, *key);
                    }
                }
            }
        }
        let victim = anonymous.map(|(_, key)| key).or_else(|| {
            users
                .values()
                .max_by_key(|(count, expiry, _)| (*count, Reverse(*expiry)))
                .map(|(_, _, key)| *key)
        });
        let Some(key) = victim else {
            return false;
        };
        if let Some(entry) = self.entries.remove(&key)
            && let Some(user_id) = entry.user_id().map(Box::from)
        {
            orphans.push((user_id, key));
        }
        true
    }

    /// Deleted sessions leave their heap items behind; rebuild the heap when they dominate.
    pub(super) fn compact_heap(&mut self) {
        if self.expiry.len() > 2 * self.entries.len() + 64 {
            self.expiry = self
                .entries
                .iter()
                .map(|(key, entry)| {
                    Reverse((
                        entry.expires_at.min(entry.absolute_expires_at),
                        *key.as_bytes(),
                    ))
                })
                .collect();
        }
    }
}
