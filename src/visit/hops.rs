//! Walks the hops of one visit in order (dns, connect, tls, http) and records a
//! [`Step`] for each, stopping at the first that fails.
//!
//! Each hop is a function that pushes its step and hands the next hop what it
//! needs: DNS gives the addresses (AAAA and A), connect races them into one TCP
//! stream as RFC 8305 (Happy Eyeballs v2) describes, TLS (for https) gives an
//! encrypted stream, and HTTP the response. Nothing here prints; the caller
//! renders the [`Visit`] it gets back.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::{
    Attempt, Detail, Header, Hop, HttpDetail, Question, Step, Timing, Visit, VisitError,
    server_timing,
};
use crate::cli::VisitArgs;
use crate::dns::ChainLink;
use crate::dns::lookup::{self, Ask, LookupError};

/// How long each hop may take before the visit gives up on it.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) connect: Duration,
    /// From sending the request to the response head.
    pub(crate) response: Duration,
    /// For reading the whole body.
    pub(crate) body: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(10),
            body: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// The URL taken apart: where to connect and what to send.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) scheme: Scheme,
    /// Lower case, without IPv6 brackets.
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Path and query, at least `/`.
    pub(crate) path: String,
    /// `host[:port]`, the port only when it is not the scheme's default.
    pub(crate) host_header: String,
    /// Set when the host is an IP address: then there is nothing to look up.
    pub(crate) ip: Option<IpAddr>,
}

impl Target {
    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        // `onebox visit www.foobar.com` is what a learner types first: treat it as http.
        let with_scheme = if text.contains("://") {
            text.to_string()
        } else {
            format!("http://{text}")
        };
        let uri: Uri = with_scheme
            .parse()
            .with_context(|| format!("{text:?} is not a URL (try http://www.foobar.com:8080/)"))?;
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => bail!("unsupported URL scheme {other:?}: use http:// or https://"),
            None => bail!("{text:?} has no scheme: use http:// or https://"),
        };
        let Some(authority) = uri.authority() else {
            bail!("{text:?} has no host (try http://www.foobar.com:8080/)");
        };
        if authority.as_str().contains('@') {
            bail!("{text:?} has credentials in it (user@host), which visit does not send");
        }
        let raw_host = authority.host();
        if raw_host.is_empty() {
            bail!("{text:?} has no host (try http://www.foobar.com:8080/)");
        }
        let host = raw_host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let default_port = match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        let port = authority.port_u16().unwrap_or(default_port);
        let host_header = if port == default_port {
            raw_host.to_ascii_lowercase()
        } else {
            format!("{}:{port}", raw_host.to_ascii_lowercase())
        };
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
            .to_string();
        let ip = host.parse::<IpAddr>().ok();
        let scheme_text = if scheme == Scheme::Http {
            "http"
        } else {
            "https"
        };
        Ok(Self {
            url: format!("{scheme_text}://{host_header}{path}"),
            scheme,
            host,
            port,
            path,
            host_header,
            ip,
        })
    }
}

/// Everything one visit needs, checked before any packet is sent.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) target: Target,
    pub(crate) dns: SocketAddr,
    pub(crate) method: Method,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Option<Bytes>,
    /// CA certificates from `--cacert`: the only roots the TLS hop trusts.
    pub(crate) trust: Vec<CertificateDer<'static>>,
    pub(crate) cacert_given: bool,
    /// `--trace`: resolve iteratively from this root server instead of asking `dns`.
    pub(crate) trace_root: Option<SocketAddr>,
}

