//! Proves `onebox check FILE...` and `serve` reject bad zone data (checklist D24)
//! with `FILE:LINE: message` for every problem and exit code 1, and accept the
//! zone the repository ships.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::path::{Path, PathBuf};

use crate::harness::*;

/// Runs `onebox check` on the given files.
fn check(files: &[&Path]) -> (i32, String, String) {
    let args: Vec<String> = std::iter::once("check".to_string())
        .chain(files.iter().map(|f| f.display().to_string()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (status, stdout, stderr) = run_onebox(&args, None);
    (status.code().unwrap_or(-1), stdout, stderr)
}

/// A zone file holding `text` (its folder, to keep, and its path) and what
/// `onebox check` says of it: (exit code, stdout, stderr).
fn check_zone(text: &str) -> (TempDir, PathBuf, (i32, String, String)) {
    let dir = TempDir::new("check");
    let file = dir.write("foobar.com.zone", text);
    let result = check(&[&file]);
    (dir, file, result)
}

/// `onebox check` passes a zone file holding `text`.
fn assert_zone_passes(text: &str) {
    let (_dir, _, (code, stdout, stderr)) = check_zone(text);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// Asserts `check` fails on `text` with exactly one problem at `line`, whose
/// message contains `words`.
fn assert_one_problem(case: &str, text: &str, line: usize, words: &str) {
    let (_dir, file, (code, stdout, stderr)) = check_zone(text);
    let what = format!("{case}:\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}");
    assert_eq!(code, 1, "{what}");
    let problems: Vec<&str> = stdout.lines().collect();
    assert_eq!(problems.len(), 1, "expected one problem: {what}");
    let prefix = format!("{}:{line}: ", file.display());
    assert!(
        problems[0].starts_with(&prefix),
        "expected {prefix:?} at the start: {what}"
    );
    assert!(
        problems[0].to_lowercase().contains(&words.to_lowercase()),
        "expected {words:?} in the message: {what}"
    );
}

#[test]
fn the_shipped_zone_passes() {
    let zone = repo_path("zones/foobar.com.zone");
    let (code, stdout, stderr) = check(&[&zone]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_contains(&stdout, "foobar.com");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    assert!(!stderr.contains("warning"), "{stderr}");
}

#[test]
fn a_line_with_no_type() {
    assert_one_problem(
        "no type",
        &format!("{SMALL_ZONE_HEAD}www 300 IN\n"),
        6,
        "no record type",
    );
    assert_one_problem(
        "address but no type",
        &format!("{SMALL_ZONE_HEAD}www 127.0.0.1\n"),
        6,
        "not a record type",
    );
}

#[test]
fn a_record_outside_the_origin() {
    assert_one_problem(
        "outside",
        &format!("{SMALL_ZONE_HEAD}\n\nx.example.org. A 192.0.2.1\n"),
        8,
        "outside the zone",
    );
}

#[test]
fn cname_beside_other_data() {
    assert_one_problem(
        "CNAME and A",
        &format!("{SMALL_ZONE_HEAD}www CNAME foobar.com.\nwww A 127.0.0.1\n"),
        7,
        "CNAME",
    );
    // The other order names the same line: the second record is the offender.
    assert_one_problem(
        "A and CNAME",
        &format!("{SMALL_ZONE_HEAD}www A 127.0.0.1\nwww CNAME foobar.com.\n"),
        6,
        "CNAME",
    );
}

#[test]
fn cname_at_the_apex() {
    assert_one_problem(
        "apex CNAME",
        &format!("{SMALL_ZONE_HEAD}@ CNAME www.example.org.\n"),
        6,
        "apex",
    );
}

#[test]
fn missing_soa() {
    let (_dir, file, (code, stdout, _)) =
        check_zone("$ORIGIN foobar.com.\n$TTL 300\n@ NS ns1\nns1 A 127.0.0.1\n");
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.starts_with(&format!("{}:", file.display())),
        "no FILE: {stdout}"
    );
    assert_contains(&stdout, "SOA");
}

#[test]
fn missing_ns() {
    assert_one_problem(
        "no NS",
        "$ORIGIN foobar.com.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\nns1 A 127.0.0.1\n",
        3,
        "NS",
    );
}

#[test]
fn ttl_out_of_range() {
    assert_one_problem(
        "TTL 2^31",
        &format!("{SMALL_ZONE_HEAD}www 2147483648 A 127.0.0.1\n"),
        6,
        "TTL",
    );
    assert_one_problem(
        "$TTL 2^32",
        &format!("{SMALL_ZONE_HEAD}$TTL 4294967296\nwww A 127.0.0.1\n"),
        6,
        "TTL",
    );
    // The largest legal TTL is fine.
    assert_zone_passes(&format!("{SMALL_ZONE_HEAD}www 2147483647 A 127.0.0.1\n"));
}

#[test]
fn a_missing_include_file() {
    assert_one_problem(
        "$INCLUDE",
        &format!("{SMALL_ZONE_HEAD}$INCLUDE missing.inc\n"),
        6,
        "missing.inc",
    );
}

/// A problem inside an included file is reported at that file's own line.
#[test]
fn a_problem_in_an_included_file_names_that_file() {
    let dir = TempDir::new("check");
    let included = dir.write("hosts.inc", "; hosts\nmail A 192.0.2.25\nbad A 1.2.3\n");
    let file = dir.write(
        "foobar.com.zone",
        &format!("{SMALL_ZONE_HEAD}$INCLUDE hosts.inc\n"),
    );
    let (code, stdout, stderr) = check(&[&file]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{}:3: ", included.display())),
        "expected hosts.inc:3:\n{stdout}"
    );

    // And a good include passes.
    dir.write("hosts.inc", "; hosts\nmail A 192.0.2.25\n");
    let (code, stdout, stderr) = check(&[&file]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_label_over_63_bytes() {
    let label = "a".repeat(64);
    assert_one_problem(
        "owner label 64",
        &format!("{SMALL_ZONE_HEAD}{label} A 127.0.0.1\n"),
        6,
        "63",
    );
    assert_one_problem(
        "CNAME target label 64",
        &format!("{SMALL_ZONE_HEAD}www CNAME {label}.foobar.com.\n"),
        6,
        "CNAME",
    );
}

#[test]
fn a_bad_ip_address() {
    assert_one_problem(
        "A 300.1.1.1",
        &format!("{SMALL_ZONE_HEAD}www A 300.1.1.1\n"),
        6,
        "A",
    );
    assert_one_problem(
        "A 1.2.3",
        &format!("{SMALL_ZONE_HEAD}www A 1.2.3\n"),
        6,
        "A",
    );
    assert_one_problem(
        "AAAA ::g",
        &format!("{SMALL_ZONE_HEAD}www AAAA 2001:db8::g\n"),
        6,
        "AAAA",
    );
    assert_one_problem(
        "A with an IPv6 address",
        &format!("{SMALL_ZONE_HEAD}www A ::1\n"),
        6,
        "A",
    );
}

/// Every problem in a file is listed, in line order, not just the first.
#[test]
fn every_problem_is_listed() {
    let (_dir, file, (code, stdout, stderr)) = check_zone(&format!(
        "{SMALL_ZONE_HEAD}www 127.0.0.1\nx.example.org. A 192.0.2.1\nmail A 1.2.3\nok A 192.0.2.2\nlong 9999999999 A 192.0.2.3\n"
    ));
    assert_eq!(code, 1, "{stdout}{stderr}");
    let lines: Vec<usize> = stdout
        .lines()
        .map(|l| {
            let rest = l
                .strip_prefix(&format!("{}:", file.display()))
                .unwrap_or_else(|| panic!("not FILE:LINE: {l}"));
            rest.split(':').next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(lines, [6, 7, 8, 10], "{stdout}");
    assert_contains(&stderr, "4 problems");
}

/// Several files: problems from each, and exit 1 if any is bad.
#[test]
fn several_files_are_all_checked() {
    let dir = TempDir::new("check");
    let good = dir.write("good.zone", &format!("{SMALL_ZONE_HEAD}www A 127.0.0.1\n"));
    let bad = dir.write("bad.zone", &format!("{SMALL_ZONE_HEAD}www A 1.2.3\n"));
    let also_bad = dir.write("also.zone", &format!("{SMALL_ZONE_HEAD}@ CNAME www\n"));
    let (code, stdout, _) = check(&[&good, &bad, &also_bad]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains(&format!("{}:6: ", bad.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}:6: ", also_bad.display())),
        "{stdout}"
    );
    assert!(!stdout.contains(&good.display().to_string()), "{stdout}");

    let (code, stdout, stderr) = check(&[&good, &repo_path("zones/foobar.com.zone")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn a_missing_file_is_an_error_not_a_crash() {
    let dir = TempDir::new("check");
    let missing = dir.path().join("nothere.zone");
    let (code, stdout, stderr) = check(&[&missing]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains(&missing.display().to_string()),
        "{stdout}{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `serve` runs the same checks: a bad zone stops it before it listens, with the
/// problem on stderr and no ready line on stdout.
#[test]
fn serve_refuses_to_start_with_a_bad_zone() {
    let dir = TempDir::new("zones");
    let file = dir.write(
        "foobar.com.zone",
        &format!("{SMALL_ZONE_HEAD}www CNAME foobar.com.\nwww A 127.0.0.1\n"),
    );
    let failed = Onebox::spawn().zones(dir.path()).refused("with a bad zone");
    assert!(
        failed.stderr.contains(&format!("{}:7: ", file.display())),
        "no FILE:LINE on stderr:\n{}",
        failed.stderr
    );
}

/// An empty zones folder is an error too: serving nothing is never what was meant.
#[test]
fn serve_refuses_an_empty_zones_folder() {
    let dir = TempDir::new("zones");
    let failed = Onebox::spawn().zones(dir.path()).refused("with no zones");
    assert_contains(&failed.stderr, "zone");
}

/// RFC 1035 §3.3: a TXT character-string is at most 255 bytes (one length byte).
/// BIND and NSD refuse a longer one; accepted, it can only be served as SERVFAIL.
#[test]
fn a_txt_string_over_255_bytes() {
    assert_one_problem(
        "TXT 256",
        &format!("{SMALL_ZONE_HEAD}txt TXT \"{}\"\n", "a".repeat(256)),
        6,
        "TXT",
    );
    // 255 is fine, and so are several strings of 255.
    let max = "b".repeat(255);
    assert_zone_passes(&format!("{SMALL_ZONE_HEAD}txt TXT \"{max}\" \"{max}\"\n"));
}

/// Words left over after the record's data are a mistake (a missing `;`, a
/// pasted second value), not something to drop silently. BIND and NSD refuse them.
#[test]
fn data_left_over_after_the_record() {
    assert_one_problem(
        "A with extra",
        &format!("{SMALL_ZONE_HEAD}www A 192.0.2.1 192.0.2.2\n"),
        6,
        "192.0.2.2",
    );
    assert_one_problem(
        "CNAME with extra",
        &format!("{SMALL_ZONE_HEAD}www CNAME foobar.com. www.example.org.\n"),
        6,
        "www.example.org.",
    );
}
