//! The client side of the "Domain and DNS" box: ask one DNS server, and only that
//! one, what a name resolves to.
//!
//! `onebox visit` and `onebox doctor` must show what *our* server says, so the
//! resolver here never reads `/etc/resolv.conf` or the hosts file and never caches:
//! every lookup is a fresh question on the wire to `--dns`. This is the only place
//! hickory-resolver is used; callers get [`ChainLink`]s, addresses and a
//! [`LookupError`] they can branch on, never hickory types.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};

use super::{ChainLink, Zones};

/// How long one question may wait for an answer (UDP is re-sent within it). On
/// loopback an answer takes about a millisecond, so silence means nothing answers.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// The record types onebox asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ask {
    A,
    Aaaa,
    Soa,
}

impl Ask {
    fn record_type(self) -> RecordType {
        match self {
            Ask::A => RecordType::A,
            Ask::Aaaa => RecordType::AAAA,
            Ask::Soa => RecordType::SOA,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ask::A => "A",
            Ask::Aaaa => "AAAA",
            Ask::Soa => "SOA",
        }
    }
}

/// What the server answered: every record of the ANSWER section in order (the
/// CNAMEs first, then the records they lead to) and the addresses among them.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) records: Vec<ChainLink>,
    pub(crate) addresses: Vec<IpAddr>,
}

/// Why a lookup gave no answer. Each case is a different fault with a different fix,
/// so callers branch on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LookupError {
    /// NXDOMAIN: the server is authoritative and the name does not exist.
    #[error("NXDOMAIN")]
    NxDomain,
    /// NOERROR with no records of the type asked: the name exists, the type does not.
    #[error("NODATA")]
    NoData,
    /// REFUSED: the server does not serve a zone containing the name.
    #[error("REFUSED")]
    Refused,
    /// Any other error response code (SERVFAIL, FORMERR, NOTIMP …).
    #[error("{0}")]
    Rcode(String),
    /// No answer within [`TIMEOUT`].
    #[error("timeout")]
    Timeout,
    /// The server's address actively refused us (nothing listens on TCP there, or
    /// an ICMP port unreachable came back for UDP).
    #[error("connection refused")]
    Unreachable,
    /// The name cannot be asked at all, or something else went wrong on the wire.
    #[error("{0}")]
    Other(String),
}

/// A resolver that asks `server` and nothing else.
#[derive(Clone)]
pub(crate) struct Lookup {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lookup")
    }
}

impl Lookup {
    pub(crate) fn new(server: SocketAddr) -> anyhow::Result<Self> {
        let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
        udp.port = server.port();
        tcp.port = server.port();
        // UDP first, TCP when the answer is truncated, as any stub resolver does.
        let ns = NameServerConfig::new(server.ip(), true, vec![udp, tcp]);
        // No search list and no domain: names are asked exactly as given.
        let config = ResolverConfig::from_parts(None, vec![], vec![ns]);
        let mut opts = ResolverOpts::default();
        opts.use_hosts_file = ResolveHosts::Never;
        opts.cache_size = 0;
        opts.timeout = TIMEOUT;
        // hickory counts *retries* here (0 = ask once): a retry after a timeout would
        // double the wait for a server that is not there, and a REFUSED will not change.
        opts.attempts = 0;
        opts.ndots = 0;
        let resolver = Resolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(opts)
            .build()
            .map_err(|e| anyhow::anyhow!("failed to set up a DNS resolver for {server}: {e}"))?;
        Ok(Self { resolver })
    }

    /// Asks for `name`'s records of type `ask`, as an absolute name.
    pub(crate) async fn ask(&self, name: &str, ask: Ask) -> Result<Answer, LookupError> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let lookup = self
            .resolver
            .lookup(fqdn.as_str(), ask.record_type())
            .await
            .map_err(classify)?;
        let mut records = Vec::new();
        let mut addresses = Vec::new();
        for record in lookup.answers() {
            match &record.data {
                RData::A(a) => addresses.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => addresses.push(IpAddr::V6(a.0)),
                _ => {}
            }
            records.push(ChainLink {
                name: record.name.to_ascii(),
                ttl: record.ttl,
                rtype: record.record_type().to_string(),
                data: record.data.to_string(),
            });
        }
        Ok(Answer { records, addresses })
    }
}

fn classify(err: NetError) -> LookupError {
    if err.is_nx_domain() {
        return LookupError::NxDomain;
    }
    match &err {
        NetError::Dns(DnsError::NoRecordsFound(_)) => LookupError::NoData,
        NetError::Dns(DnsError::ResponseCode(ResponseCode::Refused)) => LookupError::Refused,
        NetError::Dns(DnsError::ResponseCode(code)) => LookupError::Rcode(code.to_string()),
        NetError::Timeout => LookupError::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            LookupError::Unreachable
        }
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => LookupError::Timeout,
        // The pool reports "no connections available" when every transport failed to
        // connect; with UDP that means the port was unreachable.
        NetError::NoConnections => LookupError::Unreachable,
        _ => {
            let text = err.to_string();
            if text.contains("Refused") {
                LookupError::Refused
            } else if text.contains("timed out") {
                LookupError::Timeout
            } else {
                LookupError::Other(text)
            }
        }
    }
}

/// The zones configured in `dir` (or the built-in zone when it does not exist), as
/// names without the trailing dot: what the OS resolver hook must route to onebox.
pub(crate) fn zone_names(dir: &Path) -> anyhow::Result<Vec<String>> {
    let zones = Zones::load(dir, false)?;
    let set = zones.snapshot();
    let mut names: Vec<String> = set
        .zones
        .values()
        .map(|z| {
            z.origin()
                .to_lowercase()
                .to_ascii()
                .trim_end_matches('.')
                .to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_zone_names() {
        let names = zone_names(Path::new("/nonexistent-onebox-zones")).unwrap();
        assert_eq!(names, ["foobar.com"]);
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        // A bound UDP socket that never reads: the question is delivered and ignored.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let lookup = Lookup::new(silent.local_addr().unwrap()).unwrap();
        let err = lookup.ask("www.foobar.com", Ask::A).await.unwrap_err();
        assert!(
            matches!(err, LookupError::Timeout | LookupError::Unreachable),
            "{err:?}"
        );
    }
}
