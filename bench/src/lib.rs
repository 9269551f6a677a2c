//! The same tiny application on every authentication stack this package compares: `GET /me`
//! answers the signed-in user as JSON (401 without one) and `GET /public` answers without asking
//! for a user. The criterion bench (`benches/stacks.rs`), the HTTP server (`bench-server`) and
//! the memory probe (`memory`) all build their routers here, so every measurement runs the very
//! same code.
//!
//! Every stack hands the handler the same `User` and answers the same body; what differs is only
//! how the request is authenticated.

// A benchmark harness, not a library: its items are documented for readers of the benchmark,
// but `missing_docs` on every field of a plain data type would add nothing.
#![allow(missing_docs)]

use std::{fmt, str::FromStr, sync::Arc, time::Duration};

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use portcullis_core::CurrentUser;
use portcullis_hybrid::{HybridLayer, HybridSessions, InProcessFeed, MemoryRefreshStore};
use portcullis_jwt::{Algorithm, BearerLayer, SigningKey, TokenIssuer, TokenVerifier, Validation};
use portcullis_redis::{NearCacheConfig, RedisConfig, RedisSessionStore};
use portcullis_session::{
    MemoryStore, Session, SessionConfig, SessionLayer, SessionRecord, SessionStore,
};
use serde::{Deserialize, Serialize};
use tower::{Layer, ServiceExt};

/// The application's user: what every stack hands the `/me` handler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user: String,
    pub role: String,
}

/// The demo user every stack signs in.
pub fn alice() -> User {
    User {
        user: "alice".into(),
        role: "advertiser".into(),
    }
}

/// `iss` of every token.
pub const ISSUER: &str = "https://bench.portcullis.test";
/// `aud` of every token.
pub const AUDIENCE: &str = "https://api.bench.portcullis.test";
/// The HS256 secret every HS256 stack shares (so all verify the same token).
pub const HS256_SECRET: &[u8; 32] = b"portcullis-bench-hs256-secret-32";
/// Lifetime of the tokens the stacks accept: longer than any benchmark run.
pub const TOKEN_TTL: Duration = Duration::from_secs(4 * 3600);

/// One authentication stack under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stack {
    /// No authentication at all: the limit every other stack is measured against.
    Bare,
    /// portcullis `SessionLayer` over its `MemoryStore`.
    SessionMemory,
    /// portcullis `SessionLayer` over `RedisSessionStore`.
    SessionRedis,
    /// portcullis `SessionLayer` over `RedisSessionStore` with its near-cache on (issue 15).
    SessionRedisNear,
    /// tower-sessions 0.14 with its `MemoryStore`.
    TowerSessionsMemory,
    /// tower-sessions 0.14 with tower-sessions-redis-store 0.16 (fred).
    TowerSessionsRedis,
    /// portcullis `BearerLayer`, HS256.
    JwtHs256,
    /// portcullis `BearerLayer`, ES256.
    JwtEs256,
    /// portcullis `BearerLayer`, EdDSA (Ed25519).
    JwtEdDsa,
    /// The middleware most axum applications write by hand: `middleware::from_fn_with_state`
    /// around `jsonwebtoken::decode`, HS256.
    HandWrittenJwtHs256,
    /// jwt-authorizer 0.15, HS256.
    JwtAuthorizerHs256,
    /// portcullis `HybridLayer` edge check (HS256 access token, memory refresh store).
    HybridHs256,
}

impl Stack {
    /// Every stack, in the order of the reports.
    pub const ALL: [Stack; 12] = [
        Stack::Bare,
        Stack::SessionMemory,
        Stack::TowerSessionsMemory,
        Stack::SessionRedis,
        Stack::SessionRedisNear,
        Stack::TowerSessionsRedis,
        Stack::JwtHs256,
        Stack::HandWrittenJwtHs256,
        Stack::JwtAuthorizerHs256,
        Stack::JwtEs256,
        Stack::JwtEdDsa,
        Stack::HybridHs256,
    ];

