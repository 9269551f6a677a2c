//! [`Credentials`]: a username and password as posted to a login route (JSON or an HTML form),
//! with the address they came from. One parser for every app, so each login route refuses the
//! same cross-site, malformed or oversized input with the same answer.

use std::{fmt, net::IpAddr};

use http::HeaderMap;
use serde::Deserialize;

use super::LoginAttempt;
use crate::credentials::{BodyFormat, body_format};
use crate::{AuthRejection, CrossSiteCheck};

/// Longest username accepted (bytes).
pub(super) const MAX_USERNAME_LEN: usize = 256;
/// Longest password accepted (bytes): room for any passphrase, and a bound on what a login
/// makes the server hash (OWASP Password Storage Cheat Sheet, "Maximum password lengths").
pub(super) const MAX_PASSWORD_LEN: usize = 1024;

/// A username and password, as posted to a login route, and the client address they came
/// from (for the per-client back-off of the [`LoginGuard`](super::LoginGuard)).
///
/// As an axum extractor (or through [`Credentials::read`] on any server) it
///
/// 1. refuses a login posted from another site with 403 `cross_site_request`, before the body
///    is read or a password checked (login CSRF: OWASP CSRF Prevention Cheat Sheet, "Login
///    CSRF"), with the [`CrossSiteCheck`] found in the request's extensions, else the default
///    one (same site only). The session layer and `HybridLogin` leave their check there when
///    it trusts other origins; elsewhere add it yourself (`axum::Extension(check)`);
/// 2. reads a JSON body `{"username": "...", "password": "..."}` or a form
///    (`application/x-www-form-urlencoded`, fields `username` and `password`), with two
///    optional fields login pages send: `remember` (a JSON boolean, or a checkbox: present and
///    not `""`, `0`, `false` or `off`; given twice it is refused, so do not pair a checkbox
///    with a hidden field of the same name) and `next` (where to go afterwards: pass it through
///    [`safe_next`](crate::safe_next)). Other fields are ignored.
///
/// Anything else is 400 `invalid_request` with a description saying what is wrong: another
/// content type or two `Content-Type` headers, a body over 8 KiB, JSON or a form that does not
/// parse, lacks a field or has one twice or of the wrong type, a username over 256 bytes or
/// with a control character, a password over 1,024 bytes. The description never quotes what
/// was sent. The client address comes from the connection
/// ([`ClientAddress`](super::ClientAddress)), never from a header the client controls.
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
#[derive(Clone)]
#[non_exhaustive]
pub struct Credentials {
    /// The claimed username.
    pub username: String,
    /// The password. Never logged.
    pub password: String,
    /// Whether the user asked to stay signed in ("remember me"); `false` when not sent.
    pub remember: bool,
    /// Where the login page wants to go afterwards, as sent: untrusted, check it with
    /// [`safe_next`](crate::safe_next).
    pub next: Option<String>,
    /// The client's address, when the server recorded it.
    pub client: Option<IpAddr>,
}

/// The body as posted. Private, so `Json<Credentials>` cannot skip the checks of
/// [`Credentials::parse`].
#[derive(Deserialize)]
struct Posted {
    username: String,
    password: String,
    #[serde(default, deserialize_with = "flag")]
    remember: bool,
    #[serde(default)]
    next: Option<String>,
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

