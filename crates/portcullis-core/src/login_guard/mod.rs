//! The login guard: wraps an application's password check so that failed logins can neither
//! exhaust the server nor guess passwords at leisure.
//!
//! - **A cap on concurrent checks.** A memory-hard hash such as argon2 takes 19 MiB for each
//!   check with its default parameters; a burst of logins otherwise runs one per blocking
//!   thread (up to 512 in Tokio) and leaves the process gigabytes large. At most
//!   [`max_concurrent`](LoginGuard::max_concurrent) checks run at once, a few more callers wait
//!   briefly, and the rest get 503 with `Retry-After` (OWASP Denial of Service Cheat Sheet).
//! - **Back-off per account and per client address** (OWASP ASVS V2.2.1, OWASP Authentication
//!   Cheat Sheet "Protect Against Automated Attacks"): after some failures the account, or the
//!   address, is locked out for a delay that doubles with each further failure; a locked-out
//!   login gets 429 with `Retry-After` before its password is even looked at, so the right
//!   password does not help during the lock-out. A successful login resets the account's
//!   count (not the address's: one valid account must not whitewash an address that guesses
//!   at others).
//! - **Counting in an [`AttemptCounter`]**: [`MemoryAttemptCounter`] for one node,
//!   `portcullis_redis::RedisAttemptCounter` for several. Keys are keyed hashes
//!   ([`AttemptKey`]). A counter that cannot answer fails closed: 503.
//!
//! With the `argon2` feature, [`Argon2Verifier`] checks argon2 hashes in a pool of reusable
//! memory, one buffer per permitted concurrent check, so resident memory stays at the cap times
//! the hash's memory cost however long the burst.
//!
//! # Example
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Json, Router, extract::State, routing::post};
//! use portcullis_core::{AuthRejection, ClientAddress, LoginAttempt, LoginGuard};
//!
//! #[derive(serde::Deserialize)]
//! struct Credentials { username: String, password: String }
//!
//! fn check_password(credentials: &Credentials) -> Result<String, AuthRejection> {
//!     // Your slow hash here (argon2, scrypt, bcrypt ...).
//!     if credentials.password == "correct horse" {
//!         Ok(credentials.username.clone())
//!     } else {
//!         Err(AuthRejection::invalid_credentials("wrong username or password"))
//!     }
//! }
//!
//! async fn login(
//!     State(guard): State<LoginGuard>,
//!     ClientAddress(client): ClientAddress,
//!     Json(credentials): Json<Credentials>,
//! ) -> Result<String, AuthRejection> {
//!     let username = credentials.username.clone();
//!     let attempt = LoginAttempt::new(&username).with_client(client);
//!     // 429 while locked out, 503 when saturated; the check runs on a blocking thread.
//!     guard.verify(attempt, move || check_password(&credentials)).await
//! }
//!
//! let app: Router = Router::new()
//!     .route("/login", post(login))
//!     .with_state(LoginGuard::default());
//! // Serve with `app.into_make_service_with_connect_info::<std::net::SocketAddr>()` so
//! // `ClientAddress` knows the connection's address.
//! # }
//! ```

#[cfg(feature = "argon2")]
mod argon2_verifier;
mod backoff;
mod client_address;
mod counter;
mod credentials;
mod memory;
#[cfg(feature = "argon2")]
mod password_check;

use std::{
    fmt,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[cfg(feature = "argon2")]
pub use argon2_verifier::Argon2Verifier;
pub use backoff::Backoff;
pub use client_address::ClientAddress;
pub use counter::{AttemptCounter, AttemptKey};
pub use credentials::Credentials;
pub use memory::MemoryAttemptCounter;
#[cfg(feature = "argon2")]
pub use password_check::{InvalidDecoy, PasswordCheck};

use crate::{AuthRejection, RejectionKind};

/// How long a caller waits for a free check before 503, by default.
const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(2);
/// `Retry-After` of the 503 sent when every check is taken.
const BUSY_RETRY_AFTER_SECS: u32 = 1;

/// One login to check: the claimed account and, when known, the client's address.
///
/// # Examples
///
/// ```
/// use portcullis_core::LoginAttempt;
///
/// let attempt = LoginAttempt::new("alice").with_client(Some("192.0.2.1".parse().unwrap()));
/// # let _ = attempt;
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LoginAttempt<'a> {
    account: &'a str,
    client: Option<IpAddr>,
}

impl<'a> LoginAttempt<'a> {
    /// An attempt on `account` (the username as typed; unknown names are limited too, so the
    /// answers do not reveal which accounts exist).
    pub fn new(account: &'a str) -> Self {
        Self {
            account,
            client: None,
        }
    }

