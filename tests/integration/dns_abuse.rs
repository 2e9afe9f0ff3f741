//! Proves the DNS server survives hostile and odd traffic (checklist D13, D14,
//! D20–D22): responses are never answered, garbage gets FORMERR or silence and
//! never a crash, TCP framing is read byte-exactly however it is split, pipelined
//! queries are all answered, and idle TCP connections do not starve anyone.
//! All traffic goes to 127.0.0.1 only and every loop is bounded.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::*;
use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::RecordType;

/// How long to listen for a reply that must not come. A bounded wait: the test
/// passes on silence, it does not measure anything.
const SILENCE: Duration = Duration::from_millis(700);

// --- D13: never answer a response ------------------------------------------------------

/// A server that answers responses can be made to loop with another server
/// (RUSTSEC-2023-0041); NSD and Knot drop every QR=1 packet on the raw header.
#[test]
fn qr1_packets_get_no_reply() {
    let mut server = Onebox::start();
    let dns = server.dns_addr();

    // A well-formed response: one of the server's own answers, sent back to it.
    let response = udp_raw(dns, &encode(&query("foobar.com.", RecordType::SOA)));
    assert_eq!(response[2] & 0x80, 0x80);
    assert_eq!(
        udp_try(dns, &response, SILENCE),
        None,
        "answered a response"
    );

    // A malformed one: a header with QR=1 and impossible counts, then garbage.
    let mut malformed = vec![0x13, 0x37, 0x80, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0];
    malformed.extend_from_slice(&[0xc0, 0x0c, 0xff, 0x00, 0x42]);
    assert_eq!(
        udp_try(dns, &malformed, SILENCE),
        None,
        "answered garbage with QR=1"
    );
    // Just the 12-byte header with QR=1.
    assert_eq!(udp_try(dns, &malformed[..12], SILENCE), None);

    // Over TCP: send both, then a query, on one connection. The first reply read
    // must be the query's: nothing was sent for the responses.
    let mut stream = tcp_connect(dns);
    let ask = query("www.foobar.com.", RecordType::A);
    let mut bytes = frame(&response);
    bytes.extend(frame(&malformed));
    bytes.extend(frame(&encode(&ask)));
    stream.write_all(&bytes).unwrap();
    let reply = decode(&read_framed(&mut stream).unwrap());
    assert_eq!(
        reply.metadata.id, ask.metadata.id,
        "first TCP reply is not for the query"
    );

    assert_alive(&mut server);
}

// --- D14: garbage ------------------------------------------------------------------------

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        h.extend_from_slice(&c.to_be_bytes());
    }
    h
}

