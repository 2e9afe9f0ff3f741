//! The supervisor: the one process that owns the cluster. `cluster up` starts it
//! in a session of its own; it starts every engine as its child, in the order
//! each needs the one before (PostgreSQL primary, replica, the hidden DNS
//! primary, Knot and NSD, the nodes, HAProxy), writes `state.json`, prints the
//! ready line for `up` to relay, then watches.
//!
//! Every child is started with `PR_SET_PDEATHSIG`, so nothing outlives the
//! supervisor even when it is killed with -9. A onebox node that exits, for any
//! reason, is started again: a node killed with -9 comes back by itself, and a
//! rolling restart is "drain, SIGTERM, wait for HAProxy to see it UP again".
//! PostgreSQL and the DNS primary are not restarted: the scenarios stop them on
//! purpose to show what survives their loss.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::config::{self, Plan};
use super::engines::Engines;
use super::status;
use crate::cli::ClusterUpArgs;

/// How long one engine may take to become ready. Startup takes a second or two;
/// the margin is for a machine busy compiling.
const READY_WAIT: Duration = Duration::from_secs(90);
/// How long a stopping child may take before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(15);
/// How often the supervisor looks at its children.
const TICK: Duration = Duration::from_millis(100);

/// What `status` and `down` read: the plan and who runs where.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct State {
    pub(crate) plan: Plan,
    pub(crate) supervisor: u32,
    /// Child name → pid, for every engine started (nodes by their name).
    pub(crate) pids: BTreeMap<String, u32>,
    /// The DNS primary's TSIG key file (nsupdate -k).
    pub(crate) tsig: PathBuf,
    /// The cluster CA every node's certificate comes from (curl --cacert).
    pub(crate) ca: PathBuf,
}

impl State {
    pub(crate) fn file(dir: &Path) -> PathBuf {
        dir.join("state.json")
    }

