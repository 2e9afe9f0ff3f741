//! Who holds the web server's connections, and which to let go under pressure.
//!
//! Every accepted connection (HTTP and HTTPS together) is registered here with its
//! client address, when it last did something, and how many requests it has in
//! flight. That gives three limits, none of which makes a new client wait forever:
//!
//! - at most [`MAX_CONNECTIONS`] in all: at the cap, the connection idle the
//!   longest is closed to admit the new one (nginx sheds keep-alive connections the
//!   same way when `worker_connections` run out);
//! - at most `per_addr` from one client address (loopback included): beyond it the
//!   same rule runs among that address's own connections, so one client cannot
//!   push everyone else out;
//! - a connection with no request in flight for [`IDLE_TIMEOUT`] is closed, which
//!   matters for HTTP/2: an HTTP/2 connection that answers pings would stay forever;
//! - an HTTP/1 connection (any connection that has not yet made an HTTP/2
//!   request) with no request in flight for the shorter header timeout is closed
//!   too: that is the header read timeout, for a request that never finishes its
//!   headers as for an idle keep-alive connection. It is enforced here, by the
//!   sweep, rather than by hyper, whose per-request timer (a boxed sleep made,
//!   registered with the timer wheel and torn down for every request) cost more
//!   than the sweep's one look per connection every few seconds.
//!
//! A connection with a request in flight is never shed; when every connection is
//! busy the new one is closed at once, the honest answer for a server at its limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Open connections at most, for HTTP and HTTPS together.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// The default per-address limit (`serve --http-conns-per-addr`): room for a
/// benchmark's load generator on one address.
pub(crate) const DEFAULT_PER_ADDR: usize = 512;
/// A connection with no request in flight for this long is closed (nginx's
/// `keepalive_timeout` default is 75 s).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// [`IDLE_TIMEOUT`], or `ONEBOX_HTTP_IDLE_SECS` (read by `serve`) so a test can
/// watch an idle connection close without waiting 75 s.
pub(crate) fn idle_timeout_from_env() -> anyhow::Result<Duration> {
    crate::request::seconds_from_env("ONEBOX_HTTP_IDLE_SECS", IDLE_TIMEOUT)
}

/// Milliseconds on the coarse monotonic clock (the kernel's last tick, a few
/// milliseconds old): idle limits are seconds long, and reading this costs a
/// memory load where the precise clock reads the time-stamp counter, which is
/// slow under some hypervisors. It runs for every request.
pub(crate) fn coarse_ms() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut now) };
    (now.tv_sec as u64) * 1000 + (now.tv_nsec as u64) / 1_000_000
}

/// The registry: cheap to share, locked only to admit, shed or forget.
#[derive(Debug)]
pub(crate) struct Conns {
    max_total: usize,
    per_addr: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    by_addr: HashMap<IpAddr, usize>,
}

/// One connection's activity, shared by its task and the registry.
#[derive(Debug)]
pub(crate) struct Conn {
    id: u64,
    ip: IpAddr,
    /// When a request last ended (or the connection opened), in [`coarse_ms`].
    last_active: AtomicU64,
    in_flight: AtomicUsize,
    /// The connection speaks HTTP/2 (it made an HTTP/2 request): only the long
    /// idle timeout applies, not the header timeout.
    multiplexed: AtomicBool,
    /// Cancelled when this connection is shed, or when the server stops.
    pub(crate) close: CancellationToken,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("every connection from this address is busy (limit {0} per address)")]
    AddressBusy(usize),
    #[error("every connection is busy (limit {0})")]
    ServerBusy(usize),
}