impl Request {
    pub(crate) fn from_args(args: &VisitArgs) -> anyhow::Result<Self> {
        let target = Target::parse(&args.url)?;
        // Like curl: a body without a method means POST.
        let method = match (&args.method, &args.data) {
            (Some(m), _) => Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("{m:?} is not an HTTP method"))?,
            (None, Some(_)) => Method::POST,
            (None, None) => Method::GET,
        };
        let mut headers = Vec::new();
        for line in &args.headers {
            let Some((name, value)) = line.split_once(':') else {
                bail!("bad header {line:?}: write it as 'Name: value'");
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| anyhow::anyhow!("bad header name in {line:?}"))?;
            let value = HeaderValue::from_str(value.trim())
                .map_err(|_| anyhow::anyhow!("bad header value in {line:?}"))?;
            headers.push((name, value));
        }
        let mut trust = Vec::new();
        if let Some(path) = &args.cacert {
            if target.scheme == Scheme::Http {
                tracing::warn!(
                    "--cacert {} is ignored: {} is not https",
                    path.display(),
                    target.url
                );
            } else {
                trust = load_certs(path)?;
            }
        }
        Ok(Self {
            target,
            dns: args.dns,
            method,
            headers,
            body: args.data.clone().map(Bytes::from),
            trust,
            cacert_given: args.cacert.is_some(),
            trace_root: args
                .trace
                .then(|| args.root.unwrap_or_else(super::trace_iter::default_root)),
        })
    }

    /// A plain GET, for `onebox doctor`.
    pub(crate) fn get(target: Target, dns: SocketAddr) -> Self {
        Self {
            target,
            dns,
            method: Method::GET,
            headers: Vec::new(),
            body: None,
            trust: Vec::new(),
            cacert_given: false,
            trace_root: None,
        }
    }
}

pub(crate) fn load_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect())
        .map_err(|e| anyhow::anyhow!("failed to read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "{} holds no PEM certificate (BEGIN CERTIFICATE)",
            path.display()
        );
    }
    Ok(certs)
}

/// Visits `request.target` and returns what happened. Never fails: a failure is
/// part of the result, in `Visit::error`, with the steps that led to it.
pub(crate) async fn visit(request: &Request, limits: &Limits) -> Visit {
    let started = Instant::now();
    let mut visit = Visit {
        url: request.target.url.clone(),
        dns_server: request.trace_root.unwrap_or(request.dns),
        ok: false,
        steps: Vec::new(),
        timing: Timing::default(),
        error: None,
        trace: None,
    };
    let result = walk(request, limits, &mut visit.steps, &mut visit.trace).await;
    visit.timing = timing_of(&visit.steps, started.elapsed());
    match result {
        Ok(()) => visit.ok = true,
        Err(err) => visit.error = Some(err.to_failure()),
    }
    visit
}

fn timing_of(steps: &[Step], total: Duration) -> Timing {
    let of = |hop: Hop| steps.iter().find(|s| s.hop == hop).and_then(|s| s.micros);
    let first_byte = steps.iter().find_map(|s| match &s.detail {
        Detail::Http(http) => http.first_byte_micros,
        _ => None,
    });
    Timing {
        dns: of(Hop::Dns),
        connect: of(Hop::Connect),
        tls: of(Hop::Tls),
        first_byte,
        total: total.as_micros() as u64,
    }
}

async fn walk(
    request: &Request,
    limits: &Limits,
    steps: &mut Vec<Step>,
    trace: &mut Option<crate::dns::recursor::Trace>,
) -> Result<(), VisitError> {
    let target = &request.target;
    let ips = match (request.trace_root, target.ip) {
        (Some(root), None) => {
            let (traced, ips) = super::trace_iter::dns_hop(&target.host, root, steps).await;
            *trace = traced;
            ips?
        }
        _ => dns_hop(target, request.dns, steps).await?,
    };
    let (stream, addr) = connect_hop(&ips, target, limits, steps).await?;
    let (io, h2): (Box<dyn Io>, bool) = match target.scheme {
        Scheme::Http => (Box::new(stream), false),
        Scheme::Https => tls_hop(stream, addr, request, limits, steps).await?,
    };
    http_hop(io, h2, addr, request, limits, steps).await
}

/// A byte stream HTTP can run over: a TCP stream, or TLS on top of one.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn micros_since(start: Instant) -> Option<u64> {
    Some(start.elapsed().as_micros() as u64)
}

/// RFC 8305 §5: how long one connection attempt runs alone before the next
/// address is tried beside it. The RFC recommends 250 ms.
pub(crate) const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// RFC 8305 §4: IPv6 first, then the families alternate, each keeping the order
/// DNS gave. Duplicates are dropped.
pub(crate) fn happy_eyeballs_order(addresses: &[IpAddr]) -> Vec<IpAddr> {
    let mut unique: Vec<IpAddr> = Vec::new();
    for address in addresses {
        if !unique.contains(address) {
            unique.push(*address);
        }
    }
    let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = unique.into_iter().partition(IpAddr::is_ipv6);
    let (mut v6, mut v4) = (v6.into_iter(), v4.into_iter());
    let mut out = Vec::new();
    loop {
        match (v6.next(), v4.next()) {
            (None, None) => return out,
            (first, second) => out.extend(first.into_iter().chain(second)),
        }
    }
}

