//! The DNS series, named as CoreDNS names them with an `onebox_` prefix, so
//! CoreDNS dashboards port with a prefix change.
//!
//! The DNS module calls the recording functions here once per answered query, on
//! the replay (cache) fast path and on the full path alike. Labels come from short
//! fixed lists (the protocol, the address family, the query type, the rcode), never
//! from the client or the name asked: that keeps the number of series bounded, as
//! CoreDNS does. The zone label is `.`, CoreDNS's name for "the whole server".

use std::sync::Mutex;

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counters, gauge, histogram, one};
use super::sharded::{HistogramLayout, OpenGuard, Sharded};

pub(crate) const PROTOS: [&str; 4] = ["udp", "tcp", "tls", "https"];
/// CoreDNS's `family` label: 1 for IPv4, 2 for IPv6.
const FAMILIES: [&str; 2] = ["1", "2"];
/// The query types with a series of their own; anything else counts as `other`.
pub(crate) const TYPES: [&str; 18] = [
    "A", "AAAA", "CNAME", "NS", "SOA", "MX", "TXT", "PTR", "SRV", "CAA", "DS", "DNSKEY", "HTTPS",
    "SVCB", "AXFR", "IXFR", "ANY", "other",
];
pub(crate) const RCODES: [&str; 9] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "NOTAUTH", "BADVERS",
    "OTHER",
];
/// Stream transports whose connections are counted.
const STREAMS: [&str; 2] = ["tcp", "tls"];

/// Request duration bounds in microseconds: CoreDNS's 0.25 ms doubling 16 times.
static DURATION_BOUNDS: [u64; 16] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000, 2_048_000, 4_096_000, 8_192_000,
];
/// Response size bounds in bytes, as CoreDNS's.
static SIZE_BOUNDS: [u64; 14] = [
    0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16_000, 32_000, 48_000, 64_000,
];

// The layout of the one sharded block that holds every hot DNS counter.
const REQUESTS: usize = 0;
const RESPONSES: usize = REQUESTS + PROTOS.len() * FAMILIES.len() * TYPES.len();
const CACHE_HITS: usize = RESPONSES + RCODES.len();
const RRL_DROPS: usize = CACHE_HITS + 1;
const RRL_SLIPS: usize = RRL_DROPS + 1;
const CONN_OPENED: usize = RRL_SLIPS + 1;
const CONN_CLOSED: usize = CONN_OPENED + STREAMS.len();
const CONN_SHED: usize = CONN_CLOSED + STREAMS.len();
const DURATION: usize = CONN_SHED + STREAMS.len();
const DURATION_WIDTH: usize = HistogramLayout::width(&DURATION_BOUNDS);
const SIZE: usize = DURATION + PROTOS.len() * DURATION_WIDTH;
const SIZE_WIDTH: usize = HistogramLayout::width(&SIZE_BOUNDS);
const WIDTH: usize = SIZE + PROTOS.len() * SIZE_WIDTH;

static COUNTERS: Sharded<WIDTH> = Sharded::new();

/// Reload outcomes: rare, so a plain lock.
#[derive(Debug, Default)]
struct Reloads {
    ok: u64,
    failed: u64,
}

static RELOADS: Mutex<Reloads> = Mutex::new(Reloads { ok: 0, failed: 0 });

fn index(list: &[&str], value: &str) -> usize {
    list.iter()
        .position(|v| *v == value)
        .unwrap_or(list.len() - 1)
}

fn duration_layout(proto: usize) -> HistogramLayout {
    HistogramLayout {
        base: DURATION + proto * DURATION_WIDTH,
        bounds: &DURATION_BOUNDS,
    }
}

fn size_layout(proto: usize) -> HistogramLayout {
    HistogramLayout {
        base: SIZE + proto * SIZE_WIDTH,
        bounds: &SIZE_BOUNDS,
    }
}

