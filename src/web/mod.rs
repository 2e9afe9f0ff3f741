//! The web server box: hyper on the address the apex A record gives.
//!
//! A request passes these stages, outermost first:
//!
//! 1. [`serve`]: our own accept loop (connection limits in [`conns`]: a global
//!    cap, a per-address cap, an idle timeout and the header timeout, shedding the
//!    longest-idle connection rather than making a new client wait; accept errors
//!    such as EMFILE pause it instead of ending it). Each accepted connection is
//!    then served for its whole life by one of the per-core threads of
//!    [`shards`], never moving between cores. A plain connection starts in
//!    [`h1`], our own HTTP/1.1 keep-alive loop, which answers the fast paths'
//!    requests (a file in memory, the anonymous home page) itself; at the first
//!    request it does not answer, and for every TLS connection, the stream goes
//!    to hyper-util's `auto` builder, which speaks HTTP/1.1 and HTTP/2 with prior
//!    knowledge (h2c).
//! 2. [`front::access`]: measures the request, writes the access-log event and the
//!    `Server-Timing` header, and gives every `/api/` error a JSON body.
//! 3. tower-http: panics become 500s, responses are compressed when asked, slow
//!    requests time out.
//! 4. [`front::route`]: virtual hosts from the zone (other names get 421), the body
//!    size limit, then static files ([`assets`]) or the application: a `Router`
//!    that serve.rs builds and hands over in [`WebConfig`], so this module never
//!    names the application.

