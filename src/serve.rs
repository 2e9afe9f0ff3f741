//! `onebox serve`: the one place that binds sockets and catches signals.
//!
//! It starts in four phases, and any failure in them ends the process before the
//! JSON ready line is printed, so nothing ever announces a server that is not there:
//!
//! 1. **validate**: every flag, path and zone file is checked; nothing is bound yet;
//! 2. **bind** every listener (so port 0 works and a busy port is reported before
//!    anything starts);
//! 3. **open the state**: the database, the CA and its certificates, the control socket;
//! 4. **spawn** the servers into one `JoinSet`, each with one shutdown token.
//!
//! Then it supervises, as mini-redis's `server::run` does: SIGHUP (or an edited
//! zone file) reloads the zones and re-issues certificates, SIGTERM/SIGINT stops
//! gracefully (stop accepting, let in-flight requests finish, close the database
//! last), and a server that ends on its own stops the process with its error.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::ca::{self, Ca, Certificates};
use crate::cli::{self, ServeArgs};
use crate::control::{self, Maintenance};
use crate::db::{Backend, Db, Store};
use crate::dns::{self, Cidr, Engine, Zones};
use crate::live::Live;
use crate::web::{self, WebConfig};

/// How long a graceful stop may wait for in-flight work.
const DRAIN: Duration = Duration::from_secs(10);
/// The DNS UDP socket's receive buffer (the kernel default is about 208 KiB).
const UDP_RECEIVE_BUFFER: usize = 2 * 1024 * 1024;
/// How often zone files are checked for edits.
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How often dropped log lines (stderr not read fast enough) are reported.
const DROPPED_LOGS_EVERY: Duration = Duration::from_secs(10);
/// Modes for what the data folder holds: argon2 hashes and the CA key are for the
/// owner only, whatever the umask; the CA certificate is public by nature.
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;
const PUBLIC_FILE: u32 = 0o644;

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
    let config = validate(args)?;
    let listeners = bind_all(&config).await?;
    let (state, control) = open_state(&config).await?;
    // The zones are their files plus the changes journaled since.
    {
        let _turn = state.journal.lock().await;
        state
            .journal
            .sync(&config.zones)
            .await
            .context("cannot apply the zone journal")?;
    }
    // Watch signals before announcing readiness: a supervisor may send SIGTERM or
    // SIGHUP the moment it reads the ready line.
    let signals = Signals::new()?;
    let (mut servers, addrs) = spawn_servers(&config, listeners, control, &state)?;
    print_ready(&config, &state, &addrs)?;
    match (addrs.dns, addrs.dot) {
        (Some(dns), Some(dot)) => {
            tracing::info!("dns: listening on {dns} (udp, tcp) and {dot} (dns over tls)");
        }
        _ => tracing::info!("dns: off (--dns off); the zones still name the site"),
    }
    #[cfg(debug_assertions)]
    servers.test_hook();

    let outcome = supervise(&config.zones, &state, &mut servers, signals).await;
    if let Err(e) = &outcome {
        tracing::error!("stopping: {e:#}");
    }
    stop(servers, state).await;
    outcome
}

/// Phase 1: everything the command line names, checked before anything binds.
struct Config {
    args: ServeArgs,
    zones: Zones,
    transfer: Vec<Cidr>,
    rrl: dns::server::rrl::RrlConfig,
    session_ttl: Duration,
    /// How long an HTTP connection may sit with no request in flight.
    http_idle: Duration,
    /// HTTPS sits beside HTTP: on the address --http names when it names one.
    https: Option<SocketAddr>,
    /// `--dns`; `None` with `--dns off`, and then no DNS is served in any form.
    dns: Option<SocketAddr>,
    /// `None` with `--dns off`.
    dot: Option<SocketAddr>,
    /// With a root zone: the toy Internet's servers and its resolver.
    internet: Option<Internet>,
    /// A listener given port 0 means a test fixture: the listeners not named on the
    /// command line then pick free ports too, so parallel fixtures never collide.
    fixture: bool,
    /// The database: `--db`, else redb in `--data` (in memory with `--ephemeral`).
    backend: Backend,
    /// The Prometheus listener; `None` with `--metrics off`.
    metrics: Option<SocketAddr>,
}

/// The toy Internet: which zones each address serves, and where the resolver goes.
struct Internet {
    /// Zone (`.`, `com`, `foobar.com`) → the addresses its NS glue gives.
    authorities: BTreeMap<String, Vec<IpAddr>>,
    /// `--resolver`; `None` means 127.0.0.53 on the DNS port.
    resolver: Option<SocketAddr>,
    /// The root servers' addresses: where resolution starts.
    hints: Vec<IpAddr>,
}

/// The resolver's default address. 127.0.0.53 is where systemd-resolved's stub
/// listens on most Linux machines: a resolver a stub talks to lives there, and
/// loopback keeps it private to this machine.
const RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);

