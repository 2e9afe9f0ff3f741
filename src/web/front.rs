//! The web server's own middleware: the access log and `Server-Timing` around
//! everything, and in front of the application the virtual-host check, the limits
//! and static files.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::Limited;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::{MAX_BODY, Web, health, live};
use crate::dns::doh;
use crate::live::{Event, Live};
use crate::request::{ConnInfo, Layer, Snapshot, Trace};
use std::net::SocketAddr;

pub(crate) use crate::request::SiteHost;

/// The name the client asked for: the URI authority (HTTP/2's `:authority`, or an
/// absolute-form HTTP/1.1 request line), else the `Host` header. Port and trailing
/// dot removed, lower-cased.
pub(crate) fn request_host(req: &Request) -> Option<String> {
    let raw = match req.uri().authority() {
        Some(authority) => authority.as_str().to_string(),
        None => req.headers().get(header::HOST)?.to_str().ok()?.to_string(),
    };
    let raw = raw.rsplit('@').next().unwrap_or(&raw);
    let host = if let Some(rest) = raw.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        raw.split(':').next().unwrap_or(raw)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

/// The first malformed authority among the request's Host header and URI
/// authority, if any (the value, for the error message).
fn malformed_host(req: &Request) -> Option<String> {
    let header = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().map(str::to_string).unwrap_or_default());
    let authority = req.uri().authority().map(|a| a.as_str().to_string());
    [header, authority]
        .into_iter()
        .flatten()
        .find(|raw| !host_is_well_formed(raw))
}

