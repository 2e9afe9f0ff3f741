//! `/healthz` (the process is up) and `/readyz` (DNS, HTTP and the database all
//! work). Readiness is checked for real on every call: a DNS query to our own DNS
//! socket, and a read transaction in the database.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::UdpSocket;

use super::Web;

const DNS_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(super) async fn readyz(web: &Web) -> Response {
    let apex = web
        .zones
        .apex_addresses()
        .into_iter()
        .map(|(zone, _)| zone)
        .next()
        .or_else(|| web.zones.site_hosts().into_iter().next());
    let dns = match apex {
        Some(apex) => match probe_dns(web.dns_addr, &apex).await {
            Ok(micros) => {
                json!({ "ok": true, "detail": format!("{apex} SOA answered by {} in {micros} µs", web.dns_addr) })
            }
            Err(e) => {
                json!({ "ok": false, "detail": format!("{apex} SOA via {}: {e}", web.dns_addr) })
            }
        },
        None => json!({ "ok": false, "detail": "no zone is loaded" }),
    };
    let db = match web.db.ping().await {
        Ok(schema) => {
            json!({ "ok": true, "detail": format!("{} (schema {schema}) readable", web.db.location()) })
        }
        Err(e) => json!({ "ok": false, "detail": e.to_string() }),
    };
    // This answer itself is the HTTP check: it came through the accept loop, hyper
    // and the middleware like any other request.
    let http = json!({ "ok": true, "detail": "answering" });
    let ready = dns["ok"] == true && db["ok"] == true;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "ready": ready, "dns": dns, "http": http, "db": db })),
    )
        .into_response()
}

/// Sends `apex SOA` to our DNS server over UDP and checks the answer is an
/// authoritative NOERROR with at least one record. Returns the round-trip time.
async fn probe_dns(server: SocketAddr, apex: &str) -> Result<u128, String> {
    // A server bound to 0.0.0.0 or :: is reached on loopback.
    let target = match server.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), server.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), server.port())
        }
        _ => server,
    };
    let bind: SocketAddr = if target.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let id: u16 = rand::random();
    let query = soa_query(id, apex)?;
    let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    socket.connect(target).await.map_err(|e| e.to_string())?;
    let start = Instant::now();
    socket.send(&query).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1232];
    let n = tokio::time::timeout(DNS_TIMEOUT, socket.recv(&mut buf))
        .await
        .map_err(|_| format!("no answer within {DNS_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    check_answer(&buf[..n], id)?;
    Ok(start.elapsed().as_micros())
}

/// A DNS query message (RFC 1035 §4.1) built by hand: header, then one question.
fn soa_query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut msg = Vec::with_capacity(64);
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend_from_slice(&[0x00, 0x00]); // QR=0 query, OPCODE=0, RD=0: ask the authority itself
    msg.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QDCOUNT=1, no other sections
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad name {name}"));
        }
        msg.push(label.len() as u8);
        msg.extend_from_slice(label.as_bytes());
    }
    msg.push(0); // the root label ends the name
    msg.extend_from_slice(&[0, 6, 0, 1]); // QTYPE=SOA, QCLASS=IN
    Ok(msg)
}

fn check_answer(msg: &[u8], id: u16) -> Result<(), String> {
    if msg.len() < 12 {
        return Err("answer shorter than a DNS header".into());
    }
    if msg[0..2] != id.to_be_bytes() {
        return Err("answer has the wrong id".into());
    }
    let (flags, rcode) = (msg[2], msg[3] & 0x0f);
    if flags & 0x80 == 0 {
        return Err("answer is not a response (QR=0)".into());
    }
    if rcode != 0 {
        return Err(format!("rcode {rcode}"));
    }
    if flags & 0x04 == 0 {
        return Err("answer is not authoritative (AA=0)".into());
    }
    let answers = u16::from_be_bytes([msg[6], msg[7]]);
    if answers == 0 {
        return Err("answer has no records".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = soa_query(0x1234, "foobar.com").unwrap();
        assert_eq!(
            q,
            b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x06foobar\x03com\x00\x00\x06\x00\x01"
        );
        assert!(check_answer(b"\x12\x34\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00", 0x1234).is_ok());
        assert!(check_answer(b"\x12\x34\x84\x03\x00\x01\x00\x00\x00\x01\x00\x00", 0x1234).is_err());
    }
}
