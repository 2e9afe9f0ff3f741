//! Proves the protocol behaviour an authoritative server owes every client, as
//! probed by RFC 8906 §8 (checklist D6–D11) and the refusals of D15–D16: header
//! bits, unknown opcodes and types, EDNS versions, options and flags, UDP size
//! limits with truncation, zone transfers, UPDATE and NOTIFY.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::net::Ipv4Addr;

use crate::harness::*;
use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// Flags dig prints, sorted, for comparisons that ignore order.
fn flags(dig: &Dig) -> Vec<&str> {
    let mut flags: Vec<&str> = dig.flags.iter().map(String::as_str).collect();
    flags.sort_unstable();
    flags
}

// --- RFC 8906 §8.1: plain DNS ------------------------------------------------------

#[test]
fn plain_dns_without_edns_gets_no_opt() {
    let Some(server) = dig_onebox() else { return };
    for dig in server.dig_udp_and_tcp(&["+noedns", "foobar.com", "SOA"]) {
        assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
        assert_eq!(flags(&dig), ["aa", "qr"], "{}", dig.stdout);
        assert!(
            dig.opt.is_empty(),
            "OPT in a reply to plain DNS:\n{}",
            dig.stdout
        );
        assert_eq!(dig.answers_of("SOA").len(), 1, "{}", dig.stdout);
    }
}

/// An unknown type at an existing name is NODATA, not an error (RFC 3597).
#[test]
fn unknown_type_is_nodata() {
    let Some(server) = dig_onebox() else { return };
    let dig = server.dig(&["+noedns", "foobar.com", "TYPE1000"]);
    dig.assert_authoritative("NOERROR");
    assert!(dig.answer.is_empty(), "{}", dig.stdout);
    assert_eq!(dig.authority.len(), 1, "{}", dig.stdout);
    assert_eq!(dig.authority[0].rtype, "SOA", "{}", dig.stdout);
}

/// Header bits: RD is copied, RA and AD never set (no recursion, no validation),
/// Z is always zero in a reply. CD is not asserted: BIND copies it, Knot clears it.
#[test]
fn header_bits_rd_copied_ra_ad_z_clear() {
    let Some(server) = dig_onebox() else { return };
    for dig in server.dig_udp_and_tcp(&[
        "+noedns",
        "+rec",
        "+ad",
        "+zflag",
        "+cd",
        "foobar.com",
        "SOA",
    ]) {
        assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
        assert!(dig.has_flag("rd"), "RD not copied:\n{}", dig.stdout);
        assert!(dig.has_flag("aa"), "{}", dig.stdout);
        assert!(!dig.has_flag("ra"), "RA set:\n{}", dig.stdout);
        assert!(!dig.has_flag("ad"), "AD set:\n{}", dig.stdout);
        assert!(!dig.stdout.contains("MBZ"), "Z set:\n{}", dig.stdout);
    }

    // The same from the raw bytes: byte 2 = QR|opcode|AA|TC|RD, byte 3 = RA|Z|AD|CD|rcode.
    let mut packet = encode(&query("foobar.com.", RecordType::SOA));
    packet[2] |= 0x01; // RD
    packet[3] |= 0x40 | 0x20 | 0x10; // Z, AD, CD
    for reply in [
        udp_raw(server.dns_addr(), &packet),
        tcp_raw(server.dns_addr(), &packet),
    ] {
        assert_eq!(reply[0..2], packet[0..2], "ID copied");
        assert_eq!(reply[2] & 0x80, 0x80, "QR set");
        assert_eq!(reply[2] & 0x01, 0x01, "RD copied");
        assert_eq!(reply[2] & 0x04, 0x04, "AA set");
        assert_eq!(reply[3] & 0x80, 0, "RA clear");
        assert_eq!(reply[3] & 0x40, 0, "Z clear");
        assert_eq!(reply[3] & 0x20, 0, "AD clear");
        assert_eq!(reply[3] & 0x0f, 0, "NOERROR");
    }
}

