//! [`EdgeFuture`]: the response future of the layers that check a credential at the edge
//! (`BearerLayer`, `HybridLayer`), with one behaviour on every path, a second poll included.

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{HeaderMap, Response};
use pin_project_lite::pin_project;
use sync_wrapper::SyncFuture;

use crate::{AuthRejection, credentials::add_no_store};

/// Work a layer left for the response once the inner service has answered: new `Set-Cookie`
/// headers after a transparent refresh, say. Runs before `Cache-Control: no-store` is added.
pub trait FinishHook: Send + Sync + 'static {
    /// Edits the response headers.
    fn finish(&self, headers: &mut HeaderMap);
}

/// What happens to the inner service's response: `Cache-Control: no-store` when the caller
/// was identified, and an optional [`FinishHook`].
///
/// # Examples
///
/// ```
/// use http::{HeaderMap, header::CACHE_CONTROL};
/// use portcullis_core::EdgeFinish;
///
/// let mut headers = HeaderMap::new();
/// EdgeFinish::identified(true).apply(&mut headers);
/// assert_eq!(headers[CACHE_CONTROL], "no-store");
///
/// let mut anonymous = HeaderMap::new();
/// EdgeFinish::identified(false).apply(&mut anonymous);
/// assert!(anonymous.is_empty());
/// ```
#[derive(Clone, Default)]
pub struct EdgeFinish {
    identified: bool,
    hook: Option<Arc<dyn FinishHook>>,
}

impl EdgeFinish {
    /// `identified`: the layer put a caller in the request, so the response is that caller's
    /// alone and must not be stored by a shared cache (OWASP Session Management Cheat Sheet,
    /// "Web Content Caching"; RFC 9111 §5.2.2.5).
    pub fn identified(identified: bool) -> Self {
        Self {
            identified,
            hook: None,
        }
    }

    /// Also runs `hook` on the response.
    #[must_use]
    pub fn with_hook(mut self, hook: Arc<dyn FinishHook>) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Applies the hook, then `Cache-Control: no-store` if the caller was identified.
    pub fn apply(self, headers: &mut HeaderMap) {
        if let Some(hook) = self.hook {
            hook.finish(headers);
        }
        if self.identified {
            add_no_store(headers);
        }
    }
}

impl fmt::Debug for EdgeFinish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EdgeFinish")
            .field("identified", &self.identified)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

/// The boxed slow path: `Sync` through [`SyncFuture`], since it is only ever polled through
/// `&mut`.
type Waiting<B, E> = SyncFuture<Pin<Box<dyn Future<Output = Result<Response<B>, E>> + Send>>>;

pin_project! {
    /// The response future of an edge layer.
    ///
    /// - the inner service's future, unboxed on the hot path (a credential decided with what
    ///   the node has at hand), finished by an [`EdgeFinish`];
    /// - a rejection, answered at once;
    /// - a boxed future for the rare path that must wait first (a key set refetching a JWKS).
    ///
    /// Polled again after it completed, it answers 500 (a misconfigured server, see
    /// [`AuthRejection::respond_once`]) on every path, rather than panicking or polling a
    /// finished future.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{convert::Infallible, future::Future, pin::pin, task::{Context, Poll, Waker}};
    /// use http::Response;
    /// use portcullis_core::{AuthRejection, EdgeFuture};
    ///
    /// let future: EdgeFuture<std::future::Ready<Result<Response<Vec<u8>>, Infallible>>, Vec<u8>, Infallible> =
    ///     EdgeFuture::rejected(AuthRejection::invalid_request("two Authorization headers"));
    /// let mut future = pin!(future);
    /// let mut cx = Context::from_waker(Waker::noop());
    /// let Poll::Ready(Ok(first)) = future.as_mut().poll(&mut cx) else { unreachable!() };
    /// assert_eq!(first.status(), 400);
    /// let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else { unreachable!() };
    /// assert_eq!(again.status(), 500);
    /// ```
    pub struct EdgeFuture<F, B, E> {
        #[pin]
        state: State<F, B, E>,
    }
}

