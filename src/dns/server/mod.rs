//! The DNS listeners: read queries from the UDP socket and TCP connections that
//! `serve` bound, answer each with the [`Engine`], and stop on the shutdown token.
//!
//! hickory's own `Server` parses a packet before we could look at it and spawns a
//! task per packet with no bound; owning these loops lets us drop QR=1 packets on
//! the raw header, cap TCP connections and time out slow clients (RFC 7766, RFC 9210).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
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
    /// UDP answering loops on the shared socket; each answers one packet at a time,
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
    limits: Limits,
    shutdown: CancellationToken,
) {
    let udp = Arc::new(udp);
    let mut tasks = JoinSet::new();
    for _ in 0..limits.udp_workers {
        tasks.spawn(udp_loop(engine.clone(), udp.clone(), shutdown.clone()));
    }
    tasks.spawn(tcp_accept_loop(engine, tcp, limits, shutdown));
    while tasks.join_next().await.is_some() {}
}

async fn udp_loop(engine: Engine, socket: Arc<UdpSocket>, shutdown: CancellationToken) {
    // 64 KiB: the largest datagram; anything bigger than a query is still read whole
    // so the next packet starts clean.
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, client) = tokio::select! {
            _ = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(e) => {
                    // ICMP port-unreachable from an earlier reply shows up here on
                    // some systems; it is about that client, not about us.
                    tracing::debug!("udp receive error: {e}");
                    continue;
                }
            },
        };
        if let Some(reply) = engine.answer(&buf[..len], client, Transport::Udp).await {
            if let Err(e) = socket.send_to(&reply, client).await {
                tracing::debug!("udp send to {client} failed: {e}");
            }
        }
    }
}

async fn tcp_accept_loop(
    engine: Engine,
    listener: TcpListener,
    limits: Limits,
    shutdown: CancellationToken,
) {
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
                tracing::warn!("dns tcp accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(
                "dns tcp connection from {client} closed: {} connections already open",
                limits.tcp_connections
            );
            drop(stream);
            continue;
        };
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tcp_connection(engine, stream, client, limits) => {}
            }
            drop(permit);
        });
    }
    connections.shutdown().await;
}

/// RFC 1035 §4.2.2 / RFC 7766: each message is preceded by its two-byte length.
/// Queries on one connection are answered in order.
async fn tcp_connection(engine: Engine, mut stream: TcpStream, client: SocketAddr, limits: Limits) {
    let _ = stream.set_nodelay(true);
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
        let Some(reply) = engine.answer(&buf, client, Transport::Tcp).await else {
            continue;
        };
        let Ok(reply_len) = u16::try_from(reply.len()) else {
            tracing::warn!("answer to {client} over 65535 bytes dropped");
            return;
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&reply_len.to_be_bytes());
        framed.extend_from_slice(&reply);
        match tokio::time::timeout(limits.tcp_io, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