fn wire_name(labels: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for label in labels {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// Hand-made malformed queries, each with the rcode a careful server gives.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    let soa = [0u8, 6, 0, 1];
    let foobar = wire_name(&[b"foobar", b"com"]);
    let mut cases = Vec::new();

    let mut qd2 = header(1, 0, [2, 0, 0, 0]);
    qd2.extend(&foobar);
    qd2.extend(soa);
    qd2.extend(wire_name(&[b"www", b"foobar", b"com"]));
    qd2.extend([0, 1, 0, 1]);
    cases.push(("QDCOUNT 2", qd2));

    cases.push(("QDCOUNT 0", header(2, 0, [0, 0, 0, 0])));

    let mut looped = header(3, 0, [1, 0, 0, 0]);
    looped.extend([0xc0, 0x0c]); // a pointer to itself
    looped.extend(soa);
    cases.push(("compression pointer loop", looped));

    let mut pair = header(4, 0, [1, 0, 0, 0]);
    // "a" then a pointer to offset 12, where "a" starts again: a two-step loop.
    pair.extend([1, b'a', 0xc0, 0x0c]);
    pair.extend(soa);
    cases.push(("two-step pointer loop", pair));

    let mut forward = header(5, 0, [1, 0, 0, 0]);
    forward.extend([0xc0, 0xff]); // a pointer past the end
    forward.extend(soa);
    cases.push(("pointer past the end", forward));

    let mut long_label = header(6, 0, [1, 0, 0, 0]);
    long_label.push(64);
    long_label.extend([b'a'; 64]);
    long_label.push(0);
    long_label.extend(soa);
    cases.push(("label of 64 bytes", long_label));

    let mut long_name = header(7, 0, [1, 0, 0, 0]);
    let big: &[u8] = &[b'a'; 63];
    long_name.extend(wire_name(&[big, big, big, big, b"foobar", b"com"]));
    long_name.extend(soa);
    cases.push(("name over 255 bytes", long_name));

    let mut huge = header(8, 0, [1, 0xffff, 0xffff, 0xffff]);
    huge.extend(&foobar);
    huge.extend(soa);
    cases.push(("huge record counts", huge));

    let mut no_type = header(9, 0, [1, 0, 0, 0]);
    no_type.extend(&foobar);
    no_type.extend([0, 6]); // class missing
    cases.push(("question cut short", no_type));

    cases
}

#[test]
fn malformed_queries_get_formerr() {
    let mut server = Onebox::start();
    for (what, packet) in crafted() {
        for (transport, reply) in [
            (
                "udp",
                udp_try(server.dns_addr(), &packet, Duration::from_secs(5)),
            ),
            ("tcp", Some(tcp_raw(server.dns_addr(), &packet))),
        ] {
            let reply = reply.unwrap_or_else(|| panic!("{what} over {transport}: no reply"));
            let parsed = decode(&reply);
            assert_eq!(
                parsed.metadata.id,
                u16::from_be_bytes([packet[0], packet[1]])
            );
            assert_eq!(
                parsed.metadata.response_code,
                ResponseCode::FormErr,
                "{what} over {transport}"
            );
            assert!(parsed.answers.is_empty(), "{what} over {transport}");
        }
    }
    assert_alive(&mut server);
}

/// Trailing bytes after the question are tolerated (they cannot change the question).
#[test]
fn trailing_bytes_after_the_question_do_not_crash() {
    let mut server = Onebox::start();
    let mut packet = encode(&query("foobar.com.", RecordType::SOA));
    packet.extend_from_slice(b"trailing garbage");
    let reply = decode(&udp_raw(server.dns_addr(), &packet));
    assert!(
        matches!(
            reply.metadata.response_code,
            ResponseCode::NoError | ResponseCode::FormErr
        ),
        "{:?}",
        reply.metadata.response_code
    );
    assert_alive(&mut server);
}

/// Valid queries to mutate: different names, types, EDNS on and off.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (name, rtype) in [
        ("foobar.com.", RecordType::SOA),
        ("www.foobar.com.", RecordType::A),
        ("nope.foobar.com.", RecordType::AAAA),
        ("example.org.", RecordType::NS),
        ("foobar.com.", RecordType::ANY),
        ("foobar.com.", RecordType::AXFR),
    ] {
        let plain = query(name, rtype);
        seeds.push(encode(&plain));
        seeds.push(encode(&with_edns(plain, 4096)));
    }
    seeds.extend(crafted().into_iter().map(|(_, p)| p));
    seeds
}

/// One garbage packet: a seed truncated, bit-flipped, overwritten, extended, or
/// plain random bytes.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut packet = seeds[rng.below(seeds.len())].clone();
    match rng.below(6) {
        0 => packet.truncate(rng.below(17)), // 0–16 bytes
        1 => packet.truncate(rng.below(packet.len() + 1)),
        2 => {
            for _ in 0..1 + rng.below(8) {
                let i = rng.below(packet.len());
                packet[i] ^= 1 << rng.below(8);
            }
        }
        3 => {
            for _ in 0..1 + rng.below(6) {
                let i = rng.below(packet.len());
                packet[i] = rng.byte();
            }
        }
        4 => {
            for _ in 0..1 + rng.below(40) {
                packet.push(rng.byte());
            }
        }
        _ => {
            packet = (0..rng.below(120)).map(|_| rng.byte()).collect();
        }
    }
    // Sometimes set QR: those must never be answered.
    if packet.len() > 2 && rng.below(8) == 0 {
        packet[2] |= 0x80;
    }
    packet
}

