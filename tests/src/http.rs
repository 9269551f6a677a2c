//! Small helpers for black-box tests over real TCP on 127.0.0.1: serve a router on a free port,
//! and a client that keeps cookies the way a browser would (by name, dropping those a response
//! expires) and optionally sends a bearer token.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use reqwest::{Method, RequestBuilder, Response, header};

/// Serves `app` on a free loopback port until the test's runtime ends.
///
/// # Panics
///
/// When no loopback port can be bound.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A client for one origin, with its own cookie jar and bearer token.
#[derive(Debug, Clone)]
pub struct TestClient {
    base: String,
    http: reqwest::Client,
    cookies: Arc<Mutex<BTreeMap<String, String>>>,
    bearer: Arc<Mutex<Option<String>>>,
}

impl TestClient {
    /// A client for `http://addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            http: reqwest::Client::new(),
            cookies: Arc::default(),
            bearer: Arc::default(),
        }
    }

    /// A second client holding a copy of this one's cookies and token, as a thief who copied
    /// them would: later changes to either jar do not reach the other.
    pub fn snapshot(&self) -> Self {
        let cookies = self
            .cookies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let bearer = self
            .bearer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Self {
            base: self.base.clone(),
            http: self.http.clone(),
            cookies: Arc::new(Mutex::new(cookies)),
            bearer: Arc::new(Mutex::new(bearer)),
        }
    }

    /// The same client (cookies, token) pointed at another server, as one browser talking to
    /// two instances behind a load balancer.
    pub fn with_base(mut self, addr: SocketAddr) -> Self {
        self.base = format!("http://{addr}");
        self
    }

    /// Sends `Authorization: Bearer <token>` from now on (`None` stops).
    pub fn set_bearer(&self, token: Option<String>) {
        *self.bearer.lock().unwrap_or_else(PoisonError::into_inner) = token;
    }

    /// The current value of a cookie in the jar.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// A request to `path` carrying the jar's cookies and the bearer token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        let cookies = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        if !cookies.is_empty() {
            let header = cookies
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ");
            request = request.header(header::COOKIE, header);
        }
        if let Some(token) = &*self.bearer.lock().unwrap_or_else(PoisonError::into_inner) {
            request = request.bearer_auth(token);
        }
        request
    }

    /// Sends a request and takes the response's cookies into the jar.
    ///
    /// # Panics
    ///
    /// When the server cannot be reached.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        let response = request.send().await.expect("the test server answers");
        let mut cookies = self.cookies.lock().unwrap_or_else(PoisonError::into_inner);
        for set_cookie in response.headers().get_all(header::SET_COOKIE) {
            let Ok(set_cookie) = set_cookie.to_str() else {
                continue;
            };
            let mut attributes = set_cookie.split(';').map(str::trim);
            let Some((name, value)) = attributes.next().and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            let expired = attributes.any(|a| a.eq_ignore_ascii_case("max-age=0"));
            if expired || value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        response
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Response {
        self.send(self.request(Method::GET, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Response {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// `method path` with a JSON body.
    pub async fn json(&self, method: Method, path: &str, body: &serde_json::Value) -> Response {
        self.send(self.request(method, path).json(body)).await
    }
}
