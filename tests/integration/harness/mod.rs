//! The one test harness of both suites: the `Onebox` fixture (the real binary on
//! port 0, its ready line parsed, its logs captured), temp folders, one-shot runs
//! of `onebox` and other programs with deadlines, and the rule for tests whose tool
//! or privilege is missing. The DNS clients are in `dns`, the raw HTTP client in
//! `http`, servers and certificates that play the other side in `fixtures`.
//!
//! Tests use it with `use crate::harness::*;`. Not every test uses every helper,
//! hence the `dead_code` allowance.

#![allow(dead_code)]

mod dns;
mod fixtures;
mod http;
mod postgres;

pub use dns::*;
pub use fixtures::*;
pub use http::*;
pub use postgres::*;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The binary cargo built for this test run.
pub const ONEBOX: &str = env!("CARGO_BIN_EXE_onebox");

/// How long a server may take to print its ready line. Startup takes milliseconds;
/// the margin is for a machine busy compiling other things.
pub const READY_WAIT: Duration = Duration::from_secs(20);

/// How long to wait for anything that should happen soon (a reply, a reload, an
/// exit). These are deadlines for polling, never assertions about speed.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// A path inside the repository, e.g. `repo_path("zones/foobar.com.zone")`.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Reads `pipe` (a child's stdout or stderr) on a thread of its own, handing each
/// line to `each`, until the child closes it.
fn each_line(
    pipe: impl Read + Send + 'static,
    mut each: impl FnMut(String) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            each(line);
        }
    })
}

/// Asserts that `text` (a program's output, a page, a log) contains `needle`, and
/// shows the whole text when it does not.
#[track_caller]
pub fn assert_contains(text: &str, needle: &str) {
    assert!(text.contains(needle), "no {needle:?} in:\n{text}");
}

/// The element of the JSON array `list` whose `key` is `value` (a visit's step, a
/// cache entry, a header), or a panic that shows the array.
#[track_caller]
pub fn find_in<'a>(list: &'a serde_json::Value, key: &str, value: &str) -> &'a serde_json::Value {
    let items = list
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {list:#}"));
    let found = items.iter().find(|item| item[key] == value);
    found.unwrap_or_else(|| panic!("no element with {key} = {value:?} in {list:#}"))
}

// ---------------------------------------------------------------------------------
// Temporary folders
// ---------------------------------------------------------------------------------

/// A fresh folder under the system temp dir, removed (with everything in it) on
/// drop. It derefs to its `Path`, so `dir.join("x")` and `&dir` work as paths.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// `tag` goes into the folder's name, to tell a leftover folder's test.
    pub fn new(tag: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("onebox-test-{tag}-"))
            .tempdir()
            .expect("create a temp dir");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Writes `text` to `name` (parent folders created) and returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create parent dir");
        }
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    /// Every file and folder below, as sorted relative paths (folders end in `/`).
    pub fn tree(&self) -> Vec<String> {
        tree(self.path())
    }
}

impl Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

