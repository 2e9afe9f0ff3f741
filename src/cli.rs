//! The command-line contract: flags, subcommands and logging setup. Scripts and
//! tests outside the repository depend on these names, so they only ever grow.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// onebox: one binary that runs the one-server web stack (DNS, web, app, database).
#[derive(Debug, Parser)]
#[command(name = "onebox", version, about, long_about = None)]
pub struct Cli {
    /// How diagnostics on stderr are written. The level comes from RUST_LOG.
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve DNS, HTTP and the site (the default when no command is given).
    Serve(Box<ServeArgs>),
    /// Check zone files strictly, printing FILE:LINE: message for each problem.
    Check(CheckArgs),
    /// Find, print, install or uninstall the local certificate authority.
    Ca(CaArgs),
    /// Take the site down for maintenance (503) or bring it back; DNS keeps answering.
    Maintenance(MaintenanceArgs),
    /// Fetch a URL the way a browser would, resolving only through onebox's DNS, and show every hop.
    #[command(after_help = VISIT_EXIT_CODES)]
    Visit(VisitArgs),
    /// Print, install or remove the OS hook that sends only our zones to onebox's DNS.
    Resolver(ResolverArgs),
    /// Check each path a visitor depends on and print the fix for each failure.
    #[command(
        after_help = "Exit code: 0 when no check fails (skipped checks are fine), 1 otherwise."
    )]
    Doctor(DoctorArgs),
    /// Print the TSIG key that signs DNS UPDATE (nsupdate -k, knsupdate).
    Key(KeyArgs),
    /// Work with a zone as served: its file plus the changes journaled since.
    Zone(ZoneArgs),
    /// Show the running server's metrics in the terminal, refreshed every second.
    Top(TopArgs),
    /// Database tools: copy the site's data between redb and PostgreSQL.
    #[command(subcommand)]
    Db(DbCommand),
    /// Run the distributed version on this machine: HAProxy, N web nodes, DNS secondaries, replicated PostgreSQL.
    Cluster(ClusterArgs),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Copy every table from one database to another, then verify counts and checksums.
    #[command(
        after_help = "Databases: redb:DIR (the data folder holding onebox.redb) or postgres://USER@HOST/DB.\nStop the onebox using the source first: redb allows one process at a time."
    )]
    Migrate(DbMigrateArgs),
}

#[derive(Debug, Args)]
pub struct DbMigrateArgs {
    /// The database to copy from: redb:DIR or postgres://….
    #[arg(long, value_name = "DB")]
    pub from: String,
    /// The database to copy into: redb:DIR or postgres://….
    #[arg(long, value_name = "DB")]
    pub to: String,
    /// Replace the target's rows even if it already has data.
    #[arg(long)]
    pub force: bool,
}

