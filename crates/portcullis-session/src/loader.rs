//! [`UserLoader`]: the session layer reads the signed-in user from the application's own user
//! table (by user id) instead of the snapshot stored at login, so a role change or a deleted
//! account takes effect on the user's very next request. Loaded users are cached per node, and
//! a "user changed" announcement on the revocation feed drops the cached copy on every node.
//!
//! OWASP Authorization Cheat Sheet ("Validate the permissions on every request"): a session
//! must not keep privileges the account has lost.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    pin::Pin,
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant, UNIX_EPOCH},
};

use portcullis_core::{
    SharedClock, StoreError, SystemClock, UserJson,
    revocation::{RevocationFeed, RevocationList, UserRevocation},
};
use serde::Serialize;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Default [`UserLoaderBuilder::capacity`].
pub const DEFAULT_CAPACITY: usize = 10_000;
/// Default [`UserLoaderBuilder::max_age`].
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// Finds a user by id in the application's user table: `Ok(None)` when the account no longer
/// exists or is disabled (every session of theirs then ends). Closures
/// `Fn(String) -> impl Future<Output = Result<Option<U>, StoreError>>` implement it.
///
/// # Examples
///
/// ```
/// use portcullis_core::StoreError;
/// use portcullis_session::LoadUser;
/// use serde_json::json;
///
/// fn assert_load(_: impl LoadUser) {}
/// assert_load(|user_id: String| async move {
///     // Look the user up in the application's database here.
///     Ok::<_, StoreError>((user_id == "alice").then(|| json!({"user": "alice", "role": "admin"})))
/// });
/// ```
pub trait LoadUser: Send + Sync + 'static {
    /// The user as they are now, or `None` if they are gone.
    fn load(
        &self,
        user_id: String,
    ) -> impl Future<Output = Result<Option<UserJson>, StoreError>> + Send;
}

impl<F, Fut, U> LoadUser for F
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<U>, StoreError>> + Send,
    U: Serialize,
{
    async fn load(&self, user_id: String) -> Result<Option<UserJson>, StoreError> {
        match self(user_id).await? {
            Some(user) => UserJson::new(&user).map(Some).map_err(StoreError::corrupt),
            None => Ok(None),
        }
    }
}

trait DynLoadUser: Send + Sync {
    fn load(&self, user_id: String) -> BoxFuture<'_, Result<Option<UserJson>, StoreError>>;
}

impl<T: LoadUser> DynLoadUser for T {
    fn load(&self, user_id: String) -> BoxFuture<'_, Result<Option<UserJson>, StoreError>> {
        Box::pin(LoadUser::load(self, user_id))
    }
}

trait DynPublish: Send + Sync {
    fn publish_user<'a>(
        &'a self,
        revocation: &'a UserRevocation,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<T: RevocationFeed> DynPublish for T {
    fn publish_user<'a>(
        &'a self,
        revocation: &'a UserRevocation,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(RevocationFeed::publish_user(self, revocation))
    }
}

struct Cached {
    /// `None`: the user is gone.
    user: Option<UserJson>,
    /// [`RevocationList::change_mark`] taken before the load.
    mark: u64,
    loaded_at: Instant,
}

struct Inner {
    load: Box<dyn DynLoadUser>,
    /// `None`: changes are heard on this node only.
    feed: Option<Box<dyn DynPublish>>,
    changes: RevocationList,
    cache: RwLock<HashMap<String, Cached>>,
    capacity: usize,
    max_age: Duration,
    clock: SharedClock,
}

/// The session layer's user loader: by user id to the current user, cached per node and
/// invalidated on every node by [`UserLoader::user_changed`]. Give it to
/// [`SessionLayer::user_loader`](crate::SessionLayer::user_loader). Clones share the cache.
///
/// It runs only when a handler or guard asks for the user (`CurrentUser<U>`,
/// `Authorized<U, P>`), at most once per request, and not at all while the user is cached.
/// A cached copy is dropped when a change of that user arrives on the revocation feed, and in
/// any case after [`UserLoaderBuilder::max_age`]. While the feed is not caught up (its backend
/// unreachable), the cache is bypassed and every request loads the user: a change this node
/// may have missed never lets a stale role through (fail closed on authorization, open on
/// availability, since the source itself answers).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use portcullis_core::{StoreError, revocation::InProcessFeed};
/// use portcullis_session::UserLoader;
/// use serde_json::json;
///
/// let loader = UserLoader::builder(|user_id: String| async move {
///     Ok::<_, StoreError>((user_id == "alice").then(|| json!({"user": "alice", "role": "admin"})))
/// })
/// .feed(InProcessFeed::new()) // RedisRevocationFeed to reach every node
/// .build()
/// .await?;
/// assert!(loader.load("alice").await?.is_some());
/// assert!(loader.load("mallory").await?.is_none());
/// // After a role change: every node reloads alice on her next request.
/// loader.user_changed("alice").await?;
/// # Ok::<(), StoreError>(()) }).unwrap();
/// ```
#[derive(Clone)]
pub struct UserLoader {
    inner: Arc<Inner>,
}

