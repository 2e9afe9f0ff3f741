//! Group commit: one thread owns every write transaction.
//!
//! A durable commit costs an fsync, and an fsync costs about the same for one row as
//! for a hundred. So the writer takes the first waiting request, adds every other
//! request already queued behind it (up to [`MAX_BATCH`]), runs them one after another
//! in ONE transaction and commits it once. Only then does each caller get its answer,
//! so "acknowledged" still means "on disk". Requests in a batch see each other's
//! writes in order, exactly as if they had committed one by one.
//!
//! A batch that only counts visits commits to the visit log instead
//! ([`super::visits`]): one record and one `fdatasync`, folded into redb with the
//! next batch that writes anything else.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::DbError;
use super::visits::{self, Visits};

/// Most requests in one transaction: bounds the latency of the last one in a batch.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;
/// Longest wait for the other active writers once a batch has started (see
/// [`adaptive_window`]): twice the floor, reached only by commits slower than
/// 2 ms (a slow disk's redb commit).
const MAX_GATHER: Duration = Duration::from_millis(4);
/// Shortest such wait: about the time one core takes to send 128 home pages.
const MIN_GATHER: Duration = Duration::from_millis(2);

/// The gathering window after a commit that took the given time: how long the
/// next batch may wait for the other active writers.
type Window = fn(Duration) -> Duration;

/// The window in production: twice what the last commit took, within
/// [`MIN_GATHER`] and [`MAX_GATHER`]. The writers of the batch just answered
/// come back once the web server has sent every one of their pages, which takes
/// about as long again as a redb commit did; a window of half a commit let a
/// quarter of them miss each batch and pay for a commit of their own. Measured
/// side by side (home page, 32 connections, server on one core): 22.4 views per
/// commit and 7.4 µs of writer CPU per view with half a commit, 32.0 and 6.0 µs
/// with twice. A visit log's commit is much shorter than sending 32 pages, so
/// twice *it* closed the batch at about 16 views; a floor of 500 µs filled it
/// again (31.7 views per commit, writer CPU 2.3 → 1.4 µs per view).
///
/// With many more connections than one core answers in a window, the floor
/// itself sets the batch: the core sends pages at a steady rate, and the batch
/// closes when the window does. With 256 connections on one core, 500 µs made
/// batches of about 33 views (on the 16-core machine); each batch costs a wake
/// of this thread, two context switches on the one core and an `fdatasync`.
/// Hence a floor of 2 ms (the figures are in the README, "On 16 cores": "The
/// home page on one core"). A lone writer expects no one and never waits; a
/// writer that stops coming costs one window, once.
fn adaptive_window(last_commit: Duration) -> Duration {
    (last_commit * 2).clamp(MIN_GATHER, MAX_GATHER)
}

/// Called once the batch's fate is known: `Ok` after a durable commit.
type Finish = Box<dyn FnOnce(Result<(), DbError>) + Send>;
/// One caller's work inside the shared transaction; `None` if it failed (its caller
/// has already been told why). Given no transaction, the job answers its caller with
/// [`DbError::Full`] instead of running: the batch was refused for lack of space.
type Job = Box<dyn FnOnce(Option<&WriteTransaction>) -> Option<Finish> + Send>;

/// What callers queue for the writer.
enum Work {
    /// Any write, run inside the batch's redb transaction.
    Tx(Job),
    /// One visit to this host's counter: the answer is the new count.
    Visit(String, oneshot::Sender<Result<u64, DbError>>),
}

impl Work {
    /// The work as a redb job: a visit in a batch that also writes something
    /// else is counted in the transaction, like any write.
    fn into_job(self) -> Job {
        match self {
            Work::Tx(job) => job,
            Work::Visit(host, reply) => job(move |tx| visits::count_in(tx, &host), reply),
        }
    }
}

/// The job that runs `f` in the batch's transaction and answers `reply` with its
/// value once the batch has committed (or with why not).
fn job<R, F>(f: F, reply: oneshot::Sender<Result<R, DbError>>) -> Job
where
    R: Send + 'static,
    F: FnOnce(&WriteTransaction) -> Result<R, DbError> + Send + 'static,
{
    Box::new(move |tx| {
        let Some(tx) = tx else {
            let _ = reply.send(Err(DbError::Full));
            return None;
        };
        match f(tx) {
            Ok(value) => Some(Box::new(move |outcome: Result<(), DbError>| {
                let _ = reply.send(outcome.map(|()| value));
            })),
            Err(e) => {
                let _ = reply.send(Err(e));
                None
            }
        }
    })
}

