//! [`Credentials`]: a username and password as posted to a login route (JSON or an HTML form),
//! with the address they came from. One parser for every app, so each login route refuses the
//! same malformed or oversized input with the same precise 4xx.

use std::{fmt, net::IpAddr};

use serde::Deserialize;

use super::LoginAttempt;

/// Longest username accepted (bytes).
pub(super) const MAX_USERNAME_LEN: usize = 256;
/// Longest password accepted (bytes): room for any passphrase, and a bound on what a login
/// makes the server hash (OWASP Password Storage Cheat Sheet, "Maximum password lengths").
pub(super) const MAX_PASSWORD_LEN: usize = 1024;
/// Largest login body read; anything longer is refused before it is parsed.
#[cfg(feature = "axum")]
const MAX_BODY_LEN: usize = 4096;

/// A username and password, as posted to a login route, and the client address they came
/// from (for the per-client back-off of the [`LoginGuard`](super::LoginGuard)).
///
/// As an axum extractor it reads a JSON body `{"username": "...", "password": "..."}` or a
/// form (`application/x-www-form-urlencoded`, fields `username` and `password`); other fields
/// are ignored. It refuses, with 400 `invalid_request` and a description saying what is
/// wrong: another content type, a body over 4 KiB, JSON or a form that does not parse or
/// lacks a field, a field given twice, a username over 256 bytes or a password over 1,024.
/// The client address comes from the connection ([`ClientAddress`](super::ClientAddress)),
/// never from a header the client controls.
///
/// `Debug` never prints the password.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use axum::{Router, routing::post};
/// use portcullis_core::Credentials;
///
/// async fn login(credentials: Credentials) -> String {
///     format!("{} from {:?}", credentials.username, credentials.client)
/// }
///
/// let app: Router = Router::new().route("/login", post(login));
/// // Serve with `app.into_make_service_with_connect_info::<std::net::SocketAddr>()` so the
/// // client address is known.
/// # }
/// ```
#[derive(Clone, Deserialize)]
pub struct Credentials {
    /// The claimed username.
    pub username: String,
    /// The password. Never logged.
    pub password: String,
    /// The client's address, when the server recorded it.
    #[serde(skip)]
    pub client: Option<IpAddr>,
}

impl Credentials {
    /// Credentials with no client address.
    ///
    /// # Examples
    ///
    /// ```
    /// let credentials = portcullis_core::Credentials::new("alice", "correct horse");
    /// assert_eq!(credentials.client, None);
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            client: None,
        }
    }

    /// The same credentials, sent from `client`.
    ///
    /// # Examples
    ///
    /// ```
    /// let credentials = portcullis_core::Credentials::new("alice", "correct horse")
    ///     .with_client(Some("192.0.2.1".parse().unwrap()));
    /// assert!(credentials.client.is_some());
    /// ```
    #[must_use]
    pub fn with_client(mut self, client: Option<IpAddr>) -> Self {
        self.client = client;
        self
    }

    /// The login attempt the [`LoginGuard`](super::LoginGuard) counts: this account, from
    /// this client.
    pub fn attempt(&self) -> LoginAttempt<'_> {
        LoginAttempt::new(&self.username).with_client(self.client)
    }

    /// `Err` with what is wrong when a field is longer than the parser accepts.
    pub(super) fn check_lengths(&self) -> Result<(), &'static str> {
        if self.username.len() > MAX_USERNAME_LEN {
            return Err("the username is longer than 256 bytes");
        }
        if self.password.len() > MAX_PASSWORD_LEN {
            return Err("the password is longer than 1024 bytes");
        }
        Ok(())
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

#[cfg(feature = "axum")]
mod extract {
    use axum::extract::{FromRequest, Request};
    use http::header;

    use super::{Credentials, MAX_BODY_LEN};
    use crate::{AuthRejection, ClientAddress};

    enum Format {
        Json,
        Form,
    }