mod access_log;
mod assets;
pub(crate) mod conns;
mod fast;
pub(crate) mod front;
mod h1;
pub(crate) mod health;
mod home;
mod io;
mod live;
pub(crate) mod records;
mod shards;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::http::{Extensions, HeaderMap, Request, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::timeout::TimeoutLayer;

use crate::control::Maintenance;
use crate::db::Store;
use crate::dns::{Engine, Zones};
use crate::live::Live;
use crate::request::ConnInfo;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_util::either::Either;

/// Request bodies above this get 413 (nginx's `client_max_body_size` default).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Request headers must arrive within this (nginx `client_header_timeout` is 60 s;
/// hyper's is 30 s; a shorter one frees slowloris connections sooner). It also closes
/// idle keep-alive connections. The idle sweep enforces it ([`conns`]), within
/// one sweep ([`IDLE_SWEEP`]) of the limit, for every HTTP/1 connection.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// A whole request (body read, handler, database) must finish within this: 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/1.1 read buffer: the request line and headers must fit, else 431
/// (nginx allows 4 × 8 KB of large headers).
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// How long a graceful stop waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(8);

/// A response write that makes no progress for this long closes the connection
/// (nginx `send_timeout`, 60 s): the defence against slow-read clients.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a TLS client may take to finish its handshake (tokio-rustls has no
/// timeout of its own; a client that never finishes would hold a slot forever).
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A shed connection gets this long to close politely (HTTP/2 GOAWAY) before it
/// is dropped: an idle client that reads nothing never completes that exchange.
const SHED_GRACE: Duration = Duration::from_secs(1);
/// How often idle connections are looked for (at most).
const IDLE_SWEEP: Duration = Duration::from_secs(5);

/// What the web server needs from the rest of onebox.
#[derive(Debug)]
pub(crate) struct WebConfig {
    pub(crate) zones: Zones,
    pub(crate) db: Arc<dyn Store>,
    pub(crate) site_dir: Option<PathBuf>,
    /// Our DNS server, for `/readyz` and the pages' `dig` hints; `None` with
    /// `--dns off`, which also switches DNS over HTTPS off.
    pub(crate) dns_addr: Option<SocketAddr>,
    /// The application: every request the web server does not answer itself
    /// (static files, health, DNS over HTTPS) goes to this router.
    pub(crate) router: axum::Router,
    /// The DNS engine, for DNS over HTTPS at `/dns-query`.
    pub(crate) engine: Engine,
    /// The toy Internet's recursive resolver, when it runs: DoH answers through
    /// it, so a browser sees the whole delegation chain.
    pub(crate) recursor: Option<crate::dns::recursor::Recursor>,
    /// Where HTTP requests are published for the live view.
    pub(crate) live: Live,
    /// Set by `onebox maintenance on`: the site answers 503.
    pub(crate) maintenance: Maintenance,
    /// The HTTPS listener and its TLS settings (certificates from our CA).
    pub(crate) https: Option<(TcpListener, Arc<ServerConfig>)>,
    /// `serve --live-public`: the live view shows every client's events, not
    /// only the viewer's own.
    pub(crate) live_public: bool,
    /// Answer plain requests for in-memory files from [`fast`] (off with
    /// `serve --no-static-fast-path`).
    pub(crate) static_fast_path: bool,
    /// `serve --http-conns-per-addr`: open connections per client address.
    pub(crate) conns_per_addr: usize,
    /// Connections with no request in flight this long are closed
    /// ([`conns::IDLE_TIMEOUT`] unless a test shortens it).
    pub(crate) idle_timeout: Duration,
    /// `serve --node-name`: sent as `Onebox-Node` on every response.
    pub(crate) node_name: Option<String>,
    /// The application's anonymous home page, answered by [`home`] before the
    /// router (`None`: every `/` goes through the router).
    pub(crate) home: Option<crate::request::HomePage>,
}

/// State shared by the web layers.
#[derive(Debug)]
pub(crate) struct Web {
    pub(crate) zones: Zones,
    pub(crate) db: Arc<dyn Store>,
    pub(crate) dns_addr: Option<SocketAddr>,
    pub(crate) engine: Engine,
    pub(crate) recursor: Option<crate::dns::recursor::Recursor>,
    pub(crate) live: Live,
    pub(crate) maintenance: Maintenance,
    /// Long-lived responses (the live view's stream) end when the server stops.
    pub(crate) shutdown: CancellationToken,
    /// See [`WebConfig::live_public`].
    pub(crate) live_public: bool,
    /// Open live-view streams, capped at [`live::MAX_STREAMS`] and
    /// [`live::MAX_STREAMS_PER_ADDR`].
    pub(crate) live_slots: Arc<live::Slots>,
    /// The `Onebox-Node` header's value (see [`front::access`]).
    pub(crate) node_name: Option<axum::http::HeaderValue>,
    assets: assets::Assets,
}

/// Serves HTTP on `listener` (and HTTPS on the configured listener) until
/// `shutdown`, then drains in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    config: WebConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let web = Arc::new(Web {
        zones: config.zones.clone(),
        db: config.db.clone(),
        dns_addr: config.dns_addr,
        engine: config.engine.clone(),
        recursor: config.recursor.clone(),
        live: config.live.clone(),
        maintenance: config.maintenance.clone(),
        shutdown: shutdown.clone(),
        live_public: config.live_public,
        live_slots: Arc::default(),
        node_name: config
            .node_name
            .as_deref()
            .map(axum::http::HeaderValue::from_str)
            .transpose()
            .context("--node-name is not a valid header value")?,
        assets: assets::Assets::new(config.site_dir.as_deref())?,
    });
    let app = config.router;
    // `Router::layer` wraps every route and the fallback; the last layer added is
    // the outermost, so read this list bottom-up in request order.
    let service = app
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            front::route,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(
            CompressionLayer::new().compress_when(
                DefaultPredicate::new().and(not_partial as fn(_, _, &_, &_) -> bool),
            ),
        )
        .layer(CatchPanicLayer::custom(front::panic_response))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            front::access,
        ));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    // No hyper header timer (hyper's default is 30 s): the idle sweep closes a
    // connection whose headers have not arrived in HEADER_TIMEOUT, without a
    // timer made and torn down per request.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(Duration::from_secs(60));

    let conns = Arc::new(conns::Conns::new(
        conns::MAX_CONNECTIONS,
        config.conns_per_addr,
    ));
    let tracker = TaskTracker::new();
    tracker.spawn(sweep_idle(
        conns.clone(),
        config.idle_timeout,
        shutdown.clone(),
    ));
    // A `--site` folder may answer `/` with its own index page before the app.
    let home = config
        .home
        .filter(|_| config.site_dir.is_none())
        .map(|page| {
            Arc::new(home::Home {
                web: web.clone(),
                page,
            })
        });
    let listeners = Listeners {
        paths: Arc::new(FastPaths {
            files: config.static_fast_path.then_some(web),
            home,
        }),
        builder: Arc::new(builder),
        service,
        conns,
        shards: shards::Shards::start()?,
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    };
    let plain = listeners.accept_loop(listener, None);
    match config.https {
        Some((tls_listener, tls_config)) => {
            let tls = listeners.accept_loop(tls_listener, Some(TlsAcceptor::from(tls_config)));
            let (a, b) = tokio::join!(plain, tls);
            a?;
            b?;
        }
        None => plain.await?,
    }
    tracing::info!("http: stopped accepting; draining connections");
    // Every connection's close token is a child of `shutdown`: each one has been
    // told to finish its requests and close.
    tracker.close();
    tokio::select! {
        () = tracker.wait() => tracing::info!("http: all connections closed"),
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("http: connections still open after {DRAIN:?}; closing them");
        }
    }
    listeners.shards.stop().await;
    Ok(())
}

