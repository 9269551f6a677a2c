//! The layers on a bare hyper service, no axum: `SessionLayer` authenticates, a
//! `RequireLayer` guards `/admin`, and the handler reads the caller from the request's
//! [`Authentication`] extension and the [`Session`] handle, which is all the axum extractors do.
//!
//! Routes: `POST /login` (JSON or form credentials), `POST /logout`, `GET /me`, `GET /admin`, and
//! `GET /healthz`, `GET /readyz` for orchestrators.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc};

use bytes::Bytes;
use demo_users::{Credentials, DemoUsers, IsAdmin, User};
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{rt::TokioIo, server::graceful::GracefulShutdown, service::TowerToHyperService};
use portcullis_core::{
    AuthRejection, Authentication, ClientAddress, ReadinessChecks, RequireLayer,
};
use portcullis_session::{ConfigError, MemoryStore, Session, SessionConfig, SessionLayer};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, service_fn, util::BoxCloneSyncService};

/// The response body: hyper's plain `Full<Bytes>`; the layers render rejections into it.
pub type Body = Full<Bytes>;

/// A service made only of tower layers and a function.
pub type AppService = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

/// The whole service.
///
/// # Errors
///
/// When the session settings are inconsistent.
pub fn service(users: DemoUsers) -> Result<AppService, ConfigError> {
    let users = Arc::new(users);
    let store = MemoryStore::new();
    let readiness = ReadinessChecks::new().check("session store", store.clone());
    let sessions = SessionLayer::new(store, SessionConfig::default())?;
    let admin_guard = RequireLayer::<User>::new(IsAdmin);
    let admin = ServiceBuilder::new()
        .layer(admin_guard)
        .service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(json(StatusCode::OK, &serde_json::json!({"admin": true})))
        });
    let service = ServiceBuilder::new().layer(sessions).service(service_fn(
        move |request: Request<Incoming>| {
            let users = users.clone();
            let admin = admin.clone();
            let readiness = readiness.clone();
            async move {
                Ok::<_, Infallible>(match (request.method(), request.uri().path()) {
                    (&Method::POST, "/login") => login(&users, request).await,
                    (&Method::POST, "/logout") => logout(&request).await,
                    (&Method::GET, "/me") => me(&request).await,
                    (&Method::GET, "/admin") => tower::ServiceExt::oneshot(admin, request).await?,
                    (&Method::GET, "/healthz") => {
                        json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
                    }
                    (&Method::GET, "/readyz") => readiness.run().await.to_response(),
                    _ => json(
                        StatusCode::NOT_FOUND,
                        &serde_json::json!({"error": "not_found"}),
                    ),
                })
            }
        },
    ));
    Ok(BoxCloneSyncService::new(service))
}

fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn session(request: &Request<Incoming>) -> Result<Session, AuthRejection> {
    Session::from_extensions(request.extensions())
        .ok_or_else(|| AuthRejection::misconfigured("the session layer is missing"))
}

async fn login(users: &DemoUsers, request: Request<Incoming>) -> Response<Body> {
    let result = async {
        let session = session(&request)?;
        // The library's reader: login CSRF refused, JSON or form, bounded, 400 with the reason.
        let credentials = Credentials::read(request).await?;
        // Inside the login guard: 429 while locked out, 503 when too many checks run.
        let user = users.login(credentials).await?;
        session.login(user.id(), &user).await?;
        Ok::<_, AuthRejection>(user)
    }
    .await;
    match result {
        Ok(user) => json(StatusCode::OK, &serde_json::json!(user)),
        Err(rejection) => rejection.to_response(),
    }
}

async fn logout(request: &Request<Incoming>) -> Response<Body> {
    let result = async { Ok::<_, AuthRejection>(session(request)?.logout().await?) }.await;
    match result {
        Ok(()) => json(StatusCode::OK, &serde_json::json!({"signed_out": true})),
        Err(rejection) => rejection.to_response(),
    }
}

/// What `CurrentUser<User>` does, by hand: resolve the caller, 401 when there is none.
async fn me(request: &Request<Incoming>) -> Response<Body> {
    let Some(authentication) = request.extensions().get::<Authentication>() else {
        return AuthRejection::misconfigured("no authentication layer").to_response();
    };
    match authentication.user::<User>().await {
        Ok(Some(user)) => json(StatusCode::OK, &serde_json::json!(user)),
        Ok(None) => authentication
            .challenge(AuthRejection::missing_credentials())
            .to_response(),
        Err(rejection) => rejection.to_response(),
    }
}

/// Serves `service` on `listener`, one task per connection, until the process ends.
///
/// # Errors
///
/// When accepting a connection fails.
pub async fn serve(listener: TcpListener, service: AppService) -> std::io::Result<()> {
    serve_until(listener, service, std::future::pending()).await
}

/// Serves `service` on `listener` until `shutdown` completes, then stops accepting, lets the
/// connections finish the requests in flight (closing idle keep-alive ones), and returns.
///
/// # Errors
///
/// When accepting a connection fails.
pub async fn serve_until(
    listener: TcpListener,
    service: AppService,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        // Every request of the connection carries its address, for the login guard.
        let client = ClientAddress(Some(peer.ip()));
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            service.clone(),
            move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(client);
                request
            },
        ));
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The listen address: `--addr ADDR` (see [`demo_users::listen_addr`]), else
/// `PORTCULLIS_ADDR`, else 127.0.0.1:3000.
///
/// # Errors
///
/// On an unknown argument or an address that does not parse.
pub fn addr() -> Result<SocketAddr, String> {
    demo_users::listen_addr(std::env::args().skip(1), |name| std::env::var(name).ok())
}