    /// The state of the cluster in `dir` (`DATA/cluster`), if one was started.
    pub(crate) fn read(dir: &Path) -> anyhow::Result<Option<State>> {
        let path = Self::file(dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .with_context(|| format!("{} is not a cluster state file", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
        }
    }

    /// Written whole then renamed, so a reader never sees half a file.
    fn write(&self) -> anyhow::Result<()> {
        let path = Self::file(&self.plan.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).context("failed to encode the state")?;
        std::fs::write(&tmp, text).with_context(|| format!("failed to write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("failed to write {}", path.display()))
    }

    /// The one JSON line `cluster up` prints.
    pub(crate) fn ready_line(&self) -> serde_json::Value {
        let plan = &self.plan;
        let pid = |name: &str| self.pids.get(name).copied();
        serde_json::json!({
            "ready": true,
            "lb": {
                "http": plan.http,
                "https": plan.https,
                "stats": plan.stats_url(),
                "pid": pid("haproxy"),
                "config": plan.path("haproxy.cfg"),
            },
            "nodes": plan.nodes.iter().map(|node| serde_json::json!({
                "name": node.name,
                "http": node.http,
                "https": node.https,
                "pid": pid(&node.name),
                "data": plan.path(&node.name),
            })).collect::<Vec<_>>(),
            "dns": {
                "primary": plan.dns,
                "primary_pid": pid("dns-primary"),
                "secondaries": [
                    {"name": "knot", "addr": plan.knot(), "pid": pid("knot")},
                    {"name": "nsd", "addr": plan.nsd(), "pid": pid("nsd")},
                ],
                "tsig": self.tsig,
                "zone": config::ZONE,
            },
            "postgres": {
                "primary": plan.pg_primary(),
                "replica": plan.pg_replica(),
                "primary_pid": pid("pg-primary"),
                "replica_pid": pid("pg-replica"),
                "url": plan.db_url(),
            },
            "ca": self.ca,
            "data": plan.dir,
            "supervisor_pid": self.supervisor,
        })
    }
}

/// One child process and how to start it again.
struct Proc {
    name: String,
    child: Child,
    /// The signal that stops it cleanly (PostgreSQL: SIGINT, "fast" shutdown).
    stop: libc::c_int,
    /// Only the web nodes are restarted.
    restart: Option<Restart>,
}

/// A node's command line, and when it may be started again.
struct Restart {
    spec: Spec,
    started: Instant,
    backoff: Duration,
    due: Option<Instant>,
}

/// Everything needed to start one child.
#[derive(Clone)]
struct Spec {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    /// Run as this (uid, gid): PostgreSQL refuses to run as root.
    user: Option<(u32, u32)>,
    stop: libc::c_int,
    /// Keep stdout for the ready line (onebox serve), else it goes to the log.
    ready_line: bool,
}

/// The running cluster as the supervisor holds it.
struct Supervisor {
    plan: Plan,
    engines: Engines,
    procs: Vec<Proc>,
    postgres_user: Option<(u32, u32)>,
    tsig: PathBuf,
    ca: PathBuf,
}

/// The hidden `cluster supervise`: start everything, report, watch, stop.
pub(crate) fn run(args: ClusterUpArgs) -> anyhow::Result<ExitCode> {
    install_stop_handler();
    let engines = Engines::find()?;
    let plan = Plan::new(
        super::cluster_dir(&args.data)?,
        args.nodes,
        args.http,
        args.https,
        args.dns,
    );
    let mut supervisor = Supervisor {
        postgres_user: postgres_user()?,
        plan,
        engines,
        procs: Vec::new(),
        tsig: PathBuf::new(),
        ca: PathBuf::new(),
    };
    let started = supervisor.start_all();
    let mut stdout = std::io::stdout();
    let state = match started {
        Ok(state) => state,
        Err(err) => {
            tracing::error!("cluster up failed: {err:#}");
            supervisor.stop_all();
            let line = serde_json::json!({"ready": false, "error": format!("{err:#}")});
            let _ = writeln!(stdout, "{line}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let _ = writeln!(stdout, "{}", state.ready_line());
    let _ = stdout.flush();
    // `up` exits once it has the line: nothing more goes to that pipe.
    redirect_stdout_to_null();
    tracing::info!(
        "cluster ready; supervising {} processes",
        supervisor.procs.len()
    );
    supervisor.watch(state);
    supervisor.stop_all();
    let _ = std::fs::remove_file(State::file(&supervisor.plan.dir));
    tracing::info!("cluster stopped");
    Ok(ExitCode::SUCCESS)
}

impl Supervisor {
    fn start_all(&mut self) -> anyhow::Result<State> {
        let plan = self.plan.clone();
        prepare_folders(&plan, self.postgres_user)?;
        write_configs(&plan)?;
        self.ca = self.make_ca()?;

        self.start_postgres()?;

        // The hidden DNS primary, then the secondaries that copy from it.
        let zones = plan.path("zones");
        let primary_data = plan.path("dns-primary");
        let mut args = vec![
            "serve".to_string(),
            "--zones".into(),
            zones.display().to_string(),
            "--data".into(),
            primary_data.display().to_string(),
            "--dns".into(),
            plan.dns.to_string(),
            // Its web server is of no use to anyone: a free port on loopback.
            "--http".into(),
            "127.0.0.1:0".into(),
            "--metrics".into(),
            "off".into(),
            "--allow-transfer".into(),
            "127.0.0.0/8".into(),
        ];
        for secondary in [plan.knot(), plan.nsd()] {
            args.extend(["--notify".to_string(), secondary.to_string()]);
        }
        let ready = self.start_onebox("dns-primary", args)?;
        self.tsig = ready["tsig"]
            .as_str()
            .map(PathBuf::from)
            .unwrap_or_else(|| primary_data.join("onebox-update.key"));
        let serial = status::serial(plan.dns)
            .with_context(|| format!("the DNS primary on {} does not answer", plan.dns))?;

        let knot_conf = plan.path("knot.conf").display().to_string();
        self.spawn(Spec::new(
            "knot",
            &self.engines.knotd,
            ["-c", &knot_conf],
            &plan.path("knot"),
        ))?;
        let nsd_conf = plan.path("nsd.conf").display().to_string();
        self.spawn(Spec::new(
            "nsd",
            &self.engines.nsd,
            ["-d", "-c", &nsd_conf],
            &plan.path("nsd"),
        ))?;
        for (name, addr) in [("knot", plan.knot()), ("nsd", plan.nsd())] {
            self.wait(name, &format!("{name} to serve serial {serial}"), || {
                status::serial(addr).ok() == Some(serial)
            })?;
        }

        // The web nodes, all started before any is waited for.
        let mut waiting = Vec::new();
        for node in &plan.nodes {
            let spec = self.node_spec(node);
            let (pid, line) = self.spawn(spec.clone())?;
            let last = self.procs.len() - 1;
            self.procs[last].restart = Some(Restart {
                spec,
                started: Instant::now(),
                backoff: Duration::from_millis(250),
                due: None,
            });
            waiting.push((node.name.clone(), pid, line));
        }
        for (name, _, line) in waiting {
            let line = line.context("no stdout pipe")?;
            self.ready_line_of(&name, &line)?;
        }

        let cfg = plan.path("haproxy.cfg").display().to_string();
        self.spawn(Spec::new(
            "haproxy",
            &self.engines.haproxy,
            ["-W", "-db", "-f", &cfg],
            &plan.dir,
        ))?;
        let sock = plan.path("haproxy.sock");
        let count = plan.nodes.len() * 2;
        self.wait("haproxy", "HAProxy to see every node UP", || {
            status::haproxy_stats(&sock)
                .is_ok_and(|servers| servers.iter().filter(|s| s.status == "UP").count() == count)
        })?;

        let state = State {
            plan: plan.clone(),
            supervisor: std::process::id(),
            pids: self.pids(),
            tsig: self.tsig.clone(),
            ca: self.ca.clone(),
        };
        state.write()?;
        Ok(state)
    }

    /// The CA every node's certificate comes from, made once in `cluster/ca`
    /// and copied into each node's data folder, so HTTPS through the balancer
    /// verifies against one certificate whichever node answers.
    fn make_ca(&self) -> anyhow::Result<PathBuf> {
        let dir = self.plan.path("ca");
        let hosts = vec![config::ZONE.to_string(), format!("www.{}", config::ZONE)];
        let ca = crate::ca::Ca::load_or_create(&dir, &hosts)?;
        for node in &self.plan.nodes {
            let data = self.plan.path(&node.name);
            std::fs::create_dir_all(&data)
                .with_context(|| format!("failed to create {}", data.display()))?;
            std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700))?;
            for file in [crate::ca::CA_FILE, crate::ca::CA_KEY_FILE] {
                let to = data.join(file);
                std::fs::copy(dir.join(file), &to)
                    .with_context(|| format!("failed to copy the CA to {}", to.display()))?;
            }
        }
        Ok(ca.path().to_path_buf())
    }

    fn start_postgres(&mut self) -> anyhow::Result<()> {
        let plan = self.plan.clone();
        let (primary, replica) = (plan.path("pg-primary"), plan.path("pg-replica"));
        if replica.join("PG_VERSION").exists() && !replica.join("standby.signal").exists() {
            bail!(
                "{} was promoted to primary in an earlier run, so {} is stale: remove both folders to start over with an empty database",
                replica.display(),
                primary.display()
            );
        }
        if !primary.join("PG_VERSION").exists() {
            let data = primary.display().to_string();
            self.run_once(
                "initdb",
                &[
                    "-D",
                    &data,
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "--no-instructions",
                ],
                &primary,
            )?;
            append(
                &primary.join("postgresql.conf"),
                &format!(
                    "\n# The onebox cluster's settings (shared with the replica, which copies this file):\ninclude '{}'\n",
                    plan.path("postgresql.conf").display()
                ),
            )?;
        }
        self.spawn(self.postgres_spec("pg-primary", &primary, plan.pg_primary()))?;
        self.wait_postgres("pg-primary", plan.pg_primary())?;

        if !replica.join("PG_VERSION").exists() {
            let (host, port) = (
                plan.pg_primary().ip().to_string(),
                plan.pg_primary().port().to_string(),
            );
            let data = replica.display().to_string();
            self.run_once(
                "pg_basebackup",
                &[
                    "-h", &host, "-p", &port, "-U", "postgres", "-D", &data, "-R", "-X", "stream",
                    "-c", "fast",
                ],
                &replica,
            )?;
            append(
                &replica.join("postgresql.auto.conf"),
                "# onebox: this server waits for no standby of its own. Once promoted it has\n# none, and waiting for one would stop every write.\nsynchronous_standby_names = ''\n",
            )?;
        }
        self.spawn(self.postgres_spec("pg-replica", &replica, plan.pg_replica()))?;
        self.wait_postgres("pg-replica", plan.pg_replica())?;
        let engines = self.engines.clone();
        self.wait(
            "pg-primary",
            "the replica to stream from the primary",
            || {
                psql(
                    &engines,
                    plan.pg_primary(),
                    "postgres",
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                )
                .is_ok_and(|n| n != "0")
            },
        )?;
        let exists = psql(
            &self.engines,
            plan.pg_primary(),
            "postgres",
            &format!(
                "SELECT 1 FROM pg_database WHERE datname = '{}'",
                config::DATABASE
            ),
        )?;
        if exists.is_empty() {
            psql(
                &self.engines,
                plan.pg_primary(),
                "postgres",
                &format!("CREATE DATABASE {}", config::DATABASE),
            )?;
        }
        Ok(())
    }

    fn postgres_spec(&self, name: &str, data: &Path, addr: SocketAddr) -> Spec {
        let mut spec = Spec::new(
            name,
            &self.engines.pg("postgres"),
            [
                "-D".to_string(),
                data.display().to_string(),
                "-p".into(),
                addr.port().to_string(),
                "-c".into(),
                format!("listen_addresses={}", addr.ip()),
            ],
            data,
        );
        spec.user = self.postgres_user;
        // SIGINT is PostgreSQL's "fast" shutdown: abort sessions, checkpoint, exit.
        spec.stop = libc::SIGINT;
        spec
    }

    fn wait_postgres(&mut self, name: &str, addr: SocketAddr) -> anyhow::Result<()> {
        let program = self.engines.pg("pg_isready");
        let (host, port) = (addr.ip().to_string(), addr.port().to_string());
        self.wait(
            name,
            &format!("PostgreSQL on {addr} to accept connections"),
            || {
                Command::new(&program)
                    .args(["-q", "-t", "1", "-h", &host, "-p", &port])
                    .stdin(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            },
        )
    }

    /// Runs a PostgreSQL tool to completion as the cluster's owner, its output in
    /// `logs/NAME.log`.
    fn run_once(&self, program: &str, args: &[&str], cwd: &Path) -> anyhow::Result<()> {
        let log = self.plan.log(program);
        let mut spec = Spec::new(
            program,
            &self.engines.pg(program),
            args.iter().copied(),
            cwd,
        );
        spec.user = self.postgres_user;
        let cwd = if cwd.exists() { cwd } else { &self.plan.dir };
        spec.cwd = cwd.to_path_buf();
        let mut child = spec
            .command(&log)?
            .spawn()
            .with_context(|| format!("failed to start {program}"))?;
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Some(status) = child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("{program} failed ({status}); see {}", log.display());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{program} did not finish within {READY_WAIT:?}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(TICK);
        }
    }

    fn node_spec(&self, node: &config::NodePlan) -> Spec {
        let plan = &self.plan;
        let mut spec = Spec::new(
            &node.name,
            &std::env::current_exe().unwrap_or_else(|_| PathBuf::from("onebox")),
            [
                "serve".to_string(),
                "--dns".into(),
                "off".into(),
                "--node-name".into(),
                node.name.clone(),
                "--zones".into(),
                plan.path("zones").display().to_string(),
                "--data".into(),
                plan.path(&node.name).display().to_string(),
                "--http".into(),
                node.http.to_string(),
                "--https".into(),
                node.https.to_string(),
                "--db".into(),
                plan.db_url(),
                "--metrics".into(),
                "off".into(),
            ],
            &plan.dir,
        );
        spec.ready_line = true;
        spec
    }

    /// Starts a `onebox serve` child and waits for its ready line.
    fn start_onebox(&mut self, name: &str, args: Vec<String>) -> anyhow::Result<serde_json::Value> {
        let exe = std::env::current_exe().context("cannot find the onebox binary")?;
        let mut spec = Spec::new(name, &exe, args, &self.plan.dir);
        spec.ready_line = true;
        let (_, line) = self.spawn(spec)?;
        self.ready_line_of(name, &line.context("no stdout pipe")?)
    }

    fn ready_line_of(
        &mut self,
        name: &str,
        line: &mpsc::Receiver<Option<String>>,
    ) -> anyhow::Result<serde_json::Value> {
        let log = self.plan.log(name);
        let deadline = Instant::now() + READY_WAIT;
        let got = loop {
            match line.recv_timeout(TICK) {
                Err(mpsc::RecvTimeoutError::Timeout)
                    if Instant::now() < deadline && !stop_requested() => {}
                other => break other,
            }
        };
        match got {
            Ok(Some(text)) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{name} printed {text:?}, not a ready line; see {}",
                    log.display()
                )
            }),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!("{name} exited before it was ready; see {}", log.display())
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                bail!(
                    "{name} was not ready within {READY_WAIT:?}; see {}",
                    log.display()
                )
            }
        }
    }

    /// Polls `ready` until it holds; fails if the child `name` exits meanwhile.
    fn wait(
        &mut self,
        name: &str,
        what: &str,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WAIT;
        let log = self.plan.log(name);
        loop {
            if ready() {
                return Ok(());
            }
            if stop_requested() {
                bail!("stopped by a signal while waiting for {what}");
            }
            if let Some(proc) = self.procs.iter_mut().find(|p| p.name == name)
                && let Some(status) = proc.child.try_wait()?
            {
                bail!(
                    "{name} exited ({status}) while waiting for {what}; see {}",
                    log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "gave up waiting {READY_WAIT:?} for {what}; see {}",
                    log.display()
                );
            }
            std::thread::sleep(TICK);
        }
    }

    /// Starts a child and keeps it; returns its pid and, for onebox, the
    /// channel its ready line arrives on.
    fn spawn(
        &mut self,
        spec: Spec,
    ) -> anyhow::Result<(u32, Option<mpsc::Receiver<Option<String>>>)> {
        let log = self.plan.log(&spec.name);
        let mut child = spec.command(&log)?.spawn().with_context(|| {
            format!("failed to start {} ({})", spec.name, spec.program.display())
        })?;
        let pid = child.id();
        tracing::info!("started {} (pid {pid}); log {}", spec.name, log.display());
        let line = child.stdout.take().map(|stdout| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut first = String::new();
                let got = reader.read_line(&mut first).is_ok_and(|n| n > 0);
                let _ = tx.send(got.then(|| first.trim_end().to_string()));
                // Keep the pipe open and drained: serve prints nothing more.
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
            rx
        });
        self.procs.push(Proc {
            name: spec.name.clone(),
            child,
            stop: spec.stop,
            restart: None,
        });
        Ok((pid, line))
    }

