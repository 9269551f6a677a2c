//! One rejection type for every mechanism, rendered as an HTTP response: status,
//! `WWW-Authenticate` for bearer mechanisms (RFC 6750 §3), `Cache-Control: no-store` and a JSON
//! body `{"error": "...", "error_description": "..."}`.
//!
//! Refused credentials are described generically to the client ("the access token is
//! invalid"): which check failed (expired, bad signature, revoked, wrong audience) helps an
//! attacker probe more than it helps a client, whose only move is to refresh or sign in again
//! (OWASP Authentication Cheat Sheet, "Authentication and Error Messages"). The detail goes to
//! the logs ([`observe`](crate::observe)); [`AuthRejection::dangerous_detailed_description`]
//! shows it to the client too, for development.

use std::{borrow::Cow, fmt, sync::Arc};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No credentials at all (401).
    MissingCredentials,
    /// Credentials were present but wrong, expired or revoked (401).
    InvalidCredentials,
    /// The caller is known but a policy refused them (403).
    Forbidden,
    /// The caller is known but last proved who they are too long ago for this action: sign in
    /// again or confirm the password (401, RFC 9470 step-up authentication).
    StaleAuthentication,
    /// A cookie-authenticated unsafe request came from another site (403).
    CrossSiteRequest,
    /// The request itself is malformed: duplicate or garbled `Authorization`, bad body (400).
    InvalidRequest,
    /// Too many failed logins for this account or client: wait for the back-off (429 with
    /// `Retry-After`; OWASP ASVS V2.2.1).
    TooManyAttempts,
    /// A store or key set the decision depends on is unreachable (503). Fails closed.
    Unavailable,
    /// The application is wired wrongly, for example an extractor without its layer (500).
    Misconfigured,
}

impl RejectionKind {
    /// The HTTP status this kind maps to.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingCredentials | Self::InvalidCredentials | Self::StaleAuthentication => {
                StatusCode::UNAUTHORIZED
            }
            Self::Forbidden | Self::CrossSiteRequest => StatusCode::FORBIDDEN,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A refused request, ready to become a response.
///
/// Layers and extractors produce it; the response it renders carries a copy of it in its
/// extensions so [`MapRejectionLayer`](crate::MapRejectionLayer) can replace the rendering.
///
/// # Examples
///
/// ```
/// use portcullis_core::AuthRejection;
/// use http::StatusCode;
///
/// let rejection = AuthRejection::invalid_credentials("the token has expired")
///     .with_bearer_challenge("api");
/// let response: http::Response<bytes::Bytes> = rejection.to_response();
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// // Which check failed stays in the logs: the client learns only that the token is invalid.
/// assert_eq!(
///     response.headers()["www-authenticate"],
///     r#"Bearer realm="api", error="invalid_token", error_description="the access token is invalid""#
/// );
/// assert_eq!(response.headers()["cache-control"], "no-store");
/// ```
#[derive(Debug, Clone)]
pub struct AuthRejection {
    kind: RejectionKind,
    description: Cow<'static, str>,
    bearer_realm: Option<Arc<str>>,
    retry_after_secs: u32,
    detailed: bool,
}

/// Seconds a client is asked to wait after a 503 (RFC 9110 §10.2.3).
const DEFAULT_RETRY_AFTER_SECS: u32 = 2;