/// RFC 1035 §4.1.1, RFC 8906 §8.1.4: an opcode we do not know is NOTIMP, with
/// the opcode echoed and nothing else.
#[test]
fn unknown_opcode_is_notimp() {
    let Some(server) = dig_onebox() else { return };
    for args in [
        &["+noedns", "+opcode=15", "+header-only"][..],
        &["+noedns", "+opcode=15", "foobar.com", "SOA"],
        &["+noedns", "+opcode=3", "foobar.com", "SOA"],
        &["+tcp", "+noedns", "+opcode=15", "+header-only"],
    ] {
        let dig = server.dig(args);
        let what = format!("{args:?}:\n{}", dig.stdout);
        assert_eq!(dig.status, "NOTIMP", "{what}");
        assert!(
            dig.opcode.starts_with("RESERVED"),
            "opcode not echoed: {what}"
        );
        assert_eq!(flags(&dig), ["qr"], "{what}");
        assert!(
            dig.answer.is_empty() && dig.authority.is_empty() && dig.additional.is_empty(),
            "{what}"
        );
    }
}

// --- RFC 8906 §8.2: EDNS -------------------------------------------------------------

/// `dig +edns=0 +nocookie EXTRA... foobar.com SOA` against `server`.
fn dig_edns0_soa(server: &Onebox, extra: &[&str]) -> Dig {
    let mut args = vec!["+edns=0", "+nocookie"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["foobar.com", "SOA"]);
    server.dig(&args)
}

/// Asserts NOERROR with our plain OPT: version 0, no flags, a 1232-byte payload.
fn assert_plain_edns_reply(dig: &Dig) {
    assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
    assert_eq!(
        dig.edns_line(),
        Some("EDNS: version: 0, flags:; udp: 1232"),
        "{}",
        dig.stdout
    );
}

#[test]
fn edns_version_0_is_answered_with_our_own_opt() {
    let Some(server) = dig_onebox() else { return };
    let dig = dig_edns0_soa(&server, &[]);
    assert_plain_edns_reply(&dig);
    assert_eq!(dig.opt.len(), 1, "unexpected options:\n{}", dig.stdout);
}

/// RFC 6891 §6.1.3: an EDNS version above ours gets BADVERS, with an OPT of the
/// version we speak (0) and no records, whatever else the query carried.
#[test]
fn edns_version_1_is_badvers_with_opt_v0_and_no_records() {
    let Some(server) = dig_onebox() else { return };
    for extra in [
        &[][..],
        &["+ednsopt=100"],
        &["+ednsflags=0x80"],
        &["+dnssec"],
        &["+tcp"],
    ] {
        let mut args = vec!["+edns=1", "+noednsneg", "+nocookie"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["foobar.com", "SOA"]);
        let dig = server.dig(&args);
        let what = format!("{args:?}:\n{}", dig.stdout);
        assert_eq!(dig.status, "BADVERS", "{what}");
        let edns = dig.edns_line().unwrap_or_else(|| panic!("no OPT: {what}"));
        assert!(edns.starts_with("EDNS: version: 0,"), "{what}");
        assert!(!dig.has_flag("aa"), "{what}");
        assert!(
            dig.answer.is_empty() && dig.authority.is_empty() && dig.additional.is_empty(),
            "records in a BADVERS reply: {what}"
        );
        assert_eq!(dig.opt.len(), 1, "an option was echoed: {what}");
        assert!(!dig.stdout.contains("MBZ"), "unknown flag echoed: {what}");
        if extra.contains(&"+dnssec") {
            assert!(edns.contains("flags: do;"), "DO not copied: {what}");
        }
    }
}

/// RFC 6891 §6.1.2 / RFC 8906 §8.2.4: an unknown option is ignored and never echoed.
#[test]
fn unknown_edns_option_is_ignored_not_echoed() {
    let Some(server) = dig_onebox() else { return };
    let dig = dig_edns0_soa(&server, &["+ednsopt=100"]);
    dig.assert_authoritative("NOERROR");
    assert_eq!(dig.opt.len(), 1, "option echoed:\n{}", dig.stdout);
    assert!(!dig.stdout.contains("OPT=100"), "{}", dig.stdout);
}

/// RFC 8906 §8.2.5: an unknown EDNS flag is not copied into the reply.
#[test]
fn unknown_edns_flag_is_cleared() {
    let Some(server) = dig_onebox() else { return };
    let dig = dig_edns0_soa(&server, &["+ednsflags=0x80"]);
    assert_plain_edns_reply(&dig);
    assert!(!dig.stdout.contains("MBZ"), "{}", dig.stdout);
}