    fn pids(&self) -> BTreeMap<String, u32> {
        self.procs
            .iter()
            .map(|p| (p.name.clone(), p.child.id()))
            .collect()
    }

    /// Until SIGTERM or SIGINT: restart nodes that exit, note other exits.
    fn watch(&mut self, mut state: State) {
        loop {
            std::thread::sleep(TICK);
            if stop_requested() {
                tracing::info!("stopping the cluster");
                return;
            }
            let mut changed = false;
            for i in 0..self.procs.len() {
                let exited = match self.procs[i].child.try_wait() {
                    Ok(Some(status)) => Some(status),
                    _ => None,
                };
                let proc = &mut self.procs[i];
                let Some(restart) = proc.restart.as_mut() else {
                    if let Some(status) = exited {
                        tracing::warn!("{} exited ({status}); not restarted", proc.name);
                        if state.pids.remove(&proc.name).is_some() {
                            changed = true;
                        }
                    }
                    continue;
                };
                if let Some(status) = exited
                    && restart.due.is_none()
                {
                    // A node that keeps failing at once is retried ever more slowly.
                    if restart.started.elapsed() < Duration::from_secs(5) {
                        restart.backoff = (restart.backoff * 2).min(Duration::from_secs(8));
                    } else {
                        restart.backoff = Duration::from_millis(250);
                    }
                    tracing::warn!(
                        "{} exited ({status}); restarting in {:?}",
                        proc.name,
                        restart.backoff
                    );
                    restart.due = Some(Instant::now() + restart.backoff);
                }
                if restart.due.is_some_and(|due| Instant::now() >= due) {
                    let log = self.plan.log(&restart.spec.name);
                    match restart
                        .spec
                        .command(&log)
                        .and_then(|mut c| c.spawn().context("spawn"))
                    {
                        Ok(mut child) => {
                            if let Some(stdout) = child.stdout.take() {
                                std::thread::spawn(move || {
                                    let _ = std::io::copy(
                                        &mut BufReader::new(stdout),
                                        &mut std::io::sink(),
                                    );
                                });
                            }
                            tracing::info!("restarted {} (pid {})", proc.name, child.id());
                            state.pids.insert(proc.name.clone(), child.id());
                            proc.child = child;
                            restart.started = Instant::now();
                            restart.due = None;
                            changed = true;
                        }
                        Err(err) => {
                            tracing::error!("failed to restart {}: {err:#}", proc.name);
                            restart.due = Some(Instant::now() + restart.backoff);
                        }
                    }
                }
            }
            if changed && let Err(err) = state.write() {
                tracing::error!("{err:#}");
            }
        }
    }

