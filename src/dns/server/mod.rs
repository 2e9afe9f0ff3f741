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
mod slots;
mod udp;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use slots::{Slot, Slots};

use super::{Engine, Transport};

/// Limits in the spirit of NSD and Knot.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// TCP connections served at once, per listener (NSD 100, BIND 150). At the cap a
    /// new connection is admitted and the longest-idle one is closed (RFC 7766 §6.2.3).
    pub(crate) tcp_connections: usize,
    /// How long a TCP connection may sit idle between queries (Knot: 10 s).
    pub(crate) tcp_idle: Duration,
    /// How long one query may take to arrive once its first byte did, and how long
    /// one answer may take to leave.
    pub(crate) tcp_io: Duration,
    /// UDP worker threads, each with its own socket on the shared port; each
    /// answers one batch at a time, which also bounds the UDP work in flight.
    pub(crate) udp_workers: usize,
    /// Whether each UDP worker gets a socket of its own in an `SO_REUSEPORT`
    /// group; if not, the workers share the one socket `serve` bound.
    pub(crate) udp_reuseport: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tcp_connections: 128,
            tcp_idle: Duration::from_secs(10),
            tcp_io: Duration::from_secs(5),
            // One per core we may run on (this respects taskset): more threads than
            // cores only adds context switches.
            udp_workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            udp_reuseport: true,
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
    let runtime = tokio::runtime::Handle::current();
    for (i, socket) in udp::sockets(udp, limits.udp_workers, limits.udp_reuseport)
        .into_iter()
        .enumerate()
    {
        let (engine, runtime, shutdown, rrl) = (
            engine.clone(),
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
    let slots = Slots::new(limits.tcp_connections);
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
        let (slot, shed) = slots.admit();
        if shed {
            tracing::debug!(
                "dns {kind}: {} connections open, closed the longest-idle one to admit {client}",
                limits.tcp_connections
            );
        }
        let counted = crate::metrics::dns::connection(kind, shed);
        let engine = engine.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            // Counted open for as long as this task runs.
            let _counted = counted;
            let _ = stream.set_nodelay(true);
            let serve = async {
                match tls {
                    None => {
                        stream_connection(engine, stream, client, limits, Transport::Tcp, &slot)
                            .await
                    }
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
                                    &slot,
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
                _ = slot.shed().cancelled() => {}
                _ = serve => {}
            }
            drop(slot);
        });
    }
    connections.shutdown().await;
}

/// RFC 1035 §4.2.2 / RFC 7766: each message is preceded by its two-byte length.
///
/// Reads whatever has arrived, answers every complete query in it in order, and
/// sends all those answers with one write: a client that pipelines 50 queries
/// costs a few system calls, not 150. A query must arrive whole within `tcp_io`
/// of its first byte (slow senders are cut off); between queries the connection
/// may idle for `tcp_idle`.
async fn stream_connection<S: AsyncRead + AsyncWrite + Unpin>(
    engine: Engine,
    mut stream: S,
    client: SocketAddr,
    limits: Limits,
    transport: Transport,
    slot: &Slot,
) {
    let mut input: Vec<u8> = Vec::with_capacity(4096);
    let mut output: Vec<u8> = Vec::with_capacity(4096);
    // When the oldest unanswered byte arrived: the clock for a partial query.
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        let mut used = 0;
        while let Some(prefix) = input.get(used..used + 2) {
            let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
            let Some(message) = input.get(used + 2..used + 2 + len) else {
                break;
            };
            used += 2 + len;
            // A zone transfer comes as several messages, each framed on its own.
            let Some((first, rest)) = engine.answer_stream(message, client, transport).await else {
                continue;
            };
            for reply in std::iter::once(first).chain(rest) {
                let Ok(reply_len) = u16::try_from(reply.len()) else {
                    tracing::warn!("answer to {client} over 65535 bytes dropped");
                    return;
                };
                output.extend_from_slice(&reply_len.to_be_bytes());
                output.extend_from_slice(&reply);
            }
        }
        input.drain(..used);
        if used > 0 {
            slot.touch();
            // Progress: the clock restarts for whatever partial query follows.
            partial_since = None;
        }
        if !output.is_empty() {
            let written = async {
                stream.write_all(&output).await?;
                stream.flush().await
            };
            match tokio::time::timeout(limits.tcp_io, written).await {
                Ok(Ok(())) => {
                    output.clear();
                    // A long answer (a zone transfer) counts as activity until it left.
                    slot.touch();
                }
                _ => return,
            }
        }
        let deadline = if input.is_empty() {
            partial_since = None;
            tokio::time::Instant::now() + limits.tcp_idle
        } else {
            *partial_since.get_or_insert_with(tokio::time::Instant::now) + limits.tcp_io
        };
        input.reserve(4096);
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut input)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return, // closed, reset, idle too long, or a query too slow to arrive
        }
    }
}