fn validate(args: ServeArgs) -> anyhow::Result<Config> {
    let transfer = parse_networks(&args.allow_transfer).context("bad --allow-transfer")?;
    let rrl = rrl_config(&args)?;
    if let Some(site) = &args.site {
        check_folder(site).with_context(|| format!("--site {}", site.display()))?;
    }
    if !args.ephemeral && args.data.exists() && !args.data.is_dir() {
        bail!("--data {}: not a folder", args.data.display());
    }
    let backend = match &args.db {
        Some(spec) => Backend::parse(spec).context("bad --db")?,
        None if args.ephemeral => Backend::Memory,
        None => Backend::Redb(args.data.clone()),
    };
    let session_ttl = crate::app::session_ttl_from_env()?;
    let http_idle = web::conns::idle_timeout_from_env()?;
    // hickory may always send a transfer: the engine is the gate, admitting the
    // --allow-transfer networks and requests signed with our TSIG key.
    let zones = Zones::load(&args.stack.zones, true)?;
    for line in zones.describe() {
        tracing::info!("zone {line}");
    }
    let dns = args.dns.addr();
    let (fixture, https, dot) = default_addrs(&args, dns)?;
    let default_port = |port| if fixture { 0 } else { port };
    let internet = zones.has_root().then(|| Internet {
        authorities: zones.authorities(),
        resolver: args.resolver,
        hints: zones.root_hints().into_iter().map(|(_, ip)| ip).collect(),
    });
    if internet.is_none() && args.resolver.is_some() {
        bail!("--resolver needs a root zone among the zones (try --zones internet)");
    }
    if dns.is_none() {
        check_dns_off(&args, internet.is_some())?;
    }
    let metrics = metrics_config(args.metrics, default_port)?;
    crate::metrics::set_enabled(metrics.is_some());
    Ok(Config {
        internet,
        metrics,
        args,
        zones,
        transfer,
        rrl,
        session_ttl,
        http_idle,
        https,
        dns,
        dot,
        fixture,
        backend,
    })
}

/// The addresses a flag left out gets: HTTPS beside HTTP on 443 and DoT on
/// 853, or on port 0 when any flag asked for port 0, so a test fixture never
/// collides with a real server. Returns (fixture, https, dot).
fn default_addrs(
    args: &ServeArgs,
    dns: Option<SocketAddr>,
) -> anyhow::Result<(bool, Option<SocketAddr>, Option<SocketAddr>)> {
    let stack = &args.stack;
    let metrics_flag = args.metrics.and_then(cli::Listen::addr);
    let fixture = [dns, stack.http, stack.https, args.dot, metrics_flag]
        .iter()
        .flatten()
        .any(|addr| addr.port() == 0);
    let default_port = |port| if fixture { 0 } else { port };
    let https = stack.https.or_else(|| {
        stack
            .http
            .map(|http| SocketAddr::new(http.ip(), default_port(cli::DEFAULT_HTTPS_PORT)))
    });
    let dot = match args.dot {
        Some(addr) => Some(addr),
        None if dns.is_none() => None,
        None => {
            let default: SocketAddr = cli::DEFAULT_DOT.parse().context("bad DEFAULT_DOT")?;
            Some(SocketAddr::new(default.ip(), default_port(default.port())))
        }
    };
    Ok((fixture, https, dot))
}

/// `--dns off` makes a web node: flags that only mean something with DNS
/// served are refused rather than silently ignored.
fn check_dns_off(args: &ServeArgs, toy_internet: bool) -> anyhow::Result<()> {
    if toy_internet {
        bail!(
            "--dns off cannot serve the toy Internet: its zones include a root, whose servers are DNS (drop --dns off, or serve the website zones only)"
        );
    }
    let conflicting = [
        (args.dot.is_some(), "--dot"),
        (!args.notify.is_empty(), "--notify"),
        (args.resolver.is_some(), "--resolver"),
    ];
    if let Some((_, flag)) = conflicting.iter().find(|(given, _)| *given) {
        bail!("{flag} needs DNS, which --dns off switches off");
    }
    Ok(())
}

/// A folder the web server will serve: it must exist and be listable now, not
/// fail later inside a server that already said it was ready.
fn check_folder(dir: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir).context("cannot open the folder")?;
    if !meta.is_dir() {
        bail!("not a folder");
    }
    std::fs::read_dir(dir).context("cannot list the folder")?;
    Ok(())
}

fn parse_networks<'a>(texts: impl IntoIterator<Item = &'a String>) -> anyhow::Result<Vec<Cidr>> {
    texts
        .into_iter()
        .map(|text| text.parse::<Cidr>().map_err(anyhow::Error::msg))
        .collect()
}

/// Phase 2: every socket the ready line will name.
struct Listeners {
    /// `None` with `--dns off`.
    dns: Option<DnsListeners>,
    http: TcpListener,
    https: TcpListener,
    /// The toy Internet's other addresses: (address, its zones, UDP, TCP).
    authorities: Vec<(IpAddr, Vec<String>, UdpSocket, TcpListener)>,
    resolver: Option<(UdpSocket, TcpListener)>,
    metrics: Option<TcpListener>,
}

impl Listeners {
    /// Where the bound listeners ended up (port 0 picks one), for the ready line;
    /// the toy Internet's addresses are filled in as its servers start.
    fn addrs(&self) -> std::io::Result<Addrs> {
        Ok(Addrs {
            dns: self.dns.as_ref().map(|d| d.udp.local_addr()).transpose()?,
            http: self.http.local_addr()?,
            https: self.https.local_addr()?,
            dot: self.dns.as_ref().map(|d| d.dot.local_addr()).transpose()?,
            authorities: None,
            resolver: None,
            metrics: self
                .metrics
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
        })
    }
}

/// DNS's own sockets: UDP and TCP on `--dns`, DNS over TLS on `--dot`.
struct DnsListeners {
    udp: UdpSocket,
    tcp: TcpListener,
    dot: TcpListener,
}