    /// Stops every child, in tiers: the balancer first (no new traffic), then the
    /// nodes, the DNS servers, and PostgreSQL last (the replica before the primary).
    fn stop_all(&mut self) {
        let tiers: [&[&str]; 5] = [
            &["haproxy"],
            &[],
            &["knot", "nsd", "dns-primary"],
            &["pg-replica"],
            &["pg-primary"],
        ];
        for (i, tier) in tiers.iter().enumerate() {
            let in_tier = |p: &Proc| {
                if i == 1 {
                    p.restart.is_some()
                } else {
                    tier.contains(&p.name.as_str())
                }
            };
            let mut stopping: Vec<Proc> = Vec::new();
            let mut kept = Vec::new();
            for proc in self.procs.drain(..) {
                if in_tier(&proc) {
                    stopping.push(proc);
                } else {
                    kept.push(proc);
                }
            }
            self.procs = kept;
            for proc in &stopping {
                signal(proc.child.id(), proc.stop);
            }
            let deadline = Instant::now() + STOP_WAIT;
            for mut proc in stopping {
                loop {
                    match proc.child.try_wait() {
                        Ok(Some(_)) | Err(_) => break,
                        Ok(None) if Instant::now() > deadline => {
                            tracing::warn!(
                                "{} did not stop within {STOP_WAIT:?}; killing it",
                                proc.name
                            );
                            let _ = proc.child.kill();
                            let _ = proc.child.wait();
                            break;
                        }
                        Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
                tracing::info!("stopped {}", proc.name);
            }
        }
        // Anything not in a tier (a name added later) goes last.
        for mut proc in self.procs.drain(..) {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

impl Spec {
    fn new<I, S>(name: &str, program: &Path, args: I, cwd: &Path) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Spec {
            name: name.to_string(),
            program: program.to_path_buf(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: cwd.to_path_buf(),
            user: None,
            stop: libc::SIGTERM,
            ready_line: false,
        }
    }

    /// The command, its output appended to `log`, tied to the supervisor's life.
    fn command(&self, log: &Path) -> anyhow::Result<Command> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("failed to open {}", log.display()))?;
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            // Each onebox child gets its database on its command line; one the
            // user exported for their own serve must not leak into the DNS primary.
            .env_remove("ONEBOX_DB")
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .stderr(out.try_clone()?);
        if self.ready_line {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(out);
        }
        if let Some((uid, gid)) = self.user {
            command.uid(uid).gid(gid);
        }
        let parent = std::process::id() as libc::pid_t;
        let death = self.stop;
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and
        // exec. PR_SET_PDEATHSIG is set after the uid change (which would clear
        // it), and a supervisor that died before this point is caught by
        // comparing the parent's pid.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, death as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("the supervisor is gone"));
                }
                Ok(())
            });
        }
        Ok(command)
    }
}

