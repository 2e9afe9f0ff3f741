//! `onebox serve`: the one place that binds sockets and catches signals.
//!
//! It loads the zones, binds every listener (so port 0 works and a busy port is
//! reported before anything starts), hands each server its sockets and one shutdown
//! token, prints the JSON ready line on stdout, then turns SIGHUP into a zone reload
//! and SIGTERM/SIGINT into a graceful stop: stop accepting, let in-flight requests
//! finish, close the database last.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::{TcpListener, UdpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::ca::{self, Ca, Certificates};
use crate::cli::ServeArgs;
use crate::control::{self, Maintenance};
use crate::db::Db;
use crate::dns::{self, Cidr, Engine, Zones};
use crate::live::Live;
use crate::web::{self, WebConfig};

/// How long a graceful stop may wait for in-flight work.
const DRAIN: Duration = Duration::from_secs(10);
/// The DNS UDP socket's receive buffer (the kernel default is about 208 KiB).
const UDP_RECEIVE_BUFFER: usize = 2 * 1024 * 1024;
/// How often zone files are checked for edits.
const WATCH_EVERY: Duration = Duration::from_millis(500);

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(serve(args));
    // Everything that matters has finished; don't wait for idle worker threads.
    runtime.shutdown_timeout(Duration::from_millis(100));
    result?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let transfer: Vec<Cidr> = args
        .allow_transfer
        .iter()
        .map(|text| text.parse::<Cidr>().map_err(anyhow::Error::msg))
        .collect::<Result<_, _>>()
        .context("bad --allow-transfer")?;
    let zones = Zones::load(&args.zones, !transfer.is_empty())?;
    for line in zones.describe() {
        tracing::info!("zone {line}");
    }

    // A listener given port 0 means a test fixture: the listeners not named on the
    // command line then pick free ports too, so parallel fixtures never collide.
    let fixture = [Some(args.dns), args.http, args.https, args.dot]
        .iter()
        .flatten()
        .any(|addr| addr.port() == 0);

    let (udp, tcp) = bind_dns(args.dns).await?;
    let dns_addr = udp.local_addr()?;
    let http_listener = bind_web(&zones, args.http, 8080, "--http", fixture).await?;
    let http_addr = http_listener.local_addr()?;
    // HTTPS sits beside HTTP: on the address --http names when it names one.
    let https_addr = args.https.or_else(|| {
        args.http
            .map(|http| SocketAddr::new(http.ip(), if fixture { 0 } else { 8443 }))
    });
    let https_listener = bind_web(&zones, https_addr, 8443, "--https", fixture).await?;
    let https_addr = https_listener.local_addr()?;

    // The database first: its lock is what tells us no other onebox uses this
    // data folder, before we touch anything else in it.
    let db = if args.ephemeral {
        Db::in_memory()?
    } else {
        Db::open(&args.data)?
    };

    // The CA lives with the data; an ephemeral run keeps it in a temporary folder
    // that goes away at exit, so clients can still be pointed at it.
    let ca_dir = if args.ephemeral {
        TempDir::new(&format!("onebox-{}", std::process::id()))?
    } else {
        TempDir::keep(args.data.clone())
    };
    let certs = Certificates::new(
        Ca::load_or_create(ca_dir.path(), &zones.names())?,
        certificate_names(&zones),
    )?;
    let (control_listener, control_path) = control::bind(ca_dir.path())?;
    let maintenance = Maintenance::default();
    let dot_addr = args
        .dot
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], if fixture { 0 } else { 8853 })));
    let dot_listener = TcpListener::bind(dot_addr)
        .await
        .map_err(|e| bind_error("TCP", dot_addr, &e, "--dot 127.0.0.1:8853"))?;
    let dot_addr = dot_listener.local_addr()?;

    let shutdown = CancellationToken::new();
    let live = Live::new();
    let engine = Engine::new(zones.clone(), transfer).with_live(live.clone());
    let dot_config = certs.server_config(&[b"dot"])?;
    let dns_task = tokio::spawn(dns::server::run(
        engine.clone(),
        udp,
        tcp,
        Some((dot_listener, dot_config)),
        dns::server::Limits::default(),
        rrl_config(&args)?,
        shutdown.child_token(),
    ));
    let control_task = tokio::spawn(control::serve(
        control_listener,
        maintenance.clone(),
        shutdown.child_token(),
    ));
    let renew_task = {
        let zones = zones.clone();
        tokio::spawn(ca::renew_loop(
            certs.clone(),
            move || certificate_names(&zones),
            shutdown.child_token(),
        ))
    };
    let web_config = WebConfig {
        zones: zones.clone(),
        db: db.clone(),
        site_dir: args.site.clone(),
        dns_addr,
        session_ttl: crate::app::session_ttl_from_env()?,
        engine,
        live,
        maintenance,
        https: Some((https_listener, certs.server_config(&[b"h2", b"http/1.1"])?)),
    };
    let web_task = tokio::spawn(web::serve(
        http_listener,
        web_config,
        shutdown.child_token(),
    ));

    // Watch signals before announcing readiness: a supervisor may send SIGTERM or
    // SIGHUP the moment it reads the ready line.
    let signals = Signals::new()?;
    let mut ready = serde_json::json!({
        "ready": true,
        "pid": std::process::id(),
        "dns": dns_addr.to_string(),
        "http": http_addr.to_string(),
        "https": https_addr.to_string(),
        "dot": dot_addr.to_string(),
        "ca": certs.ca().path().display().to_string(),
        "control": control_path.display().to_string(),
        "zones": zones.apex_addresses().iter().map(|(z, _)| z.clone()).collect::<Vec<_>>(),
    });
    if args.ephemeral {
        ready["data"] = serde_json::Value::Null;
    } else {
        ready["data"] = args.data.display().to_string().into();
    }
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{ready}")?;
        stdout.flush()?;
    }
    tracing::info!("dns: listening on {dns_addr} (udp, tcp) and {dot_addr} (dns over tls)");

    wait_for_stop(&zones, signals).await?;

    tracing::info!("stopping: no new connections, finishing requests in flight");
    shutdown.cancel();
    let drained = tokio::time::timeout(DRAIN, async {
        if let Ok(Err(e)) = web_task.await {
            tracing::error!("web server: {e:#}");
        }
        let _ = dns_task.await;
        let _ = renew_task.await;
        let _ = control_task.await;
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some requests were still running after {DRAIN:?}; stopping anyway");
    }
    // Last: every acknowledged write is already committed, so this only releases the file.
    db.close();
    let _ = std::fs::remove_file(&control_path);
    drop(ca_dir);
    tracing::info!("stopped");
    Ok(())
}

