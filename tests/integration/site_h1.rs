//! The web server's own HTTP/1.1 loop (`src/web/h1.rs`) against hyper. The same
//! files and home page, asked on a keep-alive connection (the loop answers) and
//! with `Connection: close` (the loop hands the connection to hyper, whose fast
//! paths answer), get the same status, headers, bytes and access events;
//! pipelined requests are answered in order across a hand-over; heads too long
//! for the loop still meet hyper's limit; and h2c still works on the plain port.

use crate::harness::*;
use crate::metrics_counts::{scrape, value};

const HANDED_OVER: &str = "onebox_http_connections_handed_over_total";
/// How the home page's panel names the loop.
const OWN_LOOP: &str = "onebox's own HTTP/1.1 loop";

fn request(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: foobar.com\r\n{extra}\r\n")
}

/// Every header but the date and `Connection` (hyper answers `Connection: close`
/// with its own), sorted, digits masked, a new cookie's random value left out.
fn comparable(r: &Response) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| k != "date" && k != "connection")
        .map(|(k, v)| {
            let v = match k.as_str() {
                "set-cookie" => v.split_once(';').map_or(v.clone(), |(_, a)| a.to_string()),
                _ => v,
            };
            (k, masked(&v))
        })
        .collect();
    headers.sort();
    headers
}

