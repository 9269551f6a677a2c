//! How a layer hands the caller to the request: an [`Authentication`] value in the request
//! extensions, holding identities that are either known already (a verified token) or loaded on
//! first use (a session in a store) and then cached for the rest of the request.

use std::{future::Future, pin::Pin, sync::Arc};

use http::Extensions;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::{AuthRejection, Identity, SharedClock};

/// A boxed future of an identity lookup.
pub type IdentityFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<Identity>, AuthRejection>> + Send + 'a>>;

/// Finds the caller on first use, for mechanisms that need I/O to do so.
///
/// A session layer, say, inserts a source that reads its store; the store is only touched when
/// an extractor or guard asks for the user, and at most once per request.
///
/// # Examples
///
/// ```
/// use portcullis_core::{AuthRejection, Identity, IdentityFuture, IdentitySource, Mechanism};
///
/// struct FromHeader(Option<String>);
///
/// impl IdentitySource for FromHeader {
///     fn identify(&self) -> IdentityFuture<'_> {
///         Box::pin(async move {
///             Ok(self.0.as_ref().map(|name| {
///                 Identity::from_user(&serde_json::json!({ "user": name }), Mechanism::Testing)
///                     .expect("a JSON value serializes")
///             }))
///         })
///     }
/// }
/// ```
pub trait IdentitySource: Send + Sync + 'static {
    /// Looks the caller up: `Ok(None)` means the source found no credentials (anonymous).
    fn identify(&self) -> IdentityFuture<'_>;
}

type Resolution = Result<Option<Identity>, AuthRejection>;

#[derive(Clone)]
enum Source {
    Known(Identity),
    Lazy {
        source: Arc<dyn IdentitySource>,
        resolved: Arc<OnceCell<Resolution>>,
    },
}

/// What the authentication layers learned about a request, kept in its extensions.
///
/// Layers add to it with [`Authentication::of`]; extractors read it. When several layers are
/// stacked (a bearer layer and a session layer on one router), the caller is the first identity
/// found, outermost layer first.
#[derive(Clone, Default)]
pub struct Authentication {
    sources: Vec<Source>,
    bearer_realm: Option<Arc<str>>,
    clock: Option<SharedClock>,
}

impl Authentication {
    /// The request's authentication, created empty if no layer put one there yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use portcullis_core::{Authentication, Identity, Mechanism};
    ///
    /// let mut request = http::Request::new(());
    /// let identity = Identity::from_user(&serde_json::json!({"user": "alice"}), Mechanism::Bearer).unwrap();
    /// Authentication::of(request.extensions_mut()).add_identity(identity);
    /// assert!(request.extensions().get::<Authentication>().unwrap().has_credentials());
    /// ```
    pub fn of(extensions: &mut Extensions) -> &mut Self {
        extensions.get_or_insert_default::<Self>()
    }

    /// Adds a caller that is already known, such as the subject of a verified token.
    pub fn add_identity(&mut self, identity: Identity) -> &mut Self {
        self.sources.push(Source::Known(identity));
        self
    }

    /// Adds a source that finds the caller on first use.
    pub fn add_source(&mut self, source: Arc<dyn IdentitySource>) -> &mut Self {
        self.sources.push(Source::Lazy {
            source,
            resolved: Arc::new(OnceCell::new()),
        });
        self
    }

    /// Makes rejections of this request carry a `WWW-Authenticate: Bearer realm=".."` challenge
    /// (RFC 6750 §3). Bearer-style layers call this.
    pub fn set_bearer_realm(&mut self, realm: Arc<str>) -> &mut Self {
        self.bearer_realm = Some(realm);
        self
    }

    /// The realm of the bearer challenge, if a bearer-style layer is present.
    pub fn bearer_realm(&self) -> Option<&Arc<str>> {
        self.bearer_realm.as_ref()
    }

    /// Sets the clock extractors use to judge how recent an authentication is (layers pass
    /// their own, so tests with a [`ManualClock`](crate::ManualClock) stay consistent).
    pub fn set_clock(&mut self, clock: SharedClock) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// The current time by the layers' clock, or the system clock.
    pub fn now(&self) -> std::time::SystemTime {
        self.clock
            .as_ref()
            .map_or_else(std::time::SystemTime::now, |clock| clock.now())
    }

    /// Whether any layer found credentials (without loading anything).
    pub fn has_credentials(&self) -> bool {
        !self.sources.is_empty()
    }

    /// Resolves the caller: the first identity a source finds, outermost layer first.
    ///
    /// Each lazy source runs at most once per request, however often this is called.
    ///
    /// # Errors
    ///
    /// The first error a source returns (a store outage, say), with the bearer challenge added.
    pub async fn identity(&self) -> Result<Option<&Identity>, AuthRejection> {
        for source in &self.sources {
            let found = match source {
                Source::Known(identity) => Some(identity),
                Source::Lazy { source, resolved } => resolved
                    .get_or_init(|| crate::observe::timed_identify(source.identify()))
                    .await
                    .as_ref()
                    .map_err(|rejection| self.challenge(rejection.clone()))?
                    .as_ref(),
            };
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Resolves the caller and decodes them into the application's user type.
    ///
    /// # Errors
    ///
    /// A source's error, or 401 when the stored user no longer fits `U` (a session written by
    /// an older version of the application, say: signing in again fixes it).
    pub async fn user<U: DeserializeOwned>(&self) -> Result<Option<U>, AuthRejection> {
        let Some(identity) = self.identity().await? else {
            return Ok(None);
        };
        identity.user().map(Some).map_err(|error| {
            tracing::warn!(%error, mechanism = ?identity.mechanism(), "stored user does not fit the user type");
            self.challenge(AuthRejection::invalid_credentials(
                "the credentials do not describe a valid user",
            ))
        })
    }

    /// Adds this request's bearer challenge (if any) to a rejection.
    pub fn challenge(&self, rejection: AuthRejection) -> AuthRejection {
        match (&self.bearer_realm, rejection.bearer_realm()) {
            (Some(realm), None) => rejection.with_bearer_challenge(realm.clone()),
            _ => rejection,
        }
    }
}

impl std::fmt::Debug for Authentication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authentication")
            .field("sources", &self.sources.len())
            .field("bearer_realm", &self.bearer_realm)
            .finish()
    }
}

