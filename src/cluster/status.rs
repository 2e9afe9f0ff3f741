//! `cluster status` and `cluster down`: read `state.json`, then ask each engine
//! itself: HAProxy's stats socket for its view of the nodes (UP/DOWN, requests
//! served), each DNS server for its SOA serial, each PostgreSQL server for its
//! role. `down` signals the supervisor and checks that nothing is left.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use super::config;
use super::engines::Engines;
use super::supervisor::{State, psql, signal};
use crate::cli::{ClusterDataArgs, ClusterStatusArgs};

/// How long `down` waits for the supervisor to stop everything.
const DOWN_WAIT: Duration = Duration::from_secs(60);

/// The SOA serial `addr` serves for the cluster's zone.
pub(crate) fn serial(addr: SocketAddr) -> anyhow::Result<u32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start a runtime")?;
    Ok(runtime.block_on(crate::dns::probe::soa_serial(
        addr,
        config::ZONE,
        Duration::from_secs(1),
    ))?)
}

/// One server line of HAProxy's `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerStat {
    pub(crate) backend: String,
    pub(crate) server: String,
    /// UP, DOWN, MAINT, or "UP 1/2" while a state change is being confirmed.
    pub(crate) status: String,
    /// Sessions (in HTTP mode: requests) sent to it since HAProxy started.
    pub(crate) stot: u64,
}

/// Asks HAProxy's stats socket for every server's state and counters.
pub(crate) fn haproxy_stats(sock: &Path) -> std::io::Result<Vec<ServerStat>> {
    let mut stream = UnixStream::connect(sock)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"show stat\n")?;
    let mut csv = String::new();
    stream.read_to_string(&mut csv)?;
    Ok(parse_stats(&csv))
}

/// The CSV of `show stat`: a `# pxname,svname,…` header, then one line per
/// frontend, server and backend. Only servers are kept.
fn parse_stats(csv: &str) -> Vec<ServerStat> {
    let mut lines = csv.lines();
    let Some(header) = lines.next().and_then(|h| h.strip_prefix("# ")) else {
        return Vec::new();
    };
    let columns: Vec<&str> = header.split(',').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(px), Some(sv), Some(st), Some(stot)) =
        (col("pxname"), col("svname"), col("status"), col("stot"))
    else {
        return Vec::new();
    };
    lines
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let server = *fields.get(sv)?;
            if server == "FRONTEND" || server == "BACKEND" {
                return None;
            }
            Some(ServerStat {
                backend: fields.get(px)?.to_string(),
                server: server.to_string(),
                status: fields.get(st)?.to_string(),
                stot: fields.get(stot)?.parse().unwrap_or(0),
            })
        })
        .collect()
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn read_state(args: &ClusterDataArgs) -> anyhow::Result<(std::path::PathBuf, Option<State>)> {
    let dir = std::path::absolute(&args.data)
        .with_context(|| format!("bad folder {}", args.data.display()))?
        .join("cluster");
    let state = State::read(&dir)?;
    Ok((dir, state))
}

