//! Sharded counters: the hot path's cheap counters.
//!
//! Every DNS query bumps a handful of counters. One `AtomicU64` per counter would
//! make every core fight over the same cache line; here each thread writes to its
//! own shard (a 128-byte aligned block of counters) and a scrape sums the shards.
//!
//! A thread that owns its shard alone adds with a plain load and store, not a
//! locked read-modify-write: on x86 each `lock add` costs tens of cycles (more in
//! a VM), and with six or seven per query they were most of the metrics' cost on
//! the UDP path. Threads past the [`OWNED`] owned shards, and any thread whose
//! shard was already given back at exit, share the last shard with atomic adds.
//! Writes are `Relaxed`: a scrape may see one counter a query ahead of another,
//! which is fine for monitoring, and no count is ever lost.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::encode::Series;

/// Enough shards that every thread that counts owns one: per core a UDP worker,
/// a tokio worker and an HTTP connection thread, plus the database writer and
/// tokio's blocking threads. With 16, the threads of an 8-core server (25 that
/// count) outnumbered the shards, and the last ten shared one with locked adds.
/// Unused shards cost address space but no memory: their pages are never
/// written, and reading them (a scrape) maps the kernel's shared zero page.
const SHARDS: usize = 64;
/// Shards a single thread owns; the last one is shared by every other thread.
const OWNED: usize = SHARDS - 1;

/// The next never-used owned shard.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);
/// Owned shards whose thread has exited, ready for the next new thread. The lock
/// also orders the old owner's last writes before the new owner's first.
static FREE_SHARDS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// This thread's shard index; gives an owned shard back when the thread exits
/// (tokio's blocking pool starts and ends threads all the time).
struct Slot(usize);

impl Slot {
    fn take() -> Self {
        let freed = FREE_SHARDS.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let index = freed.unwrap_or_else(|| {
            let next = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
            if next < OWNED {
                next
            } else {
                // Keep the counter from wrapping round to owned indexes.
                NEXT_SHARD.store(OWNED, Ordering::Relaxed);
                OWNED
            }
        });
        Self(index)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0 < OWNED {
            FREE_SHARDS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.0);
        }
    }
}

thread_local! {
    static SHARD: Slot = Slot::take();
}

/// This thread's shard index: the shared one while the thread-local is being
/// torn down (a metric recorded from another thread-local's destructor).
#[inline]
fn shard_index() -> usize {
    SHARD.try_with(|s| s.0).unwrap_or(OWNED)
}

/// One shard's counters, on their own cache lines (128 bytes covers the adjacent-
/// line prefetcher of x86 as well).
#[repr(align(128))]
struct Shard<const N: usize>([AtomicU64; N]);

/// `N` counters, each split over `SHARDS` shards.
pub(crate) struct Sharded<const N: usize> {
    shards: [Shard<N>; SHARDS],
}

impl<const N: usize> std::fmt::Debug for Sharded<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sharded<{N}>")
    }
}

impl<const N: usize> Sharded<N> {
    /// All zero; `const` so the counters can live in a `static`.
    pub(crate) const fn new() -> Self {
        Self {
            shards: [const { Shard([const { AtomicU64::new(0) }; N]) }; SHARDS],
        }
    }

    /// Adds `n` to counter `i` (out-of-range indexes are a bug, and ignored).
    #[inline]
    pub(crate) fn add(&self, i: usize, n: u64) {
        self.local().add(i, n);
    }

    /// This thread's shard, looked up once: a caller that bumps several counters
    /// for one event (a DNS query bumps six) pays the thread-local lookup once.
    #[inline]
    pub(crate) fn local(&self) -> Local<'_, N> {
        let index = shard_index();
        Local {
            shard: &self.shards[index],
            owned: index < OWNED,
        }
    }

    /// The total of counter `i` over every shard.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .filter_map(|s| s.0.get(i))
            .map(|c| c.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// One series per value of a label's fixed list, the `i`-th value counted at
    /// `base + i`: how every labelled counter here is laid out.
    pub(crate) fn by_label<'a>(
        &self,
        label: &'static str,
        values: &[&'a str],
        base: usize,
    ) -> Series<'a, u64> {
        self.series(label, values, |i| self.get(base + i))
    }

    /// Like [`Self::by_label`], for things open now: what was counted opened at
    /// `opened + i` less what was counted closed at `closed + i`.
    pub(crate) fn open_by_label<'a>(
        &self,
        label: &'static str,
        values: &[&'a str],
        (opened, closed): (usize, usize),
    ) -> Series<'a, i64> {
        self.series(label, values, |i| {
            self.get(opened + i).saturating_sub(self.get(closed + i)) as i64
        })
    }

    fn series<'a, V>(
        &self,
        label: &'static str,
        values: &[&'a str],
        value: impl Fn(usize) -> V,
    ) -> Series<'a, V> {
        let series = values.iter().enumerate();
        series.map(|(i, v)| (vec![(label, *v)], value(i))).collect()
    }

    /// Counts one opened at `opened` now, and one closed at `closed` when the
    /// returned guard drops (a connection's life, however it ends).
    pub(crate) fn open(&'static self, opened: usize, closed: usize) -> OpenGuard<N> {
        self.add(opened, 1);
        OpenGuard {
            block: self,
            closed,
        }
    }
}

