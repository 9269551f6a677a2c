//! The [`RefreshStore`] contract as a test suite, run against every implementation.
//!
//! Use it with [`refresh_store_conformance!`](crate::refresh_store_conformance), giving a
//! function that builds a fresh, empty store judging expiry by the clock it is given:
//!
//! ```text
//! fn store(clock: ManualClock) -> MemoryRefreshStore {
//!     MemoryRefreshStore::new().with_clock(Arc::new(clock))
//! }
//! portcullis_tests::refresh_store_conformance!(store);
//! ```

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use portcullis_core::{ManualClock, SecretToken};
use portcullis_hybrid::{
    CreateOutcome, HybridError, HybridSessions, InProcessFeed, LimitPolicy, RefreshRecord,
    RefreshStore, RotatedToken, SessionLimit,
};
use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};
use serde_json::json;

/// Expands to one `#[tokio::test]` per case of the refresh-store suite, each on a fresh store
/// from `$make: fn(ManualClock) -> impl RefreshStore`.
#[macro_export]
macro_rules! refresh_store_conformance {
    ($make:path) => {
        $crate::refresh_store_conformance!(@cases $make;
            create_then_load_round_trips,
            load_of_unknown_or_malformed_ids_is_none,
            expired_sessions_are_absent_everywhere,
            compare_and_swap_succeeds_once_per_generation,
            concurrent_rotations_have_exactly_one_winner,
            compare_and_swap_of_a_missing_session_fails,
            compare_and_swap_that_extends_expiry_keeps_the_session_listed,
            compare_and_swap_to_another_user_moves_the_session,
            delete_returns_the_record_once,
            list_by_user_is_oldest_first_and_only_theirs,
            delete_by_user_deletes_all_and_only_theirs,
            sessions_created_after_delete_by_user_survive_it,
            many_sessions_per_user,
            a_refresh_token_retired_many_rotations_ago_revokes_the_session,
            parallel_refreshes_inside_the_grace_window_all_succeed,
            limit_evicts_the_oldest,
            limit_refuses_new_sessions,
            limit_counts_only_live_sessions,
            concurrent_creates_respect_the_limit,
            delete_by_user_keeps_the_current_session,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let clock = $crate::conformance::ManualClock::new();
                let store = $make(clock.clone());
                $crate::conformance::refresh_store::$case(store, clock).await;
            }
        )*
    };
}

