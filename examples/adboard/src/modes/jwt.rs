//! JWT mode: `POST /login` answers with a bearer token (the `/token` body of jwt-api), and
//! requests carry it in `Authorization: Bearer`.
//!
//! Bearer tokens cannot be recalled from clients, so logout and password changes are
//! published on a revocation feed that every instance's [`BearerLayer`] reads into memory
//! (Redis pub/sub with `REDIS_URL`, this process only otherwise): a logged-out token is
//! refused by its `jti`, and a password change refuses every token of the user issued before
//! it, with no store read per request. Tokens carry an `iat_ms` claim, so the token handed
//! out by the password change (and a login right after it) is not caught by it.
//!
//! A role change (`PUT /users/{name}/role`) marks the user on the feed too: their tokens
//! carry a stale role, so while the mark lasts (one token lifetime) every instance serves
//! the user as the shared user table has them now instead of as the token says.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{
    Json, Router,
    extract::{Path, Request, State, rejection::JsonRejection},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use portcullis_core::{
    AuthRejection, Authentication, Authorized, Credentials, CrossSiteCheck, CurrentUser, Identity,
    Mechanism, RecentlyAuthenticated, StoreError,
    revocation::{InProcessFeed, Revocation, RevocationFeed, RevocationList, UserRevocation},
};
use portcullis_jwt::{
    BearerLayer, IssuedToken, TokenIssuer, TokenVerifier, issued_at_ms_claim, token_revocation,
};
use portcullis_redis::{RedisConfig, RedisRevocationFeed};
use serde::Deserialize;

use crate::{
    AppState, IsAdmin, PasswordBody, REAUTH_MAX_AGE_SECS, SetupError, User, ads, check_password,
    me,
    roles::{self, RoleError, RoleInput},
    set_password,
};

const REALM: &str = "adboard";

/// Where revocations go: Redis for every instance, or this process.
#[derive(Clone)]
enum Feed {
    Memory(InProcessFeed),
    Redis(RedisRevocationFeed),
}

impl Feed {
    async fn publish(&self, revocation: &Revocation) -> Result<(), StoreError> {
        match self {
            Self::Memory(feed) => feed.publish(revocation).await,
            Self::Redis(feed) => feed.publish(revocation).await,
        }
    }

    async fn publish_user(&self, revocation: &UserRevocation) -> Result<(), StoreError> {
        match self {
            Self::Memory(feed) => feed.publish_user(revocation).await,
            Self::Redis(feed) => feed.publish_user(revocation).await,
        }
    }

    async fn subscribe(&self, list: RevocationList) -> Result<(), StoreError> {
        match self {
            Self::Memory(feed) => feed.subscribe(list).await,
            Self::Redis(feed) => feed.subscribe(list).await,
        }
    }
}

/// The claims the handlers look at.
#[derive(Debug, Deserialize)]
struct TokenFacts {
    sub: String,
    jti: Option<String>,
    exp: u64,
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn unix_now_ms() -> u64 {
    u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX)
}

/// The feed entry marking that `user`'s tokens carry a stale user (a role change).
fn changed_key(user: &str) -> String {
    format!("user-changed:{user}")
}

#[derive(Clone)]
struct JwtState {
    app: AppState,
    issuer: TokenIssuer,
    feed: Feed,
    revoked: RevocationList,
}

impl JwtState {
    /// Until when an entry about tokens issued now must be kept: when they expire.
    fn token_deadline(&self) -> u64 {
        unix_now()
            .as_secs()
            .saturating_add(self.issuer.default_ttl().as_secs())
            .saturating_add(60)
    }
}

impl axum::extract::FromRef<JwtState> for crate::AdBoard {
    fn from_ref(state: &JwtState) -> Self {
        state.app.board.clone()
    }
}

