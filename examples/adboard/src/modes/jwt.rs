//! JWT mode: `POST /login` answers with a bearer token (the `/token` body of jwt-api), and
//! requests carry it in `Authorization: Bearer`.
//!
//! Bearer tokens cannot be recalled from clients, so logout and password changes are honoured
//! by this node's [`Denylist`]: a logged-out token's `jti` is refused until it expires, and a
//! password change refuses every token of the user issued before it. This is the honest limit
//! of stateless tokens: other nodes do not learn of it (the hybrid mode exists for that).
//!
//! A role change (`PUT /users/{name}/role`) marks the user on this node: their tokens issued up
//! to then carry a stale role, so for those this node serves the user as the directory has
//! them now instead of as the token says.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    extract::{Path, Request, State, rejection::JsonRejection},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{delete, get, post, put},
};
use demo_users::{Credentials, IsAdmin, User};
use portcullis_core::{
    AuthRejection, Authentication, Authorized, CrossSiteCheck, CurrentUser, Identity, Mechanism,
    RecentlyAuthenticated,
};
use portcullis_jwt::{BearerLayer, IssuedToken, TokenIssuer, TokenVerifier};
use serde::Deserialize;

use crate::{
    AppState, PasswordBody, REAUTH_MAX_AGE_SECS, SetupError, ads, check_password, me,
    roles::{self, RoleError, RoleInput},
    set_password, sign_in,
};

const REALM: &str = "adboard";

/// Tokens this node refuses before they expire.
#[derive(Debug, Clone, Default)]
pub struct Denylist {
    inner: Arc<RwLock<DenylistInner>>,
}

#[derive(Debug, Default)]
struct DenylistInner {
    /// `jti` → `exp` of logged-out tokens.
    tokens: HashMap<String, u64>,
    /// user → tokens issued up to this second are refused, except the one named (the token
    /// handed out by the password change itself: `iat` has whole seconds only).
    superseded: HashMap<String, (u64, Option<String>)>,
    /// user → the last second their role changed: older tokens carry a stale user.
    changed: HashMap<String, u64>,
}

/// The claims the denylist looks at.
#[derive(Debug, Deserialize)]
struct TokenFacts {
    sub: String,
    jti: Option<String>,
    iat: Option<u64>,
    exp: u64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Denylist {
    fn refuses(&self, token: &TokenFacts) -> bool {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let logged_out = token
            .jti
            .as_ref()
            .is_some_and(|jti| inner.tokens.contains_key(jti));
        let superseded = inner
            .superseded
            .get(&token.sub)
            .is_some_and(|(until, except)| {
                token.iat.is_none_or(|iat| iat <= *until) && except.as_ref() != token.jti.as_ref()
            });
        logged_out || superseded
    }

    fn log_out(&self, token: &TokenFacts) {
        let now = unix_now();
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        // Expired tokens are refused by the layer anyway: forget them.
        inner.tokens.retain(|_, exp| *exp >= now);
        if let Some(jti) = &token.jti {
            inner.tokens.insert(jti.clone(), token.exp);
        }
    }

    fn user_changed(&self, user: &str) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .changed
            .insert(user.to_owned(), unix_now());
    }

    /// Whether the token predates a change of its user.
    fn is_stale(&self, token: &TokenFacts) -> bool {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        inner
            .changed
            .get(&token.sub)
            .is_some_and(|changed| token.iat.is_none_or(|iat| iat <= *changed))
    }

    fn refuse_user_tokens_through(&self, user: &str, second: u64, except: Option<String>) {
        self.inner
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .superseded
            .insert(user.to_owned(), (second, except));
    }
}