/// One answered query, from either path. `proto` is `udp`, `tcp`, `tls` or
/// `https`; `qtype` and `rcode` are the mnemonics dig prints.
#[inline]
pub(crate) fn query(
    proto: &str,
    ipv6: bool,
    qtype: &str,
    rcode: &str,
    micros: u64,
    reply_bytes: usize,
    cached: bool,
) {
    if !super::enabled() {
        return;
    }
    // One thread-local lookup for the six counters, and label positions found by
    // `match` (a jump on the string's length, then one compare) rather than a
    // scan of the list: this runs once per query, so it is kept to a few dozen
    // instructions.
    let shard = COUNTERS.local();
    let p = proto_index(proto);
    let family = usize::from(ipv6);
    let t = type_index(qtype);
    shard.add(
        REQUESTS + (p * FAMILIES.len() + family) * TYPES.len() + t,
        1,
    );
    shard.add(RESPONSES + rcode_index(rcode), 1);
    if cached {
        shard.add(CACHE_HITS, 1);
    }
    duration_layout(p).observe_local(shard, micros);
    size_layout(p).observe_local(shard, reply_bytes as u64);
}

/// The position of `proto` in [`PROTOS`]; anything else counts as `https`, the last.
#[inline]
fn proto_index(proto: &str) -> usize {
    match proto {
        "udp" => 0,
        "tcp" => 1,
        "tls" => 2,
        _ => 3,
    }
}

/// The position of `qtype` in [`TYPES`], `other` for anything not listed.
#[inline]
fn type_index(qtype: &str) -> usize {
    match qtype {
        "A" => 0,
        "AAAA" => 1,
        "CNAME" => 2,
        "NS" => 3,
        "SOA" => 4,
        "MX" => 5,
        "TXT" => 6,
        "PTR" => 7,
        "SRV" => 8,
        "CAA" => 9,
        "DS" => 10,
        "DNSKEY" => 11,
        "HTTPS" => 12,
        "SVCB" => 13,
        "AXFR" => 14,
        "IXFR" => 15,
        "ANY" => 16,
        _ => TYPES.len() - 1,
    }
}

/// The position of `rcode` in [`RCODES`], `OTHER` for anything not listed.
#[inline]
fn rcode_index(rcode: &str) -> usize {
    match rcode {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "NOTAUTH" => 6,
        "BADVERS" => 7,
        _ => RCODES.len() - 1,
    }
}

/// Response rate limiting let an answer go unsent (`slipped == false`), or sent
/// it cut down to TC=1 (`slipped == true`).
pub(crate) fn rrl(slipped: bool) {
    if super::enabled() {
        COUNTERS.add(if slipped { RRL_SLIPS } else { RRL_DROPS }, 1);
    }
}

/// Counts a TCP or TLS connection open until the returned guard is dropped;
/// `shed` says another connection was closed to make room for it.
pub(crate) fn connection(kind: &str, shed: bool) -> OpenGuard<WIDTH> {
    let stream = index(&STREAMS, kind);
    if shed {
        COUNTERS.add(CONN_SHED + stream, 1);
    }
    COUNTERS.open(CONN_OPENED + stream, CONN_CLOSED + stream)
}

fn reloads() -> std::sync::MutexGuard<'static, Reloads> {
    RELOADS.lock().unwrap_or_else(|e| e.into_inner())
}

/// A zone reload finished: `ok` when every changed zone loaded.
pub(crate) fn reload(ok: bool) {
    let mut r = reloads();
    if ok {
        r.ok += 1;
    } else {
        r.failed += 1;
    }
}