/// What a garbage packet may be answered with: a well-formed reply (QR=1, ID of a
/// packet we sent with QR=0 and at least a full header), or nothing. `sent` maps
/// each ID to the packets that carried it.
fn check_reply(reply: &[u8], sent: &HashMap<u16, Vec<Vec<u8>>>, seed: u64) {
    assert!(
        reply.len() >= 12,
        "seed {seed}: a {}-byte reply",
        reply.len()
    );
    assert_eq!(reply[2] & 0x80, 0x80, "seed {seed}: reply without QR");
    let id = u16::from_be_bytes([reply[0], reply[1]]);
    let Some(packets) = sent.get(&id) else {
        panic!("seed {seed}: reply with an ID nobody sent ({id}): {reply:02x?}");
    };
    let answerable = |p: &Vec<u8>| p.len() >= 12 && p[2] & 0x80 == 0;
    assert!(
        packets.iter().any(answerable),
        "seed {seed}: answered a packet shorter than a header or with QR=1: {packets:02x?}"
    );
    if let Err(e) = Message::from_vec(reply) {
        panic!("seed {seed}: unparseable reply ({e}) to {packets:02x?}: {reply:02x?}");
    }
}

/// The messages a server reading `stream` as length-prefixed frames sees: every
/// complete frame, keyed by its ID.
fn frames_by_id(mut stream: &[u8]) -> HashMap<u16, Vec<Vec<u8>>> {
    let mut frames: HashMap<u16, Vec<Vec<u8>>> = HashMap::new();
    while stream.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([stream[0], stream[1]]));
        let Some(body) = stream.get(2..2 + len) else {
            break;
        };
        if body.len() >= 2 {
            let id = u16::from_be_bytes([body[0], body[1]]);
            frames.entry(id).or_default().push(body.to_vec());
        }
        stream = &stream[2 + len..];
    }
    frames
}

/// A server to throw garbage at, and its DNS address, which must be loopback.
fn abuse_target() -> (Onebox, SocketAddr) {
    let server = Onebox::start();
    let dns = server.dns_addr();
    assert!(
        dns.ip().is_loopback(),
        "abuse traffic goes to loopback only"
    );
    (server, dns)
}

#[test]
fn survives_thousands_of_garbage_udp_packets() {
    const SEED: u64 = 0x0b0c_5eed;
    const PACKETS: usize = 3000;
    const BATCH: usize = 100;
    let (mut server, dns) = abuse_target();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(dns).unwrap();
    let mut rng = Rng(SEED);
    let seeds = seeds();
    // IDs 1..=3000 belong to garbage; the batch markers use 60000 and up.
    let mut sent: HashMap<u16, Vec<Vec<u8>>> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    let mut replies = 0;

    for batch in 0..PACKETS / BATCH {
        for i in 0..BATCH {
            let id = (batch * BATCH + i + 1) as u16;
            let mut packet = mutate(&mut rng, &seeds);
            if packet.len() >= 2 {
                packet[..2].copy_from_slice(&id.to_be_bytes());
                sent.insert(id, vec![packet.clone()]);
            }
            // A full socket buffer may drop a packet; that is fine for this test.
            let _ = socket.send(&packet);
        }
        // A marker query: its reply says the server got through the batch (UDP
        // order is not guaranteed, so a late reply is checked in the next round).
        let marker_id = 60_000 + batch as u16;
        let mut marker = query("foobar.com.", RecordType::SOA);
        marker.metadata.id = marker_id;
        socket.send(&encode(&marker)).unwrap();
        let deadline = Instant::now() + DEADLINE;
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        loop {
            assert!(
                Instant::now() < deadline,
                "batch {batch}: no reply to the marker query; server alive: {}\n{}",
                server.is_running(),
                server.stderr()
            );
            let Ok(n) = socket.recv(&mut buf) else {
                // The marker itself may have been dropped with a full buffer: resend.
                socket.send(&encode(&marker)).unwrap();
                continue;
            };
            let reply = &buf[..n];
            let id = u16::from_be_bytes([reply[0], reply[1]]);
            if id >= 60_000 {
                if id == marker_id {
                    break;
                }
                continue; // an earlier marker, resent
            }
            check_reply(reply, &sent, SEED);
            replies += 1;
        }
    }
    // Late replies.
    socket.set_read_timeout(Some(SILENCE)).unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        let id = u16::from_be_bytes([buf[0], buf[1]]);
        if id < 60_000 {
            check_reply(&buf[..n], &sent, SEED);
            replies += 1;
        }
    }
    assert!(
        replies > 0,
        "not one garbage packet got a reply: the test is not testing"
    );
    assert_alive(&mut server);
    let reply = ask_tcp(dns, &query("foobar.com.", RecordType::SOA));
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn survives_hundreds_of_garbage_tcp_messages() {
    const SEED: u64 = 0x7c9_5eed;
    let (mut server, dns) = abuse_target();
    let mut rng = Rng(SEED);
    let seeds = seeds();
    let mut answered = 0;
    for n in 0..300u16 {
        let mut packet = mutate(&mut rng, &seeds);
        if packet.len() >= 2 {
            packet[..2].copy_from_slice(&(n + 1).to_be_bytes());
        }
        // Mostly framed correctly; sometimes with a wrong length or no frame at all.
        let bytes = match rng.below(6) {
            0 => packet.clone(),
            1 => {
                let mut b = ((packet.len() + 1 + rng.below(100)) as u16)
                    .to_be_bytes()
                    .to_vec();
                b.extend(&packet);
                b
            }
            _ => frame(&packet),
        };
        let mut stream = tcp_connect(dns);
        stream.write_all(&bytes).unwrap();
        // No more data: the server must see EOF and close, whatever it was waiting for.
        stream.shutdown(Shutdown::Write).unwrap();
        let mut received = Vec::new();
        match stream.read_to_end(&mut received) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("seed {SEED} message {n}: server did not close: {e}"),
        }
        // What the server saw depends on how it framed the bytes, not on how we meant them.
        let sent = frames_by_id(&bytes);
        let mut rest = &received[..];
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
            assert!(
                rest.len() >= 2 + len,
                "seed {SEED} message {n}: a cut-off reply frame"
            );
            let reply = &rest[2..2 + len];
            check_reply(reply, &sent, SEED);
            answered += 1;
            rest = &rest[2 + len..];
        }
        assert!(
            rest.is_empty(),
            "seed {SEED} message {n}: stray bytes {rest:02x?}"
        );
    }
    assert!(
        answered > 0,
        "no garbage message got a reply: the test is not testing"
    );
    assert_alive(&mut server);
}

