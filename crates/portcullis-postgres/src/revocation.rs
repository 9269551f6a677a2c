//! [`PostgresRevocationFeed`]: revocations shared by every node through PostgreSQL, pushed with
//! `LISTEN`/`NOTIFY` and recorded in `<prefix>revocations` so a node that was away catches up
//! on what it missed.
//!
//! `publish` is one statement: insert the revocation, delete a bounded batch of rows no longer
//! in force (retention: a row lives until its access tokens could have expired), and
//! `pg_notify` the revocation as JSON, delivered when the statement commits. A subscriber first
//! `LISTEN`s, *then* reads every row still in force, so nothing published in between is lost;
//! after a lost connection (noticed by the driver, or by a heartbeat that re-issues `LISTEN`
//! every second) it does both again. While the database is unreachable the list is marked not
//! caught up ([`RevocationList::is_caught_up`]) and the hybrid edge fails closed on it.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use portcullis_core::{SharedClock, StoreError, SystemClock};
use portcullis_hybrid::{Revocation, RevocationFeed, RevocationList, UserRevocation};
use serde::{Deserialize, Serialize};
use sqlx::{Row, postgres::PgListener};

use crate::connection::{PostgresConnection, store_error, to_sql};

const HEARTBEAT: Duration = Duration::from_secs(1);
const RESYNC: Duration = Duration::from_secs(30);
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// Rows past retention deleted per publish: bounded work, and the table never grows beyond
/// the revocations in force plus what a burst left behind.
const RETENTION_BATCH: i64 = 100;
/// PostgreSQL's longest identifier (and channel name), in bytes.
const MAX_CHANNEL_LEN: usize = 63;

/// One message on the channel and one row of the table.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Message {
    Session(Revocation),
    User(UserRevocation),
}

impl Message {
    fn deliver(&self, list: &RevocationList) {
        match self {
            Self::Session(revocation) => list.insert(revocation),
            Self::User(revocation) => list.insert_user(revocation),
        }
    }

    fn until(&self) -> u64 {
        match self {
            Self::Session(revocation) => revocation.until,
            Self::User(revocation) => revocation.until,
        }
    }
}

/// A [`RevocationFeed`] through PostgreSQL `LISTEN`/`NOTIFY`, backed by a table for catch-up.
/// Clones share subscribers; each subscription listens in a background task of the runtime.
///
/// `publish` returns once the revocation is committed and delivered to the lists this feed (or
/// a clone) subscribed; other nodes receive the notification, usually within milliseconds.
/// `subscribe` does not fail while the database is unreachable: the list is marked not caught
/// up and the feed keeps trying in the background.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use portcullis_hybrid::{RevocationFeed, RevocationList};
/// use portcullis_postgres::{PostgresConfig, PostgresRevocationFeed};
///
/// let database = PostgresConfig::new("postgres://app@127.0.0.1/app").build()?;
/// database.migrate().await?;
/// let feed = PostgresRevocationFeed::new(database);
/// let list = RevocationList::new();
/// feed.subscribe(list.clone()).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresRevocationFeed {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    database: PostgresConnection,
    clock: SharedClock,
    channel: String,
    insert: String,
    catch_up: String,
    lists: Mutex<Vec<RevocationList>>,
    /// Subscriptions not caught up right now.
    behind: AtomicUsize,
    /// Whether any subscription exists (a feed never subscribed is not ready).
    subscribed: AtomicUsize,
}

impl PostgresRevocationFeed {
    /// A feed on `database`'s `<prefix>revocations` table and channel, judging "in force" by the
    /// system clock. The table must exist: run [`PostgresConnection::migrate`] first.
    pub fn new(database: PostgresConnection) -> Self {
        Self::build(database, Arc::new(SystemClock))
    }