    /// The name used on the command line, in bench ids and in the reports.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Bare => "bare",
            Stack::SessionMemory => "session-memory",
            Stack::SessionRedis => "session-redis",
            Stack::SessionRedisNear => "session-redis-near",
            Stack::TowerSessionsMemory => "tower-sessions-memory",
            Stack::TowerSessionsRedis => "tower-sessions-redis",
            Stack::JwtHs256 => "jwt-hs256",
            Stack::JwtEs256 => "jwt-es256",
            Stack::JwtEdDsa => "jwt-eddsa",
            Stack::HandWrittenJwtHs256 => "handwritten-jsonwebtoken-hs256",
            Stack::JwtAuthorizerHs256 => "jwt-authorizer-hs256",
            Stack::HybridHs256 => "hybrid-hs256",
        }
    }

    /// Whether the stack needs a Redis server.
    pub fn needs_redis(self) -> bool {
        matches!(
            self,
            Stack::SessionRedis | Stack::SessionRedisNear | Stack::TowerSessionsRedis
        )
    }
}

impl fmt::Display for Stack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Stack {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stack::ALL
            .into_iter()
            .find(|stack| stack.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Stack::ALL.iter().map(|s| s.name()).collect();
                format!("unknown stack {s:?}; one of: {}", names.join(", "))
            })
    }
}

/// A router ready to serve, with the header a signed-in client sends.
#[derive(Clone)]
pub struct App {
    pub router: Router,
    /// `Authorization: Bearer ...` or `Cookie: ...`; the bare router gets a bearer header too
    /// (ignored) so every stack parses requests of the same size.
    pub credential: (HeaderName, HeaderValue),
}

impl App {
    /// `GET path` with the signed-in client's credential.
    pub fn request(&self, path: &str) -> Request {
        let mut request = Request::get(path)
            .body(Body::empty())
            .expect("valid request");
        request
            .headers_mut()
            .insert(self.credential.0.clone(), self.credential.1.clone());
        request
    }
}

/// Where the Redis stacks connect, and the key prefix that keeps their keys apart from
/// everything else on a shared server.
#[derive(Clone, Debug)]
pub struct RedisTarget {
    pub url: String,
    pub prefix: String,
}

impl RedisTarget {
    /// `REDIS_URL` (default `redis://127.0.0.1:6379`) and a prefix unique to this process.
    pub fn from_env() -> Self {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        Self {
            url,
            prefix: format!("portcullis-bench-{}-{nanos}", std::process::id()),
        }
    }
}

/// Errors while building a stack (a Redis that cannot be reached, mostly).
#[derive(Debug)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

fn error(context: &str, e: impl fmt::Display) -> BuildError {
    BuildError(format!("{context}: {e}"))
}

async fn me_user(CurrentUser(user): CurrentUser<User>) -> Json<User> {
    Json(user)
}

async fn public() -> &'static str {
    "public"
}

fn bearer_header(token: &str) -> (HeaderName, HeaderValue) {
    (
        header::AUTHORIZATION,
        HeaderValue::try_from(format!("Bearer {token}")).expect("a token is a valid header"),
    )
}

/// The cookie a `/login` answer set, as a `Cookie` request header.
/// Signs alice in through `POST /login` on `router`; the session cookie to send.
///
/// # Errors
///
/// When the login does not answer 200 with a cookie.
pub async fn login_cookie(router: &Router) -> Result<(HeaderName, HeaderValue), BuildError> {
    let response = router
        .clone()
        .oneshot(Request::post("/login").body(Body::empty()).expect("valid"))
        .await
        .map_err(|e| error("login", e))?;
    if response.status() != StatusCode::OK {
        return Err(BuildError(format!("login answered {}", response.status())));
    }
    let set_cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| BuildError("login set no cookie".into()))?;
    let pair = set_cookie.split(';').next().unwrap_or_default().to_owned();
    Ok((
        header::COOKIE,
        HeaderValue::try_from(pair).map_err(|e| error("cookie", e))?,
    ))
}

/// A portcullis HS256 issuer (the tokens of every HS256 stack come from it).
pub fn hs256_issuer() -> TokenIssuer {
    issuer(SigningKey::hmac(Algorithm::HS256, HS256_SECRET, None).expect("a valid HMAC key"))
}

fn issuer(key: SigningKey) -> TokenIssuer {
    TokenIssuer::new(key)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .ttl(TOKEN_TTL)
}

/// The validation every portcullis JWT stack applies.
pub fn validation() -> Validation {
    Validation::new().issuer(ISSUER).audience(AUDIENCE)
}

