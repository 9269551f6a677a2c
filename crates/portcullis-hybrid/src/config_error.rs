//! [`ConfigError`]: why [`HybridSessionsBuilder::build`](crate::HybridSessionsBuilder::build)
//! or [`CookieTransport::validate`](crate::CookieTransport::validate) refused a configuration:
//! one variant per rule, each naming the RFC it follows.

use std::time::Duration;

use portcullis_core::StoreError;

/// A configuration [`HybridSessionsBuilder::build`](crate::HybridSessionsBuilder::build) or
/// [`CookieTransport::validate`](crate::CookieTransport::validate) refused, or a feed it could
/// not join.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The access-token lifetime is under one second or over one day. Access tokens are the
    /// part that cannot be recalled before they expire, so they stay short (RFC 6819 §5.1.5.3,
    /// RFC 9700 §4.14: the refresh token carries the long session).
    #[error("access_ttl must be between 1 second and 1 day, not {0:?}")]
    AccessTtlOutOfRange(Duration),
    /// A session lifetime (`refresh_ttl` or `absolute_ttl`, named) under one second: records
    /// keep whole seconds.
    #[error("{0} must be at least 1 second")]
    TooShort(&'static str),
    /// The idle lifetime (`refresh_ttl`) exceeds the absolute one, so it could never apply
    /// (OWASP Session Management Cheat Sheet, "Session Expiration").
    #[error("refresh_ttl must not exceed absolute_ttl")]
    IdleExceedsAbsolute,
    /// The grace window for a rotated-out refresh token is over 60 seconds: a stolen token
    /// replayed inside it is not detected, so it stays as short as racing tabs need
    /// (RFC 9700 §4.14.2, refresh token rotation).
    #[error("grace_window must be at most 60 seconds, not {0:?}")]
    GraceWindowTooLong(Duration),
    /// The clock-skew leeway is over [`MAX_LEEWAY`](portcullis_jwt::MAX_LEEWAY) (5 minutes):
    /// RFC 7519 §4.1.4 allows "a small leeway, usually no more than a few minutes".
    #[error("leeway must be at most 5 minutes, not {0:?}")]
    LeewayTooLong(Duration),
    /// A per-user limit of zero sessions: nobody could log in.
    #[error("max_sessions_per_user must allow at least 1 session")]
    ZeroSessionLimit,
    /// No [`RefreshStore`](crate::RefreshStore) was given.
    #[error("no refresh store configured: call .store(..)")]
    MissingStore,
    /// No [`RevocationFeed`](crate::RevocationFeed) was given.
    #[error("no revocation feed configured: call .feed(..)")]
    MissingFeed,
    /// Subscribing to the revocation feed failed.
    #[error("could not subscribe to the revocation feed")]
    Feed(#[source] StoreError),
    /// The access and refresh cookies share a name, so one would overwrite the other
    /// (RFC 6265 §5.3 step 11: a cookie replaces one of the same name, domain and path).
    #[error("invalid cookie setting: the two cookies need different names")]
    SameCookieNames,
    /// Transparent refresh needs the refresh cookie on every request, so on `Path=/`
    /// (RFC 6265 §5.1.4: a browser sends a cookie only under its path).
    #[error("invalid cookie setting: transparent refresh needs the refresh cookie on Path=/")]
    TransparentRefreshPath,
    /// A cookie name, path or attribute a browser would reject (RFC 6265bis): the rules every
    /// portcullis cookie shares, `SameSite=None` without `Secure` among them.
    #[error(transparent)]
    CookieAttributes(#[from] portcullis_core::credentials::CookieError),
}

#[cfg(test)]
mod tests {
    use portcullis_jwt::{Algorithm, SigningKey, TokenIssuer, Validation};

    use super::*;
    use crate::{
        CookieTransport, HybridSessions, HybridSessionsBuilder, InProcessFeed, LimitPolicy,
        MemoryRefreshStore, SameSite, SessionLimit,
    };

    async fn build(
        configure: impl FnOnce(HybridSessionsBuilder) -> HybridSessionsBuilder,
    ) -> Result<HybridSessions, ConfigError> {
        let issuer = TokenIssuer::new(SigningKey::generate(Algorithm::HS256).unwrap());
        let builder = HybridSessions::builder(issuer, Validation::new())
            .store(MemoryRefreshStore::new())
            .feed(InProcessFeed::new());
        configure(builder).build().await
    }

    #[tokio::test]
    async fn each_builder_rule_has_its_own_variant() {
        let secs = Duration::from_secs;
        let err = |result: Result<HybridSessions, ConfigError>| result.err().map(|e| e.to_string());
        assert_eq!(
            err(build(|b| b.access_ttl(Duration::ZERO)).await),
            Some("access_ttl must be between 1 second and 1 day, not 0ns".into())
        );
        assert!(matches!(
            build(|b| b.access_ttl(secs(2 * 86_400))).await,
            Err(ConfigError::AccessTtlOutOfRange(ttl)) if ttl == secs(2 * 86_400)
        ));
        assert!(matches!(
            build(|b| b.refresh_ttl(Duration::ZERO)).await,
            Err(ConfigError::TooShort("refresh_ttl"))
        ));
        assert!(matches!(
            build(|b| b.absolute_ttl(Duration::ZERO)).await,
            Err(ConfigError::TooShort("absolute_ttl"))
        ));
        assert!(matches!(
            build(|b| b.refresh_ttl(secs(100)).absolute_ttl(secs(10))).await,
            Err(ConfigError::IdleExceedsAbsolute)
        ));
        assert!(matches!(
            build(|b| b.grace_window(secs(61))).await,
            Err(ConfigError::GraceWindowTooLong(grace)) if grace == secs(61)
        ));
        assert!(matches!(
            build(|b| b.leeway(secs(301))).await,
            Err(ConfigError::LeewayTooLong(_))
        ));
        let zero = SessionLimit {
            max: 0,
            policy: LimitPolicy::RefuseNew,
        };
        assert!(matches!(
            build(|b| b.max_sessions_per_user(zero)).await,
            Err(ConfigError::ZeroSessionLimit)
        ));
        // The edges of each range are accepted.
        assert!(
            build(|b| b.access_ttl(secs(1)).grace_window(secs(60)))
                .await
                .is_ok()
        );
        assert!(
            build(|b| b.access_ttl(secs(86_400)).leeway(secs(300)))
                .await
                .is_ok()
        );
    }

    #[test]
    fn each_cookie_rule_has_its_own_variant() {
        assert!(CookieTransport::new().validate().is_ok());
        assert!(CookieTransport::transparent().validate().is_ok());
        let plain = || {
            CookieTransport::new()
                .dangerous_insecure()
                .access_cookie_name("access")
                .refresh_cookie_name("refresh")
        };
        assert!(plain().validate().is_ok());
        assert!(matches!(
            plain().same_site(SameSite::None).validate(),
            Err(ConfigError::CookieAttributes(
                portcullis_core::credentials::CookieError::SameSiteNoneRequiresSecure
            ))
        ));
        assert!(matches!(
            plain().refresh_cookie_name("access").validate(),
            Err(ConfigError::SameCookieNames)
        ));
        assert!(matches!(
            CookieTransport::transparent()
                .refresh_cookie_name("__Secure-refresh")
                .refresh_cookie_path("/refresh")
                .validate(),
            Err(ConfigError::TransparentRefreshPath)
        ));
        assert!(matches!(
            CookieTransport::new()
                .access_cookie_name("__host-access")
                .dangerous_insecure()
                .validate(),
            Err(ConfigError::CookieAttributes(_))
        ));
    }
}
