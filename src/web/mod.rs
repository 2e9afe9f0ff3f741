//! The web server box: hyper on the address the apex A record gives.
//!
//! A request passes these stages, outermost first:
//!
//! 1. [`serve`]: our own accept loop (a connection cap; accept errors such as EMFILE
//!    pause it instead of ending it) hands each TCP stream to hyper-util's `auto`
//!    builder, which speaks HTTP/1.1 and HTTP/2 with prior knowledge (h2c) and closes
//!    connections whose headers do not arrive in time.
//! 2. [`front::access`]: measures the request, writes the access-log event and the
//!    `Server-Timing` header, and gives every `/api/` error a JSON body.
//! 3. tower-http: panics become 500s, responses are compressed when asked, slow
//!    requests time out.
//! 4. [`front::route`]: virtual hosts from the zone (other names get 421), the body
//!    size limit, then static files ([`assets`]) or the application ([`crate::app`]).

mod assets;
pub(crate) mod front;
mod health;
pub(crate) mod trace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Extensions, HeaderMap, Request, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::timeout::TimeoutLayer;

use crate::db::Db;
use crate::dns::Zones;
pub(crate) use trace::{ConnInfo, Trace};

/// Request bodies above this get 413 (nginx's `client_max_body_size` default).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Request headers must arrive within this (nginx `client_header_timeout` is 60 s;
/// hyper's is 30 s; a shorter one frees slowloris connections sooner). It also closes
/// idle keep-alive connections.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// A whole request (body read, handler, database) must finish within this: 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/1.1 read buffer: the request line and headers must fit, else 431
/// (nginx allows 4 × 8 KB of large headers).
const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Open connections at most; the accept loop waits for a free slot beyond this.
const MAX_CONNECTIONS: usize = 1024;
/// How long a graceful stop waits for in-flight requests.
const DRAIN: Duration = Duration::from_secs(8);

/// What the web server needs from the rest of onebox.
#[derive(Debug)]
pub(crate) struct WebConfig {
    pub(crate) zones: Zones,
    pub(crate) db: Db,
    pub(crate) site_dir: Option<PathBuf>,
    pub(crate) dns_addr: SocketAddr,
    /// How long a login lasts. Default 7 days; `ONEBOX_SESSION_TTL_SECS` (read in
    /// serve.rs) shortens it so tests can watch a session expire.
    pub(crate) session_ttl: Duration,
}

/// State shared by the web layers.
#[derive(Debug)]
pub(crate) struct Web {
    pub(crate) zones: Zones,
    pub(crate) db: Db,
    pub(crate) dns_addr: SocketAddr,
    assets: assets::Assets,
}

/// Serves HTTP on `listener` until `shutdown`, then drains in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    config: WebConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let web = Arc::new(Web {
        zones: config.zones.clone(),
        db: config.db.clone(),
        dns_addr: config.dns_addr,
        assets: assets::Assets::new(config.site_dir.as_deref())?,
    });
    let app = crate::app::router(crate::app::AppConfig {
        db: config.db.clone(),
        zones: config.zones.clone(),
        session_ttl: config.session_ttl,
    });
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
        .layer(axum::middleware::from_fn(front::access));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100)
        .max_header_list_size(16 * 1024)
        .keep_alive_interval(Duration::from_secs(60));

    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let local = listener.local_addr()?;
    loop {
        // A slot first, then accept: at the cap, new connections wait in the
        // kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit?,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE, ENFILE, ECONNABORTED…: the listener is fine; wait and go on.
                    tracing::warn!("http: accept failed: {e}; retrying shortly");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let info = ConnInfo {
            peer,
            local: stream.local_addr().unwrap_or(local),
            tls: false,
        };
        let service = service.clone();
        let hyper_service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(info.clone());
            service.clone().oneshot(req.map(Body::new))
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), hyper_service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("http: connection from {peer} ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("http: stopped accepting; draining connections");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("http: all connections closed"),
        () = tokio::time::sleep(DRAIN) => {
            tracing::warn!("http: connections still open after {DRAIN:?}; closing them");
        }
    }
    Ok(())
}

/// A byte range of a compressed body would not be a byte range of the file.
fn not_partial(status: StatusCode, _: Version, _: &HeaderMap, _: &Extensions) -> bool {
    status != StatusCode::PARTIAL_CONTENT
}