/// Creates the cluster's folders. Under root, PostgreSQL runs as the
/// `postgres` user, which must be able to enter every folder on the way to its
/// own (read nothing, list nothing: `o+x` only) and own its data folders.
fn prepare_folders(plan: &Plan, postgres: Option<(u32, u32)>) -> anyhow::Result<()> {
    for sub in ["logs", "zones", "knot", "nsd", "dns-primary"] {
        let dir = plan.path(sub);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
    }
    std::fs::set_permissions(&plan.dir, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("failed to set the mode of {}", plan.dir.display()))?;
    let Some((uid, gid)) = postgres else {
        return Ok(());
    };
    for dir in plan.dir.ancestors().skip(1) {
        let meta =
            std::fs::metadata(dir).with_context(|| format!("failed to read {}", dir.display()))?;
        if meta.permissions().mode() & 0o001 == 0 {
            bail!(
                "PostgreSQL runs as the postgres user, which cannot enter {}: chmod o+x {} (or choose another --data)",
                dir.display(),
                dir.display()
            );
        }
    }
    for sub in ["pg-primary", "pg-replica"] {
        let dir = plan.path(sub);
        if !dir.exists() {
            std::fs::create_dir(&dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).with_context(|| {
                format!("failed to give {} to the postgres user", dir.display())
            })?;
        }
    }
    Ok(())
}