/// Closes connections that had no request in flight for `idle`, and HTTP/1
/// connections that had none for [`HEADER_TIMEOUT`].
async fn sweep_idle(conns: Arc<conns::Conns>, idle: Duration, shutdown: CancellationToken) {
    let every = IDLE_SWEEP
        .min(idle.min(HEADER_TIMEOUT) / 2)
        .max(Duration::from_millis(100));
    let mut trimmed_at = 0;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        let closed = conns.close_idle(idle, HEADER_TIMEOUT);
        let (open, admitted) = conns.open_and_admitted();
        if closed > 0 {
            tracing::debug!("http: closed {closed} idle connections; {open} open");
        }
        // Quiet again after connections came and went: give their freed buffers
        // back (at most once per sweep, and never while a connection is open).
        if open == 0 && admitted != trimmed_at {
            trimmed_at = admitted;
            return_freed_memory();
        }
    }
}

/// Hands the heap's free pages back to the OS. Each connection's read and write
/// buffers are freed when it closes, but glibc keeps freed heap memory for reuse:
/// after 256 connections of static load the process stayed about 5 MB above
/// what it needs at rest (24.0 MB against 18.8 after a trim, measured with
/// `wrk -c256` on one core). `malloc_trim` walks the heap once: cheap at one
/// call per quiet sweep. Other allocators (musl) return memory on their own.
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only releases free heap pages; it is thread-safe
        // and touches no memory the program holds.
        let _released = unsafe { libc::malloc_trim(0) };
    }
}

/// The requests answered before the router: by hyper's service, and on plain
/// connections by the HTTP/1.1 loop ([`h1`]) first.
struct FastPaths {
    /// Files in memory ([`fast`]); `None` with `--no-static-fast-path`.
    files: Option<Arc<Web>>,
    /// The anonymous home page ([`home`]); `None` when it is off.
    home: Option<Arc<home::Home>>,
}

