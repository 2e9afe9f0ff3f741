//! Proves a UDP flood does not grow the server's memory (checklist D23, RFC 9210):
//! after a warm-up, many more queries with ever-new names (so no cache can hold
//! them all) leave the resident set where it was. Bounded by count, loopback only.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::harness::*;
use hickory_server::proto::rr::RecordType;

/// Sends `count` queries from one socket in windows of `WINDOW`, reading the
/// replies of each window before the next (so the server, not the kernel, handles
/// them). Names are mostly new random ones; some are real. Returns replies seen.
fn flood(server: SocketAddr, rng: &mut Rng, count: usize) -> usize {
    const WINDOW: usize = 128;
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::MX,
    ];
    let mut buf = [0u8; 4096];
    let mut replies = 0;
    let mut sent = 0;
    while sent < count {
        let window = WINDOW.min(count - sent);
        for _ in 0..window {
            let name = match rng.below(10) {
                0 => "www.foobar.com.".to_string(),
                1 => "foobar.com.".to_string(),
                2 => format!("r{:x}.example.org.", rng.next()),
                _ => format!("r{:x}.foobar.com.", rng.next()),
            };
            let mut ask = query(&name, types[rng.below(types.len())]);
            if rng.below(2) == 0 {
                ask = with_edns(ask, 1232);
            }
            let _ = socket.send(&encode(&ask));
        }
        sent += window;
        for _ in 0..window {
            match socket.recv(&mut buf) {
                Ok(_) => replies += 1,
                Err(_) => break,
            }
        }
    }
    replies
}

#[test]
fn udp_flood_does_not_grow_memory() {
    let mut server = Onebox::spawn().env("RUST_LOG", "warn").start();
    let dns = server.dns_addr();
    assert!(dns.ip().is_loopback(), "load goes to loopback only");
    let mut rng = Rng(0xf100d);

    // Warm-up: fills every cache and pool the server has at least once over.
    let warm = 30_000;
    let answered = flood(dns, &mut rng, warm);
    assert!(
        answered > warm / 4,
        "only {answered} of {warm} warm-up queries answered: the test is not loading the server"
    );
    let after_warm_up = server.rss_kib();

    // Four times as many new names.
    let more = 120_000;
    let answered = flood(dns, &mut rng, more);
    assert!(answered > more / 4, "only {answered} of {more} answered");
    let after_flood = server.rss_kib();
    eprintln!(
        "onebox RSS: {after_warm_up} KiB after {warm} queries, {after_flood} KiB after {more} more"
    );

    // A plateau, with room for allocator noise: not a leak of one entry per name.
    assert!(
        after_flood <= after_warm_up + 8 * 1024,
        "RSS grew from {after_warm_up} KiB to {after_flood} KiB over {more} queries"
    );
    assert_alive(&mut server);
}

/// What came back for a run of identical queries from one client address.
#[derive(Debug, Default)]
struct Outcome {
    full: usize,
    slipped: usize,
    silent: usize,
}

/// Sends `count` queries for `www.foobar.com A` from `client` (a loopback address)
/// in windows, and sorts the replies into full answers, slips (TC=1 and no records)
/// and silence. `wait` is how long a missing reply is waited for: short where drops
/// are expected, generous where every reply must come.
fn burst(server: SocketAddr, client: &str, count: usize, wait: Duration) -> Outcome {
    const WINDOW: usize = 50;
    let socket = UdpSocket::bind(format!("{client}:0")).unwrap();
    socket.connect(server).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    let mut outcome = Outcome::default();
    let mut buf = [0u8; 4096];
    for start in (0..count).step_by(WINDOW) {
        let window = WINDOW.min(count - start);
        let mut pending = std::collections::HashSet::new();
        for _ in 0..window {
            let ask = query("www.foobar.com.", RecordType::A);
            pending.insert(ask.metadata.id);
            socket.send(&encode(&ask)).unwrap();
        }
        while !pending.is_empty() {
            let Ok(n) = socket.recv(&mut buf) else { break };
            let reply = decode(&buf[..n]);
            if !pending.remove(&reply.metadata.id) {
                continue;
            }
            if reply.metadata.truncation {
                assert!(reply.answers.is_empty(), "a slip carries no records");
                outcome.slipped += 1;
            } else {
                assert_eq!(types(&reply.answers), ["CNAME", "A"]);
                outcome.full += 1;
            }
        }
        outcome.silent += pending.len();
    }
    outcome
}

/// RRL (checklist D19): past the rate, one client network gets drops and, every
/// `slip`-th time, a TC=1 reply that sends a real client to TCP; TCP is never
/// limited, and another network (127.0.1.x is another /24) is not affected.
#[test]
fn response_rate_limiting_drops_and_slips_past_the_rate() {
    let server = Onebox::spawn()
        .args([
            "--rrl-rate",
            "10",
            "--rrl-slip",
            "2",
            "--rrl-exempt",
            "none",
        ])
        .env("RUST_LOG", "warn")
        .start();
    let dns = server.dns_addr();
    let limited = burst(dns, "127.0.0.1", 400, Duration::from_millis(300));
    assert!(limited.full < 200, "not limited: {limited:?}");
    assert!(
        limited.full >= 10,
        "the first second's worth is answered: {limited:?}"
    );
    assert!(limited.slipped > 0, "no TC=1 slips: {limited:?}");
    assert!(limited.silent > 0, "nothing dropped: {limited:?}");

    let tcp = ask_tcp(dns, &query("www.foobar.com.", RecordType::A));
    assert!(!tcp.metadata.truncation);
    assert_eq!(types(&tcp.answers), ["CNAME", "A"]);

    let other = burst(dns, "127.0.1.1", 5, Duration::from_secs(5));
    assert_eq!(other.full, 5, "another network was limited: {other:?}");
}

/// Loopback is exempt by default, so test suites can hammer a fixture server.
#[test]
fn loopback_is_not_rate_limited_by_default() {
    let server = Onebox::spawn().env("RUST_LOG", "warn").start();
    let outcome = burst(server.dns_addr(), "127.0.0.1", 400, Duration::from_secs(5));
    assert_eq!(outcome.full, 400, "{outcome:?}");
}
