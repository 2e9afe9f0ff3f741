//! Fixtures for the visit, resolver and doctor tests: the real `onebox serve` on
//! port 0 (killed on drop), a runner for one-shot `onebox` commands, temp folders,
//! test zones, a UDP socket that never answers, and a tiny HTTP/1.1 server for the
//! responses onebox's own site does not give (a 503, an echo of the request).
//!
//! Each test file includes this with `mod visit_common;`; not every file uses every
//! helper, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

pub const ONEBOX: &str = env!("CARGO_BIN_EXE_onebox");

/// How long `serve` may take to print its ready line (milliseconds normally; the
/// margin is for a machine busy compiling). A deadline, not a speed assertion.
const READY_WAIT: Duration = Duration::from_secs(20);

/// A running `onebox serve`, stopped when dropped.
#[derive(Debug)]
pub struct Onebox {
    child: Child,
    pub dns: SocketAddr,
    pub http: SocketAddr,
    pub ready: serde_json::Value,
}

impl Onebox {
    /// Serves the built-in zone (the repository's `zones/` folder).
    pub fn start() -> Self {
        Self::start_with_zones(&repo_path("zones"))
    }

    pub fn start_with_zones(zones: &Path) -> Self {
        let mut child = Command::new(ONEBOX)
            .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--ephemeral")
            .arg("--zones")
            .arg(zones)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn onebox serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(READY_WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("onebox serve printed no ready line within {READY_WAIT:?}");
            }
        };
        let ready: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ready line is not JSON ({e}): {line:?}");
            }
        };
        let addr = |key: &str| -> SocketAddr {
            ready[key]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("ready line has no {key} address: {line}"))
        };
        let (dns, http) = (addr("dns"), addr("http"));
        Self {
            child,
            dns,
            http,
            ready,
        }
    }
}

impl Drop for Onebox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a one-shot `onebox` command did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout parsed as JSON, or a panic that shows both streams.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `onebox ARGS...` to completion. Every command under test bounds its own
/// waits (DNS 2 s, connect 5 s, response 10 s), so this cannot hang for long.
pub fn onebox<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(ONEBOX)
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .expect("run onebox")
        .into()
}

pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A folder under the system temp dir, unique per call, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "onebox-visit-test-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create parent dir");
        }
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    /// Every file and folder below, as sorted relative paths (folders end in `/`).
    pub fn tree(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read dir") {
                let path = entry.expect("dir entry").path();
                let rel = path.strip_prefix(base).unwrap().display().to_string();
                if path.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(base, &path, out);
                } else {
                    out.push(rel);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &self.0, &mut out);
        out.sort();
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A zones folder with foobar.com whose apex A is `apex`, plus `extra` records.
pub fn zones_with_apex(apex: &str, extra: &str) -> TempDir {
    let dir = TempDir::new("zones");
    dir.write(
        "foobar.com.zone",
        &format!(
            "$ORIGIN foobar.com.\n$TTL 3600\n\
             @    3600 IN SOA   ns1.foobar.com. hostmaster.foobar.com. 7 7200 3600 1209600 3600\n\
             @    3600 IN NS    ns1.foobar.com.\n\
             ns1  3600 IN A     127.0.0.1\n\
             @    300  IN A     {apex}\n\
             www  3600 IN CNAME foobar.com.\n{extra}"
        ),
    );
    dir
}

/// A TCP port on 127.0.0.1 where nothing listens (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

/// A UDP socket that receives DNS questions and never answers. Keep it alive for
/// the test: while it is bound, the questions are delivered and ignored.
pub fn silent_dns() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").expect("bind a silent UDP socket")
}

