//! `onebox cluster up|status|down`: the distributed version of the diagram on
//! this machine, on real engines (HAProxy, onebox nodes, Knot and NSD as DNS
//! secondaries, PostgreSQL with a streaming replica), as one process tree.
//!
//! It lives in the binary, not a script, because it reuses what the binary
//! already has: onebox's own CA (for the nodes' certificates), its DNS probe
//! (for the secondaries' serials), its zone and its ready line. `up` starts a
//! supervisor in a session of its own (`supervisor`), relays its one JSON line
//! and returns; `status` and `down` read the state it leaves (`status`). Every
//! engine's configuration is generated in `config` and kept in `DATA/cluster/`.

pub mod config;
pub(crate) mod engines;
mod status;
mod supervisor;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::{ClusterAction, ClusterArgs, ClusterUpArgs};

pub use engines::{pg_bin, psql_command};

/// How long `up` waits for the whole cluster (initdb and a base backup
/// included) before it gives up and stops what started.
const UP_WAIT: Duration = Duration::from_secs(300);

pub fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        ClusterAction::Up(args) => up(args),
        ClusterAction::Status(args) => status::run(args),
        ClusterAction::Down(args) => status::down(args),
        ClusterAction::Supervise(args) => supervisor::run(args),
    }
}

/// `DATA/cluster` as an absolute path (children run elsewhere), created.
pub(crate) fn cluster_dir(data: &Path) -> anyhow::Result<PathBuf> {
    let dir = std::path::absolute(data)
        .with_context(|| format!("bad folder {}", data.display()))?
        .join("cluster");
    std::fs::create_dir_all(dir.join("logs"))
        .with_context(|| format!("failed to create {}", dir.display()))?;
    Ok(dir)
}

/// `onebox cluster up`: check the engines, start the supervisor in its own
/// session, relay its ready line.
fn up(args: ClusterUpArgs) -> anyhow::Result<ExitCode> {
    engines::Engines::find()?;
    let dir = cluster_dir(&args.data)?;
    if let Some(state) = supervisor::State::read(&dir)?
        && status::alive(state.supervisor)
    {
        bail!(
            "a cluster is already running from {} (supervisor pid {}): onebox cluster down --data {} first",
            dir.display(),
            state.supervisor,
            args.data.display()
        );
    }
    // Every address is checked before anything starts, so a busy port is one
    // clear message rather than an engine failing halfway through.
    let plan = config::Plan::new(dir.clone(), args.nodes, args.http, args.https, args.dns);
    let busy: Vec<String> = plan
        .listeners()
        .into_iter()
        .filter(|(_, addr, udp)| status::listening(*addr, *udp))
        .map(|(name, addr, _)| format!("{addr} ({name})"))
        .collect();
    if !busy.is_empty() {
        bail!(
            "already in use, so the cluster cannot listen there: {}",
            busy.join(", ")
        );
    }
    let log = dir.join("logs").join("supervisor.log");
    let err = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("failed to open {}", log.display()))?;
    let exe = std::env::current_exe().context("cannot find the onebox binary")?;
    let data = std::path::absolute(&args.data).context("bad --data")?;
    let mut command = Command::new(exe);
    command
        .args([
            "cluster",
            "supervise",
            "--nodes",
            &args.nodes.to_string(),
            "--data",
        ])
        .arg(&data)
        .args(["--http", &args.http.to_string()])
        .args(["--https", &args.https.to_string()])
        .args(["--dns", &args.dns.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    // SAFETY: setsid is async-signal-safe. A session of its own: the cluster
    // outlives this command and a ^C or a closed terminal here.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .context("failed to start the cluster supervisor")?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(UP_WAIT) {
        Ok(line) => line,
        Err(_) => {
            supervisor::signal(child.id(), libc::SIGTERM);
            let _ = child.wait();
            bail!(
                "the cluster was not ready within {UP_WAIT:?}; see {}",
                log.display()
            );
        }
    };
    let reply: serde_json::Value = match serde_json::from_str(line.trim()) {
        Ok(reply) => reply,
        Err(_) => {
            let _ = child.wait();
            bail!(
                "the cluster supervisor stopped before it was ready; see {}",
                log.display()
            );
        }
    };
    if reply["ready"] != true {
        let _ = child.wait();
        bail!(
            "cluster up failed: {}; everything started was stopped (logs in {})",
            reply["error"].as_str().unwrap_or("unknown error"),
            dir.join("logs").display()
        );
    }
    println!("{}", line.trim());
    Ok(ExitCode::SUCCESS)
}
