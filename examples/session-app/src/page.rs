//! The server-rendered HTML: plain strings, every dynamic value escaped (OWASP Cross Site
//! Scripting Prevention Cheat Sheet, "Output Encoding for HTML Contexts").

use std::fmt::Write as _;

use portcullis_session::SessionInfo;

use crate::User;

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS UTC` from Unix seconds (the civil-from-days algorithm).
pub(crate) fn utc(seconds: u64) -> String {
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn layout(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · portcullis session demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: .4rem; text-align: left; font-size: .9rem; }}
.error {{ color: #b00020; }}
form.inline {{ display: inline; }}
</style>
</head>
<body>
{body}
</body>
</html>
"#,
        title = escape(title),
    )
}

/// The login form, with an error message after a failed attempt, and where to return after
/// signing in (checked again when the form is posted: the field is the visitor's to edit).
pub(crate) fn login(error: Option<&str>, next: Option<&str>) -> String {
    let next = next.map_or_else(String::new, |next| {
        format!(
            r#"<input type="hidden" name="next" value="{}">"#,
            escape(next)
        )
    });
    let error = error.map_or_else(String::new, |e| {
        format!(r#"<p class="error" role="alert">{}</p>"#, escape(e))
    });
    layout(
        "Sign in",
        &format!(
            r#"<h1>Sign in</h1>
{error}
<form method="post" action="/login">
  {next}
  <p><label>User name <input name="username" autocomplete="username" required></label></p>
  <p><label>Password <input name="password" type="password" autocomplete="current-password" required></label></p>
  <p><label><input type="checkbox" name="remember" value="1"> Remember me on this device</label></p>
  <p><button type="submit">Sign in</button></p>
</form>
<p>Demo users: <code>alice</code> / <code>alice-password-1</code> (advertiser),
<code>admin</code> / <code>admin-password-1</code> (admin).</p>"#
        ),
    )
}

/// The signed-in page: who, logout buttons, and the user's sessions with revoke buttons.
pub(crate) fn home(user: &User, sessions: &[SessionInfo]) -> String {
    let mut rows = String::new();
    for session in sessions {
        let action = if session.current {
            "this session".to_owned()
        } else {
            format!(
                r#"<button type="button" class="revoke" data-handle="{}">Sign out</button>"#,
                escape(&session.handle)
            )
        };
        let _ = writeln!(
            rows,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&session.handle),
            utc(session.created_at),
            utc(session.last_seen_at),
            escape(session.user_agent.as_deref().unwrap_or("unknown")),
            action,
        );
    }
    let role = serde_json::to_value(user.role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    layout(
        "Home",
        &format!(
            r#"<h1>Signed in as {name}</h1>
<p>Role: <strong>{role}</strong>.{admin}</p>
<form class="inline" method="post" action="/logout"><button type="submit">Sign out</button></form>
<form class="inline" method="post" action="/logout-all"><button type="submit">Sign out everywhere</button></form>
<h2>Your sessions</h2>
<table>
<thead><tr><th>Handle</th><th>Created</th><th>Last seen</th><th>Browser</th><th></th></tr></thead>
<tbody>
{rows}</tbody>
</table>
<script>
for (const button of document.querySelectorAll("button.revoke")) {{
  button.addEventListener("click", async () => {{
    await fetch("/sessions/" + encodeURIComponent(button.dataset.handle), {{ method: "DELETE" }});
    location.reload();
  }});
}}
</script>"#,
            name = escape(&user.user),
            role = escape(&role),
            admin = if user.is_admin() {
                r#" <a href="/admin">Admin area (JSON)</a>"#
            } else {
                ""
            },
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_formats_dates() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#x27;y&#x27;&lt;/script&gt;"
        );
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn user_agents_cannot_inject_markup() {
        let user = User {
            user: "alice".into(),
            role: crate::Role::Advertiser,
        };
        let sessions = [SessionInfo {
            handle: "h".into(),
            created_at: 0,
            last_seen_at: 0,
            expires_at: 0,
            user_agent: Some("<img src=x onerror=alert(1)>".into()),
            persistent: false,
            current: false,
        }];
        let page = home(&user, &sessions);
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;img"));
    }
}
