//! Group commit: one thread owns every write transaction.
//!
//! A durable commit costs an fsync, and an fsync costs about the same for one row as
//! for a hundred. So the writer takes the first waiting request, adds every other
//! request already queued behind it (up to [`MAX_BATCH`]), runs them one after another
//! in ONE transaction and commits it once. Only then does each caller get its answer,
//! so "acknowledged" still means "on disk". Requests in a batch see each other's
//! writes in order, exactly as if they had committed one by one.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, WriteTransaction};
use tokio::sync::{mpsc, oneshot};

use super::DbError;

/// Most requests in one transaction: bounds the latency of the last one in a batch.
const MAX_BATCH: usize = 256;
/// Requests waiting for the writer before callers wait to enqueue (backpressure).
const QUEUE: usize = 4096;

/// Called once the batch's fate is known: `Ok` after a durable commit.
type Finish = Box<dyn FnOnce(Result<(), DbError>) + Send>;
/// One caller's work inside the shared transaction; `None` if it failed (its caller
/// has already been told why). Given no transaction, the job answers its caller with
/// [`DbError::Full`] instead of running: the batch was refused for lack of space.
type Job = Box<dyn FnOnce(Option<&WriteTransaction>) -> Option<Finish> + Send>;

pub(super) struct Writer {
    sender: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
}

#[derive(Default)]
struct Stats {
    transactions: AtomicU64,
    requests: AtomicU64,
}

impl Writer {
    pub(super) fn start(
        db: Arc<Database>,
        dir: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Self> {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let thread = std::thread::Builder::new()
            .name("onebox-db-writer".into())
            .spawn({
                let stats = stats.clone();
                move || run(&db, dir.as_deref(), receiver, &stats)
            })?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            stats,
        })
    }

    pub(super) async fn submit<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, DbError> + Send + 'static,
    {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(DbError::Closed)?;
        let (reply, answer) = oneshot::channel::<Result<R, DbError>>();
        let job: Job = Box::new(move |tx| {
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
        });
        sender.send(job).await.map_err(|_| DbError::Closed)?;
        drop(sender);
        answer.await.unwrap_or(Err(DbError::Closed))
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
        drop(self.sender.lock().unwrap_or_else(|e| e.into_inner()).take());
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
    mut receiver: mpsc::Receiver<Job>,
    stats: &Stats,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
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
        let started = std::time::Instant::now();
        let committed = commit_batch(db, batch);
        let micros = started.elapsed().as_micros() as u64;
        crate::metrics::site::commit(size as usize, micros, committed);
        if committed {
            stats.transactions.fetch_add(1, Ordering::Relaxed);
            stats.requests.fetch_add(size, Ordering::Relaxed);
        }
    }
}

/// Answers every request of a batch with [`DbError::Full`] without running it.
fn refuse_full(batch: Vec<Job>) {
    for job in batch {
        crate::metrics::site::write_error();
        job(None);
    }
}

/// Runs a batch in one transaction; true if it committed.
fn commit_batch(db: &Database, batch: Vec<Job>) -> bool {
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
    let mut failed = false;
    for job in batch {
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
    use redb::{ReadableDatabase, ReadableTableMetadata, TableDefinition};

    const T: TableDefinition<u64, u64> = TableDefinition::new("t");

    /// While one transaction is held open, 63 more writes queue up; they must all
    /// be committed together in the next transaction.
    #[test]
    fn waiting_writes_share_one_commit() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let db = Arc::new(
            Database::builder()
                .create_with_backend(InMemoryBackend::new())
                .unwrap(),
        );
        let writer = Arc::new(Writer::start(db.clone(), None).unwrap());
        let queued = {
            let writer = writer.clone();
            move || {
                let guard = writer.sender.lock().unwrap();
                let sender = guard.as_ref().unwrap();
                sender.max_capacity() - sender.capacity()
            }
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
        assert_eq!(writer.stats(), (2, 64), "(transactions, writes)");
        writer.stop();
        let read = db.begin_read().unwrap();
        assert_eq!(read.open_table(T).unwrap().len().unwrap(), 64);
    }
}
