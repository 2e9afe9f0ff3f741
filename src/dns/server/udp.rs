//! DNS over UDP: worker threads that read and answer queries in batches.
//!
//! One system call per packet is what caps a DNS server's speed; NSD and Knot use
//! `recvmmsg`/`sendmmsg` to move up to a batch of datagrams per call. Each worker
//! here blocks in `recvmmsg` (returning as soon as one packet is there), answers
//! the batch from the engine's cache when it can — no async runtime involved —
//! sends the answers with one `sendmmsg`, and only hands the rare uncached query to
//! the runtime. A receive timeout lets the worker notice shutdown.
//!
//! Each worker has a socket of its own, all bound to the same port with
//! `SO_REUSEPORT`, as NSD does: the kernel spreads incoming datagrams over them
//! by a hash of the sender's address and port. Workers that shared one socket
//! would contend on its one receive queue and its lock in the kernel, and each
//! `recvmmsg` would pull datagrams out from under another worker's call; with a
//! socket each, a worker's queue, buffers and cache stay on its own core.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::rrl::{self, Rrl, Verdict};
use crate::dns::{Engine, Transport};

/// Datagrams moved per system call.
const BATCH: usize = 32;
/// Room for one query. Longer datagrams are dropped: no real query is this big.
const SLOT: usize = 4096;
/// How often an idle worker looks at the shutdown token.
const WAKE: Duration = Duration::from_millis(200);

/// The sockets the `workers` workers read: the one `serve` bound, plus one more
/// per further worker on the same address. The first socket was bound without
/// `SO_REUSEPORT`, so the kernel gave it a port nobody else held (and no other
/// program's socket group could be joined by mistake); setting the option
/// afterwards lets our own further sockets join it. Should that fail, or when
/// `reuseport` is off, the remaining workers share the first socket, as they all
/// did before.
pub(super) fn sockets(
    first: tokio::net::UdpSocket,
    workers: usize,
    reuseport: bool,
) -> Vec<Arc<UdpSocket>> {
    let first = match first
        .into_std()
        .and_then(|s| s.set_nonblocking(false).map(|()| s))
    {
        Ok(socket) => Arc::new(socket),
        Err(e) => {
            tracing::error!("dns udp socket unusable: {e}");
            return Vec::new();
        }
    };
    let mut sockets = vec![first.clone()];
    let mut own = workers > 1 && reuseport;
    if own && let Err(e) = socket2::SockRef::from(&*first).set_reuse_port(true) {
        tracing::warn!("dns udp: no SO_REUSEPORT ({e}); the workers share one socket");
        own = false;
    }
    while sockets.len() < workers {
        let socket = if own {
            match sibling(&first) {
                Ok(socket) => Arc::new(socket),
                Err(e) => {
                    tracing::warn!(
                        "dns udp: one socket per worker failed ({e}); the rest share one"
                    );
                    own = false;
                    first.clone()
                }
            }
        } else {
            first.clone()
        };
        sockets.push(socket);
    }
    sockets
}

/// Another socket on `first`'s address and port, in its `SO_REUSEPORT` group,
/// with the same receive buffer.
fn sibling(first: &UdpSocket) -> std::io::Result<UdpSocket> {
    let addr = first.local_addr()?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // As the first socket was bound: the system's default, read back.
        socket.set_only_v6(socket2::SockRef::from(first).only_v6()?)?;
    }
    // Linux reports twice the size asked for (its bookkeeping share included) and
    // doubles what it is given: half of what it reports gives the same buffer.
    let buffer = socket2::SockRef::from(first).recv_buffer_size()?;
    let _ = socket.set_recv_buffer_size(buffer / 2);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

pub(super) fn worker(
    engine: &Engine,
    socket: &UdpSocket,
    runtime: &Handle,
    rrl: &Rrl,
    shutdown: &CancellationToken,
) {
    if let Err(e) = socket.set_read_timeout(Some(WAKE)) {
        tracing::error!("dns udp worker cannot set a receive timeout: {e}");
        return;
    }
    let mut batch = Batch::new();
    let mut local = crate::dns::cache::Local::default();
    // The answers of one batch, and the buffers of the last batch's answers,
    // reused for the next: a replayed answer then allocates nothing.
    let mut replies: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(BATCH);
    let mut spare: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
    let mut outbox = Outbox::default();
    while !shutdown.is_cancelled() {
        let received = match batch.receive(socket) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                // ICMP errors from earlier replies surface here on some systems;
                // they concern one client, never the server.
                tracing::debug!("dns udp receive error: {e}");
                continue;
            }
        };
        let started = Instant::now();
        // A buffer grown by a large answer is not kept: the pool stays small.
        spare.extend(
            replies
                .drain(..)
                .map(|(buffer, _)| buffer)
                .filter(|buffer| buffer.capacity() <= SLOT),
        );
        spare.truncate(BATCH);
        for i in 0..received {
            let Some((packet, client)) = batch.packet(i) else {
                continue;
            };
            let mut buffer = spare.pop().unwrap_or_default();
            let udp = Transport::Udp;
            let reply = if engine.answer_cached(
                Some(&mut local),
                packet,
                client,
                udp,
                started,
                &mut buffer,
            ) {
                Some(buffer)
            } else {
                spare.push(buffer);
                runtime.block_on(engine.answer(packet, client, udp))
            };
            let Some(reply) = reply else { continue };
            match rrl.check(client.ip()) {
                Verdict::Send => replies.push((reply, client)),
                Verdict::Slip => {
                    crate::metrics::dns::rrl(true);
                    if let Some(cut) = rrl::truncated(&reply) {
                        replies.push((cut, client));
                    }
                }
                Verdict::Drop => crate::metrics::dns::rrl(false),
            }
        }
        if let Err(e) = send_all(socket, &replies, &mut outbox) {
            tracing::debug!("dns udp send error: {e}");
        }
    }
}

