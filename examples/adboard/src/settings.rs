//! What the token modes read from the environment: the `JWT_*` keys (the same variables as
//! jwt-api and hybrid-app, so instances given one key accept each other's tokens), token
//! lifetimes, and where hybrid sessions live (`REDIS_URL`, else memory). Kept here so adboard
//! depends on no other example app.

use std::time::Duration;

use portcullis_core::{AlwaysReady, ReadinessChecks};
use portcullis_hybrid::{
    HybridSessions, HybridSessionsBuilder, InProcessFeed, LimitPolicy, MemoryRefreshStore,
    SessionLimit,
};
use portcullis_jwt::{TokenIssuer, Validation};
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisRevocationFeed};

use crate::{SetupError, jwt_keys::JwtKeySettings};

/// The issuer jwt mode writes into tokens unless `JWT_ISSUER` says otherwise.
const JWT_DEFAULT_ISSUER: &str = "portcullis-jwt-api";
/// The issuer hybrid mode writes into tokens unless `JWT_ISSUER` says otherwise.
const HYBRID_DEFAULT_ISSUER: &str = "portcullis-hybrid-app";

fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<Duration>, SetupError> {
    lookup(name)
        .map(|value| {
            value.trim().parse().map(Duration::from_secs).map_err(|_| {
                SetupError::Setting(format!("{name}: {value:?} is not a number of seconds"))
            })
        })
        .transpose()
}

/// Jwt mode: the issuer (lifetime `JWT_TTL_SECS`, else `ACCESS_TTL_SECS`, else 15 minutes)
/// and the validation of incoming tokens.
pub(crate) fn jwt_mode(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(TokenIssuer, Validation), SetupError> {
    let keys = JwtKeySettings::from_lookup(&lookup, JWT_DEFAULT_ISSUER)?;
    let ttl = match seconds(&lookup, "JWT_TTL_SECS")? {
        Some(ttl) => ttl,
        None => seconds(&lookup, "ACCESS_TTL_SECS")?.unwrap_or(portcullis_jwt::DEFAULT_TTL),
    };
    if ttl.is_zero() {
        return Err(SetupError::Setting(
            "JWT_TTL_SECS: must be at least 1".into(),
        ));
    }
    let issuer = keys.token_issuer(keys.signing_key()?).ttl(ttl);
    Ok((issuer, keys.validation()))
}

/// Hybrid mode: the sessions builder with its lifetimes (`ACCESS_TTL_SECS` 600,
/// `REFRESH_TTL_SECS` 14 days, `REFRESH_ABSOLUTE_SECS` 30 days, `REFRESH_GRACE_SECS` 5,
/// `HYBRID_MAX_PER_USER` / `HYBRID_LIMIT_POLICY`) and store, the issuer, and the readiness
/// checks of the store and feed.
pub(crate) fn hybrid_mode(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<(HybridSessionsBuilder, TokenIssuer, ReadinessChecks), SetupError> {
    let keys = JwtKeySettings::from_lookup(&lookup, HYBRID_DEFAULT_ISSUER)?;
    let secs = |name: &str, default: u64| {
        seconds(&lookup, name).map(|value| value.unwrap_or(Duration::from_secs(default)))
    };
    let access_ttl = secs("ACCESS_TTL_SECS", 600)?;
    let refresh_ttl = secs("REFRESH_TTL_SECS", 14 * 24 * 3600)?;
    let absolute_ttl = secs("REFRESH_ABSOLUTE_SECS", 30 * 24 * 3600)?.max(refresh_ttl);
    let issuer = keys.token_issuer(keys.signing_key()?).ttl(access_ttl);
    let mut builder = HybridSessions::builder(issuer.clone(), keys.validation())
        .access_ttl(access_ttl)
        .refresh_ttl(refresh_ttl)
        .absolute_ttl(absolute_ttl)
        .grace_window(secs("REFRESH_GRACE_SECS", 5)?)
        .leeway(keys.leeway);
    if let Some(limit) = session_limit(&lookup)? {
        builder = builder.max_sessions_per_user(limit);
    }
    if let Some(config) = RedisConfig::from_lookup(&lookup) {
        let redis = config.build()?;
        tracing::info!("sessions and revocations in Redis (REDIS_URL)");
        let store = RedisRefreshStore::new(redis.clone());
        let feed = RedisRevocationFeed::new(redis);
        let checks = ReadinessChecks::new()
            .check("session store", store.clone())
            .check("revocation feed", feed.clone());
        return Ok((builder.store(store).feed(feed), issuer, checks));
    }
    let checks = ReadinessChecks::new()
        .check("session store", AlwaysReady)
        .check("revocation feed", AlwaysReady);
    let builder = builder
        .store(MemoryRefreshStore::new())
        .feed(InProcessFeed::new());
    Ok((builder, issuer, checks))
}

fn session_limit(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<SessionLimit>, SetupError> {
    let policy = match lookup("HYBRID_LIMIT_POLICY").as_deref().map(str::trim) {
        None | Some("evict-oldest") => LimitPolicy::EvictOldest,
        Some("refuse-new") => LimitPolicy::RefuseNew,
        Some(other) => {
            return Err(SetupError::Setting(format!(
                "HYBRID_LIMIT_POLICY: {other:?} is not evict-oldest or refuse-new"
            )));
        }
    };
    match lookup("HYBRID_MAX_PER_USER").map(|value| (value.trim().parse::<u32>(), value)) {
        None | Some((Ok(0), _)) => Ok(None),
        Some((Ok(max), _)) => Ok(Some(SessionLimit { max, policy })),
        Some((Err(_), value)) => Err(SetupError::Setting(format!(
            "HYBRID_MAX_PER_USER: {value:?} is not a whole number (0 for unlimited)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_named() {
        let lookup = |name: &str| (name == "REFRESH_GRACE_SECS").then(|| "soon".to_owned());
        let error = hybrid_mode(lookup).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("REFRESH_GRACE_SECS")));
        let lookup = |name: &str| (name == "JWT_TTL_SECS").then(|| "0".to_owned());
        let error = jwt_mode(lookup).err().map(|e| e.to_string());
        assert!(error.is_some_and(|e| e.contains("JWT_TTL_SECS")));
        let lookup = |name: &str| (name == "HYBRID_MAX_PER_USER").then(|| "-1".to_owned());
        assert!(session_limit(&lookup).is_err());
        let lookup = |name: &str| (name == "HYBRID_MAX_PER_USER").then(|| "2".to_owned());
        assert_eq!(
            session_limit(&lookup).ok().flatten().map(|l| l.max),
            Some(2)
        );
    }
}