/// The JWT-mode router, with keys from the same `JWT_*` variables as jwt-api.
///
/// # Errors
///
/// When the JWT settings are invalid.
pub async fn router(
    state: AppState,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Router, SetupError> {
    let (issuer, validation) = crate::settings::jwt_mode(&lookup)?;
    let verifier = TokenVerifier::new(issuer.key_set(), validation);
    let (feed, checks) = match RedisConfig::from_lookup(&lookup) {
        Some(redis) => {
            let feed = RedisRevocationFeed::new(redis.build()?);
            let checks =
                portcullis_core::ReadinessChecks::new().check("revocation feed", feed.clone());
            (Feed::Redis(feed), checks)
        }
        None => (
            Feed::Memory(InProcessFeed::new()),
            portcullis_core::ReadinessChecks::new(),
        ),
    };
    let revoked = RevocationList::new();
    // A Redis feed does not fail here: it marks the list as behind (503) and keeps trying.
    feed.subscribe(revoked.clone())
        .await
        .map_err(|error| SetupError::Setting(format!("revocation feed: {error}")))?;
    let health = crate::ops::health_routes(checks.check("keys", issuer.key_set()));
    let state = JwtState {
        app: state,
        issuer,
        feed,
        revoked: revoked.clone(),
    };
    Ok(Router::new()
        .route(
            "/login",
            post(login).layer(middleware::from_fn(refuse_cross_site_login)),
        )
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/reauth", post(reauth))
        .route("/password", post(change_password))
        .route("/account", delete(delete_account))
        .route("/users/{name}/role", put(change_role))
        .merge(ads::routes())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            serve_current_user,
        ))
        .with_state(state)
        .layer(BearerLayer::new(verifier).realm(REALM).revocations(revoked))
        .merge(health))
}