    /// The media type of the body, from `Content-Type` without parameters (RFC 9110 §8.3.1:
    /// case-insensitive), `application/*+json` counted as JSON.
    fn format(headers: &http::HeaderMap) -> Option<Format> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let essence = value.split(';').next()?.trim().to_ascii_lowercase();
        if essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
        {
            Some(Format::Json)
        } else if essence == "application/x-www-form-urlencoded" {
            Some(Format::Form)
        } else {
            None
        }
    }

    impl<S: Send + Sync> FromRequest<S> for Credentials {
        type Rejection = AuthRejection;

        async fn from_request(request: Request, _state: &S) -> Result<Self, Self::Rejection> {
            let Some(format) = format(request.headers()) else {
                return Err(AuthRejection::invalid_request(
                    "send the credentials as application/json or \
                     application/x-www-form-urlencoded",
                ));
            };
            let ClientAddress(client) = ClientAddress::from_extensions(request.extensions());
            let body = axum::body::to_bytes(request.into_body(), MAX_BODY_LEN)
                .await
                .map_err(|_| {
                    AuthRejection::invalid_request(
                        "the login body is longer than 4096 bytes, or could not be read",
                    )
                })?;
            let parsed = match format {
                Format::Json => serde_json::from_slice::<Credentials>(&body)
                    .map_err(|error| format!("the login JSON does not hold credentials: {error}")),
                Format::Form => serde_urlencoded::from_bytes::<Credentials>(&body)
                    .map_err(|error| format!("the login form does not hold credentials: {error}")),
            };
            let credentials = parsed.map_err(AuthRejection::invalid_request)?;
            credentials
                .check_lengths()
                .map_err(AuthRejection::invalid_request)?;
            Ok(credentials.with_client(client))
        }
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use axum::extract::{ConnectInfo, FromRequest};
    use http::{Request, StatusCode, header};

    use super::*;
    use crate::RejectionKind;

    async fn parse(content_type: &str, body: impl Into<String>) -> Result<Credentials, String> {
        let mut request = Request::post("/login")
            .header(header::CONTENT_TYPE, content_type)
            // Never the source of the address: the client writes it.
            .header("x-forwarded-for", "203.0.113.1")
            .body(axum::body::Body::from(body.into()))
            .unwrap();
        let peer: std::net::SocketAddr = "192.0.2.9:4000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        Credentials::from_request(request, &())
            .await
            .map_err(|rejection| {
                assert_eq!(rejection.kind(), RejectionKind::InvalidRequest);
                assert_eq!(rejection.status(), StatusCode::BAD_REQUEST);
                rejection.client_description().to_owned()
            })
    }

    #[tokio::test]
    async fn reads_json_and_forms_with_the_connection_address() {
        for (content_type, body) in [
            (
                "application/json",
                r#"{"username":"alice","password":"pw 1"}"#,
            ),
            (
                "Application/JSON; charset=utf-8",
                r#"{"username":"alice","password":"pw 1","next":"/"}"#,
            ),
            (
                "application/vnd.login+json",
                r#"{"password":"pw 1","username":"alice"}"#,
            ),
            (
                "application/x-www-form-urlencoded",
                "username=alice&password=pw+1",
            ),
            (
                "application/x-www-form-urlencoded; charset=UTF-8",
                "password=pw%201&username=alice&next=%2F",
            ),
        ] {
            let credentials = parse(content_type, body).await.unwrap();
            assert_eq!(credentials.username, "alice", "{content_type}");
            assert_eq!(credentials.password, "pw 1", "{content_type}");
            assert_eq!(credentials.client, Some("192.0.2.9".parse().unwrap()));
        }
    }

    #[tokio::test]
    async fn refuses_hostile_bodies_with_a_reason() {
        let long_name = format!("username={}&password=x", "a".repeat(257));
        let long_password = format!("username=a&password={}", "p".repeat(1025));
        let huge = format!(
            r#"{{"username":"a","password":"x","pad":"{}"}}"#,
            "z".repeat(5000)
        );
        let form = "application/x-www-form-urlencoded";
        let json = "application/json";
        for (content_type, body, reason) in [
            (
                "text/plain",
                "username=a&password=b".to_owned(),
                "application/json or",
            ),
            (
                "",
                "username=a&password=b".to_owned(),
                "application/json or",
            ),
            (json, "{".to_owned(), "JSON does not hold"),
            (
                json,
                r#"{"username":"a"}"#.to_owned(),
                "missing field `password`",
            ),
            (
                json,
                r#"{"username":"a","password":7}"#.to_owned(),
                "JSON does not hold",
            ),
            (
                json,
                r#"{"username":"a","username":"b","password":"x"}"#.to_owned(),
                "duplicate field",
            ),
            (
                form,
                "username=a&username=b&password=x".to_owned(),
                "duplicate field",
            ),
            (form, "username=a".to_owned(), "missing field `password`"),
            (form, long_name, "username is longer"),
            (form, long_password, "password is longer"),
            (json, huge, "longer than 4096 bytes"),
        ] {
            let reason_given = parse(content_type, body).await.unwrap_err();
            assert!(
                reason_given.contains(reason),
                "{content_type}: {reason_given}"
            );
        }
    }

    #[tokio::test]
    async fn limits_are_inclusive() {
        let body = format!("username={}&password={}", "a".repeat(256), "p".repeat(1024));
        let credentials = parse("application/x-www-form-urlencoded", body)
            .await
            .unwrap();
        assert_eq!(
            (credentials.username.len(), credentials.password.len()),
            (256, 1024)
        );
    }

    #[test]
    fn debug_never_prints_the_password() {
        let shown = format!("{:?}", Credentials::new("alice", "hunter2"));
        assert!(shown.contains("alice") && shown.contains("REDACTED"));
        assert!(!shown.contains("hunter2"));
    }
}