/// Runs every case of the suite in turn, each on a fresh store from `make` (built on the clock
/// it is given), outside any test harness: for a doc example or a `main`. The macro gives one
/// test per case instead, which reports failures one by one.
///
/// # Panics
///
/// When the store breaks the contract: the failed assertion says which rule.
pub async fn run_all<S: RefreshStore>(make: impl Fn(ManualClock) -> S) {
    let clock = ManualClock::new();
    create_then_load_round_trips(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    load_of_unknown_or_malformed_ids_is_none(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    expired_sessions_are_absent_everywhere(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    compare_and_swap_succeeds_once_per_generation(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    concurrent_rotations_have_exactly_one_winner(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    compare_and_swap_of_a_missing_session_fails(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    compare_and_swap_that_extends_expiry_keeps_the_session_listed(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    compare_and_swap_to_another_user_moves_the_session(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    delete_returns_the_record_once(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    list_by_user_is_oldest_first_and_only_theirs(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    delete_by_user_deletes_all_and_only_theirs(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    sessions_created_after_delete_by_user_survive_it(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    many_sessions_per_user(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    a_refresh_token_retired_many_rotations_ago_revokes_the_session(make(clock.clone()), clock)
        .await;
    let clock = ManualClock::new();
    parallel_refreshes_inside_the_grace_window_all_succeed(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_evicts_the_oldest(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_refuses_new_sessions(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_counts_only_live_sessions(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    concurrent_creates_respect_the_limit(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    delete_by_user_keeps_the_current_session(make(clock.clone()), clock).await;
}

fn now(clock: &ManualClock) -> u64 {
    use portcullis_core::Clock;
    clock.unix_seconds()
}

/// A record of `user` created `age` seconds ago, idle-expiring in `ttl` seconds.
pub fn record(
    clock: &ManualClock,
    session_id: &str,
    user: &str,
    age: u64,
    ttl: u64,
) -> RefreshRecord {
    let now = now(clock);
    RefreshRecord {
        session_id: session_id.to_owned(),
        user_id: user.to_owned(),
        user: json!({"user": user, "role": "advertiser"}),
        created_at: now - age,
        authenticated_at: now - age,
        refreshed_at: now - age,
        idle_expires_at: now + ttl,
        absolute_expires_at: now + ttl + 3_600,
        current_hash: SecretToken::generate().store_key(),
        previous: Vec::new(),
        generation: 0,
        family_hash: Some(SecretToken::generate().store_key()),
        user_agent: Some("conformance/1.0".to_owned()),
    }
}

/// The record after one rotation.
fn rotated(record: &RefreshRecord, clock: &ManualClock, idle_ttl: u64) -> RefreshRecord {
    let now = now(clock);
    let mut next = record.clone();
    next.previous.push(RotatedToken {
        hash: record.current_hash,
        rotated_at: now,
        successor: None,
    });
    next.current_hash = SecretToken::generate().store_key();
    next.generation += 1;
    next.refreshed_at = now;
    next.idle_expires_at = now + idle_ttl;
    next
}

fn ids(records: &[RefreshRecord]) -> Vec<&str> {
    records
        .iter()
        .map(|record| record.session_id.as_str())
        .collect()
}

/// What `create` stores, `load` returns unchanged.
pub async fn create_then_load_round_trips(store: impl RefreshStore, clock: ManualClock) {
    let mut original = record(&clock, "sid-a", "alice", 0, 600);
    original.previous.push(RotatedToken {
        hash: SecretToken::generate().store_key(),
        rotated_at: now(&clock) - 5,
        successor: None,
    });
    original.user = json!({"user": "alice", "nested": {"list": [1, 2, 3], "empty": []}});
    store.create(&original, None).await.unwrap();
    assert_eq!(store.load("sid-a").await.unwrap(), Some(original.clone()));
    // A record without a family hash (written before it existed) round-trips as such.
    let mut legacy = record(&clock, "sid-legacy", "alice", 0, 600);
    legacy.family_hash = None;
    store.create(&legacy, None).await.unwrap();
    assert_eq!(store.load("sid-legacy").await.unwrap(), Some(legacy));
}

/// Unknown ids, and ids no session could have, are `None` rather than errors.
pub async fn load_of_unknown_or_malformed_ids_is_none(
    store: impl RefreshStore,
    _clock: ManualClock,
) {
    let long = "x".repeat(10_000);
    for id in ["nope", "", "{tag}", "a:b", "..", long.as_str()] {
        assert_eq!(store.load(id).await.unwrap(), None, "{id:?}");
        assert_eq!(store.delete(id).await.unwrap(), None, "{id:?}");
    }
}

/// Past its idle deadline a session is gone for load, listing, rotation and delete.
pub async fn expired_sessions_are_absent_everywhere(store: impl RefreshStore, clock: ManualClock) {
    let short = record(&clock, "sid-short", "alice", 0, 10);
    let long = record(&clock, "sid-long", "alice", 0, 1_000);
    store.create(&short, None).await.unwrap();
    store.create(&long, None).await.unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        store.load("sid-short").await.unwrap(),
        None,
        "expires_at <= now is expired"
    );
    assert_eq!(
        ids(&store.list_by_user("alice").await.unwrap()),
        ["sid-long"]
    );
    assert!(
        !store
            .compare_and_swap(&rotated(&short, &clock, 600), 0)
            .await
            .unwrap()
    );
    assert_eq!(store.delete("sid-short").await.unwrap(), None);
    assert_eq!(
        ids(&store.delete_by_user("alice", None).await.unwrap()),
        ["sid-long"]
    );
}

/// A rotation succeeds against the current generation only.
pub async fn compare_and_swap_succeeds_once_per_generation(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let first = record(&clock, "sid-a", "alice", 0, 600);
    store.create(&first, None).await.unwrap();
    let second = rotated(&first, &clock, 600);
    assert!(store.compare_and_swap(&second, 0).await.unwrap());
    assert!(
        !store.compare_and_swap(&second, 0).await.unwrap(),
        "stale generation"
    );
    assert_eq!(store.load("sid-a").await.unwrap(), Some(second.clone()));
    let third = rotated(&second, &clock, 600);
    assert!(!store.compare_and_swap(&third, 0).await.unwrap());
    assert!(store.compare_and_swap(&third, 1).await.unwrap());
    assert_eq!(store.load("sid-a").await.unwrap().unwrap().generation, 2);
}

/// Many rotations of one generation racing: exactly one wins, and the store holds its record.
pub async fn concurrent_rotations_have_exactly_one_winner(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let store = Arc::new(store);
    let first = record(&clock, "sid-race", "alice", 0, 600);
    store.create(&first, None).await.unwrap();
    let candidates: Vec<RefreshRecord> = (0..16).map(|_| rotated(&first, &clock, 600)).collect();
    let results = join_all(candidates.iter().map(|candidate| {
        let store = Arc::clone(&store);
        let candidate = candidate.clone();
        tokio::spawn(async move { store.compare_and_swap(&candidate, 0).await.unwrap() })
    }))
    .await;
    let winners: Vec<usize> = results
        .into_iter()
        .enumerate()
        .filter_map(|(i, won)| won.unwrap().then_some(i))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one rotation wins: {winners:?}");
    assert_eq!(
        store.load("sid-race").await.unwrap().unwrap().current_hash,
        candidates[winners[0]].current_hash
    );
}

/// No compare-and-swap creates a session.
pub async fn compare_and_swap_of_a_missing_session_fails(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let ghost = record(&clock, "sid-ghost", "alice", 0, 600);
    assert!(!store.compare_and_swap(&ghost, 0).await.unwrap());
    assert_eq!(store.load("sid-ghost").await.unwrap(), None);
    assert!(store.list_by_user("alice").await.unwrap().is_empty());
    let created = record(&clock, "sid-gone", "alice", 0, 600);
    store.create(&created, None).await.unwrap();
    store.delete("sid-gone").await.unwrap();
    assert!(
        !store
            .compare_and_swap(&rotated(&created, &clock, 600), 0)
            .await
            .unwrap()
    );
    assert_eq!(store.load("sid-gone").await.unwrap(), None);
}

/// A rotation moves the idle deadline; the session stays listed (and reachable by logout-all)
/// past its original deadline.
pub async fn compare_and_swap_that_extends_expiry_keeps_the_session_listed(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let first = record(&clock, "sid-a", "alice", 0, 60);
    store.create(&first, None).await.unwrap();
    clock.advance(Duration::from_secs(50));
    let second = rotated(&first, &clock, 600);
    assert!(store.compare_and_swap(&second, 0).await.unwrap());
    clock.advance(Duration::from_secs(100));
    assert_eq!(store.load("sid-a").await.unwrap(), Some(second.clone()));
    assert_eq!(ids(&store.list_by_user("alice").await.unwrap()), ["sid-a"]);
    assert_eq!(
        ids(&store.delete_by_user("alice", None).await.unwrap()),
        ["sid-a"]
    );
    assert_eq!(store.load("sid-a").await.unwrap(), None);
}

/// A record rewritten with another user id is listed under that user only.
pub async fn compare_and_swap_to_another_user_moves_the_session(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let first = record(&clock, "sid-a", "alice", 0, 600);
    store.create(&first, None).await.unwrap();
    let mut moved = rotated(&first, &clock, 600);
    moved.user_id = "bob".to_owned();
    assert!(store.compare_and_swap(&moved, 0).await.unwrap());
    assert!(store.list_by_user("alice").await.unwrap().is_empty());
    assert_eq!(ids(&store.list_by_user("bob").await.unwrap()), ["sid-a"]);
    assert!(
        store
            .delete_by_user("alice", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(&store.delete_by_user("bob", None).await.unwrap()),
        ["sid-a"]
    );
}

/// Delete hands back what it deleted, once.
pub async fn delete_returns_the_record_once(store: impl RefreshStore, clock: ManualClock) {
    let session = record(&clock, "sid-a", "alice", 0, 600);
    store.create(&session, None).await.unwrap();
    assert_eq!(store.delete("sid-a").await.unwrap(), Some(session));
    assert_eq!(store.delete("sid-a").await.unwrap(), None);
    assert_eq!(store.load("sid-a").await.unwrap(), None);
    assert!(store.list_by_user("alice").await.unwrap().is_empty());
}

/// Listing is per user, oldest first (ties by session id).
pub async fn list_by_user_is_oldest_first_and_only_theirs(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    for (id, user, age) in [
        ("sid-3", "alice", 10),
        ("sid-1", "alice", 30),
        ("sid-b", "bob", 20),
        ("sid-2b", "alice", 20),
        ("sid-2a", "alice", 20),
    ] {
        store
            .create(&record(&clock, id, user, age, 600), None)
            .await
            .unwrap();
    }
    assert_eq!(
        ids(&store.list_by_user("alice").await.unwrap()),
        ["sid-1", "sid-2a", "sid-2b", "sid-3"]
    );
    assert_eq!(ids(&store.list_by_user("bob").await.unwrap()), ["sid-b"]);
    assert!(store.list_by_user("carol").await.unwrap().is_empty());
}

/// Logout-all deletes every session of the user, returns them, and spares everyone else.
pub async fn delete_by_user_deletes_all_and_only_theirs(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    for (id, user, age) in [
        ("sid-1", "alice", 30),
        ("sid-2", "alice", 20),
        ("sid-b", "bob", 10),
    ] {
        store
            .create(&record(&clock, id, user, age, 600), None)
            .await
            .unwrap();
    }
    let deleted = store.delete_by_user("alice", None).await.unwrap();
    assert_eq!(ids(&deleted), ["sid-1", "sid-2"]);
    assert_eq!(deleted[0].user_id, "alice");
    for id in ["sid-1", "sid-2"] {
        assert_eq!(store.load(id).await.unwrap(), None);
    }
    assert!(store.load("sid-b").await.unwrap().is_some());
    assert!(
        store
            .delete_by_user("alice", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .delete_by_user("nobody", None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A login after logout-all is a new session and stays.
pub async fn sessions_created_after_delete_by_user_survive_it(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    store
        .create(&record(&clock, "sid-old", "alice", 10, 600), None)
        .await
        .unwrap();
    assert_eq!(store.delete_by_user("alice", None).await.unwrap().len(), 1);
    store
        .create(&record(&clock, "sid-new", "alice", 0, 600), None)
        .await
        .unwrap();
    assert_eq!(
        ids(&store.list_by_user("alice").await.unwrap()),
        ["sid-new"]
    );
    assert!(store.load("sid-new").await.unwrap().is_some());
}

/// Dozens of sessions for one user, created concurrently, are all listed and all deleted.
pub async fn many_sessions_per_user(store: impl RefreshStore, clock: ManualClock) {
    let store = Arc::new(store);
    let records: Vec<RefreshRecord> = (0..40)
        .map(|i| record(&clock, &format!("sid-{i:02}"), "alice", 100 - i, 600))
        .collect();
    for result in join_all(records.iter().cloned().map(|record| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { store.create(&record, None).await })
    }))
    .await
    {
        result.unwrap().unwrap();
    }
    let listed = store.list_by_user("alice").await.unwrap();
    assert_eq!(ids(&listed), ids(&records));
    assert_eq!(store.delete_by_user("alice", None).await.unwrap().len(), 40);
    assert!(store.list_by_user("alice").await.unwrap().is_empty());
}

/// Hybrid sessions on `store`, on `clock`: the rotation rules run on top of the store, so both
/// stores must give them the same answers.
async fn sessions_on(store: impl RefreshStore, clock: &ManualClock) -> HybridSessions {
    let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
    HybridSessions::builder(issuer, Validation::new())
        .store(store)
        .feed(InProcessFeed::new().with_clock(Arc::new(clock.clone())))
        .clock(Arc::new(clock.clone()))
        .grace_window(Duration::from_secs(5))
        .build()
        .await
        .unwrap()
}

/// RFC 9700 §4.14.2: a refresh token retired any number of rotations ago (more than the
/// record keeps hashes of) is detected as reuse and ends the session; a guess does not.
pub async fn a_refresh_token_retired_many_rotations_ago_revokes_the_session(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let sessions = sessions_on(store, &clock).await;
    let user = json!({"user": "alice"});
    let first = sessions.login("alice", &user, None).await.unwrap();
    let mut current = first.clone();
    for _ in 0..20 {
        clock.advance(Duration::from_secs(10));
        current = sessions
            .refresh(&current.refresh_token().expose())
            .await
            .unwrap();
    }
    let guess = format!(
        "{}.{}",
        first.session_id(),
        SecretToken::generate().expose()
    );
    assert!(matches!(
        sessions.refresh(&guess).await,
        Err(HybridError::InvalidRefreshToken)
    ));
    assert!(matches!(
        sessions.refresh(&first.refresh_token().expose()).await,
        Err(HybridError::TokenReuse)
    ));
    assert!(matches!(
        sessions.refresh(&current.refresh_token().expose()).await,
        Err(HybridError::SessionEnded)
    ));
    assert!(sessions.list("alice").await.unwrap().is_empty());
}

/// Two tabs presenting the same refresh token at once both get the same new one.
pub async fn parallel_refreshes_inside_the_grace_window_all_succeed(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    let sessions = sessions_on(store, &clock).await;
    let pair = sessions
        .login("alice", &json!({"user": "alice"}), None)
        .await
        .unwrap();
    let presented = pair.refresh_token().expose();
    let results = join_all((0..2).map(|_| sessions.refresh(&presented))).await;
    let tokens: Vec<String> = results
        .into_iter()
        .map(|result| result.expect("both tabs succeed").refresh_token().expose())
        .collect();
    assert_eq!(tokens[0], tokens[1], "both tabs converge on one token");
    clock.advance(Duration::from_secs(60));
    sessions.refresh(&tokens[0]).await.unwrap();
}

fn created(evicted: &[&str]) -> CreateOutcome {
    CreateOutcome::Created {
        evicted: evicted.iter().map(|id| (*id).to_owned()).collect(),
    }
}

/// At the limit, `EvictOldest` deletes the oldest sessions and reports their ids.
pub async fn limit_evicts_the_oldest(store: impl RefreshStore, clock: ManualClock) {
    let limit = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::EvictOldest,
    });
    for (id, age) in [("sid-old", 30), ("sid-mid", 20)] {
        let outcome = store
            .create(&record(&clock, id, "alice", age, 600), limit)
            .await
            .unwrap();
        assert_eq!(outcome, created(&[]));
    }
    let outcome = store
        .create(&record(&clock, "sid-new", "alice", 10, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, created(&["sid-old"]));
    assert_eq!(store.load("sid-old").await.unwrap(), None);
    assert_eq!(
        ids(&store.list_by_user("alice").await.unwrap()),
        ["sid-mid", "sid-new"]
    );
    // A smaller limit evicts as many as needed, oldest first.
    let one = Some(SessionLimit {
        max: 1,
        policy: LimitPolicy::EvictOldest,
    });
    let outcome = store
        .create(&record(&clock, "sid-last", "alice", 0, 600), one)
        .await
        .unwrap();
    assert_eq!(outcome, created(&["sid-mid", "sid-new"]));
    assert_eq!(
        ids(&store.list_by_user("alice").await.unwrap()),
        ["sid-last"]
    );
}

/// At the limit, `RefuseNew` stores nothing and says so; other users are not limited.
pub async fn limit_refuses_new_sessions(store: impl RefreshStore, clock: ManualClock) {
    let limit = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::RefuseNew,
    });
    for (id, age) in [("sid-1", 20), ("sid-2", 10)] {
        let outcome = store
            .create(&record(&clock, id, "alice", age, 600), limit)
            .await
            .unwrap();
        assert_eq!(outcome, created(&[]));
    }
    let outcome = store
        .create(&record(&clock, "sid-3", "alice", 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::LimitReached);
    assert_eq!(store.load("sid-3").await.unwrap(), None);
    assert_eq!(
        ids(&store.list_by_user("alice").await.unwrap()),
        ["sid-1", "sid-2"]
    );
    let outcome = store
        .create(&record(&clock, "sid-b", "bob", 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, created(&[]));
}

/// Expired and deleted sessions do not count against the limit.
pub async fn limit_counts_only_live_sessions(store: impl RefreshStore, clock: ManualClock) {
    let limit = Some(SessionLimit {
        max: 1,
        policy: LimitPolicy::RefuseNew,
    });
    store
        .create(&record(&clock, "sid-short", "alice", 0, 10), limit)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    let outcome = store
        .create(&record(&clock, "sid-next", "alice", 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, created(&[]), "the expired session does not count");
    store.delete("sid-next").await.unwrap();
    let outcome = store
        .create(&record(&clock, "sid-after", "alice", 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, created(&[]), "the deleted session does not count");
}

/// Parallel logins of one user cannot squeeze past the limit.
pub async fn concurrent_creates_respect_the_limit(store: impl RefreshStore, clock: ManualClock) {
    let store = Arc::new(store);
    let limit = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::RefuseNew,
    });
    let attempts = (0..12).map(|i| {
        let (store, record) = (
            Arc::clone(&store),
            record(&clock, &format!("sid-{i:02}"), "alice", 0, 600),
        );
        tokio::spawn(async move { store.create(&record, limit).await.unwrap() })
    });
    let outcomes: Vec<CreateOutcome> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let admitted = outcomes
        .iter()
        .filter(|outcome| **outcome == created(&[]))
        .count();
    assert_eq!(admitted, 2, "{outcomes:?}");
    assert_eq!(store.list_by_user("alice").await.unwrap().len(), 2);
}

/// "Sign out other devices": every session of the user but the kept one is deleted.
pub async fn delete_by_user_keeps_the_current_session(
    store: impl RefreshStore,
    clock: ManualClock,
) {
    for (id, user, age) in [
        ("sid-1", "alice", 30),
        ("sid-2", "alice", 20),
        ("sid-3", "alice", 10),
        ("sid-b", "bob", 10),
    ] {
        store
            .create(&record(&clock, id, user, age, 600), None)
            .await
            .unwrap();
    }
    let deleted = store.delete_by_user("alice", Some("sid-2")).await.unwrap();
    assert_eq!(ids(&deleted), ["sid-1", "sid-3"]);
    assert!(store.load("sid-2").await.unwrap().is_some());
    assert_eq!(ids(&store.list_by_user("alice").await.unwrap()), ["sid-2"]);
    // Keeping another user's session protects nothing of this one's.
    assert_eq!(
        ids(&store.delete_by_user("bob", Some("sid-2")).await.unwrap()),
        ["sid-b"]
    );
    assert_eq!(
        ids(&store.delete_by_user("alice", None).await.unwrap()),
        ["sid-2"]
    );
}