/// The names that need certificates: each zone (its leaf also covers `*.zone`),
/// plus every site name deeper than one label below its zone, which `*.zone`
/// does not cover (`shop.eu.foobar.com`).
fn certificate_names(zones: &Zones) -> Vec<String> {
    let mut names = zones.names();
    for host in zones.site_hosts() {
        let covered = names.iter().any(|zone| {
            host == *zone
                || host
                    .strip_suffix(&format!(".{zone}"))
                    .is_some_and(|label| !label.contains('.'))
        });
        if !covered {
            names.push(host);
        }
    }
    names
}

fn rrl_config(args: &ServeArgs) -> anyhow::Result<dns::server::rrl::RrlConfig> {
    let mut config = dns::server::rrl::RrlConfig {
        rate: args.rrl_rate,
        slip: args.rrl_slip,
        ..Default::default()
    };
    if !args.rrl_exempt.is_empty() {
        config.exempt = args
            .rrl_exempt
            .iter()
            .filter(|text| text.as_str() != "none")
            .map(|text| text.parse::<Cidr>().map_err(anyhow::Error::msg))
            .collect::<Result<_, _>>()
            .context("bad --rrl-exempt")?;
    }
    Ok(config)
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            hup: signal(SignalKind::hangup()).context("failed to watch SIGHUP")?,
            term: signal(SignalKind::terminate()).context("failed to watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("failed to watch SIGINT")?,
        })
    }
}

