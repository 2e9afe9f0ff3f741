//! Proves the authoritative answers (checklist D1–D5, D12, RFC 2308, RFC 6604,
//! RFC 8020, RFC 8482): the real binary, real UDP and TCP, asked with `dig` and with
//! our own hickory-proto client.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;
use hickory_server::proto::op::{MessageType, ResponseCode};
use hickory_server::proto::rr::RecordType;

/// The zone every negative-answer test serves: SOA TTL 3600 and MINIMUM 300, so
/// RFC 2308's min(TTL, MINIMUM) = 300 is visibly not the SOA's own TTL, plus the
/// odd names the tests need.
const EXTRA: &str = "\
dangling 3600 IN CNAME nothere.foobar.com.
outside  3600 IN CNAME www.example.org.
a.b      3600 IN A     127.0.0.2
mail     3600 IN TXT   \"v=spf1 -all\"
";

#[test]
fn positive_answers_are_authoritative() {
    let Some(server) = dig_onebox() else { return };
    for (name, rtype, data) in [
        (
            "foobar.com",
            "SOA",
            "ns1.foobar.com. hostmaster.foobar.com.",
        ),
        ("foobar.com", "NS", "ns1.foobar.com."),
        ("foobar.com", "A", "127.0.0.1"),
        ("ns1.foobar.com", "A", "127.0.0.1"),
        ("www.foobar.com", "CNAME", "foobar.com."),
    ] {
        let dig = server.dig(&[name, rtype]);
        assert_eq!(dig.status, "NOERROR", "{name} {rtype}:\n{}", dig.stdout);
        assert!(
            dig.has_flag("aa"),
            "{name} {rtype} lacks aa:\n{}",
            dig.stdout
        );
        assert!(
            !dig.has_flag("ra"),
            "{name} {rtype} has ra:\n{}",
            dig.stdout
        );
        assert!(
            !dig.has_flag("tc"),
            "{name} {rtype} has tc:\n{}",
            dig.stdout
        );
        let answers = dig.answers_of(rtype);
        assert_eq!(answers.len(), 1, "{name} {rtype}:\n{}", dig.stdout);
        assert_eq!(answers[0].name, format!("{name}."));
        assert!(
            answers[0].data.starts_with(data),
            "{name} {rtype}: {:?}",
            answers[0]
        );
    }
}

/// Asks `name rtype` with dig over UDP, then over TCP, checking each answer is
/// an authoritative NOERROR; the two digs (their output names the transport).
fn authoritative_over_udp_and_tcp(server: &Onebox, name: &str, rtype: &str) -> [Dig; 2] {
    ["+notcp", "+tcp"].map(|transport| {
        let dig = server.dig(&[transport, name, rtype]);
        dig.assert_authoritative("NOERROR");
        dig
    })
}

/// The answer a browser's stub resolver needs: the CNAME, then the apex A record
/// that maps the name to an address, both in ANSWER (stub resolvers read nothing else).
#[test]
fn www_a_is_the_cname_then_the_apex_a_record() {
    let Some(server) = dig_onebox() else { return };
    for dig in authoritative_over_udp_and_tcp(&server, "www.foobar.com", "A") {
        let got = name_type_data(&dig.answer);
        assert_eq!(
            got,
            [
                ("www.foobar.com.", "CNAME", "foobar.com."),
                ("foobar.com.", "A", "127.0.0.1"),
            ],
            "{}",
            dig.stdout
        );
    }

    let ask = query("www.foobar.com.", RecordType::A);
    for reply in ask_udp_and_tcp(server.dns_addr(), &ask) {
        assert_eq!(reply.metadata.message_type, MessageType::Response);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authoritative);
        let answers: Vec<_> = reply.answers.iter().map(summary).collect();
        assert_eq!(
            answers,
            [
                (
                    "www.foobar.com.".into(),
                    3600,
                    "CNAME".into(),
                    "foobar.com.".into()
                ),
                ("foobar.com.".into(), 3600, "A".into(), "127.0.0.1".into()),
            ]
        );
    }
}

