//! The refresh-token rotation rules, in one pure function the refresh service applies on top of
//! [`RefreshStore::compare_and_swap`](crate::RefreshStore::compare_and_swap).
//!
//! RFC 9700 §4.14.2 ("Refresh Token Protection", rotation): every refresh replaces the refresh
//! token, and a replaced token presented again means two parties hold it, so the whole session
//! is revoked. Honest clients race, though (two tabs, a retry after a lost response), so a token
//! rotated out less than a grace window ago is still honoured, and answered with the *same*
//! current token the winner got: every racer converges on one token, and no stale copy is left
//! to trip the theft check later.

use portcullis_core::{SecretToken, StoreKey};

use crate::{
    RefreshRecord, RotatedToken,
    refresh_token::{family_hash, seal, successor_of, unseal},
};

/// How many rotated-out hashes a record keeps, to follow sealed successors inside the grace
/// window. Older ones are forgotten; the record's family hash still recognises them as retired
/// tokens of the session, so replaying one revokes it however old it is.
pub(crate) const MAX_ROTATED: usize = 16;

/// The timing rules of a refresh family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// Seconds a refresh moves the idle deadline forward.
    pub(crate) idle_secs: u64,
    /// Seconds a rotated-out token is still honoured; 0 disables the grace window.
    pub(crate) grace_secs: u64,
}

/// What a presented refresh secret means for its session.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The current secret: write `record` (generation + 1) and hand out `secret`.
    Rotate {
        record: Box<RefreshRecord>,
        secret: SecretToken,
    },
    /// A secret rotated out inside the grace window: hand out the current `secret`, write nothing.
    Grace { secret: SecretToken },
    /// A secret rotated out before the grace window: someone replayed it. Revoke the session.
    Reuse,
    /// A secret this session never had (or forgot): refuse, revoke nothing, since anyone who
    /// read the `sid` of an access token could otherwise log its owner out.
    Unknown,
    /// The session is past its idle or absolute deadline.
    Expired,
}

fn honoured(rotated: &RotatedToken, timing: Timing, now: u64) -> bool {
    timing.grace_secs > 0 && now <= rotated.rotated_at.saturating_add(timing.grace_secs)
}

fn find<'a>(record: &'a RefreshRecord, hash: &StoreKey) -> Option<&'a RotatedToken> {
    // StoreKey compares in constant time; scanning the whole list keeps the timing flat too.
    record.previous.iter().fold(None, |found, rotated| {
        if rotated.hash == *hash {
            Some(rotated)
        } else {
            found
        }
    })
}

/// Applies the rotation rules to `presented` at `now`.
pub(crate) fn decide(
    record: &RefreshRecord,
    presented: &SecretToken,
    timing: Timing,
    now: u64,
) -> Decision {
    if record.expires_at() <= now {
        return Decision::Expired;
    }
    let hash = presented.store_key();
    if record.current_hash == hash {
        return rotate(record, presented, timing, now);
    }
    let Some(rotated) = find(record, &hash) else {
        // Not one of the last few: a token of this family that is not current was retired
        // any number of rotations ago (RFC 9700 §4.14.2). Anything else is a guess.
        let of_family = record
            .family_hash
            .is_some_and(|family| Some(family) == family_hash(presented));
        return if of_family {
            Decision::Reuse
        } else {
            Decision::Unknown
        };
    };
    if !honoured(rotated, timing, now) {
        return Decision::Reuse;
    }
    // Follow the sealed successors to the current secret. Tokens rotated out after this one
    // are inside the window too (rotation times only grow), so the chain is intact unless more
    // than MAX_ROTATED rotations happened within the window.
    let mut secret = presented.clone();
    let mut link = rotated;
    for _ in 0..=MAX_ROTATED {
        let Some(next) = link
            .successor
            .as_ref()
            .and_then(|sealed| unseal(sealed, &secret))
        else {
            return Decision::Unknown;
        };
        let next_hash = next.store_key();
        if next_hash == record.current_hash {
            return Decision::Grace { secret: next };
        }
        match find(record, &next_hash) {
            Some(rotated) if honoured(rotated, timing, now) => {
                secret = next;
                link = rotated;
            }
            _ => return Decision::Unknown,
        }
    }
    Decision::Unknown
}

