//! The static fast path against the ordinary path: the same file gets the same
//! headers and bytes from a server with the fast path and one started with
//! `--no-static-fast-path`; what the fast path hands on (304, ranges, gzip, other
//! hosts, health paths) is still answered right; every request it answers is in
//! the access log; and a burst of keep-alive requests leaves memory bounded.

use crate::harness::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Files of each kind whose headers differ: text (compressible, so `Vary`), a
/// file under 32 bytes and an image (neither compressible), and the built-ins.
fn site() -> TempDir {
    let dir = TempDir::new("fastpath");
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(dir.join("bench.txt"), "static bench line\n".repeat(114)).unwrap();
    std::fs::write(dir.join("tiny.txt"), "tiny\n").unwrap();
    std::fs::write(
        dir.join("img/dot.png"),
        b"\x89PNG\r\n\x1a\nfake png bytes, long enough",
    )
    .unwrap();
    // A file named like a health endpoint must not shadow it.
    std::fs::write(dir.join("healthz"), "a file, not the health answer").unwrap();
    dir
}

const FILES: [&str; 5] = [
    "/bench.txt",
    "/tiny.txt",
    "/img/dot.png",
    "/static/site.css",
    "/favicon.svg",
];

/// The headers both paths must agree on: all but the date and the timings (the
/// built-ins' `Last-Modified` is each server's start, so it is compared for
/// `--site` files only).
fn comparable(r: &Response, path: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| k != "date" && k != "server-timing")
        .filter(|(k, _)| k != "last-modified" || site_file(path))
        .collect();
    headers.sort();
    headers
}

fn site_file(path: &str) -> bool {
    !path.starts_with("/static/") && path != "/favicon.svg"
}

fn json_server(args: &[&str]) -> Onebox {
    let mut all = vec!["--ephemeral", "--log-format", "json"];
    all.extend_from_slice(args);
    Onebox::start_with(&all, &[])
}

#[test]
fn the_fast_path_answers_files_exactly_as_the_ordinary_path() {
    let dir = site();
    let site_arg = dir.to_str().unwrap();
    let fast = json_server(&["--site", site_arg]);
    let ordinary = json_server(&["--site", site_arg, "--no-static-fast-path"]);
    let mut requests = 0;
    for path in FILES {
        for method in ["GET", "HEAD"] {
            // Twice: the first request of a `--site` file looks it up on the ordinary
            // path, the second is the fast path's.
            for round in 0..2 {
                let a = http(fast.http, method, path, "www.foobar.com", &[], b"").unwrap();
                let b = http(ordinary.http, method, path, "www.foobar.com", &[], b"").unwrap();
                requests += 1;
                let what = format!("{method} {path}, round {round}");
                assert_eq!(a.status, 200, "{what}");
                assert_eq!(b.status, 200, "{what}");
                assert_eq!(comparable(&a, path), comparable(&b, path), "{what}");
                assert_eq!(a.body, b.body, "{what}");
                assert_eq!(method == "HEAD", a.body.is_empty(), "{what}");
                for r in [&a, &b] {
                    let timing = r.header("server-timing").expect("server-timing");
                    assert!(
                        timing.starts_with("web;desc=\"web server (total)\";dur=")
                            && timing.contains(", static;desc=\"static file\";dur="),
                        "{what}: {timing}"
                    );
                }
            }
        }
    }
    // Text gets `Vary` (the compression layer would compress it); an image and a
    // tiny file do not: the comparison above covers both kinds.
    let r = http_get(&fast, "foobar.com", "/bench.txt");
    assert_eq!(r.header("vary"), Some("accept-encoding"));
    let r = http_get(&fast, "foobar.com", "/img/dot.png");
    assert_eq!(r.header("vary"), None);

    // Every request the fast path answered is in the access log, with its bytes.
    let (clean, log) = fast.stop();
    assert!(clean, "{log}");
    let access = access_events(&log);
    assert_eq!(access.len(), requests + 2, "{log}");
    for event in &access {
        assert_eq!(event["status"], 200, "{event}");
        assert_eq!(event["layer"], "static", "{event}");
        assert!(event["host"].as_str().unwrap().ends_with("foobar.com"));
        let bytes = event["bytes"].as_u64().unwrap();
        assert_eq!(event["method"] == "HEAD", bytes == 0, "{event}");
    }
    drop(ordinary);
}

