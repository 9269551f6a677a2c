//! A harmless cookie of the app's own, managed with `tower-cookies`' `Cookies` extractor beside
//! portcullis' session cookie: the two layers share the response's `Set-Cookie` headers without
//! stepping on each other.

use axum::{
    Form,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use tower_cookies::{Cookie, Cookies, cookie::SameSite};

/// The preference cookie's name: not an auth cookie, so no `__Host-` prefix is needed, and
/// script may read it (the page could switch themes without a round trip).
pub(crate) const THEME_COOKIE: &str = "theme";

/// The themes the page knows.
const THEMES: [&str; 2] = ["light", "dark"];

#[derive(Deserialize)]
pub(crate) struct ThemeForm {
    theme: String,
}

/// `POST /preferences` with the form field `theme` (`light` or `dark`): 204 and a year-long
/// `theme` cookie; anything else is 422.
pub(crate) async fn set_theme(cookies: Cookies, Form(form): Form<ThemeForm>) -> Response {
    if !THEMES.contains(&form.theme.as_str()) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            "theme must be light or dark",
        )
            .into_response();
    }
    cookies.add(theme_cookie(form.theme));
    StatusCode::NO_CONTENT.into_response()
}

/// Keeps the visitor's theme for another year whenever they sign in or out, so an active
/// visitor never loses it: a second `Set-Cookie` on the same responses as the session's.
pub(crate) fn keep_theme(cookies: &Cookies) {
    let theme = cookies
        .get(THEME_COOKIE)
        .map(|cookie| cookie.value().to_owned())
        .filter(|theme| THEMES.contains(&theme.as_str()))
        .unwrap_or_else(|| THEMES[0].to_owned());
    cookies.add(theme_cookie(theme));
}

fn theme_cookie(theme: String) -> Cookie<'static> {
    Cookie::build((THEME_COOKIE, theme))
        .path("/")
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(tower_cookies::cookie::time::Duration::days(365))
        .build()
}