    /// `Err` with what is wrong when a field is longer than the parser accepts, or the
    /// username holds a control character (a NUL, a newline: never part of a name, and
    /// trouble for the stores and logs it reaches).
    pub(super) fn check_fields(&self) -> Result<(), &'static str> {
        if self.username.len() > MAX_USERNAME_LEN {
            return Err("the username is longer than 256 bytes");
        }
        if self.username.chars().any(char::is_control) {
            return Err("the username holds a control character");
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

impl Credentials {
    /// Largest login body accepted (bytes): room for the longest fields percent-encoded, a
    /// `next` and a form's other fields; anything longer is refused unread.
    pub const MAX_BODY_LEN: usize = 8192;

    /// Parses a login body sent with `headers`: the body rules of the extractor (see
    /// [`Credentials`]), without the cross-site check and the client address, which
    /// [`Credentials::read`] adds. Read the body with a limit of [`Credentials::MAX_BODY_LEN`].
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
        Self::parse_as(body_format(headers)?, body)
    }

    /// [`Credentials::parse`] once the format is known.
    fn parse_as(format: BodyFormat, body: &[u8]) -> Result<Self, AuthRejection> {
        if body.len() > Self::MAX_BODY_LEN {
            return Err(too_large());
        }
        let posted = match format {
            BodyFormat::Json => serde_json::from_slice::<Posted>(body)
                .map_err(|error| AuthRejection::invalid_request(json_error(&error)))?,
            BodyFormat::Form => serde_urlencoded::from_bytes::<Posted>(body).map_err(|error| {
                AuthRejection::invalid_request(format!(
                    "the login form does not hold credentials: {}",
                    field_error(&error.to_string())
                ))
            })?,
        };
        let credentials = Self {
            username: posted.username,
            password: posted.password,
            remember: posted.remember,
            next: posted.next,
            client: None,
        };
        credentials
            .check_fields()
            .map_err(AuthRejection::invalid_request)?;
        Ok(credentials)
    }
}

/// What is wrong with a login JSON body, without quoting it: serde's "invalid type" messages
/// repeat the value sent, which may be a password.
fn json_error(error: &serde_json::Error) -> String {
    let at = format!("line {} column {}", error.line(), error.column());
    if error.is_data() {
        let message = error.to_string();
        let reason = field_error(&message);
        format!("the login JSON does not hold credentials: {reason} ({at})")
    } else {
        format!("the login body is not JSON ({at})")
    }
}

/// Serde's message when it names only a field ("missing field `password`"), else a fixed
/// reason.
fn field_error(message: &str) -> &str {
    let names_a_field = ["missing field `", "duplicate field `"]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    match message.split(" at line ").next() {
        Some(reason) if names_a_field => reason,
        _ => "`username` and `password` must be strings, `remember` a boolean, `next` a string",
    }
}

fn too_large() -> AuthRejection {
    AuthRejection::invalid_request("the login body is longer than 8192 bytes")
}

impl Credentials {
    /// Reads a login request on any server (hyper, tower): the cross-site check, then the
    /// body up to [`Credentials::MAX_BODY_LEN`] parsed as [`Credentials::parse`] does, and
    /// the client address from the request
    /// ([`ClientAddress::from_extensions`](super::ClientAddress::from_extensions)). With axum,
    /// extract `Credentials` instead, which calls this.
    ///
    /// # Errors
    ///
    /// 403 `cross_site_request` for a login from another site; as [`Credentials::parse`]
    /// otherwise (400 `invalid_request`), also for a body that could not be read.
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
        let default_check = CrossSiteCheck::default();
        let check = request
            .extensions()
            .get::<CrossSiteCheck>()
            .unwrap_or(&default_check);
        check.check(&request)?;
        let super::ClientAddress(client) =
            super::ClientAddress::from_extensions(request.extensions());
        let (parts, body) = request.into_parts();
        // A wrong content type is refused before the body is read.
        let format = body_format(&parts.headers)?;
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
        Ok(Self::parse_as(format, &body)?.with_client(client))
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