    /// Judges which revocations are still in force by `clock` (tests pass a
    /// [`ManualClock`](portcullis_core::ManualClock)).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::sync::Arc;
    /// use portcullis_core::ManualClock;
    /// use portcullis_postgres::{PostgresConfig, PostgresRevocationFeed};
    ///
    /// let database = PostgresConfig::new("postgres://127.0.0.1/app").build().unwrap();
    /// let feed = PostgresRevocationFeed::new(database).with_clock(Arc::new(ManualClock::new()));
    /// # let _ = feed;
    /// # }
    /// ```
    #[must_use]
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self::build(self.shared.database.clone(), clock)
    }

    fn build(database: PostgresConnection, clock: SharedClock) -> Self {
        let tables = database.tables();
        let table = &tables.revocations;
        let channel = channel_name(&tables.schema, &tables.prefix);
        let insert = format!(
            "WITH added AS (INSERT INTO {table} (message, until) VALUES ($1, $2)), \
             expired AS (DELETE FROM {table} WHERE id IN (SELECT id FROM {table} \
             WHERE until < $3 ORDER BY until LIMIT {RETENTION_BATCH} FOR UPDATE SKIP LOCKED)) \
             SELECT pg_notify($4, $1)"
        );
        let catch_up = format!("SELECT message FROM {table} WHERE until >= $1");
        Self {
            shared: Arc::new(Shared {
                database,
                clock,
                channel,
                insert,
                catch_up,
                lists: Mutex::new(Vec::new()),
                behind: AtomicUsize::new(0),
                subscribed: AtomicUsize::new(0),
            }),
        }
    }

    /// Whether every subscription of this feed is listening and caught up (false before the
    /// first `subscribe`): what its readiness check reports.
    pub fn is_caught_up(&self) -> bool {
        self.shared.subscribed.load(Ordering::Acquire) > 0
            && self.shared.behind.load(Ordering::Acquire) == 0
    }

    /// The channel name (for operators watching it with `LISTEN`).
    pub fn channel(&self) -> &str {
        &self.shared.channel
    }

    async fn publish_message(&self, message: &Message) -> Result<(), StoreError> {
        let shared = &self.shared;
        let json = serde_json::to_string(message).map_err(StoreError::corrupt)?;
        let now = to_sql(shared.clock.unix_seconds());
        shared
            .database
            .bounded(async {
                sqlx::query(&shared.insert)
                    .bind(&json)
                    .bind(to_sql(message.until()))
                    .bind(now)
                    .bind(&shared.channel)
                    .execute(shared.database.pool())
                    .await
                    .map_err(store_error)
            })
            .await?;
        for list in shared.lists() {
            message.deliver(&list);
        }
        Ok(())
    }
}

