//! The visitor box: `onebox visit URL` walks the path a browser takes, from the
//! client side, and reports every hop.
//!
//! A visit is a value first (`Visit`: the steps taken, their timings and the
//! failure if any), printed second: `view` draws it for a person, `--json` dumps
//! it for a script. `hops` does the walking: DNS through *our* server only
//! (`crate::dns::lookup`), asking AAAA and A, TCP connect racing the addresses
//! in the order RFC 8305 (Happy Eyeballs) gives, TLS
//! for https (SNI, trust from `--cacert`, ALPN h2 or http/1.1), then HTTP with
//! the right `Host`. The server's own account of the layers behind
//! it (app, db) comes back in `Server-Timing` (`server_timing`).
//!
//! [`resolver`] is the OS side of the same path: the hook that makes the system
//! resolver (and so every browser) ask onebox for our zones. [`doctor`] checks
//! each of those paths in turn and prints the fix for each one that fails.

pub mod doctor;
pub(crate) mod hops;
pub mod resolver;
pub(crate) mod server_timing;
pub(crate) mod trace_iter;
pub(crate) mod view;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::cli::VisitArgs;
use crate::dns::ChainLink;

/// Exit codes, so scripts can tell which hop failed without parsing text. 1 is bad
/// input (an unparseable URL) or an internal error, and 2 is left to clap, which
/// uses it for usage errors.
pub(crate) mod exit {
    pub(crate) const DNS: u8 = 3;
    pub(crate) const CONNECT: u8 = 4;
    pub(crate) const TLS: u8 = 5;
    /// No usable HTTP response, or a status of 400 or more.
    pub(crate) const HTTP: u8 = 6;
}

/// The layers a visit crosses, in order. `app` and `db` are not visited directly:
/// they are the server's own report of its time in each (`Server-Timing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Hop {
    Dns,
    Connect,
    Tls,
    Http,
    App,
    Db,
}

impl Hop {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Hop::Dns => "dns",
            Hop::Connect => "connect",
            Hop::Tls => "tls",
            Hop::Http => "http",
            Hop::App => "app",
            Hop::Db => "db",
        }
    }
}

/// One visit, start to end: what `--json` prints and the text view draws.
#[derive(Debug, Serialize)]
pub(crate) struct Visit {
    pub(crate) url: String,
    /// The DNS server asked (or that would have been, for an IP-address host).
    pub(crate) dns_server: SocketAddr,
    pub(crate) ok: bool,
    pub(crate) steps: Vec<Step>,
    pub(crate) timing: Timing,
    pub(crate) error: Option<Failure>,
    /// `--trace`: every server asked on the way down from the root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trace: Option<crate::dns::recursor::Trace>,
}

/// One hop: whether it worked, how long it took, and what it saw.
#[derive(Debug, Serialize)]
pub(crate) struct Step {
    pub(crate) hop: Hop,
    pub(crate) ok: bool,
    /// Wall-clock time of the hop as seen by this client; for `app` and `db`, the
    /// server's own figure from `Server-Timing`.
    pub(crate) micros: Option<u64>,
    #[serde(flatten)]
    pub(crate) detail: Detail,
}

/// What each kind of hop records.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Detail {
    Dns {
        server: SocketAddr,
        name: String,
        /// Why no question was asked (an IP-literal host), if none was.
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<String>,
        /// The record types asked (`AAAA+A`), and the ANSWER sections merged:
        /// CNAMEs, then addresses.
        #[serde(skip_serializing_if = "Option::is_none")]
        qtype: Option<&'static str>,
        answers: Vec<ChainLink>,
        /// The address tried first.
        address: Option<IpAddr>,
        /// Every address, in the order connect tries them (RFC 8305 §4: IPv6
        /// first, then the families alternate).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        addresses: Vec<IpAddr>,
        /// Each question asked and what came back.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        questions: Vec<Question>,
    },
    Connect {
        /// The address connected to, or the last one tried when none worked.
        address: SocketAddr,
        /// Each connection attempt, in the order started.
        attempts: Vec<Attempt>,
    },
    Tls {
        sni: String,
        version: Option<String>,
        alpn: Option<String>,
    },
    Http(Box<HttpDetail>),
    Server {
        /// The `Server-Timing` metric name and description.
        metric: String,
        description: Option<String>,
    },
}

