//! Validating the claims of a token whose signature verified (RFC 7519 §7.2, RFC 8725
//! §3.8–§3.12): `exp`, `nbf`, `iat`, `auth_time`, `sub`, `iss`, `aud` and required claims.

use std::{borrow::Cow, collections::BTreeMap, sync::Arc};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis_core::UserJson;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{TokenError, Validation, VerifiedToken};

#[derive(Deserialize)]
pub(crate) struct Registered<'a> {
    #[serde(borrow, default)]
    exp: Option<&'a RawValue>,
    #[serde(borrow, default)]
    nbf: Option<&'a RawValue>,
    #[serde(borrow, default)]
    iat: Option<&'a RawValue>,
    #[serde(borrow, default)]
    auth_time: Option<&'a RawValue>,
    #[serde(borrow, default)]
    sub: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    iss: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    aud: Option<&'a RawValue>,
}

/// A NumericDate (RFC 7519 §2): a JSON number, possibly fractional. Strings, booleans and
/// negative or non-finite values are refused rather than coerced.
pub(crate) fn numeric_date(
    raw: Option<&RawValue>,
    name: &'static str,
) -> Result<Option<f64>, TokenError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let text = raw.get();
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(TokenError::InvalidClaim(name));
    }
    match serde_json::from_str::<f64>(text) {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(Some(value)),
        _ => Err(TokenError::InvalidClaim(name)),
    }
}

pub(crate) fn audience_matches(raw: &RawValue, accepted: &[Arc<str>]) -> Result<bool, TokenError> {
    let text = raw.get();
    if text.starts_with('"') {
        let aud: Cow<'_, str> =
            serde_json::from_str(text).map_err(|_| TokenError::InvalidClaim("aud"))?;
        Ok(accepted.iter().any(|a| **a == *aud))
    } else {
        let auds: Vec<Cow<'_, str>> =
            serde_json::from_str(text).map_err(|_| TokenError::InvalidClaim("aud"))?;
        Ok(auds.iter().any(|aud| accepted.iter().any(|a| **a == **aud)))
    }
}

pub(crate) fn validate_claims(
    payload: &str,
    validation: &Validation,
    pinned_issuer: Option<&str>,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("the payload is not base64url"))?;
    let text =
        String::from_utf8(bytes).map_err(|_| TokenError::Malformed("the payload is not UTF-8"))?;
    // RawValue keeps the exact claims for the identity; Registered reads the registered ones.
    // serde_json refuses duplicate registered claims in Registered, so two parsers can never
    // disagree about which `exp` or `sub` counts (RFC 8725 §3.10 on parser differentials).
    let claims = RawValue::from_string(text)
        .map_err(|_| TokenError::Malformed("the payload is not JSON"))?;
    // RFC 7519 §7.2 step 10: the claims set is a JSON object (serde would accept an array too).
    if !claims.get().trim_start().starts_with('{') {
        return Err(TokenError::Malformed(
            "the payload is not a valid claims object",
        ));
    }
    let registered: Registered<'_> = serde_json::from_str(claims.get())
        .map_err(|_| TokenError::Malformed("the payload is not a valid claims object"))?;

    let leeway = validation.leeway_secs as f64;
    let now_f = now as f64;
    let exp = numeric_date(registered.exp, "exp")?.ok_or(TokenError::MissingClaim("exp".into()))?;
    let nbf = numeric_date(registered.nbf, "nbf")?;
    let iat = numeric_date(registered.iat, "iat")?;
    let auth_time = numeric_date(registered.auth_time, "auth_time")?;
    // RFC 7519 §4.1.4: the current time MUST be before exp (a revocation-only verifier
    // widens this, see `Validation::dangerous_accept_expired_within`).
    if now_f >= exp + leeway + validation.expired_within_secs as f64 {
        return Err(TokenError::Expired);
    }
    if nbf.is_some_and(|nbf| nbf > now_f + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if iat.is_some_and(|iat| iat > now_f + leeway) {
        return Err(TokenError::IssuedInFuture);
    }
    if auth_time.is_some_and(|auth_time| auth_time > now_f + leeway) {
        return Err(TokenError::AuthenticatedInFuture);
    }
    let subject = match registered.sub {
        Some(sub) if !sub.is_empty() => Arc::<str>::from(sub),
        Some(_) => return Err(TokenError::InvalidClaim("sub")),
        None => return Err(TokenError::MissingClaim("sub".into())),
    };
    if !validation.issuers.is_empty() || pinned_issuer.is_some() {
        let iss = registered
            .iss
            .as_deref()
            .ok_or(TokenError::MissingClaim("iss".into()))?;
        if pinned_issuer.is_some_and(|pinned| pinned != iss) {
            return Err(TokenError::WrongIssuer);
        }
        if !validation.issuers.is_empty() && !validation.issuers.iter().any(|i| **i == *iss) {
            return Err(TokenError::WrongIssuer);
        }
    }
    match (registered.aud, validation.audiences.is_empty()) {
        (None, true) => {}
        (None, false) => return Err(TokenError::MissingClaim("aud".into())),
        // RFC 7519 §4.1.3: a token for some audience is refused by a service that cannot
        // identify itself with it.
        (Some(_), true) => return Err(TokenError::AudienceNotConfigured),
        (Some(aud), false) => {
            if !audience_matches(aud, &validation.audiences)? {
                return Err(TokenError::WrongAudience);
            }
        }
    }
    if !validation.required_claims.is_empty() {
        let all: BTreeMap<Cow<'_, str>, &RawValue> = serde_json::from_str(claims.get())
            .map_err(|_| TokenError::Malformed("the payload is not a valid claims object"))?;
        for name in &validation.required_claims {
            match all.get(&**name) {
                Some(value) if value.get() != "null" => {}
                _ => return Err(TokenError::MissingClaim(Cow::Owned(name.to_string()))),
            }
        }
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(VerifiedToken {
        subject,
        expires_at: exp as u64,
        issued_at: iat.map(|iat| iat as u64),
        authenticated_at: auth_time.map(|t| t as u64),
        claims: UserJson::from(claims),
    })
}
