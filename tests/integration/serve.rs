//! Proves the `serve` contract that scripts and test fixtures depend on: exactly one
//! JSON ready line on stdout with working addresses and the real pid, the built-in
//! zone when there is no zones folder, a clean exit 0 on SIGTERM and SIGINT, and
//! one query-log event per DNS query, as JSON with `--log-format json`.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::net::TcpStream;

use crate::harness::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

#[test]
fn ready_line_is_one_json_object_with_working_addresses() {
    let mut server = Onebox::start();
    let ready = server.ready.clone();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(
        ready["pid"].as_u64(),
        Some(u64::from(server.pid)),
        "{ready}"
    );
    assert_eq!(ready["zones"], serde_json::json!(["foobar.com"]), "{ready}");

    let dns = server.dns_addr();
    assert!(dns.ip().is_loopback() && dns.port() != 0, "{ready}");
    // The same port serves UDP and TCP.
    let ask = query("foobar.com.", RecordType::SOA);
    assert_eq!(
        ask_udp(dns, &ask).metadata.response_code,
        ResponseCode::NoError
    );
    assert_eq!(
        ask_tcp(dns, &ask).metadata.response_code,
        ResponseCode::NoError
    );
    let http = server.http_addr();
    assert!(http.ip().is_loopback() && http.port() != 0, "{ready}");

    let status = server.terminate();
    assert!(status.success(), "exit status {status}");
    let stdout = server.stdout_lines();
    assert_eq!(
        stdout.len(),
        1,
        "stdout must hold only the ready line: {stdout:?}"
    );
}

/// The web server accepts connections on the address the ready line gives.
#[test]
fn ready_line_http_address_accepts_connections() {
    let server = Onebox::start();
    let stream = TcpStream::connect(server.http_addr());
    assert!(
        stream.is_ok(),
        "cannot connect to the ready line's http address {}: {stream:?}",
        server.http_addr()
    );
}

/// Without a zones folder (none in the working directory), the zone compiled into
/// the binary is served, so `onebox` works from anywhere.
#[test]
fn built_in_zone_when_there_is_no_zones_folder() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let cwd = TempDir::new("cwd");
    let server = Onebox::spawn().default_zones().cwd(cwd.path()).start();
    assert_eq!(server.ready["zones"], serde_json::json!(["foobar.com"]));
    let dig = server.dig(&["www.foobar.com", "A"]);
    let rtypes = rtypes(&dig.answer);
    assert_eq!(rtypes, ["CNAME", "A"], "{}", dig.stdout);
    assert_eq!(dig.answers_of("A")[0].data, "127.0.0.1");

    // A SIGHUP has nothing to reload and must not hurt.
    let mark = server.stderr().len();
    server.signal(libc::SIGHUP);
    server.wait_for_log("reload", mark);
    assert_eq!(server.dig(&["foobar.com", "SOA"]).status, "NOERROR");
}

/// The same with an explicit `--zones` naming a folder that does not exist.
#[test]
fn built_in_zone_when_the_zones_folder_is_missing() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let cwd = TempDir::new("cwd");
    let server = Onebox::spawn()
        .zones(cwd.path().join("no-such-folder"))
        .start();
    assert_eq!(server.dig(&["foobar.com", "A"]).answers_of("A").len(), 1);
}

#[test]
fn sigterm_and_sigint_stop_with_exit_status_0() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut server = Onebox::start();
        // Let it do some work first.
        assert_alive(&mut server);
        server.signal(signal);
        let status = server.wait_exit();
        assert!(status.success(), "signal {signal}: exit status {status}");
        assert_eq!(server.stdout_lines().len(), 1);
    }
}

/// A fixture user stops the server as soon as the ready line says it is ready.
/// "Ready" includes the signal handlers: a SIGTERM or SIGINT sent right after the
/// line must still be a graceful stop with status 0, not death by signal, and a
/// SIGHUP must be a reload, not the default action (which terminates).
#[test]
fn signals_right_after_the_ready_line_are_handled() {
    for round in 0..5 {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            let mut server = Onebox::start();
            server.signal(signal);
            let status = server.wait_exit();
            assert!(
                status.success(),
                "round {round}, signal {signal} right after the ready line: exit status {status}\n{}",
                server.stderr()
            );
        }
        let mut server = Onebox::start();
        server.signal(libc::SIGHUP);
        server.wait_for_log("reload", 0);
        assert_alive(&mut server);
    }
}

/// Each DNS query logs one event with target `onebox::dns::query` and the
/// fields client, transport, qname, qtype, rcode, answers, micros.
#[test]
fn each_query_is_logged() {
    let Some(server) = dig_onebox() else { return };
    let mark = server.stderr().len();
    server.dig(&["+tcp", "nope.foobar.com", "AAAA"]);
    let log = server.wait_for_log("nope.foobar.com", mark);
    let line = log[mark..]
        .lines()
        .find(|l| l.contains("onebox::dns::query") && l.contains("nope.foobar.com"))
        .unwrap_or_else(|| panic!("no query event:\n{log}"));
    for field in [
        "client=",
        "transport=",
        "qname=",
        "qtype=",
        "rcode=",
        "answers=",
        "micros=",
    ] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
    assert_contains_all(line, &["tcp", "AAAA"]);
}

#[test]
fn json_log_format_writes_json_lines_with_query_events() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = Onebox::spawn()
        .global_args(["--log-format", "json"])
        .start();
    let mark = server.stderr().len();
    server.dig(&["www.foobar.com", "A"]);
    server.dig(&["example.org", "A"]);
    let log = server.wait_for_log("example.org", mark);

    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let queries: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["target"] == "onebox::dns::query")
        .collect();
    let find = |qname: &str| {
        queries
            .iter()
            .find(|e| e["qname"] == qname)
            .unwrap_or_else(|| panic!("no query event for {qname}:\n{log}"))
    };
    let www = find("www.foobar.com.");
    assert_eq!(www["qtype"], "A", "{www}");
    assert_eq!(www["transport"], "udp", "{www}");
    assert!(www["rcode"].is_string(), "{www}");
    assert_eq!(www["answers"].as_u64(), Some(2), "{www}");
    assert!(
        www["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.1:")),
        "{www}"
    );
    assert!(www["micros"].is_u64(), "{www}");
    let refused = find("example.org.");
    assert_ne!(refused["rcode"], www["rcode"], "{refused}");
}

/// Logs on a pipe or in a file are for reading later and for machines: no colour
/// escape sequences unless stderr is a terminal (as ripgrep and cargo do).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let Some(server) = dig_onebox() else { return };
    server.dig(&["foobar.com", "SOA"]);
    let log = server.wait_for_log("onebox::dns::query", 0);
    let raw = server.stderr_raw();
    assert!(
        !raw.contains('\u{1b}'),
        "ANSI escape codes in piped stderr:\n{}",
        raw.escape_debug()
    );
    assert!(!log.is_empty());
}

/// The contract lists `--log-format` among serve's flags: after `serve` works too.
#[test]
fn log_format_is_accepted_after_serve() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = Onebox::spawn().args(["--log-format", "json"]).start();
    let mark = server.stderr().len();
    server.dig(&["foobar.com", "SOA"]);
    let log = server.wait_for_log("onebox::dns::query", mark);
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let parsed: Result<serde_json::Value, _> = serde_json::from_str(line);
        assert!(parsed.is_ok(), "not a JSON line: {line}");
    }
}