#[test]
fn what_the_fast_path_hands_on_is_still_answered_right() {
    skip_unless!(require_tool("curl", "curl"));
    let dir = site();
    let server = Onebox::start_with(&["--ephemeral", "--site", dir.to_str().unwrap()], &[]);
    let url = server.url("/bench.txt");
    let host = "Host: www.foobar.com";
    let full = std::fs::read(dir.join("bench.txt")).unwrap();
    // Twice, so the second round runs with the lookup cached (the fast path's case).
    for _ in 0..2 {
        let (status, head, body) = curl(&["-H", host, &url]);
        assert_eq!((status, body.as_slice()), (200, full.as_slice()), "{head}");
        let etag = header_of(&head, "etag").unwrap().to_string();
        assert!(etag.starts_with('"'), "{head}");

        let inm = format!("If-None-Match: {etag}");
        let (status, head, body) = curl(&["-H", host, "-H", &inm, &url]);
        assert_eq!(status, 304, "{head}");
        assert!(body.is_empty());

        let (status, head, body) = curl(&["-H", host, "--range", "2-5", &url]);
        assert_eq!(status, 206, "{head}");
        assert_eq!(body, full[2..6]);
        assert_eq!(
            header_of(&head, "content-range"),
            Some(format!("bytes 2-5/{}", full.len()).as_str())
        );

        let (status, head, body) = curl(&["-H", host, "-H", "Accept-Encoding: gzip", &url]);
        assert_eq!(status, 200);
        assert_eq!(header_of(&head, "content-encoding"), Some("gzip"), "{head}");
        assert_eq!(header_of(&head, "etag"), Some(format!("W/{etag}").as_str()));
        assert!(body.len() < full.len());
        let (_, _, body) = curl(&["-H", host, "--compressed", &url]);
        assert_eq!(body, full);

        // A name the zone does not serve, and a health path shadowed by a file.
        let (status, _, _) = curl(&["-H", "Host: elsewhere.example", &url]);
        assert_eq!(status, 421);
        let (status, _, body) = curl(&["-H", host, &server.url("/healthz")]);
        assert_eq!(status, 200);
        assert!(!String::from_utf8_lossy(&body).contains("a file"));
        // A GET with a body too large still gets 413.
        let (status, _, _) = curl(&[
            "-H",
            host,
            "-X",
            "GET",
            "-H",
            "Content-Length: 2000000",
            "--max-time",
            "5",
            &url,
        ]);
        assert_eq!(status, 413);
    }
}

#[test]
fn a_burst_of_keep_alive_requests_is_answered_in_bounded_memory() {
    let dir = site();
    let server = Onebox::start_with(&["--ephemeral", "--site", dir.to_str().unwrap()], &[]);
    let expected = std::fs::read(dir.join("bench.txt")).unwrap();
    http_get(&server, "foobar.com", "/bench.txt");
    let mut peak = PeakRss::watch(server.pid, Duration::from_millis(20));
    // 32 connections, each sending its 200 requests pipelined in one write and
    // reading every answer back, as wrk does with keep-alive.
    let clients: Vec<_> = (0..32)
        .map(|_| {
            let (addr, expected) = (server.http, expected.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(30)))
                    .unwrap();
                let one = "GET /bench.txt HTTP/1.1\r\nHost: foobar.com\r\n\r\n";
                stream.write_all(one.repeat(200).as_bytes()).unwrap();
                let mut reader = BufReader::new(stream);
                for n in 0..200 {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    assert!(line.starts_with("HTTP/1.1 200"), "answer {n}: {line:?}");
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header == "\r\n" {
                            break;
                        }
                        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:")
                        {
                            length = v.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    assert_eq!(body, expected, "answer {n}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let peak_kib = peak.stop();
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    assert_eq!(http_get(&server, "foobar.com", "/healthz").status, 200);
}
