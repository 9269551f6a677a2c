//! Access tokens: minted at login and refresh, checked at the edge. They are JWTs typed
//! `at+jwt` (RFC 9068 §2.1) carrying `sub`, `sid` (the session), `auth_time` and the user.

use std::{borrow::Cow, sync::Arc, time::Duration};

use portcullis_core::{AuthRejection, Identity, Mechanism, SharedClock};
use portcullis_jwt::{
    Attempt, IssueError, IssueOptions, IssuedToken, KeySet, TokenIssuer, TokenVerifier, Validation,
    VerifiedToken,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

use crate::{AccessSession, RefreshRecord, RevocationList, refresh_token::is_session_id};

/// The `typ` header of access tokens (RFC 9068 §2.1). The edge refuses any other, so an ID
/// token or another JWT of the same issuer never passes as an access token (RFC 9068 §4,
/// RFC 8725 §3.11 on explicit typing).
pub(crate) const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[derive(Serialize)]
struct MintedClaims<'a> {
    sid: &'a str,
    /// The login time, carried unchanged through refreshes: a re-minted token is not a new
    /// authentication (OpenID Connect Core §2 `auth_time`).
    auth_time: u64,
    /// When the token was issued, in Unix milliseconds: per-user revocations
    /// ([`UserRevocation`](crate::UserRevocation)) compare with it, so a token issued right
    /// after a logout-all, in the same second, is not caught by it.
    iat_ms: u64,
    user: &'a Value,
}

#[derive(Deserialize)]
struct EdgeClaims<'a> {
    #[serde(borrow)]
    sid: Cow<'a, str>,
    #[serde(borrow)]
    user: &'a RawValue,
    #[serde(default)]
    auth_time: Option<u64>,
    #[serde(default)]
    iat_ms: Option<u64>,
}

/// The verifier the edge uses: the application's validation plus `typ: at+jwt` and `sid`.
pub(crate) fn verifier(keys: KeySet, validation: Validation, clock: SharedClock) -> TokenVerifier {
    // `sid` and `user` are required by the edge's own claims parse (`accept`), which saves the
    // verifier a second pass over the claims.
    let validation = validation.typ(ACCESS_TOKEN_TYPE);
    TokenVerifier::new(keys, validation).with_clock(clock)
}

/// Signs an access token for the session in `record`.
pub(crate) fn mint(
    issuer: &TokenIssuer,
    record: &RefreshRecord,
    ttl: Duration,
    issued_at_ms: u64,
) -> Result<IssuedToken, IssueError> {
    let claims = MintedClaims {
        sid: &record.session_id,
        auth_time: record.authenticated_at,
        iat_ms: issued_at_ms,
        user: &record.user,
    };
    issuer.issue_with(
        &record.user_id,
        &claims,
        &IssueOptions::new().ttl(ttl).typ(ACCESS_TOKEN_TYPE),
    )
}

/// A verified, unrevoked access token.
pub(crate) struct VerifiedAccess {
    identity: Identity,
    session: AccessSession,
}

impl VerifiedAccess {
    pub(crate) fn into_parts(self) -> (Identity, AccessSession) {
        (self.identity, self.session)
    }
}

/// What checking an access token with the keys at hand decided.
pub(crate) enum AccessAttempt {
    Done(Result<VerifiedAccess, AuthRejection>),
    /// Only a key refetch (a JWKS URL) can decide: [`AccessCheck::verify_after_refetch`].
    NeedsKeys,
}

/// The edge check, and all it needs: the access-token verifier, the node's revocation list and
/// the clock. No store: a request with a valid access token costs no store read.
#[derive(Clone)]
pub(crate) struct AccessCheck {
    verifier: TokenVerifier,
    revoked: RevocationList,
    clock: SharedClock,
}

impl AccessCheck {
    pub(crate) fn new(
        verifier: TokenVerifier,
        revoked: RevocationList,
        clock: SharedClock,
    ) -> Self {
        Self {
            verifier,
            revoked,
            clock,
        }
    }

    /// Verifies `token` with the keys at hand, parsing it once, and checks its session against
    /// the node's revocation list. No store read, no waiting: a static key set always decides
    /// here.
    pub(crate) fn attempt(&self, token: &str) -> AccessAttempt {
        match self.verifier.attempt(token) {
            Attempt::Done(Ok(verified)) => AccessAttempt::Done(self.accept(&verified)),
            Attempt::Done(Err(error)) => AccessAttempt::Done(Err(error.into())),
            Attempt::NeedsKeys(_) => AccessAttempt::NeedsKeys,
        }
    }

    /// The slow path after [`AccessAttempt::NeedsKeys`]: refetches the key set, then decides.
    pub(crate) async fn verify_after_refetch(
        &self,
        token: &str,
    ) -> Result<VerifiedAccess, AuthRejection> {
        let verified = self.verifier.verify_after_refetch(token).await?;
        self.accept(&verified)
    }

    /// Checks the hybrid claims of a verified token and its session's revocation.
    fn accept(&self, verified: &VerifiedToken) -> Result<VerifiedAccess, AuthRejection> {
        let lacks_session =
            || AuthRejection::invalid_credentials("the access token lacks a session");
        let claims: EdgeClaims<'_> =
            serde_json::from_str(verified.claims_json()).map_err(|_| lacks_session())?;
        if !is_session_id(&claims.sid) {
            return Err(lacks_session());
        }
        // A node that has never read the revocations in force (its feed's backend was down at
        // start-up) cannot tell a revoked token from a live one: fail closed with 503 (OWASP
        // ASVS V3.3: a terminated session must not be usable), until the feed catches up.
        if !self.revoked.is_caught_up() {
            return Err(AuthRejection::unavailable(
                "the revocation list has not caught up yet",
            ));
        }
        let now = self.clock.unix_seconds();
        if self.revoked.is_revoked(&claims.sid, now) {
            return Err(AuthRejection::invalid_credentials(
                "the session has been revoked",
            ));
        }
        // A token without `iat_ms` (minted before it existed) counts from the start of its
        // `iat` second, so a per-user revocation in that second still refuses it.
        let issued_at_ms = claims.iat_ms.unwrap_or_else(|| {
            verified
                .issued_at()
                .map_or(0, |seconds| seconds.saturating_mul(1000))
        });
        if self
            .revoked
            .is_user_revoked(verified.subject(), issued_at_ms, now)
        {
            return Err(AuthRejection::invalid_credentials(
                "the user's tokens have been revoked",
            ));
        }
        let session_id: Arc<str> = claims.sid.as_ref().into();
        // Straight from the borrowed claim into the shared text: one allocation, not an owned
        // RawValue copied once more.
        let mut identity = Identity::from_user_json(claims.user.into(), Mechanism::Hybrid)
            .with_session_handle(session_id.clone());
        if let Some(auth_time) = claims.auth_time {
            // The verifier refused an `auth_time` after now + leeway; checked all the same.
            identity = identity.with_authenticated_at_unix(auth_time);
        }
        Ok(VerifiedAccess {
            identity,
            session: AccessSession {
                session_id,
                user_id: verified.subject().into(),
                expires_at: verified.expires_at(),
            },
        })
    }
}