async fn bind_all(config: &Config) -> anyhow::Result<Listeners> {
    let (zones, stack, fixture) = (&config.zones, &config.args.stack, config.fixture);
    let dns = match (config.dns, config.dot) {
        (Some(dns), Some(dot)) => Some(bind_dns_and_dot(dns, dot).await?),
        _ => None,
    };
    let http = bind_web(zones, stack.http, cli::DEFAULT_HTTP_PORT, "--http", fixture).await?;
    let https = bind_web(
        zones,
        config.https,
        cli::DEFAULT_HTTPS_PORT,
        "--https",
        fixture,
    )
    .await?;
    let (authorities, resolver) = match &dns {
        Some(dns) => bind_internet(config, dns.udp.local_addr()?).await?,
        None => (Vec::new(), None),
    };
    let metrics = match config.metrics {
        Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
            bind_error(
                "TCP",
                addr,
                &e,
                &format!("--metrics {} (or off)", cli::DEFAULT_METRICS),
            )
        })?),
        None => None,
    };
    Ok(Listeners {
        dns,
        http,
        https,
        authorities,
        resolver,
        metrics,
    })
}

async fn bind_dns_and_dot(dns: SocketAddr, dot: SocketAddr) -> anyhow::Result<DnsListeners> {
    let (udp, tcp) = bind_dns(dns).await?;
    let dot = TcpListener::bind(dot)
        .await
        .map_err(|e| bind_error("TCP", dot, &e, &format!("--dot {}", cli::DEFAULT_DOT)))?;
    Ok(DnsListeners { udp, tcp, dot })
}

/// Each toy-Internet address other than `--dns`'s, on the DNS port, and the resolver.
async fn bind_internet(config: &Config, dns: SocketAddr) -> anyhow::Result<ToyInternetListeners> {
    let Some(internet) = &config.internet else {
        return Ok((Vec::new(), None));
    };
    let mut authorities = Vec::new();
    for (ip, zones) in dns::authorities::zones_by_address(&internet.authorities) {
        if ip == dns.ip() {
            continue;
        }
        let (udp, tcp) = bind_dns(SocketAddr::new(ip, dns.port()))
            .await
            .with_context(|| {
                format!(
                    "the server for {} listens where its glue says",
                    zones.join(", ")
                )
            })?;
        authorities.push((ip, zones, udp, tcp));
    }
    let resolver = internet
        .resolver
        .unwrap_or(SocketAddr::new(IpAddr::V4(RESOLVER_IP), dns.port()));
    let resolver = bind_dns(resolver).await.context("--resolver")?;
    Ok((authorities, Some(resolver)))
}

/// Phase 3: what the servers share and what outlives a request.
struct State {
    db: Arc<dyn Store>,
    /// The CA lives with the data; an ephemeral run keeps it in a temporary folder
    /// that goes away at exit, so clients can still be pointed at it.
    ca_dir: TempDir,
    certs: Arc<Certificates>,
    control_path: PathBuf,
    /// The TSIG key that signs DNS UPDATE, and its key file (for the ready line).
    tsig: (dns::tsig::TsigKey, PathBuf),
    /// The zones' change journal, in the database.
    journal: dns::journal::Journal,
    /// The fixture API's admin token and its file (for the ready line).
    admin: (String, PathBuf),
}

/// Returns the state and the control socket's listener, which its server takes.
async fn open_state(config: &Config) -> anyhow::Result<(State, UnixListener)> {
    let args = &config.args;
    let ca_dir = if args.ephemeral {
        TempDir::new(&format!("onebox-{}", std::process::id()))?
    } else {
        private_folder(&args.data)?;
        TempDir::keep(args.data.clone())
    };
    // The database first: its lock is what tells us no other onebox uses this
    // data folder, before we touch anything else in it.
    let (db, journal_db) = open_databases(config).await?;
    let certs = Certificates::new(
        Ca::load_or_create(ca_dir.path(), &config.zones.site_hosts())?,
        certificate_names(&config.zones),
    )?;
    let (control, control_path) = control::bind(ca_dir.path())?;
    // Made on first start, beside the CA: the data folder, or the temporary one.
    let durable = !args.ephemeral;
    let tsig = dns::tsig::TsigKey::load_or_create(ca_dir.path(), durable)?;
    let admin = crate::key::admin_token(ca_dir.path(), durable)?;
    // Files were created under the umask; settle their modes now that all exist.
    private_files(ca_dir.path())?;
    let journal = dns::journal::Journal::new(journal_db);
    let state = State {
        db,
        ca_dir,
        certs,
        control_path,
        tsig,
        journal,
        admin,
    };
    Ok((state, control))
}

/// Opens the site's database and the redb database that holds the DNS journal:
/// the same one on redb; on PostgreSQL, whose schema has no journal yet, a redb
/// file in the data folder (in memory with `--ephemeral`), so UPDATEs stay durable.
async fn open_databases(config: &Config) -> anyhow::Result<(Arc<dyn Store>, Db)> {
    Ok(match &config.backend {
        Backend::Redb(dir) => {
            let db = Db::open(dir)?;
            (Arc::new(db.clone()), db)
        }
        Backend::Memory => {
            let db = Db::in_memory()?;
            (Arc::new(db.clone()), db)
        }
        Backend::Postgres(_) => {
            let journal = if config.args.ephemeral {
                Db::in_memory()?
            } else {
                Db::open(&config.args.data)?
            };
            (config.backend.open().await?, journal)
        }
    })
}

