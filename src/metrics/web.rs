//! The web series: requests by host class, method, status class and protocol, a
//! duration histogram, bytes out, and connections open and shed.
//!
//! The web server records each request once, when hyper is done with its response
//! body (the same moment the access log is written). Labels come from short fixed
//! lists: the host is only `site` (a name the zone serves) or `other` (answered 421),
//! never the name itself, and the path never appears.

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counters, gauge, histogram, one};
use super::sharded::{HistogramLayout, OpenGuard, Sharded};

pub(crate) const HOSTS: [&str; 2] = ["site", "other"];
pub(crate) const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other",
];
pub(crate) const STATUSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The HTTP version spoken; `tls` is a label of its own.
pub(crate) const PROTOS: [&str; 2] = ["h1", "h2"];
const TLS: [&str; 2] = ["false", "true"];
/// The two listeners whose connections are counted.
const LISTENERS: [&str; 2] = ["http", "https"];

/// Request duration bounds in microseconds: Prometheus's default buckets, 1 ms to 10 s.
static DURATION_BOUNDS: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];

const REQUESTS: usize = 0;
const REQUEST_SERIES: usize =
    HOSTS.len() * METHODS.len() * STATUSES.len() * PROTOS.len() * TLS.len();
const BYTES_OUT: usize = REQUESTS + REQUEST_SERIES;
const CONN_OPENED: usize = BYTES_OUT + 1;
const CONN_CLOSED: usize = CONN_OPENED + LISTENERS.len();
const CONN_SHED: usize = CONN_CLOSED + LISTENERS.len();
const CONN_REFUSED: usize = CONN_SHED + 1;
const CONN_HANDED_OVER: usize = CONN_REFUSED + LISTENERS.len();
const DURATION: usize = CONN_HANDED_OVER + 1;
const WIDTH: usize = DURATION + HistogramLayout::width(&DURATION_BOUNDS);

static COUNTERS: Sharded<WIDTH> = Sharded::new();

const DURATION_LAYOUT: HistogramLayout = HistogramLayout {
    base: DURATION,
    bounds: &DURATION_BOUNDS,
};

fn request_index(host: usize, method: usize, status: usize, proto: usize, tls: usize) -> usize {
    REQUESTS
        + (((host * METHODS.len() + method) * STATUSES.len() + status) * PROTOS.len() + proto)
            * TLS.len()
        + tls
}

/// One request whose response is done (sent, or the client went away).
/// `misdirected` is a 421 for a name the zone does not serve.
#[inline]
pub(crate) fn request(
    misdirected: bool,
    method: &str,
    status: u16,
    http2: bool,
    tls: bool,
    micros: u64,
    bytes_out: u64,
) {
    if !super::enabled() {
        return;
    }
    let method = METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1);
    let status = usize::from(status / 100).clamp(1, 5) - 1;
    let i = request_index(
        usize::from(misdirected),
        method,
        status,
        usize::from(http2),
        usize::from(tls),
    );
    COUNTERS.add(i, 1);
    COUNTERS.add(BYTES_OUT, bytes_out);
    DURATION_LAYOUT.observe(&COUNTERS, micros);
}

/// Counts a connection open on the `tls` or plain listener until the guard drops.
pub(crate) fn connection(tls: bool) -> OpenGuard<WIDTH> {
    let listener = usize::from(tls);
    COUNTERS.open(CONN_OPENED + listener, CONN_CLOSED + listener)
}

/// An idle connection was closed to make room for a new one (on either listener:
/// both share one set of connection limits).
pub(crate) fn connection_shed() {
    COUNTERS.add(CONN_SHED, 1);
}

/// A new connection was closed at once: every connection was busy.
pub(crate) fn connection_refused(tls: bool) {
    COUNTERS.add(CONN_REFUSED + usize::from(tls), 1);
}

/// A plain connection that the web server's own HTTP/1.1 loop passed to hyper.
pub(crate) fn connection_handed_over() {
    COUNTERS.add(CONN_HANDED_OVER, 1);
}

/// Writes every web series.
pub(crate) fn encode(e: &mut DescriptorEncoder) -> std::fmt::Result {
    let mut requests = Vec::new();
    for (h, host) in HOSTS.iter().enumerate() {
        for (m, method) in METHODS.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                for (p, proto) in PROTOS.iter().enumerate() {
                    for (t, tls) in TLS.iter().enumerate() {
                        let n = COUNTERS.get(request_index(h, m, s, p, t));
                        if n > 0 {
                            let labels = vec![
                                ("host", *host),
                                ("method", *method),
                                ("status", *status),
                                ("proto", *proto),
                                ("tls", *tls),
                            ];
                            requests.push((labels, n));
                        }
                    }
                }
            }
        }
    }
    #[rustfmt::skip]
    let table = [
        ("http_requests", "HTTP requests answered, by host class, method, status class, protocol and TLS.", requests),
        ("http_response_bytes", "Response body bytes handed to the connection.", one(COUNTERS.get(BYTES_OUT))),
        ("http_connections_shed", "Idle HTTP connections closed to make room for a new one.", one(COUNTERS.get(CONN_SHED))),
        ("http_connections_refused", "New HTTP connections closed at once because every connection was busy.", COUNTERS.by_label("listener", &LISTENERS, CONN_REFUSED)),
        ("http_connections_handed_over", "Plain HTTP connections that the server's own HTTP/1.1 loop for fast-path requests passed to hyper, at the first request it does not answer itself.", one(COUNTERS.get(CONN_HANDED_OVER))),
    ];
    counters(e, &table)?;
    histogram(
        e,
        "http_request_duration_seconds",
        "Time from a request's arrival to the end of its response body.",
        &one(DURATION_LAYOUT.snapshot(&COUNTERS, 1e-6)),
    )?;
    let open = COUNTERS.open_by_label("listener", &LISTENERS, (CONN_OPENED, CONN_CLOSED));
    gauge(
        e,
        "http_connections_open",
        "HTTP connections open now.",
        &open,
    )
}
