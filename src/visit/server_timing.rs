//! The server's own account of a request: the `Server-Timing` response header
//! (W3C Server Timing), e.g. `app;dur=0.21, db;dur=0.05;desc="redb read"`.
//!
//! The client can time DNS, connect and first byte itself, but not what happened
//! behind the web server; onebox's site reports its app and database time here.

use serde::Serialize;

/// One metric: a name, and optionally a duration in milliseconds and a description.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Metric {
    pub(crate) name: String,
    pub(crate) dur_ms: Option<f64>,
    pub(crate) desc: Option<String>,
}

impl Metric {
    /// The duration in whole microseconds, for the step list.
    pub(crate) fn micros(&self) -> Option<u64> {
        self.dur_ms
            .filter(|d| d.is_finite() && *d >= 0.0)
            .map(|d| (d * 1000.0).round() as u64)
    }
}

/// Parses every metric of one or more `Server-Timing` values. Malformed parts are
/// skipped rather than failing the visit: this header is advice, not protocol.
pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<Metric> {
    let mut out = Vec::new();
    for value in values {
        for entry in split_outside_quotes(value, ',') {
            let mut parts = split_outside_quotes(&entry, ';').into_iter();
            let name = parts.next().unwrap_or_default().trim().to_string();
            if name.is_empty() || !name.chars().all(is_token_char) {
                continue;
            }
            let mut metric = Metric {
                name,
                dur_ms: None,
                desc: None,
            };
            for param in parts {
                let Some((key, val)) = param.split_once('=') else {
                    continue;
                };
                let val = unquote(val.trim());
                match key.trim().to_ascii_lowercase().as_str() {
                    // The first occurrence wins, as the spec says.
                    "dur" if metric.dur_ms.is_none() => metric.dur_ms = val.parse().ok(),
                    "desc" if metric.desc.is_none() => metric.desc = Some(val),
                    _ => {}
                }
            }
            out.push(metric);
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn unquote(text: &str) -> String {
    match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => text.to_string(),
    }
}

/// Splits on `sep` except inside a quoted string (a `desc` may contain commas).
fn split_outside_quotes(text: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped) = (false, false);
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_and_db() {
        let m = parse(["app;dur=0.21, db;dur=0.05"]);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "app");
        assert_eq!(m[0].dur_ms, Some(0.21));
        assert_eq!(m[0].micros(), Some(210));
        assert_eq!(m[1].name, "db");
        assert_eq!(m[1].micros(), Some(50));
    }

    #[test]
    fn descriptions_quotes_and_repeated_headers() {
        let m = parse([
            r#"db;desc="read, then \"commit\"";dur=1.5"#,
            "cache;desc=hit, total",
        ]);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].desc.as_deref(), Some(r#"read, then "commit""#));
        assert_eq!(m[0].dur_ms, Some(1.5));
        assert_eq!(m[1].desc.as_deref(), Some("hit"));
        assert_eq!(m[1].dur_ms, None);
        assert_eq!(m[2].name, "total");
    }

    #[test]
    fn junk_is_skipped_not_fatal() {
        let m = parse([" , ;dur=1, bad name;dur=2, ok;dur=abc, neg;dur=-1"]);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["ok", "neg"]);
        assert_eq!(m[0].dur_ms, None);
        assert_eq!(m[1].micros(), None);
    }
}