/// Every file and folder below `dir`, as sorted relative paths (folders end in `/`).
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
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
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The head of a test zone for foobar.com: SOA (TTL 3600, MINIMUM 300, so the
/// negative TTL min(3600, 300) = 300 differs from the SOA's own TTL), NS, the ns1
/// glue, the apex A and `www CNAME`. Tests append their own records.
pub const TEST_ZONE_HEAD: &str = "\
$ORIGIN foobar.com.
$TTL 3600
@    3600 IN SOA   ns1.foobar.com. hostmaster.foobar.com. 7 7200 3600 1209600 300
@    3600 IN NS    ns1.foobar.com.
ns1  3600 IN A     127.0.0.1
@    3600 IN A     127.0.0.1
www  3600 IN CNAME foobar.com.
";

/// A small valid start of a zone for `check` and the zone-checker comparisons;
/// line 6 is the first line a case adds.
pub const SMALL_ZONE_HEAD: &str = "\
$ORIGIN foobar.com.
$TTL 300
@   IN SOA ns1 hostmaster 1 7200 3600 1209600 300
@   IN NS  ns1
ns1 IN A   127.0.0.1
";

/// A concurrent burst: `clients` threads at once, each making `each` calls of
/// `call(client, i)` one after another; every result, client by client.
pub fn burst<T: Send>(
    clients: usize,
    each: usize,
    call: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let call = &call;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|client| {
                scope.spawn(move || (0..each).map(|i| call(client, i)).collect::<Vec<_>>())
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// A zones folder holding `foobar.com.zone` = [`TEST_ZONE_HEAD`] + `extra`.
pub fn test_zones(extra: &str) -> TempDir {
    let dir = TempDir::new("zones");
    dir.write("foobar.com.zone", &format!("{TEST_ZONE_HEAD}{extra}"));
    dir
}

/// The zone file shipped in the repository, as text.
pub fn shipped_zone() -> String {
    std::fs::read_to_string(repo_path("zones/foobar.com.zone")).expect("read the shipped zone")
}

// ---------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------

/// The log filter test servers run with unless a test sets `RUST_LOG` itself:
/// the default (`info`) plus the per-query DNS event, which as shipped is at
/// debug level. Many tests read what the server answered from that event.
pub const QUERY_LOG: &str = "info,hickory_server=warn,hickory_proto=warn,onebox::dns::query=debug";

/// How to start a server. `Onebox::start()` covers the usual case.
#[derive(Debug, Default)]
pub struct Spawn {
    /// No `RUST_LOG` at all: the log filter exactly as a user gets it.
    shipped_logging: bool,
    zones: Option<PathBuf>,
    args: Vec<OsString>,
    global_args: Vec<OsString>,
    cwd: Option<PathBuf>,
    no_zones_flag: bool,
    /// Neither `--ephemeral` nor `--data`: the caller's own args say where state goes.
    no_state_flag: bool,
    env: Vec<(OsString, OsString)>,
    data: Option<PathBuf>,
    /// `--http` instead of `127.0.0.1:0` (e.g. `[::1]:0`).
    http: Option<String>,
    /// `--dns` instead of `127.0.0.1:0` (e.g. `off`, or an address to restart on).
    dns: Option<String>,
}

impl Spawn {
    /// Serve this zones folder instead of the repository's `zones/`.
    pub fn zones(mut self, dir: impl AsRef<Path>) -> Self {
        self.zones = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Pass no `--zones` at all: the binary uses `./zones` relative to its cwd.
    pub fn default_zones(mut self) -> Self {
        self.no_zones_flag = true;
        self
    }

    /// Extra arguments after `serve ...`.
    pub fn args(mut self, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Arguments before `serve` (e.g. `--log-format json`).
    pub fn global_args(mut self, args: impl IntoIterator<Item = impl Into<OsString>>) -> Self {
        self.global_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Logs as shipped (no `RUST_LOG`) instead of with [`QUERY_LOG`].
    pub fn shipped_logging(mut self) -> Self {
        self.shipped_logging = true;
        self
    }

    /// Only `serve --dns 127.0.0.1:0 --http 127.0.0.1:0` plus the given `args`: no
    /// `--zones`, `--ephemeral` or `--data` of the harness's own.
    pub fn bare(mut self) -> Self {
        self.no_zones_flag = true;
        self.no_state_flag = true;
        self
    }

    /// Keep state in `dir` (`--data DIR`) instead of `--ephemeral`.
    pub fn data(mut self, dir: impl AsRef<Path>) -> Self {
        self.data = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Listen for HTTP on `addr` (a loopback address, port 0) instead of
    /// `127.0.0.1:0`.
    pub fn http(mut self, addr: &str) -> Self {
        self.http = Some(addr.to_string());
        self
    }

    /// `--dns VALUE` instead of `127.0.0.1:0`: `"off"` makes a web node; an address
    /// restarts where secondaries expect their primary.
    pub fn dns(mut self, value: impl ToString) -> Self {
        self.dns = Some(value.to_string());
        self
    }

    /// Run the binary in this folder.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Starts the server and waits for its ready line; panics with its stderr if it
    /// never becomes ready.
    pub fn start(self) -> Onebox {
        match self.try_start() {
            Ok(server) => server,
            Err(failed) => panic!(
                "onebox did not become ready ({}).\n--- stdout ---\n{}\n--- stderr ---\n{}",
                failed.reason, failed.stdout, failed.stderr
            ),
        }
    }

    /// Starts the server expecting `serve` to refuse what it was given (`why`, for
    /// the message should it start): asserts it exits non-zero before printing
    /// anything on stdout (no ready line), and returns what it said.
    pub fn refused(self, why: &str) -> StartFailure {
        let failed = self
            .try_start()
            .expect_err(&format!("serve became ready {why}"));
        assert!(
            failed.status.is_some_and(|s| !s.success()),
            "serve must exit non-zero {why}: {failed:?}"
        );
        assert!(
            failed.stdout.is_empty(),
            "serve printed a ready line {why}: {}",
            failed.stdout
        );
        failed
    }

    /// Starts the server; `Err` if it exits or stays silent instead of printing a
    /// ready line. Used to check that bad input stops `serve`.
    pub fn try_start(self) -> Result<Onebox, StartFailure> {
        let mut command = Command::new(ONEBOX);
        command.args(&self.global_args);
        let http = self.http.as_deref().unwrap_or("127.0.0.1:0");
        let dns = self.dns.as_deref().unwrap_or("127.0.0.1:0");
        command.args(["serve", "--dns", dns, "--http", http]);
        match &self.data {
            Some(dir) => {
                command.arg("--data").arg(dir);
            }
            None if self.no_state_flag => {}
            None => {
                command.arg("--ephemeral");
            }
        }
        // ONEBOX_TEST_DB=postgres://…: the same tests, on PostgreSQL. A server of
        // the harness's own state (not `bare`) gets a database of its own.
        let ephemeral_args = self.args.iter().any(|a| a == "--ephemeral");
        let own_db = self.args.iter().any(|a| a == "--db");
        if let Some(cluster) =
            test_db().filter(|_| !own_db && (!self.no_state_flag || ephemeral_args))
        {
            command
                .arg("--db")
                .arg(test_database(&cluster, self.data.as_deref()));
        }
        if !self.no_zones_flag {
            let zones = self.zones.unwrap_or_else(|| repo_path("zones"));
            command.arg("--zones").arg(zones);
        }
        command.args(&self.args);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        if self.shipped_logging {
            command.env_remove("RUST_LOG");
        } else if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", QUERY_LOG);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn the onebox binary");
        let pid = child.id();

        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_thread = {
            let pipe = child.stderr.take().expect("stderr is piped");
            let stderr = stderr.clone();
            each_line(pipe, move |line| {
                let mut all = stderr.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            })
        };

        // stdout: the first line goes through the channel, every line into `stdout`,
        // so a test can check there was exactly one.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = mpsc::channel::<String>();
        let stdout_thread = {
            let pipe = child.stdout.take().expect("stdout is piped");
            let stdout = stdout.clone();
            each_line(pipe, move |line| {
                stdout.lock().unwrap().push(line.clone());
                let _ = first_tx.send(line);
            })
        };

        let first = first_rx.recv_timeout(READY_WAIT);
        let threads = vec![stderr_thread, stdout_thread];
        let line = match first {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let reason = "it closed stdout without a ready line".to_string();
                return Err(failure(child, threads, &stdout, &stderr, reason));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = signal_pid(pid, libc::SIGKILL);
                let reason = format!("no ready line within {READY_WAIT:?}");
                return Err(failure(child, threads, &stdout, &stderr, reason));
            }
        };
        let ready: serde_json::Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(e) => {
                let _ = signal_pid(pid, libc::SIGKILL);
                let reason = format!("its first stdout line is not JSON ({e}): {line}");
                return Err(failure(child, threads, &stdout, &stderr, reason));
            }
        };
        let addr = |key: &str| -> SocketAddr {
            ready[key]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("ready line has no {key:?} address: {line}"))
        };
        // `--dns off` prints `"dns":null`: port 0, where nothing answers.
        let dns = if ready["dns"].is_null() {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            addr("dns")
        };
        let http = addr("http");
        Ok(Onebox {
            child: Some(child),
            pid,
            ready,
            dns,
            http,
            stdout,
            stderr,
            threads,
        })
    }
}

/// Collects what a server that failed to start printed, after it exited (or was
/// killed at the deadline).
fn failure(
    mut child: Child,
    threads: Vec<JoinHandle<()>>,
    stdout: &Mutex<Vec<String>>,
    stderr: &Mutex<String>,
    reason: String,
) -> StartFailure {
    let status = match wait_timeout(&mut child, DEADLINE) {
        Some(status) => Some(status),
        None => {
            let _ = child.kill();
            child.wait().ok()
        }
    };
    for thread in threads {
        let _ = thread.join();
    }
    StartFailure {
        reason,
        status,
        stdout: stdout.lock().unwrap().join("\n"),
        stderr: strip_ansi(&stderr.lock().unwrap()),
    }
}

/// Why a server did not become ready, with everything it printed.
#[derive(Debug)]
pub struct StartFailure {
    pub reason: String,
    /// The exit status, if it exited.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// A running `onebox serve`. Dropping it stops the process (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Onebox {
    child: Option<Child>,
    /// The child's process id, as the OS gave it.
    pub pid: u32,
    /// The parsed ready line.
    pub ready: serde_json::Value,
    /// The DNS address from the ready line (UDP and TCP); port 0 with `--dns off`.
    pub dns: SocketAddr,
    /// The plain HTTP address from the ready line.
    pub http: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    threads: Vec<JoinHandle<()>>,
}

impl Onebox {
    /// `onebox serve` on port 0 with the repository's zones and `--ephemeral`.
    pub fn start() -> Self {
        Spawn::default().start()
    }

    /// A server with extra arguments, a different zones folder, or a cwd.
    pub fn spawn() -> Spawn {
        Spawn::default()
    }

    /// `onebox doctor --dns DNS --http HTTP ARGS...` against this server.
    pub fn doctor(&self, args: &[&str]) -> Run {
        let (dns, http) = (self.dns.to_string(), self.http.to_string());
        onebox(
            ["doctor", "--dns", &dns, "--http", &http]
                .iter()
                .chain(args),
        )
    }

    /// `onebox serve` with its state in `dir` (`--data DIR`).
    pub fn start_on(dir: impl AsRef<Path>) -> Self {
        Spawn::default().data(dir).start()
    }

    /// As [`Onebox::start_on`], with no posting rate: the durability tests post
    /// hundreds a minute from one account.
    pub fn start_unthrottled_on(dir: impl AsRef<Path>) -> Self {
        Spawn::default()
            .data(dir)
            .args(["--post-rate", "0"])
            .start()
    }

    /// [`Onebox::start_unthrottled_on`] a new data folder named after `tag`,
    /// which comes back too: to keep it for the test, and restart on it.
    pub fn start_unthrottled_fresh(tag: &str) -> (TempDir, Self) {
        let dir = TempDir::new(tag);
        let server = Self::start_unthrottled_on(&dir);
        (dir, server)
    }

    /// `onebox serve` with this zones folder.
    pub fn start_with_zones(zones: impl AsRef<Path>) -> Self {
        Spawn::default().zones(zones).start()
    }

    /// `onebox serve --dns .. --http .. ARGS` with these environment variables and
    /// nothing else of the harness's (`args` must say `--ephemeral` or `--data`).
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::bare_spawn(args, env).start()
    }

    /// As [`Onebox::start_with`], but `Err(stderr)` if it exits (or stays silent)
    /// instead of printing a ready line: the check that bad input stops `serve`.
    pub fn try_start(args: &[&str], env: &[(&str, &str)]) -> Result<Self, String> {
        Self::bare_spawn(args, env)
            .try_start()
            .map_err(|failed| failed.stderr)
    }

    fn bare_spawn(args: &[&str], env: &[(&str, &str)]) -> Spawn {
        env.iter()
            .fold(Spawn::default().bare().args(args), |spawn, (k, v)| {
                spawn.env(k, v)
            })
    }

    /// `http://ADDR/path` on the plain HTTP listener.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    /// SIGTERM, wait for the exit (bounded), and return (exit success, stderr).
    pub fn stop(mut self) -> (bool, String) {
        let status = self.terminate();
        (status.success(), self.stderr())
    }

    /// SIGKILL: the crash case.
    pub fn kill9(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL onebox");
            child.wait().expect("reap onebox");
        }
    }

    /// Everything the server wrote to stderr, after stopping it with SIGTERM.
    pub fn stderr_after_stop(self) -> String {
        self.stop().1
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.dns
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// Everything the server wrote to stderr so far, ANSI colours removed.
    pub fn stderr(&self) -> String {
        strip_ansi(&self.stderr.lock().unwrap())
    }

    /// Stderr exactly as written, escape sequences and all.
    pub fn stderr_raw(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Every line the server wrote to stdout so far (the ready line first).
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Waits until stderr contains `needle` (after the first `skip` bytes) and
    /// returns the whole stderr; panics with it at the deadline.
    pub fn wait_for_log(&self, needle: &str, skip: usize) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let all = self.stderr();
            if all.get(skip..).is_some_and(|tail| tail.contains(needle)) {
                return all;
            }
            if Instant::now() > deadline {
                panic!("stderr never showed {needle:?} within {DEADLINE:?}:\n{all}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (libc::SIGHUP, SIGTERM, ...) to the server.
    pub fn signal(&self, signal: libc::c_int) {
        signal_pid(self.pid, signal).expect("send a signal to onebox");
    }

    /// Sends SIGTERM and waits for the process to exit; panics at the deadline.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit()
    }

    /// Waits for the process to exit (after a signal the test sent) and for its
    /// output to be read; panics at the deadline.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let child = self.child.as_mut().expect("still running");
        let status = wait_timeout(child, DEADLINE)
            .unwrap_or_else(|| panic!("onebox did not exit within {DEADLINE:?}"));
        self.child = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        status
    }

    /// The process's resident memory in KiB, from /proc (Linux).
    pub fn rss_kib(&self) -> u64 {
        rss_kib_of(self.pid).expect("VmRSS in /proc/PID/status")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// `dig` against this server; see [`dig`].
    pub fn dig(&self, args: &[&str]) -> Dig {
        dig(self.dns, args)
    }

    /// An address from the ready line: `"https"`, `"dot"`, ...
    pub fn ready_addr(&self, key: &str) -> SocketAddr {
        self.ready[key]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("ready line has no {key:?} address: {}", self.ready))
    }

    /// A path from the ready line: `"ca"`, `"control"`.
    pub fn ready_path(&self, key: &str) -> PathBuf {
        self.ready[key]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| panic!("ready line has no {key:?} path: {}", self.ready))
    }

    /// `onebox maintenance on|off --control PATH` against this server, which must
    /// succeed.
    pub fn maintenance(&self, on: bool) {
        let control = self.ready_path("control");
        let state = if on { "on" } else { "off" };
        let args = ["maintenance", state, "--control", path_text(&control)];
        let (status, out, err) = run_onebox(&args, None);
        assert!(status.success(), "maintenance {state}: {out}{err}");
    }

    /// Every socket the server holds that listens (TCP) or is bound (UDP).
    pub fn sockets(&self) -> Vec<(&'static str, SocketAddr)> {
        bound_sockets(self.pid)
    }

    /// The admin token for `/_onebox/api/...`, read from the ready line's file.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.ready_path("admin_token_file"))
            .unwrap()
            .trim()
            .to_string()
    }
}

/// The sockets process `pid` holds that listen (TCP, state LISTEN) or are bound
/// (UDP): ("tcp" or "udp", local address). Read from /proc: the process's socket
/// inodes from `fd/`, matched against the kernel's tables in `net/`.
pub fn bound_sockets(pid: u32) -> Vec<(&'static str, SocketAddr)> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter_map(|link| {
                    let link = link.to_string_lossy().into_owned();
                    let inode = link.strip_prefix("socket:[")?.strip_suffix(']')?;
                    Some(inode.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    for (table, proto, bound_state) in [
        ("tcp", "tcp", "0A"),
        ("tcp6", "tcp", "0A"),
        ("udp", "udp", "07"),
        ("udp6", "udp", "07"),
    ] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == bound_state && inodes.contains(cols[9]) {
                found.push((proto, proc_net_addr(cols[1])));
            }
        }
    }
    found.sort();
    found
}

