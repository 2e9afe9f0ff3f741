//! Proves the per-core DNS design against the real binary: one UDP socket per
//! worker on the DNS port, no worker serving an answer it cached before the
//! zones changed, and, as shipped (no `RUST_LOG`), every query in the live view
//! but none in the log on stderr.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::time::Duration;

use crate::harness::*;
use crate::live::EventStream;
use crate::reload::wait_for_a;
use hickory_server::proto::rr::RecordType;

/// Queries from this many client ports reach every worker: the kernel picks a
/// socket by a hash of the sender's address and port.
const CLIENTS: usize = 64;

/// UDP sockets bound to `port` on this machine (IPv4 and IPv6), from /proc.
fn udp_sockets_on(port: u16) -> usize {
    let suffix = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|text| {
            text.lines()
                .skip(1)
                .filter(|line| {
                    line.split_whitespace()
                        .nth(1)
                        .is_some_and(|local| local.ends_with(&suffix))
                })
                .count()
        })
        .sum()
}

/// `name A` asked from `CLIENTS` fresh sockets: each answer's A records.
fn a_from_many_ports(server: &Onebox, name: &str) -> Vec<Vec<String>> {
    (0..CLIENTS)
        .map(|_| {
            let reply = ask_udp(server.dns_addr(), &query(name, RecordType::A));
            reply
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::A)
                .map(|r| r.data.to_string())
                .collect()
        })
        .collect()
}

#[test]
fn each_udp_worker_has_its_own_socket_and_none_serves_a_stale_answer() {
    let zones = test_zones("probe 300 IN A 192.0.2.1\n");
    // A chosen port, as a real server has: a port the kernel picks gets one
    // shared socket instead (the next test).
    let server = Onebox::spawn()
        .zones(zones.path())
        .dns(format!("127.0.0.1:{}", free_port()))
        .start();
    // One worker per core the server may run on; it inherits our CPU affinity.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The workers' sockets open as the DNS server starts, maybe just after the
    // ready line: wait for them.
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut sockets = udp_sockets_on(server.dns_addr().port());
    while sockets < workers && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        sockets = udp_sockets_on(server.dns_addr().port());
    }
    assert_eq!(sockets, workers, "one SO_REUSEPORT socket per worker");

    // Twice from every port: the second answer comes from the worker's own copy
    // of the cache, which must not outlive the zones it was made from.
    for _ in 0..2 {
        let answers = a_from_many_ports(&server, "probe.foobar.com.");
        assert!(answers.iter().all(|a| a == &["192.0.2.1"]), "{answers:?}");
    }
    let head = zones.path().join("foobar.com.zone");
    let text = std::fs::read_to_string(&head).unwrap();
    zones.write(
        "foobar.com.zone",
        &text
            .replace(" 7 7200 ", " 8 7200 ")
            .replace("192.0.2.1", "192.0.2.2"),
    );
    server.signal(libc::SIGHUP);
    wait_for_a(&server, "probe.foobar.com.", "192.0.2.2");
    let answers = a_from_many_ports(&server, "probe.foobar.com.");
    assert!(
        answers.iter().all(|a| a == &["192.0.2.2"]),
        "some worker still serves the old zone: {answers:?}"
    );
}

/// A fixture's DNS port (`--dns 127.0.0.1:0`) lies in the ephemeral range, where
/// nsupdate and dig bind client sockets with SO_REUSEPORT at random: none of them
/// may join it and take a share of its queries.
#[test]
fn a_port_the_kernel_picked_cannot_be_joined_by_another_socket() {
    let server = Onebox::start();
    let port = server.dns_addr().port();
    let joiner = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    joiner.set_reuse_port(true).unwrap();
    let joined = joiner.bind(&server.dns_addr().into());
    assert!(
        joined.is_err(),
        "a SO_REUSEPORT socket joined the DNS port {port}"
    );
    assert_eq!(udp_sockets_on(port), 1, "one socket, shared by the workers");
    let reply = ask_udp(server.dns_addr(), &query("www.foobar.com.", RecordType::A));
    assert!(!reply.answers.is_empty(), "the shared socket answers");
}

#[test]
fn as_shipped_each_query_reaches_the_live_view_but_not_stderr() {
    let server = Onebox::spawn().shipped_logging().start();
    let mut events = EventStream::open(server.http_addr(), "www.foobar.com");
    let probe = format!("shipped-{}.foobar.com.", std::process::id());
    // The first answer is computed, the second replayed from the cache, the
    // third goes over TCP: three paths, three events.
    for _ in 0..2 {
        ask_udp(server.dns_addr(), &query(&probe, RecordType::A));
    }
    ask_tcp(server.dns_addr(), &query(&probe, RecordType::A));
    let mut seen = Vec::new();
    for transport in ["udp", "udp", "tcp"] {
        events.wait_for(
            &mut seen,
            |e| e["kind"] == "dns" && e["name"] == probe.as_str() && e["transport"] == transport,
            transport,
        );
    }
    // The events were published as the answers left; a log line would have been
    // written by now too, but give the log writer's thread a moment.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.stderr();
    assert!(
        !log.contains(&probe[..probe.len() - 1]),
        "a query was logged at the default level:\n{log}"
    );
    assert!(
        log.contains("dns: listening"),
        "the info level itself is on:\n{log}"
    );
}
