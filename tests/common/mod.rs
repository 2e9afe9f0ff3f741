//! The test fixture: runs the real `onebox` binary on port 0, waits for its ready
//! line, captures its logs, and gives tests two DNS clients: real `dig`, and our own
//! few lines over `std::net` sockets with hickory-proto messages.
//!
//! Every integration test file includes this with `mod common;`. Not every file uses
//! every helper, hence the `dead_code` allowance.

#![allow(dead_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, Record, RecordType};

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

// ---------------------------------------------------------------------------------
// Temporary folders
// ---------------------------------------------------------------------------------

/// A folder under the system temp dir, unique to this process and call, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "onebox-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` to `name` inside this folder and returns the file's path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
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

/// How to start a server. `Onebox::start()` covers the usual case.
#[derive(Debug, Default)]
pub struct Spawn {
    zones: Option<PathBuf>,
    args: Vec<OsString>,
    global_args: Vec<OsString>,
    cwd: Option<PathBuf>,
    no_zones_flag: bool,
    env: Vec<(OsString, OsString)>,
    data: Option<PathBuf>,
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
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Arguments before `serve` (e.g. `--log-format json`).
    pub fn global_args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.global_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the server (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Keep state in `dir` (`--data DIR`) instead of `--ephemeral`.
    pub fn data(mut self, dir: impl AsRef<Path>) -> Self {
        self.data = Some(dir.as_ref().to_path_buf());
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

    /// Starts the server; `Err` if it exits or stays silent instead of printing a
    /// ready line. Used to check that bad input stops `serve`.
    pub fn try_start(self) -> Result<Onebox, StartFailure> {
        let mut command = Command::new(ONEBOX);
        command.args(&self.global_args);
        command.args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"]);
        match &self.data {
            Some(dir) => command.arg("--data").arg(dir),
            None => command.arg("--ephemeral"),
        };
        if !self.no_zones_flag {
            let zones = self.zones.unwrap_or_else(|| repo_path("zones"));
            command.arg("--zones").arg(zones);
        }
        command.args(&self.args);
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
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
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut all = stderr.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            })
        };

        // stdout: the first line goes through the channel, every line into `stdout`,
        // so a test can check there was exactly one.
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let (first_tx, first_rx) = mpsc::channel::<String>();
        let stdout_thread = {
            let pipe = child.stdout.take().expect("stdout is piped");
            let stdout = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    stdout.lock().unwrap().push(line.clone());
                    let _ = first_tx.send(line);
                }
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
        let (dns, http) = (addr("dns"), addr("http"));
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
    dns: SocketAddr,
    http: SocketAddr,
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
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
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
}

impl Drop for Onebox {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.try_wait().ok().flatten().is_none() {
            let _ = signal_pid(self.pid, libc::SIGTERM);
            if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

fn signal_pid(pid: u32, signal: libc::c_int) -> std::io::Result<()> {
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
    let mut command = Command::new(ONEBOX);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    run_bounded(command)
}

/// Runs a command to completion, killing it at [`DEADLINE`].
pub fn run_bounded(mut command: Command) -> (ExitStatus, String, String) {
    let program = format!("{command:?}");
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("failed to run {program}: {e}"));
    let mut out_pipe = child.stdout.take().expect("stdout piped");
    let mut err_pipe = child.stderr.take().expect("stderr piped");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let status = match wait_timeout(&mut child, DEADLINE) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} did not finish within {DEADLINE:?}");
        }
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = strip_ansi(&err.join().unwrap_or_default());
    (status, stdout, stderr)
}

/// Runs another program (curl, openssl, ...) to completion with stdin closed, with
/// a deadline. Fails the test if it is not installed. Returns (status, stdout, stderr).
pub fn run_tool(program: &str, args: &[&str], package: &str) -> (ExitStatus, String, String) {
    require_tool(program, package);
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_bounded(command)
}

/// Fails the test (it must not be skipped: scripts/test.sh installs the tools) if
/// `tool` is not on PATH.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "{tool} is not installed: run scripts/test.sh, or apt-get install {package}"
    );
}

// ---------------------------------------------------------------------------------
// dig
// ---------------------------------------------------------------------------------

/// One resource record as dig prints it: `www.foobar.com. 3600 IN CNAME foobar.com.`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigRecord {
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    pub data: String,
}

