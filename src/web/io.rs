//! A send timeout for connections: the answer to "slow read" attacks; and a
//! lingering close, so an early error reaches a client that is still sending.
//!
//! A client that stops reading leaves our writes pending forever, and hyper has no
//! write timeout. nginx closes such a connection after `send_timeout` (60 s) without
//! progress; this wrapper does the same: a write that makes no progress for the
//! given time fails with `TimedOut`, and hyper drops the connection.
//!
//! It also gives back what was read ahead: when the web server's own HTTP/1.1
//! loop ([`super::h1`]) hands a connection to hyper, the bytes it had read but
//! not answered are read again first ([`SendTimeout::read_first`]).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::os::fd::RawFd;

use axum::body::Bytes;
use bytes::Buf as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending; reset whenever bytes go out.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The socket under `inner` (which may be TLS), for the close below.
    fd: RawFd,
    /// When bytes last went out, in [`super::conns::coarse_ms`]: a cheap clock
    /// for every write, precise enough for [`STALE_OUTPUT`].
    last_write_ms: u64,
    /// The client closed its sending side (a read returned end of file): nothing
    /// more can arrive, so closing needs no lingering.
    peer_closed: bool,
    /// Bytes already read from the socket, to be read again before it.
    read_first: Bytes,
}

/// Unsent bytes this old at close mean the client stopped reading.
const STALE_OUTPUT: Duration = Duration::from_secs(5);

impl<S> SendTimeout<S> {
    pub(crate) fn new(inner: S, timeout: Duration, fd: RawFd) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            fd,
            last_write_ms: super::conns::coarse_ms(),
            peer_closed: false,
            read_first: Bytes::new(),
        }
    }

    /// Makes the next reads return `bytes` before anything more from the socket.
    pub(crate) fn read_first(&mut self, bytes: Bytes) {
        self.read_first = bytes;
    }

    /// After a write was polled: progress disarms the deadline and restarts the
    /// staleness clock; no progress runs the deadline.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match poll {
            Poll::Pending => self.pending(cx).map(Err),
            ready => {
                self.deadline = None;
                self.last_write_ms = super::conns::coarse_ms();
                ready
            }
        }
    }

    /// Turns a pending write into an error once no progress was made for `timeout`.
    fn pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(Instant::now() + timeout)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for too long",
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_first.is_empty() {
            let n = self.read_first.len().min(buf.remaining());
            buf.put_slice(&self.read_first[..n]);
            self.read_first.advance(n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.peer_closed = true;
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.pending(cx).map(Err),
            ready => {
                self.deadline = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Drop for SendTimeout<S> {
    /// A slow reader can hold a connection open after we close it: the kernel keeps
    /// trying to deliver what we wrote, long after the server let go. When bytes
    /// written seconds ago are still unsent at close, the client has stopped
    /// reading: reset the connection instead (nginx's `reset_timedout_connection`).
    /// A normal close, with output just written and in flight, is left alone.
    fn drop(&mut self) {
        let since_write = super::conns::coarse_ms().saturating_sub(self.last_write_ms);
        if u128::from(since_write) < STALE_OUTPUT.as_millis() {
            if !self.peer_closed {
                linger(self.fd);
            }
            return;
        }
        let mut unsent: libc::c_int = 0;
        // SAFETY: `fd` is the socket `inner` owns, still open until `inner` drops
        // after this; TIOCOUTQ writes one c_int.
        let queried = unsafe { libc::ioctl(self.fd, libc::TIOCOUTQ, &mut unsent) };
        if queried == 0 && unsent > 0 {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: as above; SO_LINGER takes a `linger` of the given size.
            unsafe {
                libc::setsockopt(
                    self.fd,
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
    }
}

/// How long a lingering close keeps reading (nginx: `lingering_time` 30 s, with
/// `lingering_timeout` 5 s between reads), and how much it reads at most.
const LINGER_TIME: Duration = Duration::from_secs(10);
const LINGER_READ_WAIT: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 64 * 1024 * 1024;
/// Lingering sockets at most; beyond this a connection is simply closed.
const MAX_LINGERING: usize = 256;
static LINGERING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// nginx's lingering close. Closing a socket whose receive queue holds unread
/// bytes, or receives more after the close, makes the kernel send a reset, and a
/// reset can destroy our response before the client reads it: a client that sends
/// a 20 MB body before reading would see "connection reset" instead of our 413.
/// So unless the client has already closed its side, we shut down our sending
/// side (the response goes out, followed by FIN) and keep reading and discarding
/// on a duplicate of the socket until the client closes, goes quiet, or the
/// bounds run out. (Whether input is queued right now is no test: hyper may just
/// have emptied the queue while the client is still sending.)
fn linger(fd: RawFd) {
    if fd < 0 {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if LINGERING.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= MAX_LINGERING {
        LINGERING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    // SAFETY: as above. `dup` gives a second descriptor for the same socket, so
    // the socket stays open when `inner` closes its own descriptor.
    let dup = unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
        libc::dup(fd)
    };
    if dup < 0 {
        LINGERING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    let socket = unsafe { <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(dup) };
    runtime.spawn(async move {
        let _ = drain(socket).await;
        LINGERING.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    });
}

/// Reads and discards until the client closes, goes quiet, or the bounds run out.
async fn drain(socket: std::net::TcpStream) -> io::Result<()> {
    use tokio::io::AsyncReadExt;
    socket.set_nonblocking(true)?;
    let mut socket = tokio::net::TcpStream::from_std(socket)?;
    let deadline = Instant::now() + LINGER_TIME;
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    while read < LINGER_BYTES {
        let wait = LINGER_READ_WAIT.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => read += n as u64,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn bytes_read_ahead_are_read_again_first() {
        use tokio::io::AsyncReadExt;
        let (ours, mut theirs) = tokio::io::duplex(64);
        let mut conn = SendTimeout::new(ours, Duration::from_secs(30), -1);
        conn.read_first(Bytes::from_static(b"GET / "));
        theirs.write_all(b"HTTP/1.1\r\n").await.unwrap();
        drop(theirs);
        let mut all = Vec::new();
        conn.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET / HTTP/1.1\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_times_the_write_out() {
        // A duplex pipe with a tiny buffer stands in for a client that reads nothing.
        let (ours, _theirs) = tokio::io::duplex(16);
        let mut conn = SendTimeout::new(ours, Duration::from_secs(30), -1);
        let err = conn.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reading_peer_is_never_cut_off() {
        let (ours, mut theirs) = tokio::io::duplex(16);
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut theirs, &mut sink)
                .await
                .unwrap();
            sink.len()
        });
        let mut conn = SendTimeout::new(ours, Duration::from_secs(30), -1);
        conn.write_all(&[7u8; 4096]).await.unwrap();
        conn.shutdown().await.unwrap();
        drop(conn);
        assert_eq!(reader.await.unwrap(), 4096);
    }
}
