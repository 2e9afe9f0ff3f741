//! The text view of a [`Visit`]: one aligned block per hop, a timing line, and the
//! failure in one sentence. Coloured only when stdout is a terminal and `NO_COLOR`
//! is unset, so pipes and CI logs get plain text.

use std::fmt::Write;
use std::io::IsTerminal;

use super::{Detail, Hop, Step, Visit};

/// ANSI colour, or none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paint {
    on: bool,
}

impl Paint {
    pub(crate) fn for_stdout() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            on: std::io::stdout().is_terminal() && !no_color,
        }
    }

    #[cfg(test)]
    pub(crate) fn plain() -> Self {
        Self { on: false }
    }

    fn wrap(&self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub(crate) fn green(&self, text: &str) -> String {
        self.wrap("32", text)
    }
    pub(crate) fn red(&self, text: &str) -> String {
        self.wrap("31", text)
    }
    pub(crate) fn bold(&self, text: &str) -> String {
        self.wrap("1", text)
    }
    pub(crate) fn dim(&self, text: &str) -> String {
        self.wrap("2", text)
    }
}

/// Where the duration column starts, so times line up down the page.
const TIME_COLUMN: usize = 64;
/// Width of the hop label column.
const LABEL: usize = 8;

/// `1234` µs → `1.23 ms`; seconds once it is that slow.
pub(crate) fn duration(micros: u64) -> String {
    if micros >= 1_000_000 {
        format!("{:.2} s", micros as f64 / 1_000_000.0)
    } else {
        format!("{:.2} ms", micros as f64 / 1000.0)
    }
}

pub(crate) fn render(visit: &Visit, paint: &Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}",
        paint.bold(&format!("{:<w$}", "visit", w = LABEL + 2)),
        visit.url
    );
    let _ = writeln!(
        out,
        "{} {}",
        " ".repeat(LABEL + 2),
        paint.dim(&format!(
            "names resolved only by the DNS server at {}",
            visit.dns_server
        ))
    );
    out.push('\n');
    for step in &visit.steps {
        render_step(&mut out, step, paint);
    }
    out.push('\n');

    let t = &visit.timing;
    let mut parts = Vec::new();
    let mut part = |name: &str, value: Option<u64>, show_missing: bool| match value {
        Some(v) => parts.push(format!("{name} {}", duration(v))),
        None if show_missing => parts.push(format!("{name} –")),
        None => {}
    };
    part("dns", t.dns, false);
    part("connect", t.connect, false);
    let https = visit.url.starts_with("https://");
    part("tls", t.tls, https);
    part("first byte", t.first_byte, false);
    part("total", Some(t.total), true);
    let _ = writeln!(
        out,
        "{} {}",
        paint.bold(&format!("{:<w$}", "timing", w = LABEL + 2)),
        parts.join(" · ")
    );

    match &visit.error {
        None => {
            let status = visit.steps.iter().find_map(|s| match &s.detail {
                Detail::Http(h) => h.status.map(|code| {
                    format!("{code} {}", h.reason.as_deref().unwrap_or_default())
                        .trim_end()
                        .to_string()
                }),
                _ => None,
            });
            let _ = writeln!(
                out,
                "{} {}",
                paint.bold(&format!("{:<w$}", "result", w = LABEL + 2)),
                paint.green(&format!("ok, {}", status.unwrap_or_default()))
            );
        }
        Some(failure) => {
            let _ = writeln!(
                out,
                "{} {}",
                paint.bold(&paint.red(&format!("{:<w$}", "error", w = LABEL + 2))),
                paint.red(&format!("{}: {}", failure.hop.as_str(), failure.message))
            );
        }
    }
    out
}

/// The first line of a hop: mark, label, summary, and its time in the time column.
fn head(out: &mut String, paint: &Paint, step: &Step, summary: &str, micros: Option<u64>) {
    let mark = if step.ok {
        paint.green("✓")
    } else {
        paint.red("✗")
    };
    let label = paint.bold(&format!("{:<LABEL$}", step.hop.as_str()));
    let time = micros.map(duration).unwrap_or_default();
    let used = 2 + LABEL + 1 + summary.chars().count();
    let pad = TIME_COLUMN.saturating_sub(used).max(2);
    let _ = writeln!(
        out,
        "{mark} {label} {summary}{}{}",
        " ".repeat(pad),
        paint.dim(&time)
    );
}

