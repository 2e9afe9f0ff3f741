//! The DNS listeners: read queries from the UDP socket and TCP connections that
//! `serve` bound, answer each with the [`Engine`], and stop on the shutdown token.
//!
//! hickory's own `Server` parses a packet before we could look at it and spawns a
//! task per packet with no bound; owning these loops lets us drop QR=1 packets on
//! the raw header, cap TCP connections and time out slow clients (RFC 7766, RFC 9210).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

pub(crate) mod rrl;
mod udp;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, Transport};

/// Limits in the spirit of NSD and Knot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// TCP connections served at once (NSD 100, BIND 150). More are closed at accept.
    pub(crate) tcp_connections: usize,
    /// How long a TCP connection may sit idle between queries (Knot: 10 s).
    pub(crate) tcp_idle: Duration,
    /// How long one query may take to arrive once its first byte did, and how long
    /// one answer may take to leave.
    pub(crate) tcp_io: Duration,
    /// UDP worker threads on the shared socket; each answers one batch at a time,
    /// which also bounds the UDP work in flight.
    pub(crate) udp_workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tcp_connections: 128,
            tcp_idle: Duration::from_secs(10),
            tcp_io: Duration::from_secs(5),
            udp_workers: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(2),
        }
    }
}

/// Serves DNS on the given sockets until `shutdown` is cancelled.
pub(crate) async fn run(
    engine: Engine,
    udp: UdpSocket,
    tcp: TcpListener,
    dot: Option<(TcpListener, Arc<ServerConfig>)>,
    limits: Limits,
    rrl_config: rrl::RrlConfig,
    shutdown: CancellationToken,
) {
    let rrl = Arc::new(rrl::Rrl::new(rrl_config));
    let mut udp_threads = Vec::new();
    match udp
        .into_std()
        .and_then(|s| s.set_nonblocking(false).map(|()| s))
    {
        Ok(socket) => {
            let socket = Arc::new(socket);
            let runtime = tokio::runtime::Handle::current();
            for i in 0..limits.udp_workers {
                let (engine, socket, runtime, shutdown, rrl) = (
                    engine.clone(),
                    socket.clone(),
                    runtime.clone(),
                    shutdown.clone(),
                    rrl.clone(),
                );
                let spawned = std::thread::Builder::new()
                    .name(format!("dns-udp-{i}"))
                    .spawn(move || udp::worker(&engine, &socket, &runtime, &rrl, &shutdown));
                match spawned {
                    Ok(handle) => udp_threads.push(handle),
                    Err(e) => tracing::error!("failed to start a DNS UDP worker: {e}"),
                }
            }
        }
        Err(e) => tracing::error!("dns udp socket unusable: {e}"),
    }
    let dot_task = dot.map(|(listener, config)| {
        tokio::spawn(tcp_accept_loop(
            engine.clone(),
            listener,
            Some(TlsAcceptor::from(config)),
            limits,
            shutdown.clone(),
        ))
    });
    tcp_accept_loop(engine, tcp, None, limits, shutdown).await;
    if let Some(task) = dot_task {
        let _ = task.await;
    }
    // The UDP workers notice the token within one receive timeout.
    let _ = tokio::task::spawn_blocking(move || {
        for handle in udp_threads {
            let _ = handle.join();
        }
    })
    .await;
}

/// Accepts DNS-over-TCP connections, or DNS-over-TLS ones when `tls` is given
/// (RFC 7858: the same two-byte framing inside TLS).
async fn tcp_accept_loop(
    engine: Engine,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let kind = if tls.is_some() { "tls" } else { "tcp" };
    let permits = Arc::new(Semaphore::new(limits.tcp_connections));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, client) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: wait a moment rather than spin, never give up.
                tracing::warn!("dns {kind} accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(
                "dns {kind} connection from {client} closed: {} connections already open",
                limits.tcp_connections
            );
            drop(stream);
            continue;
        };
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            let _ = stream.set_nodelay(true);
            let serve = async {
                match tls {
                    None => stream_connection(engine, stream, client, limits, Transport::Tcp).await,
                    Some(acceptor) => {
                        // tokio-rustls has no handshake timeout of its own.
                        match tokio::time::timeout(limits.tcp_io, acceptor.accept(stream)).await {
                            Ok(Ok(tls_stream)) => {
                                stream_connection(
                                    engine,
                                    tls_stream,
                                    client,
                                    limits,
                                    Transport::Tls,
                                )
                                .await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!("dns tls handshake with {client} failed: {e}")
                            }
                            Err(_) => tracing::debug!("dns tls handshake with {client} timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = serve => {}
            }
            drop(permit);
        });
    }
    connections.shutdown().await;
}

/// RFC 1035 §4.2.2 / RFC 7766: each message is preceded by its two-byte length.
/// Queries on one connection are answered in order.
async fn stream_connection<S: AsyncRead + AsyncWrite + Unpin>(
    engine: Engine,
    mut stream: S,
    client: SocketAddr,
    limits: Limits,
    transport: Transport,
) {
    let mut buf = Vec::with_capacity(512);
    loop {
        let len = match tokio::time::timeout(limits.tcp_idle, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return, // idle too long, closed, or reset
        };
        buf.resize(len, 0);
        match tokio::time::timeout(limits.tcp_io, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let Some(reply) = engine.answer(&buf, client, transport).await else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            tracing::warn!("answer to {client} over 65535 bytes dropped");
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        let written = async {
            stream.write_all(&framed).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limits.tcp_io, written).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
