//! Memory the web server gives back: after a burst of connections closes, the
//! freed connection buffers return to the OS at the next quiet sweep.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::harness::*;

/// The served file's size.
const FILE: usize = 16 * 1024;

/// Opens `count` keep-alive connections at once, each fetching the file a few
/// times, and closes them all only once every one has been answered, so their
/// buffers are all live together.
fn burst(http: std::net::SocketAddr, count: usize) {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(count));
    let workers: Vec<_> = (0..count)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(http).expect("connect");
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .expect("read timeout");
                for _ in 0..4 {
                    stream
                        .write_all(b"GET /bench.txt HTTP/1.1\r\nHost: www.foobar.com\r\n\r\n")
                        .expect("send");
                    let mut got = Vec::new();
                    let mut buf = [0u8; 16 * 1024];
                    // The head, then the whole 16 KiB body.
                    while got
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .is_none_or(|end| got.len() < end + 4 + FILE)
                    {
                        let n = stream.read(&mut buf).expect("read");
                        assert!(n > 0, "closed early");
                        got.extend_from_slice(&buf[..n]);
                    }
                    assert!(got.starts_with(b"HTTP/1.1 200"), "not a 200");
                }
                barrier.wait();
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a client thread");
    }
}

#[test]
fn closed_connections_give_their_memory_back() {
    let site = TempDir::new("site-memory");
    std::fs::write(site.path().join("bench.txt"), vec![b'x'; FILE]).expect("site file");
    // A short idle limit makes the sweep, which trims, run every half second.
    let server = Onebox::spawn()
        .args([std::ffi::OsStr::new("--site"), site.path().as_os_str()])
        .env("ONEBOX_HTTP_IDLE_SECS", "1")
        .start();
    let before = server.rss_kib();
    burst(server.http_addr(), 200);
    let after_burst = server.rss_kib();
    assert!(
        after_burst < before + 64 * 1024,
        "200 connections took the server from {before} KiB to {after_burst} KiB"
    );
    let grown = after_burst.saturating_sub(before);
    // Without the trim glibc keeps the freed buffers and RSS stays put.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = server.rss_kib();
    while now > after_burst - grown / 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        now = server.rss_kib();
    }
    assert!(
        grown >= 1024 && now <= after_burst - grown / 3,
        "RSS {before} KiB at rest, {after_burst} KiB after 200 connections, {now} KiB once they closed"
    );
}
