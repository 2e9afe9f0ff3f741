//! IXFR (RFC 1995) from the journal: real differences for a serial the journal
//! covers, a single SOA for the current serial, the whole zone otherwise.

use crate::harness::*;

/// The transfer as (type, serial-or-data) pairs: an SOA shows its serial.
fn ixfr(server: &Onebox, serial: u32) -> Vec<(String, String)> {
    let dig = server.dig(&["+tcp", "foobar.com", &format!("IXFR={serial}")]);
    axfr_records(&dig.stdout)
        .into_iter()
        .map(|r| {
            let data = if r.rtype == "SOA" {
                r.data.split_whitespace().nth(2).unwrap().to_string()
            } else {
                format!("{} {}", r.name, r.data)
            };
            (r.rtype, data)
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn dyn_ixfr_sends_the_journaled_differences() {
    skip_unless!(nsupdate_tools());
    let (_zones, server) = onebox_on_test_zones(&["--allow-transfer", "127.0.0.0/8"]);
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");
    server.nsupdate_ok(
        "update delete api.foobar.com A 192.0.2.10\nupdate add api.foobar.com 60 A 192.0.2.11",
    );

    // From 7: both changes, each as old SOA + removed, new SOA + added.
    assert_eq!(
        ixfr(&server, 7),
        pairs(&[
            ("SOA", "9"),
            ("SOA", "7"),
            ("SOA", "8"),
            ("A", "api.foobar.com. 192.0.2.10"),
            ("SOA", "8"),
            ("A", "api.foobar.com. 192.0.2.10"),
            ("SOA", "9"),
            ("A", "api.foobar.com. 192.0.2.11"),
            ("SOA", "9"),
        ])
    );
    // From 8: only the second change.
    assert_eq!(ixfr(&server, 8).len(), 6);
    // Current: one SOA, nothing else.
    assert_eq!(ixfr(&server, 9), pairs(&[("SOA", "9")]));
    // A serial the journal never had: the whole zone, AXFR-style.
    let whole = ixfr(&server, 3);
    assert_eq!(whole.first(), Some(&("SOA".to_string(), "9".to_string())));
    assert_eq!(whole.last(), Some(&("SOA".to_string(), "9".to_string())));
    assert!(whole.contains(&("A".to_string(), "api.foobar.com. 192.0.2.11".to_string())));
    assert!(!whole.contains(&("A".to_string(), "api.foobar.com. 192.0.2.10".to_string())));
}
