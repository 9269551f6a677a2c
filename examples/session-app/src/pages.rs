//! The server-rendered side of the app: HTML pages that need a signed-in user send anonymous
//! visitors to the login page with a `next` parameter, and the login form brings them back
//! there. The JSON routes (`/me`, `/admin`, `/sessions` ...) keep their 401 and 403 answers.
//!
//! `next` is attacker-controlled (a link can carry any value), so it is only ever used when it
//! is a path on this site: no scheme, no `//host` or `/\host`, no control characters, ASCII only
//! (OWASP Unvalidated Redirects and Forwards Cheat Sheet, "Preventing Unvalidated Redirects and
//! Forwards"). Anything else falls back to `/`.

use axum::{
    Router,
    extract::{Query, rejection::QueryRejection},
    http::{StatusCode, Uri},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use portcullis_core::{
    AuthRejection, CurrentUser, MapRejectionLayer, RejectionKind, login_redirect, safe_next,
};
use portcullis_session::Session;
use serde::Deserialize;

use crate::{AppState, User, error, no_store, page};

/// Where the login page lives.
pub(crate) const LOGIN_PATH: &str = "/login";

/// The pages that need a signed-in user: `GET /account`. Anonymous visitors (or expired
/// sessions) are redirected to `/login?next=...`; a store outage stays a 503 with
/// `Retry-After`.
pub(crate) fn protected() -> Router<AppState> {
    Router::new()
        .route("/account", get(account))
        .route_layer(MapRejectionLayer::new(redirect_to_login))
}

/// Renders a rejection of a protected page: a 303 to the login page when the visitor must sign
/// in, the rejection itself otherwise (403, 503 with `Retry-After` ...).
fn redirect_to_login(rejection: &AuthRejection, uri: &Uri) -> Response {
    match rejection.kind() {
        RejectionKind::MissingCredentials
        | RejectionKind::InvalidCredentials
        | RejectionKind::StaleAuthentication => {
            // login_redirect percent-encodes the path: the Location is always a valid header.
            no_store(Redirect::to(&login_redirect(LOGIN_PATH, uri)))
        }
        _ => rejection.to_response(),
    }
}

/// `next` when it is safe to redirect to, else `/`.
pub(crate) fn return_to(next: Option<&str>) -> &str {
    next.and_then(safe_next)
        // Only visible ASCII: anything else is not a valid `Location` header value as is.
        .filter(|path| path.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("/")
}

/// The query of `GET /login`.
#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

/// `GET /login?next=/path`: the login form (carrying a safe `next` only), or straight to `next`
/// for a visitor who is already signed in.
pub(crate) async fn login_page(
    user: Option<CurrentUser<User>>,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the query string is malformed",
        );
    };
    let next = return_to(query.next.as_deref());
    if user.is_some() {
        return no_store(Redirect::to(next));
    }
    no_store(Html(page::login(None, Some(next))))
}

/// `GET /account`: the signed-in page (who, logout, sessions).
async fn account(
    CurrentUser(user): CurrentUser<User>,
    session: Session,
) -> Result<Response, AuthRejection> {
    let sessions = session.sessions().await.map_err(AuthRejection::from)?;
    Ok(no_store(Html(page::home(&user, &sessions))).into_response())
}

#[cfg(test)]
mod tests {
    use super::return_to;

    #[test]
    fn only_local_paths_are_returned_to() {
        let cases = [
            (None, "/"),
            (Some("/account"), "/account"),
            (
                Some("/account?tab=sessions#top"),
                "/account?tab=sessions#top",
            ),
            (Some("/%2F%2Fevil.example"), "/%2F%2Fevil.example"),
            (Some(""), "/"),
            (Some("account"), "/"),
            (Some("//evil.example"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("\\/evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("javascript:alert(1)"), "/"),
            (Some("/\t/evil.example"), "/"),
            (Some("/ok\r\nSet-Cookie: a=b"), "/"),
            (Some("/caf\u{e9}"), "/"),
            (Some("/a b"), "/"),
        ];
        for (next, expected) in cases {
            assert_eq!(return_to(next), expected, "{next:?}");
        }
    }
}
