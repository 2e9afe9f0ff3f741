//! The log writer: every diagnostic line goes into one in-memory buffer that a
//! background thread hands to stderr, so a slow or stalled stderr never blocks
//! serving, and a burst of lines costs one `write(2)` rather than one per line.
//!
//! Why not a channel of lines (tracing-appender's design, used before): each line
//! was a `Vec` of its own, and each send could wake the writer thread, which on a
//! busy core meant a context switch per HTTP request. Here a line is appended in
//! place under a short lock; the writer is woken only when the buffer goes from
//! empty to not empty, then waits [`BATCH`] so that the lines of a burst leave
//! together. Lines keep the order in which they were appended, whichever thread
//! wrote them.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, mpsc};
use std::thread::Thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes that may wait for a slow stderr before new lines are dropped: about
/// 8,000 access lines, so a stalled reader costs bounded memory.
const QUEUE_BYTES: usize = 1024 * 1024;
/// Room beyond [`QUEUE_BYTES`] kept for warnings and errors: a flood of
/// access and query lines must not silence the line that says lines were
/// dropped (written at exit, when the queue may still be full), nor an error.
const URGENT_BYTES: usize = 64 * 1024;
/// How long the writer lets lines gather after the first one arrives: short
/// enough that a line reaches stderr while the reader still cares, long enough
/// that under load each `write(2)` carries hundreds of lines.
const BATCH: Duration = Duration::from_millis(5);
/// A buffer that grew past this (a burst, a stalled stderr) is not kept once written.
const KEEP_CAPACITY: usize = 256 * 1024;
/// How long the last lines may take to reach stderr at exit.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// What every logging thread shares with the writer thread.
#[derive(Debug)]
struct Sink {
    pending: Mutex<Vec<u8>>,
    dropped: AtomicUsize,
    writer: Thread,
    /// The compact text format without colour: the access log may format its
    /// lines by hand (see [`append_plain`]).
    plain: bool,
    stopping: std::sync::atomic::AtomicBool,
}

static SINK: OnceLock<Arc<Sink>> = OnceLock::new();

impl Sink {
    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while a line was appended leaves at worst half a line.
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends one line that `fill` writes; drops it (and counts it) when the
    /// queue is full. An `urgent` line (a warning or an error) may use
    /// [`URGENT_BYTES`] more.
    fn append(&self, urgent: bool, fill: impl FnOnce(&mut Vec<u8>)) {
        thread_local! {
            /// Where this thread formats a line before it takes the lock.
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        // The line is formatted outside the lock, which then covers only a
        // copy: every thread that logs (each HTTP request writes an access line)
        // shares this one lock, and on many cores the time it is held is the time
        // others wait. A line logged while formatting one (re-entry) is formatted
        // under the lock instead.
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                fill(&mut line);
                self.push(urgent, |pending| pending.extend_from_slice(&line));
                if line.capacity() > 4 * 1024 {
                    *line = Vec::new();
                }
            }
            Err(_) => self.push(urgent, fill),
        });
    }

    /// Appends what `fill` writes under the lock, unless the queue is full.
    fn push(&self, urgent: bool, fill: impl FnOnce(&mut Vec<u8>)) {
        let limit = if urgent {
            QUEUE_BYTES + URGENT_BYTES
        } else {
            QUEUE_BYTES
        };
        let mut pending = self.lock();
        if pending.len() >= limit {
            drop(pending);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let was_empty = pending.is_empty();
        fill(&mut pending);
        drop(pending);
        if was_empty {
            // Only the first line of a batch wakes the writer; `unpark` of a
            // thread that is not parked is one atomic operation.
            self.writer.unpark();
        }
    }
}

/// Keeps the writer thread running; dropping it writes the lines still queued
/// (waiting at most [`FINAL_FLUSH`] for a stuck stderr). Hold it until exit.
#[derive(Debug)]
#[must_use = "dropping it stops the log writer"]
pub struct Guard {
    sink: Arc<Sink>,
    done: mpsc::Receiver<()>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sink.stopping.store(true, Ordering::Release);
        self.sink.writer.unpark();
        let _ = self.done.recv_timeout(FINAL_FLUSH);
    }
}

