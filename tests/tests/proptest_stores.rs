//! Differential property tests: random sequences of operations (with the clock moving between
//! them) against the in-memory reference stores and the Redis stores give the same observable
//! results, operation by operation. Covers `SessionStore` (create with per-user limits, load,
//! compare-and-set save, touch, delete, listing and revocation by user and handle) and
//! `RefreshStore` (create, load, compare-and-swap rotation, delete, listing, logout-all).
//!
//! Redis comes from `REDIS_URL` (set by `scripts/test.sh`) or is started by the harness; every
//! case uses a key prefix of its own and its own user ids, so nothing is ever flushed. The
//! session and refresh stores run the same sequences against PostgreSQL too (`PORTCULLIS_TEST_DATABASE_URL`,
//! see `portcullis_tests::postgres_server`), in a schema of this process's own.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use portcullis_core::{Clock, ManualClock, SecretToken, StoreKey, UserJson, random_handle};
use portcullis_hybrid::{MemoryRefreshStore, RefreshRecord, RefreshStore, RotatedToken};
use portcullis_postgres::{PostgresConnection, PostgresRefreshStore, PostgresSessionStore};
use portcullis_redis::{RedisConfig, RedisConnection, RedisRefreshStore, RedisSessionStore};
use portcullis_session::{
    CreateOutcome, LimitPolicy, MemoryStore, MemoryStoreConfig, SessionLimit, SessionRecord,
    SessionStore,
};
use portcullis_tests::redis_server::{shared_url, unique_prefix};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_json::json;

/// Session keys and refresh session ids a case draws from.
const SLOTS: usize = 6;
/// Users a case draws from.
const USERS: usize = 3;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn redis() -> RedisConnection {
    RedisConfig::new(shared_url())
        .key_prefix(unique_prefix("proptest"))
        .build()
        .unwrap()
}

