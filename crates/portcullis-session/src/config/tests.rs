use super::*;
use crate::store::LimitPolicy;

#[test]
fn defaults_are_valid_and_strict() {
    let config = SessionConfig::default();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(
        config
            .cookie_attributes()
            .set_cookie(&config.cookie_name, "v", None)
            .unwrap(),
        "__Host-session=v; HttpOnly; SameSite=Lax; Secure; Path=/"
    );
}

#[test]
fn settings_a_browser_would_reject_are_errors() {
    let secs = Duration::from_secs;
    let cases: Vec<(SessionConfig, ConfigError)> = vec![
        (
            SessionConfig::default().dangerous_insecure_cookie(),
            CookieError::PrefixRequiresSecure("__Host-session".into()).into(),
        ),
        (
            SessionConfig::default()
                .cookie_name("__secure-x")
                .dangerous_insecure_cookie(),
            CookieError::PrefixRequiresSecure("__secure-x".into()).into(),
        ),
        (
            SessionConfig::default().cookie_path("/app"),
            CookieError::HostPrefixScope("__Host-session".into()).into(),
        ),
        (
            SessionConfig::default().cookie_domain("example.com"),
            CookieError::HostPrefixScope("__Host-session".into()).into(),
        ),
        (
            SessionConfig::default()
                .cookie_name("s")
                .dangerous_insecure_cookie()
                .same_site(SameSite::None),
            CookieError::SameSiteNoneRequiresSecure.into(),
        ),
        (
            SessionConfig::default().cookie_name(""),
            CookieError::InvalidName(String::new()).into(),
        ),
        (
            SessionConfig::default().cookie_name("a b"),
            CookieError::InvalidName("a b".into()).into(),
        ),
        (
            SessionConfig::default().cookie_name("a;b"),
            CookieError::InvalidName("a;b".into()).into(),
        ),
        (
            SessionConfig::default().cookie_name("s").cookie_path("x"),
            CookieError::InvalidPath("x".into()).into(),
        ),
        (
            SessionConfig::default()
                .cookie_name("s")
                .cookie_path("/a;b"),
            CookieError::InvalidPath("/a;b".into()).into(),
        ),
        (
            SessionConfig::default()
                .cookie_name("s")
                .cookie_domain("a.com; x"),
            CookieError::InvalidDomain("a.com; x".into()).into(),
        ),
        (
            SessionConfig::default().idle_timeout(Duration::ZERO),
            ConfigError::TooShort("idle timeout"),
        ),
        (
            SessionConfig::default().absolute_timeout(Duration::from_millis(500)),
            ConfigError::TooShort("absolute timeout"),
        ),
        (
            SessionConfig::default().absolute_timeout(secs(401 * 24 * 3600)),
            ConfigError::TooLong("absolute timeout"),
        ),
        (
            SessionConfig::default()
                .idle_timeout(secs(100))
                .absolute_timeout(secs(50)),
            ConfigError::IdleExceedsAbsolute("session"),
        ),
        (
            SessionConfig::default().remember_me_timeouts(secs(100), secs(50)),
            ConfigError::IdleExceedsAbsolute("remember-me"),
        ),
        (
            SessionConfig::default()
                .idle_timeout(secs(60))
                .touch_interval(secs(60)),
            ConfigError::TouchIntervalTooLong,
        ),
        (
            SessionConfig::default().max_sessions_per_user(SessionLimit {
                max: 0,
                policy: LimitPolicy::RefuseNew,
            }),
            ConfigError::ZeroSessionLimit,
        ),
    ];
    for (config, expected) in cases {
        assert_eq!(config.validate(), Err(expected), "{config:?}");
    }
}

#[test]
fn relaxed_but_coherent_settings_are_accepted() {
    let config = SessionConfig::default()
        .cookie_name("sid")
        .dangerous_insecure_cookie()
        .dangerous_script_readable_cookie()
        .cookie_domain("example.com")
        .cookie_path("/app")
        .same_site(SameSite::Strict)
        .idle_timeout(Duration::from_secs(1))
        .absolute_timeout(Duration::from_secs(1));
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(
        config
            .cookie_attributes()
            .set_cookie(&config.cookie_name, "v", None)
            .unwrap(),
        "sid=v; SameSite=Strict; Path=/app; Domain=example.com"
    );
}