impl AuthRejection {
    /// A rejection of the given kind with a description safe to show the client.
    pub fn new(kind: RejectionKind, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            description: description.into(),
            bearer_realm: None,
            retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            detailed: false,
        }
    }

    /// 401: the request carries no credentials.
    pub fn missing_credentials() -> Self {
        Self::new(
            RejectionKind::MissingCredentials,
            "authentication is required",
        )
    }

    /// 401: the credentials are wrong, expired or revoked.
    pub fn invalid_credentials(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::InvalidCredentials, description)
    }

    /// 403: a policy refused the authenticated caller.
    pub fn forbidden(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::Forbidden, description)
    }

    /// 401 `insufficient_user_authentication`: the caller must authenticate again (RFC 9470).
    pub fn stale_authentication(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::StaleAuthentication, description)
    }

    /// 403: a cookie-authenticated unsafe request from another site.
    pub fn cross_site(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::CrossSiteRequest, description)
    }

    /// 400: the request is malformed.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::InvalidRequest, description)
    }

    /// 429 with `Retry-After`: too many failed logins; the caller must wait (set the wait with
    /// [`AuthRejection::with_retry_after`]).
    pub fn too_many_attempts(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::TooManyAttempts, description)
    }

    /// 503 with `Retry-After`: a store or key set is unreachable, so nobody is let in.
    pub fn unavailable(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::Unavailable, description)
    }

    /// 500: the application is wired wrongly.
    pub fn misconfigured(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(RejectionKind::Misconfigured, description)
    }

    /// Renders a `WWW-Authenticate: Bearer` challenge with this realm (RFC 6750 §3).
    #[must_use]
    pub fn with_bearer_challenge(mut self, realm: impl Into<Arc<str>>) -> Self {
        self.bearer_realm = Some(realm.into());
        self
    }

    /// Shows the client the detailed description of refused credentials (which check failed)
    /// instead of the generic one, when `detailed` is true.
    ///
    /// # Security
    ///
    /// Tells a prober which check its token failed (expired, revoked, wrong audience, bad
    /// signature). Meant for development; the detail is always in the logs.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::AuthRejection;
    /// let rejection = AuthRejection::invalid_credentials("the token has expired");
    /// assert_eq!(rejection.client_description(), "the credentials are invalid");
    /// let rejection = rejection.dangerous_detailed_description(true);
    /// assert_eq!(rejection.client_description(), "the token has expired");
    /// ```
    #[must_use]
    pub fn dangerous_detailed_description(mut self, detailed: bool) -> Self {
        self.detailed = detailed;
        self
    }

    /// Changes the `Retry-After` of a 503 or 429.
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_secs = seconds;
        self
    }

    /// Why the request was refused.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The detailed description: what logs and [`observe`](crate::observe) events carry.
    /// The client sees [`AuthRejection::client_description`].
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The description shown to the client: generic for refused credentials (unless
    /// [`dangerous_detailed_description`](AuthRejection::dangerous_detailed_description)),
    /// the detailed one otherwise (a malformed request, a store outage).
    pub fn client_description(&self) -> &str {
        match self.kind {
            RejectionKind::InvalidCredentials if !self.detailed => {
                if self.bearer_realm.is_some() {
                    "the access token is invalid"
                } else {
                    "the credentials are invalid"
                }
            }
            _ => &self.description,
        }
    }

    /// The realm of the bearer challenge, if any.
    pub fn bearer_realm(&self) -> Option<&str> {
        self.bearer_realm.as_deref()
    }

    /// The machine-readable error code of the JSON body (and of the bearer challenge, where
    /// RFC 6750 §3.1 defines one).
    pub fn error_code(&self) -> &'static str {
        match self.kind {
            RejectionKind::MissingCredentials => "unauthorized",
            RejectionKind::InvalidCredentials if self.bearer_realm.is_some() => "invalid_token",
            RejectionKind::InvalidCredentials => "invalid_credentials",
            RejectionKind::Forbidden if self.bearer_realm.is_some() => "insufficient_scope",
            RejectionKind::Forbidden => "forbidden",
            RejectionKind::StaleAuthentication => "insufficient_user_authentication",
            RejectionKind::CrossSiteRequest => "cross_site_request",
            RejectionKind::InvalidRequest => "invalid_request",
            RejectionKind::TooManyAttempts => "too_many_attempts",
            RejectionKind::Unavailable => "temporarily_unavailable",
            RejectionKind::Misconfigured => "server_error",
        }
    }

    fn challenge(&self, realm: &str) -> String {
        let mut value = format!("Bearer realm=\"{}\"", quoted_string_safe(realm));
        // RFC 6750 §3.1: a request without credentials gets no error code.
        if self.kind != RejectionKind::MissingCredentials {
            value.push_str(&format!(
                ", error=\"{}\", error_description=\"{}\"",
                self.error_code(),
                quoted_string_safe(self.client_description())
            ));
        }
        value
    }

    /// The response of a rejection a layer's response future holds, taken out so the future
    /// can finish. Every layer answers a poll after completion the same way, with a harmless
    /// 500 `server_error` instead of a panic (the `Future` contract leaves it unspecified).
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::AuthRejection;
    ///
    /// let mut slot = Some(AuthRejection::invalid_request("bad"));
    /// let first: http::Response<Vec<u8>> = AuthRejection::respond_once(&mut slot);
    /// assert_eq!(first.status(), 400);
    /// let again: http::Response<Vec<u8>> = AuthRejection::respond_once(&mut slot);
    /// assert_eq!(again.status(), 500);
    /// ```
    pub fn respond_once<B: From<Bytes>>(slot: &mut Option<Self>) -> Response<B> {
        slot.take()
            .unwrap_or_else(|| Self::misconfigured("response future polled after completion"))
            .to_response()
    }

    /// Renders the rejection for any body type built from bytes (axum's `Body`,
    /// `http_body_util::Full<Bytes>`, ...). A copy of the rejection rides in the response
    /// extensions.
    pub fn to_response<B: From<Bytes>>(&self) -> Response<B> {
        crate::observe::rejection(self);
        let body = serde_json::json!({
            "error": self.error_code(),
            "error_description": self.client_description(),
        });
        let mut response = Response::new(B::from(Bytes::from(body.to_string())));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        // OWASP Session Management Cheat Sheet, "Web Content Caching": auth answers are not
        // cached by browsers or proxies.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(Ok(value)) = self
            .bearer_realm
            .as_ref()
            .map(|realm| HeaderValue::from_str(&self.challenge(realm)))
        {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        if matches!(
            self.kind,
            RejectionKind::Unavailable | RejectionKind::TooManyAttempts
        ) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(self.retry_after_secs),
            );
        }
        response.extensions_mut().insert(self.clone());
        response
    }
}