/// What `dig` printed, parsed. For a message dig printed twice (a truncated UDP
/// answer retried over TCP) the last one wins.
#[derive(Debug, Clone, Default)]
pub struct Dig {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ...; empty if dig got no answer.
    pub status: String,
    pub opcode: String,
    pub flags: Vec<String>,
    /// The QUESTION section lines, without the leading `;`.
    pub question: Vec<String>,
    pub answer: Vec<DigRecord>,
    pub authority: Vec<DigRecord>,
    pub additional: Vec<DigRecord>,
    /// The OPT pseudosection lines, without the leading `; `; empty = no OPT.
    pub opt: Vec<String>,
    /// `MSG SIZE  rcvd:`.
    pub size: Option<usize>,
}

impl Dig {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// The `; EDNS: version: 0, flags: do; udp: 1232` line, if there was an OPT.
    pub fn edns_line(&self) -> Option<&str> {
        self.opt
            .iter()
            .find(|l| l.starts_with("EDNS:"))
            .map(String::as_str)
    }

    /// Answer records of one type.
    pub fn answers_of(&self, rtype: &str) -> Vec<&DigRecord> {
        self.answer.iter().filter(|r| r.rtype == rtype).collect()
    }
}

/// Runs `dig @SERVER -p PORT +time=2 +tries=1 +norec ARGS...` and parses its output.
/// Fails the test if dig is not installed.
pub fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    require_tool("dig", "bind9-dnsutils");
    let mut command = Command::new("dig");
    command
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+tries=1", "+norec"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, stdout, stderr) = run_bounded(command);
    let mut dig = parse_dig(&stdout);
    dig.stderr = stderr;
    dig.exit_code = status.code();
    dig
}

/// Parses dig's default output format.
pub fn parse_dig(stdout: &str) -> Dig {
    let mut dig = Dig {
        stdout: stdout.to_string(),
        ..Dig::default()
    };
    #[derive(PartialEq)]
    enum Section {
        None,
        Opt,
        Question,
        Answer,
        Authority,
        Additional,
    }
    let mut section = Section::None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix(";; ->>HEADER<<- ") {
            // A new message: forget an earlier (truncated) one.
            let keep = (dig.stdout.clone(), dig.stderr.clone());
            dig = Dig {
                stdout: keep.0,
                stderr: keep.1,
                ..Dig::default()
            };
            for part in rest.split(", ") {
                if let Some(v) = part.strip_prefix("opcode: ") {
                    dig.opcode = v.to_string();
                } else if let Some(v) = part.strip_prefix("status: ") {
                    dig.status = v.to_string();
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or("");
            dig.flags = flags.split_whitespace().map(String::from).collect();
            continue;
        }
        if let Some(rest) = line.strip_prefix(";; MSG SIZE  rcvd: ") {
            dig.size = rest.trim().parse().ok();
            continue;
        }
        match line {
            ";; OPT PSEUDOSECTION:" => section = Section::Opt,
            ";; QUESTION SECTION:" => section = Section::Question,
            ";; ANSWER SECTION:" => section = Section::Answer,
            ";; AUTHORITY SECTION:" => section = Section::Authority,
            ";; ADDITIONAL SECTION:" => section = Section::Additional,
            "" => section = Section::None,
            _ => match section {
                Section::None => {}
                Section::Opt => dig
                    .opt
                    .push(line.trim_start_matches(';').trim().to_string()),
                Section::Question => dig.question.push(line.trim_start_matches(';').to_string()),
                Section::Answer => dig.answer.extend(parse_record(line)),
                Section::Authority => dig.authority.extend(parse_record(line)),
                Section::Additional => dig.additional.extend(parse_record(line)),
            },
        }
    }
    dig
}

/// Parses one `name ttl class type data...` line of dig output.
pub fn parse_record(line: &str) -> Option<DigRecord> {
    let mut parts = line.split_whitespace();
    let name = parts.next()?.to_string();
    let ttl = parts.next()?.parse().ok()?;
    let class = parts.next()?.to_string();
    let rtype = parts.next()?.to_string();
    let data = parts.collect::<Vec<_>>().join(" ");
    Some(DigRecord {
        name,
        ttl,
        class,
        rtype,
        data,
    })
}

/// Every record line of a zone transfer listing (dig AXFR prints no sections).
pub fn axfr_records(stdout: &str) -> Vec<DigRecord> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(parse_record)
        .collect()
}

