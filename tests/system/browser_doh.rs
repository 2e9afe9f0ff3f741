//! A real browser uses onebox as its secure DNS: headless Chromium, with onebox's
//! CA trusted through an NSS database and DNS over HTTPS set in its profile, loads
//! https://www.foobar.com/ in a network namespace where plain DNS reaches nothing;
//! without the CA, or without DoH, the same load fails.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::ops::RangeInclusive;

use crate::harness::*;

/// The server.log lines written during one load, from the script's
/// "NAME: log lines FROM-TO" finding.
fn log_range(stdout: &str, name: &str) -> RangeInclusive<usize> {
    let prefix = format!("{name}: log lines ");
    let (from, to) = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|range| range.split_once('-'))
        .unwrap_or_else(|| panic!("no log range for {name}:\n{stdout}"));
    from.parse().unwrap()..=to.parse().unwrap()
}

/// The JSON log events on those (1-based) lines.
fn events_in(log: &str, range: RangeInclusive<usize>) -> Vec<serde_json::Value> {
    log.lines()
        .enumerate()
        .filter(|(i, _)| range.contains(&(i + 1)))
        .filter_map(|(_, l)| serde_json::from_str(l).ok())
        .collect()
}

fn asked_over_doh(events: &[serde_json::Value], qtype: &str) -> bool {
    events.iter().any(|e| {
        e["target"] == "onebox::dns::query"
            && e["transport"] == "https"
            && e["qname"] == "www.foobar.com."
            && e["qtype"] == qtype
            && e["rcode"] == "NOERROR"
    })
}

fn served(events: &[serde_json::Value], method: &str, host: &str, path: &str) -> bool {
    events.iter().any(|e| {
        e["target"] == "onebox::web::access"
            && e["method"] == method
            && e["host"] == host
            && e["path"] == path
            && e["status"] == 200
    })
}

#[test]
fn chromium_resolves_over_onebox_doh_and_loads_the_site_over_https() {
    skip_unless!(
        require_root(),
        require_tool("certutil", "libnss3-tools"),
        require_tool("chromium", "chromium"),
        require_tool("unshare", "util-linux")
    );
    let (stdout, artifacts) = run_e2e_script("browser-doh-e2e.sh", "browser-doh");
    let read = |name: &str| std::fs::read_to_string(artifacts.join(name)).unwrap_or_default();
    let log = read("server.log");
    let context = || {
        format!(
            "{stdout}\n--- chromium.err (tail) ---\n{}",
            tail(&read("chromium.err"))
        )
    };

    // Outside Chromium the name does not resolve: only DoH can give it.
    assert!(stdout.contains("getent: none"), "{}", context());

    // Trusted CA, secure DNS with a GET template: our page, over HTTP/2 and TLS.
    let dom = read("trusted.html");
    assert_contains_all(
        &dom,
        &["How this page reached you", "HTTP/2 (h2)</strong>, TLS."],
    );
    let trusted = events_in(&log, log_range(&stdout, "trusted"));
    assert!(
        asked_over_doh(&trusted, "A"),
        "no DoH query for www.foobar.com A while the page loaded:\n{log}"
    );
    assert!(served(&trusted, "GET", "127.0.0.1", "/dns-query"), "{log}");
    assert!(served(&trusted, "GET", "www.foobar.com", "/"), "{log}");

    // Chromium's own record: the lookup of www.foobar.com ran in secure mode.
    let netlog: serde_json::Value = serde_json::from_str(&read("netlog.json"))
        .unwrap_or_else(|e| panic!("netlog.json is not JSON ({e}): {}", context()));
    let secure_job = netlog["events"].as_array().is_some_and(|events| {
        events.iter().any(|e| {
            e["params"]["host"] == "https://www.foobar.com" && e["params"]["secure_dns_mode"] == 2
        })
    });
    assert!(
        secure_job,
        "no secure-mode (2) resolver job for https://www.foobar.com in the net-log"
    );

    // The same with a POST template (no {?dns}).
    let dom = read("post.html");
    assert!(
        dom.contains("How this page reached you"),
        "POST DoH: {}",
        context()
    );
    let post = events_in(&log, log_range(&stdout, "post"));
    assert!(asked_over_doh(&post, "A"), "POST DoH:\n{log}");
    assert!(served(&post, "POST", "127.0.0.1", "/dns-query"), "{log}");

    // Negative controls. Without our CA in the NSS db, neither DoH nor the page
    // is trusted; with the CA but without secure DNS, plain DNS reaches nothing.
    for name in ["untrusted", "no-doh"] {
        let dom = read(&format!("{name}.html"));
        assert!(
            !dom.contains("How this page reached you"),
            "{name}: the page loaded, so the test would pass without DoH or the CA"
        );
        let events = events_in(&log, log_range(&stdout, name));
        assert!(
            !served(&events, "GET", "www.foobar.com", "/"),
            "{name}: onebox served the page:\n{log}"
        );
        assert!(
            !asked_over_doh(&events, "A"),
            "{name}: a DoH answer reached Chromium:\n{log}"
        );
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}