#[test]
fn the_loop_answers_exactly_as_hyper() {
    let server = Onebox::start_with(
        &[
            "--ephemeral",
            "--log-format",
            "json",
            "--node-name",
            "node-h1",
        ],
        &[],
    );
    let asked = [
        ("GET", "/static/site.css"),
        ("HEAD", "/static/site.css"),
        ("GET", "/favicon.svg"),
        ("HEAD", "/favicon.svg"),
        ("GET", "/"),
    ];
    // The first view renders the board (one read); later ones reuse it.
    assert_eq!(http_get(&server, "foobar.com", "/").status, 200);
    let before = value(&scrape(&server), HANDED_OVER, &[]);
    let mut sizes = Vec::new();
    for (method, path) in asked {
        let looped = keep_alive(server.http, &[request(method, path, "")]).remove(0);
        let hyper = http(server.http, method, path, "foobar.com", &[], b"").unwrap();
        let what = format!("{method} {path}");
        assert_eq!((looped.status, hyper.status), (200, 200), "{what}");
        assert_eq!(comparable(&looped), comparable(&hyper), "{what}");
        // The home page names the HTTP implementation that answered it; the
        // rest of every body is the same.
        let (looped_body, hyper_body) = (looped.text(), hyper.text());
        if path == "/" {
            assert!(
                looped_body.contains(&format!("<span>{OWN_LOOP}, ")),
                "{looped_body}"
            );
            assert!(hyper_body.contains("<span>hyper, "), "{hyper_body}");
        }
        assert_eq!(
            masked(&looped_body.replace(OWN_LOOP, "hyper")),
            masked(&hyper_body),
            "{what}: the bodies differ"
        );
        assert_eq!(method == "HEAD", looped.body.is_empty(), "{what}");
        sizes.extend([looped.body.len() as u64, hyper.body.len() as u64]);
        assert_eq!(looped.header("onebox-node"), Some("node-h1"), "{what}");
        assert!(looped.header("date").is_some(), "{what}");
    }
    // Only the `Connection: close` requests went to hyper: the loop answered
    // the others itself.
    let after = value(&scrape(&server), HANDED_OVER, &[]);
    assert_eq!(after - before, asked.len() as f64);

    // Both transports log alike: one access event per request, in pairs.
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    let events = access_events(&log);
    assert_eq!(events.len(), 1 + 2 * asked.len(), "{log}");
    let fields = |e: &serde_json::Value| {
        let f = if e["fields"].is_object() {
            &e["fields"]
        } else {
            e
        };
        let what = ["method", "path", "status", "layer", "route"].map(|k| f[k].clone());
        (what, f["bytes"].as_u64().unwrap())
    };
    let events: Vec<_> = events[1..].iter().map(fields).collect();
    for (i, pair) in events.chunks(2).enumerate() {
        assert_eq!(pair[0].0, pair[1].0, "{pair:?}");
        // The bytes each access event counts are the bytes the client got.
        assert_eq!([pair[0].1, pair[1].1], sizes[2 * i..2 * i + 2], "{pair:?}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order_across_the_hand_over() {
    let server = Onebox::start();
    let css = http_get(&server, "foobar.com", "/static/site.css").body;
    let padding = |n: usize| format!("X-Pad: {}\r\n", "p".repeat(n));
    // The loop answers the first three; `/healthz` is hyper's, and so is everything
    // after it on this connection, including a head longer than the loop reads
    // (12 KiB) but within hyper's limit.
    let answers = keep_alive(
        server.http,
        &[
            request("GET", "/static/site.css", ""),
            request("GET", "/", ""),
            request("HEAD", "/favicon.svg", ""),
            request("GET", "/healthz", ""),
            request("GET", "/static/site.css", ""),
            request("GET", "/static/site.css", &padding(12 * 1024)),
        ],
    );
    let types: Vec<_> = answers
        .iter()
        .map(|a| (a.status, a.header("content-type").unwrap_or("").to_string()))
        .collect();
    assert_eq!(
        types.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [200; 6],
        "{types:?}"
    );
    assert!(types[0].1.starts_with("text/css"), "{types:?}");
    assert!(types[1].1.starts_with("text/html"), "{types:?}");
    assert!(types[2].1.starts_with("image/svg+xml"), "{types:?}");
    for i in [0, 4, 5] {
        assert_eq!(answers[i].body, css, "answer {i}");
    }
    assert!(answers[2].body.is_empty());
    assert!(answers[1].text().contains("How this page reached you"));

    // A head too long for hyper too still gets its 431, on a fresh connection
    // whose first request the loop cannot finish reading.
    let answer = keep_alive(
        server.http,
        &[request("GET", "/static/site.css", &padding(40 * 1024))],
    );
    assert_eq!(answer[0].status, 431);
    // The server is fine afterwards.
    assert_eq!(health(server.http), Some(200));
}

#[test]
fn h2c_with_prior_knowledge_still_reaches_hyper() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let url = server.url("/static/site.css");
    for _ in 0..2 {
        let (status, out, _) = curl_write_out(
            "%{http_version} %{http_code}",
            &["--http2-prior-knowledge", "-H", "Host: foobar.com", &url],
        );
        assert!(status.success());
        assert_eq!(out, "2 200");
    }
}

#[test]
fn a_burst_of_heads_too_long_for_the_loop_is_answered_in_bounded_memory() {
    // 64 connections at once, each pipelining heads past the loop's 8 KiB (hyper
    // takes them over, with what the loop read) and ending with one past hyper's
    // 32 KiB (431): the hand-over under load keeps memory bounded.
    let server = Onebox::start();
    let css = http_get(&server, "foobar.com", "/static/site.css").body;
    let mut peak = PeakRss::watch(server.pid, std::time::Duration::from_millis(20));
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (addr, css) = (server.http, css.clone());
            std::thread::spawn(move || {
                let pad = |n: usize| format!("X-Pad: {}\r\n", "p".repeat(n));
                let mut requests: Vec<String> = (0..10)
                    .map(|_| request("GET", "/static/site.css", &pad(12 * 1024)))
                    .collect();
                requests.push(request("GET", "/static/site.css", &pad(40 * 1024)));
                let answers = keep_alive(addr, &requests);
                for answer in &answers[..10] {
                    assert_eq!(answer.status, 200);
                    assert_eq!(answer.body, css);
                }
                assert_eq!(answers[10].status, 431);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let peak_kib = peak.stop();
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    assert_eq!(health(server.http), Some(200));
}