fn rotate(record: &RefreshRecord, presented: &SecretToken, timing: Timing, now: u64) -> Decision {
    let secret = successor_of(presented);
    let mut next = record.clone();
    // Records from before family hashes existed get one from their current token on.
    next.family_hash = next.family_hash.or_else(|| family_hash(presented));
    for rotated in &mut next.previous {
        if !honoured(rotated, timing, now) {
            // Past the window a successor is never handed out again: keep only the hash.
            rotated.successor = None;
        }
    }
    next.previous.push(RotatedToken {
        hash: record.current_hash,
        rotated_at: now,
        successor: seal(&secret, presented),
    });
    let excess = next.previous.len().saturating_sub(MAX_ROTATED);
    next.previous.drain(..excess);
    next.current_hash = secret.store_key();
    next.generation = record.generation.wrapping_add(1);
    next.refreshed_at = now;
    next.idle_expires_at = now
        .saturating_add(timing.idle_secs)
        .min(record.absolute_expires_at);
    Decision::Rotate {
        record: Box::new(next),
        secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMING: Timing = Timing {
        idle_secs: 100,
        grace_secs: 5,
    };

    fn session(secret: &SecretToken, now: u64) -> RefreshRecord {
        RefreshRecord {
            session_id: "sid".into(),
            user_id: "alice".into(),
            user: serde_json::json!({"user": "alice"}),
            created_at: now,
            authenticated_at: now,
            refreshed_at: now,
            idle_expires_at: now + TIMING.idle_secs,
            absolute_expires_at: now + 1_000,
            current_hash: secret.store_key(),
            previous: Vec::new(),
            generation: 0,
            family_hash: family_hash(secret),
            user_agent: None,
        }
    }

    /// Rotates `record` with `presented` at `now`, returning the new record and secret.
    fn rotated(
        record: &RefreshRecord,
        presented: &SecretToken,
        now: u64,
    ) -> (RefreshRecord, SecretToken) {
        match decide(record, presented, TIMING, now) {
            Decision::Rotate { record, secret } => (*record, secret),
            other => panic!("expected a rotation, got {other:?}"),
        }
    }

    #[test]
    fn rotation_table() {
        let t0 = SecretToken::generate();
        let start = 1_000;
        let r0 = session(&t0, start);
        let (r1, t1) = rotated(&r0, &t0, start + 10);
        assert_eq!(r1.generation, 1);
        assert_eq!(r1.idle_expires_at, start + 110);
        assert_eq!(r1.refreshed_at, start + 10);
        assert!(r1.previous[0].successor.is_some());

        let stranger = SecretToken::generate();
        // (record, presented, now, expected)
        let cases: Vec<(&RefreshRecord, &SecretToken, u64, &str)> = vec![
            (&r1, &t1, start + 11, "rotate"),
            (&r1, &t0, start + 10, "grace"),
            (&r1, &t0, start + 15, "grace"),
            (&r1, &t0, start + 16, "reuse"),
            (&r1, &stranger, start + 11, "unknown"),
            (&r1, &t1, start + 110, "expired"),
            (&r0, &t0, start + 100, "expired"),
        ];
        for (i, (record, presented, now, expected)) in cases.into_iter().enumerate() {
            let got = match decide(record, presented, TIMING, now) {
                Decision::Rotate { .. } => "rotate",
                Decision::Grace { secret } => {
                    assert_eq!(secret, t1, "case {i}: grace hands out the current secret");
                    "grace"
                }
                Decision::Reuse => "reuse",
                Decision::Unknown => "unknown",
                Decision::Expired => "expired",
            };
            assert_eq!(got, expected, "case {i}");
        }
    }

    #[test]
    fn absolute_lifetime_caps_the_idle_deadline() {
        let t0 = SecretToken::generate();
        let mut record = session(&t0, 1_000);
        let mut secret = t0;
        for now in (1_050..1_000 + 1_000).step_by(50) {
            (record, secret) = rotated(&record, &secret, now);
            assert!(record.idle_expires_at <= record.absolute_expires_at);
        }
        assert!(matches!(
            decide(&record, &secret, TIMING, 2_000),
            Decision::Expired
        ));
    }

    #[test]
    fn chains_inside_the_window_converge_on_the_current_secret() {
        let t0 = SecretToken::generate();
        let r0 = session(&t0, 1_000);
        let (r1, t1) = rotated(&r0, &t0, 1_001);
        let (r2, t2) = rotated(&r1, &t1, 1_002);
        let (r3, t3) = rotated(&r2, &t2, 1_003);
        for old in [&t0, &t1, &t2] {
            match decide(&r3, old, TIMING, 1_005) {
                Decision::Grace { secret } => assert_eq!(secret, t3),
                other => panic!("expected grace, got {other:?}"),
            }
        }
        // t0 leaves the window first; a rotation after that forgets its successor.
        assert!(matches!(decide(&r3, &t0, TIMING, 1_007), Decision::Reuse));
        let (r4, _) = rotated(&r3, &t3, 1_007);
        assert!(r4.previous[0].successor.is_none());
        assert!(r4.previous[2].successor.is_some());
    }

    #[test]
    fn no_grace_window_means_every_replay_is_reuse() {
        let timing = Timing {
            grace_secs: 0,
            ..TIMING
        };
        let t0 = SecretToken::generate();
        let Decision::Rotate { record, .. } = decide(&session(&t0, 1_000), &t0, timing, 1_000)
        else {
            panic!("expected a rotation");
        };
        assert!(matches!(
            decide(&record, &t0, timing, 1_000),
            Decision::Reuse
        ));
    }

    #[test]
    fn a_retired_token_is_reuse_however_many_rotations_ago() {
        let t0 = SecretToken::generate();
        let mut record = session(&t0, 1_000);
        let mut secret = t0.clone();
        let mut retired = Vec::new();
        for i in 0..40 {
            retired.push(secret.clone());
            (record, secret) = rotated(&record, &secret, 1_000 + i * 10);
        }
        assert_eq!(record.previous.len(), MAX_ROTATED);
        let now = 1_000 + 40 * 10;
        for (generation, old) in retired.iter().enumerate() {
            assert!(
                matches!(decide(&record, old, TIMING, now), Decision::Reuse),
                "generation {generation} of 40"
            );
        }
        // A guess (right sid, wrong family) revokes nothing.
        let stranger = SecretToken::generate();
        assert!(matches!(
            decide(&record, &stranger, TIMING, now),
            Decision::Unknown
        ));
        // Nor does a record from before family hashes (no hash to prove anything with).
        let mut legacy = record.clone();
        legacy.family_hash = None;
        assert!(matches!(
            decide(&legacy, &retired[0], TIMING, now),
            Decision::Unknown
        ));
        // ... until its next rotation records one.
        let (upgraded, next) = rotated(&legacy, &secret, now);
        assert_eq!(upgraded.family_hash, family_hash(&next));
        assert!(matches!(
            decide(&upgraded, &retired[0], TIMING, now + 10),
            Decision::Reuse
        ));
    }

    #[test]
    fn two_tabs_inside_the_window_both_get_the_current_secret() {
        let t0 = SecretToken::generate();
        let r0 = session(&t0, 1_000);
        // Tab one rotates; tab two presents the same token a second later.
        let (r1, t1) = rotated(&r0, &t0, 1_001);
        match decide(&r1, &t0, TIMING, 1_002) {
            Decision::Grace { secret } => assert_eq!(secret, t1),
            other => panic!("expected grace, got {other:?}"),
        }
    }

    #[test]
    fn old_hashes_are_bounded() {
        let mut secret = SecretToken::generate();
        let mut record = session(&secret, 1_000);
        for i in 0..40 {
            (record, secret) = rotated(&record, &secret, 1_000 + i);
        }
        assert_eq!(record.previous.len(), MAX_ROTATED);
        assert_eq!(record.generation, 40);
    }
}