/// RFC 3225 §3: the DO bit is copied into the reply, over UDP and TCP.
#[test]
fn do_bit_is_copied() {
    let Some(server) = dig_onebox() else { return };
    for dig in server.dig_udp_and_tcp(&["+edns=0", "+nocookie", "+dnssec", "foobar.com", "SOA"]) {
        assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
        let edns = dig.edns_line().unwrap_or_default();
        assert!(
            edns.contains("flags: do;"),
            "DO not copied:\n{}",
            dig.stdout
        );
    }
    let dig = dig_edns0_soa(&server, &[]);
    assert!(
        !dig.edns_line().unwrap_or_default().contains("do"),
        "DO set without being asked:\n{}",
        dig.stdout
    );
}

/// RFC 8906 §8.2.10: options we do not implement (NSID, EXPIRE, client subnet,
/// a client COOKIE) are tolerated and none is echoed.
#[test]
fn several_defined_options_are_tolerated_and_not_echoed() {
    let Some(server) = dig_onebox() else { return };
    let dig = server.dig(&[
        "+edns=0",
        "+nsid",
        "+expire",
        "+subnet=0.0.0.0/0",
        "+cookie=0102030405060708",
        "foobar.com",
        "SOA",
    ]);
    dig.assert_authoritative("NOERROR");
    assert_eq!(dig.opt.len(), 1, "an option was echoed:\n{}", dig.stdout);
    assert!(
        !dig.opt.iter().any(|l| l.contains("COOKIE")),
        "client cookie echoed:\n{}",
        dig.stdout
    );
}

// --- Size limits (D11) -----------------------------------------------------------------

/// 40 TXT records of 100 bytes each at big.foobar.com (about 4.4 KB: more than
/// any UDP limit, far below TCP's 64 KiB), and 8 at mid (about 900 bytes: over
/// 512, under 1232).
fn big_zone() -> TempDir {
    let mut extra = String::new();
    for i in 0..40 {
        extra.push_str(&format!("big 3600 IN TXT \"{i:03}-{}\"\n", "x".repeat(96)));
    }
    for i in 0..8 {
        extra.push_str(&format!("mid 3600 IN TXT \"{i:03}-{}\"\n", "y".repeat(96)));
    }
    test_zones(&extra)
}

/// RFC 6891 §7 and DNS Flag Day 2020: an EDNS UDP reply is at most
/// min(requested, 1232) bytes; larger answers come with TC=1 so the client
/// retries over TCP.
#[test]
fn udp_replies_are_capped_at_1232_with_edns_and_512_without() {
    let zones = big_zone();
    let server = Onebox::start_with_zones(&zones);
    let dns = server.dns_addr();
    let big = query("big.foobar.com.", RecordType::TXT);

    for (payload, limit) in [
        (Some(4096), 1232),
        (Some(65_535), 1232),
        (Some(1232), 1232),
        (Some(512), 512),
        (None, 512),
    ] {
        let ask = match payload {
            Some(p) => with_edns(big.clone(), p),
            None => big.clone(),
        };
        let raw = udp_raw(dns, &encode(&ask));
        assert!(
            raw.len() <= limit,
            "payload {payload:?}: a {}-byte UDP reply (limit {limit})",
            raw.len()
        );
        let reply = decode(&raw);
        assert_eq!(reply.metadata.id, ask.metadata.id);
        assert!(reply.metadata.truncation, "payload {payload:?}: TC not set");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        assert_eq!(reply.edns.is_some(), payload.is_some(), "OPT presence");
        // No half-written record after the last counted one (hickory 0.26 left one,
        // stack-facts §2.6 gap 3): the reply is exactly what its counts describe.
        assert_eq!(
            encode(&reply).len(),
            raw.len(),
            "payload {payload:?}: trailing bytes in a truncated reply: {raw:02x?}"
        );
    }

    // Over TCP the whole RRset arrives, no TC.
    for ask in [big.clone(), with_edns(big.clone(), 4096)] {
        let reply = ask_tcp(dns, &ask);
        assert!(!reply.metadata.truncation, "TC over TCP");
        assert_eq!(reply.answers.len(), 40);
        assert!(
            reply
                .answers
                .iter()
                .all(|r| r.record_type() == RecordType::TXT)
        );
    }

    // An answer that fits in 1232 but not 512: whole with EDNS, truncated without.
    let mid = query("mid.foobar.com.", RecordType::TXT);
    let reply = ask_udp(dns, &with_edns(mid.clone(), 1232));
    assert!(!reply.metadata.truncation, "truncated although it fits");
    assert_eq!(reply.answers.len(), 8);
    let raw = udp_raw(dns, &encode(&mid));
    assert!(raw.len() <= 512, "{} bytes without EDNS", raw.len());
    assert!(decode(&raw).metadata.truncation);
}

