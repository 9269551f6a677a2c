//! [`Credentials`]: a username and password as posted to a login route (JSON or an HTML form),
//! with the address they came from. One parser for every app, so each login route refuses the
//! same malformed or oversized input with the same precise 4xx.

use std::{fmt, net::IpAddr};

use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use super::LoginAttempt;
use crate::AuthRejection;

/// Longest username accepted (bytes).
pub(super) const MAX_USERNAME_LEN: usize = 256;
/// Longest password accepted (bytes): room for any passphrase, and a bound on what a login
/// makes the server hash (OWASP Password Storage Cheat Sheet, "Maximum password lengths").
pub(super) const MAX_PASSWORD_LEN: usize = 1024;

/// A username and password, as posted to a login route, and the client address they came
/// from (for the per-client back-off of the [`LoginGuard`](super::LoginGuard)).
///
/// As an axum extractor it reads a JSON body `{"username": "...", "password": "..."}` or a
/// form (`application/x-www-form-urlencoded`, fields `username` and `password`), with two
/// optional fields login pages send: `remember` (a JSON boolean, or a checkbox: present and
/// not `""`, `0`, `false` or `off`) and `next` (where to go afterwards: pass it through
/// [`safe_next`](crate::safe_next)). Other fields are ignored. It refuses, with
/// `invalid_request` and a description saying what is wrong (RFC 9110 §15.5):
///
/// | input | status |
/// |---|---|
/// | a content type other than JSON or a form | 415 |
/// | a body over 4 KiB | 413 |
/// | JSON or a form that does not parse, lacks a field, has one twice or of the wrong type; a username over 256 bytes, a password over 1,024 | 400 |
///
/// (400 as RFC 6749 §5.2 answers a malformed token request, and as the hybrid refresh
/// endpoint answers a malformed body.)
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
#[non_exhaustive]
pub struct Credentials {
    /// The claimed username.
    pub username: String,
    /// The password. Never logged.
    pub password: String,
    /// Whether the user asked to stay signed in ("remember me"); `false` when not sent.
    #[serde(default, deserialize_with = "flag")]
    pub remember: bool,
    /// Where the login page wants to go afterwards, as sent: untrusted, check it with
    /// [`safe_next`](crate::safe_next).
    #[serde(default)]
    pub next: Option<String>,
    /// The client's address, when the server recorded it.
    #[serde(skip)]
    pub client: Option<IpAddr>,
}

/// A JSON boolean, or a form checkbox's value: present and not `""`, `0`, `false` or `off`.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Flag;
    impl serde::de::Visitor<'_> for Flag {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a boolean or a checkbox value")
        }
        fn visit_bool<E>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }
        fn visit_str<E>(self, value: &str) -> Result<bool, E> {
            Ok(!matches!(
                value.to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "off"
            ))
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
    }
    deserializer.deserialize_any(Flag)
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
            remember: false,
            next: None,
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
            .field("remember", &self.remember)
            .field("next", &self.next)
            .field("client", &self.client)
            .finish()
    }
}

/// The body's format, from `Content-Type` without parameters (RFC 9110 §8.3.1:
/// case-insensitive), `application/*+json` counted as JSON.
enum Format {
    Json,
    Form,
}

