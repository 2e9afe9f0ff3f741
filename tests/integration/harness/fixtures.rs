//! The other side of the tests: servers and certificates onebox talks to or is
//! compared with. A UDP socket that never answers, a tiny HTTP/1.1 server for the
//! responses onebox's own site does not give (a 503, an echo of the request), a
//! test CA and TLS servers made with openssl and hyper, nginx as an HTTP oracle,
//! a tmpfs, the Python venv, and the results of one-shot `onebox` runs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{
    DEADLINE, ONEBOX, Onebox, READY_WAIT, TempDir, assert_tool, kill_and_reap, repo_path, run_for,
    terminate,
};

/// What a one-shot `onebox` command did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout of a run that must have exited with `code` and, its stdout being a
    /// pipe, written no colour.
    pub fn plain_stdout(&self, code: i32) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stdout.contains('\x1b'),
            "colour in a pipe:\n{}",
            self.stdout
        );
        &self.stdout
    }

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

/// Runs `onebox ARGS...` to completion, colours left to its own choice
/// (`NO_COLOR` removed). Every command under test bounds its own waits (DNS 2 s,
/// connect 5 s, response 10 s); the minute here only stops a hang.
pub fn onebox<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut command = super::piped(ONEBOX);
    command.args(args).env_remove("NO_COLOR");
    let (status, stdout, stderr) = run_for(command, Duration::from_secs(60));
    Run {
        code: status.code(),
        stdout,
        stderr,
    }
}

