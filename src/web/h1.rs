//! The plain-HTTP connection loop: HTTP/1.1 keep-alive requests that a fast path
//! answers (a file in memory, the anonymous home page) are read, parsed and
//! answered here, without hyper; the first request that needs anything else hands
//! the connection, with every byte read so far, to hyper for good.
//!
//! Why: for a 2 KB file, hyper's machinery around a request (a `HeaderMap` filled
//! per request, the service call, the body's frames, its encoder) costs more
//! server CPU than finding the answer does. nginx answers static files from a loop
//! like this one. The loop reads into one buffer, parses the head in place with
//! `httparse` (the parser hyper itself uses), and writes the status line, headers
//! and body with one system call.
//!
//! What it takes is narrow on purpose, so that its answers are exactly the ones
//! hyper would send: `GET` or `HEAD` over HTTP/1.1, an origin-form target of
//! plain characters, exactly one `Host`, and none of the headers that change the
//! framing or the answer (`Connection`, `Content-Length`, `Transfer-Encoding`,
//! `Expect`, `Upgrade`, `Range`, conditionals, `Accept-Encoding`). The answers
//! are the fast paths' own ([`fast::answer`], [`Home::answer`]: the same headers
//! and access event), written as hyper writes them: the status line, the headers
//! in order, `content-length` where the map has none, then `date`. A test
//! fetches the same file and page through both transports and compares them.
//!
//! The limits still hold. A request head not complete within [`HEAD_LIMIT`]
//! bytes goes to hyper, whose own limit then answers 431. A connection waiting
//! here for a request is idle to the sweep ([`super::conns`]), which closes it at
//! the header or idle timeout, and when the server stops. Writes go through the
//! send timeout ([`super::io`]).

use std::cell::RefCell;
use std::io::{self, IoSlice, Write as _};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, Version, header};
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::conns::{Activity, Closing};
use super::home::Home;
use super::io::SendTimeout;
use super::{FastPaths, fast};
use crate::request::ConnInfo;

/// A request head not complete within this many bytes goes to hyper, whose own
/// limit (32 KiB, then 431) applies. Browsers and tools send well under 2 KB.
const HEAD_LIMIT: usize = 8 * 1024;
/// Headers parsed here; a request with more goes to hyper (which allows 100).
const MAX_HEADERS: usize = 32;
/// Bodies up to this size are copied behind the head into one buffer, so that
/// one `write` sends both; larger ones go out in a vectored write.
const COPY_BODY: usize = 16 * 1024;
/// Each read asks for at least this much room.
const READ_ROOM: usize = 2048;

/// Request headers that change the framing or the connection (a body, a close,
/// a protocol switch): such a request goes to hyper. Those that change the
/// answer itself are the static fast path's own list ([`fast::SLOW_HEADERS`]).
const FRAMING_HEADERS: [header::HeaderName; 5] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::EXPECT,
    header::UPGRADE,
];

/// How a connection left the loop.
pub(super) enum Outcome<S> {
    /// It is finished: the client closed it, a write failed, or it was told to close.
    Closed,
    /// A request the loop does not answer: hyper takes the connection from here,
    /// reading first what the loop had read.
    Handover(SendTimeout<S>),
}

fn handover<S>(mut io: SendTimeout<S>, input: BytesMut) -> Outcome<S> {
    io.read_first(input.freeze());
    Outcome::Handover(io)
}

/// Answers the fast paths' requests on `io` until the connection ends or a
/// request needs hyper. `closing` resolves when the connection must close; it
/// is looked at while waiting for a request, and a request already read is
/// still answered.
pub(super) async fn serve<S>(
    mut io: SendTimeout<S>,
    paths: &FastPaths,
    conn: &ConnInfo,
    activity: &Activity,
    mut closing: Pin<&mut Closing>,
) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut input = BytesMut::new();
    let mut out = Vec::new();
    loop {
        // Answer every complete request already read (a client may pipeline).
        while !input.is_empty() {
            let start = Instant::now();
            let request = match parse(&input) {
                Parsed::Partial => break,
                Parsed::Other => return handover(io, input),
                Parsed::Request(request) => request,
            };
            // Busy from here until the answer is written: the sweep never
            // closes a connection in the middle of a request.
            let active = activity.begin();
            let Some(reply) = reply(paths, &request, conn, start) else {
                drop(active);
                return handover(io, input);
            };
            let (len, request_head) = (request.len, request.head);
            input.advance(len);
            let sent = match reply {
                Reply::File {
                    headers,
                    prepared,
                    line,
                } => {
                    // The body is copied from the file's own bytes: no reference
                    // count shared by every core is touched for it.
                    let body: &[u8] = if request_head { &[] } else { &prepared.body };
                    let sent = send(&mut io, &mut out, StatusCode::OK, &headers, body).await;
                    sent.map(|bytes| line.log(bytes))
                }
                Reply::Page(page) => {
                    let (response, line) = page.await;
                    let (parts, body) = response.into_parts();
                    match body.collect().await {
                        Ok(body) => {
                            let body = body.to_bytes();
                            let sent = send(&mut io, &mut out, parts.status, &parts.headers, &body);
                            sent.await.map(|bytes| line.log(bytes))
                        }
                        Err(e) => Err(io::Error::other(e)),
                    }
                }
            };
            drop(active);
            if let Err(e) = sent {
                tracing::debug!("http: connection from {} ended: {e}", conn.peer);
                return Outcome::Closed;
            }
        }
        if input.len() >= HEAD_LIMIT {
            return handover(io, input);
        }
        input.reserve(READ_ROOM);
        tokio::select! {
            biased;
            () = closing.as_mut() => return Outcome::Closed,
            read = io.read_buf(&mut input) => match read {
                Ok(0) => return Outcome::Closed,
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("http: connection from {} ended: {e}", conn.peer);
                    return Outcome::Closed;
                }
            },
        }
    }
}