/// Starts the writer thread and makes it the destination of [`Writer`]; `plain`
/// says lines are the compact text format without colour. `None` when a writer
/// already runs (a second call changes nothing).
pub(crate) fn install(plain: bool) -> Option<Guard> {
    let (started, ready) = mpsc::channel::<Arc<Sink>>();
    let (finished, done) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("onebox-log".into())
        .spawn(move || {
            let Ok(sink) = ready.recv() else { return };
            write_until_stopped(&sink);
            let _ = finished.send(());
        })
        .ok()?;
    let sink = Arc::new(Sink {
        pending: Mutex::new(Vec::with_capacity(16 * 1024)),
        dropped: AtomicUsize::new(0),
        writer: thread.thread().clone(),
        plain,
        stopping: false.into(),
    });
    // A second install finds the first sink: its thread ends when `started` goes.
    SINK.set(sink.clone()).ok()?;
    started.send(sink.clone()).ok()?;
    Some(Guard { sink, done })
}

/// The writer thread: sleeps until a line arrives, lets a batch gather, writes it.
fn write_until_stopped(sink: &Sink) {
    let mut spare = Vec::with_capacity(16 * 1024);
    let mut stderr = std::io::stderr();
    loop {
        let stopping = sink.stopping.load(Ordering::Acquire);
        if !stopping {
            // Park only while nothing waits. An appender wakes this thread only
            // when it finds the buffer empty, and the wake-up token can be used
            // up by something else that parks this thread (the channel that hands
            // it the sink, at start): parking with lines already queued would then
            // sleep until the next empty-to-not-empty change, which never comes
            // while they wait. Checked before each park, a token taken elsewhere
            // costs nothing; one set after the check makes the park return.
            if sink.lock().is_empty() {
                std::thread::park();
            }
            if !sink.stopping.load(Ordering::Acquire) {
                std::thread::sleep(BATCH);
            }
        }
        std::mem::swap(&mut *sink.lock(), &mut spare);
        if !spare.is_empty() {
            // An error (stderr closed) loses these lines; there is nowhere to say so.
            let _ = stderr.write_all(&spare);
            spare.clear();
            if spare.capacity() > KEEP_CAPACITY {
                spare = Vec::with_capacity(16 * 1024);
            }
        }
        if stopping {
            return;
        }
    }
}

/// Appends one line formatted by hand, when the sink writes the compact text
/// format; `false` (nothing written) otherwise, so the caller logs through
/// `tracing` instead.
pub(crate) fn append_plain(fill: impl FnOnce(&mut Vec<u8>)) -> bool {
    match SINK.get() {
        Some(sink) if sink.plain => {
            sink.append(false, fill);
            true
        }
        _ => false,
    }
}

/// Lines dropped so far because stderr was not read fast enough.
pub(crate) fn dropped_lines() -> usize {
    SINK.get()
        .map_or(0, |sink| sink.dropped.load(Ordering::Relaxed))
}

/// `tracing`'s view of the sink: each event arrives as one `write_all` of a
/// whole line, which becomes one append. Before [`install`] (or in a program
/// that never calls it) lines go straight to stderr.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Writer;

/// One line on its way to the sink, from [`Writer`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Line {
    /// The line is a warning or an error (see [`URGENT_BYTES`]).
    urgent: bool,
}

impl std::io::Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match SINK.get() {
            Some(sink) => sink.push(self.urgent, |pending| pending.extend_from_slice(buf)),
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line::default()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        // More verbose levels compare greater: ERROR < WARN < INFO.
        Line {
            urgent: *meta.level() <= tracing::Level::WARN,
        }
    }
}

/// Writes `at` as `tracing_subscriber`'s default timer does
/// (`2026-11-26T23:30:06.037881Z`: UTC, microseconds). The date and time to the
/// second are worked out once per second per thread.
pub(crate) fn write_timestamp(out: &mut Vec<u8>, at: SystemTime) {
    thread_local! {
        /// The second last formatted and its text up to the `.`.
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    // Past year 9999 the format would need a fifth digit: a clock that far off
    // is broken anyway, so it reads as the last second of 9999.
    let secs = since.as_secs().min(MAX_CACHED_SECS);
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        text = second_text(secs);
        SECOND.set((secs, text));
    }
    out.extend_from_slice(&text);
    let micros = since.subsec_micros();
    let mut digits = [b'0'; 6];
    let mut rest = micros;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// The last second of year 9999.
const MAX_CACHED_SECS: u64 = 253_402_300_799;

/// `YYYY-MM-DDTHH:MM:SS.` for `secs` since the epoch (UTC, years 1970 to 9999).
fn second_text(secs: u64) -> [u8; 20] {
    let days = secs / 86_400;
    let in_day = secs % 86_400;
    // Howard Hinnant's civil_from_days: the proleptic Gregorian calendar, with
    // eras of 400 years that start on 1 March.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = *b"0000-00-00T00:00:00.";
    let mut put = |at: usize, width: usize, mut value: u64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, in_day / 3600);
    put(14, 2, in_day % 3600 / 60);
    put(17, 2, in_day % 60);
    text
}