/// Every engine's configuration, regenerated on each `up` from the plan. The
/// zone is written only once: after that the primary's journal holds the
/// changes made by UPDATE, and the file must stay the one they apply to.
fn write_configs(plan: &Plan) -> anyhow::Result<()> {
    let zone = plan.path("zones").join(format!("{}.zone", config::ZONE));
    let files = [
        (plan.path("haproxy.cfg"), config::haproxy_cfg(plan)),
        (plan.path("knot.conf"), config::knot_conf(plan)),
        (plan.path("nsd.conf"), config::nsd_conf(plan)),
        (plan.path("postgresql.conf"), config::postgresql_conf(plan)),
        (plan.path("pg_hba.conf"), config::pg_hba_conf()),
    ];
    for (path, text) in files {
        std::fs::write(&path, text)
            .with_context(|| format!("failed to write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
    }
    if !zone.exists() {
        std::fs::write(&zone, config::zone(plan))
            .with_context(|| format!("failed to write {}", zone.display()))?;
    }
    Ok(())
}

/// Adds `text` at the end of a PostgreSQL configuration file.
fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .with_context(|| format!("failed to add to {}", path.display()))
}

/// Runs SQL on one server with psql; its unaligned, tuples-only output.
pub(crate) fn psql(
    engines: &Engines,
    addr: SocketAddr,
    db: &str,
    sql: &str,
) -> anyhow::Result<String> {
    let url = format!("postgres://postgres@{addr}/{db}?connect_timeout=2");
    let output = super::engines::psql_command(&engines.pg_bin, &url, sql)
        .stdin(Stdio::null())
        .output()
        .context("failed to run psql")?;
    if !output.status.success() {
        bail!(
            "psql on {addr}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The postgres user's (uid, gid) when running as root (PostgreSQL refuses
/// root); `None` otherwise, when everything runs as the caller.
fn postgres_user() -> anyhow::Result<Option<(u32, u32)>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    // SAFETY: getpwnam with a NUL-terminated name; the record is copied out
    // before any other call could overwrite it.
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if entry.is_null() {
        bail!(
            "running as root, PostgreSQL needs the postgres user, which does not exist (apt-get install postgresql creates it)"
        );
    }
    // SAFETY: non-null, points at libc's static passwd record.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some((uid, gid)))
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// Set by the signal handler; the watch loop reads it every tick.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(sig: libc::c_int) {
    if sig != libc::SIGHUP {
        STOP.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// SIGTERM and SIGINT ask the supervisor to stop the cluster; SIGHUP (a closed
/// terminal) is ignored by a handler rather than SIG_IGN, because an ignored
/// signal would stay ignored in every child. A handler, not a blocked mask:
/// the log writer's thread already runs, and a signal it did not block would
/// kill the supervisor without stopping anything.
fn install_stop_handler() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_stop_signal as *const () as libc::sighandler_t);
        }
    }
}

fn stop_requested() -> bool {
    STOP.load(std::sync::atomic::Ordering::SeqCst)
}

fn redirect_stdout_to_null() {
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a valid open descriptor.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
}
