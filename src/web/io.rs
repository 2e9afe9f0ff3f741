//! A send timeout for connections: the answer to "slow read" attacks.
//!
//! A client that stops reading leaves our writes pending forever, and hyper has no
//! write timeout. nginx closes such a connection after `send_timeout` (60 s) without
//! progress; this wrapper does the same: a write that makes no progress for the
//! given time fails with `TimedOut`, and hyper drops the connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::os::fd::RawFd;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct SendTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Armed while a write is pending; reset whenever bytes go out.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The socket under `inner` (which may be TLS), for the close below.
    fd: RawFd,
    last_write: std::time::Instant,
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
            last_write: std::time::Instant::now(),
        }
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
                self.last_write = std::time::Instant::now();
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
        Pin::new(&mut self.inner).poll_read(cx, buf)
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
        if self.last_write.elapsed() < STALE_OUTPUT {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

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