/// `0100007F:1F90` (/proc/net's hex, each 32-bit word in host order) as an address.
fn proc_net_addr(text: &str) -> SocketAddr {
    let (ip, port) = text.split_once(':').expect("ADDR:PORT in /proc/net");
    let port = u16::from_str_radix(port, 16).expect("hex port");
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| {
            let word = u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).expect("hex address");
            word.to_ne_bytes()
        })
        .collect();
    let ip: std::net::IpAddr = match words.as_slice() {
        [v4] => std::net::Ipv4Addr::from(*v4).into(),
        _ => {
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(words.concat()).expect("16 bytes")).into()
        }
    };
    SocketAddr::new(ip, port)
}

impl Drop for Onebox {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            terminate(&mut child, Duration::from_secs(5));
        }
    }
}

/// Kills `child` and reaps it, so no test leaves a process (or a zombie) behind.
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Asks `child` to stop with SIGTERM (so it cleans up as in production), waits up
/// to `grace`, then kills it. Its exit status when it stopped by itself in time.
pub fn terminate(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let _ = signal_pid(child.id(), libc::SIGTERM);
    let status = wait_timeout(child, grace);
    if status.is_none() {
        kill_and_reap(child);
    }
    status
}

pub fn signal_pid(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).expect("pid fits pid_t");
    // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Polls `try_wait` until the child exits or `limit` passes.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that `text` contains each of `needles`, showing `text` when one is missing.