/// Receive buffers and the kernel's bookkeeping for one `recvmmsg` call.
struct Batch {
    buffers: Vec<[u8; SLOT]>,
    addrs: Vec<libc::sockaddr_storage>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl Batch {
    fn new() -> Self {
        Self {
            buffers: vec![[0u8; SLOT]; BATCH],
            // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovecs: Vec::with_capacity(BATCH),
            headers: Vec::with_capacity(BATCH),
        }
    }

    /// Blocks until at least one datagram arrives, then takes what is queued (up
    /// to [`BATCH`]) without waiting for more.
    fn receive(&mut self, socket: &UdpSocket) -> std::io::Result<usize> {
        self.iovecs.clear();
        self.headers.clear();
        for buffer in &mut self.buffers {
            self.iovecs.push(libc::iovec {
                iov_base: buffer.as_mut_ptr().cast(),
                iov_len: SLOT,
            });
        }
        for (i, addr) in self.addrs.iter_mut().enumerate() {
            // SAFETY: mmsghdr is plain old data; every pointer field is set below.
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_name = (addr as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen =
                std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            header.msg_hdr.msg_iov = &mut self.iovecs[i];
            header.msg_hdr.msg_iovlen = 1;
            self.headers.push(header);
        }
        // SAFETY: `headers` holds BATCH valid mmsghdr whose buffers and address
        // slots live in `self` for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                self.headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// The i-th datagram of the last `receive` and its sender, unless it was cut
    /// short (longer than a slot) or came from an unknown address family.
    fn packet(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        let header = &self.headers[i];
        if header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return None;
        }
        let len = (header.msg_len as usize).min(SLOT);
        Some((&self.buffers[i][..len], from_storage(&self.addrs[i])?))
    }
}

/// The kernel's bookkeeping for one `sendmmsg` batch, kept between batches so
/// that sending allocates nothing once the vectors have grown.
#[derive(Default)]
struct Outbox {
    addrs: Vec<socket2::SockAddr>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

/// Sends every reply with as few `sendmmsg` calls as the kernel allows.
fn send_all(
    socket: &UdpSocket,
    replies: &[(Vec<u8>, SocketAddr)],
    outbox: &mut Outbox,
) -> std::io::Result<()> {
    if replies.is_empty() {
        return Ok(());
    }
    let Outbox {
        addrs,
        iovecs,
        headers,
    } = outbox;
    // socket2 lays the address out as the kernel wants it (sockaddr_in or _in6).
    addrs.clear();
    addrs.extend(replies.iter().map(|(_, to)| socket2::SockAddr::from(*to)));
    iovecs.clear();
    iovecs.extend(replies.iter().map(|(bytes, _)| libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    }));
    headers.clear();
    for (iovec, addr) in iovecs.iter_mut().zip(addrs.iter()) {
        // SAFETY: plain old data; the pointer fields are set right here.
        let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
        // sendmmsg only reads the address: the pointer is `*mut` by the C type alone.
        header.msg_hdr.msg_name = addr.as_ptr().cast_mut().cast();
        header.msg_hdr.msg_namelen = addr.len();
        header.msg_hdr.msg_iov = iovec;
        header.msg_hdr.msg_iovlen = 1;
        headers.push(header);
    }
    let mut sent = 0;
    while sent < headers.len() {
        // SAFETY: the headers point into `iovecs`, `addrs` and `replies`, all alive
        // and unmoved until this function returns.
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers[sent..].as_mut_ptr(),
                (headers.len() - sent) as libc::c_uint,
                0,
            )
        };
        if n < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // Skip the datagram that failed (a vanished client) and go on.
            sent += 1;
            if sent >= headers.len() {
                return Err(err);
            }
            continue;
        }
        sent += n as usize;
    }
    Ok(())
}

fn from_storage(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let v4 =
                unsafe { &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr)),
                u16::from_be(v4.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let v6 = unsafe {
                &*(storage as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(v6.sin6_addr.s6_addr),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_round_trip() {
        for addr in ["127.0.0.1:53", "[::1]:1053", "[fe80::1%2]:5353"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let sent = socket2::SockAddr::from(addr);
            // SAFETY: SockAddrStorage is a transparent sockaddr_storage.
            let storage = unsafe { &*sent.as_ptr().cast::<libc::sockaddr_storage>() };
            assert_eq!(from_storage(storage), Some(addr));
        }
    }
}
