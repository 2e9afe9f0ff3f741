//! The visit counter, group-committed: every view of the home page adds one to
//! its host's counter, and the page says that count was committed before it was
//! sent. One durable write per view would cost a transaction (and, on redb, a
//! boxed job through the writer) each; instead, the views that arrive while one
//! write is being committed join the next batch, and a single
//! [`Store::count_visits`] call adds the whole batch at once. Each view still
//! waits until the write that includes it has committed, so the promise holds:
//! with 256 clients, one commit counts many views, and no page shows a number the
//! database does not hold.
//!
//! Numbering: a batch of `k` views gets back the new total `T`, and its members
//! take `T - k + 1 ..= T` in the order they joined. Batches of one host commit
//! one after another, so numbers are unique and gap-free in this process; on a
//! shared PostgreSQL the addition is one atomic statement, so the range is still
//! this node's alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tokio::sync::watch;

use crate::db::{DbError, Store};

/// The outcome of one batch's write: the new total and how many views it added.
type Outcome = Option<Result<(u64, u64), DbError>>;

/// The counters of every host that has been viewed since the start.
#[derive(Debug, Default)]
pub(crate) struct Visits {
    /// Bounded by the site's host names: the web server lets no other `Host` in.
    hosts: RwLock<HashMap<String, Arc<HostVisits>>>,
}

/// One host's views waiting to be counted.
#[derive(Debug)]
struct HostVisits {
    host: String,
    state: Mutex<Open>,
}

/// The batch that new views join, and whether a write is under way.
#[derive(Debug)]
struct Open {
    batch: Arc<watch::Sender<Outcome>>,
    members: u64,
    /// A flusher task is running; it takes the open batch when its write is done.
    flushing: bool,
}

impl Open {
    fn new() -> Self {
        Self {
            batch: Arc::new(watch::Sender::new(None)),
            members: 0,
            flushing: false,
        }
    }
}

impl Visits {
    /// Counts one view of `host` and returns its number, once the write that
    /// holds it is durable (or the reason it could not be written).
    pub(crate) async fn count(&self, store: &Arc<dyn Store>, host: &str) -> Result<u64, DbError> {
        let counter = self.host(host);
        let (batch, position, start) = {
            let mut open = counter.state.lock().unwrap_or_else(PoisonError::into_inner);
            let position = open.members;
            open.members += 1;
            let start = !std::mem::replace(&mut open.flushing, true);
            (open.batch.clone(), position, start)
        };
        let mut outcome = batch.subscribe();
        if start {
            // A task of its own, so a client that hangs up mid-write cannot strand
            // the views batched behind it.
            tokio::spawn(flush(store.clone(), counter));
        }
        let done = outcome
            .wait_for(Option::is_some)
            .await
            .map_err(|_| DbError::Closed)?;
        match &*done {
            Some(Ok((total, added))) => Ok(total - added + position + 1),
            Some(Err(e)) => Err(e.clone()),
            None => Err(DbError::Closed),
        }
    }

    fn host(&self, host: &str) -> Arc<HostVisits> {
        if let Some(counter) = self
            .hosts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
        {
            return counter.clone();
        }
        self.hosts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(host.to_string())
            .or_insert_with(|| {
                Arc::new(HostVisits {
                    host: host.to_string(),
                    state: Mutex::new(Open::new()),
                })
            })
            .clone()
    }
}

/// Writes the open batch, then the one that filled up meanwhile, until none is
/// waiting: one write in flight per host, each counting every view that joined.
async fn flush(store: Arc<dyn Store>, counter: Arc<HostVisits>) {
    loop {
        // Let the requests that are already runnable (or whose bytes have just
        // arrived: tokio polls its sockets before resuming a yielded task) reach
        // their count first. Without it, clients in lockstep split into a batch
        // of the first one back and a batch of all the others: twice the commits.
        tokio::task::yield_now().await;
        let (batch, members) = {
            let mut open = counter.state.lock().unwrap_or_else(PoisonError::into_inner);
            if open.members == 0 {
                open.flushing = false;
                return;
            }
            let next = Open {
                flushing: true,
                ..Open::new()
            };
            let taken = std::mem::replace(&mut *open, next);
            (taken.batch, taken.members)
        };
        let outcome = store
            .count_visits(counter.host.clone(), members)
            .await
            .map(|total| (total, members));
        batch.send_replace(Some(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    /// 64 views at once: each gets its own number, 1..=64, and they reach the
    /// database as one or two writes, not 64.
    #[test]
    fn concurrent_views_share_writes_and_get_distinct_numbers() {
        // One thread: all 64 views are queued before the first write can start, so
        // the batching is certain, not a matter of timing.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let db = Db::in_memory().unwrap();
        let store: Arc<dyn Store> = Arc::new(db.clone());
        let visits = Arc::new(Visits::default());
        let mut numbers = rt.block_on(async {
            let views: Vec<_> = (0..64)
                .map(|_| {
                    let (visits, store) = (visits.clone(), store.clone());
                    tokio::spawn(async move { visits.count(&store, "foobar.com").await })
                })
                .collect();
            let mut numbers = Vec::new();
            for view in views {
                numbers.push(view.await.unwrap().unwrap());
            }
            numbers
        });
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=64).collect::<Vec<u64>>());
        let (_, writes) = db.write_stats();
        assert!(
            writes <= 2,
            "{writes} writes for 64 views: they were not batched"
        );
        // Another host has its own counter.
        let other = rt.block_on(visits.count(&store, "www.foobar.com")).unwrap();
        assert_eq!(other, 1);
        let after = rt.block_on(visits.count(&store, "foobar.com")).unwrap();
        assert_eq!(after, 65);
    }
}
