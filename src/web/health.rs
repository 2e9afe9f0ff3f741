//! `/healthz` (the process is up) and `/readyz` (DNS, HTTP and the database all
//! work). Readiness is checked for real on every call: a DNS query to our own DNS
//! socket, and a read transaction in the database. A web node started with
//! `--dns off` serves no DNS, so it asks none: its `"dns"` is `"off"`, and its
//! readiness is HTTP and the database (what a load balancer's check needs to know).
//!
//! `/readyz` answers any `Host`, so it says only "ok" or "failing" per dependency:
//! no paths, addresses or error texts for a stranger to read. The reasons for a
//! failure go to the log, where the operator looks.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Web;
use crate::db::Store;
use crate::dns::Zones;
use crate::dns::probe;

const DNS_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

pub(super) async fn readyz(web: &Web) -> Response {
    let (dns, db_ok) = checks(&web.zones, web.dns_addr, web.db.as_ref()).await;
    // This answer itself is the HTTP check: it came through the accept loop, hyper
    // and the middleware like any other request.
    let ready = dns != Dns::Failing && db_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "dns": dns.word(),
            "http": word(true),
            "db": word(db_ok),
        })),
    )
        .into_response()
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "failing" }
}

/// The DNS side of readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dns {
    Ok,
    Failing,
    /// `--dns off`: nothing to check.
    Off,
}

impl Dns {
    fn word(self) -> &'static str {
        match self {
            Dns::Ok => word(true),
            Dns::Failing => word(false),
            Dns::Off => "off",
        }
    }
}

/// What `/readyz` checks: our DNS answers our apex SOA (unless it is off), and
/// the database reads. Returns (dns, database ok).
async fn checks(zones: &Zones, dns_addr: Option<SocketAddr>, db: &dyn Store) -> (Dns, bool) {
    let dns = match dns_addr {
        Some(addr) => probe_dns(zones, addr).await,
        None => Dns::Off,
    };
    let db_ok = match db.ping().await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("readyz: db {}: {e}", db.location());
            false
        }
    };
    (dns, db_ok)
}

/// A real query to our own DNS socket: the apex SOA of the first site zone.
async fn probe_dns(zones: &Zones, dns_addr: SocketAddr) -> Dns {
    let apex = zones
        .apex_addresses()
        .into_iter()
        .map(|(zone, _)| zone)
        .next()
        .or_else(|| zones.site_hosts().into_iter().next());
    match apex {
        Some(apex) => match probe::probe_soa(dns_addr, &apex, DNS_TIMEOUT).await {
            Ok(_) => Dns::Ok,
            Err(e) => {
                tracing::warn!("readyz: dns: {apex} SOA via {}: {e}", dns_addr);
                Dns::Failing
            }
        },
        None => {
            tracing::warn!("readyz: dns: no zone is loaded");
            Dns::Failing
        }
    }
}

/// Whether `/readyz` would answer 200 now (for the metrics' readiness gauge).
pub(crate) async fn ready(zones: &Zones, dns_addr: Option<SocketAddr>, db: &dyn Store) -> bool {
    let (dns, db) = checks(zones, dns_addr, db).await;
    dns != Dns::Failing && db
}
