//! Issue 10 item 19: IXFR answered as RFC 1995 §4 allows a server without a journal
//! of changes. A client whose serial is current gets the single SOA; any other gets
//! the whole zone AXFR-style (SOA … SOA) inside the IXFR reply. The transfer rules
//! of AXFR apply: `--allow-transfer` networks only, and over UDP only the single
//! SOA (RFC 1995 §2), which tells a secondary that is behind to come back over TCP.
//! Checked with dig, which says "Transfer failed" on a reply it cannot use.

mod common;

use common::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

/// The serial of `TEST_ZONE_HEAD`.
const SERIAL: u32 = 7;

fn transfer_server() -> (Onebox, TempDir) {
    let zones = test_zones("");
    let server = Onebox::spawn()
        .zones(zones.path())
        .args(["--allow-transfer", "127.0.0.0/8"])
        .start();
    (server, zones)
}

/// `(name, TYPE, data)` of every record dig printed for a transfer.
fn listed(dig: &Dig) -> Vec<(String, String, String)> {
    axfr_records(&dig.stdout)
        .into_iter()
        .map(|r| (r.name, r.rtype, r.data))
        .collect()
}

fn soa_line() -> (String, String, String) {
    (
        "foobar.com.".into(),
        "SOA".into(),
        format!("ns1.foobar.com. hostmaster.foobar.com. {SERIAL} 7200 3600 1209600 300"),
    )
}

#[test]
fn ixfr_from_an_older_serial_gets_the_whole_zone_axfr_style() {
    let (server, _zones) = transfer_server();
    for transport in ["+tcp", "+tls"] {
        let args: Vec<String> = match transport {
            "+tls" => vec![
                "+tls".into(),
                "-p".into(),
                server.ready_addr("dot").port().to_string(),
            ],
            _ => vec!["+tcp".into()],
        };
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        let ixfr = format!("IXFR={}", SERIAL - 1);
        all.extend(["foobar.com", ixfr.as_str()]);
        let dig = server.dig(&all);
        assert!(
            !dig.stdout.contains("Transfer failed"),
            "{transport}:\n{}",
            dig.stdout
        );
        let got = listed(&dig);
        assert_eq!(
            got.len(),
            6,
            "{transport}: SOA, 4 records, SOA:\n{}",
            dig.stdout
        );
        assert_eq!(got.first(), Some(&soa_line()), "{}", dig.stdout);
        assert_eq!(got.last(), Some(&soa_line()), "{}", dig.stdout);
        for expected in [
            ("foobar.com.", "NS", "ns1.foobar.com."),
            ("ns1.foobar.com.", "A", "127.0.0.1"),
            ("foobar.com.", "A", "127.0.0.1"),
            ("www.foobar.com.", "CNAME", "foobar.com."),
        ] {
            let expected = (
                expected.0.to_string(),
                expected.1.to_string(),
                expected.2.to_string(),
            );
            assert!(
                got.contains(&expected),
                "{expected:?} missing:\n{}",
                dig.stdout
            );
        }
    }
}

#[test]
fn ixfr_from_the_current_serial_gets_the_single_soa() {
    let (server, _zones) = transfer_server();
    // Current, and "newer than ours" (a secondary that was ahead): nothing to send.
    for serial in [SERIAL, SERIAL + 1] {
        let ixfr = format!("IXFR={serial}");
        let dig = server.dig(&["+tcp", "foobar.com", &ixfr]);
        assert!(!dig.stdout.contains("Transfer failed"), "{}", dig.stdout);
        assert_eq!(listed(&dig), [soa_line()], "{ixfr}:\n{}", dig.stdout);
    }
}

#[test]
fn ixfr_over_udp_gets_the_single_soa_and_strangers_are_refused() {
    let (server, _zones) = transfer_server();
    let ixfr = format!("IXFR={}", SERIAL - 1);
    let dig = server.dig(&["+notcp", "foobar.com", &ixfr]);
    assert_eq!(listed(&dig), [soa_line()], "{}", dig.stdout);

    // A name that is not one of our zones' apexes has nothing to transfer.
    let reply = ask_tcp(
        server.dns_addr(),
        &query("www.foobar.com.", RecordType::IXFR),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NotAuth);
    assert!(reply.answers.is_empty());

    // Without --allow-transfer, IXFR is refused on every transport, like AXFR.
    let closed = Onebox::start();
    for transport in ["+tcp", "+notcp"] {
        let dig = closed.dig(&[transport, "foobar.com", &ixfr]);
        assert!(
            axfr_records(&dig.stdout).is_empty(),
            "{transport}:\n{}",
            dig.stdout
        );
    }
    let reply = ask_tcp(closed.dns_addr(), &query("foobar.com.", RecordType::IXFR));
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}