pub(super) struct Writer {
    /// Read-locked by every request (to clone the sender), written once, to close it:
    /// readers never wait for one another, unlike a mutex.
    sender: RwLock<Option<mpsc::Sender<Work>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The writer thread, to wake it when it waits for more of a batch.
    waker: Thread,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    requests: AtomicU64,
    /// While the writer waits for more requests to join its batch, how many
    /// queued requests complete it (0 otherwise): only the request that completes
    /// the batch wakes the writer. Each wake is a system call and a context switch
    /// on a core the web server shares, so waking it once per arrival cost more
    /// than the larger batch saved.
    wake_at: std::sync::atomic::AtomicUsize,
    /// Times a submit woke the writer (tests check it is about once per batch).
    wakes: AtomicU64,
}

impl Writer {
    pub(super) fn start(
        db: Arc<Database>,
        dir: Option<std::path::PathBuf>,
        visits: Visits,
    ) -> anyhow::Result<Self> {
        Self::with_window(db, dir, visits, adaptive_window)
    }

    /// [`Writer::start`] with another gathering window (tests stretch it).
    fn with_window(
        db: Arc<Database>,
        dir: Option<std::path::PathBuf>,
        mut visits: Visits,
        window: Window,
    ) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let thread = std::thread::Builder::new()
            .name("onebox-db-writer".into())
            .spawn({
                let stats = stats.clone();
                move || run(&db, dir.as_deref(), &mut visits, receiver, &stats, window)
            })?;
        Ok(Self {
            sender: RwLock::new(Some(sender)),
            waker: thread.thread().clone(),
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    pub(super) async fn submit<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, DbError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<R, DbError>>();
        self.enqueue(Work::Tx(job(f, reply))).await?;
        answer.await.unwrap_or(Err(DbError::Closed))
    }

    /// Adds one visit to `host`'s counter and returns the new count, once it is
    /// durable.
    pub(super) async fn count_visit(&self, host: String) -> Result<u64, DbError> {
        let (reply, answer) = oneshot::channel();
        self.enqueue(Work::Visit(host, reply)).await?;
        answer.await.unwrap_or(Err(DbError::Closed))
    }

    /// Queues `work`, waking the writer if it completes the batch it waits for.
    async fn enqueue(&self, work: Work) -> Result<(), DbError> {
        let sender = self
            .sender
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(DbError::Closed)?;
        sender.send(work).await.map_err(|_| DbError::Closed)?;
        // The fence pairs with the writer's after it says how many it waits for
        // and before its last look at the queue: either it sees this job, or this
        // sees how many it waits for (and wakes it once they are all queued). A
        // race lost anyway would cost the window, not a hang.
        std::sync::atomic::fence(Ordering::SeqCst);
        let wake_at = self.stats.wake_at.load(Ordering::SeqCst);
        // Counted only while the writer waits: most submits find it busy.
        if wake_at != 0 && queued(&sender) >= wake_at {
            self.stats.wakes.fetch_add(1, Ordering::Relaxed);
            self.waker.unpark();
        }
        Ok(())
    }

    /// (transactions committed, write requests committed).
    pub(super) fn stats(&self) -> (u64, u64) {
        (
            self.stats.transactions.load(Ordering::Relaxed),
            self.stats.requests.load(Ordering::Relaxed),
        )
    }

    /// Closes the queue, lets the writer commit what is already in it, and waits.
    pub(super) fn stop(&self) {
        drop(
            self.sender
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

/// Room a write needs: redb grows its file in steps, and a commit writes new pages
/// before it frees old ones.
const MIN_FREE_BYTES: u64 = 4 * 1024 * 1024;

/// Free bytes for an unprivileged writer on the file system holding `dir`.
fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs is plain old data, and `path` is a valid C string.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    // The field types differ between platforms; on Linux both are u64 already.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stat.f_bavail).saturating_mul(u64::from(stat.f_frsize)))
}

/// ENOSPC and EDQUOT become [`DbError::Full`]; anything else stays a storage error.
fn commit_error(e: &dyn std::fmt::Display) -> DbError {
    let text = e.to_string();
    if text.contains("No space left") || text.contains("Disk quota exceeded") {
        DbError::Full
    } else {
        DbError::Storage(format!("commit failed: {text}"))
    }
}

fn run(
    db: &Database,
    dir: Option<&std::path::Path>,
    visits: &mut Visits,
    mut receiver: mpsc::Receiver<Work>,
    stats: &Stats,
    window: Window,
) {
    // Writers active in the last cycle, and how long its commit took.
    let mut active = 1;
    let mut last_commit = Duration::ZERO;
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        drain(&mut receiver, &mut batch);
        let target = active.min(MAX_BATCH);
        if batch.len() < target {
            let deadline = Instant::now() + window(last_commit);
            gather(&mut receiver, &mut batch, target, deadline, stats);
        }
        // A commit that hits a full disk leaves redb refusing every later write
        // until the file is reopened; refusing up front keeps the database healthy,
        // so writing resumes by itself once space returns. Checked here, once per
        // batch right before its commit, rather than once per request on the async
        // workers: the same guarantee (nothing starts a commit on a nearly full
        // disk) for one statvfs per transaction instead of one per post.
        if let Some(dir) = dir
            && free_bytes(dir).is_some_and(|free| free < MIN_FREE_BYTES)
        {
            refuse_full(batch);
            continue;
        }
        let size = batch.len() as u64;
        let started = Instant::now();
        // Counted once the commit is durable but before anyone is answered (an
        // answered caller may write again at once and would be counted twice).
        let mut queued = 0;
        let hosts = visit_hosts(&batch);
        let committed = match hosts {
            Some(hosts) if visits.has_room(&hosts) => {
                let counted = visits.count(db, &hosts);
                drop(hosts);
                if counted.is_ok() {
                    queued = receiver.len();
                }
                answer_visits(batch, counted)
            }
            _ => commit_batch(db, visits, batch, || queued = receiver.len()),
        };
        last_commit = started.elapsed();
        let micros = last_commit.as_micros() as u64;
        // Everyone in this batch is about to write again, and whoever queued
        // meanwhile is waiting: that many writers are active.
        active = size as usize + queued;
        crate::metrics::site::commit(size as usize, micros, committed);
        if committed {
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats.requests.fetch_add(size, Ordering::Relaxed);
        }
    }
    // A clean shutdown leaves every count in redb, and the log empty.
    if !visits.is_folded() {
        commit_batch(db, visits, Vec::new(), || {});
    }
}

/// The hosts of a batch that only counts visits; `None` if it writes anything else.
fn visit_hosts(batch: &[Work]) -> Option<Vec<&str>> {
    batch
        .iter()
        .map(|work| match work {
            Work::Visit(host, _) => Some(host.as_str()),
            Work::Tx(_) => None,
        })
        .collect()
}

/// Answers a batch of visits with their counts (or the error); true if counted.
fn answer_visits(batch: Vec<Work>, counted: Result<Vec<u64>, DbError>) -> bool {
    match counted {
        Ok(counts) => {
            for (work, count) in batch.into_iter().zip(counts) {
                if let Work::Visit(_, reply) = work {
                    let _ = reply.send(Ok(count));
                }
            }
            true
        }
        Err(e) => {
            // Counted as a failed commit (and a write error) by the caller.
            tracing::error!("db: counting visits failed: {e}");
            for work in batch {
                if let Work::Visit(_, reply) = work {
                    let _ = reply.send(Err(e.clone()));
                }
            }
            false
        }
    }
}

/// Jobs sent (or being sent) and not yet taken by the writer: the permits in
/// use, which the sending side can see.
fn queued(sender: &mpsc::Sender<Work>) -> usize {
    sender.max_capacity() - sender.capacity()
}

/// Moves every job already queued into `batch`, up to [`MAX_BATCH`].
fn drain(receiver: &mut mpsc::Receiver<Work>, batch: &mut Vec<Work>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
}

/// Waits until `batch` holds `target` jobs or `deadline` passes, sleeping
/// meanwhile: the [`Writer::submit`] that queues the last job it waits for wakes it.
fn gather(
    receiver: &mut mpsc::Receiver<Work>,
    batch: &mut Vec<Work>,
    target: usize,
    deadline: Instant,
    stats: &Stats,
) {
    loop {
        drain(receiver, batch);
        if batch.len() >= target || receiver.is_closed() {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let missing = target - batch.len();
        stats.wake_at.store(missing, Ordering::SeqCst);
        // The last look: jobs queued before the store above woke no one. The
        // fence pairs with the one in `submit` (the queue's own atomics are not
        // sequentially consistent).
        std::sync::atomic::fence(Ordering::SeqCst);
        if receiver.len() >= missing {
            continue;
        }
        // A wake from a submit that raced this look returns at once (unpark
        // leaves a token), so a complete batch never waits for the deadline.
        std::thread::park_timeout(deadline - now);
    }
    stats.wake_at.store(0, Ordering::SeqCst);
    drain(receiver, batch);
}

/// Answers every request of a batch with [`DbError::Full`] without running it.
fn refuse_full(batch: Vec<Work>) {
    for work in batch {
        crate::metrics::site::write_error();
        work.into_job()(None);
    }
}

/// Runs a batch in one transaction, after folding the counted visits into it;
/// true if it committed. `before_answers` runs once the commit is durable,
/// before any caller hears of it.
fn commit_batch(
    db: &Database,
    visits: &mut Visits,
    batch: Vec<Work>,
    before_answers: impl FnOnce(),
) -> bool {
    let mut tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            // Dropping the jobs drops their reply channels: each caller gets `Closed`.
            tracing::error!("db: cannot start a write transaction: {e}");
            return false;
        }
    };
    // Two-phase commit: posts are user-supplied data, and redb's single-phase commit
    // trusts a non-cryptographic checksum to detect a torn commit (redb's advice).
    tx.set_two_phase_commit(true);
    let mut finishes: Vec<Finish> = Vec::with_capacity(batch.len());
    // The fold goes first: the batch's own visits (and a load that replaces the
    // counters) then see redb's counters exactly as current as the log's.
    let mut failed = match visits.fold(&tx) {
        Ok(()) => false,
        Err(e) => {
            tracing::error!("db: folding the visit log failed: {e}");
            true
        }
    };
    for work in batch {
        let job = work.into_job();
        if failed {
            // The transaction is being thrown away: dropping the job tells its caller.
            continue;
        }
        // A panic in one request's code must not take the writer thread down with it.
        match std::panic::catch_unwind(AssertUnwindSafe(|| job(Some(&tx)))) {
            Ok(Some(finish)) => finishes.push(finish),
            Ok(None) => failed = true,
            Err(_) => {
                tracing::error!("db: a write request panicked; aborting its batch");
                failed = true;
            }
        }
    }
    if failed {
        let _ = tx.abort();
        for finish in finishes {
            finish(Err(DbError::Storage(
                "another write in the same transaction failed; nothing was written".into(),
            )));
        }
        return false;
    }
    match tx.commit() {
        Ok(()) => {
            visits.folded();
            before_answers();
            for finish in finishes {
                finish(Ok(()));
            }
            true
        }
        Err(e) => {
            tracing::error!("db: commit failed: {e}");
            for finish in finishes {
                finish(Err(commit_error(&e)));
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;
    use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn memory_db() -> Arc<Database> {
        Arc::new(
            Database::builder()
                .create_with_backend(InMemoryBackend::new())
                .unwrap(),
        )
    }

    /// Appends one row to `T` and returns its key (1, 2, ... in commit order).
    async fn append(writer: &Writer) -> u64 {
        writer
            .submit(|tx| {
                let mut t = tx.open_table(T).unwrap();
                let next = t.last().unwrap().map_or(1, |(k, _)| k.value() + 1);
                t.insert(next, next).unwrap();
                Ok(next)
            })
            .await
            .unwrap()
    }

    /// `writers` tasks each appending `writes` rows, writer k pausing `pause(k)`
    /// before each, through a writer whose window (200 ms) lets batches fill on a
    /// loaded machine; each task checks that its ids follow commit order.
    fn write_concurrently(writers: u64, writes: usize, pause: fn(u64) -> Duration) -> Writer {
        let writer = Arc::new(
            Writer::with_window(memory_db(), None, Visits::in_memory(), |_| {
                Duration::from_millis(200)
            })
            .unwrap(),
        );
        runtime().block_on(async {
            let tasks: Vec<_> = (0..writers)
                .map(|k| {
                    let writer = writer.clone();
                    tokio::spawn(async move {
                        let mut last = 0;
                        for _ in 0..writes {
                            tokio::time::sleep(pause(k)).await;
                            let id = append(&writer).await;
                            assert!(id > last, "ids follow commit order");
                            last = id;
                        }
                    })
                })
                .collect();
            for task in tasks {
                tokio::time::timeout(Duration::from_secs(60), task)
                    .await
                    .expect("writers finished")
                    .unwrap();
            }
        });
        Arc::into_inner(writer).expect("the tasks are done with the writer")
    }

    /// The window follows the commit, within its floor and its cap.
    #[test]
    fn the_window_is_twice_the_commit_within_bounds() {
        assert_eq!(adaptive_window(Duration::ZERO), MIN_GATHER);
        assert_eq!(adaptive_window(Duration::from_micros(400)), MIN_GATHER);
        assert_eq!(
            adaptive_window(Duration::from_micros(1500)),
            Duration::from_millis(3)
        );
        assert_eq!(adaptive_window(Duration::from_secs(1)), MAX_GATHER);
    }

    /// A lone writer's batch of one commits at once, even with a window of an hour:
    /// the writer waits only for writers it has seen active.
    #[test]
    fn a_lone_writer_is_never_kept_waiting() {
        let writer = Writer::with_window(memory_db(), None, Visits::in_memory(), |_| {
            Duration::from_secs(3600)
        })
        .unwrap();
        runtime().block_on(async {
            // The bound only stops a broken writer from hanging the suite: each
            // wait would last an hour.
            tokio::time::timeout(Duration::from_secs(60), async {
                for i in 1..=50 {
                    assert_eq!(append(&writer).await, i);
                }
            })
            .await
            .expect("a lone writer was kept waiting for company");
        });
        // Stopped first: the stats are counted after the callers are answered.
        writer.stop();
        assert_eq!(writer.stats(), (50, 50), "(transactions, writes)");
    }

    /// 8 writers posting back to back fill each batch: the writer waits for the
    /// ones it has just answered instead of committing whoever came back first.
    #[test]
    fn concurrent_writers_fill_batches() {
        // Long enough that the batches fill on a loaded machine; the stragglers at
        // the very end cost a window each.
        // Some work between writes (a request's parsing and answering), so the
        // writers come back at different times.
        let writer = write_concurrently(8, 25, |_| Duration::from_millis(1));
        writer.stop();
        let (transactions, requests) = writer.stats();
        assert_eq!(requests, 200);
        // 25 full batches of 8, plus a few partial ones while the writers fall in step.
        assert!(
            transactions <= 32,
            "{transactions} transactions for 200 writes by 8 writers"
        );
    }

    /// Writers that come back at different times, while the writer gathers their
    /// batch, do not wake it one by one: only the write that completes the batch
    /// does (two that arrive together may both). A wake is a system call and a
    /// context switch on a core the web server shares.
    #[test]
    fn only_the_write_that_completes_a_batch_wakes_the_writer() {
        // Writer k takes k + 1 ms between writes: the batch's writes arrive one by
        // one over 8 ms.
        let writer = write_concurrently(8, 10, |k| Duration::from_millis(k + 1));
        writer.stop();
        let (transactions, requests) = writer.stats();
        assert_eq!(requests, 80);
        let wakes = writer.stats.wakes.load(Ordering::Relaxed);
        assert!(
            wakes <= 2 * transactions,
            "{wakes} wakes for {transactions} transactions"
        );
    }

    /// While one transaction is held open, 63 more writes queue up; they must all
    /// be committed together in the next transaction.
    #[test]
    fn waiting_writes_share_one_commit() {
        let rt = runtime();
        let db = memory_db();
        let writer = Arc::new(Writer::start(db.clone(), None, Visits::in_memory()).unwrap());
        let queued = {
            let writer = writer.clone();
            move || queued(writer.sender.read().unwrap().as_ref().unwrap())
        };
        rt.block_on(async {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let (started, running) = std::sync::mpsc::channel::<()>();
            let first = tokio::spawn({
                let writer = writer.clone();
                async move {
                    writer
                        .submit(move |tx| {
                            // Hold the writer inside its transaction until the others queue.
                            let _ = started.send(());
                            let _ = wait.recv();
                            tx.open_table(T).unwrap().insert(0, 0).unwrap();
                            Ok(0u64)
                        })
                        .await
                }
            });
            running
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            let mut rest = Vec::new();
            for i in 1..64u64 {
                let writer = writer.clone();
                rest.push(tokio::spawn(async move {
                    writer
                        .submit(move |tx| {
                            tx.open_table(T).unwrap().insert(i, i).unwrap();
                            Ok(i)
                        })
                        .await
                }));
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while queued() < 63 {
                assert!(std::time::Instant::now() < deadline, "writes did not queue");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            release.send(()).unwrap();
            assert_eq!(first.await.unwrap().unwrap(), 0);
            for (i, handle) in rest.into_iter().enumerate() {
                assert_eq!(handle.await.unwrap().unwrap(), i as u64 + 1);
            }
        });
        writer.stop();
        assert_eq!(writer.stats(), (2, 64), "(transactions, writes)");
        let read = db.begin_read().unwrap();
        assert_eq!(read.open_table(T).unwrap().len().unwrap(), 64);
    }
}
