//! The home page's fast path: a plain anonymous `GET /` is handed straight from
//! the accept loop's service to the application's [`HomePage`], without the
//! router, the six tower layers and axum's extractors, which cost more CPU than
//! building the page itself (the board is pre-rendered; only the panel and the
//! counted visit are per view).
//!
//! It takes only requests whose answer it can give exactly as the ordinary path
//! would: `GET` over HTTP/1.x with no body, the path `/` with no query, one
//! well-formed `Host` that the zone serves, no `Cookie` (so the visitor is
//! anonymous and gets a new CSRF cookie, as the ordinary path gives it), no
//! `Accept-Encoding` (the ordinary path compresses), no maintenance and no
//! `--site` folder (whose `index.html` would answer `/` first). The answer carries
//! what the front layers add (`Vary` from compression, [`front::common_headers`],
//! the access event from [`front::logged`]), the request timeout, and the panic
//! guard. Everything else goes the ordinary way, which stays the reference: a
//! test fetches `/` both ways and compares the answers.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Version, header};
use futures_util::FutureExt as _;
use hyper::body::{Body as _, Incoming};
use tower_http::compression::predicate::{DefaultPredicate, Predicate as _};

use super::Web;
use super::front::{self, AccessLine};
use crate::request::{ConnInfo, HomePage, HomeRequest, Layer, Trace};

/// The home fast path's state: the web server's and the application's page.
pub(super) struct Home {
    pub(super) web: Arc<Web>,
    pub(super) page: HomePage,
}

impl Home {
    /// The answer for `req` when the fast path takes it; `None` sends the request
    /// the ordinary way.
    pub(super) fn serve(
        &self,
        req: &Request<Incoming>,
        conn: &ConnInfo,
        start: Instant,
    ) -> Option<impl Future<Output = Response<Body>> + Send + use<>> {
        let headers = req.headers();
        if !Self::takes(
            req.method() == Method::GET,
            req.uri().path(),
            req.uri().query().is_some(),
            headers.contains_key(header::COOKIE),
        ) || !matches!(req.version(), Version::HTTP_11 | Version::HTTP_10)
            || req.uri().authority().is_some()
            || !req.body().is_end_stream()
            || headers.contains_key(header::ACCEPT_ENCODING)
        {
            return None;
        }
        let mut hosts = headers.get_all(header::HOST).iter();
        let (Some(raw), None) = (hosts.next(), hosts.next()) else {
            return None;
        };
        let raw = raw.to_str().ok()?;
        let host = self.host(raw)?;
        let answer = self.answer(host, conn, req.version(), start);
        Some(async move {
            let (response, line) = answer.await;
            front::logged(response, line)
        })
    }

    /// Whether a request is the anonymous home page's, whichever transport read
    /// it: a `GET` of `/` with no query and no cookie (so the visitor is anonymous).
    pub(super) fn takes(get: bool, path: &str, query: bool, cookie: bool) -> bool {
        get && path == "/" && !query && !cookie
    }

    /// The site a well-formed `Host` value `raw` names, when the zone serves it
    /// and the site is not in maintenance.
    pub(super) fn host(&self, raw: &str) -> Option<String> {
        // No file can answer `/` here: `serve` builds this path only without a
        // `--site` folder, and no built-in file is named `/`.
        if !front::host_is_well_formed(raw) || self.web.maintenance.is_on() {
            return None;
        }
        super::fast::served_host(&self.web, raw)
    }

    /// The page for an anonymous `GET /` on `host`, with its access line (to
    /// write once the page has been sent), whichever transport sends it.
    pub(super) fn answer(
        &self,
        host: String,
        conn: &ConnInfo,
        version: Version,
        start: Instant,
    ) -> impl Future<Output = (Response<Body>, AccessLine)> + Send + use<> {
        let trace = Arc::new(Trace::new(start));
        let page = self.page.page(HomeRequest {
            host: host.clone(),
            conn: conn.clone(),
            version,
            trace: trace.clone(),
        });
        let web = self.web.clone();
        let conn = conn.clone();
        async move {
            let app_started = Instant::now();
            // The ordinary path's timeout and panic layers, around the page alone.
            let answered = tokio::time::timeout(
                super::REQUEST_TIMEOUT,
                std::panic::AssertUnwindSafe(page).catch_unwind(),
            )
            .await;
            let mut response = match answered {
                Ok(Ok(response)) => {
                    trace.answered_by(Layer::App, app_started.elapsed());
                    response
                }
                Ok(Err(panic)) => front::panic_response(panic),
                Err(_) => {
                    let mut timed_out = Response::new(Body::empty());
                    *timed_out.status_mut() = StatusCode::REQUEST_TIMEOUT;
                    timed_out
                }
            };
            // axum's router states the length of a body that knows it; hyper
            // would otherwise send the page chunked.
            if let Some(len) = response.body().size_hint().exact()
                && !response.headers().contains_key(header::CONTENT_LENGTH)
            {
                response
                    .headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            // The compression layer (same predicate) marks what it could have
            // compressed, even for a client that asked for no compression.
            if DefaultPredicate::new().should_compress(&response) {
                response
                    .headers_mut()
                    .append(header::VARY, HeaderValue::from_static("accept-encoding"));
            }
            let snapshot = trace.snapshot();
            front::common_headers(response.headers_mut(), &snapshot, web.node_name.as_ref());
            let line = AccessLine {
                method: Method::GET,
                host,
                path: "/".to_string(),
                status: response.status(),
                snapshot,
                start,
                conn: Some(conn),
                live: web.live.clone(),
                http2: false,
            };
            (response, line)
        }
    }
}
