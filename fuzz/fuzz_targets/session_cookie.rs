//! Arbitrary `Cookie` headers through `SessionLayer` (over a `MemoryStore` holding one real
//! session) and arbitrary strings through `SecretToken::parse`: no panic, no request signed
//! in unless it carries the live secret, and every accepted secret has one spelling.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use http::{Request, Response, header};
use libfuzzer_sys::fuzz_target;
use portcullis_core::SecretToken;
use portcullis_session::{MemoryStore, Session, SessionConfig, SessionLayer};
use tower::{ServiceBuilder, ServiceExt, service_fn};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    layer: SessionLayer<MemoryStore>,
    cookie: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let layer = SessionLayer::new(MemoryStore::new(), SessionConfig::default()).unwrap();
        // One signed-in session, so the fuzzer can also mutate a live cookie.
        let login = ServiceBuilder::new()
            .layer(layer.clone())
            .service(service_fn(|request: Request<String>| async move {
                let session = Session::from_extensions(request.extensions()).unwrap();
                session.login("alice", &"alice").await.unwrap();
                Ok::<_, std::convert::Infallible>(Response::new(Bytes::new()))
            }));
        let response = runtime
            .block_on(login.oneshot(Request::new(String::new())))
            .unwrap();
        let cookie = response.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Fixture {
            runtime,
            layer,
            cookie,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(secret) = SecretToken::parse(text)
    {
        assert_eq!(secret.expose(), text);
    }
    let fixture = fixture();
    let Ok(value) = http::HeaderValue::from_bytes(data) else {
        return;
    };
    // Signed in only if the header carries the live secret. (The layer also takes
    // `__Host-session =value`, with spaces around `=`, as lenient cookie parsers do: harmless,
    // the secret is still needed.)
    let secret = fixture.cookie.split_once('=').unwrap().1.as_bytes();
    let carries_the_session = data.windows(secret.len()).any(|window| window == secret);
    let service = ServiceBuilder::new()
        .layer(fixture.layer.clone())
        .service(service_fn(|request: Request<String>| async move {
            let session = Session::from_extensions(request.extensions()).unwrap();
            let user = session.user_id().await.ok().flatten();
            Ok::<_, std::convert::Infallible>(Response::new(Bytes::from(user.unwrap_or_default())))
        }));
    let request = Request::get("/")
        .header(header::COOKIE, value)
        .body(String::new())
        .unwrap();
    let response = fixture.runtime.block_on(service.oneshot(request)).unwrap();
    let user = response.into_body();
    if !user.is_empty() {
        assert_eq!(user, "alice".as_bytes());
        assert!(
            carries_the_session,
            "signed in without the session cookie: {:?}",
            String::from_utf8_lossy(data)
        );
    }
});