/// Creates the data folder owner-only, or tightens one that others can enter:
/// it holds password hashes and the CA key.
fn private_folder(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let private = std::fs::Permissions::from_mode(PRIVATE_DIR);
    let mode = match std::fs::metadata(dir) {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE_DIR)
                .create(dir)
                .with_context(|| format!("failed to create data folder {}", dir.display()))?;
            // Set it again: the umask may have taken the owner's bits off too.
            return std::fs::set_permissions(dir, private)
                .with_context(|| format!("failed to restrict {}", dir.display()));
        }
        Err(e) => return Err(e).with_context(|| format!("failed to open {}", dir.display())),
    };
    if mode == PRIVATE_DIR {
        return Ok(());
    }
    // An existing folder may belong to someone else: say so rather than refuse.
    match std::fs::set_permissions(dir, private) {
        Ok(()) if mode & !PRIVATE_DIR != 0 => tracing::warn!(
            "data folder {} was open to other users (mode {mode:03o}): tightened to {PRIVATE_DIR:03o}",
            dir.display()
        ),
        Ok(()) => {}
        Err(e) => tracing::warn!(
            "data folder {} has mode {mode:03o} and could not be tightened to {PRIVATE_DIR:03o} ({e}): other users may read its password hashes and CA key",
            dir.display()
        ),
    }
    Ok(())
}

/// Gives every file in `dir` owner-only modes (the CA certificate stays readable),
/// whatever the umask was when it was created.
fn private_files(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("failed to list {}", dir.display()))?;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue; // the control socket sets its own mode; folders are not ours
        }
        let want = if entry.file_name() == ca::CA_FILE {
            PUBLIC_FILE
        } else {
            PRIVATE_FILE
        };
        if meta.permissions().mode() & 0o777 != want {
            let path = entry.path();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))
                .with_context(|| format!("failed to restrict {}", path.display()))?;
        }
    }
    Ok(())
}

/// The addresses actually bound, for the ready line and the servers.
struct Addrs {
    /// `None` with `--dns off`, as is `dot`.
    dns: Option<SocketAddr>,
    http: SocketAddr,
    https: SocketAddr,
    dot: Option<SocketAddr>,
    /// Zone → where its server listens (toy Internet only).
    authorities: Option<BTreeMap<String, Vec<SocketAddr>>>,
    resolver: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
}

/// Handles the servers share: the DNS engine (DoH answers through it), the live
/// view's feed and the maintenance switch.
struct Shared {
    engine: Engine,
    live: Live,
    maintenance: Maintenance,
    /// `--update-rate`: one budget per key, shared by UPDATE and the fixture API.
    update_limit: Option<dns::update::UpdateLimit>,
}

/// Phase 4: every server runs as one task of one `JoinSet`, so the main loop can
/// notice any of them ending.
fn spawn_servers(
    config: &Config,
    listeners: Listeners,
    control: UnixListener,
    state: &State,
) -> anyhow::Result<(Servers, Addrs)> {
    let mut addrs = listeners.addrs()?;
    let mut servers = Servers::default();
    let live = Live::new();
    let update_limit = dns::update::UpdateLimit::new(config.args.update_rate);
    let shared = Shared {
        engine: Engine::new(config.zones.clone(), config.transfer.clone())
            .with_live(live.clone())
            .with_tsig(state.tsig.0.clone())
            .with_journal(state.journal.clone())
            .with_update_limit(update_limit.clone()),
        live,
        maintenance: Maintenance::default(),
        update_limit,
    };
    let recursor = match listeners.dns {
        Some(dns) => {
            let toy = (listeners.authorities, listeners.resolver);
            spawn_dns(&mut servers, config, state, &shared, dns, toy, &mut addrs)?
        }
        None => None,
    };
    let control_server = control::serve(
        control,
        shared.maintenance.clone(),
        servers.shutdown.child_token(),
    );
    servers.spawn_until_shutdown("control socket", control_server);
    let zones = config.zones.clone();
    let renewal = ca::renew_loop(
        state.certs.clone(),
        move || certificate_names(&zones),
        servers.shutdown.child_token(),
    );
    servers.spawn_until_shutdown("certificate renewal", renewal);
    if let Some(listener) = listeners.metrics {
        spawn_metrics(&mut servers, config, state, listener, addrs.dns);
    }
    spawn_web(
        &mut servers,
        config,
        state,
        shared,
        listeners.http,
        listeners.https,
        addrs.dns,
        recursor,
    )?;
    Ok((servers, addrs))
}

/// The toy Internet's other sockets: its authorities' and the resolver's.
type ToyInternetListeners = (
    Vec<(IpAddr, Vec<String>, UdpSocket, TcpListener)>,
    Option<(UdpSocket, TcpListener)>,
);

