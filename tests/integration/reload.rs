//! Proves zones reload without a restart: on SIGHUP, and on their own when a zone
//! file changes (the watcher polls every 500 ms); a bad edit keeps the last good
//! zone serving and logs FILE:LINE; an edit without a serial bump is served with a
//! warning about the serial.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::harness::*;
use hickory_server::proto::rr::RecordType;

const APEX_A: &str = "@    3600 IN A     127.0.0.1\n";
const SERIAL: &str = " 7 7200 ";

/// The test zone edited: the apex A record is `apex`, the SOA serial `serial`
/// (`None` keeps 7), and `extra` records follow.
fn edited_zone(apex: &str, serial: Option<u32>, extra: &str) -> String {
    let text =
        format!("{TEST_ZONE_HEAD}{extra}").replace(APEX_A, &APEX_A.replace("127.0.0.1", apex));
    match serial {
        Some(serial) => text.replace(SERIAL, &format!(" {serial} 7200 ")),
        None => text,
    }
}
/// A second zone, added beside foobar.com or removed from beside it.
const EXAMPLE_NET_ZONE: &str = "$ORIGIN example.net.\n$TTL 300\n@ SOA ns1 hostmaster 1 7200 3600 1209600 300\n\
     @ NS ns1\nns1 A 127.0.0.1\n@ A 192.0.2.80\n";

/// Polls `name A` over UDP until the answer's A record is `address`; panics with
/// the server's stderr at the deadline.
pub(crate) fn wait_for_a(server: &Onebox, name: &str, address: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = ask_udp(server.dns_addr(), &query(name, RecordType::A));
        let got: Vec<String> = reply
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::A)
            .map(|r| r.data.to_string())
            .collect();
        if got == [address] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} A is still {got:?}, not {address}, after {DEADLINE:?}:\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Replaces `path`'s contents so that its modification time and length stay what
