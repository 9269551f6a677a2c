//! `PUT /users/{name}/role` `{"role": "advertiser" | "admin"}`: an admin changes a user's role.
//! This module checks the request and updates the user table; each mode then makes the user's
//! live sessions or tokens follow, so their very next request sees the new role (see
//! `modes/*.rs`).

use crate::{Role, User, Users};
use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use portcullis_core::AuthRejection;
use serde::Deserialize;

/// The body of `PUT /users/{name}/role`.
#[derive(Debug, Deserialize)]
pub struct RoleInput {
    /// The new role: `"advertiser"` or `"admin"`; anything else is refused with 422.
    pub role: Role,
}

/// Why a role change failed.
#[derive(Debug)]
pub enum RoleError {
    /// No user has this name (404).
    NotFound,
    /// The body is not `{"role": "advertiser" | "admin"}` (400, 415 or 422).
    Invalid(StatusCode, String),
    /// Authentication or the store failed (401, 403, 503).
    Auth(AuthRejection),
}

impl IntoResponse for RoleError {
    fn into_response(self) -> Response {
        let (status, error, description) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no user has this name".to_owned(),
            ),
            Self::Invalid(status, description) => (status, "invalid_request", description),
            Self::Auth(rejection) => return rejection.into_response(),
        };
        (
            status,
            Json(serde_json::json!({ "error": error, "error_description": description })),
        )
            .into_response()
    }
}

impl From<AuthRejection> for RoleError {
    fn from(rejection: AuthRejection) -> Self {
        Self::Auth(rejection)
    }
}

/// Checks the body and records the new role in `users`; the updated user.
///
/// # Errors
///
/// [`RoleError::Invalid`] for a bad body, [`RoleError::NotFound`] for an unknown user.
///
/// [`RoleError::Auth`] (503) when the shared user table does not answer.
pub async fn set_role(
    users: &Users,
    name: &str,
    input: Result<Json<RoleInput>, JsonRejection>,
) -> Result<User, RoleError> {
    let Json(RoleInput { role }) =
        input.map_err(|rejection| RoleError::Invalid(rejection.status(), rejection.body_text()))?;
    users
        .change_role(name, role)
        .await
        .map_err(AuthRejection::from)?
        .ok_or(RoleError::NotFound)
}
