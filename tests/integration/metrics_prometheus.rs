//! Issue 16 with the real Prometheus tools: `promtool check metrics` on a scrape of
//! a loaded instance, `promtool check config`/`check rules` on contrib/prometheus,
//! a real Prometheus scraping onebox and answering `/api/v1/query` with the counts
//! the test generated, and `onebox top --once`.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_server::proto::rr::RecordType;

use crate::harness::*;
use crate::metrics_counts::{scrape, value};

/// Some traffic of every kind, so every family has series to check.
fn load(server: &Onebox) {
    for name in ["www.foobar.com.", "foobar.com.", "nope.foobar.com."] {
        ask_udp(server.dns, &query(name, RecordType::A));
        ask_tcp(server.dns, &query(name, RecordType::AAAA));
    }
    for path in ["/", "/no-such-page"] {
        http_get(server, "foobar.com", path);
    }
}

#[test]
fn promtool_finds_no_problem_in_a_scrape_of_a_loaded_instance() {
    skip_unless!(require_tool("promtool", "prometheus"));
    let server = Onebox::start();
    load(&server);
    let dir = TempDir::new("metrics-scrape");
    let path = dir.write("scrape.prom", &scrape(&server));
    let mut command = Command::new("promtool");
    command
        .args(["check", "metrics"])
        .stdin(File::open(&path).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, stdout, stderr) = run_bounded(command);
    assert!(
        status.success() && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "promtool check metrics:\n{stdout}{stderr}\n--- scrape ---\n{}",
        std::fs::read_to_string(&path).unwrap()
    );
}

#[test]
fn promtool_accepts_the_shipped_scrape_config_and_alert_rules() {
    skip_unless!(require_tool("promtool", "prometheus"));
    let config = repo_path("contrib/prometheus/onebox.yml");
    let rules = repo_path("contrib/prometheus/onebox.rules.yml");
    let (status, stdout, stderr) = run_tool(
        "promtool",
        &["check", "config", config.to_str().unwrap()],
        "prometheus",
    );
    assert!(status.success(), "{stdout}{stderr}");
    let (status, stdout, stderr) = run_tool(
        "promtool",
        &["check", "rules", rules.to_str().unwrap()],
        "prometheus",
    );
    assert!(status.success(), "{stdout}{stderr}");
    for alert in [
        "OneboxDnsServfailRate",
        "OneboxHttp5xxRate",
        "OneboxNotReady",
        "OneboxDatabaseWriteErrors",
        "OneboxZoneSerialMismatch",
        "OneboxCertificateExpiresSoon",
    ] {
        assert!(
            std::fs::read_to_string(&rules).unwrap().contains(alert),
            "no {alert} rule"
        );
    }
}

/// A Prometheus of our own on a free loopback port, killed (and waited for) on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let dir = TempDir::new("metrics-prometheus");
        let config = dir.write(
            "prometheus.yml",
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: onebox\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        );
        // A free port: the kernel picks one, we release it for Prometheus.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .expect("run prometheus");
        Prometheus {
            child,
            addr,
            _dir: dir,
        }
    }

    /// The value of an instant query's single result, if it has one yet.
    fn query(&self, promql: &str) -> Option<f64> {
        let encoded: String =
            percent_encoding::utf8_percent_encode(promql, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let path = format!("/api/v1/query?query={encoded}");
        let response = http(self.addr, "GET", &path, "127.0.0.1", &[], b"").ok()?;
        let json = response.json();
        json["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// Polls `promql` until `done` accepts its value (bounded).
    fn wait_for(&self, promql: &str, done: impl Fn(f64) -> bool) -> f64 {
        let start = Instant::now();
        let mut last = None;
        while start.elapsed() < Duration::from_secs(40) {
            last = self.query(promql);
            if let Some(v) = last
                && done(v)
            {
                return v;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("prometheus: {promql} is still {last:?} after 40 s");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

#[test]
fn a_real_prometheus_scrapes_the_dns_rate_and_the_http_count_we_generated() {
    skip_unless!(require_tool("prometheus", "prometheus"));
    let server = Onebox::start();
    let prometheus = Prometheus::start(server.ready_addr("metrics"));
    prometheus.wait_for("up{job=\"onebox\"}", |v| v == 1.0);

    // DNS: 80 AAAA queries over UDP across about four seconds (four scrapes).
    // HTTP: 5 DELETEs, a method nothing else in the test sends.
    for _ in 0..40 {
        ask_udp(server.dns, &query("www.foobar.com.", RecordType::AAAA));
        ask_udp(server.dns, &query("foobar.com.", RecordType::AAAA));
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        http(server.http, "DELETE", "/", "foobar.com", &[], b"").unwrap();
    }

    let total = "sum(onebox_dns_requests_total{proto=\"udp\",type=\"AAAA\"})";
    assert_eq!(prometheus.wait_for(total, |v| v >= 80.0), 80.0);
    let rate = prometheus.wait_for(
        "sum(rate(onebox_dns_requests_total{proto=\"udp\",type=\"AAAA\"}[1m]))",
        |v| v > 0.0,
    );
    assert!(rate > 0.0 && rate < 80.0, "DNS rate {rate}/s");
    let deletes = prometheus.wait_for("sum(onebox_http_requests_total{method=\"DELETE\"})", |v| {
        v >= 5.0
    });
    assert_eq!(deletes, 5.0, "HTTP requests Prometheus saw");
    // The scrape itself agrees with what Prometheus stored.
    let text = scrape(&server);
    assert_eq!(
        value(&text, "onebox_http_requests_total", &[("method", "DELETE")]),
        5.0
    );

    // Every query of the shipped Grafana dashboard is valid PromQL over our series.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("contrib/grafana/onebox.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() > 20, "{} queries", exprs.len());
    for expr in exprs {
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".*");
        let encoded =
            percent_encoding::utf8_percent_encode(&promql, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let path = format!("/api/v1/query?query={encoded}");
        let answer = http(prometheus.addr, "GET", &path, "127.0.0.1", &[], b"").unwrap();
        assert_eq!(
            answer.json()["status"],
            "success",
            "{expr}: {}",
            answer.text()
        );
    }
}

#[test]
fn onebox_top_once_shows_the_rates_of_one_second() {
    let server = Onebox::start();
    let metrics = server.ready_addr("metrics").to_string();
    // Queries keep arriving while top takes its two scrapes one second apart.
    let dns = server.dns;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ask_udp(dns, &query("www.foobar.com.", RecordType::A));
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let (status, stdout, stderr) = run_onebox(&["top", "--once", "--metrics", &metrics], None);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    traffic.join().unwrap();
    assert!(status.success(), "{stdout}{stderr}");
    assert_contains_all(
        &stdout,
        &[
            "onebox top",
            "DNS by type",
            "DNS by rcode",
            "HTTP by status",
            "DB commits",
            "p99",
        ],
    );
    let a_rate: f64 = stdout
        .lines()
        .find(|l| l.starts_with("DNS by type"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "A").nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no A rate in:\n{stdout}"));
    assert!(a_rate > 0.0, "{stdout}");
    assert!(!stdout.contains('\x1b'), "--once prints no escape codes");

    let (status, _, stderr) = run_onebox(&["top", "--once", "--metrics", "127.0.0.1:9"], None);
    assert!(!status.success());
    assert_contains(&stderr, "cannot reach the metrics listener");
}
