//! Proves `serve` checks everything before it says it is ready, and stops when a
//! server it started ends: a bad flag (a missing `--site` folder, a bad
//! `--allow-transfer`) fails before the ready line, a server task that dies ends
//! the process non-zero, the ready line names each zone once, and a site name
//! added by a reload gets a certificate at once.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::time::{Duration, Instant};

use crate::harness::{Onebox, TEST_ZONE_HEAD, assert_contains, run_tool, test_zones};

#[test]
fn a_bad_flag_stops_serve_before_the_ready_line() {
    // (arguments, what the error must name)
    for (args, says) in [
        // A --site folder that does not exist.
        (
            ["--site", "/nonexistent-onebox-site"],
            "--site /nonexistent-onebox-site",
        ),
        // A prefix length past /32.
        (["--allow-transfer", "10.0.0.0/40"], "10.0.0.0/40"),
    ] {
        let failed = Onebox::spawn()
            .args(args)
            .refused(&format!("with {args:?}"));
        assert_contains(&failed.stderr, says);
    }
}

#[test]
fn a_server_task_that_dies_stops_the_process_with_a_failure() {
    // The hook (debug builds only) aborts the web server right after the ready line.
    let mut server = Onebox::spawn().env("ONEBOX_TEST_FAIL_TASK", "web").start();
    let status = server.wait_exit();
    assert!(!status.success(), "exit status {status:?}");
    let stderr = server.stderr();
    assert!(
        stderr.contains("web server stopped unexpectedly"),
        "stderr says which server died: {stderr}"
    );
}

#[test]
fn the_ready_line_lists_each_zone_exactly_once() {
    // foobar.com has an A and an AAAA at its apex; example.test has no apex address.
    let zones = test_zones("@ 3600 IN AAAA ::1\n");
    zones.write(
        "example.test.zone",
        "$ORIGIN example.test.\n$TTL 3600\n\
         @ IN SOA ns1.foobar.com. hostmaster.foobar.com. 1 7200 3600 1209600 300\n\
         @ IN NS ns1.foobar.com.\n\
         txt IN TXT \"no address at the apex\"\n",
    );
    let server = Onebox::spawn().zones(zones.path()).start();
    let mut listed: Vec<&str> = server.ready["zones"]
        .as_array()
        .expect("zones is an array")
        .iter()
        .map(|zone| zone.as_str().expect("zone names are strings"))
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["example.test", "foobar.com"], "{}", server.ready);
}

#[test]
fn a_site_name_added_by_a_reload_is_served_over_https_at_once() {
    let zones = test_zones("");
    let server = Onebox::spawn().zones(zones.path()).start();
    let https = server.ready_addr("https");
    let ca = server.ready_path("ca");
    // Two labels below the zone: `*.foobar.com` does not cover it, so it needs
    // its own certificate.
    let host = "shop.eu.foobar.com";
    let edited = TEST_ZONE_HEAD.replace(" 7 7200 ", " 8 7200 ");
    zones.write(
        "foobar.com.zone",
        &format!("{edited}shop.eu 3600 IN CNAME foobar.com.\n"),
    );
    server.signal(libc::SIGHUP);
    server.wait_for_log("zone foobar.com reloaded: serial 8", 0);

    // Generous for a busy machine, far below the 60 s renewal tick the fix replaces.
    let deadline = Instant::now() + Duration::from_secs(5);
    let resolve = format!("{host}:{}:{}", https.port(), https.ip());
    let url = format!("https://{host}:{}/", https.port());
    loop {
        let (status, stdout, stderr) = run_tool(
            "curl",
            &[
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
                "--cacert",
                ca.to_str().unwrap(),
                "--resolve",
                &resolve,
                &url,
            ],
            "curl",
        );
        if status.success() {
            assert!(stdout.starts_with(['2', '3']), "HTTP status {stdout}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "HTTPS for {host} still fails after the reload: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
