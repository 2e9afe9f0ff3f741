//! `onebox visit --trace`: the DNS hop done the long way, as a resolver does it.
//!
//! Instead of asking one server for the answer, the visit starts at the root
//! hints (`--root`) and follows each referral itself (root → com → foobar.com),
//! the way `dig +trace` does, but following glue and the toy Internet's port.
//! The walking lives in [`crate::dns::recursor::trace`] (hickory types stay in
//! the DNS box); this module turns its steps into the visit's DNS hop and prints
//! them, one block per server asked.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use super::view::{Paint, duration};
use super::{Detail, Hop, Step, VisitError};
use crate::dns::recursor::Trace;

/// Where `--trace` starts without `--root`: the toy root's address on the
/// default DNS port.
pub(crate) fn default_root() -> SocketAddr {
    let port = crate::cli::DEFAULT_DNS
        .parse::<SocketAddr>()
        .map(|a| a.port())
        .unwrap_or(1053);
    SocketAddr::from(([127, 0, 0, 2], port))
}

/// Resolves `host` iteratively from `root` and records the DNS hop; returns the
/// trace (for the text view and `--json`) and the addresses to connect to.
pub(crate) async fn dns_hop(
    host: &str,
    root: SocketAddr,
    steps: &mut Vec<Step>,
) -> (Option<Trace>, Result<Vec<IpAddr>, VisitError>) {
    let started = std::time::Instant::now();
    let trace = match crate::dns::recursor::trace(root, host).await {
        Ok(trace) => trace,
        Err(e) => {
            let err = VisitError::Dns {
                name: host.to_string(),
                server: root,
                detail: format!("{e:#}"),
            };
            return (None, Err(err));
        }
    };
    let addresses = super::hops::happy_eyeballs_order(&trace.addresses);
    let ok = !addresses.is_empty();
    steps.push(Step {
        hop: Hop::Dns,
        ok,
        micros: Some(started.elapsed().as_micros() as u64),
        detail: Detail::Dns {
            server: root,
            name: host.to_string(),
            skipped: None,
            qtype: Some("A"),
            answers: trace.answers.clone(),
            address: addresses.first().copied(),
            addresses: addresses.clone(),
            questions: Vec::new(),
        },
    });
    let result = if ok {
        Ok(addresses)
    } else {
        let name = host.to_string();
        Err(match trace.rcode.as_str() {
            "NXDOMAIN" => VisitError::NxDomain { name, server: root },
            "NOERROR" => VisitError::NoData { name },
            rcode => VisitError::DnsRcode {
                name,
                server: root,
                rcode: match &trace.error {
                    Some(why) => format!("{rcode} ({why})"),
                    None => rcode.to_string(),
                },
            },
        })
    };
    (Some(trace), result)
}

/// The trace as text: each server asked, the question as sent (minimised, in
/// 0x20 mixed case), what came back, the records that mattered and the time.
pub(crate) fn render(trace: &Trace, root: SocketAddr, paint: &Paint) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} from the root hints at {root}, one referral at a time (QNAME minimisation on)",
        paint.bold("trace     "),
        trace.name
    );
    for (i, step) in trace.steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {:>2}. {:<21} as {:<12} {:<18} {:<5} {:<24} {}",
            i + 1,
            step.server.to_string(),
            step.zone,
            step.qname,
            step.qtype,
            step.detail,
            paint.dim(&duration(step.micros))
        );
        for record in &step.records {
            let _ = writeln!(out, "        {}", paint.dim(record));
        }
    }
    if let Some(error) = &trace.error {
        let _ = writeln!(out, "  {}", paint.red(&format!("{} {error}", trace.rcode)));
    }
    out.push('\n');
    out
}