/// One question's outcome, as the dns step reports it.
fn question(ask: Ask, result: &Result<lookup::Answer, LookupError>) -> Question {
    let answer = match result {
        Ok(answer) => match answer.addresses.len() {
            0 => LookupError::NoData.to_string(),
            1 => "1 address".to_string(),
            n => format!("{n} addresses"),
        },
        Err(err) => err.to_string(),
    };
    Question {
        qtype: ask.as_str(),
        answer,
    }
}

/// Asks our DNS server (and only it) for the host's addresses: AAAA and A at
/// once, as RFC 8305 §3 has a client do, and returns them in the order connect
/// tries them.
async fn dns_hop(
    target: &Target,
    server: SocketAddr,
    steps: &mut Vec<Step>,
) -> Result<Vec<IpAddr>, VisitError> {
    let name = target.host.clone();
    let step =
        |ok, micros, answers, addresses: Vec<IpAddr>, questions, skipped: Option<String>| Step {
            hop: Hop::Dns,
            ok,
            micros,
            detail: Detail::Dns {
                server,
                name: name.clone(),
                qtype: skipped.is_none().then_some("AAAA+A"),
                skipped,
                answers,
                address: addresses.first().copied(),
                addresses,
                questions,
            },
        };
    if let Some(ip) = target.ip {
        steps.push(step(
            true,
            None,
            Vec::new(),
            vec![ip],
            Vec::new(),
            Some("the host is an IP address: nothing to look up".to_string()),
        ));
        return Ok(vec![ip]);
    }
    let started = Instant::now();
    let lookup = lookup::Lookup::new(server).map_err(|e| VisitError::Dns {
        name: name.clone(),
        server,
        detail: format!("{e:#}"),
    })?;
    // AAAA is sent first, and neither waits for the other.
    let (v6, v4) = tokio::join!(lookup.ask(&name, Ask::Aaaa), lookup.ask(&name, Ask::A));
    let micros = micros_since(started);
    let questions = vec![question(Ask::Aaaa, &v6), question(Ask::A, &v4)];
    let mut answers: Vec<ChainLink> = Vec::new();
    let mut found = Vec::new();
    for answer in [&v6, &v4].into_iter().flatten() {
        for link in &answer.records {
            if !answers.contains(link) {
                answers.push(link.clone());
            }
        }
        found.extend(answer.addresses.iter().copied());
    }
    // Both answers repeat the CNAME chain: show it once, before the addresses.
    answers.sort_by_key(|link| link.rtype != "CNAME");
    let addresses = happy_eyeballs_order(&found);
    let ok = !addresses.is_empty();
    steps.push(step(
        ok,
        micros,
        answers,
        addresses.clone(),
        questions,
        None,
    ));
    if ok {
        return Ok(addresses);
    }
    // No address either way: the A answer says why, as it did before AAAA was asked.
    Err(match v4 {
        Ok(_) | Err(LookupError::NoData) => VisitError::NoData { name },
        Err(LookupError::NxDomain) => VisitError::NxDomain { name, server },
        Err(LookupError::Refused) => VisitError::Refused { name, server },
        Err(LookupError::Rcode(rcode)) => VisitError::DnsRcode {
            name,
            server,
            rcode,
        },
        Err(LookupError::Timeout) => VisitError::DnsTimeout {
            server,
            secs: lookup::TIMEOUT.as_secs(),
        },
        Err(LookupError::Unreachable) => VisitError::DnsUnreachable { server },
        Err(LookupError::Other(detail)) => VisitError::Dns {
            name,
            server,
            detail,
        },
    })
}

/// Microseconds from `start` to now, on tokio's clock (which tests can pause).
fn micros_from(start: tokio::time::Instant) -> u64 {
    start.elapsed().as_micros() as u64
}

