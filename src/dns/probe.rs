//! A readiness probe: one SOA query to our own DNS server, built and checked with
//! hickory's message types, so callers outside `dns` never touch DNS wire bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RData, RecordType};
use tokio::net::UdpSocket;

/// Why the probe failed; the health endpoint only says "failing", the log says why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProbeError {
    #[error("bad name {0:?}: {1}")]
    Name(String, String),
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answer is not a DNS message: {0}")]
    Parse(String),
    #[error("answer does not match: {0}")]
    Mismatch(&'static str),
    #[error("answer has rcode {0}")]
    Rcode(String),
}

/// Asks `server` for `apex SOA` over UDP and checks for an authoritative NOERROR
/// with at least one answer record. Returns the round-trip time.
pub(crate) async fn probe_soa(
    server: SocketAddr,
    apex: &str,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    ask_soa(server, apex, timeout).await.map(|(_, rtt)| rtt)
}

/// [`probe_soa`], returning the serial of the SOA in the answer: how `cluster
/// status` compares a hidden primary with its secondaries.
pub(crate) async fn soa_serial(
    server: SocketAddr,
    apex: &str,
    timeout: Duration,
) -> Result<u32, ProbeError> {
    let (answer, _) = ask_soa(server, apex, timeout).await?;
    answer
        .answers
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .ok_or(ProbeError::Mismatch("no SOA in the answer"))
}

/// One checked `apex SOA` exchange: the answer and its round-trip time.
async fn ask_soa(
    server: SocketAddr,
    apex: &str,
    timeout: Duration,
) -> Result<(Message, Duration), ProbeError> {
    let target = reachable(server);
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let id: u16 = rand::random();
    let query = soa_query(id, apex)?;
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(target).await?;
    let start = Instant::now();
    socket.send(&query).await?;
    let mut buf = [0u8; 1232];
    let n = tokio::time::timeout(timeout, socket.recv(&mut buf))
        .await
        .map_err(|_| ProbeError::Timeout(timeout))??;
    let rtt = start.elapsed();
    Ok((check_answer(&buf[..n], id)?, rtt))
}

/// A server bound to 0.0.0.0 or :: is reached on loopback.
fn reachable(server: SocketAddr) -> SocketAddr {
    match server.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), server.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), server.port())
        }
        _ => server,
    }
}

/// `apex SOA` with RD=0: we ask the authority itself, not a resolver.
fn soa_query(id: u16, apex: &str) -> Result<Vec<u8>, ProbeError> {
    let name =
        Name::from_ascii(apex).map_err(|e| ProbeError::Name(apex.to_string(), e.to_string()))?;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(name, RecordType::SOA));
    message
        .to_vec()
        .map_err(|e| ProbeError::Name(apex.to_string(), e.to_string()))
}

fn check_answer(bytes: &[u8], id: u16) -> Result<Message, ProbeError> {
    let message = Message::from_vec(bytes).map_err(|e| ProbeError::Parse(e.to_string()))?;
    let meta = &message.metadata;
    if meta.id != id {
        return Err(ProbeError::Mismatch("wrong id"));
    }
    if meta.message_type != MessageType::Response {
        return Err(ProbeError::Mismatch("not a response (QR=0)"));
    }
    if meta.response_code != ResponseCode::NoError {
        return Err(ProbeError::Rcode(meta.response_code.to_string()));
    }
    if !meta.authoritative {
        return Err(ProbeError::Mismatch("not authoritative (AA=0)"));
    }
    if message.answers.is_empty() {
        return Err(ProbeError::Mismatch("no answer records"));
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_answer_checks() {
        let q = soa_query(0x1234, "foobar.com").unwrap();
        assert_eq!(
            q,
            b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06foobar\x03com\x00\x00\x06\x00\x01"
        );
        // A header-only answer: AA set but no records, then a REFUSED one.
        assert!(check_answer(b"\x12\x34\x84\x00\x00\x00\x00\x00\x00\x00\x00\x00", 0x1234).is_err());
        assert!(matches!(
            check_answer(b"\x12\x34\x84\x05\x00\x00\x00\x00\x00\x00\x00\x00", 0x1234),
            Err(ProbeError::Rcode(_))
        ));
        assert!(matches!(
            check_answer(b"\x12\x35\x84\x00\x00\x00\x00\x00\x00\x00\x00\x00", 0x1234),
            Err(ProbeError::Mismatch(_))
        ));
    }
}
