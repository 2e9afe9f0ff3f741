//! Issue 10, items 2 and 6: what password hashing and hostile usernames cost in
//! memory. The server's resident memory (VmRSS from /proc/PID/status) is sampled
//! while it works:
//!
//! - 200 concurrent sign-ups, then 2,000 sign-ups whose clients hang up after about
//!   20 ms: peak under 150 MB (at most 4 argon2 hashes of 19 MiB exist at once, and
//!   their buffers go back to the OS), and back under 40 MB within 5 s;
//! - 300 logins with 512 KiB usernames: such names cannot be valid, so nothing is
//!   stored for them, and memory settles back under 40 MB.
//!
//! Every client connects from its own loopback address (127.x.y.z), as many real
//! clients would: the per-address sign-up budget then does not stop the burst, and
//! the hashing itself is what is measured.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::harness::{PeakRss, Server, rss_kib_of};
use socket2::{Domain, Socket, Type};

const PEAK_LIMIT_KIB: u64 = 150 * 1024;
const SETTLED_LIMIT_KIB: u64 = 40 * 1024;

fn rss_kib(pid: u32) -> u64 {
    rss_kib_of(pid).unwrap_or(0)
}

/// Samples the server's RSS every 10 ms and keeps the peak.
fn watch_rss(pid: u32) -> PeakRss {
    PeakRss::watch(pid, Duration::from_millis(10))
}

/// The i-th client address: 127.1.0.1, 127.1.0.2, … (all loopback on Linux).
fn client_addr(base: u8, i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        127,
        base,
        (i / 250) as u8,
        (i % 250 + 1) as u8,
    ))
}

/// A TCP connection to `server` from `source`.
fn connect_from(source: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(source, 0).into())?;
    socket.connect_timeout(&server.into(), Duration::from_secs(5))?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    Ok(stream)
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: www.foobar.com\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Sends `request` from `source` and returns the status code.
fn exchange(source: IpAddr, server: SocketAddr, request: &[u8]) -> u16 {
    let mut stream = connect_from(source, server).expect("connect");
    stream.write_all(request).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Waits up to 5 s for RSS to fall under the settled limit; returns the last value.
fn settle(pid: u32) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = rss_kib(pid);
        if now < SETTLED_LIMIT_KIB || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signup(i: usize) -> Vec<u8> {
    post(
        "/api/v1/users",
        &format!(r#"{{"username":"user{i}","password":"correct horse {i}"}}"#),
    )
}

#[test]
fn sign_ups_concurrent_and_abandoned_keep_memory_bounded_and_give_it_back() {
    let server = Server::start();
    let (pid, addr) = (server.pid, server.http);
    let idle = rss_kib(pid);

    // 200 sign-ups at once, each from its own address.
    let mut sampler = watch_rss(pid);
    let barrier = Arc::new(Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                exchange(client_addr(1, i), addr, &signup(i))
            })
        })
        .collect();
    let created = threads
        .into_iter()
        .map(|t| t.join().expect("client"))
        .filter(|s| *s == 201)
        .count();
    let peak = sampler.stop();
    let settled = settle(pid);
    eprintln!(
        "200 concurrent sign-ups ({created} created): idle {idle} KiB, peak {peak} KiB, settled {settled} KiB"
    );
    assert_eq!(created, 200);
    assert!(peak < PEAK_LIMIT_KIB, "peak RSS {peak} KiB");
    assert!(
        settled < SETTLED_LIMIT_KIB,
        "RSS {settled} KiB 5 s after the burst"
    );

    // 2,000 sign-ups whose clients hang up after ~20 ms, 100 at a time.
    let mut sampler = watch_rss(pid);
    let started = Instant::now();
    let threads: Vec<_> = (0..100)
        .map(|t| {
            std::thread::spawn(move || {
                for n in 0..20 {
                    let i = t * 20 + n;
                    if let Ok(mut stream) = connect_from(client_addr(2, i), addr) {
                        let _ = stream.write_all(&signup(1000 + i));
                        std::thread::sleep(Duration::from_millis(20));
                        drop(stream);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client");
    }
    let sent_in = started.elapsed();
    let settled = settle(pid);
    let peak = sampler.stop();
    eprintln!(
        "2,000 abandoned sign-ups (sent in {sent_in:.1?}): peak {peak} KiB, settled {settled} KiB"
    );
    assert!(peak < PEAK_LIMIT_KIB, "peak RSS {peak} KiB");
    assert!(
        settled < SETTLED_LIMIT_KIB,
        "RSS {settled} KiB 5 s after the burst"
    );
    // The server is still fine.
    assert_eq!(exchange(client_addr(3, 0), addr, &signup(9999)), 201);
}

#[test]
fn huge_usernames_are_refused_before_anything_is_stored() {
    let server = Server::start();
    let (pid, addr) = (server.pid, server.http);
    let mut sampler = watch_rss(pid);
    // 300 distinct 512 KiB names, 10 clients at a time, each from its own address
    // so no per-address budget stops them first.
    let threads: Vec<_> = (0..10)
        .map(|t| {
            std::thread::spawn(move || {
                let mut statuses = Vec::new();
                for n in 0..30 {
                    let i = t * 30 + n;
                    let name = format!("{i:06}{}", "x".repeat(512 * 1024));
                    let body = format!(r#"{{"username":"{name}","password":"wrong horse"}}"#);
                    statuses.push(exchange(
                        client_addr(4, i),
                        addr,
                        &post("/api/v1/sessions", &body),
                    ));
                }
                statuses
            })
        })
        .collect();
    for t in threads {
        for status in t.join().expect("client") {
            assert_eq!(status, 401, "an impossible name is a wrong login");
        }
    }
    let peak = sampler.stop();
    let settled = settle(pid);
    eprintln!("300 logins with 512 KiB names: peak {peak} KiB, settled {settled} KiB");
    assert!(
        settled < SETTLED_LIMIT_KIB,
        "RSS {settled} KiB after the burst: names were kept"
    );
}