// --- D20, D21: TCP framing and pipelining ------------------------------------------------

/// RFC 7766 §8: a message may arrive in any number of pieces, the length prefix too.
#[test]
fn tcp_length_prefix_and_body_may_arrive_in_pieces() {
    let server = Onebox::start();
    let ask = query("www.foobar.com.", RecordType::A);
    let framed = frame(&encode(&ask));
    let mut stream = tcp_connect(server.dns_addr());
    let pause = Duration::from_millis(50);
    stream.write_all(&framed[..1]).unwrap(); // half the length
    std::thread::sleep(pause);
    stream.write_all(&framed[1..2]).unwrap();
    std::thread::sleep(pause);
    let body = &framed[2..];
    let third = body.len() / 3;
    for piece in [&body[..third], &body[third..2 * third], &body[2 * third..]] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(pause);
    }
    let reply = decode(&read_framed(&mut stream).unwrap());
    assert_eq!(reply.metadata.id, ask.metadata.id);
    assert_eq!(types(&reply.answers), ["CNAME", "A"]);

    // The connection is still good for another query.
    let again = query("foobar.com.", RecordType::NS);
    stream.write_all(&frame(&encode(&again))).unwrap();
    let reply = decode(&read_framed(&mut stream).unwrap());
    assert_eq!(reply.metadata.id, again.metadata.id);
}

/// Several messages in one segment are each answered.
#[test]
fn tcp_several_queries_in_one_write() {
    let server = Onebox::start();
    for count in [2, 3] {
        let asks: Vec<Message> = (0..count)
            .map(|i| {
                let names = ["foobar.com.", "www.foobar.com.", "nope.foobar.com."];
                query(names[i], RecordType::A)
            })
            .collect();
        let mut bytes = Vec::new();
        for ask in &asks {
            bytes.extend(frame(&encode(ask)));
        }
        let mut stream = tcp_connect(server.dns_addr());
        stream.write_all(&bytes).unwrap();
        let mut ids: Vec<u16> = (0..count)
            .map(|_| decode(&read_framed(&mut stream).unwrap()).metadata.id)
            .collect();
        let mut expected: Vec<u16> = asks.iter().map(|a| a.metadata.id).collect();
        ids.sort_unstable();
        expected.sort_unstable();
        assert_eq!(ids, expected, "{count} in one write");
    }
}

