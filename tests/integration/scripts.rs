//! The learner's scripts run end to end and show what they promise: the demo's
//! tour, and each one-server weakness happening (crash, maintenance, saturation).

use std::time::Duration;

use crate::harness::*;

/// A learner's script, run to success; these take seconds, the limit is generous.
pub(crate) fn run(script: &str, env: &[(&str, &str)]) -> String {
    let (stdout, stderr) = run_script(script, &[], env, Duration::from_secs(300));
    format!("{stdout}{stderr}")
}

/// The lines onebox itself printed (visit's hops and verdicts, `maintenance`'s
/// answer), without the script's narration: its notes are indented and its
/// headings start with `==`, so an assertion on these lines cannot pass on text
/// the script wrote itself.
fn onebox_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with(char::is_whitespace) && !l.contains("== "))
        .collect()
}

/// Asserts that each needle occurs in one of `lines`, each after the previous.
fn assert_in_order(lines: &[&str], needles: &[&[&str]], out: &str) {
    let mut rest = lines;
    for needle in needles {
        let found = rest
            .iter()
            .position(|line| needle.iter().all(|part| line.contains(part)))
            .unwrap_or_else(|| panic!("no line with {needle:?} after the earlier ones:\n{out}"));
        rest = &rest[found + 1..];
    }
}

/// The filter the assertions below rely on: the scenario's own words (a heading,
/// an indented note that says "connection refused") are not onebox's lines.
#[test]
fn the_scripts_narration_is_not_taken_for_onebox_output() {
    let out = "\u{1b}[1m== onebox maintenance on\u{1b}[0m\n\
               maintenance on\n\
               ✗ connect  tcp 127.0.0.1:9                        0.10 ms\n   \
               DNS ✓, connect ✗ (connection refused): the name leads nowhere\n";
    assert_eq!(
        onebox_lines(out),
        [
            "maintenance on",
            "✗ connect  tcp 127.0.0.1:9                        0.10 ms"
        ]
    );
    let narration_only = std::panic::catch_unwind(|| {
        assert_in_order(&onebox_lines(out), &[&["connection refused"]], out);
    });
    assert!(narration_only.is_err(), "a note's text passed for onebox's");
}

#[test]
fn the_demo_walks_from_name_to_page() {
    skip_unless!(
        require_tool("curl", "curl"),
        require_tool("dig", "bind9-dnsutils")
    );
    let out = run("scripts/demo.sh", &[]);
    // dig's answer from onebox: www is a CNAME for the apex.
    let records: Vec<DigRecord> = out.lines().filter_map(parse_record).collect();
    assert!(
        records
            .iter()
            .any(|r| r.name == "www.foobar.com." && r.rtype == "CNAME" && r.data == "foobar.com."),
        "no CNAME for www in dig's answer:\n{out}"
    );
    assert_contains_all(
        &out,
        &[
            "result     ok, 200 OK",
            "this post is in redb now",
            "over HTTP/2",
            "data: {\"kind\":\"dns\"",
        ],
    );
}

#[test]
fn a_crash_takes_every_hop_down_and_a_surviving_name_leads_nowhere() {
    let out = run("scripts/scenarios/single-point-of-failure.sh", &[]);
    // What `onebox visit` saw: all green, then no DNS at all after the kill -9,
    // then DNS from the survivor pointing at an address where nothing listens.
    assert_in_order(
        &onebox_lines(&out),
        &[
            &["result", "ok, 200 OK"],
            &["✗ dns"],
            &["error", "dns:", "nothing answered"],
            &["✓ dns"],
            &["✗ connect"],
            &["error", "connect:", "connection refused"],
        ],
        &out,
    );
}

#[test]
fn maintenance_downs_the_site_while_dns_answers() {
    skip_unless!(require_tool("curl", "curl"));
    let out = run("scripts/scenarios/maintenance.sh", &[]);
    // What onebox printed: `maintenance on` answered, visit found DNS and the
    // connection fine but a 503, and after `maintenance off` the page again.
    assert_in_order(
        &onebox_lines(&out),
        &[
            &["result", "ok, 200 OK"],
            &["maintenance on"],
            &["✓ dns"],
            &["✓ connect"],
            &["✗ http", "503"],
            &["maintenance off"],
            &["result", "ok, 200 OK"],
        ],
        &out,
    );
    assert_contains(&out, "/readyz → 503");
}

#[test]
fn load_shows_the_single_server_ceiling() {
    skip_unless!(require_tool("wrk", "wrk"));
    let out = run("scripts/scenarios/scale.sh", &[("SECONDS_PER_STEP", "1")]);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w.parse::<u32>().is_ok())
        })
        .collect();
    assert_eq!(rows.len(), 5, "one row per load step:\n{out}");
    for row in rows {
        let rps: f64 = row
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(rps > 0.0, "no throughput measured: {row}\n{out}");
    }
}