impl fmt::Debug for UserLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLoader")
            .field("cached", &self.cached())
            .field("capacity", &self.inner.capacity)
            .field("max_age", &self.inner.max_age)
            .finish_non_exhaustive()
    }
}

/// Settings of a [`UserLoader`]; see [`UserLoader::builder`].
pub struct UserLoaderBuilder {
    load: Box<dyn DynLoadUser>,
    feed: Option<FeedSetup>,
    capacity: usize,
    max_age: Duration,
    clock: SharedClock,
}

type FeedSetup = (
    Box<dyn DynPublish>,
    Box<dyn FnOnce(RevocationList) -> BoxFuture<'static, Result<(), StoreError>> + Send>,
);

impl fmt::Debug for UserLoaderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserLoaderBuilder")
            .field("capacity", &self.capacity)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl UserLoader {
    /// Starts a loader over `load`, the application's user lookup.
    pub fn builder(load: impl LoadUser) -> UserLoaderBuilder {
        UserLoaderBuilder {
            load: Box::new(load),
            feed: None,
            capacity: DEFAULT_CAPACITY,
            max_age: DEFAULT_MAX_AGE,
            clock: Arc::new(SystemClock),
        }
    }

    /// The user as they are now: from this node's cache while no change of theirs was
    /// announced, else from the source (then cached). `Ok(None)`: the user is gone.
    ///
    /// # Errors
    ///
    /// When the source fails (the request then gets 503, never the stale user).
    pub async fn load(&self, user_id: &str) -> Result<Option<UserJson>, StoreError> {
        let inner = &self.inner;
        let trust_cache = inner.changes.is_caught_up();
        if trust_cache {
            let cache = inner.cache.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(cached) = cache.get(user_id).filter(|cached| {
                cached.loaded_at.elapsed() < inner.max_age
                    && !inner.changes.user_changed_since(user_id, cached.mark)
            }) {
                return Ok(cached.user.clone());
            }
        }
        // Taken before the read: a change announced while it runs makes the copy stale.
        let mark = inner.changes.change_mark();
        let user = inner.load.load(user_id.to_owned()).await?;
        if trust_cache {
            self.remember(user_id, user.clone(), mark);
        }
        Ok(user)
    }

    fn remember(&self, user_id: &str, user: Option<UserJson>, mark: u64) {
        let inner = &self.inner;
        let mut cache = inner.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= inner.capacity && !cache.contains_key(user_id) {
            cache.retain(|_, cached| cached.loaded_at.elapsed() < inner.max_age);
            // Still full: drop an arbitrary entry (a miss costs one load, nothing more).
            if cache.len() >= inner.capacity {
                let victim = cache.keys().next().cloned();
                if let Some(victim) = victim {
                    cache.remove(&victim);
                }
            }
        }
        if inner.capacity > 0 {
            cache.insert(
                user_id.to_owned(),
                Cached {
                    user,
                    mark,
                    loaded_at: Instant::now(),
                },
            );
        }
    }

    /// Announces that `user_id` changed (new role, new password, account deleted or
    /// disabled): this node drops its cached copy at once, and every node subscribed to the
    /// feed as soon as the announcement reaches it, so their next request reloads the user.
    ///
    /// On the feed this is a per-user revocation ([`UserRevocation`]) dated now: a bearer or
    /// hybrid layer sharing the feed also refuses the user's older tokens.
    ///
    /// # Errors
    ///
    /// When the feed could not publish (this node has dropped its copy either way; other
    /// nodes drop theirs within [`UserLoaderBuilder::max_age`]).
    pub async fn user_changed(&self, user_id: &str) -> Result<(), StoreError> {
        let now = self
            .inner
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let revocation = UserRevocation {
            user_id: user_id.to_owned(),
            not_before_ms: now_ms,
            // Kept until every copy cached before it has aged out anyway.
            until: now
                .as_secs()
                .saturating_add(self.inner.max_age.as_secs())
                .saturating_add(1),
        };
        self.inner.changes.purge_expired(now.as_secs());
        self.inner.changes.insert_user(&revocation);
        self.inner
            .cache
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(user_id);
        match &self.inner.feed {
            Some(feed) => feed.publish_user(&revocation).await,
            None => Ok(()),
        }
    }

    /// How many users this node holds in its cache.
    pub fn cached(&self) -> usize {
        self.inner
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The list the feed delivers changes into, for a readiness check
    /// ([`RevocationList::is_caught_up`]).
    pub fn changes(&self) -> &RevocationList {
        &self.inner.changes
    }
}

impl UserLoaderBuilder {
    /// Where changes are announced and heard: the application's revocation feed
    /// (`RedisRevocationFeed` for several nodes). Without one, changes reach this node only.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{StoreError, revocation::InProcessFeed};
    /// use portcullis_session::UserLoader;
    ///
    /// let builder = UserLoader::builder(|_: String| async { Ok::<Option<String>, StoreError>(None) })
    ///     .feed(InProcessFeed::new());
    /// ```
    #[must_use]
    pub fn feed<F: RevocationFeed + Clone>(mut self, feed: F) -> Self {
        let subscriber = feed.clone();
        self.feed = Some((
            Box::new(feed),
            Box::new(move |list| Box::pin(async move { subscriber.subscribe(list).await })),
        ));
        self
    }

    /// How many users each node caches at most (default 10 000); 0 disables the cache.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::StoreError;
    /// use portcullis_session::UserLoader;
    ///
    /// let builder = UserLoader::builder(|_: String| async { Ok::<Option<String>, StoreError>(None) })
    ///     .capacity(1_000);
    /// ```
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// How long a cached user is trusted at most, even with no change announced (default
    /// five minutes): the bound on staleness should an announcement be lost.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use portcullis_core::StoreError;
    /// use portcullis_session::UserLoader;
    ///
    /// let builder = UserLoader::builder(|_: String| async { Ok::<Option<String>, StoreError>(None) })
    ///     .max_age(Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// The clock announcements are dated by (tests pass a `ManualClock`).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use portcullis_core::{ManualClock, StoreError};
    /// use portcullis_session::UserLoader;
    ///
    /// let builder = UserLoader::builder(|_: String| async { Ok::<Option<String>, StoreError>(None) })
    ///     .clock(Arc::new(ManualClock::at_unix_seconds(1_000)));
    /// ```
    #[must_use]
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// Subscribes to the feed and returns the loader.
    ///
    /// # Errors
    ///
    /// When the feed refuses the subscription (a Redis feed does not: it marks the list as
    /// not caught up and keeps trying, and the loader bypasses its cache meanwhile).
    pub async fn build(mut self) -> Result<UserLoader, StoreError> {
        let changes = RevocationList::new();
        let feed = match self.feed.take() {
            Some((publish, subscribe)) => {
                subscribe(changes.clone()).await?;
                Some(publish)
            }
            None => None,
        };
        Ok(self.finish(changes, feed))
    }

    /// The loader of a single node, with no feed (changes announced on this node only): no
    /// subscription, so it needs no `async`. A feed set with [`UserLoaderBuilder::feed`] is
    /// ignored.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::StoreError;
    /// use portcullis_session::UserLoader;
    ///
    /// let loader = UserLoader::builder(|_: String| async { Ok::<Option<String>, StoreError>(None) })
    ///     .build_local();
    /// # let _ = loader;
    /// ```
    pub fn build_local(self) -> UserLoader {
        self.finish(RevocationList::new(), None)
    }

    fn finish(self, changes: RevocationList, feed: Option<Box<dyn DynPublish>>) -> UserLoader {
        UserLoader {
            inner: Arc::new(Inner {
                load: self.load,
                feed,
                changes,
                cache: RwLock::new(HashMap::new()),
                capacity: self.capacity,
                max_age: self.max_age,
                clock: self.clock,
            }),
        }
    }
}

/// The layer's hook: the user of a live session, through the loader (a source outage is a 503
/// with `Retry-After`, never the stale snapshot: fail closed).
pub(crate) async fn current_user(
    loader: &UserLoader,
    user_id: &str,
) -> Result<Option<UserJson>, portcullis_core::AuthRejection> {
    loader.load(user_id).await.map_err(|error| {
        tracing::warn!(%error, "the user loader failed");
        portcullis_core::AuthRejection::from(error)
    })
}

#[cfg(test)]
mod tests;
