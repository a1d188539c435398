//! The console's HTML pieces: escaping, the page layout with its navigation, badges.

use crate::{Area, Session};

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A query-string value, percent-encoded.
pub fn url_encode(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)])
        .map(|s| s.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

/// The areas in the navigation, with their paths and names.
const NAV: [(Area, &str, &str); 8] = [
    (Area::Scan, "/console/scan", "Scan"),
    (Area::Requests, "/console/requests", "Requests"),
    (Area::Requests, "/console/claims", "Claims"),
    (Area::Requests, "/console/kyc", "KYC"),
    (Area::Review, "/console/review", "Review"),
    (Area::Audit, "/console/audit", "Audit"),
    (Area::Policies, "/console/policies", "Policies"),
    (Area::Users, "/console/users", "Users"),
];

/// The navigation links a role may follow, as `(path, name)`.
pub fn nav_for(session: &Session) -> Vec<(&'static str, &'static str)> {
    NAV.iter()
        .filter(|(area, _, _)| session.role.may(*area))
        .map(|(_, path, name)| (*path, *name))
        .collect()
}

/// A hidden CSRF field for a form of the session.
pub fn csrf_field(token: &str) -> String {
    format!(
        r#"<input type="hidden" name="csrf" value="{}">"#,
        escape(token)
    )
}

/// A whole page: the header with the navigation and the person, and `body` under a heading.
pub fn layout(title: &str, session: Option<&Session>, current: &str, body: &str) -> String {
    let header = match session {
        Some(session) => {
            let links: String = nav_for(session)
                .into_iter()
                .map(|(path, name)| {
                    let here = if path == current {
                        r#" aria-current="page""#
                    } else {
                        ""
                    };
                    format!(r#"<li><a href="{path}"{here}>{name}</a></li>"#)
                })
                .collect();
            format!(
                r#"<header class="top"><a class="brand" href="/console">Arbiter</a><nav aria-label="Console"><ul>{links}</ul></nav><div class="who"><span>{user} · {role} · {tenant}</span><form method="post" action="/console/logout">{csrf}<button type="submit" class="link">Sign out</button></form></div></header>"#,
                user = escape(&session.user),
                role = session.role,
                tenant = escape(&session.tenant),
                csrf = csrf_field(&session.csrf),
            )
        }
        None => r#"<header class="top"><a class="brand" href="/console">Arbiter</a></header>"#
            .to_owned(),
    };
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · Arbiter</title><link rel="stylesheet" href="/console/console.css"><script src="/console/console.js" defer></script></head>
<body><a class="skip" href="#main">Skip to content</a>{header}<main id="main"><h1>{title}</h1>
{body}
</main></body></html>
"##,
        title = escape(title),
    )
}

/// A verdict label as a colour-coded badge (the word is always shown, not the colour alone).
pub fn verdict_badge(label: &str) -> String {
    let (class, text) = match label {
        "AUTHENTIC" => ("authentic", "Authentic"),
        "AI_GENERATED" => ("ai", "AI-generated"),
        "MANIPULATED" => ("manipulated", "Manipulated"),
        "INCONCLUSIVE" => ("inconclusive", "Inconclusive"),
        _ => ("inconclusive", label),
    };
    format!(
        r#"<span class="badge {class}" data-verdict="{}">{}</span>"#,
        escape(label),
        escape(text)
    )
}

/// A score from 0 to 1 as a percentage.
pub fn percent(score: Option<f64>) -> String {
    score.map_or_else(|| "—".to_owned(), |s| format!("{:.0}%", s * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(url_encode("a b&c"), "a+b%26c");
    }
}