/// [`onebox`], which must exit 0; a failure shows both streams.
pub fn onebox_ok<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let run = onebox(args);
    assert_eq!(
        run.code,
        Some(0),
        "--- stdout ---\n{}\n--- stderr ---\n{}",
        run.stdout,
        run.stderr
    );
    run
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
    super::find_in(&visit["steps"], "hop", hop)
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
fn openssl_in(dir: &Path, args: &[&str]) {
    assert_tool("openssl", "openssl");
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

/// `openssl req` with a new P-256 key written to `NAME.key` in `dir`, plus `args`
/// (a self-signed certificate with `-x509`, else a request).
fn new_key_request(dir: &Path, name: &str, args: &[&str]) {
    let key = format!("{name}.key");
    let mut all = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &key,
    ];
    all.extend_from_slice(args);
    openssl_in(dir, &all);
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
        new_key_request(
            dir.path(),
            "ca",
            &[
                "-x509",
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
        new_key_request(
            dir,
            "leaf",
            &["-out", "leaf.csr", "-subj", &format!("/CN={}", names[0])],
        );
        openssl_in(
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
        let deadline = Instant::now() + READY_WAIT;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "openssl s_server did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
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

/// A loopback port free for both UDP and TCP right now (bound and released),
/// for an engine the test starts with a port number of its own (NSD, Knot).
///
/// It is taken from below the kernel's ephemeral range (32768–60999 by
/// default), which every `bind(0)` and outgoing connection draws from: a port
/// from there was once taken by another test's socket between this check and
/// NSD's bind. A counter shared by the tests of this binary hands out each port
/// once; it starts at a point set by the process id, so that two test binaries
/// running at once start apart.
pub fn free_port() -> u16 {
    /// The ports handed out: 20000 to 31999.
    const FIRST: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: LazyLock<AtomicU16> =
        LazyLock::new(|| AtomicU16::new((std::process::id() % u32::from(SPAN)) as u16));
    for _ in 0..50 {
        let port = FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % SPAN;
        let free = UdpSocket::bind(("127.0.0.1", port))
            .is_ok_and(|_udp| TcpListener::bind(("127.0.0.1", port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no loopback port free for both UDP and TCP after 50 tries");
}

/// nginx run by hand as a differential oracle for HTTP/1.1 parsing: one worker,
/// loopback only, everything in a temp dir; killed on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

impl Nginx {
    /// Serves `200 ok` for `foobar.com` (and any other name) on a free port.
    pub fn start() -> Self {
        assert_tool("nginx", "nginx");
        let dir = TempDir::new("nginx");
        let port = free_port();
        let prefix = dir.path().display().to_string();
        let conf = format!(
            "worker_processes 1;\n\
             pid {prefix}/nginx.pid;\n\
             error_log {prefix}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {prefix}/body;\n\
               proxy_temp_path {prefix}/proxy;\n\
               fastcgi_temp_path {prefix}/fastcgi;\n\
               uwsgi_temp_path {prefix}/uwsgi;\n\
               scgi_temp_path {prefix}/scgi;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 server_name foobar.com;\n\
                 location / {{ return 200 \"ok\\n\"; }}\n\
               }}\n\
             }}\n"
        );
        let conf_path = dir.write("nginx.conf", &conf);
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + DEADLINE;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {addr}: {}",
                std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, addr, dir }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM lets the master stop its worker; then make sure the master is gone.
        terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// The Python of the venv scripts/test.sh makes under target/venv (h2, hyperframe).
pub fn venv_python() -> PathBuf {
    let python = venv_path();
    assert!(
        python.is_file(),
        "{} is missing: run scripts/test.sh (it creates the venv with h2 and hyperframe)",
        python.display()
    );
    python
}

fn venv_path() -> PathBuf {
    repo_path("target/venv/bin/python3")
}

/// Whether that venv exists; see [`need`](super::need) for what happens if not.
pub fn require_venv() -> bool {
    super::need(
        venv_path().is_file(),
        "target/venv is missing",
        "run scripts/test.sh: it makes the venv with h2 and hyperframe",
    )
}

/// A small tmpfs mounted for one test (needs root, as CI has); unmounted on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Self {
        let dir = TempDir::new("tmpfs");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount -t tmpfs failed on {} (the disk-full test needs root)",
            dir.path().display()
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Runs `scripts/SCRIPT ONEBOX ARTIFACTS` (the browser end-to-end scripts), which
/// must succeed within ten minutes; returns its stdout and the artifacts folder
/// (`test-artifacts/NAME`, kept for a human to look at).
pub fn run_e2e_script(script: &str, name: &str) -> (String, PathBuf) {
    let artifacts = repo_path("test-artifacts").join(name);
    let args = [ONEBOX, artifacts.to_str().expect("UTF-8 path")];
    let (stdout, _) = run_script(
        &format!("scripts/{script}"),
        &args,
        &[],
        Duration::from_secs(600),
    );
    (stdout, artifacts)
}

/// An HTTPS server (openssl s_server) with a certificate for www.foobar.com from a
/// fresh test CA, and onebox, whose zone points www at it.
pub fn tls_site() -> (TestCa, TlsServer, Onebox) {
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["www.foobar.com"]);
    let tls = TlsServer::start(&cert, &key);
    (ca, tls, Onebox::start())
}

/// The start of a Knot DNS configuration for tests that compare with or transfer
/// to Knot, listening on `127.0.0.1@port`: the same head `onebox cluster` writes
/// (one worker of each kind, every file in `dir`, the log on stderr). Callers
/// add their `remote:`, `template:` and `zone:` sections.
pub fn knot_conf_head(dir: &Path, port: u16) -> String {
    onebox::cluster::config::knot_conf_head(dir, ([127, 0, 0, 1], port).into())
}

/// The start of an NSD configuration for tests that compare with or transfer to
/// NSD, listening on `127.0.0.1@port`: the same head `onebox cluster` writes (one
/// server process, run as the current user without chroot, every file in `dir`).
/// It ends inside `server:`: callers add their own server options (such as
/// `verbosity:`), then their `remote-control:` and `zone:` sections.
pub fn nsd_conf_head(dir: &Path, port: u16) -> String {
    onebox::cluster::config::nsd_conf_head(dir, ([127, 0, 0, 1], port).into())
}

/// Runs `bash SCRIPT ARGS...` (a path under the repository, e.g.
/// `scripts/demo.sh`) with `ONEBOX` set to the binary under test, `NO_COLOR=1`
/// and `env`; it must succeed within `limit`. Returns (stdout, stderr).
pub fn run_script(
    script: &str,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> (String, String) {
    let mut command = Command::new("bash");
    command
        .arg(repo_path(script))
        .args(args)
        .env("ONEBOX", ONEBOX)
        .env("NO_COLOR", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, stdout, stderr) = run_for(command, limit);
    assert!(
        status.success(),
        "{script} failed ({status}):\n{stdout}{stderr}"
    );
    (stdout, stderr)
}

/// What a stopped process tree left behind: every process whose command line
/// mentions `folder` (each engine of a cluster is started with its config or
/// data there), and every address of `addrs` that still has a listening TCP
/// socket or a bound UDP socket (IPv4, from /proc/net). Empty when all is gone.
pub fn leftovers(folder: &Path, addrs: &[SocketAddr]) -> Vec<String> {
    let needle = folder.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!(
                "process {}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    // /proc/net/{tcp,udp}: "sl local_address rem_address st ...", the local
    // address as little-endian hex IP:port; st 0A is LISTEN, 07 an unconnected UDP socket.
    for (table, state) in [("/proc/net/tcp", "0A"), ("/proc/net/udp", "07")] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for addr in addrs {
            let SocketAddr::V4(v4) = addr else { continue };
            let local = format!(
                "{:08X}:{:04X}",
                u32::from_le_bytes(v4.ip().octets()),
                v4.port()
            );
            if text.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&state)
            }) {
                found.push(format!("{table}: {addr} still bound"));
            }
        }
    }
    found
}
