//! The learner's scripts run end to end and show what they promise: the demo's
//! tour, and each one-server weakness happening (crash, maintenance, saturation).

use std::path::Path;
use std::process::Command;

use crate::harness::*;

fn run(script: &str, env: &[(&str, &str)]) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join(script))
        .env("ONEBOX", env!("CARGO_BIN_EXE_onebox"))
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{script} failed:\n{text}");
    text
}

#[test]
fn the_demo_walks_from_name_to_page() {
    skip_unless!(
        require_tool("curl", "curl"),
        require_tool("dig", "bind9-dnsutils")
    );
    let out = run("scripts/demo.sh", &[]);
    assert!(out.contains("www.foobar.com.\t"), "no dig answer:\n{out}");
    assert!(out.contains("CNAME"), "{out}");
    assert!(
        out.contains("result     ok, 200 OK"),
        "visit failed:\n{out}"
    );
    assert!(
        out.contains("this post is in redb now"),
        "API post missing:\n{out}"
    );
    assert!(out.contains("over HTTP/2"), "HTTPS step failed:\n{out}");
    assert!(
        out.contains("data: {\"kind\":\"dns\""),
        "live view empty:\n{out}"
    );
}

#[test]
fn a_crash_takes_every_hop_down_and_a_surviving_name_leads_nowhere() {
    let out = run("scripts/scenarios/single-point-of-failure.sh", &[]);
    assert!(
        out.contains("✗ dns"),
        "DNS should fail with the server gone:\n{out}"
    );
    assert!(out.contains("connection refused"), "{out}");
    assert!(out.contains("single point of failure"), "{out}");
}

#[test]
fn maintenance_downs_the_site_while_dns_answers() {
    let out = run("scripts/scenarios/maintenance.sh", &[]);
    assert!(
        out.contains("maintenance on") && out.contains("maintenance off"),
        "{out}"
    );
    assert!(out.contains("✗ http") && out.contains("503"), "{out}");
    assert!(out.contains("/readyz → 503"), "{out}");
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