impl Default for Command {
    fn default() -> Self {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Command::Serve(Box::new(Defaults::parse_from(["onebox"]).serve))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Where `serve` listens when no flag says otherwise. `doctor` and `resolver`
/// look for onebox at the same places, so the values live here once.
pub const DEFAULT_DNS: &str = "127.0.0.1:1053";
/// The web server's HTTP port on the apex A/AAAA record's address.
pub const DEFAULT_HTTP_PORT: u16 = 8080;
/// The web server's HTTPS port, beside HTTP.
pub const DEFAULT_HTTPS_PORT: u16 = 8443;
/// DNS over TLS (RFC 7858 names 853; this one needs no root).
pub const DEFAULT_DOT: &str = "127.0.0.1:8853";
/// The Prometheus metrics listener (CoreDNS's port).
pub const DEFAULT_METRICS: &str = "127.0.0.1:9153";
/// The folder of zone files, relative to where onebox is started.
pub const DEFAULT_ZONES: &str = "zones";

/// Where onebox's servers are and which zones they serve: `serve` listens there,
/// `doctor` checks there, so both take the same flags with the same defaults.
/// `--dns` is each command's own: `serve --dns off` switches DNS off, which
/// `doctor` (it must ask a DNS server) has no use for.
#[derive(Debug, Args)]
pub struct StackFlags {
    /// Folder of zone files (*.zone). When it does not exist, the built-in foobar.com zone is served.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ZONES)]
    pub zones: PathBuf,

    /// onebox's HTTP address. Default: the apex A record's address, port 8080.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,

    /// onebox's HTTPS address. Default: the apex A record's address (serve: beside --http when given), port 8443.
    #[arg(long, value_name = "ADDR")]
    pub https: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub stack: StackFlags,

    /// onebox's DNS address, UDP and TCP (ip:port; port 0 picks a free port), or "off": no DNS listener, DoT, DoH, resolver or NOTIFY (a web node behind a load balancer); the zones are still read for the site's names.
    #[arg(long, value_name = "ADDR|off", default_value = DEFAULT_DNS, value_parser = parse_listen)]
    pub dns: Listen,

    /// This node's name, sent as the `Onebox-Node` header on every HTTP response and shown on the home page ("served by NAME"), so a client behind a load balancer sees which node answered. Default: none (no header).
    // No default name (such as the host name): nodes sharing one machine would
    // all get the same one, which tells them apart no better than none, and a
    // header every visitor sees is no place to reveal the machine's name.
    #[arg(long, value_name = "NAME", value_parser = parse_node_name)]
    pub node_name: Option<String>,

    /// DNS-over-TLS address. Default: 127.0.0.1:8853.
    #[arg(long, value_name = "ADDR")]
    pub dot: Option<SocketAddr>,

    /// Folder for the database, the CA and other state: created owner-only (0700) on first start, tightened if others can enter it.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "data",
        conflicts_with = "ephemeral"
    )]
    pub data: PathBuf,

    /// Keep all state in memory (for test fixtures and parallel runs).
    #[arg(long)]
    pub ephemeral: bool,

    /// The database, chosen by its scheme: postgres://USER@HOST/DB (PostgreSQL 15+, shared by several nodes; libpq URL, multi-host and sslmode=require work) or redb:DIR. Default: redb in --data (in memory with --ephemeral).
    #[arg(long, value_name = "URL", env = "ONEBOX_DB", hide_env_values = true)]
    pub db: Option<String>,

    /// Serve this folder's files at the site root instead of the built-in assets.
    #[arg(long, value_name = "DIR")]
    pub site: Option<PathBuf>,

    /// Allow zone transfers (AXFR) to clients in this network (repeatable), e.g. 127.0.0.0/8.
    #[arg(long = "allow-transfer", value_name = "CIDR")]
    pub allow_transfer: Vec<String>,

    /// Send NOTIFY to this secondary (ip:port, repeatable) after every zone change, besides the zone's NS hosts.
    #[arg(long = "notify", value_name = "ADDR")]
    pub notify: Vec<SocketAddr>,

    /// Response rate limit: UDP answers per second per client /24 (IPv4) or /56 (IPv6); 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub rrl_rate: u32,

    /// Send every N-th rate-limited answer truncated (TC=1) so real clients retry over TCP; 0 never.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rrl_slip: u32,

    /// Networks exempt from rate limiting (repeatable; default loopback; "none" exempts nothing).
    #[arg(long, value_name = "CIDR")]
    pub rrl_exempt: Vec<String>,

    /// DNS UPDATEs (and fixture-API changes) per second per key (a bucket of N, refilled at N per second); beyond it REFUSED or 429; 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = crate::dns::update::DEFAULT_UPDATE_RATE)]
    pub update_rate: u32,

    /// Posts per minute per account (a bucket of N, refilled at N per minute); 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub post_rate: u32,

    /// Open HTTP(S) connections per client address (loopback too); beyond it that address's longest-idle one is closed.
    #[arg(long, value_name = "N", default_value_t = crate::web::conns::DEFAULT_PER_ADDR as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub http_conns_per_addr: u32,

    /// Live view: show every client's events, not only the viewer's own (for a classroom projector).
    #[arg(long)]
    pub live_public: bool,

    /// Send every static file request through the router and middleware, as dynamic pages go (by default plain GETs of small files skip them; this shows what those layers cost).
    #[arg(long)]
    pub no_static_fast_path: bool,