/// What every accept loop shares.
struct Listeners {
    /// The fast paths, which answer before the router.
    paths: Arc<FastPaths>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    service: axum::Router,
    /// One registry for both listeners: the limits bound the whole server.
    conns: Arc<conns::Conns>,
    /// The threads that serve accepted connections, one per core.
    shards: shards::Shards,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Listeners {
    /// Accepts until shutdown; with `tls`, each connection first completes a TLS
    /// handshake (bounded in time) and ALPN decides between HTTP/2 and HTTP/1.1.
    async fn accept_loop(
        &self,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
    ) -> anyhow::Result<()> {
        let local = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE, ENFILE, ECONNABORTED…: the listener is fine; wait and go on.
                        tracing::warn!("{scheme}: accept failed: {e}; retrying shortly");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = self.shutdown.cancelled() => break,
            };
            // Accept first, then decide: at a limit the longest-idle connection
            // makes room, and when every connection is busy the new one is closed
            // at once rather than left waiting in the backlog.
            let slot = match self.conns.admit(peer.ip(), &self.shutdown) {
                Ok(slot) => slot,
                Err(refused) => {
                    crate::metrics::web::connection_refused(tls.is_some());
                    tracing::debug!("{scheme}: refused {peer}: {refused}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            let local = stream.local_addr().unwrap_or(local);
            // Out of this runtime's reactor, to join the connection thread's.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!("{scheme}: could not hand over {peer}: {e}");
                    continue;
                }
            };
            let info = ConnInfo {
                peer,
                local,
                tls: tls.is_some(),
                server: ConnInfo::HYPER,
            };
            let service = self.service.clone();
            let paths = self.paths.clone();
            let activity = slot.activity();
            // The hand-written loop serves plain connections only (TLS brings
            // ALPN, and with it HTTP/2), when it has a fast path to answer from.
            let h1 =
                (tls.is_none() && (paths.files.is_some() || paths.home.is_some())).then(|| {
                    let info = ConnInfo {
                        server: ConnInfo::OWN_LOOP,
                        ..info.clone()
                    };
                    (paths.clone(), info, activity.clone())
                });
            let hyper_service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                let start = std::time::Instant::now();
                // The connection counts as busy from here until the response body
                // is sent or dropped, so it is never shed mid-request.
                let active = activity.begin();
                if req.version() == Version::HTTP_2 {
                    activity.multiplexed();
                }
                let answer = paths
                    .files
                    .as_ref()
                    .and_then(|web| fast::serve(web, &req, &info, start));
                let page = paths
                    .home
                    .as_ref()
                    .filter(|_| answer.is_none())
                    .and_then(|h| h.serve(&req, &info, start));
                let response = match (answer, page) {
                    (Some(answer), _) => Either::Left(answer),
                    (None, Some(page)) => Either::Right(Either::Left(page)),
                    (None, None) => {
                        req.extensions_mut().insert(info.clone());
                        Either::Right(Either::Right(service.clone().oneshot(req.map(Body::new))))
                    }
                };
                async move {
                    let response = match response {
                        Either::Left(answer) => answer,
                        Either::Right(Either::Left(page)) => page.await,
                        Either::Right(Either::Right(routed)) => routed.await?,
                    };
                    Ok::<_, std::convert::Infallible>(response.map(|inner| Busy {
                        inner,
                        _active: active,
                    }))
                }
            });
            let builder = self.builder.clone();
            let counted = crate::metrics::web::connection(tls.is_some());
            let tls = tls.clone();
            let shutdown = self.shutdown.clone();
            self.shards.spawn(&self.tracker, async move {
                // The slot is held (and the connection counted open) until this
                // task ends, whichever way it ends.
                let close = slot.close_token();
                let stream = match tokio::net::TcpStream::from_std(stream) {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!("{scheme}: could not serve {peer}: {e}");
                        return;
                    }
                };
                let closing = slot.closing();
                let mut closing = std::pin::pin!(closing);
                let _slot = slot;
                let _counted = counted;
                let io = match tls {
                    None => Either::Left(stream),
                    Some(acceptor) => {
                        let handshake = tokio::select! {
                            handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
                            () = close.cancelled() => return,
                        };
                        match handshake {
                            Ok(Ok(tls_stream)) => Either::Right(tls_stream),
                            Ok(Err(e)) => {
                                tracing::debug!("https: TLS handshake with {peer} failed: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("https: TLS handshake with {peer} timed out");
                                return;
                            }
                        }
                    }
                };
                let io = io::SendTimeout::new(io, SEND_TIMEOUT, fd);
                let io = match h1 {
                    Some((paths, info, activity)) => {
                        match h1::serve(io, &paths, &info, &activity, closing.as_mut()).await {
                            h1::Outcome::Closed => return,
                            h1::Outcome::Handover(io) => {
                                crate::metrics::web::connection_handed_over();
                                io
                            }
                        }
                    }
                    None => io,
                };
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_service);
                let mut conn = std::pin::pin!(conn);
                let ended = tokio::select! {
                    biased;
                    ended = conn.as_mut() => ended,
                    () = closing.as_mut() => {
                        // Shed, or the server is stopping: finish what is in flight
                        // (HTTP/2 sends GOAWAY), within a bound.
                        conn.as_mut().graceful_shutdown();
                        let grace = if shutdown.is_cancelled() { DRAIN } else { SHED_GRACE };
                        tokio::time::timeout(grace, conn.as_mut()).await.unwrap_or(Ok(()))
                    }
                };
                if let Err(e) = ended {
                    tracing::debug!("{scheme}: connection from {peer} ended: {e}");
                }
            });
        }
        Ok(())
    }
}

/// A response body that keeps its connection marked busy until hyper is done
/// with it (sent, or dropped when the client went away). A plain struct rather
/// than a `map_frame` closure boxed into another `Body`: one allocation and one
/// dynamic call per frame fewer on every request.
struct Busy {
    inner: Body,
    _active: conns::Active,
}

impl hyper::body::Body for Busy {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// A byte range of a compressed body would not be a byte range of the file.
fn not_partial(status: StatusCode, _: Version, _: &HeaderMap, _: &Extensions) -> bool {
    status != StatusCode::PARTIAL_CONTENT
}