/// In the toy Internet the --dns address is one authority among others and
/// answers only for the zones whose glue points there (DoH keeps them all);
/// the other authorities and the recursive resolver start here. Returns the
/// engine for the --dns address and the resolver, if one was asked for.
fn spawn_toy_internet(
    servers: &mut Servers,
    config: &Config,
    shared: &Shared,
    internet: &Internet,
    dns_addr: SocketAddr,
    (authorities, resolver): ToyInternetListeners,
    addrs: &mut Addrs,
) -> anyhow::Result<(Engine, Option<dns::recursor::Recursor>)> {
    let mut dns_engine = shared.engine.clone();
    let mut recursor = None;
    let engine_for = |zones: &[String]| -> anyhow::Result<Engine> {
        Ok(
            Engine::new(config.zones.only(zones)?, config.transfer.clone())
                .with_live(shared.live.clone()),
        )
    };
    let by_address = dns::authorities::zones_by_address(&internet.authorities);
    if let Some(zones) = by_address.get(&dns_addr.ip()) {
        dns_engine = engine_for(zones)?;
    }
    for (ip, zones, udp, tcp) in authorities {
        let engine = engine_for(&zones)?;
        tracing::info!(
            "dns: {} answering at {ip} (udp, tcp), where the glue says",
            zones.join(", ")
        );
        let server = dns::server::run(
            engine,
            udp,
            tcp,
            None,
            dns::server::Limits::default(),
            config.rrl.clone(),
            servers.shutdown.child_token(),
        );
        servers.spawn_until_shutdown("dns authority", server);
    }
    addrs.authorities = Some(
        internet
            .authorities
            .iter()
            .map(|(zone, ips)| {
                let at = ips.iter().map(|ip| SocketAddr::new(*ip, dns_addr.port()));
                (zone.clone(), at.collect())
            })
            .collect(),
    );
    if let Some((udp, tcp)) = resolver {
        let at = udp.local_addr()?;
        let resolving = dns::recursor::Recursor::new(internet.hints.clone(), dns_addr.port())
            .with_live(shared.live.clone());
        tracing::info!(
            "dns: recursive resolver on {at} (udp, tcp), from the root hints {:?}",
            internet.hints
        );
        let server =
            dns::recursor::serve(resolving.clone(), udp, tcp, servers.shutdown.child_token());
        servers.spawn_until_shutdown("dns resolver", server);
        addrs.resolver = Some(at);
        recursor = Some(resolving);
    }
    Ok((dns_engine, recursor))
}

/// DNS in every form but DoH (which the web server answers): the authoritative
/// server on UDP, TCP and DoT, NOTIFY to the secondaries, and with a root zone the
/// toy Internet's authorities and resolver. Returns the resolver, if it runs.
fn spawn_dns(
    servers: &mut Servers,
    config: &Config,
    state: &State,
    shared: &Shared,
    listeners: DnsListeners,
    toy: ToyInternetListeners,
    addrs: &mut Addrs,
) -> anyhow::Result<Option<dns::recursor::Recursor>> {
    let DnsListeners { udp, tcp, dot } = listeners;
    let dns_addr = udp.local_addr()?;
    let (dns_engine, recursor) = match &config.internet {
        Some(internet) => {
            spawn_toy_internet(servers, config, shared, internet, dns_addr, toy, addrs)?
        }
        None => (shared.engine.clone(), None),
    };
    let limits = dns::server::Limits {
        // A port the kernel picked (`--dns ADDR:0`, a test fixture) lies in the
        // ephemeral range, where other programs bind their client sockets at
        // random, and BIND's tools (nsupdate, dig) set SO_REUSEPORT on theirs. A
        // socket group of ours there could be joined by such a socket, which the
        // kernel would then hand a share of our queries: a fixture losing UPDATEs
        // now and then. So there the workers share one socket, which nobody else
        // can join; a chosen port (53, a benchmark's) gets a socket per worker.
        udp_reuseport: config.dns.is_none_or(|a| a.port() != 0),
        ..dns::server::Limits::default()
    };
    let dns_server = dns::server::run(
        dns_engine,
        udp,
        tcp,
        Some((dot, state.certs.server_config(&[b"dot"])?)),
        limits,
        config.rrl.clone(),
        servers.shutdown.child_token(),
    );
    servers.spawn_until_shutdown("dns server", dns_server);
    let notifier = dns::notify::watch(
        config.zones.clone(),
        config.args.notify.clone(),
        dns_addr,
        shared.live.clone(),
        servers.shutdown.child_token(),
    );
    servers.spawn_until_shutdown("dns notify", notifier);
    Ok(recursor)
}
/// How recent a resolution must be for the home page to show it as the way the
/// page was found: a browser connects right after it resolves, and keeps the
/// address for about a minute (Chromium's host cache).
const RESOLUTION_WINDOW: Duration = Duration::from_secs(60);

/// The app's view of the resolver: the latest walk for a name and client, in
/// the app's plain terms (the app must not know the resolver's types).
fn resolutions(recursor: dns::recursor::Recursor) -> crate::app::Resolutions {
    crate::app::Resolutions::new(move |host, client| {
        let walk = recursor.latest_walk(host, client, RESOLUTION_WINDOW)?;
        Some(crate::app::ResolutionPath {
            asked: walk
                .asked
                .into_iter()
                .map(|(zone, server)| (zone, server.to_string()))
                .collect(),
            from_cache: walk.from_cache,
            seconds_ago: walk.age.as_secs(),
        })
    })
}

/// The home page's recent changes, from the live view's change events: the app
/// sees lines of text, never the events.
fn changes(live: Live) -> crate::app::Changes {
    crate::app::Changes::new(move || {
        live.changes()
            .iter()
            .rev()
            .filter_map(|event| match &**event {
                crate::live::Event::Change {
                    by, what, serial, ..
                } => Some(format!("serial {serial}: {what}, by {by}")),
                crate::live::Event::Secondary {
                    zone,
                    serial,
                    secondary,
                    state,
                    ..
                } => Some(format!(
                    "serial {serial}: secondary {secondary} of {zone} {state}"
                )),
                _ => None,
            })
            .collect()
    })
}