/// `host[:port]` where host is a DNS name (letters, digits, `-`, `_`, non-empty
/// labels, at most one trailing dot), an IPv4 address, or `[IPv6]`. No user info.
pub(crate) fn host_is_well_formed(raw: &str) -> bool {
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after.strip_prefix(':') {
            Some(port) => ("", Some(port)),
            None if after.is_empty() => ("", None),
            None => return false,
        }
    } else {
        match raw.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (raw, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if raw.starts_with('[') {
        return true;
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An error from the web layer itself: JSON under `/api/`, short text elsewhere.
pub(crate) fn error_response(path: &str, status: StatusCode, message: &str) -> Response {
    if path.starts_with("/api/") {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{message}\n"),
        )
            .into_response()
    }
}

/// Which node answered (`serve --node-name`): behind a load balancer the client
/// otherwise cannot tell the nodes apart.
pub(crate) const NODE_HEADER: header::HeaderName = header::HeaderName::from_static("onebox-node");

/// Outermost: measures the request, fills `Server-Timing`, makes every `/api/`
/// error JSON (timeouts, 405s and panics come from layers that know nothing about
/// JSON), names the node, and logs one access event once the body has been sent.
/// Every response the router makes passes here, whoever made it (static files,
/// health, the app, a 404, 413 or 503), so every one carries `Onebox-Node`; only
/// what hyper answers by itself before routing (a 431 for oversized headers) does not.
pub(crate) async fn access(State(web): State<Arc<Web>>, mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let trace = Arc::new(Trace::new(start));
    req.extensions_mut().insert(trace.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let host = request_host(&req).unwrap_or_default();
    let conn = req.extensions().get::<ConnInfo>().cloned();
    let http2 = req.version() == axum::http::Version::HTTP_2;

    let mut response = next.run(req).await;

    let status = response.status();
    if path.starts_with("/api/") && (status.is_client_error() || status.is_server_error()) {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
            let keep = response.headers().clone();
            response = error_response(&path, status, &reason);
            for name in [header::ALLOW, header::RETRY_AFTER] {
                if let Some(v) = keep.get(&name) {
                    response.headers_mut().insert(name, v.clone());
                }
            }
        }
    }
    let snapshot = trace.snapshot();
    common_headers(response.headers_mut(), &snapshot, web.node_name.as_ref());
    logged(
        response,
        AccessLine {
            method,
            host,
            path,
            status: StatusCode::OK,
            snapshot,
            start,
            conn,
            live: web.live.clone(),
            http2,
        },
    )
}

/// The headers every answer gets, whichever path made it: the one place to add
/// another. The static fast path ([`super::fast`]) calls it too.
pub(super) fn common_headers(
    headers: &mut HeaderMap,
    snapshot: &Snapshot,
    node: Option<&HeaderValue>,
) {
    // A compressed body is a different representation: its validator must be weak
    // (RFC 9110 §8.8.1), as nginx does when it gzips.
    if headers.contains_key(header::CONTENT_ENCODING)
        && let Some(etag) = headers.get(header::ETAG).and_then(|v| v.to_str().ok())
        && etag.starts_with('"')
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        headers.insert(header::ETAG, weak);
    }
    // From the `String` itself, which the header takes over without a copy.
    if let Ok(value) = HeaderValue::try_from(snapshot.server_timing()) {
        headers.insert("server-timing", value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Some(node) = node {
        headers.insert(NODE_HEADER, node.clone());
    }
}

/// Wraps the body so that the access event is written once hyper is done with it
/// (`line.status` is taken from the response).
pub(super) fn logged(response: Response, mut line: AccessLine) -> Response {
    let (parts, body) = response.into_parts();
    line.status = parts.status;
    let logged = LoggedBody {
        inner: body,
        bytes: 0,
        line: Some(line),
    };
    Response::from_parts(parts, Body::new(logged))
}

/// Paths the web server answers itself before it looks for a file, so a
/// `--site` file of the same name never shadows them.
pub(super) const NOT_FILES: [&str; 5] = [
    "/healthz",
    "/readyz",
    "/dns-query",
    "/_onebox/live",
    "/_onebox/live/events",
];

/// In front of the application: health endpoints, virtual hosts, cross-site and
/// size checks, then static files or the application.
pub(crate) async fn route(State(web): State<Arc<Web>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let trace = match req.extensions().get::<Arc<Trace>>() {
        Some(trace) => trace.clone(),
        None => {
            let trace = Arc::new(Trace::new(started));
            req.extensions_mut().insert(trace.clone());
            trace
        }
    };
    let path = req.uri().path().to_string();

    // RFC 9112 §3.2: an HTTP/1.1 request with no Host, or with more than one, is
    // malformed: 400 and close, since the framing of what follows is suspect too
    // (two Hosts are a classic way to make a proxy and a server disagree).
    let hosts_sent = req.headers().get_all(header::HOST).iter().count();
    if hosts_sent > 1 || (hosts_sent == 0 && req.version() == axum::http::Version::HTTP_11) {
        let message = if hosts_sent > 1 {
            "this request has more than one Host header"
        } else {
            "this request names no host: send a Host header"
        };
        let mut response = error_response(&path, StatusCode::BAD_REQUEST, message);
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }

    // A Host that is not a host name or address (`foobar.com....`, `[foobar.com]`,
    // `evil@foobar.com`) is refused as nginx refuses it: lenient parsing is how a
    // proxy and a server come to disagree about which site a request is for.
    if let Some(bad) = malformed_host(&req) {
        let mut response = error_response(
            &path,
            StatusCode::BAD_REQUEST,
            &format!("malformed host {bad:?}"),
        );
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }

    // Health endpoints answer for any name: monitoring reaches servers by address.
    match path.as_str() {
        "/healthz" => return health::healthz(),
        "/readyz" if web.maintenance.is_on() => {
            return maintenance_response(&path, web.dns_addr);
        }
        // With --dns off there is no DNS engine to answer for: DoH is off too.
        "/dns-query" if web.dns_addr.is_none() => {
            return error_response(
                &path,
                StatusCode::NOT_FOUND,
                "this node serves no DNS (--dns off), so no DNS over HTTPS either",
            );
        }
        "/readyz" => return health::readyz(&web).await,
        // DNS over HTTPS answers for any name too: clients reach it by address
        // (`https://127.0.0.1:8443/dns-query`), as browsers' secure-DNS settings do.
        "/dns-query" => {
            let response = dns_query(&web, req).await;
            trace.answered_by(Layer::Dns, started.elapsed());
            return response;
        }
        _ => {}
    }

    let Some(host) = request_host(&req) else {
        return error_response(
            &path,
            StatusCode::BAD_REQUEST,
            "this request names no host: send a Host header",
        );
    };
    let hosts = web.zones.serving_hosts();
    if !hosts.contains(&host) {
        // 421 Misdirected Request (RFC 9110 §15.5.20): the connection reached us,
        // but we are not the server for that name.
        return error_response(
            &path,
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "this server does not serve {host}: it serves {} (the names our zone points here)",
                hosts.join(" and ")
            ),
        );
    }

    // The live view stays up during maintenance: watching the site go down is
    // the point of it.
    match path.as_str() {
        "/_onebox/live" => return live::page(&web),
        "/_onebox/live/events" => {
            let viewer = req.extensions().get::<ConnInfo>().map(|c| c.peer.ip());
            return live::events(&web, viewer);
        }
        _ => {}
    }
    if web.maintenance.is_on() {
        return maintenance_response(&path, web.dns_addr);
    }

    if !is_safe(req.method())
        && let Some(reason) = cross_site(&req)
    {
        return error_response(&path, StatusCode::FORBIDDEN, &reason);
    }

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return error_response(
            &path,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("request body is larger than {} bytes", MAX_BODY),
        );
    }
    // A chunked body has no length up front: cut it off while it is read. The
    // application's body extractors turn the cut into 413.
    req.extensions_mut().insert(SiteHost(host));
    let req = req.map(|body| Body::new(Limited::new(body, MAX_BODY)));

    if matches!(*req.method(), Method::GET | Method::HEAD) {
        let headers = req.headers().clone();
        let head = req.method() == Method::HEAD;
        if let Some(response) = web.assets.serve(&path, &headers, head).await {
            trace.answered_by(Layer::Static, started.elapsed());
            return response;
        }
    }
    let app_started = Instant::now();
    let response = next.run(req).await;
    trace.answered_by(Layer::App, app_started.elapsed());
    response
}

/// 503 while `onebox maintenance on`: the one-server design's second weakness.
/// DNS still answers, so a visitor sees exactly which box is down.
fn maintenance_response(path: &str, dns: Option<SocketAddr>) -> Response {
    let retry = [(header::RETRY_AFTER, "60")];
    if path.starts_with("/api/") {
        let mut response = error_response(
            path,
            StatusCode::SERVICE_UNAVAILABLE,
            "down for maintenance: try again in a minute",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return response;
    }
    (
        StatusCode::SERVICE_UNAVAILABLE,
        retry,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        MAINTENANCE_PAGE.replace("DNS_NOTE", &dns_note(dns)),
    )
        .into_response()
}

/// The maintenance page's word on DNS: it still answers, or (a web node with
/// `--dns off`) it is served by other machines.
fn dns_note(dns: Option<SocketAddr>) -> String {
    match dns {
        Some(dns) => format!(
            "DNS still answers (try <code>dig {} www.foobar.com</code>): the name still leads \
here, but the web server has nothing to serve.",
            dig_args(dns)
        ),
        None => "This node serves no DNS (it runs with <code>--dns off</code>): the name \
leads to whatever fronts it, and this web server has nothing to serve."
            .to_string(),
    }
}

const MAINTENANCE_PAGE: &str = "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Down for maintenance</title><link rel=\"stylesheet\" href=\"/static/site.css\"></head>\
<body><main class=\"wrap\"><section class=\"hero\"><p class=\"eyebrow\">503 · back soon</p>\
<h1>Down for maintenance</h1><p class=\"lede\">The site runs on one server, and that server is being \
worked on. DNS_NOTE With a second server behind a load balancer, one could be \
maintained while the other carries on.</p></section></main></body></html>\n";

/// `@ADDR -p PORT` for a `dig` line that reaches our DNS server where it is
/// actually bound (a wildcard address is reached on loopback).
pub(crate) fn dig_args(dns: SocketAddr) -> String {
    let ip = match dns.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("@{ip} -p {}", dns.port())
}

/// DNS over HTTPS (RFC 8484), on the HTTPS listener only: the protocol's promise
/// is privacy, which plain HTTP would break.
async fn dns_query(web: &Web, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some(conn) = req
        .extensions()
        .get::<ConnInfo>()
        .cloned()
        .filter(|c| c.tls)
    else {
        return error_response(
            &path,
            StatusCode::NOT_FOUND,
            "DNS over HTTPS is served on the HTTPS listener (https://127.0.0.1:8443/dns-query)",
        );
    };
    let method = req.method().as_str().to_string();
    let query = req.uri().query().map(str::to_string);
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let Ok(body) = axum::body::to_bytes(req.into_body(), usize::from(u16::MAX) + 1).await else {
        return error_response(
            &path,
            StatusCode::PAYLOAD_TOO_LARGE,
            "a DNS message is at most 65535 bytes",
        );
    };
    let reply = doh::handle(
        &web.engine,
        web.recursor.as_ref(),
        &method,
        query.as_deref(),
        content_type.as_deref(),
        &body,
        conn.peer,
    )
    .await;
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    if let Some(age) = reply.max_age
        && let Ok(value) = HeaderValue::from_str(&format!("max-age={age}"))
    {
        headers.insert(header::CACHE_CONTROL, value);
    }
    if reply.status == 405 {
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    response
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Browsers tell us where a request came from (`Origin`, `Sec-Fetch-Site`); a
/// state-changing request started by another site is refused outright. Scripts and
/// curl send neither header and are unaffected. The per-form CSRF tokens in the
/// application are the main defence; this is the second lock on the door.
///
/// An origin is scheme, host *and* port (RFC 6454): `http://foobar.com:8080` may not
/// post to `https://foobar.com:8443`, and another program on another port of the
/// same name is another site. So `Origin` must equal the request's own origin.
fn cross_site(req: &Request) -> Option<String> {
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site")
    {
        return Some("cross-site request refused (Sec-Fetch-Site: cross-site)".into());
    }
    let origin = req.headers().get(header::ORIGIN)?;
    let tls = req.extensions().get::<ConnInfo>().is_some_and(|c| c.tls);
    let scheme = if tls { "https" } else { "http" };
    let ours = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            let host = req.headers().get(header::HOST)?.to_str().ok()?;
            Some(host.to_string())
        })
        .and_then(|authority| origin_parts(scheme, &authority));
    let theirs = origin.to_str().ok().and_then(|o| {
        let (their_scheme, authority) = o.split_once("://")?;
        origin_parts(&their_scheme.to_ascii_lowercase(), authority)
    });
    match (ours, theirs) {
        (Some(ours), Some(theirs)) if ours == theirs => None,
        _ => Some(format!(
            "cross-site request refused (Origin: {})",
            String::from_utf8_lossy(origin.as_bytes())
        )),
    }
}

/// `(scheme, host, port)` of an origin, with the scheme's default port filled in;
/// `None` for anything that is not a plain `host[:port]` (a path, user info).
fn origin_parts(scheme: &str, authority: &str) -> Option<(String, String, u16)> {
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if authority.contains(['@', '/', '?', '#']) {
        return None;
    }
    let authority: axum::http::uri::Authority = authority.parse().ok()?;
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let port = authority.port_u16().unwrap_or(default_port);
    (!host.is_empty()).then(|| (scheme.to_string(), host, port))
}

/// A panic in a handler becomes a 500 for that request; the connection and the
/// server carry on.
pub(crate) fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!("http: handler panicked: {detail}");
    let mut response = (
        StatusCode::INTERNAL_SERVER_ERROR,
        axum::Json(serde_json::json!({ "error": "internal server error" })),
    )
        .into_response();
    response.headers_mut().remove(header::CONTENT_LENGTH);
    response
}

/// What the access event says about one request.
pub(super) struct AccessLine {
    pub(super) method: Method,
    pub(super) host: String,
    pub(super) path: String,
    pub(super) status: StatusCode,
    /// The request's trace: which layer answered, which route.
    pub(super) snapshot: Snapshot,
    pub(super) start: Instant,
    /// The connection (the client's address, TLS or not), absent only in tests.
    pub(super) conn: Option<ConnInfo>,
    pub(super) live: Live,
    /// For the metrics' protocol label.
    pub(super) http2: bool,
}

/// The response body, counting the bytes hyper takes from it; the access event is
/// written when hyper is done with the body (sent, or the client went away).
struct LoggedBody {
    inner: Body,
    bytes: u64,
    line: Option<AccessLine>,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes += data.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.log(self.bytes);
        }
    }
}