    /// The toy Internet's recursive resolver, started when the zones include a root zone. Default: 127.0.0.53 on the DNS port, where systemd-resolved's stub listens.
    #[arg(long, value_name = "ADDR")]
    pub resolver: Option<SocketAddr>,
    /// Prometheus metrics listener (GET /metrics), or "off". Default: 127.0.0.1:9153.
    #[arg(long, value_name = "ADDR|off", value_parser = parse_listen)]
    pub metrics: Option<Listen>,
}

/// Where a listener that may be switched off listens (`--dns`, `--metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// No listener: for `--metrics`, the per-query series are not recorded either;
    /// for `--dns`, no DNS is served in any form.
    Off,
    At(SocketAddr),
}

impl Listen {
    /// The address, or `None` when switched off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::At(addr) => Some(addr),
        }
    }
}

fn parse_listen(text: &str) -> Result<Listen, String> {
    if text == "off" {
        return Ok(Listen::Off);
    }
    text.parse()
        .map(Listen::At)
        .map_err(|_| format!("expected ADDR:PORT or off, got {text:?}"))
}

/// The longest `--node-name`: a DNS label's limit, so a name can also be a host name.
const MAX_NODE_NAME: usize = 63;

/// A node name goes into an HTTP header and a page: letters, digits, `.`, `-`
/// and `_` only, which need no escaping in either and cannot split a header.
fn parse_node_name(text: &str) -> Result<String, String> {
    let fits = !text.is_empty()
        && text.len() <= MAX_NODE_NAME
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if fits {
        Ok(text.to_string())
    } else {
        Err(format!(
            "expected 1 to {MAX_NODE_NAME} letters, digits, '.', '-' or '_', got {text:?}"
        ))
    }
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// The metrics listener to read (onebox serve's --metrics).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_METRICS)]
    pub metrics: SocketAddr,

    /// Print one view (rates over one second) and exit, without clearing the screen.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct ZoneArgs {
    #[command(subcommand)]
    pub action: ZoneAction,
}