pub fn assert_contains_all(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
}

/// Removes ANSI colour sequences (`ESC [ ... m`) so log assertions see plain text.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Runs `onebox` with arbitrary arguments to completion (for `check`), with a
/// deadline. Returns (status, stdout, stderr).
pub fn run_onebox(args: &[&str], cwd: Option<&Path>) -> (ExitStatus, String, String) {
    let mut command = piped(ONEBOX);
    command.args(args);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    run_bounded(command)
}

/// Runs a command to completion, killing it at [`DEADLINE`]; stderr with its ANSI
/// colours removed.
pub fn run_bounded(command: Command) -> (ExitStatus, String, String) {
    let (status, stdout, stderr) = run_for(command, DEADLINE);
    (status, stdout, strip_ansi(&stderr))
}

/// Runs a command to completion, killing it (and failing the test) at `limit`.
/// Both streams exactly as written.
pub fn run_for(mut command: Command, limit: Duration) -> (ExitStatus, String, String) {
    let program = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {program}: {e}"));
    // Both pipes drain on threads of their own, so neither can fill and stall the child.
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = read_all(Box::new(child.stdout.take().expect("stdout piped")));
    let err = read_all(Box::new(child.stderr.take().expect("stderr piped")));
    let status = match wait_timeout(&mut child, limit) {
        Some(status) => status,
        None => {
            kill_and_reap(&mut child);
            panic!("{program} did not finish within {limit:?}");
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    (status, stdout, stderr)
}

/// Runs another program (curl, openssl, ...) to completion with stdin closed, with
/// a deadline. Fails the test if it is not installed (a test that can do without
/// it checks [`require_tool`] first). Returns (status, stdout, stderr).
pub fn run_tool(program: &str, args: &[&str], package: &str) -> (ExitStatus, String, String) {
    assert_tool(program, package);
    let mut command = piped(program);
    command.args(args);
    run_bounded(command)
}

/// `program` with stdin closed and both outputs piped back to the test, for the
/// caller to add arguments and run with [`run_for`] or [`run_bounded`].
pub fn piped(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// `openssl ARGS...` to completion: (success, stdout, stderr).
pub fn openssl(args: &[&str]) -> (bool, String, String) {
    let (status, stdout, stderr) = run_tool("openssl", args, "openssl");
    (status.success(), stdout, stderr)
}

/// A stand-in filesystem root below `dir` for `ca install --root`, with Debian's
/// CA store folder made: (root, store).
pub fn fake_ca_root(dir: &Path) -> (PathBuf, PathBuf) {
    let root = dir.join("root");
    let store = root.join("usr/local/share/ca-certificates");
    std::fs::create_dir_all(&store).expect("create the fake CA store");
    (root, store)
}

/// `onebox ca --data DATA ARGS...` to completion: (status, stdout, stderr).
pub fn onebox_ca(data: &Path, args: &[&str]) -> (ExitStatus, String, String) {
    let mut all = vec!["ca", "--data", path_text(data)];
    all.extend_from_slice(args);
    run_onebox(&all, None)
}

/// The permitted subtrees of the CA certificate at `ca`, as OpenSSL prints them.
pub fn ca_permitted(ca: &Path) -> Vec<String> {
    let (ok, out, err) = openssl(&[
        "x509",
        "-noout",
        "-ext",
        "nameConstraints",
        "-in",
        path_text(ca),
    ]);
    assert!(ok, "openssl cannot read {ca:?}: {err}");
    assert!(!out.contains("Excluded:"), "{out}");
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("DNS:") || l.starts_with("IP:"))
        .map(String::from)
        .collect()
}

/// [`onebox_ca`], asserting it exits with `code`: (stdout, stderr).
#[track_caller]
pub fn onebox_ca_exits(data: &Path, args: &[&str], code: i32) -> (String, String) {
    let (status, out, err) = onebox_ca(data, args);
    assert_eq!(status.code(), Some(code), "ca {args:?}:\n{out}\n{err}");
    (out, err)
}

/// A path as the `&str` that openssl's argument list takes.
pub fn path_text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// `openssl req -x509` with a new P-256 key written to `key` and the certificate
/// to `cert`, plus `args` (subject, extensions, signer, days): (success, stderr).
pub fn openssl_new_cert(key: &Path, cert: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        path_text(key),
        "-out",
        path_text(cert),
    ];
    all.extend_from_slice(args);
    let (ok, _, err) = openssl(&all);
    (ok, err)
}

/// Signs a leaf for `san` (`DNS:name` or `IP:addr`) with the CA key in `data`, as
/// a thief with the key would, and returns whether `openssl verify -CAfile ca.pem`
/// accepts it, with what it said.
pub fn forge_and_verify(dir: &TempDir, data: &Path, san: &str) -> (bool, String) {
    let tag = san.replace([':', '.'], "_");
    let leaf = dir.path().join(format!("{tag}.pem"));
    let key = dir.path().join(format!("{tag}-key.pem"));
    // OpenSSL checks a host-like CN against the DNS constraints too, so an IP
    // leaf gets a CN that is no host name.
    let cn = match san.split_once(':') {
        Some(("DNS", name)) => name,
        _ => "onebox test leaf",
    };
    let ca = data.join("ca.pem");
    let (ok, err) = openssl_new_cert(
        &key,
        &leaf,
        &[
            "-subj",
            &format!("/CN={cn}"),
            "-addext",
            &format!("subjectAltName={san}"),
            "-CA",
            path_text(&ca),
            "-CAkey",
            path_text(&data.join("ca-key.pem")),
            "-days",
            "1",
        ],
    );
    assert!(ok, "openssl could not sign a leaf for {san}: {err}");
    let (ok, out, err) = openssl(&["verify", "-CAfile", path_text(&ca), path_text(&leaf)]);
    (ok, format!("{out}{err}"))
}

/// The resident memory (VmRSS) of process `pid` in KiB, from /proc (Linux); `None`
/// once the process is gone.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Samples a process's resident memory on a thread, every `every`, while a test
/// loads it, and keeps the peak.
#[derive(Debug)]
pub struct PeakRss {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl PeakRss {
    pub fn watch(pid: u32, every: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = rss_kib_of(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(every);
                }
            })
        };
        Self {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the peak in KiB.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------
// What a test needs: skip or fail
// ---------------------------------------------------------------------------------

/// Whether `ONEBOX_TEST_STRICT=1` is set (scripts/test.sh sets it): then a test
/// whose tool or privilege is missing fails instead of skipping, because a test
/// that silently does not run cannot fail.
pub fn strict() -> bool {
    std::env::var_os("ONEBOX_TEST_STRICT").is_some_and(|v| v == "1")
}

/// The one rule for a missing need. `found`: go on. Missing under
/// [`strict`]: the test fails. Missing otherwise: say so on stderr, in the form
/// `skipped: TEST: WHAT (FIX)`, and return false so the test returns early.
pub fn need(found: bool, what: &str, fix: &str) -> bool {
    if found {
        return true;
    }
    // libtest runs each test on a thread named after it.
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    assert!(
        !strict(),
        "{test}: {what} ({fix}); ONEBOX_TEST_STRICT=1 does not allow skipping"
    );
    // Straight to the stderr handle: libtest captures `eprintln!` of a test that
    // passes, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {what} ({fix})");
    false
}

/// Whether `tool` is on PATH; see [`need`] for what happens when it is not.
pub fn require_tool(tool: &str, package: &str) -> bool {
    need(
        on_path(tool),
        &format!("{tool} not installed"),
        &format!("apt-get install {package}"),
    )
}

/// Whether the test runs as root (mounts, namespaces); see [`need`].
pub fn require_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    need(
        root,
        "needs root",
        "run it as root, as scripts/test.sh does in CI",
    )
}

/// Returns from the calling test unless every condition holds; the `require_*`
/// functions have already said why:
/// `skip_unless!(require_tool("dig", "bind9-dnsutils"));`
macro_rules! skip_unless {
    ($($need:expr),+ $(,)?) => {
        $(
            if !$need {
                return;
            }
        )+
    };
}
pub(crate) use skip_unless;

/// For helpers that run a tool: fails the test with the fix if it is missing.
pub fn assert_tool(tool: &str, package: &str) {
    assert!(
        on_path(tool),
        "{tool} is not installed: run scripts/test.sh, or apt-get install {package}"
    );
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}