fn format(headers: &HeaderMap) -> Option<Format> {
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

impl Credentials {
    /// Largest login body accepted (bytes): read at most this much, refuse anything longer.
    pub const MAX_BODY_LEN: usize = 4096;

    /// Parses a login body sent with `headers`, for servers without axum (with axum, extract
    /// `Credentials` instead): the same rules and answers as the extractor. The client
    /// address is not set; read the body with a limit of [`Credentials::MAX_BODY_LEN`].
    ///
    /// # Errors
    ///
    /// 400 `invalid_request` saying what is wrong (see [`Credentials`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, header};
    /// use portcullis_core::Credentials;
    ///
    /// let mut headers = HeaderMap::new();
    /// headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    /// let credentials = Credentials::parse(&headers, br#"{"username":"alice","password":"pw"}"#)?;
    /// assert_eq!(credentials.username, "alice");
    /// assert!(Credentials::parse(&HeaderMap::new(), b"username=alice").is_err());
    /// # Ok::<(), portcullis_core::AuthRejection>(())
    /// ```
    pub fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, AuthRejection> {
        let Some(format) = format(headers) else {
            return Err(AuthRejection::invalid_request(
                "send the credentials as application/json or application/x-www-form-urlencoded",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        };
        if body.len() > Self::MAX_BODY_LEN {
            return Err(too_large());
        }
        let credentials = match format {
            Format::Json => serde_json::from_slice::<Self>(body).map_err(|error| {
                let what = if error.is_data() {
                    "the login JSON does not hold credentials"
                } else {
                    "the login body is not JSON"
                };
                AuthRejection::invalid_request(format!("{what}: {error}"))
            })?,
            Format::Form => serde_urlencoded::from_bytes::<Self>(body).map_err(|error| {
                AuthRejection::invalid_request(format!(
                    "the login form does not hold credentials: {error}"
                ))
            })?,
        };
        credentials
            .check_lengths()
            .map_err(AuthRejection::invalid_request)?;
        Ok(credentials)
    }
}

fn too_large() -> AuthRejection {
    AuthRejection::invalid_request("the login body is longer than 4096 bytes")
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

impl Credentials {
    /// Reads a login request on any server (hyper, tower): the body up to
    /// [`Credentials::MAX_BODY_LEN`], parsed as [`Credentials::parse`] does, and the client
    /// address from the request ([`ClientAddress::from_extensions`](super::ClientAddress::from_extensions)).
    /// With axum, extract `Credentials` instead, which calls this.
    ///
    /// # Errors
    ///
    /// As [`Credentials::parse`]; 413 for a body over the limit, 400 for one that could not be
    /// read.
    ///
    /// # Examples
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// use portcullis_core::Credentials;
    ///
    /// let request = http::Request::post("/login")
    ///     .header("content-type", "application/x-www-form-urlencoded")
    ///     .body(http_body_util::Full::new(bytes::Bytes::from("username=alice&password=pw")))
    ///     .unwrap();
    /// let credentials = Credentials::read(request).await?;
    /// assert_eq!(credentials.username, "alice");
    /// # Ok::<(), portcullis_core::AuthRejection>(())
    /// # }).unwrap();
    /// ```
    pub async fn read<B>(request: http::Request<B>) -> Result<Self, AuthRejection>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let super::ClientAddress(client) =
            super::ClientAddress::from_extensions(request.extensions());
        let (parts, body) = request.into_parts();
        // Refuse a wrong content type before reading the body.
        if format(&parts.headers).is_none() {
            return Self::parse(&parts.headers, &[]);
        }
        let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
            body,
            Self::MAX_BODY_LEN,
        ))
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                AuthRejection::invalid_request("the login body could not be read")
            }
        })?
        .to_bytes();
        Ok(Self::parse(&parts.headers, &body)?.with_client(client))
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequest<S> for Credentials {
    type Rejection = AuthRejection;

    async fn from_request(
        request: axum::extract::Request,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Self::read(request).await
    }
}

#[cfg(all(test, feature = "axum"))]
mod tests {
    use axum::extract::{ConnectInfo, FromRequest};
    use http::{Request, StatusCode, header};

    use super::*;
    use crate::RejectionKind;

