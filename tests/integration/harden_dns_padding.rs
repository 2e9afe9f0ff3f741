//! Issue 10 item 20: EDNS padding (RFC 7830) on encrypted transports. An answer to
//! a padded query over DNS over TLS or DNS over HTTPS is padded to a multiple of
//! 468 bytes (RFC 8467 §4.1), so its size no longer tells an observer which name
//! was asked. Unpadded queries get unpadded answers, and UDP and TCP answers are
//! never padded: in the clear, padding hides nothing. dig pads its query with
//! `+padding`; our own client sends the padded queries over UDP and TCP.

use crate::harness::*;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::RecordType;
use hickory_server::proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// RFC 8467 §4.1's block length for responses.
const BLOCK: usize = 468;

/// One test on purpose: "UDP and TCP stay unpadded" holds on the code before the
/// fix too, so it rides along with the half that did not.
#[test]
fn padded_queries_get_padded_answers_over_dot_and_doh_only() {
    let server = Onebox::start();
    dot_and_doh_are_padded(&server);
    udp_and_tcp_are_never_padded(&server);
}

fn dot_and_doh_are_padded(server: &Onebox) {
    let dot = server.ready_addr("dot").port().to_string();
    let doh = server.ready_addr("https").port().to_string();
    for (transport, port) in [("+tls", &dot), ("+https", &doh)] {
        for (name, rtype) in [
            ("www.foobar.com", "A"),
            ("foobar.com", "SOA"),
            ("nope.foobar.com", "A"),
        ] {
            let dig = server.dig(&[transport, "-p", port, "+padding=128", name, rtype]);
            assert!(
                !dig.status.is_empty(),
                "{transport} {name}: no answer:\n{}{}",
                dig.stdout,
                dig.stderr
            );
            let size = dig.size.expect("dig prints the message size");
            assert_eq!(
                size % BLOCK,
                0,
                "{transport} {name} {rtype}: {size} bytes is not a multiple of {BLOCK}:\n{}",
                dig.stdout
            );
            assert!(
                dig.opt.iter().any(|l| l.starts_with("PAD:")),
                "{transport}: no Padding option:\n{}",
                dig.stdout
            );
        }
        // No padding asked, none given (RFC 7830 §4: only in answer to a padded query).
        let dig = server.dig(&[transport, "-p", port, "www.foobar.com", "A"]);
        assert!(
            !dig.opt.iter().any(|l| l.starts_with("PAD:")),
            "{transport}:\n{}",
            dig.stdout
        );
        assert_ne!(dig.size.map(|s| s % BLOCK), Some(0), "{}", dig.stdout);
    }
}

fn padded_query() -> Message {
    let mut message = with_edns(query("www.foobar.com.", RecordType::A), 1232);
    if let Some(edns) = message.edns.as_mut() {
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Padding),
            vec![0; 80],
        ));
    }
    message
}

fn udp_and_tcp_are_never_padded(server: &Onebox) {
    let ask = padded_query();
    assert!(
        encode(&ask).len() > 100,
        "the query itself carries the padding option"
    );
    for (transport, reply) in [
        ("udp", ask_udp(server.dns_addr(), &ask)),
        ("tcp", ask_tcp(server.dns_addr(), &ask)),
    ] {
        assert_eq!(types(&reply.answers), ["CNAME", "A"], "{transport}");
        let edns = reply.edns.as_ref().expect("an OPT in the answer");
        assert!(
            edns.option(EdnsCode::Padding).is_none(),
            "{transport} answer padded: {edns:?}"
        );
        let size = encode(&reply).len();
        assert!(size < BLOCK, "{transport}: {size} bytes");
    }
}
