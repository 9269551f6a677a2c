//! Access tokens: minted at login and refresh, checked at the edge. They are JWTs typed
//! `at+jwt` (RFC 9068 §2.1) carrying `sub`, `sid` (the session), `auth_time` and the user.

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use portcullis_core::{AuthRejection, Identity, Mechanism, SharedClock};
use portcullis_jwt::{
    IssueError, IssueOptions, IssuedToken, KeySet, TokenError, TokenIssuer, TokenVerifier,
    Validation, VerifiedToken,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, value::RawValue};

use crate::{AccessSession, HybridSessions, RefreshRecord, refresh_token::is_session_id};

/// The `typ` header of access tokens (RFC 9068 §2.1). The edge refuses any other, so an ID
/// token or another JWT of the same issuer never passes as an access token (RFC 9068 §4,
/// RFC 8725 §3.11 on explicit typing).
pub(crate) const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[derive(Serialize)]
struct MintedClaims<'a> {
    sid: &'a str,
    auth_time: u64,
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
) -> Result<IssuedToken, IssueError> {
    let claims = MintedClaims {
        sid: &record.session_id,
        auth_time: record.authenticated_at,
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

/// Verifies `token` and checks its session against the node's revocation list, fetching keys
/// if the key set needs to (a JWKS URL). No store read.
pub(crate) async fn verify(
    sessions: &HybridSessions,
    token: &str,
) -> Result<VerifiedAccess, AuthRejection> {
    let verified = sessions.inner.verifier.verify(token).await?;
    accept(sessions, &verified)
}

/// [`verify`] with the keys at hand, without waiting: `None` when keys must be fetched first
/// (the caller then takes the slow, asynchronous path).
pub(crate) fn verify_now(
    sessions: &HybridSessions,
    token: &str,
) -> Option<Result<VerifiedAccess, AuthRejection>> {
    match sessions.inner.verifier.verify_now(token) {
        Ok(verified) => Some(accept(sessions, &verified)),
        Err(TokenError::UnknownKey | TokenError::KeysUnavailable) => None,
        Err(error) => Some(Err(error.into())),
    }
}

/// Checks the hybrid claims of a verified token and its session's revocation.
fn accept(
    sessions: &HybridSessions,
    verified: &VerifiedToken,
) -> Result<VerifiedAccess, AuthRejection> {
    let inner = &sessions.inner;
    let lacks_session = || AuthRejection::invalid_credentials("the access token lacks a session");
    let claims: EdgeClaims<'_> =
        serde_json::from_str(verified.claims_json().get()).map_err(|_| lacks_session())?;
    if !is_session_id(&claims.sid) {
        return Err(lacks_session());
    }
    let now = inner.clock.unix_seconds();
    if inner.revoked.is_revoked(&claims.sid, now) {
        return Err(AuthRejection::invalid_credentials(
            "the session has been revoked",
        ));
    }
    // The user changed (a role change) after this token was minted: its user claim is stale.
    // Refused like an expired token, so a refresh mints one from the updated session.
    if let Some(changed_at) = inner.revoked.user_changed_at(verified.subject(), now)
        && verified.issued_at().is_none_or(|iat| iat <= changed_at)
    {
        return Err(AuthRejection::invalid_credentials(
            "the access token predates a change to its user",
        ));
    }
    let session_id: Arc<str> = claims.sid.as_ref().into();
    // Straight from the borrowed claim into the shared text: one allocation, not an owned
    // RawValue copied once more.
    let mut identity = Identity::from_user_json(claims.user.into(), Mechanism::Hybrid)
        .with_session_handle(session_id.clone());
    if let Some(auth_time) = claims.auth_time {
        identity = identity.with_authenticated_at(UNIX_EPOCH + Duration::from_secs(auth_time));
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
