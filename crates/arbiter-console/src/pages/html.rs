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

/// The areas in the navigation, with their paths and names; the case lists of the session's
/// build follow the first [`CASES_AT`].
const NAV: [(Area, &str, &str); 6] = [
    (Area::Scan, "/console/scan", "Scan"),
    (Area::Requests, "/console/requests", "Requests"),
    (Area::Review, "/console/review", "Review"),
    (Area::Audit, "/console/audit", "Audit"),
    (Area::Policies, "/console/policies", "Policies"),
    (Area::Users, "/console/users", "Users"),
];

/// Where the case lists stand in [`NAV`]: after the requests.
const CASES_AT: usize = 2;

/// The navigation links a role may follow, as `(path, name)`: the console's areas, and a list
/// per kind of case the session carries (with the requests' role).
pub fn nav_for(session: &Session) -> Vec<(String, &'static str)> {
    let area = |&(area, path, name): &(Area, &str, &'static str)| {
        session.role.may(area).then(|| (path.to_owned(), name))
    };
    let cases = session
        .cases
        .iter()
        .filter(|_| session.role.may(Area::Requests))
        .map(|kind| (kind.path(), kind.console.nav));
    NAV[..CASES_AT]
        .iter()
        .filter_map(area)
        .chain(cases)
        .chain(NAV[CASES_AT..].iter().filter_map(area))
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
                    let here = if path.as_str() == current {
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
    use crate::Role;
    use crate::pages::cases::CaseKind;
    use arbiter_core::plugin::CaseConsole;

    fn session(role: Role, cases: Vec<CaseKind>) -> Session {
        Session {
            tenant: "acme".to_owned(),
            user: "ana".to_owned(),
            role,
            csrf: "t".to_owned(),
            expires_at: chrono::Utc::now(),
            cases,
        }
    }

    fn kind(flow: &'static str, path: &'static str, nav: &'static str) -> CaseKind {
        CaseKind {
            flow,
            console: CaseConsole {
                path,
                title: nav,
                nav,
                noun: nav,
            },
        }
    }

    #[test]
    fn the_case_lists_of_the_build_follow_the_requests_in_the_navigation() {
        let cases = vec![
            kind("insurance", "claims", "Claims"),
            kind("kyc", "kyc", "KYC"),
        ];
        let nav = nav_for(&session(Role::Admin, cases.clone()));
        let names: Vec<&str> = nav.iter().map(|(_, name)| *name).collect();
        assert_eq!(
            names,
            [
                "Scan", "Requests", "Claims", "KYC", "Review", "Audit", "Policies", "Users"
            ]
        );
        assert_eq!(nav[2].0, "/console/claims");
        assert_eq!(nav[3].0, "/console/kyc");
        // A build with one case flow lists only its cases.
        let one = nav_for(&session(Role::Analyst, cases[1..].to_vec()));
        assert_eq!(
            one,
            [
                ("/console/scan".to_owned(), "Scan"),
                ("/console/requests".to_owned(), "Requests"),
                ("/console/kyc".to_owned(), "KYC"),
            ]
        );
        // The lists go with the requests' role.
        let auditor = nav_for(&session(Role::Auditor, cases));
        assert!(auditor.iter().any(|(path, _)| path == "/console/claims"));
        assert!(
            nav_for(&session(Role::Admin, Vec::new()))
                .iter()
                .all(|(_, name)| *name != "Claims")
        );
    }

    #[test]
    fn the_current_list_is_marked_in_the_layout() {
        let page = layout(
            "Claims",
            Some(&session(
                Role::Analyst,
                vec![kind("insurance", "claims", "Claims")],
            )),
            "/console/claims",
            "",
        );
        assert!(page.contains(r#"<a href="/console/claims" aria-current="page">Claims</a>"#));
        assert!(page.contains(r#"<a href="/console/requests">Requests</a>"#));
    }

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape(r#"<img src=x onerror="a('b')">&"#),
            "&lt;img src=x onerror=&quot;a(&#39;b&#39;)&quot;&gt;&amp;"
        );
        assert_eq!(url_encode("a b&c"), "a+b%26c");
    }
}