impl Shared {
    fn lists(&self) -> Vec<RevocationList> {
        self.lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every row still in force, into `list`.
    async fn catch_up(&self, list: &RevocationList) -> Result<(), StoreError> {
        let now = to_sql(self.clock.unix_seconds());
        let rows = self
            .database
            .bounded(async {
                sqlx::query(&self.catch_up)
                    .bind(now)
                    .fetch_all(self.database.pool())
                    .await
                    .map_err(store_error)
            })
            .await?;
        for row in rows {
            let json: &str = row.try_get(0).map_err(store_error)?;
            match serde_json::from_str::<Message>(json) {
                Ok(message) => message.deliver(list),
                Err(error) => tracing::warn!(%error, "skipping an undecodable revocation row"),
            }
        }
        Ok(())
    }

    /// `LISTEN`, then catch up: nothing published in between is lost.
    async fn connect(&self, list: &RevocationList) -> Result<PgListener, StoreError> {
        let listener = self
            .database
            .bounded(async {
                let mut listener = PgListener::connect_with(self.database.pool())
                    .await
                    .map_err(store_error)?;
                listener.listen(&self.channel).await.map_err(store_error)?;
                Ok(listener)
            })
            .await?;
        self.catch_up(list).await?;
        Ok(listener)
    }

    fn mark(&self, list: &RevocationList, caught_up: bool, was: &mut bool) {
        if caught_up != *was {
            if caught_up {
                self.behind.fetch_sub(1, Ordering::AcqRel);
            } else {
                self.behind.fetch_add(1, Ordering::AcqRel);
            }
            *was = caught_up;
        }
        list.set_caught_up(caught_up);
    }
}

/// Listens until the connection fails; returns then (the caller reconnects and catches up).
async fn listen(shared: &Shared, listener: &mut PgListener, list: &RevocationList) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut resync = tokio::time::interval(RESYNC);
    heartbeat.reset();
    resync.reset();
    loop {
        tokio::select! {
            received = listener.try_recv() => match received {
                Ok(Some(notification)) => match serde_json::from_str::<Message>(notification.payload()) {
                    Ok(message) => message.deliver(list),
                    Err(error) => tracing::warn!(%error, "skipping an undecodable revocation"),
                },
                // The connection was lost: notifications may have been missed.
                Ok(None) | Err(_) => return,
            },
            _ = heartbeat.tick() => {
                // Re-issuing LISTEN is a no-op that proves the connection still answers (a
                // silently dead path reports no disconnection).
                let alive = tokio::time::timeout(
                    shared.database.command_timeout(),
                    listener.listen(&shared.channel),
                )
                .await;
                if !matches!(alive, Ok(Ok(()))) {
                    return;
                }
            }
            _ = resync.tick() => {
                // A safety net for a notification lost any other way.
                if shared.catch_up(list).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The subscription's background task: listen, and after any failure reconnect and catch up,
/// with the list marked behind meanwhile. Ends when every feed clone is gone.
async fn run(
    shared: std::sync::Weak<Shared>,
    list: RevocationList,
    mut listener: Option<PgListener>,
    mut caught_up: bool,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        let Some(feed) = shared.upgrade() else {
            return;
        };
        match listener.take() {
            Some(mut connected) => {
                delay = Duration::from_millis(50);
                listen(&feed, &mut connected, &list).await;
                feed.mark(&list, false, &mut caught_up);
                tracing::warn!("revocation feed connection lost; reconnecting");
            }
            None => match feed.connect(&list).await {
                Ok(connected) => {
                    feed.mark(&list, true, &mut caught_up);
                    listener = Some(connected);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "revocation feed cannot reach the database yet");
                }
            },
        }
        drop(feed);
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RECONNECT_DELAY);
    }
}

impl RevocationFeed for PostgresRevocationFeed {
    async fn publish(&self, revocation: &Revocation) -> Result<(), StoreError> {
        self.publish_message(&Message::Session(revocation.clone()))
            .await
    }

    async fn publish_user(&self, revocation: &UserRevocation) -> Result<(), StoreError> {
        self.publish_message(&Message::User(revocation.clone()))
            .await
    }

    async fn subscribe(&self, list: RevocationList) -> Result<(), StoreError> {
        let shared = &self.shared;
        shared
            .lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(list.clone());
        let connected = match shared.connect(&list).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "revocation feed not caught up; retrying in the background");
                list.set_caught_up(false);
                shared.behind.fetch_add(1, Ordering::AcqRel);
                None
            }
        };
        let caught_up = connected.is_some();
        shared.subscribed.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(run(Arc::downgrade(shared), list, connected, caught_up));
        Ok(())
    }
}

/// `<schema>.<prefix>revocations`, or a stable hash of it when that is longer than a channel
/// name may be (every node must derive the same name, whatever its build).
fn channel_name(schema: &str, prefix: &str) -> String {
    let name = format!("{schema}.{prefix}revocations");
    if name.len() <= MAX_CHANNEL_LEN {
        return name;
    }
    // FNV-1a: tiny, and the same on every platform and compiler version.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("portcullis_revocations_{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_fit_and_stay_distinct() {
        assert_eq!(
            channel_name("public", "portcullis_"),
            "public.portcullis_revocations"
        );
        let long_a = channel_name(&"a".repeat(63), "x_");
        let long_b = channel_name(&"a".repeat(63), "y_");
        assert!(long_a.len() <= MAX_CHANNEL_LEN);
        assert_ne!(long_a, long_b);
    }

    #[test]
    fn messages_round_trip_as_json() {
        let message = Message::User(UserRevocation {
            user_id: "alice".into(),
            not_before_ms: 5,
            until: 9,
        });
        let json = serde_json::to_string(&message).unwrap();
        let back: Message = serde_json::from_str(&json).unwrap();
        assert_eq!(back.until(), 9);
        assert!(json.contains(r#""kind":"user""#), "{json}");
    }
}