/// The user decoded once per request and type, so a guard and an extractor do not decode twice.
#[derive(Clone)]
pub(crate) struct CachedUser<U>(pub(crate) U);

/// Resolves and decodes the caller, reusing and filling the per-request cache.
///
/// # Errors
///
/// 500 when no authentication layer ran, else as [`Authentication::user`].
pub async fn resolve_user<U>(extensions: &mut Extensions) -> Result<Option<U>, AuthRejection>
where
    U: DeserializeOwned + Clone + Send + Sync + 'static,
{
    if let Some(CachedUser(user)) = extensions.get::<CachedUser<U>>() {
        return Ok(Some(user.clone()));
    }
    let Some(authentication) = extensions.get::<Authentication>() else {
        tracing::error!(
            "an authentication extractor or guard ran on a request that no authentication \
             layer saw: add a SessionLayer, BearerLayer or HybridLayer around this route"
        );
        return Err(AuthRejection::misconfigured(
            "no authentication layer is configured for this route",
        ));
    };
    let user = authentication.user::<U>().await?;
    if let Some(user) = &user {
        extensions.insert(CachedUser(user.clone()));
    }
    Ok(user)
}

/// The rejection for a request without any credentials, with the request's challenge.
pub(crate) fn missing_credentials(extensions: &Extensions) -> AuthRejection {
    let rejection = AuthRejection::missing_credentials();
    match extensions.get::<Authentication>() {
        Some(authentication) => authentication.challenge(rejection),
        None => rejection,
    }
}

/// The rejection for a caller a policy refused, with the request's challenge.
pub(crate) fn forbidden(extensions: &Extensions) -> AuthRejection {
    let rejection = AuthRejection::forbidden("the caller is not allowed to do this");
    match extensions.get::<Authentication>() {
        Some(authentication) => authentication.challenge(rejection),
        None => rejection,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::Mechanism;

    struct Counting {
        calls: Arc<AtomicUsize>,
        answer: Resolution,
    }

    impl IdentitySource for Counting {
        fn identify(&self) -> IdentityFuture<'_> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answer.clone();
            Box::pin(async move { answer })
        }
    }

    fn alice() -> Identity {
        Identity::from_user(&serde_json::json!({"user": "alice"}), Mechanism::Session).unwrap()
    }

    #[tokio::test]
    async fn lazy_source_runs_once_per_request() {
        let calls = Arc::new(AtomicUsize::new(0));
        let mut extensions = Extensions::new();
        Authentication::of(&mut extensions).add_source(Arc::new(Counting {
            calls: calls.clone(),
            answer: Ok(Some(alice())),
        }));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "adding a source must not run it"
        );
        let authentication = extensions.get::<Authentication>().unwrap();
        for _ in 0..3 {
            let identity = authentication.identity().await.unwrap().unwrap();
            assert_eq!(identity.user_json(), r#"{"user":"alice"}"#);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn first_source_with_credentials_wins_and_later_ones_are_not_run() {
        let anonymous_calls = Arc::new(AtomicUsize::new(0));
        let later_calls = Arc::new(AtomicUsize::new(0));
        let mut extensions = Extensions::new();
        Authentication::of(&mut extensions)
            .add_source(Arc::new(Counting {
                calls: anonymous_calls.clone(),
                answer: Ok(None),
            }))
            .add_identity(alice())
            .add_source(Arc::new(Counting {
                calls: later_calls.clone(),
                answer: Err(AuthRejection::unavailable("down")),
            }));
        let authentication = extensions.get::<Authentication>().unwrap();
        assert!(authentication.identity().await.unwrap().is_some());
        assert_eq!(anonymous_calls.load(Ordering::SeqCst), 1);
        assert_eq!(later_calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn source_error_gets_the_bearer_challenge() {
        let mut extensions = Extensions::new();
        Authentication::of(&mut extensions)
            .set_bearer_realm("api".into())
            .add_source(Arc::new(Counting {
                calls: Arc::default(),
                answer: Err(AuthRejection::unavailable("store down")),
            }));
        let error = extensions
            .get::<Authentication>()
            .unwrap()
            .identity()
            .await
            .unwrap_err();
        assert_eq!(error.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(error.bearer_realm(), Some("api"));
    }

    #[tokio::test]
    async fn user_of_the_wrong_shape_is_invalid_credentials() {
        #[derive(serde::Deserialize, Clone, Debug)]
        struct Strict {
            #[allow(dead_code)]
            id: u64,
        }
        let mut extensions = Extensions::new();
        Authentication::of(&mut extensions).add_identity(alice());
        let error = resolve_user::<Strict>(&mut extensions).await.unwrap_err();
        assert_eq!(error.status(), http::StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn no_layer_is_a_misconfiguration() {
        let error = resolve_user::<serde_json::Value>(&mut Extensions::new())
            .await
            .unwrap_err();
        assert_eq!(error.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}
