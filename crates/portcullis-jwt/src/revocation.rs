//! Revocation for plain bearer tokens: a [`BearerLayer`](crate::BearerLayer) given a
//! [`RevocationList`] (fed by the application's revocation feed, the same one the hybrid edge
//! and the session user loader use) refuses a token by its `jti`, by its session (`sid`), or
//! every token of a user issued before an instant, with no store read per request (RFC 8725
//! §3.10 leaves revocation to the application; OWASP JSON Web Token Cheat Sheet, "No Built-In
//! Token Revocation by the User", suggests exactly such a denylist).
//!
//! # Precision
//!
//! `iat` has whole seconds. A per-user revocation is dated in milliseconds; a token is compared
//! by its `iat_ms` claim when it has one, else by the *start* of its `iat` second (fail
//! closed). So a token minted in the same second after a password change is refused unless it
//! carries `iat_ms`: issue tokens with an `iat_ms` claim (see [`issued_at_ms_claim`]) when
//! users may sign in right after such a revocation.

use portcullis_core::{
    AuthRejection,
    revocation::{Revocation, RevocationList},
};
use serde::Deserialize;

use crate::VerifiedToken;

/// The key a token's `jti` is listed under (a prefix keeps it apart from session ids).
fn jti_key(jti: &str) -> String {
    format!("jti:{jti}")
}

/// The revocation of one token, by its `jti`, kept until it expires (`exp`): publish it on the
/// feed (`RevocationFeed::publish`) at logout.
///
/// # Examples
///
/// ```
/// use portcullis_core::revocation::RevocationList;
/// use portcullis_jwt::token_revocation;
///
/// let list = RevocationList::new();
/// list.insert(&token_revocation("3f9a", 1_900_000_000));
/// assert!(list.is_revoked("jti:3f9a", 1_800_000_000));
/// ```
pub fn token_revocation(jti: &str, expires_at: u64) -> Revocation {
    Revocation {
        session_id: jti_key(jti),
        until: expires_at,
    }
}

/// The `iat_ms` claim for a token minted at `now_ms` (Unix milliseconds): merge it into the
/// claims given to `TokenIssuer::issue` so a per-user revocation dated just before cannot
/// catch the new token.
///
/// # Examples
///
/// ```
/// let claims = portcullis_jwt::issued_at_ms_claim(1_700_000_000_123);
/// assert_eq!(claims["iat_ms"], 1_700_000_000_123u64);
/// ```
pub fn issued_at_ms_claim(now_ms: u64) -> serde_json::Value {
    serde_json::json!({ "iat_ms": now_ms })
}

#[derive(Deserialize)]
struct Facts<'a> {
    #[serde(borrow)]
    jti: Option<&'a str>,
    #[serde(borrow)]
    sid: Option<&'a str>,
    iat: Option<u64>,
    iat_ms: Option<u64>,
}

/// Whether `list` admits `token` at `now` (Unix seconds): 401 `invalid_token` when revoked,
/// 503 while the feed has not delivered every revocation in force (fail closed).
pub(crate) fn admit(
    list: &RevocationList,
    token: &VerifiedToken,
    now: u64,
) -> Result<(), AuthRejection> {
    if !list.is_caught_up() {
        return Err(AuthRejection::unavailable(
            "the revocation list is catching up; retry",
        ));
    }
    if list.is_empty() {
        return Ok(());
    }
    let facts: Facts<'_> = serde_json::from_str(token.claims_json())
        .map_err(|_| AuthRejection::invalid_credentials("the token's claims are malformed"))?;
    let revoked_token = facts
        .jti
        .is_some_and(|jti| list.is_revoked(&jti_key(jti), now));
    let revoked_session = facts.sid.is_some_and(|sid| list.is_revoked(sid, now));
    // No `iat` at all: as old as can be.
    let issued_at_ms = facts
        .iat_ms
        .or_else(|| facts.iat.map(|iat| iat.saturating_mul(1_000)))
        .unwrap_or(0);
    let revoked_user = list.is_user_revoked(token.subject(), issued_at_ms, now);
    if revoked_token || revoked_session || revoked_user {
        return Err(AuthRejection::invalid_credentials(
            "the token has been revoked",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use http::{Request, StatusCode, header};
    use portcullis_core::{
        CurrentUser,
        revocation::{InProcessFeed, RevocationFeed, UserRevocation},
    };
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};

    fn now_ms() -> u64 {
        u64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    }

    async fn status(app: &Router, token: &str) -> (StatusCode, Option<String>) {
        let request = Request::get("/me")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|value| value.to_str().unwrap().to_owned());
        (response.status(), challenge)
    }

    #[tokio::test]
    async fn refuses_by_jti_by_session_and_by_user_before_an_instant() {
        let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
        let feed = InProcessFeed::new();
        let list = RevocationList::new();
        feed.subscribe(list.clone()).await.unwrap();
        let layer = BearerLayer::new(TokenVerifier::new(issuer.key_set(), Validation::new()))
            .revocations(list.clone());
        let app = Router::new()
            .route(
                "/me",
                get(|CurrentUser(user): CurrentUser<Value>| async move { user.to_string() }),
            )
            .layer(layer);
        let mint = |sub: &str, claims: Value| issuer.issue(sub, &claims).unwrap();

        let logged_out = mint("alice", json!({}));
        let other = mint("alice", json!({}));
        assert_eq!(status(&app, &logged_out.token).await.0, StatusCode::OK);
        feed.publish(&token_revocation(&logged_out.jti, u64::MAX))
            .await
            .unwrap();
        let (code, challenge) = status(&app, &logged_out.token).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
        assert_eq!(
            status(&app, &other.token).await.0,
            StatusCode::OK,
            "by jti only"
        );

        let in_session = mint("bob", json!({"sid": "s-1"}));
        feed.publish(&Revocation {
            session_id: "s-1".into(),
            until: u64::MAX,
        })
        .await
        .unwrap();
        assert_eq!(
            status(&app, &in_session.token).await.0,
            StatusCode::UNAUTHORIZED
        );

        // A password change: every earlier token of carol dies, one minted just after (same
        // `iat` second, but an `iat_ms` after the instant) works.
        let before = mint("carol", issued_at_ms_claim(now_ms()));
        let without_ms = mint("carol", json!({}));
        let changed_at = now_ms() + 1;
        feed.publish_user(&UserRevocation {
            user_id: "carol".into(),
            not_before_ms: changed_at,
            until: u64::MAX,
        })
        .await
        .unwrap();
        let after = mint("carol", issued_at_ms_claim(changed_at));
        assert_eq!(
            status(&app, &before.token).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(&app, &without_ms.token).await.0,
            StatusCode::UNAUTHORIZED,
            "no iat_ms: the start of its second, fail closed"
        );
        assert_eq!(status(&app, &after.token).await.0, StatusCode::OK);
        assert_eq!(
            status(&app, &other.token).await.0,
            StatusCode::OK,
            "other users untouched"
        );

        list.set_caught_up(false);
        assert_eq!(
            status(&app, &other.token).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
