//! The [`SessionStore`] contract as a test suite, run against every implementation.
//!
//! Entry point: [`session_store_conformance!`](crate::session_store_conformance), given a
//! function that builds a store judging expiry by the clock it is handed. It expands to one
//! `#[tokio::test]` per case:
//!
//! ```
//! use std::sync::Arc;
//!
//! use portcullis_core::ManualClock;
//! use portcullis_session::{MemoryStore, MemoryStoreConfig};
//!
//! fn store(clock: ManualClock) -> MemoryStore {
//!     MemoryStore::with_config(MemoryStoreConfig::default().clock(Arc::new(clock)))
//! }
//! portcullis_testkit::session_store_conformance!(store);
//! # fn main() {}
//! ```
//!
//! Every case is also a `pub async fn (store, clock)` here, to call on its own. Cases are
//! store-agnostic: each uses user ids and secrets of its own, so stores may be shared (one
//! Redis under one prefix) and nothing is ever flushed.

use std::{sync::Arc, time::Duration};

use futures_util::future::join_all;
use portcullis_core::{Clock, ManualClock, SecretToken, StoreKey, UserJson, random_handle};
use portcullis_session::{
    CreateOutcome, LimitPolicy, SaveOutcome, SessionLimit, SessionRecord, SessionStore,
};
use serde_json::{Map, json};