/// Races connections to `addrs` as RFC 8305 §5 does: one attempt at a time, the
/// next starting when the one before fails or after [`CONNECTION_ATTEMPT_DELAY`]
/// without an answer, whichever is first; the first to connect wins and the
/// others are cancelled. Returns the winner, if any, and every attempt made.
/// `connect` opens one connection (`TcpStream::connect`; tests pass a fake).
async fn race<F, Fut>(
    addrs: &[SocketAddr],
    timeout: Duration,
    connect: F,
) -> (Option<(TcpStream, SocketAddr)>, Vec<Attempt>)
where
    F: Fn(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<TcpStream>> + Send + 'static,
{
    let started = tokio::time::Instant::now();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut running = tokio::task::JoinSet::new();
    let mut next_at = tokio::time::Instant::now();
    loop {
        let due = running.is_empty() || tokio::time::Instant::now() >= next_at;
        if attempts.len() < addrs.len() && due {
            let (index, address) = (attempts.len(), addrs[attempts.len()]);
            // "cancelled" until it ends: what it stays if another attempt wins first.
            attempts.push(Attempt {
                address,
                ok: false,
                outcome: "cancelled",
                start_micros: micros_from(started),
                micros: 0,
                detail: None,
            });
            let attempt = connect(address);
            running.spawn(async move { (index, tokio::time::timeout(timeout, attempt).await) });
            next_at = tokio::time::Instant::now() + CONNECTION_ATTEMPT_DELAY;
            continue;
        }
        if running.is_empty() {
            return (None, attempts);
        }
        let more = attempts.len() < addrs.len();
        tokio::select! {
            joined = running.join_next() => {
                // A task that panicked or was aborted leaves its attempt "cancelled".
                let Some(Ok((index, result))) = joined else { continue };
                let attempt = &mut attempts[index];
                attempt.micros = micros_from(started).saturating_sub(attempt.start_micros);
                match result {
                    Ok(Ok(stream)) => {
                        attempt.ok = true;
                        attempt.outcome = "connected";
                        let address = attempt.address;
                        running.abort_all();
                        let now = micros_from(started);
                        for other in attempts.iter_mut().filter(|a| a.outcome == "cancelled") {
                            other.micros = now.saturating_sub(other.start_micros);
                        }
                        return (Some((stream, address)), attempts);
                    }
                    Ok(Err(e)) => {
                        attempt.outcome = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                            "refused"
                        } else {
                            "error"
                        };
                        attempt.detail = Some(e.to_string());
                    }
                    Err(_) => attempt.outcome = "timeout",
                }
                // A failure starts the next attempt at once, without the delay.
                next_at = tokio::time::Instant::now();
            }
            () = tokio::time::sleep_until(next_at), if more => {}
        }
    }
}

async fn connect_hop(
    ips: &[IpAddr],
    target: &Target,
    limits: &Limits,
    steps: &mut Vec<Step>,
) -> Result<(TcpStream, SocketAddr), VisitError> {
    let addrs: Vec<SocketAddr> = ips
        .iter()
        .map(|ip| SocketAddr::new(*ip, target.port))
        .collect();
    let started = Instant::now();
    let (winner, attempts) = race(&addrs, limits.connect, TcpStream::connect).await;
    let address = match (&winner, attempts.last()) {
        (Some((_, address)), _) => *address,
        (None, Some(last)) => last.address,
        (None, None) => {
            return Err(VisitError::Connect {
                addr: SocketAddr::new(IpAddr::from([0, 0, 0, 0]), target.port),
                detail: "no address to connect to".to_string(),
            });
        }
    };
    steps.push(Step {
        hop: Hop::Connect,
        ok: winner.is_some(),
        micros: micros_since(started),
        detail: Detail::Connect {
            address,
            attempts: attempts.clone(),
        },
    });
    if let Some((stream, address)) = winner {
        // Requests are small: send them at once rather than waiting to fill a segment.
        let _ = stream.set_nodelay(true);
        return Ok((stream, address));
    }
    let refused: Vec<SocketAddr> = attempts
        .iter()
        .filter(|a| a.outcome == "refused")
        .map(|a| a.address)
        .collect();
    if refused.len() == attempts.len() {
        return Err(VisitError::ConnectionRefused {
            addrs: refused,
            host: target.host.clone(),
        });
    }
    if let Some(slow) = attempts.iter().find(|a| a.outcome == "timeout") {
        return Err(VisitError::ConnectTimeout {
            addr: slow.address,
            secs: limits.connect.as_secs(),
        });
    }
    let failed = attempts
        .iter()
        .find(|a| a.outcome == "error")
        .unwrap_or(&attempts[0]);
    Err(VisitError::Connect {
        addr: failed.address,
        detail: failed.detail.clone().unwrap_or_default(),
    })
}