/// The web server (HTTP and HTTPS): everything it is handed is assembled here.
#[allow(clippy::too_many_arguments)]
fn spawn_web(
    servers: &mut Servers,
    config: &Config,
    state: &State,
    shared: Shared,
    http: TcpListener,
    https: TcpListener,
    dns_addr: Option<SocketAddr>,
    recursor: Option<dns::recursor::Recursor>,
) -> anyhow::Result<()> {
    // The resolver's cache view, as JSON: only when the toy Internet runs.
    let mut extra = axum::Router::new();
    if let Some(recursor) = recursor.clone() {
        extra = extra.route(
            "/_onebox/api/resolver/cache",
            axum::routing::get(move || {
                let view = recursor.cache_json();
                async move { axum::Json(view) }
            }),
        );
    }
    // One application behind both ways in: its router, and its anonymous home
    // page for the web server's fast path.
    let (app_router, home) = crate::app::build(crate::app::AppConfig {
        store: state.db.clone(),
        zones: config.zones.clone(),
        resolutions: recursor.clone().map(resolutions),
        changes: Some(changes(shared.live.clone())),
        session_ttl: config.session_ttl,
        post_rate: config.args.post_rate,
        node_name: config.args.node_name.clone(),
    });
    let web_config = WebConfig {
        zones: config.zones.clone(),
        db: state.db.clone(),
        site_dir: config.args.site.clone(),
        dns_addr,
        // serve.rs is the one place that wires the boxes: it builds the app's
        // router over the database and hands it to the web server.
        router: app_router
            .merge(extra)
            // The fixture API beside the app: the DNS layer's change function
            // behind an admin token; the app knows nothing of it.
            .merge(web::records::router(web::records::Api {
                zones: config.zones.clone(),
                journal: state.journal.clone(),
                token: state.admin.0.clone(),
                live: shared.live.clone(),
                live_public: config.args.live_public,
                limit: shared.update_limit,
            })),
        engine: shared.engine,
        recursor,
        live: shared.live,
        maintenance: shared.maintenance,
        https: Some((https, state.certs.server_config(&[b"h2", b"http/1.1"])?)),
        live_public: config.args.live_public,
        static_fast_path: !config.args.no_static_fast_path,
        conns_per_addr: config.args.http_conns_per_addr as usize,
        idle_timeout: config.http_idle,
        node_name: config.args.node_name.clone(),
        home: Some(home),
    };
    let shutdown = servers.shutdown.child_token();
    servers.spawn("web server", web::serve(http, web_config, shutdown));
    Ok(())
}

/// Monitoring: the `/metrics` listener, and the probes a scrape asks the running
/// boxes (readiness, database size, certificate expiry), wired here so the metrics
/// module knows none of them.
fn spawn_metrics(
    servers: &mut Servers,
    config: &Config,
    state: &State,
    listener: TcpListener,
    dns_addr: Option<SocketAddr>,
) {
    let (zones, db, certs) = (config.zones.clone(), state.db.clone(), state.certs.clone());
    let serial_zones = config.zones.clone();
    let (ready_db, sessions_db) = (db.clone(), db.clone());
    crate::metrics::set_probes(crate::metrics::Probes {
        ready: Box::new(move || {
            let (zones, db) = (zones.clone(), ready_db.clone());
            Box::pin(async move { web::health::ready(&zones, dns_addr, db.as_ref()).await })
        }),
        // The database's location is its file, or "memory" (which has no size).
        db_bytes: Box::new(move || std::fs::metadata(db.location()).ok().map(|m| m.len())),
        certificate_expiry: Box::new(move || certs.earliest_expiry()),
        zone_serials: Box::new(move || serial_zones.serials()),
        sessions_active: Box::new(move || {
            let db = sessions_db.clone();
            Box::pin(async move {
                match db.sessions_active(crate::app::now()).await {
                    Ok(n) => Some(n),
                    Err(e) => {
                        tracing::warn!("metrics: counting active sessions failed: {e}");
                        None
                    }
                }
            })
        }),
    });
    let shutdown = servers.shutdown.child_token();
    servers.spawn(
        "metrics listener",
        crate::metrics::server::serve(listener, shutdown),
    );
}

/// `--metrics`: off, the address given, or the default (a free port for a fixture).
fn metrics_config(
    flag: Option<cli::Listen>,
    default_port: impl Fn(u16) -> u16,
) -> anyhow::Result<Option<SocketAddr>> {
    Ok(match flag {
        Some(cli::Listen::Off) => None,
        Some(cli::Listen::At(addr)) => Some(addr),
        None => {
            let default: SocketAddr = cli::DEFAULT_METRICS
                .parse()
                .context("bad DEFAULT_METRICS")?;
            Some(SocketAddr::new(default.ip(), default_port(default.port())))
        }
    })
}

/// The running servers. A server task ends only when `shutdown` is cancelled;
/// one that ends before that has failed, whatever it returned.
#[derive(Default)]
struct Servers {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
    /// For the debug-only test hook.
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    aborts: Vec<(&'static str, AbortHandle)>,
    shutdown: CancellationToken,
}

impl Servers {
    fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        let abort = self.tasks.spawn(task);
        self.names.insert(abort.id(), name);
        self.aborts.push((name, abort));
    }

    /// Spawns a server whose future returns nothing: it ends only at shutdown, so
    /// its ending earlier is the failure `ended_early` reports.
    fn spawn_until_shutdown(
        &mut self,
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.spawn(name, async move {
            task.await;
            Ok(())
        });
    }