/// What the loop made of the bytes read so far.
enum Parsed<'a> {
    /// The head is not complete yet.
    Partial,
    /// Something the loop does not answer (or not HTTP/1.1 at all): hyper's.
    Other,
    Request(Request<'a>),
}

/// A request head the fast paths may answer.
struct Request<'a> {
    /// The head's length in bytes (there is no body).
    len: usize,
    /// `HEAD` rather than `GET`.
    head: bool,
    /// The target's path, without the query.
    path: &'a str,
    /// The target had a query.
    query: bool,
    /// The one `Host` value.
    host: &'a str,
    /// A `Cookie` was sent: the visitor may be signed in.
    cookie: bool,
}

fn parse(input: &[u8]) -> Parsed<'_> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(input) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let head = match request.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return Parsed::Other,
    };
    let (Some(1), Some(target)) = (request.version, request.path) else {
        return Parsed::Other;
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    if !path.starts_with('/')
        || !path.bytes().all(plain_byte)
        || !query.is_none_or(|q| q.bytes().all(|b| plain_byte(b) || b == b'?'))
    {
        return Parsed::Other;
    }
    let mut host = None;
    let mut cookie = false;
    for field in request.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("host") {
            // Visible ASCII only, as `HeaderValue::to_str` wants it.
            let value = std::str::from_utf8(field.value)
                .ok()
                .filter(|v| v.bytes().all(|b| (0x20..0x7f).contains(&b)));
            match (host, value) {
                (None, Some(value)) => host = Some(value),
                _ => return Parsed::Other,
            }
        } else if name.eq_ignore_ascii_case("cookie") {
            cookie = true;
        } else if FRAMING_HEADERS
            .iter()
            .chain(&fast::SLOW_HEADERS)
            .any(|other| name.eq_ignore_ascii_case(other.as_str()))
        {
            return Parsed::Other;
        }
    }
    let Some(host) = host else {
        return Parsed::Other;
    };
    Parsed::Request(Request {
        len,
        head,
        path,
        query: query.is_some(),
        host,
        cookie,
    })
}

/// Bytes a path or query may hold here: RFC 3986's unreserved and sub-delims,
/// `:`, `@`, `/` and `%`. Every one of them parses the same way in hyper's URI
/// type; anything else (a fragment, quotes, non-ASCII) goes to hyper to judge.
fn plain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&b)
}

/// An answer, before it is written. The file answer stays unboxed: it is the
/// hot path, and a short-lived value on the stack costs less than an allocation.
#[allow(clippy::large_enum_variant)]
enum Reply<P> {
    File {
        headers: HeaderMap,
        /// The file (its body is sent unless the request is a `HEAD`).
        prepared: Arc<super::assets::Prepared>,
        line: super::front::AccessLine,
    },
    /// The home page, still being made (its visit is being committed). Boxed:
    /// the page's future is large, and every connection's state would carry
    /// its size.
    Page(Pin<Box<P>>),
}

/// The fast path that answers `request`, in the order the hyper path tries
/// them: a file first, then the home page.
fn reply(
    paths: &FastPaths,
    request: &Request<'_>,
    conn: &ConnInfo,
    start: Instant,
) -> Option<Reply<impl Future<Output = (axum::response::Response, super::front::AccessLine)> + use<>>>
{
    if let Some(web) = &paths.files
        && let Some((host, prepared)) = fast::file(web, request.host, request.path, start)
    {
        let (headers, line) = fast::answer(
            web,
            &prepared,
            request.head,
            host,
            request.path,
            conn,
            start,
        );
        return Some(Reply::File {
            headers,
            prepared,
            line,
        });
    }
    let home = paths.home.as_ref()?;
    if !Home::takes(!request.head, request.path, request.query, request.cookie) {
        return None;
    }
    let host = home.host(request.host)?;
    Some(Reply::Page(Box::pin(home.answer(
        host,
        conn,
        Version::HTTP_11,
        start,
    ))))
}

