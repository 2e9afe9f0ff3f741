//! The web server against hostile HTTP that needs extra tools (issue 7, H1–H3,
//! H8): slowhttptest's slow clients are closed while others are served, and the
//! HTTP/2 floods of scripts/harden/h2_flood.py (run in the Python venv) stay
//! bounded.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::harness::*;

// ---------------------------------------------------------------------------------
// H1–H3: slow clients (slowhttptest)
// ---------------------------------------------------------------------------------

/// One row of slowhttptest's CSV statistics (`-g -o FILE`), one per second.
#[derive(Debug, Clone, Copy)]
struct SlowRow {
    seconds: u32,
    closed: u32,
    connected: u32,
    available: bool,
}

fn slow_rows(csv: &str) -> Vec<SlowRow> {
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h.starts_with(name))
            .unwrap_or_else(|| panic!("no {name:?} column in slowhttptest CSV: {header:?}"))
    };
    let (s, c, n, a) = (
        col("seconds"),
        col("closed"),
        col("connected"),
        col("service"),
    );
    lines
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            Some(SlowRow {
                seconds: cells.get(s)?.parse().ok()?,
                closed: cells.get(c)?.parse().ok()?,
                connected: cells.get(n)?.parse().ok()?,
                available: cells.get(a)?.parse::<u32>().ok()? != 0,
            })
        })
        .collect()
}

/// What one slowhttptest run saw: its statistics rows, and why it ended (its
/// "Exit status" line: "No open connections left" means the server closed them all,
/// "Hit test time limit" means some were still open at the end).
#[derive(Debug)]
struct SlowRun {
    rows: Vec<SlowRow>,
    exit: String,
}

/// Runs slowhttptest with `args` (bounded by its own `-l` and by `timeout`).
fn slowhttptest(out: &TempDir, name: &str, args: &[&str]) -> std::thread::JoinHandle<SlowRun> {
    let prefix = out.path().join(name);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let output = Command::new("timeout")
            .args(["-k", "5", "90", "slowhttptest", "-g", "-o"])
            .arg(&prefix)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("run slowhttptest");
        let stdout = strip_ansi(&String::from_utf8_lossy(&output.stdout));
        let exit = stdout
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("Exit status:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("slowhttptest {args:?} printed no exit status:\n{stdout}"));
        let csv = std::fs::read_to_string(prefix.with_extension("csv"))
            .unwrap_or_else(|e| panic!("slowhttptest {args:?} wrote no CSV: {e}"));
        SlowRun {
            rows: slow_rows(&csv),
            exit,
        }
    })
}

