//! `onebox visit` asks for AAAA as well as A and connects as RFC 8305 (Happy
//! Eyeballs) orders it: IPv6 first, the families alternating, the next attempt
//! after a refusal or 250 ms. Each attempt is reported in `--json` and in the
//! text view, so a site on `::1` is reached, and a site down on every address is
//! not called a single point of failure.

use std::net::SocketAddr;

use crate::harness::*;

/// The test zone's apex `A 127.0.0.1` line, which the IPv6 zones replace or extend.
const APEX_A: &str = "@    3600 IN A     127.0.0.1\n";

/// A zones folder whose apex has only `AAAA ::1` (`www` is still a CNAME to it).
fn aaaa_only() -> TempDir {
    assert!(TEST_ZONE_HEAD.contains(APEX_A), "the test zone changed");
    let dir = TempDir::new("zones-aaaa");
    dir.write(
        "foobar.com.zone",
        &TEST_ZONE_HEAD.replace(APEX_A, "@    3600 IN AAAA  ::1\n"),
    );
    dir
}

/// A zones folder whose apex has both `A 127.0.0.1` and `AAAA ::1`.
fn both() -> TempDir {
    test_zones("@    3600 IN AAAA  ::1\n")
}

/// `onebox serve` with its web server on `[::1]` only (the shared fixture puts it
/// on 127.0.0.1 unless told otherwise).
fn on_ipv6(zones: &TempDir) -> Onebox {
    Onebox::spawn().zones(zones.path()).http("[::1]:0").start()
}

/// Serves `zones` with the web server on `[::1]` and visits www there, which must
/// succeed: the server, the URL and the `--json` document.
fn visit_site_on_ipv6(zones: &TempDir) -> (Onebox, String, serde_json::Value) {
    let server = on_ipv6(zones);
    let url = format!("http://www.foobar.com:{}/", server.http.port());
    let (code, v) = visit_json(server.dns, &url);
    assert_eq!(code, Some(0), "the site on [::1] must be reached: {v:#}");
    (server, url, v)
}

/// `onebox visit --json`: exit code and document.
fn visit_json(dns: SocketAddr, url: &str) -> (Option<i32>, serde_json::Value) {
    let (status, out, err) = run_onebox(&["visit", "--json", "--dns", &dns.to_string(), url], None);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    (status.code(), json)
}

/// `onebox visit` (the text view, plain in a pipe): exit code and text.
fn visit_text(dns: SocketAddr, url: &str) -> (Option<i32>, String) {
    let (status, out, _) = run_onebox(&["visit", "--dns", &dns.to_string(), url], None);
    (status.code(), out)
}

/// (address, outcome) of each connection attempt, in the order started.
fn attempts(visit: &serde_json::Value) -> Vec<(String, String)> {
    step(visit, "connect")["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts in {visit:#}"))
        .iter()
        .map(|a| {
            (
                a["address"].as_str().unwrap_or_default().to_string(),
                a["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_site_only_on_ipv6_loopback_is_reached_through_its_aaaa_record() {
    let (server, url, v) = visit_site_on_ipv6(&aaaa_only());
    let dns = step(&v, "dns");
    assert_eq!(dns["qtype"], "AAAA+A");
    assert_eq!(dns["address"], "::1");
    assert_eq!(dns["addresses"], serde_json::json!(["::1"]));
    assert_eq!(
        dns["questions"],
        serde_json::json!([
            {"qtype": "AAAA", "answer": "1 address"},
            {"qtype": "A", "answer": "NODATA"},
        ])
    );
    assert_eq!(step(&v, "connect")["address"], server.http.to_string());
    assert_eq!(
        attempts(&v),
        [(server.http.to_string(), "connected".to_string())]
    );

    let (code, text) = visit_text(server.dns, &url);
    assert_eq!(code, Some(0), "{text}");
    assert_contains(&text, "www.foobar.com AAAA+A? asked");
    assert_contains(&text, "AAAA: 1 address · A: NODATA\n");
    assert_contains(&text, &format!("✓ connect  tcp {}", server.http));
}

#[test]
fn with_both_records_ipv6_is_tried_first_and_reaches_a_site_on_ipv6() {
    let (server, _, v) = visit_site_on_ipv6(&both());
    assert_eq!(
        step(&v, "dns")["addresses"],
        serde_json::json!(["::1", "127.0.0.1"]),
        "IPv6 first (RFC 8305 §4)"
    );
    assert_eq!(
        attempts(&v),
        [(server.http.to_string(), "connected".to_string())],
        "the first attempt connects, so no second is started"
    );
}

#[test]
fn with_both_records_a_refused_ipv6_attempt_hands_over_to_ipv4_and_both_are_shown() {
    let zones = both();
    let server = Onebox::spawn().zones(zones.path()).start();
    let port = server.http_addr().port();
    let url = format!("http://www.foobar.com:{port}/");
    let (v6, v4) = (format!("[::1]:{port}"), format!("127.0.0.1:{port}"));
    let (code, v) = visit_json(server.dns_addr(), &url);
    assert_eq!(code, Some(0), "{v:#}");
    assert_eq!(
        attempts(&v),
        [
            (v6.clone(), "refused".to_string()),
            (v4.clone(), "connected".to_string())
        ]
    );
    assert_eq!(step(&v, "connect")["address"], v4);
    let refused = &step(&v, "connect")["attempts"][0];
    assert_eq!(refused["ok"], false);
    assert!(refused["micros"].is_u64() && refused["start_micros"].is_u64());

    let (code, text) = visit_text(server.dns_addr(), &url);
    assert_eq!(code, Some(0), "{text}");
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("1. {v6}")) && l.contains("refused")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("2. {v4}")) && l.contains("connected")),
        "{text}"
    );
}

#[test]
fn nothing_on_either_address_names_both_and_is_no_single_point_of_failure() {
    let zones = both();
    let server = Onebox::spawn().zones(zones.path()).start();
    // A port that was just free: nothing listens there on either address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://www.foobar.com:{port}/");
    let (code, v) = visit_json(server.dns_addr(), &url);
    assert_eq!(code, Some(4), "{v:#}");
    assert_eq!(v["error"]["kind"], "connection_refused");
    assert_eq!(
        attempts(&v),
        [
            (format!("[::1]:{port}"), "refused".to_string()),
            (format!("127.0.0.1:{port}"), "refused".to_string())
        ]
    );
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "nothing listens on any of [::1]:{port}, 127.0.0.1:{port}"
        )) && !message.contains("single point of failure"),
        "{message}"
    );
}

#[test]
fn doctor_reads_the_aaaa_record_too() {
    let zones = aaaa_only();
    let server = on_ipv6(&zones);
    let run = server.doctor(&["--json", "--zones", path_text(zones.path())]);
    let report = run.json();
    let check = |name: &str| {
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .find(|c| c["check"] == name && c["zone"] == "foobar.com")
            .unwrap_or_else(|| panic!("no {name} check: {report:#}"))
            .clone()
    };
    // With only AAAA at the apex, onebox's records still give an address, so the
    // OS resolver is compared with it rather than skipped (this test machine's
    // resolver does not know the name, so the comparison fails).
    let os = check("os_resolver");
    assert_ne!(os["status"], "skip", "{os:#}");
    assert!(
        !os["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("gives no address"),
        "{os:#}"
    );
    assert_eq!(check("http")["status"], "pass", "{report:#}");
    assert_eq!(run.code, Some(1), "the OS resolver check fails here");
}
