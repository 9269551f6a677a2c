//! The hybrid example: short-lived access JWTs checked at the edge without a store read, and
//! a rotating refresh token per session, over cookies (`POST /login`) or bearer tokens
//! (`POST /token`). The routes and environment variables are described in README.md.

use std::{env, fmt, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::{HeaderValue, header},
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use demo_users::{
    Credentials, DemoUsers, IsAdmin, JwtKeySettings, JwtSettingsError, LoginGuardSettings,
    LoginGuardSettingsError, User,
};
use portcullis_core::{AlwaysReady, AuthRejection, Authorized, CurrentUser, ReadinessChecks};
use portcullis_hybrid::{
    ConfigError, CookieTransport, HybridEndpoints, HybridLayer, HybridLogin, HybridSessions,
    HybridSessionsBuilder, InProcessFeed, LimitPolicy, MemoryRefreshStore, SessionLimit,
};
use portcullis_jwt::{SigningKey, TokenIssuer};
use portcullis_postgres::PostgresConfig;
use portcullis_redis::{RedisConfig, RedisRefreshStore, RedisRevocationFeed};

mod postgres;
pub use postgres::with_postgres;

/// Default issuer, the same for every instance so that instances sharing a key accept each
/// other's tokens.
const DEFAULT_ISSUER: &str = "portcullis-hybrid-app";

/// Everything the app reads from its environment. `Debug` prints no secret (the key settings
/// and the Redis configuration redact theirs).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where to listen (`--addr`, `PORTCULLIS_ADDR`; default `127.0.0.1:3000`).
    pub addr: SocketAddr,
    /// The `JWT_*` key, issuer, audience and leeway settings, read exactly as jwt-api reads
    /// them (`JWT_ISSUER` defaults to `portcullis-hybrid-app`).
    pub keys: JwtKeySettings,
    /// `ACCESS_TTL_SECS` (default 600).
    pub access_ttl: Duration,
    /// `REFRESH_TTL_SECS`: idle expiry of a session (default 14 days).
    pub refresh_ttl: Duration,
    /// `REFRESH_ABSOLUTE_SECS`: absolute lifetime of a session (default 30 days, at least
    /// `REFRESH_TTL_SECS`).
    pub absolute_ttl: Duration,
    /// `REFRESH_GRACE_SECS` (default 5).
    pub grace: Duration,
    /// `HYBRID_TRANSPARENT_REFRESH=1`: the layer refreshes expired access cookies itself.
    pub transparent_refresh: bool,
    /// `REDIS_URL` (and `REDIS_KEY_PREFIX`): sessions and revocations in Redis; in memory
    /// when unset.
    pub redis: Option<RedisConfig>,
    /// `DATABASE_URL` (and `DATABASE_SCHEMA`, `DATABASE_TABLE_PREFIX`): sessions and
    /// revocations in PostgreSQL, which wins over `REDIS_URL`.
    pub database: Option<PostgresConfig>,
    /// The `LOGIN_*` settings of the login guard (failed logins counted in Redis too when
    /// `REDIS_URL` is set).
    pub login_guard: LoginGuardSettings,
    /// `HYBRID_MAX_PER_USER` and `HYBRID_LIMIT_POLICY`: sessions per user (unset or 0:
    /// unlimited), `evict-oldest` (default) or `refuse-new`.
    pub limit: Option<SessionLimit>,
}