pin_project! {
    #[project = StateProjection]
    enum State<F, B, E> {
        Inner { #[pin] future: F, finish: Option<EdgeFinish> },
        Rejected { rejection: Option<AuthRejection>, body: PhantomData<fn() -> B> },
        Waiting { #[pin] future: Waiting<B, E> },
        Done,
    }
}

impl<F, B, E> EdgeFuture<F, B, E> {
    /// The inner service's future; `finish` runs on its response.
    pub fn inner(future: F, finish: EdgeFinish) -> Self {
        Self {
            state: State::Inner {
                future,
                finish: Some(finish),
            },
        }
    }

    /// Answers `rejection` without calling the inner service.
    pub fn rejected(rejection: AuthRejection) -> Self {
        Self {
            state: State::Rejected {
                rejection: Some(rejection),
                body: PhantomData,
            },
        }
    }

    /// The slow path: `future` decides and calls the inner service itself. Boxed, since it is
    /// rare.
    pub fn waiting(future: impl Future<Output = Result<Response<B>, E>> + Send + 'static) -> Self {
        Self {
            state: State::Waiting {
                future: SyncFuture::new(Box::pin(future)),
            },
        }
    }
}

impl<F, B, E> Future for EdgeFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: From<Bytes>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        let output = match state.as_mut().project() {
            StateProjection::Inner { future, finish } => match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result.map(|mut response| {
                    if let Some(finish) = finish.take() {
                        finish.apply(response.headers_mut());
                    }
                    response
                }),
            },
            StateProjection::Rejected { rejection, .. } => {
                Ok(AuthRejection::respond_once(rejection))
            }
            StateProjection::Waiting { future } => match future.poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            },
            StateProjection::Done => Ok(AuthRejection::respond_once(&mut None)),
        };
        // The inner future is dropped now, never polled again.
        state.set(State::Done);
        Poll::Ready(output)
    }
}

impl<F, B, E> fmt::Debug for EdgeFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Inner { .. } => "Inner",
            State::Rejected { .. } => "Rejected",
            State::Waiting { .. } => "Waiting",
            State::Done => "Done",
        };
        f.debug_struct("EdgeFuture").field("state", &state).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        convert::Infallible,
        pin::pin,
        task::{Context, Poll, Waker},
    };

    use http::{HeaderValue, StatusCode, header};

    use super::*;

    type Body = http_body_util::Full<Bytes>;
    type Ready = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_twice(future: EdgeFuture<Ready, Body, Infallible>) -> (Response<Body>, Response<Body>) {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        let Poll::Ready(Ok(first)) = future.as_mut().poll(&mut cx) else {
            panic!("ready at once");
        };
        let Poll::Ready(Ok(again)) = future.as_mut().poll(&mut cx) else {
            panic!("a second poll is ready too");
        };
        (first, again)
    }

    struct Marker;
    impl FinishHook for Marker {
        fn finish(&self, headers: &mut HeaderMap) {
            headers.insert("x-finished", HeaderValue::from_static("yes"));
        }
    }

    #[test]
    fn every_path_answers_500_on_a_second_poll() {
        let ok = || std::future::ready(Ok(Response::new(Body::from("ok"))));
        let finish = EdgeFinish::identified(true).with_hook(Arc::new(Marker));
        let (first, again) = poll_twice(EdgeFuture::inner(ok(), finish));
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(first.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(first.headers()["x-finished"], "yes");
        assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);

        let (first, again) =
            poll_twice(EdgeFuture::rejected(AuthRejection::invalid_request("bad")));
        assert_eq!(first.status(), StatusCode::BAD_REQUEST);
        assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);

        // An async block panics when resumed after completion: the future never does that.
        let (first, again) = poll_twice(EdgeFuture::waiting(async {
            Ok(Response::new(Body::from("slow")))
        }));
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(again.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(again.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn anonymous_responses_keep_their_cache_control() {
        let ok = std::future::ready(Ok(Response::new(Body::from("public"))));
        let (first, _) = poll_twice(EdgeFuture::inner(ok, EdgeFinish::identified(false)));
        assert!(first.headers().get(header::CACHE_CONTROL).is_none());
    }

    #[test]
    fn is_send_and_sync() {
        fn assert_send<T: Send>() {}
        fn assert_sync<T: Sync>() {}
        assert_send::<EdgeFuture<Ready, Body, Infallible>>();
        assert_sync::<EdgeFuture<Ready, Body, Infallible>>();
        assert_send::<EdgeFinish>();
        assert_sync::<EdgeFinish>();
    }
}