/// they were: a file watcher comparing those cannot notice, only SIGHUP can.
fn replace_unnoticed(path: &Path, text: &str) {
    let before = std::fs::metadata(path).unwrap();
    assert_eq!(
        before.len(),
        text.len() as u64,
        "the new text must keep the length"
    );
    let temp = path.with_extension("swap");
    std::fs::write(&temp, text).unwrap();
    File::options()
        .write(true)
        .open(&temp)
        .unwrap()
        .set_modified(before.modified().unwrap())
        .unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// [`dig_onebox_on`] the test zone alone, with the path of its file for the test
/// to edit (the folder comes back too, to keep it until the test ends).
fn onebox_on_test_zone() -> Option<(TempDir, PathBuf, Onebox)> {
    let (zones, server) = dig_onebox_on("")?;
    let file = zones.join("foobar.com.zone");
    Some((zones, file, server))
}

#[test]
fn sighup_reloads_the_zone() {
    let Some((_zones, file, server)) = onebox_on_test_zone() else {
        return;
    };
    assert_eq!(server.dig_a("foobar.com"), ["127.0.0.1"]);

    // Same length: 127.0.0.1 → 127.0.0.2, serial 7 → 8.
    let text = edited_zone("127.0.0.2", Some(8), "");
    replace_unnoticed(&file, &text);
    let mark = server.stderr().len();
    server.signal(libc::SIGHUP);

    wait_for_a(&server, "foobar.com.", "127.0.0.2");
    assert_eq!(server.dig_a("foobar.com"), ["127.0.0.2"]);
    // www follows its CNAME to the new address.
    let dig = server.dig(&["www.foobar.com", "A"]);
    assert_eq!(dig.answers_of("A")[0].data, "127.0.0.2", "{}", dig.stdout);
    // ns1 kept its own address.
    assert_eq!(server.dig_a("ns1.foobar.com"), ["127.0.0.1"]);
    server.wait_for_log("zone foobar.com reloaded: serial 8, 5 records", mark);
}

#[test]
fn an_edited_file_is_picked_up_without_a_signal() {
    let Some((_zones, file, server)) = onebox_on_test_zone() else {
        return;
    };
    assert_eq!(server.dig_a("foobar.com"), ["127.0.0.1"]);

    let mark = server.stderr().len();
    let text = edited_zone("127.0.0.42", Some(9), "mail 3600 IN A 192.0.2.25\n");
    std::fs::write(&file, text).unwrap();

    wait_for_a(&server, "foobar.com.", "127.0.0.42");
    assert_eq!(server.dig_a("mail.foobar.com"), ["192.0.2.25"]);
    server.wait_for_log("zone foobar.com reloaded: serial 9, 6 records", mark);
}

#[test]
fn a_bad_edit_keeps_the_old_zone_serving() {
    let Some((_zones, file, server)) = onebox_on_test_zone() else {
        return;
    };

    // Line 8: an A record beside www's CNAME (line 7).
    let mark = server.stderr().len();
    let bad = edited_zone("127.0.0.77", Some(10), "www 3600 IN A 127.0.0.9\n");
    std::fs::write(&file, bad).unwrap();
    let log = server.wait_for_log(&format!("{}:8: ", file.display()), mark);
    assert!(log[mark..].contains("CNAME"), "{log}");

    // Both the SIGHUP path and the watcher refuse it; the old zone answers.
    let mark = server.stderr().len();
    server.signal(libc::SIGHUP);
    server.wait_for_log(&format!("{}:8: ", file.display()), mark);
    assert_eq!(server.dig_a("foobar.com"), ["127.0.0.1"]);
    let dig = server.dig(&["www.foobar.com", "A"]);
    let rtypes = rtypes(&dig.answer);
    assert_eq!(
        rtypes,
        ["CNAME", "A"],
        "partial zone served:\n{}",
        dig.stdout
    );
    let dig = server.dig(&["foobar.com", "SOA"]);
    assert!(
        dig.answers_of("SOA")[0].data.contains(" 7 7200 "),
        "{}",
        dig.stdout
    );

    // Fixing the file brings the new data in.
    let good = edited_zone("127.0.0.77", Some(11), "");
    std::fs::write(&file, good).unwrap();
    wait_for_a(&server, "foobar.com.", "127.0.0.77");
}

#[test]
fn an_edit_without_a_serial_bump_warns_about_the_serial() {
    let zones = test_zones("");
    let file = zones.path().join("foobar.com.zone");
    let server = Onebox::start_with_zones(&zones);

    let mark = server.stderr().len();
    let text = edited_zone("127.0.0.5", None, "");
    std::fs::write(&file, text).unwrap();
    wait_for_a(&server, "foobar.com.", "127.0.0.5");
    // The warning's own words: the log is written off the serving path, so it
    // may arrive after the new answer does, and the start-up line ("zone
    // foobar.com. serial 7") may arrive after `mark` was taken.
    let log = server.wait_for_log("changed but its serial", mark);
    let warning = log[mark..]
        .lines()
        .find(|l| l.contains("WARN") && l.contains("serial"))
        .unwrap_or_else(|| panic!("no warning about the serial:\n{log}"));
    assert_contains(warning, "foobar.com");
    assert!(
        warning.contains('7'),
        "the warning should name the serial: {warning}"
    );
}

/// A zone file dropped into the folder starts being served.
#[test]
fn a_new_zone_file_is_served() {
    let Some((zones, server)) = dig_onebox_on("") else {
        return;
    };
    assert_eq!(server.dig(&["example.net", "SOA"]).status, "REFUSED");

    zones.write("example.net.zone", EXAMPLE_NET_ZONE);
    wait_for_a(&server, "example.net.", "192.0.2.80");
    // The first zone is untouched.
    assert_eq!(server.dig_a("foobar.com"), ["127.0.0.1"]);
}

/// An edit to an `$INCLUDE`d file is an edit to the zone: the watcher sees it.
#[test]
fn an_edited_include_file_is_picked_up() {
    let Some((zones, server)) = dig_onebox_with(
        "$INCLUDE hosts.inc\n",
        &[("hosts.inc", "mail 3600 IN A 192.0.2.25\n")],
    ) else {
        return;
    };
    assert_eq!(server.dig_a("mail.foobar.com"), ["192.0.2.25"]);

    zones.write(
        "hosts.inc",
        "mail 3600 IN A 192.0.2.26\nmx2 3600 IN A 192.0.2.27\n",
    );
    wait_for_a(&server, "mail.foobar.com.", "192.0.2.26");
    assert_eq!(server.dig_a("mx2.foobar.com"), ["192.0.2.27"]);
}

/// A zone whose file is deleted stops being served; the others carry on.
#[test]
fn a_removed_zone_file_stops_being_served() {
    let Some((zones, server)) = dig_onebox_with("", &[("example.net.zone", EXAMPLE_NET_ZONE)])
    else {
        return;
    };
    assert_eq!(server.dig_a("example.net"), ["192.0.2.80"]);

    std::fs::remove_file(zones.path().join("example.net.zone")).unwrap();
    let deadline = Instant::now() + DEADLINE;
    while server.dig(&["example.net", "A"]).status != "REFUSED" {
        assert!(
            Instant::now() < deadline,
            "example.net still served after its file was removed:\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(server.dig_a("foobar.com"), ["127.0.0.1"]);
}