/// The TLS hop: SNI is the URL's host, trust comes only from `--cacert`, ALPN
/// offers h2 and http/1.1. Returns the encrypted stream and whether h2 was agreed.
async fn tls_hop(
    stream: TcpStream,
    addr: SocketAddr,
    request: &Request,
    limits: &Limits,
    steps: &mut Vec<Step>,
) -> Result<(Box<dyn Io>, bool), VisitError> {
    // A certificate names `www.foobar.com`, never the absolute `www.foobar.com.`.
    let host = request.target.host.trim_end_matches('.').to_string();
    let mut detail = Detail::Tls {
        sni: host.clone(),
        version: None,
        alpn: None,
    };
    let started = Instant::now();
    let result = async {
        let config = client_config(&request.trust).map_err(|detail| VisitError::Tls {
            host: host.clone(),
            detail,
        })?;
        let name = ServerName::try_from(host.clone()).map_err(|e| VisitError::Tls {
            host: host.clone(),
            detail: format!("{host} cannot be a TLS server name: {e}"),
        })?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        match tokio::time::timeout(limits.connect, connector.connect(name, stream)).await {
            Err(_) => Err(VisitError::TlsTimeout {
                addr,
                secs: limits.connect.as_secs(),
            }),
            Ok(Err(e)) => Err(tls_failure(&e, &host, request.cacert_given)),
            Ok(Ok(tls)) => Ok(tls),
        }
    }
    .await;
    let micros = micros_since(started);
    match result {
        Ok(tls) => {
            let (_, conn) = tls.get_ref();
            let alpn = conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            let h2 = alpn.as_deref() == Some("h2");
            detail = Detail::Tls {
                sni: host,
                version: conn.protocol_version().map(tls_version),
                alpn,
            };
            steps.push(Step {
                hop: Hop::Tls,
                ok: true,
                micros,
                detail,
            });
            Ok((Box::new(tls), h2))
        }
        Err(err) => {
            steps.push(Step {
                hop: Hop::Tls,
                ok: false,
                micros,
                detail,
            });
            Err(err)
        }
    }
}

fn client_config(trust: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in trust {
        roots
            .add(cert.clone())
            .map_err(|e| format!("a --cacert certificate cannot be a trust root: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn tls_version(version: rustls::ProtocolVersion) -> String {
    match version {
        rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".into(),
        rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".into(),
        other => format!("{other:?}"),
    }
}

/// Names the TLS failure a person can act on: whom to trust, which name to use.
fn tls_failure(err: &std::io::Error, host: &str, cacert_given: bool) -> VisitError {
    use rustls::CertificateError as C;
    let host = host.to_string();
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert)) => match cert {
            C::UnknownIssuer | C::BadSignature => VisitError::TlsUntrusted { host, cacert_given },
            C::NotValidForName | C::NotValidForNameContext { .. } => VisitError::TlsNameMismatch {
                detail: cert_detail(cert),
                host,
            },
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => VisitError::TlsExpired {
                detail: cert_detail(cert),
                host,
            },
            other => VisitError::Tls {
                detail: format!("bad certificate: {}", cert_detail(other)),
                host,
            },
        },
        Some(other) => VisitError::Tls {
            detail: other.to_string(),
            host,
        },
        None => VisitError::Tls {
            detail: err.to_string(),
            host,
        },
    }
}

fn cert_detail(err: &rustls::CertificateError) -> String {
    rustls::Error::InvalidCertificate(err.clone()).to_string()
}

/// Response headers worth showing: what the page is, where it sends you, when to
/// come back, and the server's own timing. Cookies show names only: values are
/// secrets a terminal or a CI log should not keep.
const INTERESTING: &[&str] = &[
    "content-type",
    "content-length",
    "location",
    "retry-after",
    "server-timing",
    "set-cookie",
];