/// Keeps only the characters RFC 6750 §3 allows inside `error_description` (%x20-21 / %x23-5B /
/// %x5D-7E), so a description can never break out of the quoted string.
fn quoted_string_safe(text: &str) -> Cow<'_, str> {
    let allowed = |c: char| matches!(c, '\x20'..='\x21' | '\x23'..='\x5B' | '\x5D'..='\x7E');
    if text.chars().all(allowed) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if allowed(c) { c } else { '?' })
                .collect(),
        )
    }
}

impl fmt::Display for AuthRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code(), self.description)
    }
}

impl std::error::Error for AuthRejection {}

#[cfg(feature = "axum")]
impl axum_core::response::IntoResponse for AuthRejection {
    fn into_response(self) -> axum_core::response::Response {
        self.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(rejection: &AuthRejection) -> (StatusCode, Option<String>, serde_json::Value) {
        let response: Response<Bytes> = rejection.to_response();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let body = serde_json::from_slice(response.body()).unwrap();
        (response.status(), challenge, body)
    }

    #[test]
    fn table_of_kinds() {
        let cases = [
            (AuthRejection::missing_credentials(), 401, "unauthorized"),
            (
                AuthRejection::invalid_credentials("x"),
                401,
                "invalid_credentials",
            ),
            (AuthRejection::forbidden("x"), 403, "forbidden"),
            (
                AuthRejection::stale_authentication("x"),
                401,
                "insufficient_user_authentication",
            ),
            (AuthRejection::cross_site("x"), 403, "cross_site_request"),
            (AuthRejection::invalid_request("x"), 400, "invalid_request"),
            (
                AuthRejection::too_many_attempts("x"),
                429,
                "too_many_attempts",
            ),
            (
                AuthRejection::unavailable("x"),
                503,
                "temporarily_unavailable",
            ),
            (AuthRejection::misconfigured("x"), 500, "server_error"),
        ];
        for (rejection, status, code) in cases {
            let (got_status, challenge, body) = render(&rejection);
            assert_eq!(got_status.as_u16(), status, "{rejection}");
            assert_eq!(body["error"], code);
            assert!(challenge.is_none());
        }
    }

    #[test]
    fn bearer_missing_credentials_has_no_error_code() {
        let (_, challenge, _) =
            render(&AuthRejection::missing_credentials().with_bearer_challenge("api"));
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="api""#));
    }

    #[test]
    fn bearer_forbidden_is_insufficient_scope() {
        let (status, challenge, body) =
            render(&AuthRejection::forbidden("admins only").with_bearer_challenge("api"));
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(challenge.unwrap().contains(r#"error="insufficient_scope""#));
        assert_eq!(body["error"], "insufficient_scope");
    }

    #[test]
    fn refused_credentials_are_described_generically_unless_asked() {
        // (rejection, expected challenge description, expected body description)
        let cases = [
            (
                AuthRejection::invalid_credentials("the token has expired")
                    .with_bearer_challenge("api"),
                Some("the access token is invalid"),
                "the access token is invalid",
            ),
            (
                AuthRejection::invalid_credentials("the session has been revoked"),
                None,
                "the credentials are invalid",
            ),
            (
                AuthRejection::invalid_credentials("the token has expired")
                    .with_bearer_challenge("api")
                    .dangerous_detailed_description(true),
                Some("the token has expired"),
                "the token has expired",
            ),
            // Other kinds keep their text: it names no credential check.
            (
                AuthRejection::invalid_request("two Authorization headers")
                    .with_bearer_challenge("api"),
                Some("two Authorization headers"),
                "two Authorization headers",
            ),
        ];
        for (rejection, in_challenge, in_body) in cases {
            let (_, challenge, body) = render(&rejection);
            match in_challenge {
                Some(text) => assert!(
                    challenge
                        .as_deref()
                        .unwrap()
                        .ends_with(&format!("error_description=\"{text}\"")),
                    "{challenge:?}"
                ),
                None => assert!(challenge.is_none()),
            }
            assert_eq!(body["error_description"], in_body);
            // The detail is kept for logs either way.
            assert_ne!(rejection.description(), "");
        }
    }

    #[test]
    fn description_cannot_break_the_challenge() {
        let (_, challenge, body) = render(
            &AuthRejection::invalid_credentials("bad \"quote\" \\ and\nnewline é")
                .with_bearer_challenge("a\"pi")
                .dangerous_detailed_description(true),
        );
        let challenge = challenge.unwrap();
        assert_eq!(
            challenge,
            r#"Bearer realm="a?pi", error="invalid_token", error_description="bad ?quote? ? and?newline ?""#
        );
        // The JSON body keeps the text intact: serde escapes it.
        assert_eq!(body["error_description"], "bad \"quote\" \\ and\nnewline é");
    }

    #[test]
    fn unavailable_has_retry_after_and_carries_itself() {
        let response: Response<Bytes> = AuthRejection::unavailable("store down")
            .with_retry_after(7)
            .to_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let carried = response.extensions().get::<AuthRejection>().unwrap();
        assert_eq!(carried.kind(), RejectionKind::Unavailable);
        let response: Response<Bytes> = AuthRejection::too_many_attempts("slow down")
            .with_retry_after(30)
            .to_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "30");
    }
}
