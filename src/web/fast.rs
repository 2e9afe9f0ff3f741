//! The static fast path: a plain `GET` or `HEAD` for a file already in memory is
//! answered straight from the accept loop's service, without the router and the
//! tower layers (access, panic guard, compression, timeout, virtual hosts).
//!
//! It takes only requests whose answer it can give exactly as the ordinary path
//! would: HTTP/1.x, no body, one well-formed `Host` that the zone serves, no
//! maintenance, and no `Range`, conditional or `Accept-Encoding` header (those get
//! 206, 304 or a compressed body, which the ordinary path makes). The answer is
//! the file's [`Prepared`] headers and body (reference-counted clones), the
//! common headers from [`front::common_headers`] and the access event from
//! [`front::logged`], as on the ordinary path. Everything else, and any file not
//! yet looked up or no longer fresh, goes the ordinary way.
//!
//! Limits still hold: header size is hyper's, the header timeout, connection caps
//! and idle shedding the accept loop's, and there is nothing to time out here.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};
use hyper::body::{Body as _, Incoming};

use super::Web;
use super::assets::Prepared;
use super::front::{self, AccessLine};
use crate::request::{ConnInfo, Layer, Snapshot};

/// Headers that make the answer something other than the whole file as-is.
pub(super) const SLOW_HEADERS: [header::HeaderName; 5] = [
    header::RANGE,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_RANGE,
    header::ACCEPT_ENCODING,
];

/// The answer for `req` when the fast path can give it; `None` sends the
/// request the ordinary way.
pub(super) fn serve(
    web: &Web,
    req: &Request<Incoming>,
    conn: &ConnInfo,
    start: Instant,
) -> Option<Response<Body>> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return None,
    };
    if !matches!(req.version(), Version::HTTP_11 | Version::HTTP_10)
        || req.uri().authority().is_some()
        || !req.body().is_end_stream()
    {
        return None;
    }
    let headers = req.headers();
    // One pass over the few headers a client sends, comparing names (standard
    // names compare as small integers), rather than five hashed lookups.
    if headers.keys().any(|name| SLOW_HEADERS.contains(name)) {
        return None;
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(raw), None) = (hosts.next(), hosts.next()) else {
        return None;
    };
    let raw = raw.to_str().ok()?;
    let path = req.uri().path();
    let (host, prepared) = file(web, raw, path, start)?;
    let (headers, line) = answer(web, &prepared, head, host, path, conn, start);
    let mut response = Response::new(if head {
        Body::empty()
    } else {
        Body::from(prepared.body.clone())
    });
    *response.headers_mut() = headers;
    Some(front::logged(response, line))
}

/// The site `raw_host` (a `Host` value) names and the file at `path` there,
/// when the fast path can answer with it: a served name, not a path the web
/// server answers itself, no maintenance, and the file in memory and fresh.
pub(super) fn file(
    web: &Web,
    raw_host: &str,
    path: &str,
    start: Instant,
) -> Option<(String, Arc<Prepared>)> {
    if !front::host_is_well_formed(raw_host)
        || front::NOT_FILES.contains(&path)
        || web.maintenance.is_on()
    {
        return None;
    }
    let host = served_host(web, raw_host)?;
    let prepared = web.assets.ready(path, start)?;
    Some((host, prepared))
}

/// The whole-file `200`'s headers and its access line, for either transport:
/// the file's prepared block with the common headers written over it.
pub(super) fn answer(
    web: &Web,
    prepared: &Prepared,
    head: bool,
    host: String,
    path: &str,
    conn: &ConnInfo,
    start: Instant,
) -> (HeaderMap, AccessLine) {
    let mut headers = prepared.headers(head).clone();
    let elapsed = start.elapsed();
    let snapshot = Snapshot {
        layer: Layer::Static,
        route: None,
        elapsed,
        stage: elapsed,
        db: Default::default(),
        db_reads: 0,
        db_writes: 0,
        db_name: None,
    };
    front::common_headers(&mut headers, &snapshot, web.node_name.as_ref());
    let line = AccessLine {
        method: if head { Method::HEAD } else { Method::GET },
        host,
        path: path.to_string(),
        status: StatusCode::OK,
        snapshot,
        start,
        conn: Some(conn.clone()),
        live: web.live.clone(),
        http2: false,
    };
    (headers, line)
}

/// The site name `raw` (a well-formed `Host` value) names, if the zone serves it:
/// port and trailing dot dropped, compared without regard to case.
pub(super) fn served_host(web: &Web, raw: &str) -> Option<String> {
    // An address literal names no site of ours (the ordinary path answers 421).
    if raw.starts_with('[') {
        return None;
    }
    let name = raw.split(':').next().unwrap_or(raw);
    let name = name.strip_suffix('.').unwrap_or(name);
    web.zones.with_serving_hosts(|hosts| {
        hosts
            .iter()
            .find(|host| host.eq_ignore_ascii_case(name))
            .cloned()
    })
}