async fn http_hop(
    io: Box<dyn Io>,
    h2: bool,
    addr: SocketAddr,
    request: &Request,
    limits: &Limits,
    steps: &mut Vec<Step>,
) -> Result<(), VisitError> {
    let target = &request.target;
    let mut detail = HttpDetail {
        method: request.method.to_string(),
        target: target.path.clone(),
        host: target.host_header.clone(),
        ..HttpDetail::default()
    };
    let started = Instant::now();
    let http_error = |detail: String| VisitError::Http { addr, detail };
    let result: Result<_, VisitError> = async {
        let mut sender = Sender::handshake(io, h2)
            .await
            .map_err(|e| http_error(error_chain(&e)))?;
        let outgoing = build_request(request, h2, &mut detail).map_err(http_error)?;
        let response = tokio::time::timeout(limits.response, sender.send(outgoing))
            .await
            .map_err(|_| VisitError::HttpTimeout {
                addr,
                secs: limits.response.as_secs(),
            })?
            .map_err(|e| http_error(error_chain(&e)))?;
        detail.first_byte_micros = micros_since(started);
        Ok(response)
    }
    .await;
    let response = match result {
        Ok(response) => response,
        Err(err) => {
            steps.push(http_step(false, micros_since(started), detail));
            return Err(err);
        }
    };

    let status = response.status();
    detail.status = Some(status.as_u16());
    detail.reason = status.canonical_reason().map(str::to_string);
    detail.version = Some(format!("{:?}", response.version()));
    detail.headers = interesting_headers(response.headers());
    detail.server_timing = server_timing::parse(
        response
            .headers()
            .get_all("server-timing")
            .iter()
            .filter_map(|v| v.to_str().ok()),
    );
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);

    // Read the whole body, counting bytes: "total" ends when the last byte arrives.
    let mut body = response.into_body();
    let mut bytes = 0u64;
    let read = tokio::time::timeout(limits.body, async {
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok::<_, hyper::Error>(())
    })
    .await;
    detail.body_bytes = Some(bytes);
    let body_error = match read {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(http_error(format!(
            "the body broke off after {bytes} bytes: {}",
            error_chain(&e)
        ))),
        Err(_) => Some(http_error(format!(
            "the body was still arriving after {} s ({bytes} bytes so far)",
            limits.body.as_secs()
        ))),
    };
    let status_error = status_failure(status, &request.method, retry_after);
    let error = body_error.or(status_error);
    let metrics = detail.server_timing.clone();
    steps.push(http_step(error.is_none(), micros_since(started), detail));

    // The server's own account of the layers behind it, in its words.
    for metric in metrics {
        let hop = match metric.name.as_str() {
            "app" => Hop::App,
            "db" => Hop::Db,
            _ => continue,
        };
        steps.push(Step {
            hop,
            ok: true,
            micros: metric.micros(),
            detail: Detail::Server {
                metric: metric.name,
                description: metric.desc,
            },
        });
    }
    error.map_or(Ok(()), Err)
}

fn http_step(ok: bool, micros: Option<u64>, detail: HttpDetail) -> Step {
    Step {
        hop: Hop::Http,
        ok,
        micros,
        detail: Detail::Http(Box::new(detail)),
    }
}

/// HTTP/1.1 over a plain or TLS stream, or HTTP/2 when ALPN agreed on h2.
enum Sender {
    Http1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    Http2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn handshake(io: Box<dyn Io>, h2: bool) -> Result<Self, hyper::Error> {
        let io = TokioIo::new(io);
        // Each connection task drives the socket; it ends when the exchange is over.
        if h2 {
            let (sender, conn) =
                hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                    .await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Self::Http2(sender))
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Self::Http1(sender))
        }
    }

    async fn send(
        &mut self,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, hyper::Error> {
        match self {
            Self::Http1(sender) => sender.send_request(request).await,
            Self::Http2(sender) => sender.send_request(request).await,
        }
    }
}

