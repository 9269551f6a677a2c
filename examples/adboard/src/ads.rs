//! The business logic: ads that advertisers own and admins moderate. Nothing here knows how
//! the caller was authenticated; the handlers ask for `CurrentUser<User>` and the user's
//! capabilities, and are the same functions in every mode.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
};

use axum::{
    Json, Router,
    extract::{FromRef, Path, State, rejection::JsonRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use portcullis_core::CurrentUser;
use serde::{Deserialize, Serialize};

use crate::User;

/// An ad on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ad {
    /// Its id, assigned by the board.
    pub id: u64,
    /// Its title.
    pub title: String,
    /// The advertiser who owns it.
    pub owner: String,
}

/// The capability the ad handlers ask about, kept next to the user's others.
pub trait CanEdit {
    /// Whether this user may see, change and delete `ad`: its owner or an admin.
    fn can_edit(&self, ad: &Ad) -> bool;
}

impl CanEdit for User {
    fn can_edit(&self, ad: &Ad) -> bool {
        self.is_admin() || (self.is_advertiser() && ad.owner == self.user)
    }
}

/// The ads, in memory.
#[derive(Debug, Clone, Default)]
pub struct AdBoard {
    inner: Arc<RwLock<Board>>,
}

#[derive(Debug, Default)]
struct Board {
    next_id: u64,
    ads: BTreeMap<u64, Ad>,
}

impl AdBoard {
    fn read(&self) -> RwLockReadGuard<'_, Board> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Board> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The body of `POST /ads` and `PUT /ads/{id}`.
#[derive(Debug, Deserialize)]
pub struct AdInput {
    /// The ad's title: 1 to 200 characters.
    pub title: String,
}

/// Why an ad request failed.
#[derive(Debug)]
pub enum AdError {
    /// No ad has this id (404).
    NotFound,
    /// The caller may not touch this ad (403).
    Forbidden,
    /// The body is not a valid ad (400 or 422).
    Invalid(StatusCode, String),
}

impl IntoResponse for AdError {
    fn into_response(self) -> Response {
        let (status, error, description) = match self {
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "no ad has this id".to_owned(),
            ),
            Self::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "only the ad's owner or an admin may do this".to_owned(),
            ),
            Self::Invalid(status, description) => (status, "invalid_request", description),
        };
        (
            status,
            Json(serde_json::json!({ "error": error, "error_description": description })),
        )
            .into_response()
    }
}

impl From<JsonRejection> for AdError {
    fn from(rejection: JsonRejection) -> Self {
        Self::Invalid(rejection.status(), rejection.body_text())
    }
}

const MAX_TITLE_CHARS: usize = 200;

fn valid_title(input: Result<Json<AdInput>, JsonRejection>) -> Result<String, AdError> {
    let Json(AdInput { title }) = input?;
    let title = title.trim();
    if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
        return Err(AdError::Invalid(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("title must have 1 to {MAX_TITLE_CHARS} characters"),
        ));
    }
    Ok(title.to_owned())
}

/// `GET /ads`: an advertiser's own ads, or every ad for an admin.
pub async fn list_ads(
    CurrentUser(user): CurrentUser<User>,
    State(board): State<AdBoard>,
) -> Json<Vec<Ad>> {
    Json(
        board
            .read()
            .ads
            .values()
            .filter(|ad| user.can_edit(ad))
            .cloned()
            .collect(),
    )
}

/// `POST /ads`: a new ad owned by the caller (advertisers only).
pub async fn create_ad(
    CurrentUser(user): CurrentUser<User>,
    State(board): State<AdBoard>,
    input: Result<Json<AdInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Ad>), AdError> {
    if !user.is_advertiser() && !user.is_admin() {
        return Err(AdError::Forbidden);
    }
    let title = valid_title(input)?;
    let mut board = board.write();
    board.next_id += 1;
    let ad = Ad {
        id: board.next_id,
        title,
        owner: user.user,
    };
    board.ads.insert(ad.id, ad.clone());
    Ok((StatusCode::CREATED, Json(ad)))
}

/// `GET /ads/{id}`: one ad, for its owner or an admin.
pub async fn get_ad(
    CurrentUser(user): CurrentUser<User>,
    State(board): State<AdBoard>,
    Path(id): Path<u64>,
) -> Result<Json<Ad>, AdError> {
    let board = board.read();
    let ad = board.ads.get(&id).ok_or(AdError::NotFound)?;
    if !user.can_edit(ad) {
        return Err(AdError::Forbidden);
    }
    Ok(Json(ad.clone()))
}

/// `PUT /ads/{id}`: a new title, for the owner or an admin.
pub async fn update_ad(
    CurrentUser(user): CurrentUser<User>,
    State(board): State<AdBoard>,
    Path(id): Path<u64>,
    input: Result<Json<AdInput>, JsonRejection>,
) -> Result<Json<Ad>, AdError> {
    let mut board = board.write();
    let ad = board.ads.get_mut(&id).ok_or(AdError::NotFound)?;
    if !user.can_edit(ad) {
        return Err(AdError::Forbidden);
    }
    ad.title = valid_title(input)?;
    Ok(Json(ad.clone()))
}

/// `DELETE /ads/{id}`: removes the ad, for the owner or an admin.
pub async fn delete_ad(
    CurrentUser(user): CurrentUser<User>,
    State(board): State<AdBoard>,
    Path(id): Path<u64>,
) -> Result<StatusCode, AdError> {
    let mut board = board.write();
    let ad = board.ads.get(&id).ok_or(AdError::NotFound)?;
    if !user.can_edit(ad) {
        return Err(AdError::Forbidden);
    }
    board.ads.remove(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// The ad routes, identical in every mode.
pub fn routes<S>() -> Router<S>
where
    AdBoard: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/ads", get(list_ads).post(create_ad))
        .route("/ads/{id}", get(get_ad).put(update_ad).delete(delete_ad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn user(name: &str, role: Role) -> User {
        User {
            user: name.into(),
            role,
        }
    }

    #[test]
    fn can_edit_table() {
        let ad = Ad {
            id: 1,
            title: "t".into(),
            owner: "alice".into(),
        };
        assert!(user("alice", Role::Advertiser).can_edit(&ad));
        assert!(!user("bob", Role::Advertiser).can_edit(&ad));
        assert!(user("admin", Role::Admin).can_edit(&ad));
    }
}