/// A setting the app cannot start with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// An environment variable or flag has a value the app cannot use.
    #[error("{name}: {reason}")]
    Setting {
        /// The variable or flag.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The signing key could not be loaded or generated.
    #[error(transparent)]
    Jwt(#[from] JwtSettingsError),
    /// The hybrid sessions refused the configuration.
    #[error("invalid hybrid configuration")]
    Hybrid(#[from] ConfigError),
    /// `REDIS_URL` (or `REDIS_KEY_PREFIX`) is not a usable Redis configuration.
    #[error("invalid REDIS_URL or REDIS_KEY_PREFIX")]
    Redis(#[from] portcullis_redis::ConfigError),
    /// `DATABASE_URL` (or `DATABASE_SCHEMA`, `DATABASE_TABLE_PREFIX`) is not usable.
    #[error("invalid DATABASE_URL, DATABASE_SCHEMA or DATABASE_TABLE_PREFIX")]
    Database(#[from] portcullis_postgres::ConfigError),
    /// A `LOGIN_*` variable could not be used.
    #[error(transparent)]
    LoginGuard(#[from] LoginGuardSettingsError),
}

fn setting(name: &'static str, reason: impl Into<String>) -> SetupError {
    SetupError::Setting {
        name,
        reason: reason.into(),
    }
}

impl Settings {
    /// Reads the process environment and command line.
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the variable that does not parse.
    pub fn from_env() -> Result<Self, SetupError> {
        let mut flag_addr = None;
        let mut args = env::args().skip(1);
        while let Some(arg) = args.next() {
            let value = match arg.strip_prefix("--addr=") {
                Some(value) => value.to_owned(),
                None if arg == "--addr" => args
                    .next()
                    .ok_or_else(|| setting("--addr", "expects an address"))?,
                None => return Err(setting("arguments", format!("unknown argument {arg:?}"))),
            };
            flag_addr = Some(
                value
                    .parse()
                    .map_err(|_| setting("--addr", format!("{value:?} is not HOST:PORT")))?,
            );
        }
        // The flag wins over PORTCULLIS_ADDR, which is then not even parsed.
        let mut settings = Self::from_lookup(|name| match (name, flag_addr) {
            ("PORTCULLIS_ADDR", Some(_)) => None,
            _ => env::var(name).ok(),
        })?;
        if let Some(addr) = flag_addr {
            settings.addr = addr;
        }
        Ok(settings)
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    ///
    /// # Errors
    ///
    /// [`SetupError::Setting`] naming the variable that does not parse.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SetupError> {
        let secs =
            |name: &'static str, default: u64| -> Result<Duration, SetupError> {
                match lookup(name) {
                    None => Ok(Duration::from_secs(default)),
                    Some(value) => value.trim().parse().map(Duration::from_secs).map_err(|_| {
                        setting(name, format!("{value:?} is not a number of seconds"))
                    }),
                }
            };
        let addr = match lookup("PORTCULLIS_ADDR") {
            Some(value) => value
                .parse()
                .map_err(|_| setting("PORTCULLIS_ADDR", format!("{value:?} is not HOST:PORT")))?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let keys = JwtKeySettings::from_lookup(&lookup, DEFAULT_ISSUER)?;
        let refresh_ttl = secs("REFRESH_TTL_SECS", 14 * 24 * 3600)?;
        let absolute_ttl = secs("REFRESH_ABSOLUTE_SECS", 30 * 24 * 3600)?.max(refresh_ttl);
        let transparent_refresh = match lookup("HYBRID_TRANSPARENT_REFRESH").as_deref() {
            None | Some("" | "0" | "false") => false,
            Some("1" | "true") => true,
            Some(other) => {
                return Err(setting(
                    "HYBRID_TRANSPARENT_REFRESH",
                    format!("{other:?} is not 0 or 1"),
                ));
            }
        };
        let policy = match lookup("HYBRID_LIMIT_POLICY").as_deref().map(str::trim) {
            None | Some("evict-oldest") => LimitPolicy::EvictOldest,
            Some("refuse-new") => LimitPolicy::RefuseNew,
            Some(other) => {
                return Err(setting(
                    "HYBRID_LIMIT_POLICY",
                    format!("{other:?} is not evict-oldest or refuse-new"),
                ));
            }
        };
        let limit = match lookup("HYBRID_MAX_PER_USER") {
            None => None,
            Some(value) => match value.trim().parse::<u32>() {
                Ok(0) => None,
                Ok(max) => Some(SessionLimit { max, policy }),
                Err(_) => {
                    return Err(setting(
                        "HYBRID_MAX_PER_USER",
                        format!("{value:?} is not a whole number (0 for unlimited)"),
                    ));
                }
            },
        };
        Ok(Self {
            addr,
            keys,
            access_ttl: secs("ACCESS_TTL_SECS", 600)?,
            refresh_ttl,
            absolute_ttl,
            grace: secs("REFRESH_GRACE_SECS", 5)?,
            transparent_refresh,
            redis: RedisConfig::from_lookup(&lookup),
            database: PostgresConfig::from_lookup(&lookup),
            login_guard: LoginGuardSettings::from_lookup(&lookup)?,
            limit,
        })
    }

    /// The signing key (see [`JwtKeySettings::signing_key`]).
    ///
    /// # Errors
    ///
    /// An unreadable or mismatched key file.
    pub fn signing_key(&self) -> Result<SigningKey, SetupError> {
        Ok(self.keys.signing_key()?)
    }

    /// The hybrid sessions builder for these settings, without a store or feed yet: see
    /// [`with_backend_from`].
    ///
    /// # Errors
    ///
    /// As [`Settings::signing_key`].
    pub fn sessions_builder(&self) -> Result<(HybridSessionsBuilder, TokenIssuer), SetupError> {
        let issuer = self
            .keys
            .token_issuer(self.signing_key()?)
            .ttl(self.access_ttl);
        let mut builder = HybridSessions::builder(issuer.clone(), self.keys.validation())
            .access_ttl(self.access_ttl)
            .refresh_ttl(self.refresh_ttl)
            .absolute_ttl(self.absolute_ttl)
            .grace_window(self.grace)
            .leeway(self.keys.leeway);
        if let Some(limit) = self.limit {
            builder = builder.max_sessions_per_user(limit);
        }
        Ok((builder, issuer))
    }

    /// The cookie transport: path-scoped refresh cookie, or transparent refresh.
    pub fn cookies(&self) -> CookieTransport {
        if self.transparent_refresh {
            CookieTransport::transparent()
        } else {
            CookieTransport::new()
        }
    }
}

/// Chooses where sessions live and how revocations travel: Redis when `redis` is given
/// (`REDIS_URL` in [`Settings`]), so several instances behave as one service; else the in-memory
/// store and the in-process feed.
///
/// # Errors
///
/// [`SetupError::Redis`] when the Redis configuration is unusable.
pub fn with_backend_from(
    builder: HybridSessionsBuilder,
    redis: Option<&RedisConfig>,
) -> Result<HybridSessionsBuilder, SetupError> {
    with_backend_and_checks(builder, redis).map(|(builder, _)| builder)
}

/// As [`with_backend_from`], also returning the readiness checks of the backend it picked:
/// the session store (Redis answers) and the revocation feed (subscribed and caught up).
///
/// # Errors
///
/// As [`with_backend_from`].
pub fn with_backend_and_checks(
    builder: HybridSessionsBuilder,
    redis: Option<&RedisConfig>,
) -> Result<(HybridSessionsBuilder, ReadinessChecks), SetupError> {
    if let Some(config) = redis {
        let redis = config.build()?;
        tracing::info!("sessions and revocations in Redis (REDIS_URL)");
        let store = RedisRefreshStore::new(redis.clone());
        let feed = RedisRevocationFeed::new(redis);
        let checks = ReadinessChecks::new()
            .check("session store", store.clone())
            .check("revocation feed", feed.clone());
        return Ok((builder.store(store).feed(feed), checks));
    }
    let checks = ReadinessChecks::new()
        .check("session store", AlwaysReady)
        .check("revocation feed", AlwaysReady);
    Ok((
        builder
            .store(MemoryRefreshStore::new())
            .feed(InProcessFeed::new()),
        checks,
    ))
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    sessions: HybridSessions,
    issuer: TokenIssuer,
    users: DemoUsers,
    layer: HybridLayer,
    endpoints: HybridEndpoints,
    readiness: ReadinessChecks,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("sessions", &self.sessions)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl FromRef<AppState> for HybridEndpoints {
    fn from_ref(state: &AppState) -> Self {
        state.endpoints.clone()
    }
}

impl AppState {
    /// State from its parts (tests build sessions with a manual clock).
    ///
    /// # Errors
    ///
    /// [`SetupError::Hybrid`] when the cookie settings are invalid.
    pub fn new(
        sessions: HybridSessions,
        issuer: TokenIssuer,
        users: DemoUsers,
        cookies: CookieTransport,
    ) -> Result<Self, SetupError> {
        let layer = HybridLayer::new(&sessions)
            .realm("hybrid-app")
            .cookies(cookies)?;
        let endpoints = layer.endpoints();
        let readiness = ReadinessChecks::new().check("keys", issuer.key_set());
        Ok(Self {
            sessions,
            issuer,
            users,
            layer,
            endpoints,
            readiness,
        })
    }

    /// Builds everything from `settings`: demo users (argon2-hashed now), keys, sessions on
    /// the backend [`with_backend_from`] picks.
    ///
    /// # Errors
    ///
    /// Any [`SetupError`].
    pub async fn from_settings(settings: &Settings) -> Result<Self, SetupError> {
        let (builder, issuer) = settings.sessions_builder()?;
        let guard_redis = settings
            .redis
            .as_ref()
            .map(RedisConfig::build)
            .transpose()?;
        let users = tokio::task::spawn_blocking(DemoUsers::new)
            .await
            .unwrap_or_else(|_| DemoUsers::new())
            .with_login_guard(settings.login_guard.guard(guard_redis));
        // Every refresh re-reads the user, so a removed or demoted user loses access at the
        // next refresh, at most one access-token lifetime later.
        let directory = users.clone();
        let builder = builder.reload_user(move |user_id: String, _stored: serde_json::Value| {
            let directory = directory.clone();
            async move {
                let user = directory.current(&user_id).await?;
                Ok(user.and_then(|user| serde_json::to_value(user).ok()))
            }
        });
        let (builder, backend) = match &settings.database {
            Some(database) => with_postgres(builder, database)?,
            None => with_backend_and_checks(builder, settings.redis.as_ref())?,
        };
        let sessions = builder.build().await?;
        let mut state = Self::new(sessions, issuer, users, settings.cookies())?;
        state.readiness = backend.check("keys", state.issuer.key_set());
        Ok(state)
    }

    /// The hybrid sessions.
    pub fn sessions(&self) -> &HybridSessions {
        &self.sessions
    }

    /// The user directory (tests remove users from it).
    pub fn users(&self) -> &DemoUsers {
        &self.users
    }
}

/// The application: every route behind the hybrid edge check. The library's endpoints serve
/// `/refresh`, `/logout`, `/logout-all`, `/sessions` and `/sessions/{session_id}`.
pub fn app(state: AppState) -> Router {
    let layer = state.layer.clone();
    let health = demo_users::health_routes(state.readiness.clone());
    Router::new()
        .route("/", get(home))
        .route("/login", post(login))
        .route("/token", post(token))
        .route("/me", get(me))
        .route("/admin", get(admin))
        .route("/.well-known/jwks.json", get(jwks))
        .merge(state.endpoints.router())
        .layer(layer)
        .with_state(state)
        .merge(health)
        .merge(demo_users::metrics_routes())
}

/// Checks the password inside the login guard (429 while locked out, 503 when saturated).
async fn authenticate(users: &DemoUsers, credentials: Credentials) -> Result<User, AuthRejection> {
    users.login(credentials).await
}

/// `POST /login`: cookie transport; the body is the user. `HybridLogin` refuses a cross-site
/// request (login CSRF) before the password is even read.
async fn login(
    login: HybridLogin,
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = authenticate(&state.users, credentials).await?;
    login.cookies(user.id(), &user).await
}

/// `POST /token`: bearer transport; the body holds both tokens.
async fn token(
    login: HybridLogin,
    State(state): State<AppState>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = authenticate(&state.users, credentials).await?;
    login.bearer(user.id(), &user).await
}

/// `GET /me`: the caller.
async fn me(CurrentUser(user): CurrentUser<User>) -> Response {
    no_store(Json(user).into_response())
}

/// `GET /admin`: admins only.
async fn admin(admin: Authorized<User, IsAdmin>) -> Response {
    no_store(Json(admin.into_inner()).into_response())
}

/// Responses that carry credentials are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /.well-known/jwks.json`: the public keys (none for HMAC).
async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.issuer.jwks())
}

/// `GET /`: a small page that signs in with cookies and refreshes once on a 401.
async fn home() -> Html<&'static str> {
    Html(include_str!("home.html"))
}
