//! Proves logging never blocks serving: with stderr a pipe that nobody reads, DNS
//! and HTTP keep answering (log lines are dropped instead), and the number of
//! dropped lines is reported once stderr is read again.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{
    DEADLINE, ONEBOX, QUERY_LOG, encode, query, raw_exchange, repo_path, terminate, udp_try,
};
use hickory_server::proto::rr::RecordType;

#[test]
fn a_stderr_nobody_reads_never_stops_dns_or_http() {
    let mut child = Command::new(ONEBOX)
        .args([
            "serve",
            "--dns",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--ephemeral",
        ])
        .arg("--zones")
        .arg(repo_path("zones"))
        // The per-query events are what floods the log queue.
        .env("RUST_LOG", QUERY_LOG)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open and not read until the load is over: the pipe fills after ~64 KiB.
    let stderr = child.stderr.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let addr = |key: &str| -> SocketAddr { ready[key].as_str().unwrap().parse().unwrap() };
    let (dns, http) = (addr("dns"), addr("http"));

    // The figure is 5,000 queries and 500 requests; 12,000 queries also
    // overflow the server's log queue (1 MiB, about 7,000 lines), so some must be dropped.
    let mut unanswered = Vec::new();
    for i in 0..12_000u32 {
        let mut message = query("www.foobar.com.", RecordType::A);
        message.metadata.id = (i % 65_536) as u16;
        if udp_try(dns, &encode(&message), Duration::from_secs(2)).is_none() {
            unanswered.push(format!("dns query {i}"));
            break;
        }
    }
    let request = b"GET / HTTP/1.1\r\nHost: foobar.com\r\nConnection: close\r\n\r\n";
    for i in 0..500 {
        if unanswered.is_empty() {
            let answer = raw_exchange(http, request, Duration::from_secs(2));
            if answer.status != Some(200) {
                unanswered.push(format!("http request {i}: {:?}", answer.status));
            }
        }
    }

    // The queue of unwritten lines is bounded, so memory is too (printed for the README).
    let status_file = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    if let Some(rss) = status_file.lines().find(|l| l.starts_with("VmRSS:")) {
        println!("with stderr unread, after the load: {rss}");
    }

    // Now read stderr, so the server can flush and say how many lines it dropped.
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut text);
        text
    });
    let status = terminate(&mut child, DEADLINE);
    let log = reader.join().unwrap();
    assert!(unanswered.is_empty(), "not answered: {unanswered:?}");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // The figure for the README's Reliability section (shown with --nocapture).
    if let Some(report) = log.lines().find(|l| l.contains("log lines dropped")) {
        println!("{report}");
    }
    assert!(
        log.contains("log lines dropped"),
        "the dropped lines are counted and reported: {}",
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
}