/// RFC 7766 §6.2.1: a client may pipeline; every query gets its answer (in any order).
#[test]
fn tcp_pipelining_fifty_queries() {
    let server = Onebox::start();
    let mut stream = tcp_connect(server.dns_addr());
    let names = [
        "foobar.com.",
        "www.foobar.com.",
        "nope.foobar.com.",
        "ns1.foobar.com.",
    ];
    let asks: Vec<Message> = (0..50)
        .map(|i| query(names[i % names.len()], RecordType::A))
        .collect();
    for ask in &asks {
        stream.write_all(&frame(&encode(ask))).unwrap();
    }
    let mut expected: HashMap<u16, &Message> = asks.iter().map(|a| (a.metadata.id, a)).collect();
    assert_eq!(expected.len(), 50, "IDs must be distinct");
    for _ in 0..50 {
        let reply = decode(&read_framed(&mut stream).unwrap());
        let ask = expected
            .remove(&reply.metadata.id)
            .unwrap_or_else(|| panic!("unexpected or repeated ID {}", reply.metadata.id));
        assert_eq!(reply.queries, ask.queries, "reply to the wrong question");
    }
    assert!(expected.is_empty());
}

// --- D22: idle connections -----------------------------------------------------------------

/// Fifty idle TCP connections (and one stuck halfway through a length prefix) do
/// not stop UDP or a new TCP client from being served.
#[test]
fn idle_tcp_connections_do_not_block_others() {
    let mut server = Onebox::start();
    let dns = server.dns_addr();
    let mut idle: Vec<_> = (0..50).map(|_| tcp_connect(dns)).collect();
    idle[0].write_all(&[0]).unwrap(); // half a length prefix, then nothing
    assert_alive(&mut server);
    let reply = ask_tcp(dns, &query("www.foobar.com.", RecordType::A));
    assert_eq!(types(&reply.answers), ["CNAME", "A"]);
    drop(idle);
}

/// RFC 7766 §10, RFC 9210: TCP connections are capped (NSD 100, BIND 150), so
/// holding 300 open cannot exhaust the server. UDP is served meanwhile, the extra
/// connections are closed, and TCP works again once they are gone.
#[test]
fn tcp_connections_are_capped() {
    let mut server = Onebox::start();
    let dns = server.dns_addr();
    let mut held: Vec<_> = (0..300).map(|_| tcp_connect(dns)).collect();
    assert_alive(&mut server);

    // Wait (bounded) until the server has closed some of them.
    let deadline = Instant::now() + DEADLINE;
    let closed = loop {
        let mut closed = 0;
        for stream in &mut held {
            stream.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            match stream.read(&mut byte) {
                Ok(0) => closed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
                _ => {}
            }
            stream.set_nonblocking(false).unwrap();
        }
        if closed > 0 || Instant::now() > deadline {
            break closed;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        closed > 0,
        "all 300 idle connections were kept open: no cap"
    );

    drop(held);
    let deadline = Instant::now() + DEADLINE;
    let ask = query("www.foobar.com.", RecordType::A);
    loop {
        let answered = (|| {
            let mut stream = tcp_connect(dns);
            stream.write_all(&frame(&encode(&ask))).ok()?;
            read_framed(&mut stream).ok()
        })();
        if let Some(reply) = answered {
            assert_eq!(decode(&reply).metadata.id, ask.metadata.id);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TCP not served again after the connections closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_alive(&mut server);
}

/// RFC 7766 §6.2.3: the server closes connections that stay idle, so they cannot
/// pile up. Waits (bounded) for the close; does not time it.
#[test]
fn idle_tcp_connection_is_closed_by_the_server() {
    let server = Onebox::start();
    let mut stream = tcp_connect(server.dns_addr());
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("server sent data on an idle connection"),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("idle connection not closed by the server within 60 s: {e}"),
    }
}