/// One thread's shard of a [`Sharded`] block.
#[derive(Clone, Copy)]
pub(crate) struct Local<'a, const N: usize> {
    shard: &'a Shard<N>,
    /// Only this thread writes here, so an add needs no locked instruction.
    owned: bool,
}

impl<const N: usize> Local<'_, N> {
    /// Adds `n` to counter `i` of this shard (out-of-range indexes are ignored).
    #[inline]
    pub(crate) fn add(self, i: usize, n: u64) {
        let Some(counter) = self.shard.0.get(i) else {
            return;
        };
        if self.owned {
            // The only writer: a plain load and store lose nothing, and a scrape
            // reading concurrently still sees a whole value (an atomic load).
            let v = counter.load(Ordering::Relaxed);
            counter.store(v.wrapping_add(n), Ordering::Relaxed);
        } else {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Counts its connection closed when dropped.
#[derive(Debug)]
pub(crate) struct OpenGuard<const N: usize> {
    block: &'static Sharded<N>,
    closed: usize,
}

impl<const N: usize> Drop for OpenGuard<N> {
    fn drop(&mut self) {
        self.block.add(self.closed, 1);
    }
}

/// A histogram laid out inside a `Sharded` block: one counter per bucket (not
/// cumulative; the scrape accumulates), one for "above the last bound", and the sum.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HistogramLayout {
    /// Index of the first bucket inside the block.
    pub(crate) base: usize,
    /// Upper bounds, in the unit recorded (microseconds or bytes), ascending.
    pub(crate) bounds: &'static [u64],
}

impl HistogramLayout {
    /// Counters it takes: the buckets, the overflow bucket and the sum.
    pub(crate) const fn width(bounds: &[u64]) -> usize {
        bounds.len() + 2
    }

    #[inline]
    pub(crate) fn observe<const N: usize>(&self, block: &Sharded<N>, value: u64) {
        self.observe_local(block.local(), value);
    }

    /// [`Self::observe`] on a shard the caller already holds.
    #[inline]
    pub(crate) fn observe_local<const N: usize>(&self, shard: Local<'_, N>, value: u64) {
        let bucket = self.bounds.partition_point(|&b| b < value);
        shard.add(self.base + bucket, 1);
        shard.add(self.base + self.bounds.len() + 1, value);
    }

    /// Buckets `(upper bound, count in this bucket alone)` scaled by `scale` (1e-6
    /// turns microseconds into seconds), the sum likewise, and the count. The
    /// encoder makes the buckets cumulative, as the exposition format wants.
    pub(crate) fn snapshot<const N: usize>(
        &self,
        block: &Sharded<N>,
        scale: f64,
    ) -> (Vec<(f64, u64)>, f64, u64) {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len() + 1);
        for (i, bound) in self.bounds.iter().enumerate() {
            let n = block.get(self.base + i);
            count += n;
            buckets.push((*bound as f64 * scale, n));
        }
        let over = block.get(self.base + self.bounds.len());
        buckets.push((f64::INFINITY, over));
        let sum = block.get(self.base + self.bounds.len() + 1) as f64 * scale;
        (buckets, sum, count + over)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_many_threads_add_up_exactly() {
        let block: &'static Sharded<3> = Box::leak(Box::new(Sharded::new()));
        let threads: Vec<_> = (0..8)
            .map(|_| std::thread::spawn(move || (0..1000).for_each(|_| block.add(1, 1))))
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(block.get(1), 8000);
        assert_eq!(block.get(0), 0);
    }

    #[test]
    fn more_threads_than_shards_and_threads_that_exit_still_count_exactly() {
        // 3 waves of 40 threads: more than the owned shards at once (so some share
        // the last shard with atomic adds), and later waves reuse the shards the
        // earlier ones gave back at exit with plain stores.
        let block: &'static Sharded<2> = Box::leak(Box::new(Sharded::new()));
        for _ in 0..3 {
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(40));
            let threads: Vec<_> = (0..40)
                .map(|_| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        barrier.wait();
                        (0..5000).for_each(|_| block.local().add(0, 1));
                    })
                })
                .collect();
            threads.into_iter().for_each(|t| t.join().unwrap());
        }
        assert_eq!(block.get(0), 3 * 40 * 5000);
    }

    #[test]
    fn a_histogram_sorts_values_into_buckets_and_keeps_its_sum() {
        static BOUNDS: [u64; 3] = [10, 100, 1000];
        let block: Sharded<5> = Sharded::new();
        let h = HistogramLayout {
            base: 0,
            bounds: &BOUNDS,
        };
        for v in [5, 10, 50, 5000] {
            h.observe(&block, v);
        }
        let (buckets, sum, count) = h.snapshot(&block, 1.0);
        assert_eq!(
            buckets,
            vec![(10.0, 2), (100.0, 1), (1000.0, 0), (f64::INFINITY, 1)]
        );
        assert_eq!((sum, count), (5065.0, 4));
    }
}