#[derive(Clone)]
struct JwtState {
    app: AppState,
    issuer: TokenIssuer,
    denylist: Denylist,
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
    let settings = jwt_api::Settings::from_lookup(lookup)?;
    let issuer = settings
        .keys
        .token_issuer(settings.signing_key()?)
        .ttl(settings.ttl);
    let verifier = TokenVerifier::new(issuer.key_set(), settings.keys.validation());
    let health = demo_users::health_routes(
        portcullis_core::ReadinessChecks::new().check("keys", issuer.key_set()),
    );
    let state = JwtState {
        app: state,
        issuer,
        denylist: Denylist::default(),
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
        .layer(middleware::from_fn_with_state(state.clone(), refuse_denied))
        .with_state(state)
        .layer(BearerLayer::new(verifier).realm(REALM))
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

/// Runs inside the bearer layer: refuses tokens this node has revoked, and serves tokens that
/// predate a role change with the user as the directory has them now.
async fn refuse_denied(
    State(state): State<JwtState>,
    mut request: Request,
    next: Next,
) -> Response {
    let facts = token_facts(request.extensions()).await;
    if facts
        .as_ref()
        .is_some_and(|facts| state.denylist.refuses(facts))
    {
        return AuthRejection::invalid_credentials("the token has been revoked")
            .with_bearer_challenge(REALM)
            .into_response();
    }
    if let Some(facts) = facts.filter(|facts| state.denylist.is_stale(facts)) {
        let Some(identity) = current_identity(&state, &facts.sub, request.extensions()).await
        else {
            return AuthRejection::invalid_credentials("the token's user no longer exists")
                .with_bearer_challenge(REALM)
                .into_response();
        };
        let mut authentication = Authentication::default();
        authentication
            .set_bearer_realm(REALM.into())
            .add_identity(identity);
        request.extensions_mut().insert(authentication);
    }
    next.run(request).await
}

/// The token's claims with the user's fields as the directory has them now; `None` when the
/// user is gone.
async fn current_identity(
    state: &JwtState,
    user_id: &str,
    extensions: &axum::http::Extensions,
) -> Option<Identity> {
    let user = serde_json::to_value(state.app.users.find(user_id)?).ok()?;
    let token = extensions
        .get::<Authentication>()?
        .identity()
        .await
        .ok()??;
    let mut claims: serde_json::Map<String, serde_json::Value> = token.user().ok()?;
    if let serde_json::Value::Object(fields) = user {
        claims.extend(fields);
    }
    let mut identity = Identity::from_user(&claims, Mechanism::Bearer).ok()?;
    if let Some(at) = token.authenticated_at() {
        identity = identity.with_authenticated_at(at);
    }
    Some(identity)
}

/// `PUT /users/{name}/role`: the user's tokens issued until now carry the old role, so this
/// node serves them with the new one. Tokens are not shared state: other nodes keep the old
/// role until the tokens expire (use the hybrid mode to reach every node).
async fn change_role(
    _: Authorized<User, IsAdmin>,
    State(state): State<JwtState>,
    Path(name): Path<String>,
    input: Result<Json<RoleInput>, JsonRejection>,
) -> Result<Json<User>, RoleError> {
    let user = roles::set_role(&state.app.users, &name, input).await?;
    state.denylist.user_changed(user.id());
    Ok(Json(user))
}

async fn token_facts(extensions: &axum::http::Extensions) -> Option<TokenFacts> {
    let authentication = extensions.get::<Authentication>()?;
    let identity = authentication.identity().await.ok()??;
    identity.user().ok()
}

fn issue(state: &JwtState, user: &User) -> Result<IssuedToken, AuthRejection> {
    state.issuer.issue(user.id(), user).map_err(|error| {
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
    let user = sign_in(&state.app.users, credentials).await?;
    Ok(token_body(&issue(&state, &user)?))
}

async fn logout(
    State(state): State<JwtState>,
    request: Request,
) -> Result<StatusCode, AuthRejection> {
    let facts = token_facts(request.extensions())
        .await
        .ok_or_else(|| AuthRejection::missing_credentials().with_bearer_challenge(REALM))?;
    state.denylist.log_out(&facts);
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
    // Every earlier token dies, this one included; the caller gets a new one.
    let token = issue(&state, &user)?;
    state
        .denylist
        .refuse_user_tokens_through(user.id(), unix_now(), Some(token.jti.clone()));
    Ok(token_body(&token))
}

async fn delete_account(
    RecentlyAuthenticated(user): RecentlyAuthenticated<User, REAUTH_MAX_AGE_SECS>,
    State(state): State<JwtState>,
) -> StatusCode {
    state.app.users.remove(user.id());
    state
        .denylist
        .refuse_user_tokens_through(user.id(), u64::MAX, None);
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(sub: &str, jti: &str, iat: u64) -> TokenFacts {
        TokenFacts {
            sub: sub.into(),
            jti: Some(jti.into()),
            iat: Some(iat),
            exp: u64::MAX,
        }
    }

    #[test]
    fn denylist_refuses_logged_out_and_superseded_tokens() {
        let list = Denylist::default();
        assert!(!list.refuses(&facts("alice", "a", 10)));
        list.log_out(&facts("alice", "a", 10));
        assert!(list.refuses(&facts("alice", "a", 10)));
        assert!(!list.refuses(&facts("alice", "b", 10)));
        list.refuse_user_tokens_through("alice", 20, Some("new".into()));
        assert!(list.refuses(&facts("alice", "c", 20)));
        assert!(!list.refuses(&facts("alice", "new", 20)));
        assert!(!list.refuses(&facts("alice", "c", 21)));
        assert!(!list.refuses(&facts("bob", "d", 1)));
    }
}