    /// Also limits the client address (`None`: the account limit alone applies).
    ///
    /// # Examples
    ///
    /// ```
    /// let attempt = portcullis_core::LoginAttempt::new("alice").with_client(None);
    /// # let _ = attempt;
    /// ```
    #[must_use]
    pub fn with_client(mut self, client: Option<IpAddr>) -> Self {
        self.client = client;
        self
    }
}

/// Wraps a password check with a concurrency cap and per-account and per-client back-off.
/// Cheap to clone; clones share the cap and the counter. See the [module docs](crate::login_guard).
#[derive(Clone)]
pub struct LoginGuard<C = MemoryAttemptCounter> {
    counter: C,
    account_backoff: Backoff,
    client_backoff: Backoff,
    permits: Arc<Semaphore>,
    max_concurrent: usize,
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    queue_timeout: Duration,
    key_secret: [u8; 32],
}

impl<C> fmt::Debug for LoginGuard<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginGuard")
            .field("account_backoff", &self.account_backoff)
            .field("client_backoff", &self.client_backoff)
            .field("max_concurrent", &self.max_concurrent)
            .field("max_waiting", &self.max_waiting)
            .field("queue_timeout", &self.queue_timeout)
            .field("key_secret", &"REDACTED")
            .finish_non_exhaustive()
    }
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new(MemoryAttemptCounter::new())
    }
}

/// Concurrent checks by default: the cores available, at most 4 (a check is CPU-bound, so more
/// would only queue inside the thread pool while holding memory).
fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