/// One DNS question of the dns hop and its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Question {
    pub(crate) qtype: &'static str,
    /// `2 addresses`, `NODATA`, `NXDOMAIN`, `timeout`, ...
    pub(crate) answer: String,
}

/// One TCP connection attempt of the connect hop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Attempt {
    pub(crate) address: SocketAddr,
    pub(crate) ok: bool,
    /// `connected`, `refused`, `timeout`, `error`, or `cancelled` (another
    /// attempt connected first).
    pub(crate) outcome: &'static str,
    /// When it started, from the start of the hop.
    pub(crate) start_micros: u64,
    /// How long it ran until it ended or was cancelled.
    pub(crate) micros: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// The request sent and the response's head.
#[derive(Debug, Default, Serialize)]
pub(crate) struct HttpDetail {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) host: String,
    pub(crate) version: Option<String>,
    pub(crate) status: Option<u16>,
    pub(crate) reason: Option<String>,
    /// The headers worth a look (`Set-Cookie` shows cookie names only).
    pub(crate) headers: Vec<Header>,
    pub(crate) server_timing: Vec<server_timing::Metric>,
    /// From sending the request to the response head.
    pub(crate) first_byte_micros: Option<u64>,
    pub(crate) body_bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// The per-hop times in one place, microseconds; `None` for a hop not reached or
/// not taken (tls for http://).
#[derive(Debug, Default, Serialize)]
pub(crate) struct Timing {
    pub(crate) dns: Option<u64>,
    pub(crate) connect: Option<u64>,
    pub(crate) tls: Option<u64>,
    pub(crate) first_byte: Option<u64>,
    pub(crate) total: u64,
}

/// The failure as `--json` shows it: `{"hop": "connect", "kind":
/// "connection_refused", "message": "..."}`.
#[derive(Debug, Serialize)]
pub(crate) struct Failure {
    pub(crate) hop: Hop,
    pub(crate) kind: &'static str,
    pub(crate) message: String,
    pub(crate) exit_code: u8,
}

/// Why a visit stopped. Each names its hop and says in one sentence what it means.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VisitError {
    #[error("{name} does not exist: {server} answered NXDOMAIN (no such name in the zone)")]
    NxDomain { name: String, server: SocketAddr },
    #[error(
        "{name} exists but has no address record (NODATA), so DNS gives no address to connect to"
    )]
    NoData { name: String },
    #[error(
        "{server} refused to answer for {name} (REFUSED): that server is not authoritative for the name"
    )]
    Refused { name: String, server: SocketAddr },
    #[error(
        "nothing answered DNS at {server} within {secs} s (timeout): is `onebox serve` running there?"
    )]
    DnsTimeout { server: SocketAddr, secs: u64 },
    #[error(
        "nothing listens for DNS at {server} (connection refused): is `onebox serve` running there?"
    )]
    DnsUnreachable { server: SocketAddr },
    #[error("{server} answered {rcode} for {name}, so there is no address to connect to")]
    DnsRcode {
        name: String,
        server: SocketAddr,
        rcode: String,
    },
    #[error("the DNS lookup of {name} at {server} failed: {detail}")]
    Dns {
        name: String,
        server: SocketAddr,
        detail: String,
    },
    #[error("{}", refused_message(addrs, host))]
    ConnectionRefused {
        addrs: Vec<SocketAddr>,
        host: String,
    },
    #[error("{addr} did not accept a connection within {secs} s (connect timeout)")]
    ConnectTimeout { addr: SocketAddr, secs: u64 },
    #[error("could not connect to {addr}: {detail}")]
    Connect { addr: SocketAddr, detail: String },
    #[error(
        "the certificate of {host} is not signed by a CA you trust{}",
        if *cacert_given { " (the --cacert file)" } else { ": pass onebox's CA with --cacert FILE (the \"ca\" path in serve's ready line)" }
    )]
    TlsUntrusted { host: String, cacert_given: bool },
    #[error("the certificate is not valid for {host} (name mismatch): {detail}")]
    TlsNameMismatch { host: String, detail: String },
    #[error("the certificate of {host} has expired or is not valid yet: {detail}")]
    TlsExpired { host: String, detail: String },
    #[error("the TLS handshake with {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("{addr} did not finish the TLS handshake within {secs} s")]
    TlsTimeout { addr: SocketAddr, secs: u64 },
    #[error("{addr} accepted the connection but sent no response within {secs} s")]
    HttpTimeout { addr: SocketAddr, secs: u64 },
    #[error("the HTTP exchange with {addr} failed: {detail}")]
    Http { addr: SocketAddr, detail: String },
    #[error("the site is down for maintenance (503 Service Unavailable){}",
        retry_after.as_deref().map(|r| format!(", retry after {r}")).unwrap_or_default())]
    Maintenance { retry_after: Option<String> },
    #[error("the server answered {status}: {meaning}")]
    HttpStatus { status: String, meaning: String },
}

