//! Proves our zone files are ordinary RFC 1035 master files: BIND's
//! `named-checkzone` and NSD's `nsd-checkzone` load the shipped zone unchanged, and
//! what those mature servers reject, `onebox check` rejects too (checklist D24).
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;

/// Runs a zone checker in the zone's folder (BIND resolves `$INCLUDE` against the
/// working directory) and returns whether it accepted the zone, and its output.
fn oracle(tool: &str, package: &str, file: &Path) -> (bool, String) {
    assert_tool(tool, package);
    let mut command = Command::new(tool);
    command
        .arg("foobar.com")
        .arg(file)
        .current_dir(file.parent().expect("a file in a folder"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, stdout, stderr) = run_bounded(command);
    (status.success(), format!("{stdout}{stderr}"))
}

fn named_checkzone(file: &Path) -> (bool, String) {
    oracle("named-checkzone", "bind9-utils", file)
}

fn nsd_checkzone(file: &Path) -> (bool, String) {
    oracle("nsd-checkzone", "nsd", file)
}

fn onebox_check(file: &Path) -> (bool, String) {
    let path = file.display().to_string();
    let (status, stdout, stderr) = run_onebox(&["check", &path], None);
    (status.success(), format!("{stdout}{stderr}"))
}

/// Asserts the checker `tool` accepts zones/foobar.com.zone; returns its output.
fn assert_loads_the_shipped_zone(tool: &str, package: &str) -> String {
    let (ok, output) = oracle(tool, package, &repo_path("zones/foobar.com.zone"));
    assert!(ok, "{tool} rejected zones/foobar.com.zone:\n{output}");
    output
}

/// Asserts the first `rtype` record `dig` gets for `name` has the data `want`.
fn assert_first_answer(server: &Onebox, name: &str, rtype: &str, want: &str) {
    let dig = server.dig(&[name, rtype]);
    assert_eq!(dig.answers_of(rtype)[0].data, want, "{}", dig.stdout);
}

#[test]
fn bind_loads_the_shipped_zone() {
    skip_unless!(require_tool("named-checkzone", "bind9-utils"));
    let output = assert_loads_the_shipped_zone("named-checkzone", "bind9-utils");
    assert_contains(&output, "OK");
}

#[test]
fn nsd_loads_the_shipped_zone() {
    skip_unless!(require_tool("nsd-checkzone", "nsd"));
    assert_loads_the_shipped_zone("nsd-checkzone", "nsd");
}

/// Each case: a zone, whether BIND rejects it, whether NSD rejects it. onebox
/// rejects them all; where an oracle accepts, the comment says why we are stricter.
fn cases() -> Vec<(&'static str, String, bool, bool)> {
    vec![
        (
            "no type",
            format!("{SMALL_ZONE_HEAD}www 300 IN\n"),
            true,
            true,
        ),
        (
            "CNAME and other data",
            format!("{SMALL_ZONE_HEAD}www CNAME foobar.com.\nwww A 127.0.0.1\n"),
            true,
            true,
        ),
        (
            "CNAME at the apex",
            format!("{SMALL_ZONE_HEAD}@ CNAME www\n"),
            true,
            true,
        ),
        (
            "no SOA",
            "$ORIGIN foobar.com.\n$TTL 300\n@ NS ns1\nns1 A 127.0.0.1\n".into(),
            true,
            true,
        ),
        (
            "label over 63 bytes",
            format!("{SMALL_ZONE_HEAD}{} A 127.0.0.1\n", "a".repeat(64)),
            true,
            true,
        ),
        (
            "bad IPv4 address",
            format!("{SMALL_ZONE_HEAD}www A 300.1.1.1\n"),
            true,
            true,
        ),
        (
            "missing $INCLUDE",
            format!("{SMALL_ZONE_HEAD}$INCLUDE missing.inc\n"),
            true,
            true,
        ),
        (
            "TXT string over 255 bytes",
            format!("{SMALL_ZONE_HEAD}txt TXT \"{}\"\n", "a".repeat(300)),
            true,
            true,
        ),
        (
            "data left over after the record",
            format!("{SMALL_ZONE_HEAD}www 300 IN A 192.0.2.1 extra\n"),
            true,
            true,
        ),
        // NSD wraps an MX preference over 65535; BIND and onebox refuse it.
        (
            "MX preference over 65535",
            format!("{SMALL_ZONE_HEAD}@ MX 70000 mail\n"),
            true,
            false,
        ),
        // NSD loads a zone without NS; BIND and onebox do not: a zone must name its servers.
        (
            "no NS",
            "$ORIGIN foobar.com.\n$TTL 300\n@ SOA ns1 h 1 2 3 4 5\nns1 A 127.0.0.1\n".into(),
            true,
            false,
        ),
        // BIND drops out-of-zone data with a warning; NSD and onebox refuse the file,
        // since a record that is silently not served is a mistake waiting to be found.
        (
            "record outside the zone",
            format!("{SMALL_ZONE_HEAD}x.example.org. A 192.0.2.1\n"),
            false,
            true,
        ),
    ]
}

#[test]
fn we_reject_what_bind_and_nsd_reject() {
    skip_unless!(
        require_tool("named-checkzone", "bind9-utils"),
        require_tool("nsd-checkzone", "nsd")
    );
    let mut failures = Vec::new();
    for (case, text, bind_rejects, nsd_rejects) in cases() {
        let dir = TempDir::new("compat");
        let file = dir.write("foobar.com.zone", &text);
        let (bind_ok, bind_out) = named_checkzone(&file);
        let (nsd_ok, nsd_out) = nsd_checkzone(&file);
        let (ours_ok, ours_out) = onebox_check(&file);
        if bind_ok == bind_rejects {
            failures.push(format!(
                "{case}: named-checkzone accepted={bind_ok}\n{bind_out}"
            ));
        }
        if nsd_ok == nsd_rejects {
            failures.push(format!(
                "{case}: nsd-checkzone accepted={nsd_ok}\n{nsd_out}"
            ));
        }
        if ours_ok {
            failures.push(format!("{case}: onebox check accepted it\n{ours_out}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The other direction: a zone using the master-file features people write
/// (relative names, `@` in RDATA, TTL units, parentheses, `$INCLUDE`, quoted TXT)
/// loads in all three.
#[test]
fn a_zone_all_three_accept() {
    skip_unless!(
        require_tool("dig", "bind9-dnsutils"),
        require_tool("named-checkzone", "bind9-utils"),
        require_tool("nsd-checkzone", "nsd")
    );
    let dir = TempDir::new("compat");
    dir.write("hosts.inc", "mail 1h IN A 192.0.2.25\n");
    let file = dir.write(
        "foobar.com.zone",
        "$ORIGIN foobar.com.\n$TTL 1h\n\
         @ IN SOA ns1 hostmaster (\n  2026112601 ; serial\n  2h 1h 2w 5m )\n\
         @ IN NS ns1\n\
         ns1 IN A 127.0.0.1\n\
         @ IN A 127.0.0.1\n\
         @ IN MX 10 @\n\
         www IN CNAME @\n\
         txt IN TXT \"hello; world\" \"two\"\n\
         $INCLUDE hosts.inc\n",
    );
    let (bind_ok, bind_out) = named_checkzone(&file);
    assert!(bind_ok, "{bind_out}");
    let (nsd_ok, nsd_out) = nsd_checkzone(&file);
    assert!(nsd_ok, "{nsd_out}");
    let (ours_ok, ours_out) = onebox_check(&file);
    assert!(ours_ok, "{ours_out}");

    // And serve reads them the way BIND would.
    let server = Onebox::spawn().zones(dir.path()).start();
    let dig = server.dig(&["mail.foobar.com", "A"]);
    assert_eq!(dig.answer.len(), 1, "{}", dig.stdout);
    assert_eq!(
        (dig.answer[0].ttl, dig.answer[0].data.as_str()),
        (3600, "192.0.2.25")
    );
    assert_first_answer(&server, "foobar.com", "MX", "10 foobar.com.");
    let dig = server.dig(&["www.foobar.com", "A"]);
    let rtypes = rtypes(&dig.answer);
    assert_eq!(rtypes, ["CNAME", "A"], "{}", dig.stdout);
    assert_first_answer(&server, "txt.foobar.com", "TXT", "\"hello; world\" \"two\"");
    let dig = server.dig(&["nope.foobar.com", "A"]);
    assert_eq!(dig.authority[0].ttl, 300, "min(1h, 5m):\n{}", dig.stdout);
}