/// Refuses a cross-site `POST /login` with 403 before the password is checked. The token
/// answer sets no cookie, but the rule is the same in every mode (DESIGN.md; OWASP CSRF
/// Prevention Cheat Sheet, "Login CSRF"), and a page of another site has no business here.
async fn refuse_cross_site_login(request: Request, next: Next) -> Response {
    match CrossSiteCheck::new().check(&request) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// Runs inside the bearer layer (which has refused revoked tokens): serves a token of a user
/// whose role changed with the user as the shared table has them now.
async fn serve_current_user(
    State(state): State<JwtState>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = unix_now().as_secs();
    let facts = token_facts(request.extensions())
        .await
        .filter(|facts| state.revoked.is_revoked(&changed_key(&facts.sub), now));
    if let Some(facts) = facts {
        let identity = match current_identity(&state, &facts.sub, request.extensions()).await {
            Ok(Some(identity)) => identity,
            Ok(None) => {
                return AuthRejection::invalid_credentials("the token's user no longer exists")
                    .with_bearer_challenge(REALM)
                    .into_response();
            }
            Err(rejection) => return rejection.with_bearer_challenge(REALM).into_response(),
        };
        let mut authentication = Authentication::default();
        authentication
            .set_bearer_realm(REALM.into())
            .add_identity(identity);
        request.extensions_mut().insert(authentication);
    }
    next.run(request).await
}

/// The token's claims with the user's fields as the shared table has them now; `None` when
/// the user is gone.
async fn current_identity(
    state: &JwtState,
    user_id: &str,
    extensions: &axum::http::Extensions,
) -> Result<Option<Identity>, AuthRejection> {
    let Some(user) = state.app.users.current(user_id).await? else {
        return Ok(None);
    };
    let refused = || AuthRejection::invalid_credentials("the token's claims are malformed");
    let user = serde_json::to_value(user).map_err(|_| refused())?;
    let token = extensions
        .get::<Authentication>()
        .ok_or_else(refused)?
        .identity()
        .await?
        .ok_or_else(refused)?;
    let mut claims: serde_json::Map<String, serde_json::Value> =
        token.user().map_err(|_| refused())?;
    if let serde_json::Value::Object(fields) = user {
        claims.extend(fields);
    }
    let mut identity = Identity::from_user(&claims, Mechanism::Bearer).map_err(|_| refused())?;
    if let Some(at) = token.authenticated_at() {
        identity = identity.with_authenticated_at(at);
    }
    Ok(Some(identity))
}

/// `PUT /users/{name}/role`: the user's tokens issued until now carry the old role, so every
/// instance serves them with the new one (a mark on the revocation feed, kept one token
/// lifetime).
async fn change_role(
    _: Authorized<User, IsAdmin>,
    State(state): State<JwtState>,
    Path(name): Path<String>,
    input: Result<Json<RoleInput>, JsonRejection>,
) -> Result<Json<User>, RoleError> {
    let user = roles::set_role(&state.app.users, &name, input).await?;
    let mark = Revocation {
        session_id: changed_key(user.id()),
        until: state.token_deadline(),
    };
    state.revoked.insert(&mark);
    state
        .feed
        .publish(&mark)
        .await
        .map_err(AuthRejection::from)?;
    Ok(Json(user))
}

async fn token_facts(extensions: &axum::http::Extensions) -> Option<TokenFacts> {
    let authentication = extensions.get::<Authentication>()?;
    let identity = authentication.identity().await.ok()??;
    identity.user().ok()
}

fn issue(state: &JwtState, user: &User) -> Result<IssuedToken, AuthRejection> {
    let failed = |error: &dyn std::fmt::Display| {
        tracing::error!(%error, "could not sign a token");
        AuthRejection::unavailable("could not issue a token")
    };
    // `iat_ms`: a password change dated in milliseconds refuses only the tokens before it.
    let mut claims = serde_json::to_value(user).map_err(|error| failed(&error))?;
    if let (serde_json::Value::Object(claims), serde_json::Value::Object(at)) =
        (&mut claims, issued_at_ms_claim(unix_now_ms()))
    {
        claims.extend(at);
    }
    state.issuer.issue(user.id(), &claims).map_err(|error| {
        tracing::error!(%error, "could not sign a token");
        AuthRejection::unavailable("could not issue a token")
    })
}

fn token_body(token: &IssuedToken) -> Response {
    let mut response = Json(serde_json::json!({
        "access_token": token.token,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
    }))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    response
}

async fn login(
    State(state): State<JwtState>,
    credentials: Credentials,
) -> Result<Response, AuthRejection> {
    let user = state.app.users.sign_in(credentials).await?;
    Ok(token_body(&issue(&state, &user)?))
}

async fn logout(
    State(state): State<JwtState>,
    request: Request,
) -> Result<StatusCode, AuthRejection> {
    let facts = token_facts(request.extensions())
        .await
        .ok_or_else(|| AuthRejection::missing_credentials().with_bearer_challenge(REALM))?;
    if let Some(jti) = &facts.jti {
        state
            .feed
            .publish(&token_revocation(jti, facts.exp))
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Confirms the password: a new token has a fresh `iat`, the authentication time.
async fn reauth(
    State(state): State<JwtState>,
    CurrentUser(user): CurrentUser<User>,
    Json(body): Json<PasswordBody>,
) -> Result<Response, AuthRejection> {
    let user = check_password(&state.app.users, user.id(), body.password).await?;
    Ok(token_body(&issue(&state, &user)?))
}

async fn change_password(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    State(state): State<JwtState>,
    Json(body): Json<PasswordBody>,
) -> Result<Response, AuthRejection> {
    set_password(&state.app.users, &user, body.password).await?;
    // Every earlier token dies on every instance, this one included (OWASP Session Management
    // Cheat Sheet: a password change ends the other sessions); the caller gets a new one,
    // minted after the instant, so it is not caught.
    state
        .feed
        .publish_user(&UserRevocation {
            user_id: user.id().to_owned(),
            not_before_ms: unix_now_ms(),
            until: state.token_deadline(),
        })
        .await?;
    let token = issue(&state, &user)?;
    Ok(token_body(&token))
}

async fn delete_account(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    State(state): State<JwtState>,
) -> Result<StatusCode, AuthRejection> {
    state.app.users.delete(user.id()).await?;
    state
        .feed
        .publish_user(&UserRevocation {
            user_id: user.id().to_owned(),
            not_before_ms: u64::MAX,
            until: state.token_deadline(),
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
