//! The axum extractors handlers use, whatever mechanism authenticated the request:
//! [`CurrentUser<U>`], `Option<CurrentUser<U>>` and [`Authorized<U, P>`].

use std::{fmt, marker::PhantomData, ops::Deref};

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::{
    AuthRejection, Policy,
    authentication::{forbidden, missing_credentials, resolve_user},
};

/// The authenticated caller as the application's own user type; 401 when there is none.
///
/// `Option<CurrentUser<U>>` admits anonymous callers: no credentials give `None`, while broken
/// credentials or an unreachable store are still refused.
///
/// # Examples
///
/// ```
/// use axum::{Router, routing::get};
/// use portcullis_core::CurrentUser;
///
/// #[derive(Clone, serde::Deserialize)]
/// struct User { user: String, role: String }
///
/// async fn me(CurrentUser(user): CurrentUser<User>) -> String {
///     format!("hello {}", user.user)
/// }
///
/// async fn home(user: Option<CurrentUser<User>>) -> String {
///     match user {
///         Some(CurrentUser(user)) => format!("signed in as {}", user.user),
///         None => "welcome, stranger".into(),
///     }
/// }
///
/// let app: Router = Router::new().route("/me", get(me)).route("/", get(home));
/// ```
#[derive(Clone)]
pub struct CurrentUser<U>(pub U);

impl<U> Deref for CurrentUser<U> {
    type Target = U;

    fn deref(&self) -> &U {
        &self.0
    }
}

impl<U: fmt::Debug> fmt::Debug for CurrentUser<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CurrentUser").field(&self.0).finish()
    }
}

impl<U, S> FromRequestParts<S> for CurrentUser<U>
where
    U: DeserializeOwned + Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match resolve_user::<U>(&mut parts.extensions).await? {
            Some(user) => Ok(Self(user)),
            None => Err(missing_credentials(&parts.extensions)),
        }
    }
}

impl<U, S> OptionalFromRequestParts<S> for CurrentUser<U>
where
    U: DeserializeOwned + Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(resolve_user::<U>(&mut parts.extensions).await?.map(Self))
    }
}

/// The caller, admitted by policy `P`: 401 when anonymous, 403 when `P` refuses them.
///
/// # Examples
///
/// ```
/// use portcullis_core::{Authorized, Policy};
///
/// #[derive(Clone, serde::Deserialize)]
/// struct User { user: String, role: String }
///
/// #[derive(Default)]
/// struct IsAdmin;
/// impl Policy<User> for IsAdmin {
///     fn allows(&self, user: &User) -> bool { user.role == "admin" }
/// }
///
/// async fn admin_panel(admin: Authorized<User, IsAdmin>) -> String {
///     format!("welcome, {}", admin.user)
/// }
/// ```
pub struct Authorized<U, P> {
    user: U,
    policy: PhantomData<fn() -> P>,
}

impl<U, P> Authorized<U, P> {
    /// The admitted user.
    pub fn into_inner(self) -> U {
        self.user
    }
}

impl<U, P> Deref for Authorized<U, P> {
    type Target = U;

    fn deref(&self) -> &U {
        &self.user
    }
}

impl<U: Clone, P> Clone for Authorized<U, P> {
    fn clone(&self) -> Self {
        Self {
            user: self.user.clone(),
            policy: PhantomData,
        }
    }
}

impl<U: fmt::Debug, P> fmt::Debug for Authorized<U, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorized")
            .field("user", &self.user)
            .field("policy", &std::any::type_name::<P>())
            .finish()
    }
}

impl<U, P, S> FromRequestParts<S> for Authorized<U, P>
where
    U: DeserializeOwned + Clone + Send + Sync + 'static,
    P: Policy<U> + Default,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(user) = resolve_user::<U>(&mut parts.extensions).await? else {
            return Err(missing_credentials(&parts.extensions));
        };
        if !P::default().allows(&user) {
            return Err(forbidden(&parts.extensions));
        }
        Ok(Self {
            user,
            policy: PhantomData,
        })
    }
}