/// Expands to one `#[tokio::test]` per case of the session-store suite, each on a fresh store
/// from `$make: fn(ManualClock) -> impl SessionStore`.
#[macro_export]
macro_rules! session_store_conformance {
    ($make:path) => {
        $crate::session_store_conformance!(@cases $make;
            create_then_load_round_trips,
            unknown_keys_are_absent_not_errors,
            save_is_compare_and_set_on_the_version,
            concurrent_saves_have_exactly_one_winner,
            touch_moves_only_the_expiry,
            save_and_touch_can_extend_the_expiry,
            expired_sessions_are_absent_everywhere,
            delete_removes_the_session_everywhere,
            list_by_user_is_oldest_first_and_only_theirs,
            delete_by_handle_deletes_only_that_users_session,
            delete_by_user_deletes_all_but_the_kept_one,
            limit_evicts_the_oldest,
            limit_refuses_new_sessions,
            limit_counts_only_live_sessions,
            limit_ignores_anonymous_sessions,
            concurrent_creates_respect_the_limit,
            replace_user_rewrites_every_session_of_the_user_only,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let clock = $crate::conformance::ManualClock::new();
                let store = $make(clock.clone());
                $crate::conformance::session_store::$case(store, clock).await;
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
pub async fn run_all<S: SessionStore>(make: impl Fn(ManualClock) -> S) {
    let clock = ManualClock::new();
    create_then_load_round_trips(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    unknown_keys_are_absent_not_errors(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    save_is_compare_and_set_on_the_version(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    concurrent_saves_have_exactly_one_winner(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    touch_moves_only_the_expiry(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    save_and_touch_can_extend_the_expiry(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    expired_sessions_are_absent_everywhere(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    delete_removes_the_session_everywhere(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    list_by_user_is_oldest_first_and_only_theirs(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    delete_by_handle_deletes_only_that_users_session(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    delete_by_user_deletes_all_but_the_kept_one(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_evicts_the_oldest(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_refuses_new_sessions(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_counts_only_live_sessions(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    limit_ignores_anonymous_sessions(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    concurrent_creates_respect_the_limit(make(clock.clone()), clock).await;
    let clock = ManualClock::new();
    replace_user_rewrites_every_session_of_the_user_only(make(clock.clone()), clock).await;
}

/// A user id no other test (or run) uses.
pub fn unique_user(name: &str) -> String {
    format!("conformance-{name}-{}", random_handle())
}

/// A fresh store key, as the layer derives it from a new secret.
pub fn new_key() -> StoreKey {
    SecretToken::generate().store_key()
}

/// A record of `user` (anonymous when `None`) created `age` seconds ago, expiring in `ttl`.
pub fn record(clock: &ManualClock, user: Option<&str>, age: u64, ttl: u64) -> SessionRecord {
    let now = clock.unix_seconds();
    SessionRecord {
        handle: random_handle(),
        user_id: user.map(str::to_owned),
        user: user.map(|u| UserJson::new(&json!({"user": u, "role": "advertiser"})).unwrap()),
        data: Map::new(),
        created_at: now - age,
        authenticated_at: user.map(|_| now - age),
        last_seen_at: now - age,
        expires_at: now + ttl,
        absolute_expires_at: now + ttl + 3_600,
        user_agent: Some("conformance/1.0".to_owned()),
        persistent: false,
        version: 0,
    }
}

async fn create(store: &impl SessionStore, key: &StoreKey, record: &SessionRecord) {
    let outcome = store.create(key, record, None).await.unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
}

fn handles(records: &[SessionRecord]) -> Vec<&str> {
    records.iter().map(|r| r.handle.as_str()).collect()
}

/// What `create` stores, `load` returns unchanged: user, nested data, every field.
pub async fn create_then_load_round_trips(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("round-trip");
    let mut original = record(&clock, Some(&user), 0, 600);
    original.data.insert(
        "cart".into(),
        json!({"items": [1, 2, 3], "note": "é \"quoted\""}),
    );
    original.data.insert("flag".into(), json!(true));
    original.persistent = true;
    let key = new_key();
    create(&store, &key, &original).await;
    assert_eq!(store.load(&key).await.unwrap(), Some(original));

    let anonymous = record(&clock, None, 0, 600);
    let key = new_key();
    create(&store, &key, &anonymous).await;
    assert_eq!(store.load(&key).await.unwrap(), Some(anonymous));
}

/// A key nobody created is absent for every operation, and never an error.
pub async fn unknown_keys_are_absent_not_errors(store: impl SessionStore, clock: ManualClock) {
    let key = new_key();
    let user = unique_user("unknown");
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(!store.touch(&key, 1, 2).await.unwrap());
    let outcome = store
        .save(&key, &record(&clock, None, 0, 60), 0)
        .await
        .unwrap();
    assert_eq!(outcome, SaveOutcome::Missing);
    store.delete(&key).await.unwrap();
    assert_eq!(store.list_by_user(&user).await.unwrap(), vec![]);
    assert!(
        !store
            .delete_by_handle(&user, "no-such-handle")
            .await
            .unwrap()
    );
    assert_eq!(store.delete_by_user(&user, None).await.unwrap(), 0);
    assert_eq!(
        store.load(&key).await.unwrap(),
        None,
        "save must not create"
    );
}

/// `save` writes only over the expected version, and the stored version moves by one.
pub async fn save_is_compare_and_set_on_the_version(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("cas");
    let key = new_key();
    let original = record(&clock, Some(&user), 0, 600);
    create(&store, &key, &original).await;

    let mut first = original.clone();
    first.data.insert("a".into(), json!(1));
    first.version = 1;
    assert_eq!(
        store.save(&key, &first, 0).await.unwrap(),
        SaveOutcome::Saved
    );

    let mut stale = original.clone();
    stale.data.insert("b".into(), json!(2));
    stale.version = 1;
    assert_eq!(
        store.save(&key, &stale, 0).await.unwrap(),
        SaveOutcome::Conflict
    );
    assert_eq!(
        store.load(&key).await.unwrap(),
        Some(first.clone()),
        "the loser wrote nothing"
    );

    let mut second = first.clone();
    second.data.insert("b".into(), json!(2));
    second.version = 2;
    assert_eq!(
        store.save(&key, &second, 1).await.unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(store.load(&key).await.unwrap(), Some(second));
    assert_eq!(store.list_by_user(&user).await.unwrap().len(), 1);
}

/// Many writers saving over the same version at once: exactly one wins.
pub async fn concurrent_saves_have_exactly_one_winner(
    store: impl SessionStore,
    clock: ManualClock,
) {
    let store = Arc::new(store);
    let key = new_key();
    let original = record(&clock, Some(&unique_user("race")), 0, 600);
    create(&*store, &key, &original).await;
    let attempts = (0..16).map(|i| {
        let (store, mut record) = (store.clone(), original.clone());
        record.data.insert(format!("writer{i}"), json!(i));
        record.version = 1;
        tokio::spawn(async move { (store.save(&key, &record, 0).await.unwrap(), record) })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let winners: Vec<_> = results
        .iter()
        .filter(|(outcome, _)| *outcome == SaveOutcome::Saved)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        results.iter().map(|r| &r.0).collect::<Vec<_>>()
    );
    assert!(
        results
            .iter()
            .all(|(o, _)| matches!(o, SaveOutcome::Saved | SaveOutcome::Conflict))
    );
    assert_eq!(
        store.load(&key).await.unwrap().as_ref(),
        Some(&winners[0].1)
    );
}

/// `touch` moves `last_seen_at` and `expires_at`, and nothing else.
pub async fn touch_moves_only_the_expiry(store: impl SessionStore, clock: ManualClock) {
    let key = new_key();
    let mut original = record(&clock, Some(&unique_user("touch")), 0, 60);
    original.data.insert("kept".into(), json!("yes"));
    create(&store, &key, &original).await;
    clock.advance(Duration::from_secs(30));
    let now = clock.unix_seconds();
    assert!(store.touch(&key, now, now + 60).await.unwrap());
    let touched = store.load(&key).await.unwrap().unwrap();
    assert_eq!(touched.last_seen_at, now);
    assert_eq!(touched.expires_at, now + 60);
    let mut expected = original.clone();
    expected.last_seen_at = now;
    expected.expires_at = now + 60;
    assert_eq!(
        touched, expected,
        "version, data and the rest are untouched"
    );
    // A save over the unchanged version still succeeds after a touch.
    let mut next = touched.clone();
    next.version = 1;
    assert_eq!(
        store.save(&key, &next, 0).await.unwrap(),
        SaveOutcome::Saved
    );
}

/// A touched or saved session outlives its original deadline.
pub async fn save_and_touch_can_extend_the_expiry(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("extend");
    let (touched, saved) = (new_key(), new_key());
    create(&store, &touched, &record(&clock, Some(&user), 0, 10)).await;
    let original = record(&clock, Some(&user), 0, 10);
    create(&store, &saved, &original).await;
    clock.advance(Duration::from_secs(8));
    let now = clock.unix_seconds();
    assert!(store.touch(&touched, now, now + 10).await.unwrap());
    let mut next = original.clone();
    next.version = 1;
    next.last_seen_at = now;
    next.expires_at = now + 10;
    assert_eq!(
        store.save(&saved, &next, 0).await.unwrap(),
        SaveOutcome::Saved
    );
    clock.advance(Duration::from_secs(8));
    assert!(
        store.load(&touched).await.unwrap().is_some(),
        "16 s after creation, 8 s after the touch"
    );
    assert!(store.load(&saved).await.unwrap().is_some());
    assert_eq!(store.list_by_user(&user).await.unwrap().len(), 2);
}

/// Past `expires_at` a session is gone for load, listing, save, touch and delete by handle.
pub async fn expired_sessions_are_absent_everywhere(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("expired");
    let key = new_key();
    let original = record(&clock, Some(&user), 0, 10);
    create(&store, &key, &original).await;
    let live = new_key();
    create(&store, &live, &record(&clock, Some(&user), 0, 100)).await;
    clock.advance(Duration::from_secs(10));
    assert_eq!(
        store.load(&key).await.unwrap(),
        None,
        "expires_at <= now is expired"
    );
    assert_eq!(handles(&store.list_by_user(&user).await.unwrap()).len(), 1);
    let now = clock.unix_seconds();
    assert!(
        !store.touch(&key, now, now + 100).await.unwrap(),
        "an expired session cannot be revived"
    );
    let mut next = original.clone();
    next.version = 1;
    next.expires_at = now + 100;
    assert_eq!(
        store.save(&key, &next, 0).await.unwrap(),
        SaveOutcome::Missing
    );
    assert!(
        !store
            .delete_by_handle(&user, &original.handle)
            .await
            .unwrap()
    );
    assert_eq!(store.load(&key).await.unwrap(), None);
    assert!(store.load(&live).await.unwrap().is_some());
}

/// `delete` removes the session from loads and listings; deleting twice is fine.
pub async fn delete_removes_the_session_everywhere(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("delete");
    let (gone, kept) = (new_key(), new_key());
    create(&store, &gone, &record(&clock, Some(&user), 1, 600)).await;
    let kept_record = record(&clock, Some(&user), 0, 600);
    create(&store, &kept, &kept_record).await;
    store.delete(&gone).await.unwrap();
    store.delete(&gone).await.unwrap();
    assert_eq!(store.load(&gone).await.unwrap(), None);
    assert_eq!(
        handles(&store.list_by_user(&user).await.unwrap()),
        vec![kept_record.handle.as_str()]
    );
    let anonymous = new_key();
    create(&store, &anonymous, &record(&clock, None, 0, 600)).await;
    store.delete(&anonymous).await.unwrap();
    assert_eq!(store.load(&anonymous).await.unwrap(), None);
}

/// Listings hold the user's live sessions only, oldest first.
pub async fn list_by_user_is_oldest_first_and_only_theirs(
    store: impl SessionStore,
    clock: ManualClock,
) {
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let middle = record(&clock, Some(&alice), 20, 600);
    let newest = record(&clock, Some(&alice), 10, 600);
    let oldest = record(&clock, Some(&alice), 30, 600);
    for r in [&middle, &newest, &oldest] {
        create(&store, &new_key(), r).await;
    }
    let bobs = record(&clock, Some(&bob), 40, 600);
    create(&store, &new_key(), &bobs).await;
    create(&store, &new_key(), &record(&clock, None, 50, 600)).await;
    let listed = store.list_by_user(&alice).await.unwrap();
    assert_eq!(
        handles(&listed),
        vec![
            oldest.handle.as_str(),
            middle.handle.as_str(),
            newest.handle.as_str()
        ]
    );
    assert_eq!(listed[0], oldest, "listings carry whole records");
    assert_eq!(
        handles(&store.list_by_user(&bob).await.unwrap()),
        vec![bobs.handle.as_str()]
    );
}

/// `delete_by_handle` finds the session among the user's own, and only there.
pub async fn delete_by_handle_deletes_only_that_users_session(
    store: impl SessionStore,
    clock: ManualClock,
) {
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let (a1, a2, b1) = (new_key(), new_key(), new_key());
    let a1_record = record(&clock, Some(&alice), 2, 600);
    create(&store, &a1, &a1_record).await;
    create(&store, &a2, &record(&clock, Some(&alice), 1, 600)).await;
    let b1_record = record(&clock, Some(&bob), 0, 600);
    create(&store, &b1, &b1_record).await;

    assert!(
        !store
            .delete_by_handle(&alice, &b1_record.handle)
            .await
            .unwrap(),
        "not alice's"
    );
    assert!(store.load(&b1).await.unwrap().is_some());
    assert!(
        store
            .delete_by_handle(&alice, &a1_record.handle)
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_by_handle(&alice, &a1_record.handle)
            .await
            .unwrap(),
        "only once"
    );
    assert_eq!(store.load(&a1).await.unwrap(), None);
    assert!(store.load(&a2).await.unwrap().is_some());
    assert_eq!(store.list_by_user(&alice).await.unwrap().len(), 1);
}

/// `delete_by_user` ends every session of the user but the kept one, and counts them.
pub async fn delete_by_user_deletes_all_but_the_kept_one(
    store: impl SessionStore,
    clock: ManualClock,
) {
    let (alice, bob) = (unique_user("alice"), unique_user("bob"));
    let keys: Vec<StoreKey> = (0..3).map(|_| new_key()).collect();
    for (i, key) in keys.iter().enumerate() {
        create(
            &store,
            key,
            &record(&clock, Some(&alice), 10 - i as u64, 600),
        )
        .await;
    }
    let bobs = new_key();
    create(&store, &bobs, &record(&clock, Some(&bob), 0, 600)).await;

    assert_eq!(
        store.delete_by_user(&alice, Some(&keys[1])).await.unwrap(),
        2
    );
    assert_eq!(store.load(&keys[0]).await.unwrap(), None);
    assert!(store.load(&keys[1]).await.unwrap().is_some());
    assert_eq!(store.load(&keys[2]).await.unwrap(), None);
    assert_eq!(store.list_by_user(&alice).await.unwrap().len(), 1);
    assert_eq!(store.delete_by_user(&alice, None).await.unwrap(), 1);
    assert_eq!(store.list_by_user(&alice).await.unwrap(), vec![]);
    assert!(
        store.load(&bobs).await.unwrap().is_some(),
        "other users are untouched"
    );
    // The user can sign in again afterwards.
    create(&store, &new_key(), &record(&clock, Some(&alice), 0, 600)).await;
    assert_eq!(store.list_by_user(&alice).await.unwrap().len(), 1);
}

/// At the limit, `EvictOldest` removes the oldest sessions and reports their handles.
pub async fn limit_evicts_the_oldest(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("evict");
    let limit = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::EvictOldest,
    });
    let records: Vec<_> = [30, 20, 10]
        .iter()
        .map(|age| record(&clock, Some(&user), *age, 600))
        .collect();
    let keys: Vec<StoreKey> = records.iter().map(|_| new_key()).collect();
    for i in 0..2 {
        let outcome = store.create(&keys[i], &records[i], limit).await.unwrap();
        assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
    }
    let outcome = store.create(&keys[2], &records[2], limit).await.unwrap();
    assert_eq!(
        outcome,
        CreateOutcome::Created {
            evicted: vec![records[0].handle.clone()]
        }
    );
    assert_eq!(store.load(&keys[0]).await.unwrap(), None);
    assert_eq!(
        handles(&store.list_by_user(&user).await.unwrap()),
        vec![records[1].handle.as_str(), records[2].handle.as_str()]
    );
}

/// At the limit, `RefuseNew` stores nothing and says so.
pub async fn limit_refuses_new_sessions(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("refuse");
    let limit = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::RefuseNew,
    });
    for age in [20, 10] {
        let outcome = store
            .create(&new_key(), &record(&clock, Some(&user), age, 600), limit)
            .await
            .unwrap();
        assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
    }
    let refused = new_key();
    let outcome = store
        .create(&refused, &record(&clock, Some(&user), 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::LimitReached);
    assert_eq!(store.load(&refused).await.unwrap(), None);
    assert_eq!(store.list_by_user(&user).await.unwrap().len(), 2);
    // Another user is not affected by this user's limit.
    let other = unique_user("refuse-other");
    let outcome = store
        .create(&new_key(), &record(&clock, Some(&other), 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
}

/// Expired and deleted sessions do not count against the limit.
pub async fn limit_counts_only_live_sessions(store: impl SessionStore, clock: ManualClock) {
    let user = unique_user("live-limit");
    let limit = Some(SessionLimit {
        max: 1,
        policy: LimitPolicy::RefuseNew,
    });
    let short = new_key();
    store
        .create(&short, &record(&clock, Some(&user), 0, 10), limit)
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));
    let next = new_key();
    let outcome = store
        .create(&next, &record(&clock, Some(&user), 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
    store.delete(&next).await.unwrap();
    let outcome = store
        .create(&new_key(), &record(&clock, Some(&user), 0, 600), limit)
        .await
        .unwrap();
    assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
}

/// Sessions without a user are not limited.
pub async fn limit_ignores_anonymous_sessions(store: impl SessionStore, clock: ManualClock) {
    let limit = Some(SessionLimit {
        max: 1,
        policy: LimitPolicy::RefuseNew,
    });
    for _ in 0..3 {
        let key = new_key();
        let outcome = store
            .create(&key, &record(&clock, None, 0, 600), limit)
            .await
            .unwrap();
        assert_eq!(outcome, CreateOutcome::Created { evicted: vec![] });
        assert!(store.load(&key).await.unwrap().is_some());
    }
}

/// Parallel logins of one user cannot squeeze past the limit.
pub async fn concurrent_creates_respect_the_limit(store: impl SessionStore, clock: ManualClock) {
    let store = Arc::new(store);
    let user = unique_user("parallel");
    let limit = Some(SessionLimit {
        max: 2,
        policy: LimitPolicy::RefuseNew,
    });
    let attempts = (0..12).map(|_| {
        let (store, record) = (store.clone(), record(&clock, Some(&user), 0, 600));
        tokio::spawn(async move { store.create(&new_key(), &record, limit).await.unwrap() })
    });
    let outcomes: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let created = outcomes
        .iter()
        .filter(|o| matches!(o, CreateOutcome::Created { .. }))
        .count();
    assert_eq!(created, 2, "{outcomes:?}");
    assert_eq!(store.list_by_user(&user).await.unwrap().len(), 2);
}

/// A role change: every live session of the user gets the new user and a new version (so a
/// save of the old record conflicts instead of undoing it); other users' sessions, and the
/// data, are untouched.
pub async fn replace_user_rewrites_every_session_of_the_user_only(
    store: impl SessionStore,
    clock: ManualClock,
) {
    let (alice, bob) = (unique_user("promoted"), unique_user("bystander"));
    let mut alice_sessions = Vec::new();
    for age in [20, 10] {
        let key = new_key();
        let mut record = record(&clock, Some(&alice), age, 600);
        record.data.insert("cart".into(), json!([1, 2]));
        create(&store, &key, &record).await;
        alice_sessions.push((key, record));
    }
    let bob_key = new_key();
    let bob_record = record(&clock, Some(&bob), 0, 600);
    create(&store, &bob_key, &bob_record).await;

    let admin = UserJson::new(&json!({"user": alice, "role": "admin"})).unwrap();
    assert_eq!(store.replace_user(&alice, &admin).await.unwrap(), 2);
    for (key, before) in &alice_sessions {
        let after = store.load(key).await.unwrap().expect("still live");
        assert_eq!(
            after.user.as_ref().map(UserJson::as_str),
            Some(admin.as_str())
        );
        assert_eq!(after.version, before.version + 1);
        assert_eq!(after.data, before.data);
        assert_eq!(after.user_id, before.user_id);
        // A request that loaded the old record cannot write the old user back.
        let mut stale = before.clone();
        stale.version = before.version + 1;
        assert_eq!(
            store.save(key, &stale, before.version).await.unwrap(),
            SaveOutcome::Conflict
        );
    }
    assert_eq!(store.load(&bob_key).await.unwrap(), Some(bob_record));
    assert_eq!(store.list_by_user(&alice).await.unwrap().len(), 2);
    assert_eq!(
        store
            .replace_user(&unique_user("nobody"), &admin)
            .await
            .unwrap(),
        0
    );
}