impl Conns {
    pub(crate) fn new(max_total: usize, per_addr: usize) -> Self {
        Self {
            max_total: max_total.max(1),
            per_addr: per_addr.max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn now_ms(&self) -> u64 {
        coarse_ms()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection from `ip`, shedding the longest-idle one where
    /// a limit is reached. The returned slot unregisters the connection when dropped.
    pub(crate) fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        shutdown: &CancellationToken,
    ) -> Result<Slot, Refused> {
        let ip = ip.to_canonical();
        let now = self.now_ms();
        let mut state = self.lock();
        if state.by_addr.get(&ip).copied().unwrap_or(0) >= self.per_addr
            && !state.shed_longest_idle(Some(ip))
        {
            return Err(Refused::AddressBusy(self.per_addr));
        }
        if state.open.len() >= self.max_total && !state.shed_longest_idle(None) {
            return Err(Refused::ServerBusy(self.max_total));
        }
        state.next_id += 1;
        let conn = Arc::new(Conn {
            id: state.next_id,
            ip,
            last_active: AtomicU64::new(now),
            in_flight: AtomicUsize::new(0),
            multiplexed: AtomicBool::new(false),
            close: shutdown.child_token(),
        });
        state.open.insert(conn.id, conn.clone());
        *state.by_addr.entry(ip).or_default() += 1;
        Ok(Slot {
            conns: self.clone(),
            conn,
        })
    }

    /// Closes every connection idle for longer than `limit`, and every HTTP/1
    /// connection idle for longer than `head` (the header timeout); returns how
    /// many.
    pub(crate) fn close_idle(&self, limit: Duration, head: Duration) -> usize {
        let now = self.now_ms();
        let cutoff = now.saturating_sub(limit.as_millis() as u64);
        let head_cutoff = now.saturating_sub(limit.min(head).as_millis() as u64);
        let mut state = self.lock();
        let stale: Vec<u64> = state
            .open
            .values()
            .filter(|c| {
                let cutoff = if c.multiplexed.load(Ordering::Relaxed) {
                    cutoff
                } else {
                    head_cutoff
                };
                c.is_idle() && c.last_active.load(Ordering::Relaxed) < cutoff
            })
            .map(|c| c.id)
            .collect();
        for id in &stale {
            state.forget(*id, true);
        }
        stale.len()
    }

    /// How many connections are open now, and how many were ever admitted: a
    /// changed second figure with none open means connections came and went.
    pub(crate) fn open_and_admitted(&self) -> (usize, u64) {
        let state = self.lock();
        (state.open.len(), state.next_id)
    }
}

impl State {
    /// Sheds the idle connection (of `ip`, or of anyone) with the oldest activity.
    fn shed_longest_idle(&mut self, ip: Option<IpAddr>) -> bool {
        let victim = self
            .open
            .values()
            .filter(|c| c.is_idle() && ip.is_none_or(|ip| c.ip == ip))
            .min_by_key(|c| c.last_active.load(Ordering::Relaxed))
            .map(|c| c.id);
        match victim {
            Some(id) => {
                crate::metrics::web::connection_shed();
                self.forget(id, true);
                tracing::debug!("http: shed the longest-idle connection to admit a new one");
                true
            }
            None => false,
        }
    }

    /// Removes a connection from the books; with `close`, tells its task to end.
    fn forget(&mut self, id: u64, close: bool) {
        let Some(conn) = self.open.remove(&id) else {
            return;
        };
        if let Some(count) = self.by_addr.get_mut(&conn.ip) {
            *count -= 1;
            if *count == 0 {
                self.by_addr.remove(&conn.ip);
            }
        }
        if close {
            conn.close.cancel();
        }
    }
}

impl Conn {
    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// A registered connection; dropping it (when the connection's task ends)
/// frees its place.
#[derive(Debug)]
pub(crate) struct Slot {
    conns: Arc<Conns>,
    conn: Arc<Conn>,
}

impl Slot {
    pub(crate) fn close_token(&self) -> CancellationToken {
        self.conn.close.clone()
    }

    /// Resolves when this connection is told to close.
    pub(crate) fn closing(&self) -> Closing {
        Closing::new(self.conn.close.clone())
    }

    /// Something that marks one request in flight for as long as it lives.
    pub(crate) fn activity(&self) -> Activity {
        Activity {
            conn: self.conn.clone(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns.lock().forget(self.conn.id, false);
    }
}

/// Resolves when a connection is told to close (its token is cancelled), like
/// [`CancellationToken::cancelled`], but cheap to poll in a `select!` beside the
/// connection itself. The connection's task wakes for every request, and
/// `select!` then polls every branch: the token's own future takes two locks
/// each time (its tree node and its `Notify`). This one looks at the token only
/// after the token woke it; any other wake costs an atomic swap.
pub(crate) struct Closing {
    cancelled: std::pin::Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    woken: Arc<Woken>,
}

/// Set by the token's wake-up; passes it on to whoever polls [`Closing`].
#[derive(Default)]
struct Woken {
    flag: std::sync::atomic::AtomicBool,
    waker: futures_util::task::AtomicWaker,
}

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.waker.wake();
    }
}

impl Closing {
    pub(crate) fn new(token: CancellationToken) -> Self {
        let woken = Arc::new(Woken::default());
        // Look at the token on the first poll, which registers our waker with it.
        woken.flag.store(true, Ordering::Relaxed);
        Self {
            cancelled: Box::pin(token.cancelled_owned()),
            woken,
        }
    }
}

impl std::future::Future for Closing {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.woken.waker.register(cx.waker());
        if !self.woken.flag.swap(false, Ordering::AcqRel) {
            return std::task::Poll::Pending;
        }
        let waker = std::task::Waker::from(self.woken.clone());
        self.cancelled
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
    }
}

/// Hands out [`Active`] guards for one connection's requests.
#[derive(Debug, Clone)]
pub(crate) struct Activity {
    conn: Arc<Conn>,
}

impl Activity {
    /// A request began: the connection is busy until the guard drops (when the
    /// response body is sent, or abandoned).
    ///
    /// Only the end of a request is timed: a connection with a request in
    /// flight is never idle, so its last activity matters only once the
    /// request is over (one clock read per request, not two).
    pub(crate) fn begin(&self) -> Active {
        self.conn.in_flight.fetch_add(1, Ordering::Relaxed);
        Active(self.conn.clone())
    }

    /// The connection speaks HTTP/2: from now on only the long idle timeout
    /// closes it (its streams have their own limits; pings keep it alive).
    pub(crate) fn multiplexed(&self) {
        self.conn.multiplexed.store(true, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct Active(Arc<Conn>);

impl Drop for Active {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.last_active.store(coarse_ms(), Ordering::Relaxed);
        conn.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// A connection table with its limits and the shutdown token every test admits
    /// connections under.
    struct Table {
        conns: Arc<Conns>,
        stop: CancellationToken,
    }

    impl Table {
        fn new(max: usize, per_addr: usize) -> Self {
            Self {
                conns: Arc::new(Conns::new(max, per_addr)),
                stop: CancellationToken::new(),
            }
        }

        /// Admits a connection from 127.0.0.`last`.
        fn admit(&self, last: u8) -> Result<Slot, Refused> {
            self.conns.admit(ip(last), &self.stop)
        }

        /// Admits one connection from each 127.0.0.`last`, in order, all within the limits.
        fn admit_all<const N: usize>(&self, lasts: [u8; N]) -> [Slot; N] {
            lasts.map(|last| self.admit(last).unwrap())
        }
    }

    #[test]
    fn the_longest_idle_is_shed_and_busy_ones_are_kept() {
        let table = Table::new(3, 10);
        let [a, b, c] = table.admit_all([1, 1, 2]);
        let _busy = a.activity().begin();
        // b is idle and older than c: b goes (a few clock ticks apart).
        std::thread::sleep(Duration::from_millis(30));
        drop(c.activity().begin());
        let d = table.admit(3).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(b.close_token().is_cancelled());
        assert!(!a.close_token().is_cancelled());
        assert!(!c.close_token().is_cancelled());
        assert_eq!(table.conns.open_and_admitted().0, 3);
        // Now a is busy and c, d idle; c is the older.
        drop(d.activity().begin());
        let _e = table.admit(4).unwrap();
        assert!(c.close_token().is_cancelled());
        drop(d);
        assert_eq!(table.conns.open_and_admitted().0, 2);
    }

    #[test]
    fn the_per_address_limit_sheds_only_that_address() {
        let table = Table::new(100, 2);
        let [other, a, b] = table.admit_all([9, 1, 1]);
        let _b_busy = b.activity().begin();
        let c = table.admit(1).unwrap();
        assert!(a.close_token().is_cancelled());
        assert!(!other.close_token().is_cancelled());
        // Both of 127.0.0.1's connections busy now: refused, not queued.
        let _c_busy = c.activity().begin();
        assert_eq!(table.admit(1).unwrap_err(), Refused::AddressBusy(2));
    }

    #[test]
    fn idle_connections_time_out() {
        let table = Table::new(10, 10);
        let [idle, busy] = table.admit_all([1, 1]);
        let _guard = busy.activity().begin();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(table.conns.close_idle(Duration::from_millis(10), HOUR), 1);
        assert!(idle.close_token().is_cancelled());
        assert!(!busy.close_token().is_cancelled());
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn closing_waits_for_the_token_and_wakes_when_it_is_cancelled() {
        let token = CancellationToken::new();
        let mut closing = Closing::new(token.clone());
        // Polled (and woken by nothing) many times: still waiting.
        for _ in 0..3 {
            assert!(
                tokio::time::timeout(Duration::from_millis(20), &mut closing)
                    .await
                    .is_err()
            );
        }
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            token.cancel();
        });
        tokio::time::timeout(Duration::from_secs(10), closing)
            .await
            .expect("closing resolves once the token is cancelled");
        canceller.await.unwrap();
    }

    #[test]
    fn the_header_timeout_closes_idle_http1_but_not_http2() {
        let table = Table::new(10, 10);
        let [http1, http2] = table.admit_all([1, 1]);
        http2.activity().multiplexed();
        std::thread::sleep(Duration::from_millis(50));
        // Past the header timeout, within the idle timeout.
        assert_eq!(table.conns.close_idle(HOUR, Duration::from_millis(10)), 1);
        assert!(http1.close_token().is_cancelled());
        assert!(!http2.close_token().is_cancelled());
    }
}
