//! Shared helpers for the site tests: start the real binary, talk HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `onebox serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub dns: SocketAddr,
    pub pid: u32,
    pub ready: serde_json::Value,
    stderr: Option<std::thread::JoinHandle<String>>,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_onebox")
}

/// A fresh, empty folder under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "onebox-site-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Server {
    /// `onebox serve` on loopback port 0, in memory.
    pub fn start() -> Self {
        Self::start_with(&["--ephemeral"], &[])
    }

    /// `onebox serve` with its data in `dir`.
    pub fn start_on(dir: &Path) -> Self {
        Self::start_with(&["--data", dir.to_str().unwrap()], &[])
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::try_start(args, env).unwrap_or_else(|err| panic!("server did not start: {err}"))
    }

    /// Starts the server; `Err(stderr)` if it exits before printing the ready line.
    pub fn try_start(args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn onebox");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            text
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        if line.trim().is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            return Err(stderr.join().unwrap_or_default());
        }
        let ready: serde_json::Value =
            serde_json::from_str(line.trim()).expect("ready line is JSON");
        assert_eq!(ready["ready"], true, "{line}");
        Ok(Self {
            http: ready["http"].as_str().unwrap().parse().unwrap(),
            dns: ready["dns"].as_str().unwrap().parse().unwrap(),
            pid: child.id(),
            child,
            ready,
            stderr: Some(stderr),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// SIGTERM, wait for exit (bounded), and return (exit success, stderr).
    pub fn stop(mut self) -> (bool, String) {
        unsafe_kill(self.pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().unwrap().join().unwrap_or_default();
        (status.is_some_and(|s| s.success()), stderr)
    }

    /// SIGKILL: the crash case.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Everything the server wrote to stderr so far (stops the server).
    pub fn stderr_after_stop(self) -> String {
        self.stop().1
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status();
}

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

/// A JSON request to the site as `www.foobar.com`.
pub fn api(
    server: &Server,
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

/// Registers `name` and logs in; returns the bearer token.
pub fn user_token(server: &Server, name: &str) -> String {
    let password = format!("{name}-password");
    let body = serde_json::json!({ "username": name, "password": password }).to_string();
    let r = api(server, "POST", "/api/v1/users", &[], &body);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = api(server, "POST", "/api/v1/sessions", &[], &body);
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

/// Runs curl against the server; returns (status, headers, body). curl brings the
/// protocol features a browser has: h2c, compression, ranges.
pub fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let file = std::env::temp_dir().join(format!(
        "onebox-site-curl-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-D", "-", "-o"])
        .arg(&file)
        .args(args)
        .output()
        .expect("curl is installed");
    let body = std::fs::read(&file).unwrap_or_default();
    let _ = std::fs::remove_file(&file);
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

/// The value of header `name` in a curl header block.
pub fn header_of(block: &str, name: &str) -> Option<String> {
    block.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}
