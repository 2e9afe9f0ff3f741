//! Proves a UDP flood does not grow the server's memory (checklist D23, RFC 9210):
//! after a warm-up, many more queries with ever-new names (so no cache can hold
//! them all) leave the resident set where it was. Bounded by count, loopback only.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::*;
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