#[derive(Debug, Subcommand)]
pub enum ZoneAction {
    /// Print the zone (file + journal) as a master file, for `onebox check` and named-checkzone.
    /// Reads the data folder, so run it while onebox is stopped.
    Export {
        /// The zone's name, e.g. foobar.com.
        #[arg(value_name = "ZONE")]
        zone: String,
        /// The data folder that holds the journal.
        #[arg(long, value_name = "DIR", default_value = "data")]
        data: PathBuf,
        /// The folder of zone files.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ZONES)]
        zones: PathBuf,
    },
    /// Print the zone's journal, oldest first: each change's serials, time, who made it
    /// (the TSIG key, "api" or "zone file") and from where, and the records it removed and
    /// added. Reads the data folder, so run it while onebox is stopped.
    Log {
        /// The zone's name, e.g. foobar.com.
        #[arg(value_name = "ZONE")]
        zone: String,
        /// The data folder that holds the journal.
        #[arg(long, value_name = "DIR", default_value = "data")]
        data: PathBuf,
        /// One JSON object: {"zone","changes":[{"serial_from","serial_to","at","by","from","removed","added"}]}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    /// The data folder that holds the key (onebox-update.key); made there if missing.
    #[arg(long, value_name = "DIR", default_value = "data", global = true)]
    pub data: PathBuf,

    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Print the key in BIND key-file format (what `nsupdate -k FILE` reads).
    Print {
        /// Print {"name","algorithm","secret"} as JSON instead, for scripts.
        #[arg(long)]
        json: bool,
        /// Print the fixture API's admin token instead (Authorization: Bearer TOKEN).
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Zone files to check.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    #[arg(value_enum)]
    pub state: MaintenanceState,

    /// The running server's data folder (its control socket is DIR/onebox.sock).
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,

    /// The control socket itself: the ready line's "control" (needed with --ephemeral).
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MaintenanceState {
    On,
    Off,
    Status,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// The data folder that holds the CA (ca.pem).
    #[arg(long, value_name = "DIR", default_value = "data", global = true)]
    pub data: PathBuf,

    /// The zones `serve` uses: `print` and `install` refuse a CA that could vouch
    /// for more than the websites they hold (and loopback).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ZONES, global = true)]
    pub zones: PathBuf,

    #[command(subcommand)]
    pub action: Option<CaAction>,
}

#[derive(Debug, Subcommand)]
pub enum CaAction {
    /// Print the CA certificate's path (the default).
    Path,
    /// Print how to use the CA from curl and other clients, then the certificate.
    Print,
    /// Add the CA to the system store and the NSS stores of Chromium and Firefox.
    Install {
        /// Consent: without it, only say what would be done.
        #[arg(long)]
        yes: bool,
        /// Install under this folder instead of / (for tests and images).
        #[arg(long, value_name = "DIR", hide = true)]
        root: Option<PathBuf>,
    },
    /// Remove exactly what install added.
    Uninstall {
        #[arg(long, value_name = "DIR", hide = true)]
        root: Option<PathBuf>,
    },
}

/// `onebox cluster`: the remedies of the one-server design on real engines.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub action: ClusterAction,
}

#[derive(Debug, Subcommand)]
pub enum ClusterAction {
    /// Start PostgreSQL (primary + streaming replica), N onebox nodes, HAProxy, a hidden DNS primary with Knot and NSD secondaries; print one JSON line when all are healthy.
    Up(ClusterUpArgs),
    /// Show which process is where, its health, DNS serials, PostgreSQL roles and each node's share of requests.
    Status(ClusterStatusArgs),
    /// Stop everything `up` started and wait until no process and no listening socket is left.
    Down(ClusterDataArgs),
    /// The supervisor `up` starts in its own session (not for direct use).
    #[command(hide = true)]
    Supervise(ClusterUpArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ClusterUpArgs {
    /// How many onebox web nodes (on 127.0.1.1 … 127.0.1.N).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=32))]
    pub nodes: u8,
    /// Folder for the cluster's state: everything goes under DIR/cluster.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
    /// The balancer's HTTP address (the apex A record's address); each node uses this port on its own address.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The balancer's HTTPS address (TLS passed through to the nodes).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    pub https: SocketAddr,
    /// The hidden DNS primary's address; the secondaries use this port on 127.0.2.1 (Knot) and 127.0.2.2 (NSD).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_DNS)]
    pub dns: SocketAddr,
}

#[derive(Debug, Args)]
pub struct ClusterDataArgs {
    /// The folder given to `cluster up`.
    #[arg(long, value_name = "DIR", default_value = "data")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct ClusterStatusArgs {
    #[command(flatten)]
    pub folder: ClusterDataArgs,
    /// One JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
}

const VISIT_EXIT_CODES: &str = "\
Exit codes (the hop that failed):
  0  the page was fetched with a status below 400
  1  bad input (an unparseable URL or header) or an internal error
  2  usage error (unknown flag, missing URL)
  3  dns: NXDOMAIN, NODATA, REFUSED, timeout, nothing listening
  4  connect: connection refused or timed out
  5  tls: untrusted CA, name mismatch, expired, or the handshake failed
  6  http: no usable response, or a status of 400 or more (503: maintenance)";

#[derive(Debug, Args)]
pub struct VisitArgs {
    /// The URL to visit, e.g. <http://www.foobar.com:8080/> (http:// is assumed when missing).
    #[arg(value_name = "URL")]
    pub url: String,

    /// The DNS server to ask, and the only one: the system resolver and hosts file are never used.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_DNS)]
    pub dns: SocketAddr,

    /// Print one JSON document with every step instead of the text view.
    #[arg(long)]
    pub json: bool,

    /// Trust the CA certificates in this PEM file for https URLs (onebox's is the "ca" path in serve's ready line).
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// The request method. Default GET, or POST with --data.
    #[arg(long, short = 'X', value_name = "M")]
    pub method: Option<String>,

    /// Send this request body (form-encoded unless -H sets Content-Type).
    #[arg(long, short = 'd', value_name = "BODY")]
    pub data: Option<String>,

    /// Add a request header (repeatable); a Host header replaces the URL's.
    #[arg(short = 'H', long = "header", value_name = "Name: value")]
    pub headers: Vec<String>,

    /// Resolve the name iteratively from the root, like dig +trace, and print each server asked.
    #[arg(long)]
    pub trace: bool,

    /// With --trace: the root server to start from. Default: the toy root, 127.0.0.2 on the default DNS port.
    #[arg(long, value_name = "ADDR", requires = "trace")]
    pub root: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct ResolverArgs {
    #[command(subcommand)]
    pub action: Option<ResolverAction>,

    /// Which OS resolver to configure. Default: the one this machine runs.
    #[arg(long, value_enum, global = true)]
    pub platform: Option<ResolverPlatform>,

    /// Folder of zone files whose zones are routed to onebox (built-in foobar.com when missing).
    #[arg(long, value_name = "DIR", default_value = DEFAULT_ZONES, global = true)]
    pub zones: PathBuf,

    /// onebox's DNS address, where the OS should send questions about our zones.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_DNS, global = true)]
    pub dns: SocketAddr,

    /// When the zones include a root (the toy Internet): the recursive resolver's address, where the OS then sends the website zones. Default: 127.0.0.53 on --dns's port, as serve.
    #[arg(long, value_name = "ADDR", global = true)]
    pub resolver: Option<SocketAddr>,

    /// Prefix every path with this folder (to try the hook out, or for tests).
    #[arg(long, value_name = "DIR", global = true)]
    pub root: Option<PathBuf>,

    /// Consent to change system files (install and uninstall).
    #[arg(long, global = true)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum ResolverAction {
    /// Show the files and commands, changing nothing (the default).
    Print,
    /// Write the files (needs --yes) and say how to apply them.
    Install,
    /// Remove exactly the files install wrote (needs --yes).
    Uninstall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResolverPlatform {
    /// systemd-resolved (most Linux desktops): a resolved.conf drop-in.
    SystemdResolved,
    /// macOS: one /etc/resolver file per zone.
    Macos,
    /// NetworkManager with its dnsmasq plugin.
    Networkmanager,
    /// Every platform above (print only, or install with --root).
    All,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub stack: StackFlags,

    /// onebox's DNS address, UDP and TCP (ip:port).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_DNS)]
    pub dns: SocketAddr,

    /// The CA onebox serve uses (the "ca" path in its ready line); without it HTTPS is not checked.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// When the zones include a root (the toy Internet): the recursive resolver to check. Default: 127.0.0.53 on --dns's port, as serve.
    #[arg(long, value_name = "ADDR")]
    pub resolver: Option<SocketAddr>,

    /// Print one JSON document instead of the text view.
    #[arg(long)]
    pub json: bool,
}

/// Keeps the background log writer running; dropping it flushes the lines still
/// queued (waiting at most about a second for a stuck stderr). Hold it until exit.
#[derive(Debug)]
#[must_use = "dropping it stops the log writer"]
pub struct Logging {
    _guard: Option<crate::log::Guard>,
}

/// Diagnostics go to stderr; stdout is kept for what the user asked for (the ready
/// line, check results, visit traces).
///
/// Lines are written by a background thread (`src/log.rs`) from a bounded
/// buffer that drops lines when full: with stderr a pipe nobody reads, a
/// synchronous writer would block the first task that logs, and with it DNS and
/// HTTP. A lost log line is the lesser harm; `dropped_log_lines` counts them so
/// serve can say so.
pub fn init_logging(format: LogFormat) -> Logging {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn,hickory_proto=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The access log formats its own lines when they are plain compact text
    // (stderr not a terminal): the same bytes, without `fmt`'s machinery.
    let guard = crate::log::install(format == LogFormat::Pretty && !ansi);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::log::Writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Pretty => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Logging { _guard: guard }
}

/// Log lines dropped so far because stderr was not read fast enough.
pub(crate) fn dropped_log_lines() -> usize {
    crate::log::dropped_lines()
}
