//! Replacing how rejections look: [`MapRejectionLayer`] turns any [`AuthRejection`] response
//! into the application's own (an HTML app redirects anonymous visitors to its login page), and
//! [`login_redirect`] / [`safe_next`] build and check the `next` parameter without opening a
//! redirect to other sites.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, Response, Uri};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::AuthRejection;

/// Replaces every rejection response of the wrapped service with `render(&rejection, &uri)`.
///
/// Put it outside the authentication layers and guards: it sees the rejections they and the
/// extractors produce.
///
/// # Examples
///
/// ```
/// use axum::{Router, response::{IntoResponse, Redirect, Response}, routing::get};
/// use portcullis_core::{AuthRejection, MapRejectionLayer, RejectionKind, login_redirect};
///
/// fn render(rejection: &AuthRejection, uri: &http::Uri) -> Response {
///     match rejection.kind() {
///         RejectionKind::MissingCredentials => Redirect::to(&login_redirect("/login", uri)).into_response(),
///         _ => rejection.clone().into_response(),
///     }
/// }
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "home" }))
///     .layer(MapRejectionLayer::new(render));
/// ```
#[derive(Clone)]
pub struct MapRejectionLayer<F> {
    render: F,
}

impl<F> MapRejectionLayer<F> {
    /// A layer rendering rejections with `render`.
    pub fn new(render: F) -> Self {
        Self { render }
    }
}

impl<F> fmt::Debug for MapRejectionLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRejectionLayer").finish_non_exhaustive()
    }
}

impl<S, F: Clone> Layer<S> for MapRejectionLayer<F> {
    type Service = MapRejection<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        MapRejection {
            inner,
            render: self.render.clone(),
        }
    }
}

/// The service of [`MapRejectionLayer`].
#[derive(Clone)]
pub struct MapRejection<S, F> {
    inner: S,
    render: F,
}

impl<S, F> MapRejection<S, F> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug, F> fmt::Debug for MapRejection<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MapRejection")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for MapRejection<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: Fn(&AuthRejection, &Uri) -> Response<ResBody> + Clone,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = MapRejectionFuture<S::Future, F>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        MapRejectionFuture {
            uri: request.uri().clone(),
            render: self.render.clone(),
            inner: self.inner.call(request),
        }
    }
}

pin_project! {
    /// The response future of [`MapRejection`].
    pub struct MapRejectionFuture<Fut, F> {
        #[pin]
        inner: Fut,
        uri: Uri,
        render: F,
    }
}

impl<Fut, F, ResBody, E> Future for MapRejectionFuture<Fut, F>
where
    Fut: Future<Output = Result<Response<ResBody>, E>>,
    F: Fn(&AuthRejection, &Uri) -> Response<ResBody>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(match response.extensions().get::<AuthRejection>() {
            Some(rejection) => (this.render)(rejection, this.uri),
            None => response,
        }))
    }
}

/// The login URL that brings the visitor back to `uri` afterwards: `login_path?next=<path>`.
///
/// # Examples
///
/// ```
/// let uri: http::Uri = "/ads/7?tab=stats".parse().unwrap();
/// assert_eq!(portcullis_core::login_redirect("/login", &uri), "/login?next=%2Fads%2F7%3Ftab%3Dstats");
/// ```
pub fn login_redirect(login_path: &str, uri: &Uri) -> String {
    let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut url = String::with_capacity(login_path.len() + 6 + target.len() * 3);
    url.push_str(login_path);
    url.push_str("?next=");
    for byte in target.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            url.push(char::from(byte));
        } else {
            url.push_str(&format!("%{byte:02X}"));
        }
    }
    url
}

/// `next` if it is a path on this site, else `None`: the guard against open redirects
/// (OWASP Unvalidated Redirects and Forwards Cheat Sheet).
///
/// Accepts only an absolute path: it must start with a single `/`, and may contain no `\`
/// (browsers read `/\evil.com` as `//evil.com`), no control characters and no scheme.
///
/// # Examples
///
/// ```
/// use portcullis_core::safe_next;
/// assert_eq!(safe_next("/ads/7?tab=stats"), Some("/ads/7?tab=stats"));
/// assert_eq!(safe_next("//evil.example/"), None);
/// assert_eq!(safe_next("https://evil.example/"), None);
/// ```
pub fn safe_next(next: &str) -> Option<&str> {
    let bytes = next.as_bytes();
    let is_path = bytes.first() == Some(&b'/') && bytes.get(1) != Some(&b'/');
    let clean = !next.chars().any(|c| c == '\\' || c.is_control());
    (is_path && clean && next.len() <= 2048).then_some(next)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::body::Body;
    use http::StatusCode;
    use tower::{ServiceBuilder, ServiceExt};

    use super::*;

    #[test]
    fn safe_next_table() {
        let cases = [
            ("/", true),
            ("/ads/7?tab=stats#x", true),
            ("", false),
            ("ads", false),
            ("//evil.example", false),
            ("/\\evil.example", false),
            ("\\\\evil.example", false),
            ("https://evil.example", false),
            ("javascript:alert(1)", false),
            ("/\t/evil.example", false),
            ("/ok\r\nSet-Cookie: x=1", false),
        ];
        for (next, ok) in cases {
            assert_eq!(safe_next(next).is_some(), ok, "{next:?}");
        }
        assert!(safe_next(&format!("/{}", "a".repeat(5000))).is_none());
    }

    #[test]
    fn redirect_round_trips_through_safe_next() {
        let uri: Uri = "/a b/ü?x=1&y=//z"
            .parse()
            .unwrap_or_else(|_| "/a%20b?x=1&y=//z".parse().unwrap());
        let url = login_redirect("/login", &uri);
        assert!(url.starts_with("/login?next=%2F"));
        assert!(!url[12..].contains('/'), "{url}");
    }

    #[tokio::test]
    async fn rejections_are_re_rendered_and_other_responses_pass() {
        let render = |rejection: &AuthRejection, uri: &Uri| {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::SEE_OTHER;
            let location = login_redirect("/login", uri) + "&why=" + rejection.error_code();
            response
                .headers_mut()
                .insert(http::header::LOCATION, location.parse().unwrap());
            response
        };
        let service = ServiceBuilder::new()
            .layer(MapRejectionLayer::new(render))
            .service_fn(|request: Request<Body>| async move {
                Ok::<_, Infallible>(if request.uri().path() == "/private" {
                    AuthRejection::missing_credentials().to_response()
                } else {
                    Response::new(Body::from("public"))
                })
            });
        let request = Request::get("/private").body(Body::empty()).unwrap();
        let response = service.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()["location"],
            "/login?next=%2Fprivate&why=unauthorized"
        );
        let request = Request::get("/public").body(Body::empty()).unwrap();
        assert_eq!(
            service.oneshot(request).await.unwrap().status(),
            StatusCode::OK
        );
    }
}
