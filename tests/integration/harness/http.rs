//! The HTTP side of the harness: one raw HTTP/1.1 client of our own (every byte on
//! the wire is the test's), the JSON API helpers of the site tests, curl for the
//! protocol features a browser has, and a raw exchange that also reports whether
//! the server closed the connection.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::{DEADLINE, Onebox, TempDir, assert_tool, run_tool};

/// The site tests' name for the fixture: the same type.
pub type Server = Onebox;

/// An HTTP/1.1 response from [`http`].
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// `name=value` of a `Set-Cookie` for `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers_named("set-cookie")
            .into_iter()
            .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
            .find(|c| c.starts_with(&format!("{name}=")))
    }
}

/// One HTTP/1.1 request over a fresh TCP connection (`Connection: close`), read to
/// the end. A tiny client of our own, so every byte on the wire is the test's.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw).ok_or_else(|| {
        std::io::Error::other(format!("bad response: {:?}", String::from_utf8_lossy(&raw)))
    })
}

/// Sends `requests` (whole request heads, as the test writes them) on one
/// keep-alive connection in a single write, pipelined, and reads one answer per
/// request: its head, then a `Content-Length` body (none for a `HEAD`). Unlike
/// [`http`], nothing is added: no `Connection: close` unless a request has it.
pub fn keep_alive(addr: SocketAddr, requests: &[String]) -> Vec<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    keep_alive_on(&mut stream, requests)
}

/// [`keep_alive`] on a connection the test already holds open.
pub fn keep_alive_on(stream: &mut TcpStream, requests: &[String]) -> Vec<Response> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(requests.concat().as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut answers = Vec::new();
    for request in requests {
        let head_end = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            read_more(stream, &mut raw, request);
        };
        let head = parse_response(&raw[..head_end]).expect("an HTTP/1.1 head");
        let length = match head.header("content-length") {
            Some(_) if request.starts_with("HEAD ") => 0,
            Some(n) => n.parse().unwrap(),
            None => 0,
        };
        while raw.len() < head_end + length {
            read_more(stream, &mut raw, request);
        }
        let rest = raw.split_off(head_end + length);
        answers.push(Response {
            body: raw[head_end..].to_vec(),
            ..head
        });
        raw = rest;
    }
    answers
}

fn read_more(stream: &mut TcpStream, raw: &mut Vec<u8>, request: &str) {
    let mut chunk = [0; 16 * 1024];
    let n = stream.read(&mut chunk).unwrap();
    assert!(
        n > 0,
        "the connection closed before the answer to {request:?}"
    );
    raw.extend_from_slice(&chunk[..n]);
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// The access-log events (`onebox::web::access`) in a `--log-format json` log.
pub fn access_events(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["target"] == "onebox::web::access")
        .collect()
}

/// `GET path` with `Host: host` on the server's plain HTTP listener.
pub fn http_get(server: &Onebox, host: &str, path: &str) -> Response {
    http_get_with(server, host, path, &[])
}

/// [`http_get`] with more request headers.
pub fn http_get_with(
    server: &Onebox,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    http(server.http, "GET", path, host, headers, b"")
        .unwrap_or_else(|e| panic!("GET {path} (Host: {host}): {e}"))
}