/// The same with dig: TC seen over UDP, and dig's TCP retry gets everything.
#[test]
fn dig_sees_tc_and_retries_over_tcp() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let zones = big_zone();
    let server = Onebox::start_with_zones(&zones);
    let dig = server.dig(&["+bufsize=4096", "+ignore", "big.foobar.com", "TXT"]);
    assert!(dig.has_flag("tc"), "{}", dig.stdout);
    assert!(dig.size.is_some_and(|s| s <= 1232), "{}", dig.stdout);
    assert!(
        dig.edns_line().unwrap_or_default().ends_with("udp: 1232"),
        "{}",
        dig.stdout
    );

    let dig = server.dig(&["+noedns", "+ignore", "big.foobar.com", "TXT"]);
    assert!(dig.has_flag("tc"), "{}", dig.stdout);
    assert!(dig.size.is_some_and(|s| s <= 512), "{}", dig.stdout);

    let dig = server.dig(&["+bufsize=4096", "big.foobar.com", "TXT"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
    assert!(!dig.has_flag("tc"), "{}", dig.stdout);
    assert_eq!(dig.answers_of("TXT").len(), 40, "{}", dig.stdout);
    // dig retried over TCP.
    assert_contains(&dig.stdout, "(TCP)");
}

// --- Zone transfers (D15) ----------------------------------------------------------------

#[test]
fn axfr_is_refused_by_default() {
    let Some(server) = dig_onebox() else { return };
    for transport in ["+tcp", "+notcp"] {
        let dig = server.dig(&[transport, "foobar.com", "AXFR"]);
        assert!(
            dig.stdout.contains("; Transfer failed."),
            "{transport}:\n{}",
            dig.stdout
        );
        assert!(axfr_records(&dig.stdout).is_empty(), "{}", dig.stdout);
    }
    let ask = query("foobar.com.", RecordType::AXFR);
    for reply in [
        ask_tcp(server.dns_addr(), &ask),
        ask_udp(server.dns_addr(), &ask),
    ] {
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(reply.answers.is_empty());
    }
    // IXFR must not hand out the zone either.
    let reply = ask_tcp(server.dns_addr(), &query("foobar.com.", RecordType::IXFR));
    assert!(
        reply
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::SOA),
        "{:?}",
        reply.answers
    );
}

/// A server with `--allow-transfer NETWORKS` and what `dig AXFR foobar.com` got
/// from it; `None` (skipped) without dig.
fn axfr_allowing(networks: &str) -> Option<(Onebox, Dig)> {
    require_tool("dig", "bind9-dnsutils").then(|| {
        let server = Onebox::spawn().args(["--allow-transfer", networks]).start();
        let dig = server.dig(&["foobar.com", "AXFR"]);
        (server, dig)
    })
}