    async fn parse(
        content_type: &str,
        body: impl Into<String>,
    ) -> Result<Credentials, (u16, String)> {
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
                assert_eq!(rejection.error_code(), "invalid_request");
                let response: http::Response<bytes::Bytes> = rejection.to_response();
                assert_eq!(response.status(), rejection.status());
                (
                    rejection.status().as_u16(),
                    rejection.client_description().to_owned(),
                )
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
                r#"{"username":"alice","password":"pw 1","other":1}"#,
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
                "password=pw%201&username=alice&csrf=x",
            ),
        ] {
            let credentials = parse(content_type, body).await.unwrap();
            assert_eq!(credentials.username, "alice", "{content_type}");
            assert_eq!(credentials.password, "pw 1", "{content_type}");
            assert_eq!(credentials.client, Some("192.0.2.9".parse().unwrap()));
            assert!(!credentials.remember && credentials.next.is_none());
        }
    }

    #[tokio::test]
    async fn reads_remember_me_and_next_from_json_and_checkboxes() {
        let form = "application/x-www-form-urlencoded";
        let json = "application/json";
        for (content_type, extra, remember) in [
            (form, "&remember=on", true),
            (form, "&remember=1", true),
            (form, "&remember=", false),
            (form, "&remember=off", false),
            (form, "&remember=false", false),
            (form, "", false),
        ] {
            let body = format!("username=a&password=b&next=%2Fads%3Fpage%3D2{extra}");
            let credentials = parse(content_type, body).await.unwrap();
            assert_eq!(credentials.remember, remember, "{extra}");
            assert_eq!(credentials.next.as_deref(), Some("/ads?page=2"));
        }
        for (body, remember) in [
            (r#"{"username":"a","password":"b","remember":true}"#, true),
            (r#"{"username":"a","password":"b","remember":false}"#, false),
            (r#"{"username":"a","password":"b","remember":null}"#, false),
        ] {
            assert_eq!(
                parse(json, body).await.unwrap().remember,
                remember,
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn refuses_hostile_bodies_with_a_precise_status_and_reason() {
        let long_name = format!("username={}&password=x", "a".repeat(257));
        let long_password = format!("username=a&password={}", "p".repeat(1025));
        let huge = format!(
            r#"{{"username":"a","password":"x","pad":"{}"}}"#,
            "z".repeat(5000)
        );
        let form = "application/x-www-form-urlencoded";
        let json = "application/json";
        for (content_type, body, status, reason) in [
            (
                "text/plain",
                "username=a&password=b".to_owned(),
                415,
                "application/json or",
            ),
            (
                "",
                "username=a&password=b".to_owned(),
                415,
                "application/json or",
            ),
            (
                "multipart/form-data; boundary=x",
                "--x--".to_owned(),
                415,
                "application/json or",
            ),
            (json, huge, 413, "longer than 4096 bytes"),
            (json, "{".to_owned(), 400, "not JSON"),
            (json, String::new(), 400, "not JSON"),
            (json, "[]".to_owned(), 400, "does not hold"),
            (
                json,
                r#"{"username":"a"}"#.to_owned(),
                400,
                "missing field `password`",
            ),
            (
                json,
                r#"{"username":"a","password":7}"#.to_owned(),
                400,
                "does not hold",
            ),
            (
                json,
                r#"{"username":"a","password":"x","remember":[]}"#.to_owned(),
                400,
                "does not hold",
            ),
            (
                json,
                r#"{"username":"a","username":"b","password":"x"}"#.to_owned(),
                400,
                "duplicate field",
            ),
            (
                form,
                "username=a&username=b&password=x".to_owned(),
                400,
                "duplicate field",
            ),
            (
                form,
                "username=a".to_owned(),
                400,
                "missing field `password`",
            ),
            (form, long_name, 400, "username is longer"),
            (form, long_password, 400, "password is longer"),
        ] {
            let (status_given, reason_given) = parse(content_type, body).await.unwrap_err();
            assert_eq!(status_given, status, "{content_type}: {reason_given}");
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
    fn parse_without_axum_answers_alike() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let big = vec![b' '; Credentials::MAX_BODY_LEN + 1];
        assert_eq!(
            Credentials::parse(&headers, &big).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            Credentials::parse(&headers, b"{").unwrap_err().status(),
            StatusCode::BAD_REQUEST
        );
        let credentials =
            Credentials::parse(&headers, br#"{"username":"a","password":"b"}"#).unwrap();
        assert_eq!(credentials.client, None);
    }

    #[test]
    fn debug_never_prints_the_password() {
        let shown = format!("{:?}", Credentials::new("alice", "hunter2"));
        assert!(shown.contains("alice") && shown.contains("REDACTED"));
        assert!(!shown.contains("hunter2"));
    }
}