impl AccessLine {
    /// Writes the access event for a request whose answer is done with, `bytes`
    /// of body taken: the metrics, the access log line and the live event.
    pub(super) fn log(self, bytes: u64) {
        // One clock read serves the metrics, the log line and the live event
        // (and one wall-clock read the log line and the live event).
        let micros = self.start.elapsed().as_micros() as u64;
        let at = std::time::SystemTime::now();
        crate::metrics::web::request(
            self.status == StatusCode::MISDIRECTED_REQUEST,
            self.method.as_str(),
            self.status.as_u16(),
            self.http2,
            self.conn.as_ref().is_some_and(|c| c.tls),
            micros,
            bytes,
        );
        super::access_log::Fields {
            method: self.method.as_str(),
            host: &self.host,
            path: &self.path,
            status: self.status.as_u16(),
            bytes,
            micros,
            layer: self.snapshot.layer.as_str(),
            route: self.snapshot.route.as_deref().unwrap_or(""),
        }
        .log(at);
        if let Some(client) = self.conn.as_ref().map(|c| c.peer) {
            self.live.publish(Event::Http {
                at_ms: crate::live::ms_at(at),
                client,
                method: crate::live::method_name(self.method.as_str()),
                // The line is done with: its strings move into the event.
                host: self.host,
                path: self.path,
                status: self.status.as_u16(),
                layer: self.snapshot.layer.as_str(),
                micros,
            });
        }
    }
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    fn request(tls: bool, host: &str, origin: &str) -> Request {
        let mut req = Request::builder()
            .method("POST")
            .uri("/login")
            .header(header::HOST, host)
            .header(header::ORIGIN, origin)
            .body(Body::empty())
            .expect("a valid request");
        req.extensions_mut().insert(ConnInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 50000)),
            local: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls,
            server: ConnInfo::HYPER,
        });
        req
    }

    #[test]
    fn origin_must_match_scheme_host_and_port() {
        // (TLS, Host, Origin, the same site)
        for (tls, host, origin, same_site) in [
            (false, "foobar.com:8080", "http://foobar.com:8080", true),
            (false, "FOOBAR.com:8080", "http://foobar.com.:8080", true),
            (true, "foobar.com:8443", "https://foobar.com:8443", true),
            (false, "foobar.com", "http://foobar.com", true),
            (false, "foobar.com", "http://foobar.com:80", true),
            (true, "foobar.com", "https://foobar.com", true),
            (false, "foobar.com:8080", "http://foobar.com:9999", false),
            (false, "foobar.com:8080", "https://foobar.com:8080", false),
            (true, "foobar.com:8443", "http://foobar.com:8443", false),
            (
                false,
                "foobar.com:8080",
                "http://www.foobar.com:8080",
                false,
            ),
            (false, "foobar.com:8080", "http://evil.example:8080", false),
            (
                false,
                "foobar.com:8080",
                "http://evil@foobar.com:8080",
                false,
            ),
            (false, "foobar.com:8080", "null", false),
            (false, "foobar.com", "http://foobar.com:8080", false),
        ] {
            assert_eq!(
                cross_site(&request(tls, host, origin)).is_none(),
                same_site,
                "{origin} to {host}"
            );
        }
    }
}