/// Counts a caller waiting for a check, until dropped (also when the request is abandoned).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn retry_after_secs(wait: Duration) -> u32 {
    let secs = wait.as_millis().div_ceil(1000).max(1);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl<C: AttemptCounter> LoginGuard<C> {
    /// A guard counting in `counter`, with [`Backoff::per_account`] and
    /// [`Backoff::per_client`], as many concurrent checks as cores (at most 4), 16 callers
    /// waiting up to 2 s for one, and no key secret.
    pub fn new(counter: C) -> Self {
        let max_concurrent = default_concurrency();
        Self {
            counter,
            account_backoff: Backoff::per_account(),
            client_backoff: Backoff::per_client(),
            permits: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            waiting: Arc::default(),
            max_waiting: 16,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
            key_secret: [0; 32],
        }
    }

    /// Password checks that may run at once (at least 1). Size a pool of hashing memory to
    /// this ([`Argon2Verifier::new`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = portcullis_core::LoginGuard::default().max_concurrent(2);
    /// assert_eq!(guard.concurrency_limit(), 2);
    /// ```
    #[must_use]
    pub fn max_concurrent(mut self, checks: usize) -> Self {
        self.max_concurrent = checks.max(1);
        self.permits = Arc::new(Semaphore::new(self.max_concurrent));
        self
    }

    /// Callers that may wait for a free check (default 16); more get 503 at once.
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = portcullis_core::LoginGuard::default().max_waiting(0);
    /// # let _ = guard;
    /// ```
    #[must_use]
    pub fn max_waiting(mut self, callers: usize) -> Self {
        self.max_waiting = callers;
        self
    }

    /// How long a caller waits for a free check before 503 (default 2 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let guard = portcullis_core::LoginGuard::default().queue_timeout(Duration::from_millis(500));
    /// # let _ = guard;
    /// ```
    #[must_use]
    pub fn queue_timeout(mut self, timeout: Duration) -> Self {
        self.queue_timeout = timeout;
        self
    }

    /// The back-off of one account (default [`Backoff::per_account`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use portcullis_core::{Backoff, LoginGuard};
    ///
    /// let guard = LoginGuard::default().account_backoff(Backoff::new(3, Duration::from_secs(2)));
    /// # let _ = guard;
    /// ```
    #[must_use]
    pub fn account_backoff(mut self, backoff: Backoff) -> Self {
        self.account_backoff = backoff;
        self
    }

    /// The back-off of one client address (default [`Backoff::per_client`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use portcullis_core::{Backoff, LoginGuard};
    ///
    /// let guard = LoginGuard::default().client_backoff(Backoff::new(50, Duration::from_secs(1)));
    /// # let _ = guard;
    /// ```
    #[must_use]
    pub fn client_backoff(mut self, backoff: Backoff) -> Self {
        self.client_backoff = backoff;
        self
    }

    /// A secret mixed into every [`AttemptKey`], so that whoever reads the counter (a Redis
    /// dump) cannot test guessed usernames or addresses against it. Every node sharing a
    /// counter needs the same secret.
    ///
    /// # Examples
    ///
    /// ```
    /// let guard = portcullis_core::LoginGuard::default().key_secret(b"from your secret store");
    /// assert!(!format!("{guard:?}").contains("secret store"));
    /// ```
    #[must_use]
    pub fn key_secret(mut self, secret: &[u8]) -> Self {
        self.key_secret = Sha256::digest(secret).into();
        self
    }

    /// Password checks that may run at once.
    pub fn concurrency_limit(&self) -> usize {
        self.max_concurrent
    }

    /// The counter.
    pub fn counter(&self) -> &C {
        &self.counter
    }

    /// Runs `check` on a blocking thread, within the concurrency cap, unless the account or
    /// the client is locked out; counts a failure when it returns an
    /// [`invalid_credentials`](AuthRejection::invalid_credentials) rejection, and resets the
    /// account's count when it succeeds. Other rejections pass through uncounted.
    ///
    /// # Errors
    ///
    /// - 429 `too_many_attempts` with `Retry-After` while the account or client is locked out;
    /// - 503 with `Retry-After` when every check is taken and the wait is full or too long,
    ///   when the counter cannot answer, or when `check` panics;
    /// - whatever `check` returns.
    pub async fn verify<T, F>(
        &self,
        attempt: LoginAttempt<'_>,
        check: F,
    ) -> Result<T, AuthRejection>
    where
        F: FnOnce() -> Result<T, AuthRejection> + Send + 'static,
        T: Send + 'static,
    {
        let account = AttemptKey::account(&self.key_secret, attempt.account);
        let client = attempt
            .client
            .map(|address| AttemptKey::client(&self.key_secret, address));
        // Refuse a locked-out caller before it takes a place in the queue ...
        self.refuse_if_locked_out(&account, client.as_ref()).await?;
        let permit = self.acquire().await?;
        // ... and again once it holds one: failures of the logins it waited behind count.
        self.refuse_if_locked_out(&account, client.as_ref()).await?;
        // The permit moves into the blocking task, so a client that hangs up mid-check does not
        // free its slot (nor its hashing memory) before the check is really over.
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit: OwnedSemaphorePermit = permit;
            check()
        })
        .await
        .map_err(|_| AuthRejection::unavailable("the password check failed; try again"))?;
        match outcome {
            Ok(value) => {
                self.counter.reset(&account).await?;
                Ok(value)
            }
            Err(rejection) if rejection.kind() == RejectionKind::InvalidCredentials => {
                self.record_failure(&account, &self.account_backoff, "account")
                    .await?;
                if let Some(client) = &client {
                    self.record_failure(client, &self.client_backoff, "client")
                        .await?;
                }
                Err(rejection)
            }
            Err(rejection) => Err(rejection),
        }
    }

    async fn refuse_if_locked_out(
        &self,
        account: &AttemptKey,
        client: Option<&AttemptKey>,
    ) -> Result<(), AuthRejection> {
        let mut wait = self.counter.lockout(account).await?;
        if let Some(client) = client {
            wait = wait.max(self.counter.lockout(client).await?);
        }
        match wait {
            None => Ok(()),
            Some(wait) => Err(AuthRejection::too_many_attempts(
                "too many failed logins; wait before trying again",
            )
            .with_retry_after(retry_after_secs(wait))),
        }
    }

    async fn record_failure(
        &self,
        key: &AttemptKey,
        backoff: &Backoff,
        scope: &'static str,
    ) -> Result<(), AuthRejection> {
        if let Some(lockout) = self.counter.record_failure(key, backoff).await? {
            // The key is a hash: the log names neither the account nor the address.
            tracing::info!(
                target: "portcullis",
                event = "login_lockout",
                scope,
                key = ?key,
                lockout_ms = u64::try_from(lockout.as_millis()).unwrap_or(u64::MAX),
            );
        }
        Ok(())
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, AuthRejection> {
        let busy = || {
            AuthRejection::unavailable("too many logins are being checked; try again shortly")
                .with_retry_after(BUSY_RETRY_AFTER_SECS)
        };
        if let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(busy());
        }
        let _waiting = Waiting(Arc::clone(&self.waiting));
        match tokio::time::timeout(
            self.queue_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        {
            Ok(Ok(permit)) => Ok(permit),
            // Timed out, or the semaphore was closed (never, but not a reason to panic).
            _ => Err(busy()),
        }
    }
}

#[cfg(test)]
mod tests;