/// `onebox cluster status`.
pub(crate) fn run(args: ClusterStatusArgs) -> anyhow::Result<ExitCode> {
    let (dir, state) = read_state(&args.folder)?;
    let Some(state) = state else {
        bail!(
            "no cluster in {} (start one with onebox cluster up)",
            dir.display()
        );
    };
    let report = report(&state);
    if args.json {
        println!("{report}");
    } else {
        print!("{}", text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

fn report(state: &State) -> serde_json::Value {
    let plan = &state.plan;
    let pid = |name: &str| state.pids.get(name).copied();
    let up = |name: &str| pid(name).is_some_and(alive);
    let stats = haproxy_stats(&plan.path("haproxy.sock")).unwrap_or_default();
    let of = |backend: &str, server: &str| {
        stats
            .iter()
            .find(|s| s.backend == backend && s.server == server)
    };
    let total: u64 = stats.iter().map(|s| s.stot).sum();
    let nodes: Vec<_> = plan
        .nodes
        .iter()
        .map(|node| {
            let http = of("nodes_http", &node.name);
            let https = of("nodes_https", &node.name);
            let requests = http.map_or(0, |s| s.stot) + https.map_or(0, |s| s.stot);
            json!({
                "name": node.name,
                "http": node.http,
                "https": node.https,
                "pid": pid(&node.name),
                "alive": up(&node.name),
                "health": http.map_or("unknown", |s| s.status.as_str()),
                "health_https": https.map_or("unknown", |s| s.status.as_str()),
                "requests": requests,
                "share": if total == 0 { 0.0 } else { requests as f64 / total as f64 },
            })
        })
        .collect();
    let dns: Vec<_> = [
        ("dns-primary", plan.dns),
        ("knot", plan.knot()),
        ("nsd", plan.nsd()),
    ]
    .into_iter()
    .map(|(name, addr)| {
        json!({
            "name": name,
            "addr": addr,
            "pid": pid(name),
            "alive": up(name),
            "serial": serial(addr).ok(),
        })
    })
    .collect();
    let engines = Engines::find().ok();
    let postgres: Vec<_> = [
        ("pg-primary", plan.pg_primary()),
        ("pg-replica", plan.pg_replica()),
    ]
    .into_iter()
    .map(|(name, addr)| {
        let role = engines
            .as_ref()
            .and_then(|e| psql(e, addr, "postgres", "SELECT pg_is_in_recovery()").ok())
            .map(|r| if r == "t" { "replica" } else { "primary" });
        json!({
            "name": name,
            "addr": addr,
            "pid": pid(name),
            "alive": up(name),
            "role": role.unwrap_or("down"),
        })
    })
    .collect();
    json!({
        "running": alive(state.supervisor),
        "supervisor_pid": state.supervisor,
        "lb": {
            "http": plan.http,
            "https": plan.https,
            "stats": plan.stats_url(),
            "pid": pid("haproxy"),
            "alive": up("haproxy"),
        },
        "nodes": nodes,
        "dns": dns,
        "postgres": postgres,
    })
}

/// The report as a table for a terminal.
fn text(report: &serde_json::Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let lb = &report["lb"];
    let _ = writeln!(
        out,
        "supervisor  pid {}  {}",
        report["supervisor_pid"],
        running(&report["running"])
    );
    let _ = writeln!(
        out,
        "haproxy     {} {}  pid {}  {}  stats {}",
        lb["http"].as_str().unwrap_or("-"),
        lb["https"].as_str().unwrap_or("-"),
        pid_text(lb),
        running(&lb["alive"]),
        lb["stats"].as_str().unwrap_or("-"),
    );
    table(
        &mut out,
        "node",
        "haproxy  requests  share",
        &report["nodes"],
        |node| {
            format!(
                "{:<8} {:>8}  {:>4.0} %",
                node["health"].as_str().unwrap_or("-"),
                node["requests"],
                node["share"].as_f64().unwrap_or(0.0) * 100.0
            )
        },
    );
    table(&mut out, "dns", "serial", &report["dns"], |server| {
        server["serial"]
            .as_u64()
            .map_or("no answer".into(), |s| s.to_string())
    });
    table(
        &mut out,
        "postgres",
        "role",
        &report["postgres"],
        |server| server["role"].as_str().unwrap_or("-").to_string(),
    );
    out
}

fn pid_text(row: &serde_json::Value) -> String {
    row["pid"].as_u64().map_or("-".into(), |p| p.to_string())
}

fn running(alive: &serde_json::Value) -> &'static str {
    if *alive == true { "running" } else { "gone" }
}

/// One section of the table: name, address, pid, process state, then `last`.
fn table(
    out: &mut String,
    what: &str,
    heading: &str,
    rows: &serde_json::Value,
    last: impl Fn(&serde_json::Value) -> String,
) {
    use std::fmt::Write as _;
    let _ = writeln!(
        out,
        "\n{what:<11} {:<19} {:<8} {:<8} {heading}",
        "address", "pid", "process"
    );
    for row in rows.as_array().into_iter().flatten() {
        let address = row.get("addr").or_else(|| row.get("http"));
        let _ = writeln!(
            out,
            "{:<11} {:<19} {:<8} {:<8} {}",
            row["name"].as_str().unwrap_or("-"),
            address.and_then(|a| a.as_str()).unwrap_or("-"),
            pid_text(row),
            running(&row["alive"]),
            last(row)
        );
    }
}

/// Whether something still listens on `addr` (TCP, and UDP when asked): a bind
/// that fails with "address in use" means it does.
pub(super) fn listening(addr: SocketAddr, udp: bool) -> bool {
    TcpListener::bind(addr).is_err() || (udp && UdpSocket::bind(addr).is_err())
}

/// `onebox cluster down`.
pub(crate) fn down(args: ClusterDataArgs) -> anyhow::Result<ExitCode> {
    let (dir, state) = read_state(&args)?;
    let Some(state) = state else {
        println!("no cluster running in {}", dir.display());
        return Ok(ExitCode::SUCCESS);
    };
    if alive(state.supervisor) {
        signal(state.supervisor, libc::SIGTERM);
        let deadline = Instant::now() + DOWN_WAIT;
        while alive(state.supervisor) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(state.supervisor) {
            tracing::warn!(
                "the supervisor (pid {}) did not stop within {DOWN_WAIT:?}; killing it",
                state.supervisor
            );
            signal(state.supervisor, libc::SIGKILL);
        }
    }
    // The supervisor stops its children; anything left (it was killed, or a
    // child hung) is killed here, so `down` always leaves nothing behind.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = state.pids.iter().filter(|(_, pid)| alive(**pid)).collect();
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for (name, pid) in &left {
                tracing::warn!("{name} (pid {pid}) is still running; killing it");
                signal(**pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut still: Vec<String>;
    loop {
        still = state
            .plan
            .listeners()
            .into_iter()
            .filter(|(_, addr, udp)| listening(*addr, *udp))
            .map(|(name, addr, _)| format!("{name} {addr}"))
            .collect();
        if still.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(State::file(&dir));
    if !still.is_empty() {
        bail!(
            "the cluster's processes are gone but these addresses are still in use (by something else?): {}",
            still.join(", ")
        );
    }
    println!(
        "cluster stopped: {} processes, no listener left",
        state.pids.len() + 1
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_server_lines_of_show_stat_are_kept() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status\n\
            http,FRONTEND,,,0,1,4096,7,0,0,0,0,0,,,,,OPEN\n\
            nodes_http,node1,0,0,0,1,,4,0,0,,0,,0,0,0,0,UP\n\
            nodes_http,node2,0,0,0,1,,3,0,0,,0,,0,0,0,0,DOWN\n\
            nodes_http,BACKEND,0,0,0,1,410,7,0,0,0,0,,0,0,0,0,UP\n";
        let stats = parse_stats(csv);
        assert_eq!(stats.len(), 2);
        assert_eq!(stats[0].server, "node1");
        assert_eq!(stats[0].stot, 4);
        assert_eq!(stats[1].status, "DOWN");
    }
}