/// Appends `n` in decimal, without `fmt`'s machinery.
pub(crate) fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]));
}

/// `n`'s decimal digits (ASCII), written at the end of `digits`.
pub(crate) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &digits[at..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(at: SystemTime) -> String {
        let mut out = Vec::new();
        write_timestamp(&mut out, at);
        String::from_utf8(out).expect("ASCII")
    }

    #[test]
    fn a_full_queue_still_takes_warnings_and_errors() {
        let sink = Sink {
            pending: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
            writer: std::thread::current(),
            plain: true,
            stopping: std::sync::atomic::AtomicBool::new(false),
        };
        let line = [b'x'; 1000];
        while sink.dropped.load(Ordering::Relaxed) == 0 {
            sink.append(false, |out| out.extend_from_slice(&line));
        }
        let full = sink.lock().len();
        sink.append(true, |out| out.extend_from_slice(b"dropped lines\n"));
        assert_eq!(sink.lock().len(), full + 14, "the urgent line was kept");
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 1);
        // Only so far: the headroom is bounded too.
        while sink.dropped.load(Ordering::Relaxed) == 1 {
            sink.append(true, |out| out.extend_from_slice(&line));
        }
        assert!(sink.lock().len() < QUEUE_BYTES + URGENT_BYTES + line.len());
    }

    /// The wake-up a line sends can be used up before the writer first parks
    /// (at start, the channel that hands it the sink parks the same thread).
    /// The writer must still write what is queued, not sleep until a wake-up
    /// that only an empty buffer would send. Failed before the check in
    /// `write_until_stopped`: the line stayed queued and this timed out.
    #[test]
    fn a_wake_up_used_up_elsewhere_does_not_strand_queued_lines() {
        let (hand, ready) = mpsc::channel::<Arc<Sink>>();
        let writer = std::thread::spawn(move || {
            let sink = ready.recv().unwrap();
            // Uses up the token the line below set, if the channel did not.
            std::thread::park_timeout(Duration::from_secs(2));
            write_until_stopped(&sink);
        });
        let sink = Arc::new(Sink {
            pending: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
            writer: writer.thread().clone(),
            plain: true,
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        sink.append(false, |out| {
            out.extend_from_slice(b"log test: queued line\n")
        });
        hand.send(sink.clone()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !sink.lock().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the queued line was never written"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        sink.stopping.store(true, Ordering::Release);
        sink.writer.unpark();
        writer.join().unwrap();
    }

    #[test]
    fn timestamps_match_the_tracing_format() {
        for (secs, nanos, text) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 999_999_999, "2000-02-29T00:00:00.999999Z"),
            (1_709_251_199, 1_000, "2024-02-29T23:59:59.000001Z"),
            (1_795_735_806, 37_881_000, "2026-11-26T23:30:06.037881Z"),
            (4_102_444_800, 5, "2100-01-01T00:00:00.000000Z"),
            (MAX_CACHED_SECS, 0, "9999-12-31T23:59:59.000000Z"),
        ] {
            let at = UNIX_EPOCH + Duration::new(secs, nanos);
            assert_eq!(stamp(at), text);
            // Again, from the per-second cache.
            assert_eq!(stamp(at), text);
        }
    }

    #[test]
    fn timestamps_agree_with_the_time_crate_every_day_for_centuries() {
        // Every 1,000,003rd second from 1970 to about 2290: each month, leap day
        // and century rule is crossed many times.
        let mut secs = 0u64;
        while secs < 10_000_000_000 {
            let t = time::OffsetDateTime::from_unix_timestamp(secs as i64).expect("in range");
            let want = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            assert_eq!(&second_text(secs), want.as_bytes(), "{secs}");
            secs += 1_000_003;
        }
    }

    #[test]
    fn decimal_numbers() {
        for n in [0, 7, 10, 200, 2048, 99_999, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }
}
