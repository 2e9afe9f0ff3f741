//! `onebox doctor` against the real binary: onebox's DNS answering, the OS resolver
//! not reaching it on a machine without the hook (with the exact fix), the web
//! server at the A address, HTTPS trusted through a given CA, and the failures
//! when nothing runs.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

fn check<'a>(report: &'a serde_json::Value, name: &str, zone: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("checks is an array")
        .iter()
        .find(|c| c["check"] == name && (c["zone"] == zone || c["zone"].is_null()))
        .unwrap_or_else(|| panic!("no {name} check for {zone}: {report:#}"))
}

/// `onebox doctor --json ARGS...`: the run and its report.
fn doctor_json(args: &[&str]) -> (Run, serde_json::Value) {
    let run = onebox(["doctor", "--json"].iter().chain(args));
    let report = run.json();
    (run, report)
}

/// A check's one-line summary.
fn summary(check: &serde_json::Value) -> &str {
    check["summary"].as_str().unwrap()
}

fn zones_arg() -> String {
    repo_path("zones").display().to_string()
}

#[test]
fn dns_passes_and_the_os_resolver_fails_with_the_fix() {
    let server = Onebox::start();
    let (dns, http) = (server.dns.to_string(), server.http.to_string());
    let (run, report) = doctor_json(&["--dns", &dns, "--http", &http, "--zones", &zones_arg()]);
    // The test machine's resolver does not know our zone on a random port.
    assert_eq!(run.code, Some(1), "{report:#}");
    assert_eq!(report["ok"], false);
    assert_eq!(report["zones"], serde_json::json!(["foobar.com"]));

    let dns_check = check(&report, "dns", "foobar.com");
    assert_eq!(dns_check["status"], "pass", "{dns_check:#}");
    assert!(
        summary(dns_check).contains("serial 2026112601"),
        "{dns_check:#}"
    );
    assert_eq!(dns_check["fix"], serde_json::Value::Null);

    let os = check(&report, "os_resolver", "foobar.com");
    assert_eq!(os["status"], "fail", "{os:#}");
    assert!(summary(os).contains("www.foobar.com"), "{os:#}");
    let fix = os["fix"].as_str().unwrap();
    assert_contains(fix, "sudo onebox resolver install --yes");
    // The fix repeats the flags that make it act on this very setup.
    assert_contains(fix, &format!("--dns {dns}"));

    let web = check(&report, "http", "foobar.com");
    assert_eq!(web["status"], "pass", "{web:#}");
    assert!(summary(web).contains("/healthz"), "{web:#}");

    assert_eq!(check(&report, "https", "")["status"], "skip");
}

#[test]
fn text_view_lists_pass_fail_skip_with_the_fix_under_the_failure() {
    let server = Onebox::start();
    let run = server.doctor(&["--zones", &zones_arg()]);
    let out = run.plain_stdout(1);
    assert_contains_all(
        out,
        &[
            "\npass  dns          ",
            "\nFAIL  os_resolver  ",
            "\nskip  https        ",
        ],
    );
    let fail = out.lines().position(|l| l.starts_with("FAIL")).unwrap();
    let fix = out.lines().nth(fail + 1).unwrap();
    assert!(
        fix.trim_start()
            .starts_with("fix: route foobar.com to onebox: sudo onebox resolver install --yes"),
        "{out}"
    );
}

#[test]
fn nothing_answering_dns_fails_with_the_start_command_and_skips_the_rest() {
    let silent = silent_dns();
    let dns = silent.local_addr().unwrap().to_string();
    let (run, report) = doctor_json(&["--dns", &dns, "--zones", &zones_arg()]);
    assert_eq!(run.code, Some(1), "{report:#}");
    let dns_check = check(&report, "dns", "foobar.com");
    assert_eq!(dns_check["status"], "fail");
    assert!(
        summary(dns_check).contains("nothing answered DNS"),
        "{dns_check:#}"
    );
    assert_eq!(
        dns_check["fix"],
        format!("start onebox: onebox serve --dns {dns}")
    );
    assert_eq!(
        check(&report, "os_resolver", "foobar.com")["status"],
        "skip"
    );
    assert_eq!(check(&report, "http", "foobar.com")["status"], "skip");
    drop(silent);
}

#[test]
fn a_zone_onebox_does_not_serve_is_refused() {
    let server = Onebox::start();
    let zones = TempDir::new("zones");
    std::fs::copy(
        repo_path("zones/foobar.com.zone"),
        zones.path().join("foobar.com.zone"),
    )
    .unwrap();
    zones.write(
        "example.test.zone",
        "$ORIGIN example.test.\n$TTL 3600\n\
         @ 3600 IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 3600\n\
         @ 3600 IN NS ns1.example.test.\nns1 3600 IN A 127.0.0.1\n@ 3600 IN A 127.0.0.1\n",
    );
    let (_, report) = doctor_json(&[
        "--dns",
        &server.dns.to_string(),
        "--http",
        &server.http.to_string(),
        "--zones",
        zones.path().to_str().unwrap(),
    ]);
    assert_eq!(check(&report, "dns", "foobar.com")["status"], "pass");
    let other = check(&report, "dns", "example.test");
    assert_eq!(other["status"], "fail", "{report:#}");
    assert!(summary(other).contains("REFUSED"), "{other:#}");
    assert!(
        other["fix"]
            .as_str()
            .unwrap()
            .contains("onebox serve --dns")
    );
}

#[test]
fn no_web_server_at_the_address_fails_the_http_check() {
    let server = Onebox::start();
    let nothing = format!("127.0.0.1:{}", free_port());
    let (run, report) = doctor_json(&[
        "--dns",
        &server.dns.to_string(),
        "--http",
        &nothing,
        "--zones",
        &zones_arg(),
    ]);
    assert_eq!(run.code, Some(1));
    let web = check(&report, "http", "foobar.com");
    assert_eq!(web["status"], "fail", "{web:#}");
    assert!(summary(web).contains("connection refused"), "{web:#}");
    assert!(web["fix"].as_str().unwrap().starts_with("start onebox"));
}

#[test]
fn https_is_checked_through_the_given_ca() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (ca, tls, server) = tls_site();
    let doctor = |cacert: &std::path::Path| {
        server
            .doctor(&[
                "--json",
                "--https",
                &tls.addr.to_string(),
                "--cacert",
                cacert.to_str().unwrap(),
                "--zones",
                &zones_arg(),
            ])
            .json()
    };

    // The https check trusting `ca`: its status must be `status`, its summary say `says`.
    let assert_https = |ca: &TestCa, status: &str, says: &str| {
        let report = doctor(&ca.cert_path());
        let https = check(&report, "https", "foobar.com").clone();
        assert_eq!(https["status"], status, "{report:#}");
        assert!(summary(&https).contains(says), "{https:#}");
        https
    };
    assert_https(&ca, "pass", "TLSv1.3 (certificate trusted) 200");
    let https = assert_https(&TestCa::new(), "fail", "not signed by a CA you trust");
    assert!(
        https["fix"]
            .as_str()
            .unwrap()
            .starts_with("pass the CA onebox serve uses")
    );
}

#[test]
fn without_a_ca_https_is_skipped_and_says_what_to_give() {
    let silent = silent_dns();
    let (_, report) = doctor_json(&[
        "--dns",
        &silent.local_addr().unwrap().to_string(),
        "--zones",
        &zones_arg(),
    ]);
    let https = check(&report, "https", "");
    assert_eq!(https["status"], "skip");
    assert!(summary(https).contains("--cacert FILE"), "{https:#}");
    drop(silent);
}