/// RFC 4343: names match case-insensitively, and the question comes back exactly
/// as asked (resolvers use the mixed case against spoofing, "0x20").
#[test]
fn case_insensitive_and_question_echoed_byte_for_byte() {
    let Some(server) = dig_onebox() else { return };
    let dig = server.dig(&["WwW.FoObAr.CoM", "A"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
    assert_eq!(dig.question.len(), 1, "{}", dig.stdout);
    assert!(
        dig.question[0].starts_with("WwW.FoObAr.CoM.\t"),
        "question not echoed as sent: {:?}",
        dig.question
    );
    let rtypes = rtypes(&dig.answer);
    assert_eq!(rtypes, ["CNAME", "A"], "{}", dig.stdout);

    // Byte for byte, from the raw packets: the question section of the reply is the
    // question section of the query.
    let packet = encode(&query("WwW.FoObAr.CoM.", RecordType::A));
    for reply in [
        udp_raw(server.dns_addr(), &packet),
        tcp_raw(server.dns_addr(), &packet),
    ] {
        // Header (12) + the name "WwW.FoObAr.CoM." (16 bytes) + type + class.
        let question = &packet[12..12 + 16 + 4];
        assert_eq!(&reply[12..12 + 16 + 4], question, "{reply:02x?}");
        assert_eq!(&reply[4..6], &[0, 1], "QDCOUNT");
    }
}

/// RFC 2308: NXDOMAIN and NODATA carry the zone's SOA in AUTHORITY, with the TTL
/// min(SOA TTL, MINIMUM) so resolvers cache the "no" for the right time.
#[test]
fn nxdomain_and_nodata_carry_the_soa_with_the_negative_ttl() {
    let Some((_zones, server)) = dig_onebox_on(EXTRA) else {
        return;
    };
    for (name, rtype, status) in [
        ("nope.foobar.com", "A", "NXDOMAIN"),
        ("deep.nope.foobar.com", "AAAA", "NXDOMAIN"),
        ("foobar.com", "TXT", "NOERROR"),
        ("foobar.com", "AAAA", "NOERROR"),
        ("foobar.com", "MX", "NOERROR"),
        ("ns1.foobar.com", "AAAA", "NOERROR"),
        ("mail.foobar.com", "A", "NOERROR"),
        // RFC 8020: b.foobar.com has nothing but a name below it; it exists (NODATA).
        ("b.foobar.com", "A", "NOERROR"),
    ] {
        for transport in ["+notcp", "+tcp"] {
            let dig = server.dig(&[transport, name, rtype]);
            let what = format!("{transport} {name} {rtype}:\n{}", dig.stdout);
            assert_eq!(dig.status, status, "{what}");
            assert!(dig.has_flag("aa"), "{what}");
            assert!(dig.answer.is_empty(), "{what}");
            assert_eq!(dig.authority.len(), 1, "{what}");
            let soa = &dig.authority[0];
            assert_eq!(
                (soa.name.as_str(), soa.rtype.as_str()),
                ("foobar.com.", "SOA"),
                "{what}"
            );
            assert_eq!(soa.ttl, 300, "negative TTL must be min(3600, 300): {what}");
        }
    }

    let reply = ask_udp(server.dns_addr(), &query("nope.foobar.com.", RecordType::A));
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert!(reply.metadata.authoritative);
    assert!(reply.answers.is_empty());
    assert_eq!(types(&reply.authorities), ["SOA"]);
    assert_eq!(reply.authorities[0].ttl, 300);
}

/// The other side of min(): an SOA whose own TTL is below MINIMUM keeps its TTL.
#[test]
fn negative_ttl_is_the_soa_ttl_when_that_is_smaller() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let zones = TempDir::new("zones");
    zones.write(
        "foobar.com.zone",
        "$ORIGIN foobar.com.\n$TTL 3600\n\
         @ 60 IN SOA ns1.foobar.com. hostmaster.foobar.com. 1 7200 3600 1209600 900\n\
         @ NS ns1.foobar.com.\nns1 A 127.0.0.1\n@ A 127.0.0.1\n",
    );
    let server = Onebox::start_with_zones(&zones);
    let dig = server.dig(&["nope.foobar.com", "A"]);
    assert_eq!(dig.status, "NXDOMAIN", "{}", dig.stdout);
    assert_eq!(dig.authority.len(), 1, "{}", dig.stdout);
    assert_eq!(dig.authority[0].ttl, 60, "{}", dig.stdout);
}

/// Serves the test zone and asks `name rtype`, with dig and with our own client,
/// each over UDP and TCP: every reply must be authoritative with `rcode` (`status`
/// as dig prints it), the one
/// CNAME to `target` as its answer and the SOA with the negative TTL (300) as its
/// authority: a CNAME chain that ends in no data.
fn assert_cname_then_soa(
    name: &str,
    rtype: RecordType,
    (status, rcode): (&str, ResponseCode),
    target: &str,
) {
    let Some((_zones, server)) = dig_onebox_on(EXTRA) else {
        return;
    };
    for dig in server.dig_udp_and_tcp(&[name, &rtype.to_string()]) {
        dig.assert_authoritative(status);
        let answer = type_data(&dig.answer);
        assert_eq!(answer, [("CNAME", target)], "{}", dig.stdout);
        let authority = type_ttl(&dig.authority);
        assert_eq!(authority, [("SOA", 300)], "{}", dig.stdout);
    }
    let question = query(&format!("{name}."), rtype);
    for reply in ask_udp_and_tcp(server.dns_addr(), &question) {
        assert_eq!(reply.metadata.response_code, rcode);
        assert_eq!(types(&reply.answers), ["CNAME"]);
        assert_eq!(types(&reply.authorities), ["SOA"]);
    }
}

/// `www AAAA`: www is a CNAME to the apex, which has no AAAA. The answer is the
/// CNAME (so the resolver learns the alias) plus the SOA (so it can cache the NODATA).
#[test]
fn cname_then_nodata_has_the_cname_and_the_soa() {
    assert_cname_then_soa(
        "www.foobar.com",
        RecordType::AAAA,
        ("NOERROR", ResponseCode::NoError),
        "foobar.com.",
    );
}

/// RFC 6604: a CNAME to a name that does not exist in our zone is NXDOMAIN (the
/// rcode describes the end of the chain), with the CNAME and the SOA.
#[test]
fn cname_to_a_missing_in_zone_name_is_nxdomain_with_cname_and_soa() {
    assert_cname_then_soa(
        "dangling.foobar.com",
        RecordType::A,
        ("NXDOMAIN", ResponseCode::NXDomain),
        "nothere.foobar.com.",
    );
}

/// A CNAME leaving our zones: we are not a resolver, so the answer is the CNAME
/// alone, NOERROR, and the client follows it elsewhere.
#[test]
fn cname_out_of_the_zone_is_the_cname_alone() {
    let Some((_zones, server)) = dig_onebox_on(EXTRA) else {
        return;
    };
    let dig = server.dig(&["outside.foobar.com", "A"]);
    dig.assert_authoritative("NOERROR");
    let answer = type_data(&dig.answer);
    assert_eq!(answer, [("CNAME", "www.example.org.")], "{}", dig.stdout);
}

/// RFC 5358 (BCP 140): an authoritative-only server refuses names it is not
/// authoritative for, with no referral upward, no AA and no RA.
#[test]
fn out_of_zone_names_are_refused_without_referral() {
    let Some(server) = dig_onebox() else { return };
    for args in [
        &["example.org", "SOA"][..],
        &["example.org", "A"],
        &["+rec", "www.example.org", "A"],
        &["com", "NS"],
        &[".", "SOA"],
        &[".", "NS"],
        &["+tcp", "example.org", "A"],
        // A name that merely ends in our zone's text is another zone.
        &["notfoobar.com", "A"],
    ] {
        let dig = server.dig(args);
        let what = format!("{args:?}:\n{}", dig.stdout);
        assert_eq!(dig.status, "REFUSED", "{what}");
        let expected: &[&str] = if args.contains(&"+rec") {
            &["qr", "rd"]
        } else {
            &["qr"]
        };
        assert_eq!(dig.flags, expected, "{what}");
        assert!(dig.answer.is_empty(), "{what}");
        assert!(dig.authority.is_empty(), "no referral expected: {what}");
        assert!(dig.additional.is_empty(), "{what}");
    }

    let reply = ask_udp(server.dns_addr(), &query("example.org.", RecordType::A));
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(!reply.metadata.authoritative);
    assert!(!reply.metadata.recursion_available);
    assert!(reply.answers.is_empty() && reply.authorities.is_empty());
}

/// Only class IN is served: CH queries for server identity (version.bind and
/// friends) are refused, so nothing leaks and no IN data is returned under CH.
#[test]
fn non_in_classes_are_refused() {
    let Some(server) = dig_onebox() else { return };
    for args in [
        &["CH", "TXT", "version.bind"][..],
        &["CH", "TXT", "id.server"],
        &["CH", "TXT", "hostname.bind"],
        &["CH", "A", "foobar.com"],
        &["HS", "A", "foobar.com"],
        &["+tcp", "CH", "TXT", "version.bind"],
    ] {
        let dig = server.dig(args);
        let what = format!("{args:?}:\n{}", dig.stdout);
        assert_eq!(dig.status, "REFUSED", "{what}");
        assert!(!dig.has_flag("aa"), "{what}");
        assert!(dig.answer.is_empty(), "{what}");
    }
}

/// RFC 8482: ANY gets one RRset, over UDP and over TCP, never the whole name.
#[test]
fn any_gets_exactly_one_rrset() {
    let Some(server) = dig_onebox() else { return };
    for dig in authoritative_over_udp_and_tcp(&server, "foobar.com", "ANY") {
        assert!(!dig.answer.is_empty(), "{}", dig.stdout);
        let first = &dig.answer[0];
        assert!(
            dig.answer
                .iter()
                .all(|r| r.name == first.name && r.rtype == first.rtype),
            "more than one RRset:\n{}",
            dig.stdout
        );
    }
    let ask = query("foobar.com.", RecordType::ANY);
    for reply in ask_udp_and_tcp(server.dns_addr(), &ask) {
        let mut rrsets = types(&reply.answers);
        rrsets.dedup();
        assert_eq!(rrsets.len(), 1, "{:?}", reply.answers);
    }
}

/// Wildcards (RFC 4592, RFC 1034 §4.3.3): `*.wild` answers for any name below
/// `wild` that does not exist itself, with the query name as owner; such a name
/// exists, so a type it lacks is NODATA (NOERROR + SOA), never NXDOMAIN.
#[test]
fn wildcards_synthesize_answers_and_nodata() {
    let Some((_zones, server)) = dig_onebox_on("*.wild 3600 IN A 192.0.2.7\n") else {
        return;
    };
    for name in [
        "x.wild.foobar.com",
        "y.x.wild.foobar.com",
        "X.Wild.FOOBAR.com",
    ] {
        let dig = server.dig(&[name, "A"]);
        dig.assert_authoritative("NOERROR");
        let a = dig.answers_of("A");
        assert_eq!(a.len(), 1, "{}", dig.stdout);
        assert_eq!(
            a[0].name.to_lowercase(),
            format!("{}.", name.to_lowercase())
        );
        assert_eq!(a[0].data, "192.0.2.7");
    }
    for (name, rtype) in [
        ("x.wild.foobar.com", "TXT"),
        ("x.wild.foobar.com", "AAAA"),
        // The empty non-terminal `wild` itself exists too (RFC 8020).
        ("wild.foobar.com", "A"),
    ] {
        let (dig, what) = empty_noerror(&server, name, rtype);
        let authority = type_ttl(&dig.authority);
        assert_eq!(authority, [("SOA", 300)], "{what}");
    }
}

/// Asks `name rtype` and checks the answer is NOERROR with an empty ANSWER
/// section, as both NODATA and a referral are; returns the dig and a description
/// for the caller's own messages.
fn empty_noerror(server: &Onebox, name: &str, rtype: &str) -> (Dig, String) {
    let dig = server.dig(&[name, rtype]);
    let what = format!("{name} {rtype}:\n{}", dig.stdout);
    assert_eq!(dig.status, "NOERROR", "{what}");
    assert!(dig.answer.is_empty(), "an empty answer expected: {what}");
    (dig, what)
}

/// A zone cut (RFC 1034 §4.3.2, RFC 2181 §6.1): below `sub NS`, the data belongs
/// to the child zone, so we are not authoritative there. Every name at or below
/// the cut gets a referral: AA clear, empty ANSWER, the child's NS in AUTHORITY,
/// the glue address in ADDITIONAL. (NSD 4.6 answers exactly so.)
#[test]
fn names_at_and_below_a_delegation_get_a_referral() {
    let Some((_zones, server)) =
        dig_onebox_on("sub    3600 IN NS ns.sub.foobar.com.\nns.sub 3600 IN A  192.0.2.53\n")
    else {
        return;
    };
    for (name, rtype) in [
        ("www.sub.foobar.com", "A"),
        ("sub.foobar.com", "NS"),
        ("ns.sub.foobar.com", "A"),
        ("sub.foobar.com", "A"),
    ] {
        let (dig, what) = empty_noerror(&server, name, rtype);
        assert!(!dig.has_flag("aa"), "AA set on a referral: {what}");
        let authority = name_type_data(&dig.authority);
        assert_eq!(
            authority,
            [("sub.foobar.com.", "NS", "ns.sub.foobar.com.")],
            "{what}"
        );
        let additional = name_type_data(&dig.additional);
        assert_eq!(
            additional,
            [("ns.sub.foobar.com.", "A", "192.0.2.53")],
            "glue missing: {what}"
        );
    }
    // The parent is authoritative for the DS question at the cut: NODATA with SOA.
    let dig = server.dig(&["sub.foobar.com", "DS"]);
    dig.assert_authoritative("NOERROR");
    assert_eq!(dig.authority.len(), 1, "{}", dig.stdout);
    assert_eq!(dig.authority[0].rtype, "SOA", "{}", dig.stdout);
}

/// A chain of in-zone CNAMEs is followed to the end, every link in ANSWER in
/// order; a CNAME loop gets a finite answer instead of hanging or crashing.
#[test]
fn cname_chains_are_followed_and_loops_end() {
    let Some((_zones, server)) = dig_onebox_on(
        "go 3600 IN CNAME a.foobar.com.\na  3600 IN CNAME b.foobar.com.\nb  3600 IN A 192.0.2.2\n\
         l1 3600 IN CNAME l2.foobar.com.\nl2 3600 IN CNAME l1.foobar.com.\n",
    ) else {
        return;
    };
    let dig = server.dig(&["go.foobar.com", "A"]);
    assert_eq!(dig.status, "NOERROR", "{}", dig.stdout);
    let chain = name_type_data(&dig.answer);
    assert_eq!(
        chain,
        [
            ("go.foobar.com.", "CNAME", "a.foobar.com."),
            ("a.foobar.com.", "CNAME", "b.foobar.com."),
            ("b.foobar.com.", "A", "192.0.2.2"),
        ],
        "{}",
        dig.stdout
    );

    for dig in server.dig_udp_and_tcp(&["l1.foobar.com", "A"]) {
        assert!(
            matches!(dig.status.as_str(), "NOERROR" | "SERVFAIL"),
            "{}",
            dig.stdout
        );
        assert!(dig.answer.len() <= 16, "{}", dig.stdout);
        assert!(dig.answers_of("A").is_empty(), "{}", dig.stdout);
    }
    assert_eq!(server.dig(&["foobar.com", "SOA"]).status, "NOERROR");
}