/// One schema for every PostgreSQL case of this process: each case uses users and keys of its
/// own, as with Redis prefixes.
async fn postgres() -> PostgresConnection {
    static DATABASE: tokio::sync::OnceCell<PostgresConnection> = tokio::sync::OnceCell::const_new();
    DATABASE
        .get_or_init(|| portcullis_tests::postgres_server::migrated("proptest"))
        .await
        .clone()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 48,
        // Shrinking talks to Redis too: keep it bounded.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}

/// Checks a listing is oldest first, then orders sessions created in the same second by id:
/// the contract leaves their order open.
fn oldest_first<R>(mut records: Vec<R>, key: fn(&R) -> (u64, String)) -> Result<Vec<R>, String> {
    if records
        .windows(2)
        .any(|pair| key(&pair[0]).0 > key(&pair[1]).0)
    {
        return Err("a listing is not oldest first".to_owned());
    }
    records.sort_by_key(key);
    Ok(records)
}

fn session_order(record: &SessionRecord) -> (u64, String) {
    (record.created_at, record.handle.clone())
}

fn refresh_order(record: &RefreshRecord) -> (u64, String) {
    (record.created_at, record.session_id.clone())
}

// ---------------------------------------------------------------------------------------------
// SessionStore

#[derive(Debug, Clone)]
enum SessionOp {
    Create {
        slot: usize,
        /// `None`: an anonymous session.
        user: Option<usize>,
        idle: u64,
        absolute: u64,
        limit: Option<(u32, bool)>,
    },
    Load {
        slot: usize,
    },
    Save {
        slot: usize,
        value: u8,
        /// Use the version last loaded (`true`) or a stale one.
        current_version: bool,
        extend: u64,
    },
    Touch {
        slot: usize,
        extend: u64,
    },
    Delete {
        slot: usize,
    },
    List {
        user: usize,
    },
    DeleteByHandle {
        user: usize,
        slot: usize,
    },
    DeleteByUser {
        user: usize,
        keep: Option<usize>,
    },
    Advance {
        secs: u64,
    },
}

fn session_op() -> impl Strategy<Value = SessionOp> {
    let slot = 0..SLOTS;
    let user = 0..USERS;
    prop_oneof![
        4 => (
            slot.clone(),
            prop::option::weighted(0.85, user.clone()),
            1u64..120,
            1u64..240,
            prop::option::weighted(0.3, (1u32..3, any::<bool>())),
        )
            .prop_map(|(slot, user, idle, absolute, limit)| SessionOp::Create {
                slot,
                user,
                idle,
                absolute,
                limit
            }),
        3 => slot.clone().prop_map(|slot| SessionOp::Load { slot }),
        2 => (slot.clone(), any::<u8>(), prop::bool::weighted(0.8), 0u64..120).prop_map(
            |(slot, value, current_version, extend)| SessionOp::Save {
                slot,
                value,
                current_version,
                extend
            }
        ),
        2 => (slot.clone(), 0u64..120).prop_map(|(slot, extend)| SessionOp::Touch { slot, extend }),
        1 => slot.clone().prop_map(|slot| SessionOp::Delete { slot }),
        2 => user.clone().prop_map(|user| SessionOp::List { user }),
        1 => (user.clone(), slot.clone())
            .prop_map(|(user, slot)| SessionOp::DeleteByHandle { user, slot }),
        1 => (user, prop::option::of(slot))
            .prop_map(|(user, keep)| SessionOp::DeleteByUser { user, keep }),
        2 => (1u64..90).prop_map(|secs| SessionOp::Advance { secs }),
    ]
}

/// One backend under test, with its own clock moved in step with the other's.
struct SessionSide<S> {
    store: S,
    clock: ManualClock,
}

/// What both stores are driven with: the keys, users and handles of this case.
struct SessionCase {
    keys: Vec<StoreKey>,
    users: Vec<String>,
    /// The handle of the record last created in each slot (for `DeleteByHandle`).
    handles: Vec<String>,
    /// The record last loaded from each slot (by the memory store), the base of saves.
    last_seen: Vec<Option<SessionRecord>>,
    /// The current expiry of each slot's session: the layer only ever moves it forward, and so
    /// do saves and touches here. (Moving it backwards is outside what the layer does: the
    /// Redis index keeps the higher score until it passes, counting the session against a
    /// per-user limit meanwhile, where the memory store does not.)
    floor: Vec<u64>,
}

impl SessionCase {
    fn new() -> Self {
        let tag = random_handle();
        Self {
            keys: (0..SLOTS)
                .map(|_| SecretToken::generate().store_key())
                .collect(),
            users: (0..USERS).map(|i| format!("prop-{tag}-user-{i}")).collect(),
            handles: (0..SLOTS).map(|_| random_handle()).collect(),
            last_seen: vec![None; SLOTS],
            floor: vec![0; SLOTS],
        }
    }
}

/// The observable result of one operation, comparable across stores.
#[derive(Debug, PartialEq)]
enum Observed {
    /// Created, evicting these handles.
    Created(Vec<String>),
    Record(Option<SessionRecord>),
    Records(Vec<SessionRecord>),
    Outcome(String),
    Count(u64),
    Flag(bool),
    Unit,
}

async fn apply_session<S: SessionStore>(
    side: &SessionSide<S>,
    case: &SessionCase,
    op: &SessionOp,
) -> Result<Observed, String> {
    let now = side.clock.unix_seconds();
    let store = &side.store;
    let error = |e: portcullis_core::StoreError| format!("store error: {e}");
    Ok(match op {
        SessionOp::Create {
            slot,
            user,
            idle,
            absolute,
            limit,
        } => {
            let user_id = user.map(|u| case.users[u].clone());
            let record = SessionRecord {
                handle: case.handles[*slot].clone(),
                user: user_id
                    .as_ref()
                    .map(|u| UserJson::new(&json!({"user": u, "role": "advertiser"})).unwrap()),
                user_id,
                data: serde_json::Map::new(),
                created_at: now,
                authenticated_at: user.map(|_| now),
                last_seen_at: now,
                expires_at: now + (*idle).min(*absolute),
                absolute_expires_at: now + absolute,
                user_agent: Some("proptest/1.0".to_owned()),
                persistent: *absolute > 120,
                version: 0,
            };
            let limit = limit.map(|(max, refuse)| SessionLimit {
                max,
                policy: if refuse {
                    LimitPolicy::RefuseNew
                } else {
                    LimitPolicy::EvictOldest
                },
            });
            let outcome = store
                .create(&case.keys[*slot], &record, limit)
                .await
                .map_err(error)?;
            if let CreateOutcome::Created { mut evicted } = outcome {
                // Which sessions went matters, not the order they are reported in.
                evicted.sort();
                return Ok(Observed::Created(evicted));
            }
            Observed::Outcome(format!("{outcome:?}"))
        }
        SessionOp::Load { slot } => {
            Observed::Record(store.load(&case.keys[*slot]).await.map_err(error)?)
        }
        SessionOp::Save {
            slot,
            value,
            current_version,
            extend,
        } => {
            let Some(base) = &case.last_seen[*slot] else {
                return Ok(Observed::Unit);
            };
            let mut record = base.clone();
            record.data.insert("value".into(), json!(value));
            record.last_seen_at = now;
            record.expires_at = (now + extend)
                .max(case.floor[*slot])
                .min(record.absolute_expires_at);
            let expected = if *current_version {
                record.version
            } else {
                record.version.wrapping_sub(1)
            };
            record.version = expected.wrapping_add(1);
            let outcome = store
                .save(&case.keys[*slot], &record, expected)
                .await
                .map_err(error)?;
            Observed::Outcome(format!("{outcome:?}"))
        }
        SessionOp::Touch { slot, extend } => Observed::Flag(
            store
                .touch(
                    &case.keys[*slot],
                    now,
                    (now + extend).max(case.floor[*slot]),
                )
                .await
                .map_err(error)?,
        ),
        SessionOp::Delete { slot } => {
            store.delete(&case.keys[*slot]).await.map_err(error)?;
            Observed::Unit
        }
        SessionOp::List { user } => {
            let records = store
                .list_by_user(&case.users[*user])
                .await
                .map_err(error)?;
            Observed::Records(oldest_first(records, session_order)?)
        }
        SessionOp::DeleteByHandle { user, slot } => Observed::Flag(
            store
                .delete_by_handle(&case.users[*user], &case.handles[*slot])
                .await
                .map_err(error)?,
        ),
        SessionOp::DeleteByUser { user, keep } => Observed::Count(
            store
                .delete_by_user(&case.users[*user], keep.map(|k| &case.keys[k]))
                .await
                .map_err(error)?,
        ),
        SessionOp::Advance { secs } => {
            side.clock.advance(Duration::from_secs(*secs));
            Observed::Unit
        }
    })
}

/// Runs `ops` against the memory store and the store `other` builds (judging expiry by the
/// clock it is handed), comparing every observable result.
async fn differential_sessions<S: SessionStore>(
    ops: Vec<SessionOp>,
    name: &str,
    other: impl FnOnce(ManualClock) -> S,
) -> Result<(), TestCaseError> {
    let start = ManualClock::new();
    let at = start.unix_seconds();
    let memory_clock = ManualClock::at_unix_seconds(at);
    let redis_clock = ManualClock::at_unix_seconds(at);
    let memory = SessionSide {
        store: MemoryStore::with_config(
            MemoryStoreConfig::default().clock(Arc::new(memory_clock.clone())),
        ),
        clock: memory_clock,
    };
    let redis = SessionSide {
        store: other(redis_clock.clone()),
        clock: redis_clock,
    };
    let mut case = SessionCase::new();
    for (step, op) in ops.iter().enumerate() {
        // `create` takes a fresh key (the contract's precondition: keys are new random
        // secrets), so a slot names the latest session created in it.
        if let SessionOp::Create { slot, .. } = op {
            case.keys[*slot] = SecretToken::generate().store_key();
            case.handles[*slot] = random_handle();
            // One login per second, so "the oldest session" (the one a limit evicts) is
            // always one session; ties are left open by the contract.
            memory.clock.advance(Duration::from_secs(1));
            redis.clock.advance(Duration::from_secs(1));
        }
        for slot in 0..SLOTS {
            let current = memory.store.load(&case.keys[slot]).await.unwrap();
            case.floor[slot] = current.map_or(0, |record| record.expires_at);
        }
        let live_before: Vec<String> = match op {
            SessionOp::Create {
                user: Some(user), ..
            } => memory
                .store
                .list_by_user(&case.users[*user])
                .await
                .unwrap()
                .into_iter()
                .map(|record| record.handle)
                .collect(),
            _ => Vec::new(),
        };
        let expected = apply_session(&memory, &case, op).await;
        let mut actual = apply_session(&redis, &case, op).await;
        // The Redis index raises a session's entry before writing the record; a save that then
        // loses its compare-and-set leaves the entry high after the record has died, and `create`
        // reports that dead session among the evicted. Only live sessions count here; the
        // listings and later operations still have to agree exactly.
        if let Ok(Observed::Created(evicted)) = &mut actual {
            evicted.retain(|handle| live_before.contains(handle));
        }
        prop_assert_eq!(
            &expected,
            &actual,
            "step {} {:?}: memory and {} disagree",
            step,
            op,
            name
        );
        // A save that lost its compare-and-set is retried on the record as it is now, as the
        // layer does (`SessionConfig::save_retries`). The Redis index counts on that retry: the
        // lost save already raised the session's index entry, and the retry brings the record
        // up to it (docs/SECURITY.md, known limitations). A lost save left alone would keep a
        // dead session counted against a per-user limit until that raised expiry passes.
        if let (
            SessionOp::Save {
                slot,
                value,
                current_version: false,
                extend,
            },
            Ok(Observed::Outcome(outcome)),
        ) = (op, &expected)
            && outcome == "Conflict"
        {
            case.last_seen[*slot] = memory.store.load(&case.keys[*slot]).await.unwrap();
            let retry = SessionOp::Save {
                slot: *slot,
                value: *value,
                current_version: true,
                extend: *extend,
            };
            let expected = apply_session(&memory, &case, &retry).await;
            let actual = apply_session(&redis, &case, &retry).await;
            prop_assert_eq!(
                &expected,
                &actual,
                "step {} {:?} (the retry of a lost save): memory and {} disagree",
                step,
                op,
                name
            );
        }
        // Saves build on what the store last showed, as the layer does.
        if let (SessionOp::Load { slot }, Ok(Observed::Record(record))) = (op, &expected) {
            case.last_seen[*slot] = record.clone();
        }
        if let SessionOp::Create { slot, .. } = op {
            case.last_seen[*slot] = memory.store.load(&case.keys[*slot]).await.unwrap();
        }
    }
    // Whatever happened, both end with the same sessions for every user.
    for user in &case.users {
        let expected = memory.store.list_by_user(user).await.unwrap();
        let actual = redis.store.list_by_user(user).await.unwrap();
        prop_assert_eq!(
            oldest_first(expected, session_order),
            oldest_first(actual, session_order)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn session_stores_agree(ops in prop::collection::vec(session_op(), 1..40)) {
        runtime().block_on(differential_sessions(ops, "Redis", |clock| {
            RedisSessionStore::new(redis()).with_clock(Arc::new(clock))
        }))?;
    }

    #[test]
    fn session_stores_agree_on_postgres(ops in prop::collection::vec(session_op(), 1..40)) {
        let database = runtime().block_on(postgres());
        runtime().block_on(differential_sessions(ops, "PostgreSQL", |clock| {
            PostgresSessionStore::new(database).with_clock(Arc::new(clock))
        }))?;
    }
}

// ---------------------------------------------------------------------------------------------
// RefreshStore

#[derive(Debug, Clone)]
enum RefreshOp {
    Create {
        slot: usize,
        user: usize,
        idle: u64,
    },
    Load {
        slot: usize,
    },
    Rotate {
        slot: usize,
        current: bool,
        idle: u64,
    },
    Delete {
        slot: usize,
    },
    List {
        user: usize,
    },
    DeleteByUser {
        user: usize,
    },
    Advance {
        secs: u64,
    },
}

fn refresh_op() -> impl Strategy<Value = RefreshOp> {
    let slot = 0..SLOTS;
    let user = 0..USERS;
    prop_oneof![
        3 => (slot.clone(), user.clone(), 1u64..120)
            .prop_map(|(slot, user, idle)| RefreshOp::Create { slot, user, idle }),
        3 => slot.clone().prop_map(|slot| RefreshOp::Load { slot }),
        3 => (slot.clone(), prop::bool::weighted(0.8), 1u64..120)
            .prop_map(|(slot, current, idle)| RefreshOp::Rotate { slot, current, idle }),
        1 => slot.prop_map(|slot| RefreshOp::Delete { slot }),
        2 => user.clone().prop_map(|user| RefreshOp::List { user }),
        1 => user.prop_map(|user| RefreshOp::DeleteByUser { user }),
        2 => (1u64..90).prop_map(|secs| RefreshOp::Advance { secs }),
    ]
}

struct RefreshSide<S> {
    store: S,
    clock: ManualClock,
}

struct RefreshCase {
    session_ids: Vec<String>,
    users: Vec<String>,
    last_seen: Vec<Option<RefreshRecord>>,
}

// Compared once per operation in a test: the size of a record does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
enum RefreshObserved {
    Record(Option<RefreshRecord>),
    Records(Vec<RefreshRecord>),
    Flag(bool),
    Created,
    Unit,
}

async fn apply_refresh<S: RefreshStore>(
    side: &RefreshSide<S>,
    case: &RefreshCase,
    op: &RefreshOp,
) -> Result<RefreshObserved, String> {
    let now = side.clock.unix_seconds();
    let store = &side.store;
    let error = |e: portcullis_core::StoreError| format!("store error: {e}");
    Ok(match op {
        RefreshOp::Create { slot, user, idle } => {
            let user_id = case.users[*user].clone();
            let record = RefreshRecord {
                session_id: case.session_ids[*slot].clone(),
                user: json!({"user": user_id}),
                user_id,
                created_at: now,
                authenticated_at: now,
                refreshed_at: now,
                idle_expires_at: now + idle,
                absolute_expires_at: now + 200,
                // Derived from the slot and the time, so both stores get the same record.
                current_hash: StoreKey::from_bytes([u8::try_from(*slot).unwrap_or(0); 32]),
                previous: Vec::new(),
                generation: 0,
                family_hash: None,
                user_agent: None,
            };
            store.create(&record, None).await.map_err(error)?;
            RefreshObserved::Created
        }
        RefreshOp::Load { slot } => {
            RefreshObserved::Record(store.load(&case.session_ids[*slot]).await.map_err(error)?)
        }
        RefreshOp::Rotate {
            slot,
            current,
            idle,
        } => {
            let Some(base) = &case.last_seen[*slot] else {
                return Ok(RefreshObserved::Unit);
            };
            let mut next = base.clone();
            next.previous.push(RotatedToken {
                hash: base.current_hash,
                rotated_at: now,
                successor: None,
            });
            next.current_hash =
                StoreKey::from_bytes([u8::try_from(base.generation % 251).unwrap_or(0); 32]);
            next.refreshed_at = now;
            next.idle_expires_at = (now + idle).min(next.absolute_expires_at);
            // Rotations keep the session's user. Moving it to another user makes the Redis
            // store disagree with the memory store (the old user's, or after a lost CAS the new
            // user's, logout-all deletes it): docs/SECURITY.md, known limitations. The hybrid
            // mechanism never moves a session between users.
            let expected = if *current {
                base.generation
            } else {
                base.generation.wrapping_add(7)
            };
            next.generation = expected.wrapping_add(1);
            RefreshObserved::Flag(
                store
                    .compare_and_swap(&next, expected)
                    .await
                    .map_err(error)?,
            )
        }
        RefreshOp::Delete { slot } => RefreshObserved::Record(
            store
                .delete(&case.session_ids[*slot])
                .await
                .map_err(error)?,
        ),
        RefreshOp::List { user } => {
            let records = store
                .list_by_user(&case.users[*user])
                .await
                .map_err(error)?;
            RefreshObserved::Records(oldest_first(records, refresh_order)?)
        }
        RefreshOp::DeleteByUser { user } => {
            let mut deleted = store
                .delete_by_user(&case.users[*user], None)
                .await
                .map_err(error)?;
            // The contract returns what was deleted, in no promised order.
            deleted.sort_by(|a, b| a.session_id.cmp(&b.session_id));
            RefreshObserved::Records(deleted)
        }
        RefreshOp::Advance { secs } => {
            side.clock.advance(Duration::from_secs(*secs));
            RefreshObserved::Unit
        }
    })
}

/// Runs `ops` against the memory store and the store `other` builds, comparing every result.
async fn differential_refresh<S: RefreshStore>(
    ops: Vec<RefreshOp>,
    name: &str,
    other: impl FnOnce(ManualClock) -> S,
) -> Result<(), TestCaseError> {
    let at = ManualClock::new().unix_seconds();
    let memory_clock = ManualClock::at_unix_seconds(at);
    let redis_clock = ManualClock::at_unix_seconds(at);
    let memory = RefreshSide {
        store: MemoryRefreshStore::new().with_clock(Arc::new(memory_clock.clone())),
        clock: memory_clock,
    };
    let redis = RefreshSide {
        store: other(redis_clock.clone()),
        clock: redis_clock,
    };
    let tag = random_handle();
    let mut case = RefreshCase {
        session_ids: (0..SLOTS).map(|i| format!("{tag}-{i}-0")).collect(),
        users: (0..USERS).map(|i| format!("prop-{tag}-user-{i}")).collect(),
        last_seen: vec![None; SLOTS],
    };
    for (step, op) in ops.iter().enumerate() {
        // `create` is a login: a new session id each time (the contract's precondition).
        if let RefreshOp::Create { slot, .. } = op {
            case.session_ids[*slot] = format!("{tag}-{slot}-{step}");
        }
        let expected = apply_refresh(&memory, &case, op).await;
        let actual = apply_refresh(&redis, &case, op).await;
        prop_assert_eq!(
            &expected,
            &actual,
            "step {} {:?}: memory and {} disagree",
            step,
            op,
            name
        );
        match (op, &expected) {
            (RefreshOp::Load { slot }, Ok(RefreshObserved::Record(record))) => {
                case.last_seen[*slot] = record.clone();
            }
            (RefreshOp::Create { slot, .. }, _) => {
                case.last_seen[*slot] = memory.store.load(&case.session_ids[*slot]).await.unwrap();
            }
            _ => {}
        }
    }
    for user in &case.users {
        let expected = memory.store.list_by_user(user).await.unwrap();
        let actual = redis.store.list_by_user(user).await.unwrap();
        prop_assert_eq!(
            oldest_first(expected, refresh_order),
            oldest_first(actual, refresh_order)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn refresh_stores_agree(ops in prop::collection::vec(refresh_op(), 1..40)) {
        runtime().block_on(differential_refresh(ops, "Redis", |clock| {
            RedisRefreshStore::new(redis()).with_clock(Arc::new(clock))
        }))?;
    }

    #[test]
    fn refresh_stores_agree_on_postgres(ops in prop::collection::vec(refresh_op(), 1..40)) {
        let database = runtime().block_on(postgres());
        runtime().block_on(differential_refresh(ops, "PostgreSQL", |clock| {
            PostgresRefreshStore::new(database).with_clock(Arc::new(clock))
        }))?;
    }
}
