//! The app driven without a socket: settings, form login, a removed user.

use std::{collections::HashMap, time::Duration};

use axum::{
    body::Body,
    extract::Request,
    http::{StatusCode, header},
};
use demo_users::User;
use hybrid_app::{AppState, Settings, SetupError, app};
use tower::ServiceExt;

fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SetupError> {
    let env: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Settings::from_lookup(|name| env.get(name).cloned())
}

#[test]
fn settings_defaults_and_overrides() {
    let defaults = settings(&[]).unwrap();
    assert_eq!(defaults.addr.to_string(), "127.0.0.1:3000");
    assert_eq!(defaults.access_ttl, Duration::from_secs(600));
    assert_eq!(defaults.grace, Duration::from_secs(5));
    assert_eq!(defaults.keys.leeway, Duration::from_secs(30));
    assert!(!defaults.transparent_refresh);
    assert_eq!(defaults.cookies().refresh_cookie(), "__Secure-refresh");

    let custom = settings(&[
        ("ACCESS_TTL_SECS", "2"),
        ("REFRESH_TTL_SECS", "60"),
        ("REFRESH_GRACE_SECS", "0"),
        ("JWT_LEEWAY_SECS", "0"),
        ("HYBRID_TRANSPARENT_REFRESH", "1"),
        ("JWT_ALG", "ES256"),
    ])
    .unwrap();
    assert_eq!(custom.access_ttl, Duration::from_secs(2));
    assert_eq!(custom.refresh_ttl, Duration::from_secs(60));
    assert_eq!(custom.grace, Duration::ZERO);
    assert_eq!(
        custom.keys.algorithm,
        Some(portcullis_jwt::Algorithm::ES256)
    );
    assert_eq!(custom.cookies().refresh_cookie(), "__Host-refresh");
    assert!(!format!("{custom:?}").contains("secret\":"));

    for bad in [
        ("ACCESS_TTL_SECS", "-1"),
        ("JWT_ALG", "none"),
        ("JWT_LEEWAY_SECS", "301"),
        ("PORTCULLIS_ADDR", "nowhere"),
    ] {
        assert!(settings(&[bad]).is_err(), "{bad:?}");
    }
    let secret = settings(&[("JWT_HS256_SECRET", "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t")]).unwrap();
    assert!(!format!("{secret:?}").contains("s3cr3t"));
}

#[tokio::test]
async fn form_login_and_me_without_a_socket() {
    let state = AppState::from_settings(&settings(&[]).unwrap())
        .await
        .unwrap();
    let app = app(state);
    let login = app
        .clone()
        .oneshot(
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from("username=admin&password=admin-password-1"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    let access = login
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("__Host-access="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let admin = app
        .oneshot(
            Request::get("/admin")
                .header(header::COOKIE, format!("__Host-access={access}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(admin.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_removed_user_loses_access_at_the_next_refresh() {
    let state = AppState::from_settings(&settings(&[]).unwrap())
        .await
        .unwrap();
    let admin = state.users().find("admin").unwrap();
    let pair = state
        .sessions()
        .login(admin.id(), &admin, None)
        .await
        .unwrap();
    let refreshed = state
        .sessions()
        .refresh(&pair.refresh_token().expose())
        .await
        .unwrap();
    assert!(refreshed.identity().user::<User>().unwrap().is_admin());
    assert!(state.users().remove("admin"));
    let error = state
        .sessions()
        .refresh(&refreshed.refresh_token().expose())
        .await
        .unwrap_err();
    assert!(
        matches!(error, portcullis_hybrid::HybridError::UserGone),
        "{error:?}"
    );
    let me = app(state)
        .oneshot(
            Request::get("/me")
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", refreshed.access_token()),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
}
