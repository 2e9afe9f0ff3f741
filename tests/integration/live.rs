//! Proves the live view against the real binary: a client holding
//! `/_onebox/live/events` open (server-sent events over a plain TCP socket) sees a
//! `dig` query and an HTTP request as they happen, a later viewer gets them from
//! the history first, and the page and stream exist only on the site's names.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::harness::*;

/// One open `GET /_onebox/live/events`, read as raw HTTP/1.1.
pub(crate) struct EventStream {
    stream: TcpStream,
    /// Bytes read but not yet decoded: the header block, then chunks.
    raw: Vec<u8>,
    /// De-chunked body text not yet split into lines.
    text: String,
    head: String,
}

impl EventStream {
    pub(crate) fn open(addr: SocketAddr, host: &str) -> Self {
        let mut stream = TcpStream::connect(addr).expect("connect to the web server");
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        write!(
            stream,
            "GET /_onebox/live/events HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
        )
        .unwrap();
        let mut this = Self {
            stream,
            raw: Vec::new(),
            text: String::new(),
            head: String::new(),
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(end) = this.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                this.head = String::from_utf8_lossy(&this.raw[..end]).into_owned();
                this.raw.drain(..end + 4);
                return this;
            }
            assert!(
                Instant::now() < deadline,
                "no response header within {DEADLINE:?}: {:?}",
                String::from_utf8_lossy(&this.raw)
            );
            this.read_some();
        }
    }

    /// Reads what has arrived (waiting at most the socket's short read timeout).
    fn read_some(&mut self) {
        let mut buf = [0u8; 8192];
        match self.stream.read(&mut buf) {
            Ok(0) => panic!("the server closed the event stream"),
            Ok(n) => self.raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the event stream: {e}"),
        }
    }

    /// Reads body bytes and decodes the chunks that are complete.
    fn fill(&mut self) {
        self.read_some();
        // Chunked transfer coding: "SIZE\r\nDATA\r\n", repeated.
        while let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                break;
            }
            self.text
                .push_str(&String::from_utf8_lossy(&self.raw[start..start + size]));
            self.raw.drain(..start + size + 2);
        }
    }

    /// Reads events until one satisfies `wanted`, and returns it; panics with
    /// everything seen at the deadline.
    pub(crate) fn wait_for(
        &mut self,
        seen: &mut Vec<serde_json::Value>,
        wanted: impl Fn(&serde_json::Value) -> bool,
        what: &str,
    ) -> serde_json::Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            while let Some(end) = self.text.find('\n') {
                let line: String = self.text.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data: ") {
                    let event: serde_json::Value = serde_json::from_str(data)
                        .unwrap_or_else(|e| panic!("event is not JSON ({e}): {data}"));
                    seen.push(event.clone());
                    if wanted(&event) {
                        return event;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {what} event within {DEADLINE:?}; saw:\n{seen:#?}"
            );
            self.fill();
        }
    }
}

fn curl_status(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let url = format!("http://{host}:{}{path}", addr.port());
    let resolve = format!("{host}:{}:{}", addr.port(), addr.ip());
    let (status, out, err) = curl_write_out(
        "%{http_code} %{content_type}",
        &["--resolve", &resolve, &url],
    );
    assert!(status.success(), "curl {url}: {err}");
    let (code, content_type) = out.split_once(' ').unwrap_or((&out, ""));
    (code.parse().unwrap(), content_type.to_string())
}

#[test]
fn a_dig_query_and_an_http_request_appear_in_the_event_stream() {
    let Some(server) = dig_onebox() else { return };
    let mut events = EventStream::open(server.http_addr(), "www.foobar.com");
    let head = events.head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_contains_all(
        &head,
        &["content-type: text/event-stream", "cache-control: no-store"],
    );

    // Names no earlier request used, so only these actions can produce the events.
    let probe = format!("live-probe-{}.foobar.com", std::process::id());
    let reply = server.dig(&[&probe, "A"]);
    assert_eq!(reply.status, "NXDOMAIN", "{}", reply.stdout);
    let reply = server.dig(&["www.foobar.com", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.stdout);
    let path = format!("/live-probe-{}", std::process::id());
    assert_eq!(
        curl_status(server.http_addr(), "www.foobar.com", &path).0,
        404
    );

    let mut seen = Vec::new();
    let nx = events.wait_for(
        &mut seen,
        |e| e["kind"] == "dns" && e["name"] == format!("{probe}."),
        "DNS (probe)",
    );
    assert_eq!(nx["rcode"], "NXDOMAIN", "{nx}");
    assert_eq!(nx["qtype"], "A", "{nx}");
    let www = events.wait_for(
        &mut seen,
        |e| e["kind"] == "dns" && e["name"] == "www.foobar.com.",
        "DNS (www)",
    );
    assert_eq!(www["qtype"], "A", "{www}");
    assert_eq!(www["rcode"], "NOERROR", "{www}");
    assert_eq!(www["transport"], "udp", "{www}");
    assert_eq!(www["answers"], 2, "CNAME and A: {www}");
    let http = events.wait_for(
        &mut seen,
        |e| e["kind"] == "http" && e["path"] == path.as_str(),
        "HTTP",
    );
    assert_eq!(http["host"], "www.foobar.com", "{http}");
    assert_eq!(http["method"], "GET", "{http}");
    assert_eq!(http["status"], 404, "{http}");
    assert!(
        http["layer"].as_str().is_some_and(|l| !l.is_empty()),
        "{http}"
    );

    // A viewer who arrives later is shown the recent past first.
    let mut late = EventStream::open(server.http_addr(), "foobar.com");
    let mut late_seen = Vec::new();
    late.wait_for(
        &mut late_seen,
        |e| e["kind"] == "dns" && e["name"] == format!("{probe}."),
        "DNS from history",
    );
    late.wait_for(
        &mut late_seen,
        |e| e["kind"] == "http" && e["path"] == path.as_str(),
        "HTTP from history",
    );
}

#[test]
fn the_live_page_is_served_on_site_names_only() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let http = server.http_addr();
    for host in ["www.foobar.com", "foobar.com"] {
        let (code, content_type) = curl_status(http, host, "/_onebox/live");
        assert_eq!(code, 200, "{host}");
        assert!(
            content_type.starts_with("text/html"),
            "{host}: {content_type}"
        );
    }
    for host in ["example.org", "127.0.0.1"] {
        assert_eq!(curl_status(http, host, "/_onebox/live").0, 421, "{host}");
        assert_eq!(
            curl_status(http, host, "/_onebox/live/events").0,
            421,
            "{host}"
        );
    }
    // The page is the client of the stream.
    let url = format!("http://www.foobar.com:{}/_onebox/live", http.port());
    let resolve = format!("www.foobar.com:{}:127.0.0.1", http.port());
    let (_, page, _) = run_tool("curl", &["-sS", "--resolve", &resolve, &url], "curl");
    assert!(
        page.contains("EventSource('/_onebox/live/events')"),
        "the page does not read the stream:\n{page}"
    );
}

#[test]
fn stopping_the_server_ends_open_event_streams() {
    let mut server = Onebox::start();
    let mut events = EventStream::open(server.http_addr(), "www.foobar.com");
    assert!(events.head.starts_with("HTTP/1.1 200"), "{}", events.head);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    // A graceful stop ends the stream: the viewer sees the connection close.
    let mut buf = [0u8; 1024];
    events
        .stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let closed = loop {
        match events.stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(
        closed,
        "the event stream is still open after the server exited"
    );
    let log = server.stderr();
    assert!(
        !log.contains("connections still open"),
        "an open live view held up the graceful stop:\n{log}"
    );
}