/// Writes every DNS series; `serials` is each zone's current SOA serial.
pub(crate) fn encode(e: &mut DescriptorEncoder, serials: &[(String, u32)]) -> std::fmt::Result {
    let mut requests = Vec::new();
    let mut transfers = [0u64; 2];
    for (p, proto) in PROTOS.iter().enumerate() {
        for (f, family) in FAMILIES.iter().enumerate() {
            for (t, qtype) in TYPES.iter().enumerate() {
                let n = COUNTERS.get(REQUESTS + (p * FAMILIES.len() + f) * TYPES.len() + t);
                match *qtype {
                    "AXFR" => transfers[0] += n,
                    "IXFR" => transfers[1] += n,
                    _ => {}
                }
                // Like CoreDNS, a series appears once it has counted something.
                if n > 0 {
                    let labels = vec![
                        ("zone", "."),
                        ("proto", *proto),
                        ("family", *family),
                        ("type", *qtype),
                    ];
                    requests.push((labels, n));
                }
            }
        }
    }
    let responses: Vec<_> = RCODES
        .iter()
        .enumerate()
        .map(|(i, rcode)| {
            (
                vec![("zone", "."), ("rcode", *rcode)],
                COUNTERS.get(RESPONSES + i),
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    let transfers = vec![
        (vec![("type", "AXFR")], transfers[0]),
        (vec![("type", "IXFR")], transfers[1]),
    ];
    let reloads = {
        let r = reloads();
        vec![
            (vec![("result", "ok")], r.ok),
            (vec![("result", "failed")], r.failed),
        ]
    };
    #[rustfmt::skip]
    let table = [
        ("dns_requests", "DNS queries answered, by protocol, address family and query type.", requests),
        ("dns_responses", "DNS responses, by rcode.", responses),
        ("dns_cache_hits", "Queries answered by replaying a cached answer (the fast path).", one(COUNTERS.get(CACHE_HITS))),
        ("dns_transfers", "Zone transfer requests (AXFR and IXFR), allowed or refused.", transfers),
        ("dns_rrl_drops", "UDP answers not sent because of response rate limiting.", one(COUNTERS.get(RRL_DROPS))),
        ("dns_rrl_slips", "UDP answers sent truncated (TC=1) because of response rate limiting.", one(COUNTERS.get(RRL_SLIPS))),
        ("dns_connections_shed", "DNS TCP and TLS connections closed to make room for a new one.", COUNTERS.by_label("proto", &STREAMS, CONN_SHED)),
        ("zone_reloads", "Zone reloads, by result (a failed reload keeps the old zones).", reloads),
    ];
    counters(e, &table)?;
    let per_proto = |layout: fn(usize) -> HistogramLayout, scale: f64| -> Vec<_> {
        let series = PROTOS.iter().enumerate();
        let labels = |proto| vec![("zone", "."), ("proto", proto)];
        series
            .map(|(p, proto)| (labels(*proto), layout(p).snapshot(&COUNTERS, scale)))
            .collect()
    };
    histogram(
        e,
        "dns_request_duration_seconds",
        "Time from a parsed query to its encoded answer.",
        &per_proto(duration_layout, 1e-6),
    )?;
    histogram(
        e,
        "dns_response_size_bytes",
        "Size of the DNS answers sent, in bytes.",
        &per_proto(size_layout, 1.0),
    )?;
    let open = COUNTERS.open_by_label("proto", &STREAMS, (CONN_OPENED, CONN_CLOSED));
    gauge(
        e,
        "dns_connections_open",
        "DNS TCP and TLS connections open now.",
        &open,
    )?;
    let serials: Vec<_> = serials
        .iter()
        .map(|(zone, serial)| (vec![("zone", zone.as_str())], i64::from(*serial)))
        .collect();
    gauge(
        e,
        "zone_serial",
        "The SOA serial each zone serves now.",
        &serials,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_match_lookups_agree_with_the_label_lists() {
        for (i, v) in PROTOS.iter().enumerate() {
            assert_eq!(proto_index(v), i, "{v}");
        }
        for (i, v) in TYPES.iter().enumerate() {
            assert_eq!(type_index(v), i, "{v}");
        }
        for (i, v) in RCODES.iter().enumerate() {
            assert_eq!(rcode_index(v), i, "{v}");
        }
        assert_eq!(type_index("NAPTR"), TYPES.len() - 1);
        assert_eq!(rcode_index("YXDOMAIN"), RCODES.len() - 1);
    }
}
