//! [`PasswordCheck`]: the whole password step of a login (argon2 check, decoy for unknown
//! usernames, back-off and concurrency cap) in one call, so an application supplies only
//! the stored hash and cannot forget a step.

use std::sync::Arc;

use super::{Argon2Verifier, AttemptCounter, Credentials, LoginAttempt, LoginGuard};
use crate::{AuthRejection, MemoryAttemptCounter};

/// Checked when the username is unknown, so that a wrong username costs as long as a wrong
/// password and the response time does not reveal which accounts exist (OWASP Authentication
/// Cheat Sheet, "Authentication Responses"). Its parameters are the argon2 crate's defaults,
/// the OWASP Password Storage Cheat Sheet's argon2id minimum (m=19456, t=2, p=1). No password
/// it may match ever signs anyone in: an unknown username is refused whatever the result.
const DEFAULT_DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$YPdH5vlACO32kOer7yviCg$KGyYm0Nwkyunmv44E0//12Ec4EY72ViGipBzaE8nm54";

/// Checks a login's password against the stored argon2 hash inside a [`LoginGuard`]: 429
/// while the account or the client is locked out, 503 when too many checks run, 401 for an
/// unknown username or a wrong password (the same answer, after the same work).
///
/// Clones share the guard's counters and the verifier's memory pool.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Json, Router, extract::State, routing::post};
/// use portcullis_core::{AuthRejection, Credentials, PasswordCheck};
///
/// /// Your user table: the argon2 PHC hash and the user, by username.
/// fn find(username: &str) -> Option<(String, String)> {
///     (username == "alice").then(|| {
///         let hash = "$argon2id$v=19$m=19456,t=2,p=1$QfxlxXqHWGEeRafVUkgCrw$VEoTtZTnipB6jcEu9l129wUQ8ttM0gKN4tA+D9lVYt4";
///         (hash.to_owned(), "alice".to_owned())
///     })
/// }
///
/// async fn login(
///     State(passwords): State<PasswordCheck>,
///     credentials: Credentials,
/// ) -> Result<Json<String>, AuthRejection> {
///     let account = find(&credentials.username);
///     let user = passwords.verify(credentials, account).await?;
///     // Start the session or issue the tokens for `user` here.
///     Ok(Json(user))
/// }
///
/// let app: Router = Router::new()
///     .route("/login", post(login))
///     .with_state(PasswordCheck::default());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PasswordCheck<C = MemoryAttemptCounter> {
    guard: LoginGuard<C>,
    verifier: Argon2Verifier,
    decoy: Arc<str>,
}