// ---------------------------------------------------------------------------------
// Our own DNS client
// ---------------------------------------------------------------------------------

/// A query for `name`/`rtype`, class IN, RD clear, no EDNS, with a fresh ID.
pub fn query(name: &str, rtype: RecordType) -> Message {
    static NEXT_ID: AtomicU32 = AtomicU32::new(0x1234);
    let id = NEXT_ID.fetch_add(7919, Ordering::Relaxed) as u16;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii(name).expect("valid query name");
    message.add_query(Query::query(name, rtype));
    message
}

/// The same query with an OPT record advertising `payload` bytes.
pub fn with_edns(mut message: Message, payload: u16) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns.set_version(0);
    message.edns = Some(edns);
    message
}

pub fn encode(message: &Message) -> Vec<u8> {
    message.to_vec().expect("encode a DNS message")
}

pub fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|e| panic!("reply does not parse ({e}): {bytes:02x?}"))
}

/// Sends one UDP datagram from a fresh socket and returns the first reply within
/// `wait`, or `None`. A `None` is what the server sends to packets it must ignore.
pub fn udp_try(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client socket");
    socket.connect(server).expect("connect UDP socket");
    socket.set_read_timeout(Some(wait)).expect("set timeout");
    socket.send(packet).expect("send UDP");
    let mut buf = vec![0u8; 65_535];
    match socket.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends raw query bytes over UDP and returns the raw reply; panics if none arrives.
pub fn udp_raw(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    udp_try(server, packet, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no UDP reply from {server} to {packet:02x?}"))
}

/// Asks over UDP and returns the parsed reply, checking that its ID matches.
pub fn ask_udp(server: SocketAddr, message: &Message) -> Message {
    let reply = decode(&udp_raw(server, &encode(message)));
    assert_eq!(reply.metadata.id, message.metadata.id, "reply ID");
    reply
}

/// Opens a TCP connection to the server with generous I/O deadlines.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(server).expect("connect TCP");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("set write timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Prefixes a message with its two-byte length (RFC 1035 §4.2.2).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).expect("message under 64 KiB");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    framed
}

/// Reads one length-prefixed message from a TCP stream.
pub fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// Sends raw query bytes over a new TCP connection and returns the raw reply.
pub fn tcp_raw(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut stream = tcp_connect(server);
    stream.write_all(&frame(packet)).expect("write TCP query");
    read_framed(&mut stream).expect("read TCP reply")
}

/// Asks over TCP and returns the parsed reply, checking that its ID matches.
pub fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
    let reply = decode(&tcp_raw(server, &encode(message)));
    assert_eq!(reply.metadata.id, message.metadata.id, "reply ID");
    reply
}

/// A record as `(name, ttl, TYPE, data)`, names lower case with the trailing dot.
pub fn summary(record: &Record) -> (String, u32, String, String) {
    (
        record.name.to_lowercase().to_ascii(),
        record.ttl,
        record.record_type().to_string(),
        record.data.to_string(),
    )
}

/// The record types of a section, in order.
pub fn types(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.record_type().to_string())
        .collect()
}

/// SplitMix64: a tiny deterministic PRNG, so a failing packet can be reproduced.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Asserts the server still answers `foobar.com SOA` over UDP, the liveness probe
/// after abuse.
pub fn assert_alive(server: &mut Onebox) {
    assert!(server.is_running(), "onebox exited:\n{}", server.stderr());
    let reply = ask_udp(server.dns_addr(), &query("foobar.com.", RecordType::SOA));
    assert_eq!(
        reply.metadata.response_code,
        hickory_server::proto::op::ResponseCode::NoError
    );
    assert_eq!(types(&reply.answers), ["SOA"]);
}

// ---------------------------------------------------------------------------------
// Hardening helpers (tests/harden_*.rs)
// ---------------------------------------------------------------------------------

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

/// A free loopback TCP port (bound and released: another process could take it,
/// which on a test machine's loopback does not happen in practice).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
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
        require_tool("nginx", "nginx");
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
        let _ = signal_pid(self.child.id(), libc::SIGTERM);
        if wait_timeout(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The Python of the venv scripts/test.sh makes under target/venv (h2, hyperframe).
pub fn venv_python() -> PathBuf {
    let python = repo_path("target/venv/bin/python3");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/test.sh (it creates the venv with h2 and hyperframe)",
        python.display()
    );
    python
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
