//! Per-core connection threads: each accepted connection is served for its whole
//! life by one thread running a single-threaded tokio runtime of its own, as
//! nginx serves each connection from one worker process.
//!
//! Why: on tokio's shared, work-stealing runtime a connection's task goes to
//! whichever worker thread woke it or stole it, so one keep-alive connection's
//! requests are read on one core and answered on another, its buffers and state
//! moving between caches, and the workers wake each other to share the queue.
//! In one measurement on two cores shared with the load (`wrk -c256`), onebox's
//! static file lost 30 % of its requests per CPU-second going from one core to
//! two, where nginx lost 6 %. A connection that never leaves its thread pays none
//! of that (the README's "HTTP connections on many cores" has the figures).
//!
//! The accept loops stay on the main runtime: accepting is once per connection,
//! not per request. A new connection goes to the thread holding the fewest open
//! connections, so a burst of connects is spread evenly. There is one thread per
//! core the process may run on (`sched_getaffinity`, so `taskset` is honoured).
//!
//! What a connection's task spawns (hyper's HTTP/2 streams, a live view's feed)
//! runs on the same thread; `spawn_blocking` work goes to that runtime's own
//! blocking pool. The threads stop once the web server has drained, dropping
//! whatever is still open.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// How long a stopping thread waits for its blocking jobs.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// One connection thread: its runtime's handle, how many connections it holds,
/// and how to stop it.
struct Shard {
    handle: Handle,
    open: Arc<AtomicUsize>,
    /// Sending, or dropping, tells the thread to stop.
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The connection threads of one web server.
pub(super) struct Shards {
    shards: Vec<Shard>,
}

impl Shards {
    /// Starts one connection thread per core this process may run on.
    pub(super) fn start() -> anyhow::Result<Self> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with(count)
    }

    /// Starts `count` connection threads (at least one).
    pub(super) fn with(count: usize) -> anyhow::Result<Self> {
        let count = count.max(1);
        let mut shards = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start a connection thread's runtime")?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("onebox-http-{i}"))
                .spawn(move || {
                    // A current-thread runtime runs its tasks only inside
                    // `block_on`: this keeps them running until told to stop.
                    let _ = runtime.block_on(stopped);
                    // Whatever is still open is dropped; a blocking job (a
                    // password hash) is not waited for long.
                    runtime.shutdown_timeout(SHUTDOWN_WAIT);
                })
                .context("failed to start a connection thread")?;
            shards.push(Shard {
                handle,
                open: Arc::default(),
                stop,
                thread,
            });
        }
        Ok(Self { shards })
    }

    /// Runs `connection` on the thread with the fewest open connections, tracked
    /// by `tracker`. Its first poll happens there: a socket it registers with
    /// the runtime (`TcpStream::from_std`) is that thread's for good.
    pub(super) fn spawn<F>(&self, tracker: &TaskTracker, connection: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(shard) = self
            .shards
            .iter()
            .min_by_key(|s| s.open.load(Ordering::Relaxed))
        else {
            return;
        };
        let open = shard.open.clone();
        open.fetch_add(1, Ordering::Relaxed);
        let held = Held(open);
        tracker.spawn_on(
            async move {
                let _held = held;
                connection.await;
            },
            &shard.handle,
        );
    }

    /// Tells every thread to stop, dropping what it still runs, and waits for
    /// them (off the async threads).
    pub(super) async fn stop(self) {
        let threads: Vec<_> = self
            .shards
            .into_iter()
            .map(|shard| {
                let _ = shard.stop.send(());
                shard.thread
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }

    /// How many connection threads there are.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.shards.len()
    }

    /// Open connections per thread.
    #[cfg(test)]
    pub(super) fn open(&self) -> Vec<usize> {
        self.shards
            .iter()
            .map(|s| s.open.load(Ordering::Relaxed))
            .collect()
    }
}

/// Counts a connection open on its thread until the connection's task ends.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_busy_thread_and_stay_there() {
        let shards = Shards::with(3).unwrap();
        assert_eq!(shards.len(), 3);
        let tracker = TaskTracker::new();
        let release = tokio_util::sync::CancellationToken::new();
        let threads = Arc::new(Mutex::new(Vec::new()));
        for _ in 0..6 {
            let (release, threads) = (release.clone(), threads.clone());
            shards.spawn(&tracker, async move {
                let before = std::thread::current().id();
                release.cancelled().await;
                let after = std::thread::current();
                // Polled again after waiting: still on the same thread.
                assert_eq!(before, after.id());
                threads
                    .lock()
                    .unwrap()
                    .push(after.name().unwrap_or_default().to_string());
            });
        }
        assert_eq!(shards.open(), [2, 2, 2]);
        release.cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!(shards.open(), [0, 0, 0]);
        let mut names = threads.lock().unwrap().clone();
        names.sort();
        assert_eq!(
            names,
            [
                "onebox-http-0",
                "onebox-http-0",
                "onebox-http-1",
                "onebox-http-1",
                "onebox-http-2",
                "onebox-http-2"
            ]
        );
        shards.stop().await;
    }

    #[tokio::test]
    async fn a_connection_freed_makes_its_thread_the_next_choice() {
        let shards = Shards::with(2).unwrap();
        let tracker = TaskTracker::new();
        let hold = tokio_util::sync::CancellationToken::new();
        let (first_done, done) = oneshot::channel::<()>();
        shards.spawn(&tracker, async move {
            let _ = first_done.send(());
        });
        let held = hold.clone();
        shards.spawn(&tracker, async move { held.cancelled().await });
        done.await.unwrap();
        // The first thread's connection ended; the second still holds one.
        while shards.open() != [0, 1] {
            tokio::task::yield_now().await;
        }
        let held = hold.clone();
        shards.spawn(&tracker, async move { held.cancelled().await });
        assert_eq!(shards.open(), [1, 1]);
        hold.cancel();
        tracker.close();
        tracker.wait().await;
        shards.stop().await;
    }

    #[tokio::test]
    async fn stopping_drops_what_is_still_open_and_ends_the_threads() {
        struct Dropped(Arc<AtomicBool>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let shards = Shards::with(2).unwrap();
        let tracker = TaskTracker::new();
        let dropped = Arc::new(AtomicBool::new(false));
        let (started, running) = oneshot::channel::<()>();
        let guard = Dropped(dropped.clone());
        shards.spawn(&tracker, async move {
            let _guard = guard;
            let _ = started.send(());
            std::future::pending::<()>().await;
        });
        running.await.unwrap();
        shards.stop().await;
        assert!(dropped.load(Ordering::SeqCst));
        tracker.close();
        tracker.wait().await;
    }
}