fn build_request(
    request: &Request,
    h2: bool,
    detail: &mut HttpDetail,
) -> Result<hyper::Request<Full<Bytes>>, String> {
    let target = &request.target;
    let given = |name: &str| request.headers.iter().any(|(n, _)| n == name);
    // HTTP/1.1 names the site in Host; HTTP/2 in the :authority pseudo-header,
    // which hyper takes from an absolute URI.
    let uri = if h2 {
        let authority = request
            .headers
            .iter()
            .find(|(n, _)| n == "host")
            .and_then(|(_, v)| v.to_str().ok())
            .unwrap_or(&target.host_header);
        format!("https://{authority}{}", target.path)
    } else {
        target.path.clone()
    };
    let mut builder = hyper::Request::builder()
        .method(request.method.clone())
        .uri(uri);
    if !h2 && !given("host") {
        builder = builder.header("host", target.host_header.as_str());
    }
    if !given("user-agent") {
        builder = builder.header("user-agent", concat!("onebox/", env!("CARGO_PKG_VERSION")));
    }
    if !given("accept") {
        builder = builder.header("accept", "*/*");
    }
    if request.body.is_some() && !given("content-type") {
        // curl's default for -d, so `--data 'a=1&b=2'` posts a form.
        builder = builder.header("content-type", "application/x-www-form-urlencoded");
    }
    for (name, value) in &request.headers {
        if name == "host" {
            detail.host = value.to_str().unwrap_or_default().to_string();
            if h2 {
                continue; // carried as :authority
            }
        }
        builder = builder.header(name, value);
    }
    builder
        .body(Full::new(request.body.clone().unwrap_or_default()))
        .map_err(|e| format!("could not build the request: {e}"))
}

