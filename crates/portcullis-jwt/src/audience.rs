//! Telling the operator what to configure when an identity provider's tokens carry `aud` and
//! the [`Validation`](crate::Validation) names no audience: the most common first-day failure
//! with Auth0, Microsoft Entra ID, Keycloak or Okta access tokens.
//!
//! Such tokens are refused (RFC 7519 §4.1.3: a recipient that does not identify itself with a
//! value of `aud` MUST reject the token; RFC 8725 §3.9 on cross-JWT confusion), with
//! [`TokenError::AudienceNotConfigured`](crate::TokenError::AudienceNotConfigured) instead of a
//! generic "wrong audience", and a rate-limited warning names the setting and the token's
//! audiences. The warning is written only after the signature verified, so the audiences it
//! quotes come from a trusted issuer; it never contains the token (OWASP Logging Cheat Sheet,
//! "Data to exclude").

use std::{
    borrow::Cow,
    sync::atomic::{AtomicU64, Ordering},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

/// At most one warning per verifier in this many seconds: every request with such a token is
/// refused the same way, and the log must not grow with the traffic.
const WARNING_INTERVAL_SECS: u64 = 60;
/// The audiences quoted in the warning, and the characters kept of each.
const MAX_QUOTED: usize = 4;
const MAX_QUOTED_CHARS: usize = 120;

/// Rate-limits the warning, per [`TokenVerifier`](crate::TokenVerifier) (the same scheme as
/// the WARN throttle of `portcullis_core::observe`).
#[derive(Debug, Default)]
pub(crate) struct AudienceHint {
    /// The Unix second from which the next warning may be written.
    next_at: AtomicU64,
}

impl AudienceHint {
    /// Logs the operator hint for a token refused with `AudienceNotConfigured` (its payload
    /// segment, already signature-checked), unless one was logged less than a minute ago.
    /// Returns whether it logged.
    pub(crate) fn report(&self, payload: &str, now: u64) -> bool {
        let next_at = self.next_at.load(Ordering::Relaxed);
        let admitted = now >= next_at
            && self
                .next_at
                .compare_exchange(
                    next_at,
                    now.saturating_add(WARNING_INTERVAL_SECS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if admitted {
            tracing::warn!(
                target: "portcullis",
                token_audiences = %quoted_audiences(payload),
                "{OPERATOR_HINT}"
            );
        }
        admitted
    }
}

/// What the warning says, besides the token's audiences.
pub(crate) const OPERATOR_HINT: &str = "JWT refused: it carries an `aud` claim (see \
    token_audiences) but no audience is configured, and RFC 7519 §4.1.3 requires refusing it. \
    Configure this API's identifier at the identity provider as the audience: \
    `Validation::new().audience(\"...\")` (JWT_AUDIENCE in the example apps). It is the Auth0 \
    \"API identifier\", the Microsoft Entra \"Application ID URI\" (api://...) or client id, \
    the Keycloak client id (with an audience mapper), the Okta authorization server's audience \
    (api://default)";

#[derive(Deserialize)]
struct AudienceOnly<'a> {
    #[serde(borrow, default)]
    aud: Option<Audience<'a>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

/// The token's audiences as a short JSON-style list for the log, bounded in count and length;
/// `Debug` formatting escapes quotes and control characters (OWASP Logging Cheat Sheet, log
/// injection).
fn quoted_audiences(payload: &str) -> String {
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload) else {
        return String::from("[]");
    };
    let audiences: Vec<Cow<'_, str>> = match serde_json::from_slice::<AudienceOnly<'_>>(&bytes) {
        Ok(AudienceOnly {
            aud: Some(Audience::One(one)),
        }) => vec![one],
        Ok(AudienceOnly {
            aud: Some(Audience::Many(many)),
        }) => many,
        _ => Vec::new(),
    };
    let shown: Vec<String> = audiences
        .iter()
        .take(MAX_QUOTED)
        .map(|aud| {
            format!(
                "{:?}",
                aud.chars().take(MAX_QUOTED_CHARS).collect::<String>()
            )
        })
        .collect();
    let more = if audiences.len() > MAX_QUOTED {
        ", ..."
    } else {
        ""
    };
    format!("[{}{more}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(claims: serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(claims.to_string())
    }

    #[test]
    fn quotes_the_audiences_providers_send() {
        let cases = [
            // Auth0: the API identifier and the userinfo endpoint.
            (
                serde_json::json!({"aud": ["https://api.example.com", "https://tenant.eu.auth0.com/userinfo"]}),
                r#"["https://api.example.com", "https://tenant.eu.auth0.com/userinfo"]"#,
            ),
            // Microsoft Entra ID v2: the application (client) id.
            (
                serde_json::json!({"aud": "6e74172b-be56-4843-9ff4-e66a39bb12e3"}),
                r#"["6e74172b-be56-4843-9ff4-e66a39bb12e3"]"#,
            ),
            // Keycloak: "account" unless an audience mapper says otherwise.
            (serde_json::json!({"aud": "account"}), r#"["account"]"#),
            // Log injection: quotes and newlines are escaped.
            (serde_json::json!({"aud": "a\"\nb"}), r#"["a\"\nb"]"#),
            (
                serde_json::json!({"aud": ["1", "2", "3", "4", "5"]}),
                r#"["1", "2", "3", "4", ...]"#,
            ),
            (serde_json::json!({"aud": 7}), "[]"),
        ];
        for (claims, expected) in cases {
            assert_eq!(quoted_audiences(&payload(claims)), expected);
        }
        assert_eq!(quoted_audiences("%%%"), "[]");
        let long = "x".repeat(500);
        let quoted = quoted_audiences(&payload(serde_json::json!({ "aud": long })));
        assert_eq!(quoted.len(), MAX_QUOTED_CHARS + 4);
    }

    #[test]
    fn warns_at_most_once_a_minute() {
        let hint = AudienceHint::default();
        let token = payload(serde_json::json!({"aud": "api"}));
        assert!(hint.report(&token, 1_000));
        assert!(!hint.report(&token, 1_000));
        assert!(!hint.report(&token, 1_059));
        assert!(hint.report(&token, 1_060));
        assert!(!hint.report(&token, 1_061));
        // A clock at zero (a test clock) warns too, once.
        let hint = AudienceHint::default();
        assert!(hint.report(&token, 0));
        assert!(!hint.report(&token, 30));
    }

    #[test]
    fn the_hint_names_the_setting() {
        assert!(OPERATOR_HINT.contains("Validation::new().audience("));
        assert!(OPERATOR_HINT.contains("JWT_AUDIENCE"));
        assert!(OPERATOR_HINT.contains("RFC 7519"));
    }
}