    fn request(headers: &[(&str, &str)], body: impl Into<String>) -> Request<axum::body::Body> {
        let mut request = Request::post("/login")
            .header(header::HOST, "app.example")
            // Never the source of the address: the client writes it.
            .header("x-forwarded-for", "203.0.113.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut request = request.body(axum::body::Body::from(body.into())).unwrap();
        let peer: std::net::SocketAddr = "192.0.2.9:4000".parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    async fn parse(content_type: &str, body: impl Into<String>) -> Result<Credentials, String> {
        let request = request(&[("content-type", content_type)], body);
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
        for (extra, remember) in [
            ("&remember=on", true),
            ("&remember=1", true),
            ("&remember=", false),
            ("&remember=off", false),
            ("&remember=false", false),
            ("", false),
        ] {
            let body = format!("username=a&password=b&next=%2Fads%3Fpage%3D2{extra}");
            let credentials = parse(form, body).await.unwrap();
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
    async fn refuses_hostile_bodies_with_400_and_a_reason() {
        let long_name = format!("username={}&password=x", "a".repeat(257));
        let long_password = format!("username=a&password={}", "p".repeat(1025));
        let huge = format!(
            r#"{{"username":"a","password":"x","pad":"{}"}}"#,
            "z".repeat(9000)
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
            (
                "multipart/form-data; boundary=x",
                "--x--".to_owned(),
                "application/json or",
            ),
            (json, huge, "longer than 8192 bytes"),
            (json, "{".to_owned(), "not JSON"),
            (json, String::new(), "not JSON"),
            (json, "[]".to_owned(), "does not hold"),
            (
                json,
                r#"{"username":"a"}"#.to_owned(),
                "missing field `password`",
            ),
            (
                json,
                r#"{"username":"a","password":7}"#.to_owned(),
                "must be strings",
            ),
            (
                json,
                r#"{"username":"a","password":"x","remember":[]}"#.to_owned(),
                "must be strings",
            ),
            (
                json,
                r#"{"username":"a","username":"b","password":"x"}"#.to_owned(),
                "duplicate field `username`",
            ),
            (
                form,
                "username=a&username=b&password=x".to_owned(),
                "duplicate field `username`",
            ),
            (
                form,
                "username=a&password=x&remember=0&remember=1".to_owned(),
                "duplicate field `remember`",
            ),
            (form, "username=a".to_owned(), "missing field `password`"),
            (form, long_name, "username is longer"),
            (form, long_password, "password is longer"),
            (
                form,
                "username=al%00ice&password=x".to_owned(),
                "control character",
            ),
            (
                json,
                r#"{"username":"alice\n","password":"x"}"#.to_owned(),
                "control character",
            ),
        ] {
            let reason_given = parse(content_type, body).await.unwrap_err();
            assert!(
                reason_given.contains(reason),
                "{content_type}: {reason_given}"
            );
        }
    }

    #[tokio::test]
    async fn reasons_never_quote_what_was_sent() {
        let json = "application/json";
        for body in [
            r#"{"username":"alice","password":31415926535}"#,
            r#"{"username":"alice","password":["31415926535"]}"#,
            r#"{"username":"alice","password":"x","next":31415926535}"#,
        ] {
            let reason = parse(json, body).await.unwrap_err();
            assert!(!reason.contains("31415926535"), "{reason}");
        }
    }

    #[tokio::test]
    async fn two_content_types_are_refused() {
        let request = request(
            &[
                ("content-type", "application/json"),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            r#"{"username":"a","password":"b"}"#,
        );
        let refused = Credentials::from_request(request, &()).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(refused.client_description().contains("two Content-Type"));
    }

    #[tokio::test]
    async fn logins_from_another_site_are_refused_before_the_body_is_read() {
        let json = ("content-type", "application/json");
        let body = r#"{"username":"alice","password":"pw"}"#;
        for headers in [
            vec![json, ("sec-fetch-site", "cross-site")],
            vec![json, ("sec-fetch-site", "same-site")],
            vec![json, ("origin", "https://evil.example")],
            // Even an unreadable body: the cross-site answer comes first.
            vec![
                ("content-type", "text/plain"),
                ("sec-fetch-site", "cross-site"),
            ],
        ] {
            let refused = Credentials::from_request(request(&headers, body), &())
                .await
                .unwrap_err();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{headers:?}");
            assert_eq!(refused.kind(), RejectionKind::CrossSiteRequest);
        }
        for headers in [
            vec![json],
            vec![json, ("sec-fetch-site", "same-origin")],
            vec![json, ("origin", "https://app.example")],
        ] {
            assert!(
                Credentials::from_request(request(&headers, body), &())
                    .await
                    .is_ok(),
                "{headers:?}"
            );
        }
        // An origin the application trusts, given as an extension (as its layers trust it).
        let mut trusted = request(&[json, ("origin", "https://admin.example")], body);
        let check = CrossSiteCheck::new()
            .trust_origin("https://admin.example")
            .unwrap();
        trusted.extensions_mut().insert(check);
        assert!(Credentials::from_request(trusted, &()).await.is_ok());
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
        // The longest fields, every byte percent-encoded, and a `next` still fit.
        let body = format!(
            "username={}&password={}&next=%2F{}",
            "%C3%A9".repeat(128),
            "%25".repeat(1024),
            "a".repeat(500)
        );
        assert!(body.len() <= Credentials::MAX_BODY_LEN);
        assert!(
            parse("application/x-www-form-urlencoded", body)
                .await
                .is_ok()
        );
    }

    #[test]
    fn parse_without_axum_answers_alike() {
        let mut headers = http::HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let big = vec![b' '; Credentials::MAX_BODY_LEN + 1];
        assert!(
            Credentials::parse(&headers, &big)
                .unwrap_err()
                .description()
                .contains("8192")
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
