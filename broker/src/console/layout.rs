//! The frame every console page shares (head, navigation, footer), the error page, and
//! small formatting helpers. Pure.

use maud::{html, Markup, DOCTYPE};

use super::Failure;

/// The navigation entries: (key, title, path).
const NAV: [(&str, &str, &str); 4] = [
    ("cluster", "Cluster", "/console/"),
    ("topics", "Topics", "/console/topics"),
    ("groups", "Consumer groups", "/console/groups"),
    ("messages", "Messages", "/console/messages"),
];

/// A whole page: `current` is the navigation key to highlight.
pub fn page(current: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · phxq console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    span.brand { "phxq" }
                    nav {
                        @for (key, name, path) in NAV {
                            a href=(path) class=[(key == current).then_some("current")] { (name) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
                footer { "Read-only console of this broker · " a href="/metrics" { "/metrics" } " · " a href="/health/ready" { "/health/ready" } }
            }
        }
    }
}

/// The page of a refused or failed request.
pub fn failure_page(f: &Failure) -> Markup {
    let title = match f.status {
        400 => "Bad request",
        404 => "Not found",
        503 => "Unavailable",
        _ => "Error",
    };
    page(
        "",
        title,
        html! { p.error { (f.message) } p { a href="/console/" { "Back to the console" } } },
    )
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm UTC`; out-of-range or negative times
/// (Kafka's -1: none) as `-`.
pub fn time(ms: i64) -> String {
    if ms < 0 {
        return "-".into();
    }
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string(),
        None => "-".into(),
    }
}

/// An optional value, `-` when absent.
pub fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A byte count with a binary unit (`1.5 KiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A query string built from pairs, each encoded (for links between pages).
pub fn href(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    format!("{path}?{}", s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(time(-1), "-");
        assert_eq!(time(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(time(i64::MAX), "-");
        assert_eq!(opt::<i32>(None), "-");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(
            href("/console/group", &[("id", "a&b=<c>")]),
            "/console/group?id=a%26b%3D%3Cc%3E"
        );
    }

    #[test]
    fn failure_page_escapes_the_message() {
        let html = failure_page(&Failure::bad_request("topic \"<script>alert(1)</script>\""))
            .into_string();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
    }
}