#[test]
fn axfr_is_allowed_to_listed_networks_over_tcp() {
    let Some((server, dig)) = axfr_allowing("127.0.0.0/8") else {
        return;
    };
    assert!(!dig.stdout.contains("Transfer failed"), "{}", dig.stdout);
    let records = axfr_records(&dig.stdout);
    let got = name_type_data(&records);
    // RFC 5936: the SOA opens and closes the transfer; everything else in between.
    assert_eq!(got.first().map(|r| r.1), Some("SOA"), "{}", dig.stdout);
    assert_eq!(got.last().map(|r| r.1), Some("SOA"), "{}", dig.stdout);
    for expected in [
        ("foobar.com.", "NS", "ns1.foobar.com."),
        ("ns1.foobar.com.", "A", "127.0.0.1"),
        ("foobar.com.", "A", "127.0.0.1"),
        ("www.foobar.com.", "CNAME", "foobar.com."),
    ] {
        assert!(
            got.contains(&expected),
            "{expected:?} missing:\n{}",
            dig.stdout
        );
    }
    assert_eq!(got.len(), 6, "{}", dig.stdout);

    // AXFR is a TCP protocol (RFC 5936 §4.2): still refused over UDP.
    let reply = ask_udp(server.dns_addr(), &query("foobar.com.", RecordType::AXFR));
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

#[test]
fn axfr_is_refused_to_networks_not_listed() {
    let Some((_server, dig)) = axfr_allowing("10.0.0.0/8") else {
        return;
    };
    assert_contains(&dig.stdout, "; Transfer failed.");
    assert!(axfr_records(&dig.stdout).is_empty(), "{}", dig.stdout);
}

// --- UPDATE and NOTIFY (D16) ------------------------------------------------------------

/// RFC 2136: a dynamic update is refused and changes nothing.
#[test]
fn update_is_refused_and_the_zone_is_unchanged() {
    skip_unless!(nsupdate_tools());
    let server = Onebox::start();
    let dns = server.dns_addr();
    let soa_before = server.dig(&["foobar.com", "SOA"]).answer;

    // Our own UPDATE: zone section foobar.com SOA, update section "add x A".
    let mut update = Message::new(0x5151, MessageType::Query, OpCode::Update);
    let mut zone = Query::query(Name::from_ascii("foobar.com.").unwrap(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    update.add_query(zone);
    update.add_authority(Record::from_rdata(
        Name::from_ascii("x.foobar.com.").unwrap(),
        60,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
    ));
    for reply in [ask_udp(dns, &update), ask_tcp(dns, &update)] {
        assert_eq!(reply.metadata.op_code, OpCode::Update);
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    }

    // nsupdate, the tool an administrator would use.
    let script = format!(
        "server {} {}\nzone foobar.com\nupdate add x.foobar.com 60 A 192.0.2.1\nsend\n",
        dns.ip(),
        dns.port()
    );
    let script_dir = TempDir::new("nsupdate");
    let script_path = script_dir.write("update.txt", &script);
    let mut command = std::process::Command::new("nsupdate");
    command
        .args(["-t", "5"])
        .arg(&script_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let (status, stdout, stderr) = run_bounded(command);
    assert!(!status.success(), "nsupdate succeeded:\n{stdout}{stderr}");
    assert!(
        stderr.contains("REFUSED"),
        "nsupdate did not see REFUSED:\n{stdout}{stderr}"
    );

    let dig = server.dig(&["x.foobar.com", "A"]);
    assert_eq!(
        dig.status, "NXDOMAIN",
        "the update was applied:\n{}",
        dig.stdout
    );
    assert_eq!(
        server.dig(&["foobar.com", "SOA"]).answer,
        soa_before,
        "the SOA (serial) changed"
    );
}

/// RFC 1996: we have no primary to be notified by; NOTIFY is refused.
#[test]
fn notify_is_refused() {
    let Some(server) = dig_onebox() else { return };
    let dig = server.dig(&["+opcode=4", "foobar.com", "SOA"]);
    assert_eq!(dig.opcode, "NOTIFY", "{}", dig.stdout);
    assert_eq!(dig.status, "REFUSED", "{}", dig.stdout);
    assert!(dig.answer.is_empty(), "{}", dig.stdout);

    let mut notify = Message::new(0x4242, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(
        Name::from_ascii("foobar.com.").unwrap(),
        RecordType::SOA,
    ));
    notify.metadata.authoritative = true;
    let reply = ask_udp(server.dns_addr(), &notify);
    assert_eq!(reply.metadata.op_code, OpCode::Notify);
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);

    // Still serving the same zone.
    let dig = server.dig(&["foobar.com", "A"]);
    assert_eq!(dig.answers_of("A")[0].data, "127.0.0.1");
}

/// D18 (RFC 7873): onebox does not implement DNS cookies, so a client cookie is
/// ignored and never echoed (echoing it would tell the client its cookie was
/// verified), and a malformed COOKIE option is ignored like any unknown option.
#[test]
fn cookies_are_ignored_and_never_echoed() {
    let Some(server) = dig_onebox() else { return };
    let dig = server.dig(&["+edns=0", "+cookie=0102030405060708", "foobar.com", "SOA"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
    assert!(
        !dig.stdout.contains("COOKIE"),
        "a cookie came back:\n{}",
        dig.stdout
    );
    let dig = server.dig(&[
        "+edns=0",
        "+nocookie",
        "+ednsopt=10:00",
        "foobar.com",
        "SOA",
    ]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
    assert!(
        !dig.stdout.contains("COOKIE"),
        "a cookie came back:\n{}",
        dig.stdout
    );
    assert_eq!(dig.opt.len(), 1, "an option was echoed:\n{}", dig.stdout);
}