fn interesting_headers(headers: &hyper::HeaderMap) -> Vec<Header> {
    let mut out = Vec::new();
    for name in INTERESTING {
        let values: Vec<String> = headers
            .get_all(*name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        if values.is_empty() {
            continue;
        }
        let value = if *name == "set-cookie" {
            let names: Vec<&str> = values
                .iter()
                .map(|v| v.split(['=', ';']).next().unwrap_or_default().trim())
                .collect();
            format!("{} (values hidden)", names.join(", "))
        } else {
            values.join(", ")
        };
        out.push(Header {
            name: name.to_string(),
            value,
        });
    }
    out
}

/// A status of 400 or more ends the visit as a failure of the http hop, with what
/// the status means for the person visiting.
fn status_failure(
    status: StatusCode,
    method: &Method,
    retry_after: Option<String>,
) -> Option<VisitError> {
    if status.as_u16() < 400 {
        return None;
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return Some(VisitError::Maintenance { retry_after });
    }
    let meaning = match status.as_u16() {
        400 => "the server could not understand the request".to_string(),
        401 => "the page needs you to sign in".to_string(),
        403 => "the server refuses to serve this page".to_string(),
        404 => "there is no page at this path (or the server does not serve this Host)".to_string(),
        405 => format!("this path does not accept {method}"),
        408 => "the server gave up waiting for the request".to_string(),
        413 => "the request body is too large for the server".to_string(),
        429 => "too many requests: the server asks you to slow down".to_string(),
        502 | 504 => "a server behind this one failed or did not answer".to_string(),
        500..=599 => "the server failed while handling the request".to_string(),
        _ => "the server rejected the request".to_string(),
    };
    Some(VisitError::HttpStatus {
        status: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
        .trim_end()
        .to_string(),
        meaning,
    })
}

/// hyper's errors are terse ("connection error"); the cause underneath says more.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_tried_ipv6_first_then_alternating() {
        let ips: Vec<IpAddr> = ["127.0.0.1", "127.0.0.2", "::1", "127.0.0.1", "::2", "::3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let order: Vec<String> = happy_eyeballs_order(&ips)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(order, ["::1", "127.0.0.1", "::2", "127.0.0.2", "::3"]);
    }

    #[tokio::test]
    async fn a_refused_attempt_hands_over_to_the_next_address_and_both_are_reported() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // A port that was just free: nothing listens there, so it refuses.
        let closed = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let (winner, attempts) =
            race(&[closed, open], Duration::from_secs(5), TcpStream::connect).await;
        assert_eq!(winner.map(|(_, a)| a), Some(open));
        let outcomes: Vec<_> = attempts.iter().map(|a| (a.address, a.outcome)).collect();
        assert_eq!(outcomes, [(closed, "refused"), (open, "connected")]);
        assert!(attempts[1].ok && !attempts[0].ok);
        assert!(attempts[1].start_micros >= attempts[0].start_micros);

        let (winner, attempts) = race(&[closed], Duration::from_secs(5), TcpStream::connect).await;
        assert!(winner.is_none());
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, "refused");
    }

    /// With time paused, tokio's clock only moves when every task waits on a
    /// timer, so the delays below are exact and the test takes no real time. No
    /// real connect runs while it is paused: the winner's stream is made before.
    #[tokio::test(start_paused = true)]
    async fn a_silent_attempt_gets_company_after_the_attempt_delay_and_is_cancelled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let stream = std::net::TcpStream::connect(open).unwrap();
        stream.set_nonblocking(true).unwrap();
        let ready = Arc::new(std::sync::Mutex::new(Some(
            TcpStream::from_std(stream).unwrap(),
        )));
        let silent: SocketAddr = "[::1]:9".parse().unwrap();
        // The IPv6 attempt never answers; the IPv4 one answers after 100 ms.
        let connect = move |address: SocketAddr| {
            let ready = ready.clone();
            async move {
                if address == silent {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                let stream = ready.lock().unwrap().take();
                stream.ok_or_else(|| std::io::Error::other("connected twice"))
            }
        };
        let (winner, attempts) = race(&[silent, open], Duration::from_secs(5), connect).await;
        assert_eq!(winner.map(|(_, a)| a), Some(open));
        let seen: Vec<_> = attempts
            .iter()
            .map(|a| (a.address, a.outcome, a.start_micros / 1000, a.micros / 1000))
            .collect();
        assert_eq!(
            seen,
            [(silent, "cancelled", 0, 350), (open, "connected", 250, 100)],
            "the second attempt starts 250 ms after the first (RFC 8305 §5)"
        );
    }

    #[test]
    fn url_parts_and_host_header() {
        let t = Target::parse("http://WWW.FooBar.com:8080/a?b=1").unwrap();
        assert_eq!(t.host, "www.foobar.com");
        assert_eq!(t.port, 8080);
        assert_eq!(t.path, "/a?b=1");
        assert_eq!(t.host_header, "www.foobar.com:8080");
        assert_eq!(t.ip, None);

        let t = Target::parse("www.foobar.com").unwrap();
        assert_eq!(t.scheme, Scheme::Http);
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        assert_eq!(t.host_header, "www.foobar.com");
        assert_eq!(t.url, "http://www.foobar.com/");

        let t = Target::parse("https://foobar.com/").unwrap();
        assert_eq!((t.scheme, t.port), (Scheme::Https, 443));

        let t = Target::parse("http://[::1]:8080/").unwrap();
        assert_eq!(t.ip, Some("::1".parse().unwrap()));
        assert_eq!(t.host_header, "[::1]:8080");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, says) in [
            ("ftp://foobar.com/", "scheme"),
            ("http://user:pw@foobar.com/", "credentials"),
            ("http://", "not a URL"),
        ] {
            let err = format!("{:#}", Target::parse(url).unwrap_err());
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn cookie_values_are_hidden() {
        let mut h = hyper::HeaderMap::new();
        h.append("set-cookie", "sid=secret; HttpOnly".parse().unwrap());
        h.append("set-cookie", "theme=dark".parse().unwrap());
        h.append("x-other", "1".parse().unwrap());
        let shown = interesting_headers(&h);
        assert_eq!(shown.len(), 1);
        assert_eq!(shown[0].value, "sid, theme (values hidden)");
        assert!(!shown[0].value.contains("secret"));
    }

    #[test]
    fn statuses() {
        assert!(status_failure(StatusCode::OK, &Method::GET, None).is_none());
        assert!(status_failure(StatusCode::FOUND, &Method::GET, None).is_none());
        let e = status_failure(
            StatusCode::SERVICE_UNAVAILABLE,
            &Method::GET,
            Some("120".into()),
        )
        .unwrap();
        assert_eq!(e.kind(), "maintenance");
        assert!(e.to_string().contains("retry after 120"));
        let e = status_failure(StatusCode::NOT_FOUND, &Method::GET, None).unwrap();
        assert_eq!((e.kind(), e.hop()), ("http_status", Hop::Http));
        assert!(
            e.to_string()
                .starts_with("the server answered 404 Not Found")
        );
    }
}
