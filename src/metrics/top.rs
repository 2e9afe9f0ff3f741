//! `onebox top`: the running server's numbers in a terminal, refreshed every
//! second, for a learner without Prometheus.
//!
//! It scrapes `/metrics` like Prometheus would, parses the text format (only what
//! it shows), and prints rates from the difference between two scrapes one second
//! apart: queries/s by type and by rcode, requests/s by status class, commits/s
//! and the mean batch size, and p50/p99 latencies estimated from the histogram
//! buckets as Prometheus's `histogram_quantile` does.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::TopArgs;

const TIMEOUT: Duration = Duration::from_secs(2);

pub fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    let mut before = scrape(args.metrics)?;
    let mut at = Instant::now();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = scrape(args.metrics)?;
        let elapsed = at.elapsed().as_secs_f64();
        at = Instant::now();
        let view = render(&before, &now, elapsed, args.metrics);
        let mut out = std::io::stdout().lock();
        if args.once {
            write!(out, "{view}")?;
            out.flush()?;
            return Ok(ExitCode::SUCCESS);
        }
        // Home the cursor and clear the screen: plain ANSI, no TUI crate.
        write!(out, "\x1b[H\x1b[2J{view}")?;
        out.flush()?;
        before = now;
    }
}

/// One scrape: every sample, keyed by its series (`name{labels}`), plus the labels.
#[derive(Debug, Default, Clone)]
pub(crate) struct Scrape {
    samples: Vec<Sample>,
}

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A plain HTTP/1.1 GET of `/metrics` (std only: a one-shot client needs no runtime).
fn scrape(addr: SocketAddr) -> anyhow::Result<Scrape> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("cannot reach the metrics listener at {addr} (is onebox serve running with --metrics {addr}?)"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .with_context(|| format!("reading the scrape from {addr}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("the metrics listener sent no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        anyhow::bail!(
            "the metrics listener answered {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(parse(body))
}

/// The Prometheus text format, as much as `top` needs: `name{k="v",…} value`.
fn parse(text: &str) -> Scrape {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Scrape { samples }
}

/// `k="v",k2="v2"`; our label values never hold quotes or commas.
fn parse_labels(text: &str) -> Vec<(String, String)> {
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

impl Scrape {
    /// The sum of `name`'s samples, grouped by the value of `label`.
    fn by(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            let key = s.label(label).unwrap_or("").to_string();
            *out.entry(key).or_insert(0.0) += s.value;
        }
        out
    }

    fn total(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum()
    }

    /// Cumulative bucket counts of a histogram, summed over its series.
    fn buckets(&self, name: &str) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for s in self
            .samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let le = match s.label("le") {
                Some("+Inf") => f64::INFINITY,
                Some(v) => v.parse().unwrap_or(f64::INFINITY),
                None => continue,
            };
            let entry = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += s.value;
        }
        let mut out: Vec<_> = by_le.into_values().collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// Per-second rates of each group between two scrapes, highest first.
fn rates(
    before: &BTreeMap<String, f64>,
    now: &BTreeMap<String, f64>,
    secs: f64,
) -> Vec<(String, f64)> {
    let mut out: Vec<_> = now
        .iter()
        .map(|(k, v)| {
            let delta = v - before.get(k).copied().unwrap_or(0.0);
            (k.clone(), (delta.max(0.0)) / secs)
        })
        .filter(|(_, r)| *r > 0.0)
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// The `q` quantile of the observations between two scrapes, interpolated inside
/// its bucket as `histogram_quantile` does; `None` when nothing was observed.
fn quantile(before: &[(f64, f64)], now: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = now
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(b, _)| b == le)
                .map(|(_, n)| *n)
                .unwrap_or(0.0);
            (*le, n - was)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for (le, count) in &delta {
        if *count >= rank {
            if le.is_infinite() {
                // Above the last bound: the best we can say is "at least that".
                return Some(lower.0);
            }
            let width = count - lower.1;
            let into = if width > 0.0 {
                (rank - lower.1) / width
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * into);
        }
        lower = (*le, *count);
    }
    None
}

fn ms(seconds: Option<f64>) -> String {
    match seconds {
        Some(s) => format!("{:.2} ms", s * 1000.0),
        None => "-".to_string(),
    }
}

fn line(title: &str, rates: &[(String, f64)]) -> String {
    let total: f64 = rates.iter().map(|(_, r)| r).sum();
    let parts: Vec<String> = rates
        .iter()
        .take(8)
        .map(|(k, r)| format!("{k} {r:.0}"))
        .collect();
    format!("{title:<14}{total:>9.0}/s  {}\n", parts.join("  "))
}

/// The whole view, from two scrapes `secs` apart.
pub(crate) fn render(before: &Scrape, now: &Scrape, secs: f64, addr: SocketAddr) -> String {
    let secs = secs.max(0.001);
    let mut out = format!("onebox top: {addr}, rates over the last {secs:.1} s\n\n");
    // One line of per-label rates, and one of a histogram's p50 and p99.
    let by = |title, metric, label| {
        line(
            title,
            &rates(&before.by(metric, label), &now.by(metric, label), secs),
        )
    };
    let latency = |metric| {
        let (b, n) = (before.buckets(metric), now.buckets(metric));
        let q = |q| ms(quantile(&b, &n, q));
        format!("p50 {}  p99 {}", q(0.5), q(0.99))
    };
    out += &by("DNS by type", "onebox_dns_requests_total", "type");
    out += &by("DNS by proto", "onebox_dns_requests_total", "proto");
    out += &by("DNS by rcode", "onebox_dns_responses_total", "rcode");
    let dns = latency("onebox_dns_request_duration_seconds");
    out += &format!("{:<14}{dns}\n\n", "DNS latency");
    out += &by("HTTP by status", "onebox_http_requests_total", "status");
    let http = latency("onebox_http_request_duration_seconds");
    out += &format!("{:<14}{http}\n", "HTTP latency");
    out += &format!(
        "{:<14}{:>9.0} open\n\n",
        "HTTP conns",
        now.total("onebox_http_connections_open")
    );
    let delta = |metric| now.total(metric) - before.total(metric);
    let (commits, batched) = (
        delta("onebox_db_commits_total"),
        delta("onebox_db_commit_requests_sum"),
    );
    let batch = if commits > 0.0 {
        format!("{:.1}", batched / commits)
    } else {
        "-".to_string()
    };
    out += &format!(
        "{:<14}{:>9.0}/s  batch {batch} requests/commit  {}\n",
        "DB commits",
        (commits / secs).max(0.0),
        latency("onebox_db_commit_duration_seconds")
    );
    let rss = now.total("process_resident_memory_bytes") / (1024.0 * 1024.0);
    let cpu = delta("process_cpu_seconds_total") / secs * 100.0;
    out += &format!(
        "{:<14}{rss:>9.1} MiB RSS  CPU {cpu:.0}%  ready {}\n",
        "Process",
        match now.samples.iter().find(|s| s.name == "onebox_ready") {
            Some(s) if s.value >= 1.0 => "yes",
            Some(_) => "NO",
            None => "-",
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "# HELP x y\n\
        onebox_dns_requests_total{zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"} 10\n\
        onebox_dns_request_duration_seconds_bucket{le=\"0.001\"} 0\n\
        onebox_dns_request_duration_seconds_bucket{le=\"0.002\"} 0\n\
        onebox_dns_request_duration_seconds_bucket{le=\"+Inf\"} 0\n";
    const NOW: &str = "onebox_dns_requests_total{zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"} 110\n\
        onebox_dns_requests_total{zone=\".\",proto=\"tcp\",family=\"1\",type=\"AAAA\"} 50\n\
        onebox_dns_request_duration_seconds_bucket{le=\"0.001\"} 100\n\
        onebox_dns_request_duration_seconds_bucket{le=\"0.002\"} 150\n\
        onebox_dns_request_duration_seconds_bucket{le=\"+Inf\"} 150\n";

    #[test]
    fn rates_and_quantiles_come_from_the_difference_of_two_scrapes() {
        let (before, now) = (parse(BEFORE), parse(NOW));
        let view = render(&before, &now, 1.0, "127.0.0.1:9153".parse().unwrap());
        assert!(view.contains("A 100  AAAA 50"), "{view}");
        assert!(view.contains("udp 100  tcp 50"), "{view}");
        let (b, n) = (
            before.buckets("onebox_dns_request_duration_seconds"),
            now.buckets("onebox_dns_request_duration_seconds"),
        );
        // 150 observations: the median (rank 75) is 3/4 into the first bucket.
        let p50 = quantile(&b, &n, 0.5).unwrap();
        assert!((p50 - 0.00075).abs() < 1e-9, "{p50}");
        let p99 = quantile(&b, &n, 0.99).unwrap();
        assert!(p99 > 0.001 && p99 <= 0.002, "{p99}");
    }
}