/// Writes one answer; the body's length in bytes once it is sent.
async fn send<S: AsyncWrite + Unpin>(
    io: &mut S,
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> io::Result<u64> {
    out.clear();
    encode_head(out, status, headers, body.len());
    if body.len() <= COPY_BODY {
        out.extend_from_slice(body);
        io.write_all(out).await?;
    } else {
        write_both(io, out, body).await?;
    }
    Ok(body.len() as u64)
}

/// The status line and headers as hyper writes them for HTTP/1.1: the map's
/// headers in order, then `content-length` if the map has none, then `date`.
fn encode_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap, body_len: usize) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("<none>").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !headers.contains_key(header::CONTENT_LENGTH) {
        let _ = write!(out, "content-length: {body_len}\r\n");
    }
    if !headers.contains_key(header::DATE) {
        push_date(out);
    }
    out.extend_from_slice(b"\r\n");
}

/// `date: …` for the current second. Formatting a date per response costs more
/// than the rest of the head, so each thread keeps the last one it made (hyper
/// caches its date the same way).
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != second {
            *cached = (second, httpdate::fmt_http_date(now));
        }
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(cached.1.as_bytes());
        out.extend_from_slice(b"\r\n");
    });
}

/// Writes `first` then `second`, as few system calls as the socket allows.
async fn write_both<S: AsyncWrite + Unpin>(
    io: &mut S,
    mut first: &[u8],
    mut second: &[u8],
) -> io::Result<()> {
    while !first.is_empty() {
        let n = io
            .write_vectored(&[IoSlice::new(first), IoSlice::new(second)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        if n < first.len() {
            first = &first[n..];
        } else {
            second = &second[n - first.len()..];
            first = &[];
        }
    }
    io.write_all(second).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Option<(usize, bool, String, bool, String, bool)> {
        match parse(raw.as_bytes()) {
            Parsed::Request(r) => Some((
                r.len,
                r.head,
                r.path.to_string(),
                r.query,
                r.host.to_string(),
                r.cookie,
            )),
            _ => None,
        }
    }

    #[test]
    fn a_plain_request_is_taken_apart() {
        let raw = "GET /static/site.css?v=2 HTTP/1.1\r\nHost: foobar.com\r\nCookie: a=b\r\n\r\nGET";
        assert_eq!(
            parsed(raw),
            Some((
                raw.len() - 3,
                false,
                "/static/site.css".into(),
                true,
                "foobar.com".into(),
                true
            ))
        );
        let head = "HEAD / HTTP/1.1\r\nhost: foobar.com\r\nUser-Agent: x\r\n\r\n";
        assert_eq!(parsed(head).map(|p| p.1), Some(true));
    }

    #[test]
    fn what_hyper_must_judge_goes_to_hyper() {
        let other = [
            // Not HTTP/1.1, not GET or HEAD, not origin-form.
            "GET / HTTP/1.0\r\nHost: foobar.com\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: foobar.com\r\n\r\n",
            "GET http://foobar.com/ HTTP/1.1\r\nHost: foobar.com\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            // No Host, two Hosts, a Host that is not visible ASCII.
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a.com\r\nHost: b.com\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foo\x7fbar.com\r\n\r\n",
            // Framing, conditionals, compression, protocol switches.
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nContent-Length: 0\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nConnection: close\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nRANGE: bytes=0-1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nIf-None-Match: \"x\"\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nAccept-Encoding: gzip\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nUpgrade: h2c\r\n\r\n",
            // Targets whose parsing hyper's URI type decides.
            "GET /a#frag HTTP/1.1\r\nHost: foobar.com\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\nHost: foobar.com\r\n\r\n",
            "GET /a?b#c HTTP/1.1\r\nHost: foobar.com\r\n\r\n",
            // Garbage.
            "GET / HTTP/1.1\r\nHost foobar.com\r\n\r\n",
        ];
        for raw in other {
            assert!(
                matches!(parse(raw.as_bytes()), Parsed::Other),
                "taken: {raw:?}"
            );
        }
        let too_many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\nHost: foobar.com\r\n{too_many}\r\n");
        assert!(matches!(parse(raw.as_bytes()), Parsed::Other));
    }

    #[test]
    fn an_incomplete_head_waits_for_more() {
        for raw in ["", "GET / HT", "GET / HTTP/1.1\r\nHost: foobar.com\r\n"] {
            assert!(matches!(parse(raw.as_bytes()), Parsed::Partial), "{raw:?}");
        }
    }

    #[test]
    fn the_head_is_written_as_hyper_writes_it() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        headers.append(header::VARY, "a".parse().unwrap());
        headers.append(header::VARY, "b".parse().unwrap());
        let mut out = Vec::new();
        encode_head(&mut out, StatusCode::NOT_FOUND, &headers, 12);
        let text = String::from_utf8(out).unwrap();
        let (before, date) = text.split_once("date: ").unwrap();
        assert_eq!(
            before,
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\nvary: a\r\nvary: b\r\n\
             content-length: 12\r\n"
        );
        assert!(date.ends_with(" GMT\r\n\r\n"), "{date:?}");
        assert!(
            httpdate::parse_http_date(date.trim_end()).is_ok(),
            "{date:?}"
        );
    }
}