/// Runs reloads until SIGTERM or SIGINT.
async fn wait_for_stop(zones: &Zones, signals: Signals) -> anyhow::Result<()> {
    let Signals {
        mut hup,
        mut term,
        mut int,
    } = signals;
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading zones");
                let zones = zones.clone();
                let _ = tokio::task::spawn_blocking(move || zones.reload(false)).await;
            }
            _ = watch.tick() => {
                let zones = zones.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    if zones.changed_on_disk() {
                        zones.reload(true);
                    }
                }).await;
            }
        }
    }
}

/// DNS listens on one port for UDP and TCP. With port 0 the kernel picks the UDP
/// port, and TCP must get the same one; if another program holds it for TCP, try again.
async fn bind_dns(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_error("UDP", addr, &e, "--dns 127.0.0.1:1053"))?;
        let udp_addr = udp.local_addr()?;
        // A burst of queries must not overflow the kernel's receive queue while the
        // workers are busy; NSD asks for the same. The kernel may grant less.
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECEIVE_BUFFER);
        match TcpListener::bind(udp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => return Err(bind_error("TCP", udp_addr, &e, "--dns 127.0.0.1:1053")),
        }
    }
    bail!(
        "failed to find a free port for DNS on {} (UDP and TCP)",
        addr.ip()
    )
}

/// The web server listens where the apex A record points (HTTP on port 8080,
/// HTTPS on 8443) unless told otherwise.
async fn bind_web(
    zones: &Zones,
    given: Option<SocketAddr>,
    default_port: u16,
    flag: &str,
    fixture: bool,
) -> anyhow::Result<TcpListener> {
    let hint = format!("{flag} 127.0.0.1:{default_port}");
    if let Some(addr) = given {
        return TcpListener::bind(addr)
            .await
            .map_err(|e| bind_error("TCP", addr, &e, &hint));
    }
    let Some((zone, ip)) = zones.apex_addresses().into_iter().next() else {
        bail!(
            "no zone has an A or AAAA record at its apex, so there is no address to serve the site on: add one, or give {flag} ADDR"
        );
    };
    let addr = SocketAddr::new(ip, if fixture { 0 } else { default_port });
    let scheme = flag.trim_start_matches("--");
    let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            tracing::info!(
                "{scheme}: {zone} {rtype} {ip} → listening on {}",
                listener.local_addr()?
            );
            Ok(listener)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => bail!(
            "{zone} {rtype} {ip} is not an address of this machine, so the web server cannot listen where DNS sends visitors: change the record, or give {flag} ADDR"
        ),
        Err(e) => Err(bind_error("TCP", addr, &e, &hint)),
    }
}

fn bind_error(proto: &str, addr: SocketAddr, err: &std::io::Error, hint: &str) -> anyhow::Error {
    let reason = match err.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::AddrInUse => "address already in use".to_string(),
        std::io::ErrorKind::AddrNotAvailable => "address not available on this machine".to_string(),
        _ => err.to_string(),
    };
    anyhow::anyhow!("failed to bind {proto} {addr}: {reason} (try {hint})")
}

/// A folder that is removed on drop when it was made for this run only.
struct TempDir {
    path: std::path::PathBuf,
    remove: bool,
}

impl TempDir {
    /// A new private folder: a random suffix (the pid alone repeats across
    /// containers and PID namespaces), created fresh (never reused), mode 0700.
    fn new(prefix: &str) -> anyhow::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        for _ in 0..16 {
            let path =
                std::env::temp_dir().join(format!("{prefix}-{:016x}", rand::random::<u64>()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path, remove: true }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("failed to create {}", path.display()));
                }
            }
        }
        bail!(
            "failed to create a private folder in {}",
            std::env::temp_dir().display()
        )
    }

    fn keep(path: std::path::PathBuf) -> Self {
        Self {
            path,
            remove: false,
        }
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
