//! The live view shows each change as it happens: who made it (the TSIG key's
//! name, or "api"), what, the new serial, and which secondaries acknowledged the
//! NOTIFY and then transferred the new serial. The home page lists them too.

use std::time::Duration;

use crate::harness::*;
use crate::live::EventStream;

#[test]
fn dyn_live_view_shows_each_change_and_its_secondaries() {
    skip_unless!(nsupdate_tools());
    // A stand-in secondary that acknowledges every NOTIFY (the reply is the
    // message with QR set, RFC 1996 §4.7).
    let secondary = silent_dns();
    secondary
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify = secondary.local_addr().unwrap().to_string();
    let (_zones, server) =
        onebox_on_test_zones(&["--allow-transfer", "127.0.0.0/8", "--notify", &notify]);
    let mut events = EventStream::open(server.http_addr(), "www.foobar.com");
    let mut seen = Vec::new();

    server.nsupdate_ok("update add live.foobar.com 60 A 192.0.2.7");
    let change = events.wait_for(&mut seen, |e| e["kind"] == "change", "UPDATE change");
    assert_eq!(change["by"], "onebox-update.");
    assert_eq!(change["serial"], 8);
    assert!(
        change["what"].as_str().unwrap().contains("foobar.com"),
        "{change}"
    );

    let mut buf = [0u8; 512];
    let deadline = std::time::Instant::now() + DEADLINE;
    let (len, from) = loop {
        if let Ok(got) = secondary.recv_from(&mut buf) {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "no NOTIFY came");
    };
    buf[2] |= 0x80;
    secondary.send_to(&buf[..len], from).unwrap();
    let notified = events.wait_for(&mut seen, |e| e["state"] == "notified", "notified");
    assert_eq!(notified["secondary"], notify);
    assert_eq!(notified["serial"], 8);

    // The secondary's IXFR from 7 (here dig, over TCP): it has caught up.
    let ixfr = server.dig(&["IXFR=7", "foobar.com"]);
    assert!(ixfr.stdout.contains("live.foobar.com"), "{}", ixfr.stdout);
    let caught = events.wait_for(&mut seen, |e| e["state"] == "caught up", "caught up");
    assert_eq!(caught["serial"], 8);

    let body = r#"{"name":"t.foobar.com","type":"TXT","value":"hello"}"#;
    let added = server.records_api("POST", body);
    assert_eq!(added.status, 200, "{}", added.text());
    let change = events.wait_for(
        &mut seen,
        |e| e["kind"] == "change" && e["by"] == "api",
        "api change",
    );
    assert_eq!(change["serial"], 9);
    assert_eq!(change["what"], "add t.foobar.com TXT hello");

    // The home page: the same story, newest first.
    let home = http_get(&server, "foobar.com", "/").text();
    let lines = [
        "serial 9: add t.foobar.com TXT hello, by api",
        " of foobar.com. caught up",
        &format!("serial 8: secondary {notify} of foobar.com. notified"),
        "serial 8: UPDATE of foobar.com",
    ];
    let at: Vec<usize> = lines
        .iter()
        .map(|line| {
            home.find(*line)
                .unwrap_or_else(|| panic!("{line:?} not on the home page:\n{home}"))
        })
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "newest first: {at:?}");
}