/// A detail line under a hop, indented past the label.
fn sub(out: &mut String, text: &str) {
    let _ = writeln!(out, "{}{text}", " ".repeat(2 + LABEL + 3));
}

fn render_step(out: &mut String, step: &Step, paint: &Paint) {
    match &step.detail {
        Detail::Dns {
            server,
            name,
            skipped,
            qtype,
            answers,
            questions,
            ..
        } => {
            let qtype = qtype.unwrap_or("A");
            if let Some(why) = skipped {
                head(out, paint, step, &format!("{name}: {why}"), None);
                return;
            }
            head(
                out,
                paint,
                step,
                &format!("{name} {qtype}? asked {server}"),
                step.micros,
            );
            // A resolver's view of the ANSWER section, aligned like dig's.
            let w_name = answers.iter().map(|a| a.name.len()).max().unwrap_or(0);
            let w_ttl = answers
                .iter()
                .map(|a| a.ttl.to_string().len())
                .max()
                .unwrap_or(0);
            let w_type = answers.iter().map(|a| a.rtype.len()).max().unwrap_or(0);
            for a in answers {
                sub(
                    out,
                    &format!(
                        "{:<w_name$}  {:>w_ttl$}  {:<w_type$}  {}",
                        a.name, a.ttl, a.rtype, a.data
                    ),
                );
            }
            if !questions.is_empty() {
                let asked: Vec<String> = questions
                    .iter()
                    .map(|q| format!("{}: {}", q.qtype, q.answer))
                    .collect();
                sub(out, &paint.dim(&asked.join(" · ")));
            }
        }
        Detail::Connect { address, attempts } => {
            head(out, paint, step, &format!("tcp {address}"), step.micros);
            // With several addresses, each attempt of the race (RFC 8305), in the
            // order started: when it started, how it ended and after how long.
            if attempts.len() > 1 {
                let width = attempts
                    .iter()
                    .map(|a| a.address.to_string().len())
                    .max()
                    .unwrap_or(0);
                for (n, a) in attempts.iter().enumerate() {
                    let line = format!(
                        "{}. {:<width$}  {:<9}  at +{}, after {}",
                        n + 1,
                        a.address.to_string(),
                        a.outcome,
                        duration(a.start_micros),
                        duration(a.micros)
                    );
                    sub(out, &if a.ok { line } else { paint.dim(&line) });
                }
            }
        }
        Detail::Tls { sni, version, alpn } => {
            let mut summary = format!("sni {sni}");
            if let Some(v) = version {
                let _ = write!(summary, ", {v}");
            }
            if let Some(a) = alpn {
                let _ = write!(summary, ", alpn {a}");
            }
            head(out, paint, step, &summary, step.micros);
        }
        Detail::Http(http) => {
            let mut summary = format!("{} {}  Host: {}", http.method, http.target, http.host);
            if let Some(status) = http.status {
                let reason = http.reason.as_deref().unwrap_or_default();
                let _ = write!(summary, " → {status} {reason}");
            }
            head(out, paint, step, summary.trim_end(), step.micros);
            let mut rows: Vec<(String, String)> = Vec::new();
            if let Some(v) = &http.version {
                rows.push(("version".into(), v.clone()));
            }
            if let Some(fb) = http.first_byte_micros {
                rows.push(("first byte".into(), duration(fb)));
            }
            for h in &http.headers {
                rows.push((h.name.clone(), h.value.clone()));
            }
            if let Some(n) = http.body_bytes {
                rows.push(("body".into(), format!("{n} bytes")));
            }
            let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                sub(out, &format!("{k:<width$}  {v}"));
            }
        }
        Detail::Server {
            metric,
            description,
        } => {
            let mut summary = match step.hop {
                Hop::App => "time in the application, as the server reports it".to_string(),
                Hop::Db => "time in the database, as the server reports it".to_string(),
                _ => format!("{metric}, as the server reports it"),
            };
            if let Some(d) = description {
                let _ = write!(summary, " ({d})");
            }
            head(out, paint, step, &summary, step.micros);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::ChainLink;
    use crate::visit::{Attempt, Failure, Question, Timing};

    fn attempt(address: &str, outcome: &'static str, start_micros: u64, micros: u64) -> Attempt {
        Attempt {
            address: address.parse().unwrap(),
            ok: false,
            outcome,
            start_micros,
            micros,
            detail: None,
        }
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0.00 ms");
        assert_eq!(duration(1234), "1.23 ms");
        assert_eq!(duration(2_500_000), "2.50 s");
    }

    #[test]
    fn plain_view_aligns_the_chain_and_names_the_failure() {
        let visit = Visit {
            url: "http://www.foobar.com:9/".into(),
            trace: None,
            dns_server: "127.0.0.1:1053".parse().unwrap(),
            ok: false,
            steps: vec![
                Step {
                    hop: Hop::Dns,
                    ok: true,
                    micros: Some(1200),
                    detail: Detail::Dns {
                        server: "127.0.0.1:1053".parse().unwrap(),
                        name: "www.foobar.com".into(),
                        skipped: None,
                        qtype: Some("AAAA+A"),
                        answers: vec![
                            ChainLink {
                                name: "www.foobar.com.".into(),
                                ttl: 3600,
                                rtype: "CNAME".into(),
                                data: "foobar.com.".into(),
                            },
                            ChainLink {
                                name: "foobar.com.".into(),
                                ttl: 300,
                                rtype: "A".into(),
                                data: "127.0.0.1".into(),
                            },
                        ],
                        address: Some("127.0.0.1".parse().unwrap()),
                        addresses: vec!["127.0.0.1".parse().unwrap()],
                        questions: vec![
                            Question {
                                qtype: "AAAA",
                                answer: "NODATA".into(),
                            },
                            Question {
                                qtype: "A",
                                answer: "1 address".into(),
                            },
                        ],
                    },
                },
                Step {
                    hop: Hop::Connect,
                    ok: false,
                    micros: Some(100),
                    detail: Detail::Connect {
                        address: "127.0.0.1:9".parse().unwrap(),
                        attempts: vec![
                            attempt("[::1]:9", "refused", 0, 40),
                            attempt("127.0.0.1:9", "refused", 45, 55),
                        ],
                    },
                },
            ],
            timing: Timing {
                dns: Some(1200),
                connect: Some(100),
                total: 1400,
                ..Timing::default()
            },
            error: Some(Failure {
                hop: Hop::Connect,
                kind: "connection_refused",
                message: "nothing listens".into(),
                exit_code: 4,
            }),
        };
        let text = render(&visit, &Paint::plain());
        assert!(!text.contains('\x1b'), "{text}");
        assert!(
            text.contains("www.foobar.com.  3600  CNAME  foobar.com.\n"),
            "{text}"
        );
        assert!(
            text.contains("foobar.com.       300  A      127.0.0.1\n"),
            "{text}"
        );
        assert!(
            text.contains("✓ dns      www.foobar.com AAAA+A? asked 127.0.0.1:1053"),
            "{text}"
        );
        assert!(text.contains("✗ connect  tcp 127.0.0.1:9"), "{text}");
        assert!(text.contains("AAAA: NODATA · A: 1 address\n"), "{text}");
        assert!(
            text.contains("1. [::1]:9      refused    at +0.00 ms, after 0.04 ms\n"),
            "{text}"
        );
        assert!(
            text.contains("2. 127.0.0.1:9  refused    at +0.04 ms, after 0.06 ms\n"),
            "{text}"
        );
        assert!(
            text.contains("timing     dns 1.20 ms · connect 0.10 ms · total 1.40 ms"),
            "{text}"
        );
        assert!(
            text.contains("error      connect: nothing listens"),
            "{text}"
        );
        // Times sit in one column.
        let cols: Vec<usize> = text
            .lines()
            .filter(|l| l.ends_with(" ms") && (l.starts_with("✓") || l.starts_with("✗")))
            .map(|l| l.chars().count() - l.rsplit("  ").next().unwrap().chars().count())
            .collect();
        assert_eq!(cols.len(), 2, "{text}");
        assert_eq!(cols[0], cols[1], "{text}");
    }
}
