//! `/healthz` (the process is up) and `/readyz` (DNS, HTTP and the database all
//! work). Readiness is checked for real on every call: a DNS query to our own DNS
//! socket, and a read transaction in the database.
//!
//! `/readyz` answers any `Host`, so it says only "ok" or "failing" per dependency:
//! no paths, addresses or error texts for a stranger to read. The reasons for a
//! failure go to the log, where the operator looks.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::Web;
use crate::dns::probe;

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
    let dns_ok = match apex {
        Some(apex) => match probe::probe_soa(web.dns_addr, &apex, DNS_TIMEOUT).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("readyz: dns: {apex} SOA via {}: {e}", web.dns_addr);
                false
            }
        },
        None => {
            tracing::warn!("readyz: dns: no zone is loaded");
            false
        }
    };
    let db_ok = match web.db.ping().await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("readyz: db {}: {e}", web.db.location());
            false
        }
    };
    // This answer itself is the HTTP check: it came through the accept loop, hyper
    // and the middleware like any other request.
    let ready = dns_ok && db_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "dns": word(dns_ok),
            "http": word(true),
            "db": word(db_ok),
        })),
    )
        .into_response()
}

fn word(ok: bool) -> &'static str {
    if ok { "ok" } else { "failing" }
}