/// A minimal HTTP/1.1 server on 127.0.0.1: answers every request with `response`
/// and keeps each raw request (head and body) for the test to inspect.
#[derive(Debug)]
pub struct HttpFixture {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpFixture {
    pub fn start(response: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fixture");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (requests.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(mut stream) = stream else { continue };
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                    if let Some(request) = read_request(&mut stream) {
                        requests.lock().unwrap().push(request);
                        let _ = stream.write_all(response.as_bytes());
                    }
                }
            })
        };
        Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpFixture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request: the head up to the blank line, then Content-Length bytes.
fn read_request(stream: &mut TcpStream) -> Option<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Some(String::from_utf8_lossy(&data).into_owned());
            }
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// The steps of a `visit --json` document, by hop name.
pub fn step<'a>(visit: &'a serde_json::Value, hop: &str) -> &'a serde_json::Value {
    visit["steps"]
        .as_array()
        .expect("steps is an array")
        .iter()
        .find(|s| s["hop"] == hop)
        .unwrap_or_else(|| panic!("no {hop} step in {visit:#}"))
}

pub fn hops(visit: &serde_json::Value) -> Vec<String> {
    visit["steps"]
        .as_array()
        .expect("steps is an array")
        .iter()
        .map(|s| s["hop"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Runs `openssl` with `args` in `dir`, panicking with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA made with the openssl CLI: `ca.pem` in its folder is what a client
/// passes as `--cacert`.
#[derive(Debug)]
pub struct TestCa {
    pub dir: TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = TempDir::new("ca");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=onebox test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self { dir }
    }

    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues `leaf.pem` / `leaf.key` for `names` (DNS names) and returns their paths.
    pub fn issue(&self, names: &[&str]) -> (PathBuf, PathBuf) {
        let dir = self.dir.path();
        let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
        self.dir.write(
            "leaf.ext",
            &format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        );
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                &format!("/CN={}", names[0]),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "1",
                "-extfile",
                "leaf.ext",
            ],
        );
        (dir.join("leaf.pem"), dir.join("leaf.key"))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// `openssl s_server -www` on 127.0.0.1: a real TLS server that answers any GET
/// with 200 and a status page. ALPN http/1.1. Killed on drop.
#[derive(Debug)]
pub struct TlsServer {
    child: Child,
    pub addr: SocketAddr,
}

impl TlsServer {
    pub fn start(cert: &Path, key: &Path) -> Self {
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-alpn", "http/1.1", "-accept"])
            .arg(addr.to_string())
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn openssl s_server");
        let server = Self { child, addr };
        // Bounded wait until it accepts; each probe is one aborted handshake for it.
        let deadline = std::time::Instant::now() + READY_WAIT;
        while TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "openssl s_server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS server that speaks only HTTP/2 (ALPN h2), built from hyper and
/// tokio-rustls: openssl s_server has no HTTP/2. Records `METHOD authority path`
/// of each request and answers 200 with a Server-Timing header. Stopped on drop.
pub struct H2Server {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for H2Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "H2Server({})", self.addr)
    }
}

impl H2Server {
    pub fn start(cert: &Path, key: &Path) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio_rustls::rustls;

        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let seen = requests.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let stream = tokio::select! {
                        _ = &mut stopped => return,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => continue,
                        },
                    };
                    let (acceptor, seen) = (acceptor.clone(), seen.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(stream).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(
                            move |req: hyper::Request<hyper::body::Incoming>| {
                                let seen = seen.clone();
                                async move {
                                    seen.lock().unwrap().push(format!(
                                        "{} {} {}",
                                        req.method(),
                                        req.uri().authority().map(|a| a.as_str()).unwrap_or(""),
                                        req.uri().path()
                                    ));
                                    hyper::Response::builder()
                                        .header("server-timing", "app;dur=0.5")
                                        .body(http_body_util::Full::new(
                                            hyper::body::Bytes::from_static(b"h2 ok"),
                                        ))
                                }
                            },
                        );
                        let _ = hyper::server::conn::http2::Builder::new(
                            hyper_util::rt::TokioExecutor::new(),
                        )
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                    });
                }
            });
        });
        Self {
            addr,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for H2Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