/// Every address refused: with one address that is the single point of failure
/// the diagram warns about; with several, each of them is down.
fn refused_message(addrs: &[SocketAddr], host: &str) -> String {
    match addrs {
        [addr] => format!(
            "nothing listens on {addr} (connection refused): DNS points {host} at an address where no server runs, and this is what a single point of failure looks like"
        ),
        _ => format!(
            "nothing listens on any of {} (connection refused): DNS points {host} at {} addresses and no server runs at any of them",
            addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            addrs.len()
        ),
    }
}

impl VisitError {
    pub(crate) fn hop(&self) -> Hop {
        use VisitError::*;
        match self {
            NxDomain { .. }
            | NoData { .. }
            | Refused { .. }
            | DnsTimeout { .. }
            | DnsUnreachable { .. }
            | DnsRcode { .. }
            | Dns { .. } => Hop::Dns,
            ConnectionRefused { .. } | ConnectTimeout { .. } | Connect { .. } => Hop::Connect,
            TlsUntrusted { .. }
            | TlsNameMismatch { .. }
            | TlsExpired { .. }
            | Tls { .. }
            | TlsTimeout { .. } => Hop::Tls,
            HttpTimeout { .. } | Http { .. } | Maintenance { .. } | HttpStatus { .. } => Hop::Http,
        }
    }

    /// A stable name for scripts.
    pub(crate) fn kind(&self) -> &'static str {
        use VisitError::*;
        match self {
            NxDomain { .. } => "nxdomain",
            NoData { .. } => "nodata",
            Refused { .. } => "refused",
            DnsTimeout { .. } => "dns_timeout",
            DnsUnreachable { .. } => "dns_unreachable",
            DnsRcode { .. } => "dns_rcode",
            Dns { .. } => "dns_error",
            ConnectionRefused { .. } => "connection_refused",
            ConnectTimeout { .. } => "connect_timeout",
            Connect { .. } => "connect_error",
            TlsUntrusted { .. } => "tls_untrusted",
            TlsNameMismatch { .. } => "tls_name_mismatch",
            TlsExpired { .. } => "tls_expired",
            Tls { .. } => "tls_error",
            TlsTimeout { .. } => "tls_timeout",
            HttpTimeout { .. } => "http_timeout",
            Http { .. } => "http_error",
            Maintenance { .. } => "maintenance",
            HttpStatus { .. } => "http_status",
        }
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self.hop() {
            Hop::Dns => exit::DNS,
            Hop::Connect => exit::CONNECT,
            Hop::Tls => exit::TLS,
            Hop::Http | Hop::App | Hop::Db => exit::HTTP,
        }
    }

    pub(crate) fn to_failure(&self) -> Failure {
        Failure {
            hop: self.hop(),
            kind: self.kind(),
            message: self.to_string(),
            exit_code: self.exit_code(),
        }
    }
}

/// Writes a command's output to stdout. A reader that went away (`| head`) is not
/// an error worth a message.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `onebox visit URL`: visit, then print the trace (text or JSON). The exit code
/// says which hop failed; see `exit`.
pub fn run(args: VisitArgs) -> anyhow::Result<ExitCode> {
    let request = hops::Request::from_args(&args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let visit = runtime.block_on(hops::visit(&request, &hops::Limits::default()));
    let text = if args.json {
        serde_json::to_string_pretty(&visit)? + "\n"
    } else {
        let paint = view::Paint::for_stdout();
        let traced = match (&visit.trace, request.trace_root) {
            (Some(trace), Some(root)) => trace_iter::render(trace, root, &paint),
            _ => String::new(),
        };
        traced + &view::render(&visit, &paint)
    };
    print_out(&text)?;
    Ok(match &visit.error {
        None => ExitCode::SUCCESS,
        Some(failure) => ExitCode::from(failure.exit_code),
    })
}