/// A JSON request to the site as `www.foobar.com`.
pub fn api(
    server: &Onebox,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    http(
        server.http,
        method,
        path,
        "www.foobar.com",
        &all,
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

impl Onebox {
    /// `METHOD /_onebox/api/records` (the fixture API) with the JSON `body` and
    /// the admin token.
    pub fn records_api(&self, method: &str, body: &str) -> Response {
        let auth = format!("Bearer {}", self.admin_token());
        api(
            self,
            method,
            "/_onebox/api/records",
            &[("Authorization", &auth)],
            body,
        )
    }
}

/// `POST /api/v1/posts` with the JSON `body`, signed in with the bearer `token`.
pub fn post_as(server: &Onebox, token: &str, body: &str) -> Response {
    let bearer = format!("Bearer {token}");
    api(
        server,
        "POST",
        "/api/v1/posts",
        &[("Authorization", &bearer)],
        body,
    )
}

/// `POST /api/v1/posts` to `addr` as `foobar.com` with the JSON `body`, signed
/// in with the bearer `token`. The error comes back too, for writers that run
/// until the server goes away.
pub fn try_post_as(addr: SocketAddr, token: &str, body: &str) -> std::io::Result<Response> {
    let auth = format!("Bearer {token}");
    http(
        addr,
        "POST",
        "/api/v1/posts",
        "foobar.com",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// Creates the account `creds` (a JSON body with username and password) through
/// the API, asserting it was created.
pub fn register(server: &Onebox, creds: &str) {
    let r = api(server, "POST", "/api/v1/users", &[], creds);
    assert_eq!(r.status, 201, "registering {creds}: {}", r.text());
}

/// Logs in as `creds` through the API, asserting a session was made; the reply
/// carries the token (JSON) and the session cookie.
pub fn login(server: &Onebox, creds: &str) -> Response {
    let r = api(server, "POST", "/api/v1/sessions", &[], creds);
    assert_eq!(r.status, 201, "logging in as {creds}: {}", r.text());
    r
}

/// The CSRF token in a page's form (its hidden `csrf` field).
pub fn csrf_field(page: &str) -> String {
    page.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form carries a CSRF token")
        .to_string()
}

/// [`register`]s `creds`, then [`login`]s with them: the login's reply.
pub fn sign_up(server: &Onebox, creds: &str) -> Response {
    register(server, creds);
    login(server, creds)
}

/// Registers `name` and logs in; returns the bearer token.
pub fn user_token(server: &Onebox, name: &str) -> String {
    let password = format!("{name}-password");
    let body = serde_json::json!({ "username": name, "password": password }).to_string();
    sign_up(server, &body).json()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs curl against the server; returns (status, headers, body). curl brings the
/// protocol features a browser has: h2c, compression, ranges.
pub fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    assert_tool("curl", "curl");
    let dir = TempDir::new("curl");
    let file = dir.join("body");
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "-o"])
        .arg(&file)
        .args(args)
        .output()
        .expect("run curl");
    let body = std::fs::read(&file).unwrap_or_default();
    let headers = String::from_utf8_lossy(&out.stdout).into_owned();
    // The last response block (after any 100 Continue).
    let last = headers
        .split("\r\n\r\n")
        .filter(|b| b.starts_with("HTTP/"))
        .last()
        .unwrap_or_else(|| panic!("no response from curl {args:?}: {headers}"))
        .to_string();
    let status = last
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, last, body)
}

/// The value of the first header `name` in a curl header block (`-D -`).
pub fn header_of<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// GET /healthz on a fresh connection; the status, or None if nothing came back.
pub fn health(addr: SocketAddr) -> Option<u16> {
    http(addr, "GET", "/healthz", "foobar.com", &[], b"")
        .ok()
        .map(|r| r.status)
}

/// Every post on the server, by id: (author, body), paging through the API.
pub fn all_posts(server: &Onebox) -> BTreeMap<u64, (String, String)> {
    let mut out = BTreeMap::new();
    let mut path = "/api/v1/posts?limit=1000".to_string();
    loop {
        let r = api(server, "GET", &path, &[], "");
        assert_eq!(r.status, 200, "{}", r.text());
        let posts = r.json()["posts"].as_array().unwrap().clone();
        let Some(last) = posts.last() else { break };
        let last = last["id"].as_u64().unwrap();
        for p in posts {
            let id = p["id"].as_u64().unwrap();
            let value = (
                p["author"].as_str().unwrap().to_string(),
                p["body"].as_str().unwrap().to_string(),
            );
            assert!(out.insert(id, value).is_none(), "id {id} listed twice");
        }
        path = format!("/api/v1/posts?limit=1000&before={last}");
    }
    out
}

/// Asserts that the server lists every acknowledged post (id → body) with its
/// body; `when` names the moment in the failure message.
pub fn assert_posts_kept(server: &Onebox, acknowledged: &BTreeMap<u64, String>, when: &str) {
    let found = all_posts(server);
    for (id, body) in acknowledged {
        assert_eq!(
            found.get(id).map(|(_, b)| b),
            Some(body),
            "post {id} {when}"
        );
    }
}

/// Opens the file with redb itself (after a crash this runs redb's repair) and
/// runs its full integrity check: every checksum of every page.
pub fn redb_integrity(file: &Path) -> bool {
    let mut db = redb::Database::open(file)
        .unwrap_or_else(|e| panic!("redb cannot open {} after kill -9: {e}", file.display()));
    db.check_integrity()
        .unwrap_or_else(|e| panic!("check_integrity on {} failed: {e}", file.display()))
}

/// What a server did with some raw bytes: the status line it sent (if any), the
/// whole answer, and whether it closed the connection afterwards.
#[derive(Debug, Clone)]
pub struct RawAnswer {
    pub status: Option<u16>,
    pub text: String,
    /// The server closed its side (EOF or reset) before `linger` ran out.
    pub closed: bool,
}

/// Sends `bytes` on a fresh TCP connection and reads until the server closes or
/// `linger` passes without it closing (then `closed` is false: it kept the
/// connection open for another request).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], linger: Duration) -> RawAnswer {
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.write_all(bytes).expect("send the raw request");
    read_answer(&mut stream, linger)
}

/// Reads what the server sends on `stream` until it closes (`closed`) or `linger`
/// passes without it closing.
pub fn read_answer(stream: &mut TcpStream, linger: Duration) -> RawAnswer {
    let deadline = Instant::now() + linger;
    let mut raw = Vec::new();
    let mut closed = false;
    let mut buf = [0u8; 16384];
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok());
    RawAnswer {
        status,
        text,
        closed,
    }
}

/// curl with the body thrown away and only `-w FORMAT` printed (e.g.
/// `"%{http_code}"`): (exit status, what `-w` printed, stderr).
pub fn curl_write_out(format: &str, args: &[&str]) -> (ExitStatus, String, String) {
    let mut all = vec!["-sS", "-o", "/dev/null", "-w", format];
    all.extend_from_slice(args);
    run_tool("curl", &all, "curl")
}

/// The visit counter on the home page `page` ("has been visited <strong>N").
pub fn visits_on(page: &str) -> u64 {
    let (_, rest) = page
        .split_once("has been visited <strong>")
        .unwrap_or_else(|| panic!("no visit counter: {page}"));
    rest.split('<').next().unwrap().parse().unwrap()
}

/// `text` with every run of digits as `#`: visit numbers, milliseconds and ports
/// change per view, so pages compared across views are compared masked.
pub fn masked(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}