/// The same checks for `jsonwebtoken::decode` (what portcullis checks: `exp`, `nbf`, `iss`,
/// `aud`, the algorithm pinned; the default 60 s leeway of jsonwebtoken is kept).
pub fn jsonwebtoken_validation(alg: jsonwebtoken::Algorithm) -> jsonwebtoken::Validation {
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.validate_nbf = true;
    validation
}

/// A session app: `/login` signs alice in, `/me` reads her back, `/public` asks for nothing.
fn portcullis_session_app<S: SessionStore>(store: S) -> Result<Router, BuildError> {
    let layer =
        SessionLayer::new(store, SessionConfig::default()).map_err(|e| error("session", e))?;
    Ok(Router::new()
        .route("/me", get(me_user))
        .route("/public", get(public))
        .route(
            "/login",
            post(|session: Session| async move {
                match session.login("alice", &alice()).await {
                    Ok(_) => StatusCode::OK,
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }),
        )
        .layer(layer))
}

/// The tower-sessions app over `store` (`/login` signs alice in), for the memory probe.
pub fn tower_sessions_memory_router(store: tower_sessions::MemoryStore) -> Router {
    tower_sessions_app(store)
}

/// The tower-sessions stack (`/me`, `/public`, `/login`) over any of its stores.
pub fn tower_sessions_app<S>(store: S) -> Router
where
    S: tower_sessions::SessionStore + Clone,
{
    use tower_sessions::{Expiry, SessionManagerLayer, cookie::time};

    async fn me(session: tower_sessions::Session) -> Response {
        match session.get::<User>("user").await {
            Ok(Some(user)) => Json(user).into_response(),
            Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
            Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    async fn login(session: tower_sessions::Session) -> StatusCode {
        // The fixation defence portcullis applies on login too.
        if session.cycle_id().await.is_err() || session.insert("user", alice()).await.is_err() {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
        StatusCode::OK
    }
    Router::new()
        .route("/me", get(me))
        .route("/public", get(public))
        .route("/login", post(login))
        .layer(
            SessionManagerLayer::new(store)
                .with_secure(true)
                .with_http_only(true)
                .with_expiry(Expiry::OnInactivity(time::Duration::minutes(30))),
        )
}

/// The hand-written middleware: the pattern of axum's own JWT example, on jsonwebtoken 11.
mod hand_written {
    use super::*;

    #[derive(Deserialize)]
    struct Claims {
        user: String,
        role: String,
    }

    pub(crate) struct Keys {
        pub(crate) key: jsonwebtoken::DecodingKey,
        pub(crate) validation: jsonwebtoken::Validation,
    }

    pub(crate) async fn authenticate(
        State(keys): State<Arc<Keys>>,
        mut request: Request,
        next: Next,
    ) -> Response {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return StatusCode::UNAUTHORIZED.into_response();
        };
        match jsonwebtoken::decode::<Claims>(token, &keys.key, &keys.validation) {
            Ok(data) => {
                request.extensions_mut().insert(User {
                    user: data.claims.user,
                    role: data.claims.role,
                });
                next.run(request).await
            }
            Err(_) => StatusCode::UNAUTHORIZED.into_response(),
        }
    }

    pub(crate) async fn me(Extension(user): Extension<User>) -> Json<User> {
        Json(user)
    }
}

mod authorizer {
    use super::*;

    /// jwt-authorizer answers its rejections as axum 0.7 responses; the service it wraps must
    /// make its response type from one. This newtype lets an axum 0.8 router sit inside it
    /// without re-boxing any body on the success path.
    pub(crate) struct Answer(pub(crate) Response);

    impl From<jwt_authorizer::AuthError> for Answer {
        fn from(_: jwt_authorizer::AuthError) -> Self {
            Answer(StatusCode::UNAUTHORIZED.into_response())
        }
    }

    #[derive(Clone, Deserialize)]
    pub(crate) struct Claims {
        user: String,
        role: String,
    }

    pub(crate) async fn me(request: Request) -> Response {
        match request
            .extensions()
            .get::<jsonwebtoken_9::TokenData<Claims>>()
        {
            Some(data) => Json(User {
                user: data.claims.user.clone(),
                role: data.claims.role.clone(),
            })
            .into_response(),
            None => StatusCode::UNAUTHORIZED.into_response(),
        }
    }
}

/// Builds `stack` (Redis stacks connect to `redis`).
///
/// # Errors
///
/// When a store cannot be reached or the login that makes the session cookie fails.
pub async fn build(stack: Stack, redis: &RedisTarget) -> Result<App, BuildError> {
    let hs256 = hs256_issuer();
    let hs256_token = hs256
        .issue("alice", &alice())
        .map_err(|e| error("issue", e))?
        .token;
    match stack {
        Stack::Bare => Ok(App {
            router: Router::new()
                .route("/me", get(|| async { Json(alice()) }))
                .route("/public", get(public)),
            credential: bearer_header(&hs256_token),
        }),
        Stack::SessionMemory => session_app_over(MemoryStore::new()).await,
        Stack::SessionRedis | Stack::SessionRedisNear => {
            let connection = RedisConfig::new(redis.url.clone())
                .key_prefix(redis.prefix.clone())
                .build()
                .map_err(|e| error("redis config", e))?;
            connection
                .ping()
                .await
                .map_err(|e| error(&format!("redis at {}", redis.url), e))?;
            let store = RedisSessionStore::new(connection);
            let store = if stack == Stack::SessionRedisNear {
                store.near_cache(NearCacheConfig::new())
            } else {
                store
            };
            let router = portcullis_session_app(store)?;
            let credential = login_cookie(&router).await?;
            Ok(App { router, credential })
        }
        Stack::TowerSessionsMemory => {
            let router = tower_sessions_app(tower_sessions::MemoryStore::default());
            let credential = login_cookie(&router).await?;
            Ok(App { router, credential })
        }
        Stack::TowerSessionsRedis => {
            use tower_sessions_redis_store::{
                RedisStore,
                fred::prelude::{ClientLike, Config, Pool},
            };
            let config = Config::from_url(&redis.url).map_err(|e| error("fred config", e))?;
            // One connection, as portcullis' RedisConnection multiplexes one.
            let pool = Pool::new(config, None, None, None, 1).map_err(|e| error("fred", e))?;
            pool.init()
                .await
                .map_err(|e| error(&format!("redis at {}", redis.url), e))?;
            let router = tower_sessions_app(RedisStore::new(pool));
            let credential = login_cookie(&router).await?;
            Ok(App { router, credential })
        }
        Stack::JwtHs256 | Stack::JwtEs256 | Stack::JwtEdDsa => {
            let issuer = match stack {
                Stack::JwtHs256 => hs256,
                Stack::JwtEs256 => issuer(
                    SigningKey::generate(Algorithm::ES256).map_err(|e| error("ES256 key", e))?,
                ),
                _ => issuer(
                    SigningKey::generate(Algorithm::EdDSA).map_err(|e| error("EdDSA key", e))?,
                ),
            };
            let token = issuer
                .issue("alice", &alice())
                .map_err(|e| error("issue", e))?
                .token;
            let verifier = TokenVerifier::new(issuer.key_set(), validation());
            // `BENCH_COLD=1`: every request verifies, as a token seen for the first time does.
            let verifier = if cold() {
                verifier.without_token_cache()
            } else {
                verifier
            };
            Ok(App {
                router: Router::new()
                    .route("/me", get(me_user))
                    .route("/public", get(public))
                    .layer(BearerLayer::new(verifier)),
                credential: bearer_header(&token),
            })
        }
        Stack::HandWrittenJwtHs256 => {
            let keys = Arc::new(hand_written::Keys {
                key: jsonwebtoken::DecodingKey::from_secret(HS256_SECRET),
                validation: jsonwebtoken_validation(jsonwebtoken::Algorithm::HS256),
            });
            // As most applications do: the middleware on the routes that need a user.
            let protected = Router::new()
                .route("/me", get(hand_written::me))
                .route_layer(middleware::from_fn_with_state(
                    keys,
                    hand_written::authenticate,
                ));
            Ok(App {
                router: protected.route("/public", get(public)),
                credential: bearer_header(&hs256_token),
            })
        }
        Stack::JwtAuthorizerHs256 => {
            let secret =
                std::str::from_utf8(HS256_SECRET).map_err(|e| error("secret is utf-8", e))?;
            let layer = jwt_authorizer::JwtAuthorizer::<authorizer::Claims>::from_secret(secret)
                .validation(
                    jwt_authorizer::Validation::new()
                        .iss(&[ISSUER])
                        .aud(&[AUDIENCE])
                        .nbf(true),
                )
                .build()
                .await
                .map_err(|e| error("jwt-authorizer", e))?;
            let layer = jwt_authorizer::IntoLayer::into_layer(layer);
            let inner = Router::new()
                .route("/me", get(authorizer::me))
                .into_service::<Body>()
                .map_response(authorizer::Answer);
            let service = layer.layer(inner).map_response(|answer| answer.0);
            // jwt-authorizer sits on the protected routes only, as its docs show.
            let router = Router::new()
                .route_service("/me", service)
                .route("/public", get(public));
            Ok(App {
                router,
                credential: bearer_header(&hs256_token),
            })
        }
        Stack::HybridHs256 => {
            let issuer = hs256_issuer();
            let sessions = HybridSessions::builder(issuer, validation())
                .store(MemoryRefreshStore::new())
                .feed(InProcessFeed::new())
                .build()
                .await
                .map_err(|e| error("hybrid", e))?;
            let pair = sessions
                .login("alice", &alice(), None)
                .await
                .map_err(|e| error("hybrid login", e))?;
            Ok(App {
                router: Router::new()
                    .route("/me", get(me_user))
                    .route("/public", get(public))
                    .layer(HybridLayer::new(&sessions)),
                credential: bearer_header(pair.access_token()),
            })
        }
    }
}

/// Whether `BENCH_COLD` asks for the cold path: the JWT stacks without their verified-token
/// cache (every request costs what a first-seen token costs).
pub fn cold() -> bool {
    std::env::var_os("BENCH_COLD").is_some_and(|value| !value.is_empty() && value != "0")
}

/// A portcullis session app over `store` with alice signed in (the scale benchmark fills the
/// store with other sessions first).
///
/// # Errors
///
/// When the login fails.
pub async fn session_app_over<S: SessionStore>(store: S) -> Result<App, BuildError> {
    let router = portcullis_session_app(store)?;
    let credential = login_cookie(&router).await?;
    Ok(App { router, credential })
}

/// What session-app stores for a signed-in user: a user id, a small user object and an
/// 80-character user agent, no auxiliary data.
pub fn session_record(i: usize, now: u64) -> SessionRecord {
    let user = format!("user-{:07}", i % 250_000);
    SessionRecord {
        handle: portcullis_core::random_handle(),
        user_id: Some(user.clone()),
        user: Some(
            portcullis_core::UserJson::new(
                &serde_json::json!({"user": user, "role": "advertiser"}),
            )
            .expect("a JSON value serializes"),
        ),
        data: serde_json::Map::new(),
        created_at: now,
        authenticated_at: Some(now),
        last_seen_at: now,
        expires_at: now + 1_800,
        absolute_expires_at: now + 43_200,
        user_agent: Some(USER_AGENT.to_owned()),
        persistent: false,
        version: 0,
    }
}

/// An 80-character desktop browser user agent.
pub const USER_AGENT: &str =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0";

/// Adds `count` signed-in sessions of other users to `store`.
pub async fn fill(store: &MemoryStore, count: usize) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for i in 0..count {
        let key = portcullis_core::SecretToken::generate().store_key();
        store
            .create(&key, &session_record(i, now), None)
            .await
            .expect("the memory store does not fail");
    }
}

/// Checks that `GET /me` answers 200 with alice and `GET /public` 200, so no benchmark ever
/// measures a fast 401.
///
/// # Errors
///
/// What went wrong, with the status and body.
pub async fn check(app: &App) -> Result<(), BuildError> {
    for path in ["/me", "/public"] {
        let response = app
            .router
            .clone()
            .oneshot(app.request(path))
            .await
            .map_err(|e| error(path, e))?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .map_err(|e| error(path, e))?;
        if status != StatusCode::OK {
            return Err(BuildError(format!(
                "{path} answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        if path == "/me" {
            let user: User = serde_json::from_slice(&body).map_err(|e| error("/me body", e))?;
            if user != alice() {
                return Err(BuildError(format!("/me answered {user:?}")));
            }
        }
    }
    Ok(())
}
