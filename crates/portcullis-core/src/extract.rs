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

/// The caller, admitted only if they proved who they are within the last `MAX_AGE_SECS`
/// seconds: guard sensitive actions (deleting an account, changing a password) with it.
///
/// Anonymous callers get 401 `unauthorized`; callers who authenticated too long ago, whose
/// authentication time is in the future, or whose mechanism does not know when they
/// authenticated, get 401 `insufficient_user_authentication` (RFC 9470
/// §3), and the application asks for their password again.
///
/// # Examples
///
/// ```
/// use portcullis_core::RecentlyAuthenticated;
///
/// #[derive(Clone, serde::Deserialize)]
/// struct User { user: String }
///
/// // Five minutes.
/// async fn delete_account(user: RecentlyAuthenticated<User, 300>) -> String {
///     format!("goodbye {}", user.user)
/// }
/// ```
pub struct RecentlyAuthenticated<U, const MAX_AGE_SECS: u64>(pub U);

impl<U, const MAX_AGE_SECS: u64> Deref for RecentlyAuthenticated<U, MAX_AGE_SECS> {
    type Target = U;

    fn deref(&self) -> &U {
        &self.0
    }
}

impl<U: fmt::Debug, const MAX_AGE_SECS: u64> fmt::Debug for RecentlyAuthenticated<U, MAX_AGE_SECS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RecentlyAuthenticated")
            .field(&self.0)
            .finish()
    }
}

