//! TEMPORARY stand-in for `portcullis_core::{Credentials, PasswordCheck}` until they land in
//! the library; same API. Deleted by the merge of main.
#![allow(unreachable_pub, dead_code)]

use std::{fmt, net::IpAddr};

use argon2::{
    Argon2, PasswordHasher,
    password_hash::{SaltString, rand_core::OsRng},
};
use axum::{
    Form, Json,
    extract::{FromRequest, Request},
    http::header,
};
use portcullis_core::{
    Argon2Verifier, AttemptCounter, AuthRejection, ClientAddress, LoginAttempt, LoginGuard,
};
use serde::Deserialize;

/// A username and password, as posted to a login route, and the address they came from.
#[derive(Clone, Deserialize)]
pub struct Credentials {
    /// The claimed username.
    pub username: String,
    /// The password. Never logged.
    pub password: String,
    /// The client's address, from the connection.
    #[serde(skip)]
    pub client: Option<IpAddr>,
}

impl Credentials {
    /// Credentials with no client address.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            client: None,
        }
    }

    /// The attempt the login guard counts.
    pub fn attempt(&self) -> LoginAttempt<'_> {
        LoginAttempt::new(&self.username).with_client(self.client)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"REDACTED")
            .field("client", &self.client)
            .finish()
    }
}

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = AuthRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let ClientAddress(client) = ClientAddress::from_extensions(request.extensions());
        let content_type = request.headers().get(header::CONTENT_TYPE);
        let content_type = content_type.and_then(|v| v.to_str().ok()).unwrap_or("");
        let invalid = |e: String| AuthRejection::invalid_request(format!("invalid login: {e}"));
        let mut credentials = if content_type.starts_with("application/x-www-form-urlencoded") {
            let Form(c) = Form::<Self>::from_request(request, state)
                .await
                .map_err(|e| invalid(e.body_text()))?;
            c
        } else if content_type.starts_with("application/json") {
            let Json(c) = Json::<Self>::from_request(request, state)
                .await
                .map_err(|e| invalid(e.body_text()))?;
            c
        } else {
            return Err(AuthRejection::invalid_request(
                "send credentials as application/json or application/x-www-form-urlencoded",
            ));
        };
        if credentials.username.len() > 256 || credentials.password.len() > 256 {
            return Err(AuthRejection::invalid_request(
                "username or password too long",
            ));
        }
        credentials.client = client;
        Ok(credentials)
    }
}

/// A login guard, an argon2 verifier and a decoy hash for unknown usernames.
pub struct PasswordCheck<C> {
    guard: LoginGuard<C>,
    verifier: Argon2Verifier,
    decoy: String,
}

impl<C: AttemptCounter> PasswordCheck<C> {
    /// Checks inside `guard`.
    pub fn new(guard: LoginGuard<C>) -> Self {
        let salt = SaltString::generate(&mut OsRng);
        let decoy = Argon2::default()
            .hash_password(b"decoy password that matches nothing", &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default();
        Self {
            verifier: Argon2Verifier::new(guard.concurrency_limit()),
            guard,
            decoy,
        }
    }

    /// `account`'s user when the password matches its hash (`None`: the decoy is checked).
    pub async fn verify<T: Send + 'static>(
        &self,
        credentials: Credentials,
        account: Option<(String, T)>,
    ) -> Result<T, AuthRejection> {
        let verifier = self.verifier.clone();
        let decoy = self.decoy.clone();
        let name = credentials.username.clone();
        self.guard
            .verify(
                LoginAttempt::new(&name).with_client(credentials.client),
                move || {
                    let hash = account.as_ref().map_or(decoy.as_str(), |(hash, _)| hash);
                    let verified = verifier.verify(credentials.password.as_bytes(), hash);
                    match account {
                        Some((_, user)) if verified => Ok(user),
                        _ => Err(AuthRejection::invalid_credentials(
                            "wrong username or password",
                        )),
                    }
                },
            )
            .await
    }
}