/// A decoy hash the verifier cannot use, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the decoy is not a usable argon2 hash: {0}")]
pub struct InvalidDecoy(&'static str);

impl Default for PasswordCheck {
    /// A default [`LoginGuard`] counting in memory (one node).
    fn default() -> Self {
        Self::new(LoginGuard::default())
    }
}

impl<C: AttemptCounter> PasswordCheck<C> {
    /// Checks inside `guard`, with one pooled argon2 buffer per check it lets run at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{LoginGuard, PasswordCheck};
    ///
    /// let passwords = PasswordCheck::new(LoginGuard::default().max_concurrent(2));
    /// assert_eq!(passwords.guard().concurrency_limit(), 2);
    /// ```
    pub fn new(guard: LoginGuard<C>) -> Self {
        Self {
            verifier: Argon2Verifier::new(guard.concurrency_limit()),
            guard,
            decoy: Arc::from(DEFAULT_DECOY),
        }
    }

    /// The hash checked for unknown usernames. The default has the OWASP minimum argon2id
    /// parameters (m=19456, t=2, p=1, as `argon2::Argon2::default()` hashes); give a hash
    /// made with your own parameters if they differ, so that unknown usernames take as long
    /// as known ones. It is checked once now (one argon2 run), after
    /// [`max_memory_kib`](Self::max_memory_kib) if you set both.
    ///
    /// # Errors
    ///
    /// [`InvalidDecoy`] when the verifier could not use the hash (not a PHC string, not
    /// argon2, more memory than allowed): such a decoy would answer unknown names at once and
    /// so tell them apart.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::PasswordCheck;
    ///
    /// let decoy = "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$M7D1o5nPB5nW5fIvAntt4Q";
    /// let passwords = PasswordCheck::default().decoy_hash(decoy)?;
    /// assert!(PasswordCheck::default().decoy_hash("plain text").is_err());
    /// # let _ = passwords;
    /// # Ok::<(), portcullis_core::InvalidDecoy>(())
    /// ```
    pub fn decoy_hash(mut self, phc: impl Into<String>) -> Result<Self, InvalidDecoy> {
        let phc = phc.into();
        self.verifier.check_hash(&phc).map_err(InvalidDecoy)?;
        self.decoy = Arc::from(phc);
        Ok(self)
    }

    /// Refuses stored hashes asking for more than `kib` KiB of memory (default 64 MiB): see
    /// [`Argon2Verifier::max_memory_kib`]. Raise it if your hashes use more.
    ///
    /// # Examples
    ///
    /// ```
    /// let passwords = portcullis_core::PasswordCheck::default().max_memory_kib(128 * 1024);
    /// # let _ = passwords;
    /// ```
    #[must_use]
    pub fn max_memory_kib(mut self, kib: u32) -> Self {
        self.verifier = self.verifier.max_memory_kib(kib);
        self
    }

    /// The login guard the checks run in.
    pub fn guard(&self) -> &LoginGuard<C> {
        &self.guard
    }

    /// Returns the user of `account` when `credentials.password` matches its hash.
    ///
    /// `account` is what the application found for `credentials.username`: the stored argon2
    /// PHC hash and the user it belongs to, or `None` for an unknown username (the decoy is
    /// checked then). The hash is checked on a blocking thread inside the guard.
    ///
    /// # Errors
    ///
    /// - 401 `invalid_credentials` for an unknown username or a wrong password (counted by
    ///   the guard);
    /// - 429 with `Retry-After` while the account or the client is locked out, even for the
    ///   right password;
    /// - 503 with `Retry-After` when too many checks run or the counter cannot answer;
    /// - 400 `invalid_request` for a username over 256 bytes or with a control character, or a
    ///   password over 1,024 bytes (the [`Credentials`] extractor refuses those before).
    pub async fn verify<T: Send + 'static>(
        &self,
        credentials: Credentials,
        account: Option<(String, T)>,
    ) -> Result<T, AuthRejection> {
        credentials
            .check_fields()
            .map_err(AuthRejection::invalid_request)?;
        let Credentials {
            username,
            password,
            client,
            ..
        } = credentials;
        let (verifier, decoy) = (self.verifier.clone(), Arc::clone(&self.decoy));
        let check = move || {
            let user = match account {
                Some((hash, user)) => verifier.verify(password.as_bytes(), &hash).then_some(user),
                None => {
                    verifier.verify(password.as_bytes(), &decoy);
                    None
                }
            };
            user.ok_or_else(|| AuthRejection::invalid_credentials("wrong username or password"))
        };
        let attempt = LoginAttempt::new(&username).with_client(client);
        self.guard.verify(attempt, check).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use argon2::{Argon2, PasswordHasher, password_hash::SaltString};

    use super::*;
    use crate::{Backoff, RejectionKind};

    fn hash(password: &str) -> String {
        let salt = SaltString::encode_b64(b"a salt for tests").unwrap();
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    }

    fn account(password: &str) -> Option<(String, &'static str)> {
        Some((hash(password), "alice"))
    }

    #[tokio::test]
    async fn the_right_password_returns_the_user_and_nothing_else_does() {
        let passwords = PasswordCheck::default();
        let alice = |password: &str| Credentials::new("alice", password);
        let ok = passwords.verify(alice("pw-1"), account("pw-1")).await;
        assert_eq!(ok.unwrap(), "alice");
        for (credentials, account) in [
            (alice("pw-2"), account("pw-1")),
            (alice(""), account("pw-1")),
            (Credentials::new("bob", "pw-1"), None),
            // A stored hash that is not argon2 never matches.
            (alice("pw-1"), Some(("plain pw-1".to_owned(), "alice"))),
        ] {
            let refused = passwords.verify(credentials, account).await.unwrap_err();
            assert_eq!(refused.kind(), RejectionKind::InvalidCredentials);
        }
    }

    #[tokio::test]
    async fn the_decoy_matches_no_one_even_with_its_own_password() {
        // Whatever password the decoy hashes, an unknown username stays refused.
        let decoy = hash("decoy-password");
        let passwords = PasswordCheck::default().decoy_hash(decoy).unwrap();
        let refused = passwords
            .verify(
                Credentials::new("nobody", "decoy-password"),
                None::<(String, ())>,
            )
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), RejectionKind::InvalidCredentials);
    }

    #[test]
    fn the_default_decoy_costs_what_a_default_hash_costs() {
        // Same algorithm and parameters as `Argon2::default()` hashes: an unknown username
        // takes as long as a known one, without a timed test.
        let decoy = argon2::PasswordHash::new(DEFAULT_DECOY).unwrap();
        assert_eq!(decoy.algorithm, argon2::Algorithm::Argon2id.ident());
        let (decoy, default) = (argon2::Params::try_from(&decoy).unwrap(), Argon2::default());
        let default = default.params();
        assert_eq!(
            (decoy.m_cost(), decoy.t_cost(), decoy.p_cost()),
            (default.m_cost(), default.t_cost(), default.p_cost())
        );
        assert_eq!(decoy.output_len(), Some(argon2::Params::DEFAULT_OUTPUT_LEN));
    }

    #[tokio::test]
    async fn failures_lock_the_account_out_even_for_the_right_password() {
        let guard = LoginGuard::default()
            .account_backoff(Backoff::new(2, Duration::from_secs(60)))
            .client_backoff(Backoff::new(100, Duration::from_secs(60)));
        let passwords = PasswordCheck::new(guard);
        for _ in 0..3 {
            let _ = passwords
                .verify(Credentials::new("alice", "wrong"), account("pw-1"))
                .await;
        }
        let locked = passwords
            .verify(Credentials::new("alice", "pw-1"), account("pw-1"))
            .await
            .unwrap_err();
        assert_eq!(locked.kind(), RejectionKind::TooManyAttempts);
    }

    #[tokio::test]
    async fn oversized_fields_are_refused_before_hashing() {
        let passwords = PasswordCheck::default();
        for credentials in [
            Credentials::new("a".repeat(257), "pw"),
            Credentials::new("alice", "p".repeat(1025)),
        ] {
            let refused = passwords
                .verify(credentials, account("pw"))
                .await
                .unwrap_err();
            assert_eq!(refused.kind(), RejectionKind::InvalidRequest);
        }
    }
}