    /// Why the process must stop, for a task that ended before shutdown.
    fn ended_early(&self, joined: Result<(Id, anyhow::Result<()>), JoinError>) -> anyhow::Error {
        let (id, why) = match joined {
            Ok((id, Ok(()))) => (id, anyhow::anyhow!("it returned without an error")),
            Ok((id, Err(e))) => (id, e),
            Err(e) if e.is_panic() => (e.id(), anyhow::anyhow!("it panicked")),
            Err(e) => (e.id(), anyhow::anyhow!("it was cancelled")),
        };
        let name = self.names.get(&id).copied().unwrap_or("a server");
        why.context(format!("the {name} stopped unexpectedly"))
    }

    /// Test hook, debug builds only: `ONEBOX_TEST_FAIL_TASK=web` (or `dns`,
    /// `control`, `certificate`) aborts that server right after the ready line, so
    /// a test can watch the supervisor stop the process. Release builds ignore it.
    #[cfg(debug_assertions)]
    fn test_hook(&self) {
        let Ok(wanted) = std::env::var("ONEBOX_TEST_FAIL_TASK") else {
            return;
        };
        for (name, abort) in &self.aborts {
            if name.starts_with(wanted.as_str()) {
                tracing::warn!("ONEBOX_TEST_FAIL_TASK: aborting the {name}");
                abort.abort();
            }
        }
    }
}

/// The one line on stdout that says every listener is up, with the addresses the
/// kernel gave them. Its keys and values are a contract for scripts and fixtures;
/// they are written in this (alphabetical) order.
#[derive(Serialize)]
struct Ready {
    /// The fixture API's admin token file (`Authorization: Bearer` its content).
    admin_token_file: String,
    /// Toy Internet only: zone → the addresses its server listens on.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorities: Option<BTreeMap<String, Vec<SocketAddr>>>,
    ca: String,
    control: String,
    /// `null` with `--ephemeral`.
    data: Option<String>,
    /// `null` with `--dns off`, as is `dot`.
    dns: Option<SocketAddr>,
    dot: Option<SocketAddr>,
    http: SocketAddr,
    https: SocketAddr,
    /// The Prometheus listener; `null` with `--metrics off`.
    metrics: Option<SocketAddr>,
    pid: u32,
    ready: bool,
    /// Toy Internet only: the recursive resolver's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolver: Option<SocketAddr>,
    /// The TSIG key file for DNS UPDATE: `nsupdate -k PATH` reads it as it is.
    tsig: String,
    /// Each served zone once, whether or not its apex has an address.
    zones: Vec<String>,
}