/// 900 slow connections at once, 300 of each kind: headers that never finish
/// (slowloris), a body trickled in (R-U-D-Y, over HTTPS to `/dns-query`, the one
/// body-reading route that answers for a bare address), and pipelined responses
/// read through a 1-byte window. While they run, another client is served every
/// second; by the end every slow connection has been closed by the server.
#[test]
fn slow_clients_are_closed_and_others_are_served_meanwhile() {
    skip_unless!(require_tool("slowhttptest", "slowhttptest"));
    skip_unless!(require_tool("ss", "iproute2"));
    let server = Onebox::start();
    let http = server.http_addr();
    let https = server.ready["https"]
        .as_str()
        .expect("ready line names https");
    let out = TempDir::new("slowhttptest");
    // The server's memory under 900 slow connections, each holding its buffers
    // until the idle sweep closes it: sampled throughout, bounded below.
    let rss_before = server.rss_kib();
    let mut peak_rss = PeakRss::watch(server.pid, Duration::from_millis(20));
    let length = "45"; // seconds: header timeout 20 s and request timeout 30 s fit in
    let h_url = format!("http://{http}/");
    let b_url = format!("https://{https}/dns-query");
    let x_url = format!("http://{http}/healthz");
    let common = ["-c", "300", "-r", "100", "-l", length];
    let runs = [
        (
            "slowloris",
            [&common[..], &["-H", "-i", "5", "-u", &h_url]].concat(),
        ),
        (
            "slow-body",
            [
                &common[..],
                &[
                    "-B",
                    "-i",
                    "5",
                    "-s",
                    "8192",
                    "-t",
                    "POST",
                    "-f",
                    "application/dns-message",
                    "-u",
                    &b_url,
                ],
            ]
            .concat(),
        ),
        (
            "slow-read",
            [
                &common[..],
                &[
                    "-X", "-w", "1", "-y", "1", "-n", "5", "-z", "32", "-k", "10", "-u", &x_url,
                ],
            ]
            .concat(),
        ),
    ];
    let handles: Vec<_> = runs
        .iter()
        .map(|(name, args)| (*name, slowhttptest(&out, name, args)))
        .collect();

    // Meanwhile, an ordinary client every second.
    let done = Arc::new(AtomicBool::new(false));
    let (served, refused) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let prober = {
        let (done, served, refused) = (done.clone(), served.clone(), refused.clone());
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            while !done.load(Ordering::Relaxed) {
                match health(http) {
                    Some(200) => served.fetch_add(1, Ordering::Relaxed),
                    _ => refused.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let mut results = BTreeMap::new();
    for (name, handle) in handles {
        results.insert(name, handle.join().expect("slowhttptest thread"));
    }
    done.store(true, Ordering::Relaxed);
    prober.join().unwrap();
    let peak_rss = peak_rss.stop();

    let mut report = String::new();
    for (name, run) in &results {
        let peak = run.rows.iter().map(|r| r.connected).max().unwrap_or(0);
        let closed = run.rows.iter().map(|r| r.closed).max().unwrap_or(0);
        let seconds = run.rows.last().map_or(0, |r| r.seconds);
        report.push_str(&format!(
            "{name}: {peak} connections held at peak, {closed} closed by the server, \
             ended after {seconds} s: {}\n",
            run.exit
        ));
    }
    let (served, refused) = (
        served.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    report.push_str(&format!(
        "ordinary client meanwhile: {served} served, {refused} not\n\
         RSS {rss_before} KiB before, {peak_rss} KiB peak\n"
    ));
    eprintln!("{report}");

    let mut server = server;
    assert!(server.is_running(), "onebox died:\n{report}");
    assert!(
        served > 10 && refused == 0,
        "the site was not available to others:\n{report}"
    );
    // The same generous bound as the idle-connection flood of about 1,400
    // sockets (tests/integration/harden_web_abuse.rs): 900 slow clients must
    // not cost more than that.
    assert!(
        peak_rss > 0 && peak_rss < 150 * 1024,
        "RSS peaked at {peak_rss} KiB under the slow clients:\n{report}"
    );
    // What the server still holds, seen from its side: a slow reader that was
    // reset may not notice for a while (it reads a few bytes every few seconds),
    // so slowhttptest's own count lags; the kernel's socket table does not.
    let held = Command::new("ss")
        .args([
            "-tnH",
            "state",
            "all",
            &format!("( sport = :{} )", http.port()),
        ])
        .output()
        .expect("run ss");
    let held: Vec<String> = String::from_utf8_lossy(&held.stdout)
        .lines()
        // TIME-WAIT is the kernel remembering a finished connection, not a held one.
        .filter(|l| !l.starts_with("LISTEN") && !l.starts_with("TIME-WAIT"))
        .map(str::to_string)
        .collect();
    assert!(
        held.is_empty(),
        "the server still holds {} slow connections after {length} s:\n{}\n{report}",
        held.len(),
        held.join("\n")
    );
    for (name, run) in &results {
        let peak = run.rows.iter().map(|r| r.connected).max().unwrap_or(0);
        assert!(
            peak >= 100,
            "{name}: the attack never held connections:\n{report}"
        );
        assert!(
            run.rows.iter().all(|r| r.available),
            "{name}: slowhttptest saw the service unavailable:\n{report}"
        );
        if *name != "slow-read" {
            assert!(
                run.exit.contains("No open connections left"),
                "{name}: the server had not closed every slow connection after {length} s:\n{report}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// H8: HTTP/2 floods
// ---------------------------------------------------------------------------------

#[test]
fn http2_floods_are_bounded_and_the_server_serves_others() {
    skip_unless!(require_venv());
    let python = venv_python();
    let script = repo_path("scripts/harden/h2_flood.py");
    let mut server = Onebox::start();
    let addr = server.http_addr();
    let rss_before = server.rss_kib();
    let floods = [
        ("rapid-reset", 20_000),
        ("continuation", 20_000),
        ("settings", 50_000),
        ("ping", 50_000),
        ("empty-data", 50_000),
    ];
    let mut report = String::new();
    let mut peak = rss_before;
    for (mode, count) in floods {
        let output = Command::new("timeout")
            .args(["-k", "5", "60"])
            .arg(&python)
            .arg(&script)
            .args([
                &addr.ip().to_string(),
                &addr.port().to_string(),
                mode,
                &count.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run h2_flood.py");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{mode}: {}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result: serde_json::Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{mode}: {e}: {text}"));
        peak = peak.max(server.rss_kib());
        report.push_str(&format!("{result}\n"));
        assert!(
            server.is_running(),
            "onebox died in the {mode} flood:\n{report}"
        );
        assert_eq!(
            result["liveness"], "200",
            "{mode}: a fresh h2 connection was not served afterwards:\n{report}"
        );
        // The floods h2 must cut short: its pending-reset, header-list and
        // empty-frame limits (RUSTSEC-2023-0034, -2024-0332, -2026-0258).
        if matches!(mode, "rapid-reset" | "continuation" | "empty-data") {
            assert!(
                !result["goaway"].is_null() || result["closed_by_server"] == true,
                "{mode}: the server neither sent GOAWAY nor closed:\n{report}"
            );
        }
    }
    report.push_str(&format!("RSS {rss_before} KiB before, {peak} KiB peak\n"));
    eprintln!("{report}");
    assert!(peak < 256 * 1024, "memory grew without bound:\n{report}");
    assert_eq!(health(addr), Some(200));
}