impl<U, S, const MAX_AGE_SECS: u64> FromRequestParts<S> for RecentlyAuthenticated<U, MAX_AGE_SECS>
where
    U: DeserializeOwned + Clone + Send + Sync + 'static,
    S: Send + Sync,
{
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(user) = resolve_user::<U>(&mut parts.extensions).await? else {
            return Err(missing_credentials(&parts.extensions));
        };
        let Some(authentication) = parts.extensions.get::<crate::Authentication>() else {
            return Err(missing_credentials(&parts.extensions));
        };
        let authenticated_at = authentication
            .identity()
            .await?
            .and_then(crate::Identity::authenticated_at);
        // An authentication time in the future is not recent: it would otherwise stay
        // "recent" until that time comes (a forged or skewed `auth_time`). Verifiers refuse
        // `auth_time` beyond their leeway; what is left within it counts as stale here.
        let fresh = authenticated_at.is_some_and(|at| {
            authentication
                .now()
                .duration_since(at)
                .is_ok_and(|age| age.as_secs() <= MAX_AGE_SECS)
        });
        if !fresh {
            return Err(
                authentication.challenge(AuthRejection::stale_authentication(
                    "confirm your password to continue",
                )),
            );
        }
        Ok(Self(user))
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use http::{Request, StatusCode, header};
    use tower::ServiceExt;

    use super::*;
    use crate::{Authentication, testing::AuthenticateAsLayer};

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct User {
        user: String,
        role: String,
    }

    #[derive(Default)]
    struct IsAdmin;
    impl Policy<User> for IsAdmin {
        fn allows(&self, user: &User) -> bool {
            user.role == "admin"
        }
    }

    fn user(role: &str) -> User {
        User {
            user: "u".into(),
            role: role.into(),
        }
    }

    fn routes() -> Router {
        Router::new()
            .route(
                "/me",
                get(|CurrentUser(u): CurrentUser<User>| async move { u.role }),
            )
            .route(
                "/maybe",
                get(|u: Option<CurrentUser<User>>| async move {
                    u.map_or_else(|| "anonymous".to_owned(), |CurrentUser(u)| u.role)
                }),
            )
            .route(
                "/admin",
                get(|admin: Authorized<User, IsAdmin>| async move { admin.into_inner().role }),
            )
    }

    async fn call(app: Router, path: &str) -> (StatusCode, String, Option<String>) {
        let response = app
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), challenge)
    }

    #[tokio::test]
    async fn extractors_table() {
        let admin = || AuthenticateAsLayer::new(&user("admin"));
        let advertiser = || AuthenticateAsLayer::new(&user("advertiser"));
        let anonymous = AuthenticateAsLayer::anonymous;
        let cases: Vec<(AuthenticateAsLayer, &str, StatusCode, &str)> = vec![
            (admin(), "/me", StatusCode::OK, "admin"),
            (advertiser(), "/me", StatusCode::OK, "advertiser"),
            (anonymous(), "/me", StatusCode::UNAUTHORIZED, "unauthorized"),
            (advertiser(), "/maybe", StatusCode::OK, "advertiser"),
            (anonymous(), "/maybe", StatusCode::OK, "anonymous"),
            (admin(), "/admin", StatusCode::OK, "admin"),
            (advertiser(), "/admin", StatusCode::FORBIDDEN, "forbidden"),
            (
                anonymous(),
                "/admin",
                StatusCode::UNAUTHORIZED,
                "unauthorized",
            ),
        ];
        for (layer, path, status, body) in cases {
            let (got, text, _) = call(routes().layer(layer), path).await;
            assert_eq!(got, status, "{path}");
            assert!(text.contains(body), "{path}: {text}");
        }
    }

    #[tokio::test]
    async fn bearer_realm_shapes_the_challenges() {
        let with_realm = |layer: AuthenticateAsLayer| {
            routes().layer(layer).layer(axum::middleware::map_request(
                |mut request: Request<Body>| async move {
                    Authentication::of(request.extensions_mut()).set_bearer_realm("api".into());
                    request
                },
            ))
        };
        let (status, _, challenge) =
            call(with_realm(AuthenticateAsLayer::anonymous()), "/me").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.as_deref(), Some(r#"Bearer realm="api""#));
        let (status, body, challenge) = call(
            with_realm(AuthenticateAsLayer::new(&user("advertiser"))),
            "/admin",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("insufficient_scope"));
        assert!(challenge.unwrap().contains(r#"error="insufficient_scope""#));
    }

    #[tokio::test]
    async fn recent_authentication_is_judged_by_the_layer_clock() {
        use std::time::{Duration, UNIX_EPOCH};

        use crate::{Identity, ManualClock, Mechanism};

        let clock = ManualClock::at_unix_seconds(10_000);
        let app = |authenticated_at: Option<u64>| {
            let clock = clock.clone();
            Router::new()
                .route(
                    "/danger",
                    get(|u: RecentlyAuthenticated<User, 300>| async move { u.0.role }),
                )
                .layer(axum::middleware::map_request(
                    move |mut request: Request<Body>| {
                        let clock = clock.clone();
                        async move {
                            let mut identity =
                                Identity::from_user(&user("admin"), Mechanism::Session).unwrap();
                            if let Some(at) = authenticated_at {
                                identity = identity
                                    .with_authenticated_at(UNIX_EPOCH + Duration::from_secs(at));
                            }
                            Authentication::of(request.extensions_mut())
                                .set_clock(std::sync::Arc::new(clock))
                                .add_identity(identity);
                            request
                        }
                    },
                ))
        };
        assert_eq!(call(app(Some(9_800)), "/danger").await.0, StatusCode::OK);
        assert_eq!(call(app(Some(9_700)), "/danger").await.0, StatusCode::OK);
        let (status, body, _) = call(app(Some(9_699)), "/danger").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("insufficient_user_authentication"));
        assert_eq!(call(app(None), "/danger").await.0, StatusCode::UNAUTHORIZED);
        // Authenticated "in the future" is not recent: it would otherwise stay recent until
        // then (issue 18, item 7).
        for future in [10_001, 10_050, 1 << 40] {
            let (status, body, _) = call(app(Some(future)), "/danger").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{future}");
            assert!(body.contains("insufficient_user_authentication"));
        }
        assert_eq!(call(app(Some(10_000)), "/danger").await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn extractor_without_layer_is_a_loud_misconfiguration() {
        let (status, body, _) = call(routes(), "/me").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("no authentication layer"));
    }
}