fn print_ready(config: &Config, state: &State, addrs: &Addrs) -> anyhow::Result<()> {
    let args = &config.args;
    let ready = Ready {
        authorities: addrs.authorities.clone(),
        resolver: addrs.resolver,
        admin_token_file: state.admin.1.display().to_string(),
        ca: state.certs.ca().path().display().to_string(),
        control: state.control_path.display().to_string(),
        data: (!args.ephemeral).then(|| args.data.display().to_string()),
        dns: addrs.dns,
        dot: addrs.dot,
        http: addrs.http,
        https: addrs.https,
        metrics: addrs.metrics,
        pid: std::process::id(),
        ready: true,
        tsig: state.tsig.1.display().to_string(),
        zones: config.zones.names(),
    };
    let line = serde_json::to_string(&ready).context("failed to encode the ready line")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
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

/// The main loop: reloads on SIGHUP and on edited zone files until SIGTERM or
/// SIGINT (`Ok`), or until a server ends on its own (`Err`, with its error).
async fn supervise(
    zones: &Zones,
    state: &State,
    servers: &mut Servers,
    mut signals: Signals,
) -> anyhow::Result<()> {
    let mut watch = tokio::time::interval(WATCH_EVERY);
    watch.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut log_check = tokio::time::interval(DROPPED_LOGS_EVERY);
    let mut dropped = 0;
    loop {
        tokio::select! {
            _ = signals.term.recv() => return Ok(()),
            _ = signals.int.recv() => return Ok(()),
            Some(joined) = servers.tasks.join_next_with_id() => {
                return Err(servers.ended_early(joined));
            }
            _ = signals.hup.recv() => {
                tracing::info!("SIGHUP: reloading zones");
                reload(zones, state, false).await;
            }
            _ = watch.tick() => reload(zones, state, true).await,
            _ = log_check.tick() => dropped = report_dropped_logs(dropped),
        }
    }
}

/// Reloads the zones (only when a file changed, for the watcher), then re-issues
/// certificates at once: a site name the reload added must work over HTTPS now,
/// not at the next renewal tick.
async fn reload(zones: &Zones, state: &State, only_changed: bool) {
    // No UPDATE may land between the files being read and the journal applied.
    let _turn = state.journal.lock().await;
    let (zones, certs) = (zones.clone(), state.certs.clone());
    let synced = zones.clone();
    let done = tokio::task::spawn_blocking(move || {
        if only_changed && !zones.changed_on_disk() {
            return (false, Ok(()));
        }
        let report = zones.reload(only_changed);
        crate::metrics::dns::reload(report.failed.is_empty());
        (true, certs.refresh(&certificate_names(&zones)).map(|_| ()))
    })
    .await;
    let reloaded = match done {
        Ok((reloaded, Ok(()))) => reloaded,
        Ok((reloaded, Err(e))) => {
            tracing::error!("certificates not re-issued after the reload: {e:#}");
            reloaded
        }
        Err(e) => {
            tracing::error!("zone reload failed: {e}");
            true
        }
    };
    // The files were read again: put the journaled changes back on top.
    if reloaded && let Err(e) = state.journal.sync(&synced).await {
        tracing::error!("zone journal not applied after the reload: {e:#}");
    }
}

/// Warns when log lines were dropped since the last check; returns the new total.
fn report_dropped_logs(before: usize) -> usize {
    let now = cli::dropped_log_lines();
    if now > before {
        tracing::warn!(
            "{} log lines dropped because stderr is not read fast enough ({now} in all); serving is not affected",
            now - before
        );
    }
    now
}

/// The graceful stop: no new connections, requests in flight finish (for at most
/// `DRAIN`), the database closes last.
async fn stop(mut servers: Servers, state: State) {
    tracing::info!("stopping: no new connections, finishing requests in flight");
    servers.shutdown.cancel();
    let drained = tokio::time::timeout(DRAIN, async {
        while let Some(joined) = servers.tasks.join_next_with_id().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((id, Err(e))) => {
                    let name = servers.names.get(&id).copied().unwrap_or("a server");
                    tracing::error!("{name}: {e:#}");
                }
                Err(e) if e.is_panic() => tracing::error!("a server panicked while stopping"),
                Err(_) => {}
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some requests were still running after {DRAIN:?}; stopping anyway");
    }
    // Last: every acknowledged write is already committed, so this only releases the file.
    state.db.close();
    let _ = std::fs::remove_file(&state.control_path);
    drop(state.ca_dir);
    report_dropped_logs(0);
    tracing::info!("stopped");
}

/// The names that need certificates: each zone (its leaf also covers `*.zone`),
/// plus every site name deeper than one label below its zone, which `*.zone`
/// does not cover (`shop.eu.foobar.com`).
fn certificate_names(zones: &Zones) -> Vec<String> {
    let mut names = zones.names();
    // The root and TLDs of the toy Internet serve no website, and the CA may not
    // vouch for them (src/ca/limits.rs): no certificate for `.` or `com`.
    names.retain(|zone| zone.trim_matches('.').contains('.'));
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
        let named = args
            .rrl_exempt
            .iter()
            .filter(|text| text.as_str() != "none");
        config.exempt = parse_networks(named).context("bad --rrl-exempt")?;
    }
    Ok(config)
}

/// DNS listens on one port for UDP and TCP. With port 0 the kernel picks the UDP
/// port, and TCP must get the same one; if another program holds it for TCP, try again.
async fn bind_dns(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let attempts = if addr.port() == 0 { 20 } else { 1 };
    for _ in 0..attempts {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_error("UDP", addr, &e, &format!("--dns {}", cli::DEFAULT_DNS)))?;
        let udp_addr = udp.local_addr()?;
        // A burst of queries must not overflow the kernel's receive queue while the
        // workers are busy; NSD asks for the same. The kernel may grant less.
        let _ = socket2::SockRef::from(&udp).set_recv_buffer_size(UDP_RECEIVE_BUFFER);
        match TcpListener::bind(udp_addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => {
                return Err(bind_error(
                    "TCP",
                    udp_addr,
                    &e,
                    &format!("--dns {}", cli::DEFAULT_DNS),
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_keeps_its_keys_and_their_order() {
        let ready = Ready {
            authorities: None,
            resolver: None,
            admin_token_file: "data/admin-token".into(),
            ca: "data/ca.pem".into(),
            control: "data/onebox.sock".into(),
            data: Some("data".into()),
            dns: Some("127.0.0.1:1053".parse().unwrap()),
            dot: Some("127.0.0.1:8853".parse().unwrap()),
            http: "127.0.0.1:8080".parse().unwrap(),
            https: "127.0.0.1:8443".parse().unwrap(),
            metrics: Some("127.0.0.1:9153".parse().unwrap()),
            pid: 4242,
            ready: true,
            tsig: "data/onebox-update.key".into(),
            zones: vec!["foobar.com".into()],
        };
        // The README's example, byte for byte: scripts may match on it.
        assert_eq!(
            serde_json::to_string(&ready).unwrap(),
            r#"{"admin_token_file":"data/admin-token","ca":"data/ca.pem","control":"data/onebox.sock","data":"data","dns":"127.0.0.1:1053","dot":"127.0.0.1:8853","http":"127.0.0.1:8080","https":"127.0.0.1:8443","metrics":"127.0.0.1:9153","pid":4242,"ready":true,"tsig":"data/onebox-update.key","zones":["foobar.com"]}"#
        );
        let ephemeral = Ready {
            data: None,
            dns: None,
            dot: None,
            ..ready
        };
        // Absent values keep their keys, as null: `--ephemeral`, `--dns off`.
        let line = serde_json::to_string(&ephemeral).unwrap();
        for key in ["data", "dns", "dot"] {
            assert!(line.contains(&format!(r#""{key}":null"#)), "{key}: {line}");
        }
    }

    #[test]
    fn files_in_the_data_folder_become_owner_only_but_the_ca_stays_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("onebox-modes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["onebox.redb", "ca-key.pem", ca::CA_FILE] {
            std::fs::write(dir.join(name), "x").unwrap();
            let wide = std::fs::Permissions::from_mode(0o666);
            std::fs::set_permissions(dir.join(name), wide).unwrap();
        }
        private_files(&dir).unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("onebox.redb"), PRIVATE_FILE);
        assert_eq!(mode("ca-key.pem"), PRIVATE_FILE);
        assert_eq!(mode(ca::CA_FILE), PUBLIC_FILE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
