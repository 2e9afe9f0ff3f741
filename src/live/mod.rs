//! The live view: what the DNS and web boxes are doing, as it happens.
//!
//! Every DNS answer and every HTTP response is published here; the page at
//! `/_onebox/live` streams them to a browser, so a learner can run `dig` or load
//! the site in another tab and watch the name become a page. Memory is bounded (a
//! ring of recent events per thread plus a bounded channel) and publishing never
//! waits: a slow viewer misses events, it never slows the servers.
//!
//! Publishing runs once per DNS query on every UDP worker, so it must not write
//! memory that another worker writes: one shared ring behind a lock would make
//! every core take the same lock and pass the same cache lines back and forth for
//! every query, and a server that does that answers fewer queries per core the
//! more cores it has. So each thread that publishes owns a ring of its own (taken
//! once, given back when the thread ends), a DNS question is kept there as plain
//! bytes (no `String`, no `Arc`, nothing allocated for a usual name) with the
//! instant it arrived, and readers (the live page, the question history, the home
//! page) merge the rings by that instant and build [`Event`]s only then. The
//! stream to viewers costs one read of a counter when nobody watches: the channel
//! send, which takes the channel's lock, happens only while a viewer is subscribed.
// The web server publishes HTTP events and serves the page once the site lands.
#![allow(dead_code)]

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// How many recent events a new viewer sees first, and how far a viewer may fall
/// behind before it skips ahead.
const HISTORY: usize = 200;
const CHANNEL: usize = 1024;

/// How many recent DNS questions `/_onebox/api/history/dns` can list: a ring of
/// their own, so a burst of web requests never pushes out the question a test
/// script is about to ask about. Each thread that answers DNS keeps this many
/// (about 200 bytes each, so under 200 KB a thread), and readers list the newest
/// this many of them all.
pub(crate) const QUESTIONS: usize = 1000;

/// How many recent zone changes (and their secondaries' progress) the home page
/// can show.
pub(crate) const CHANGES: usize = 20;

/// One thing that happened, as the live page shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub(crate) enum Event {
    /// A DNS query answered: who asked what, and what they got.
    Dns {
        at_ms: u64,
        client: SocketAddr,
        transport: &'static str,
        name: String,
        qtype: String,
        rcode: String,
        answers: u16,
        micros: u64,
    },
    /// A zone changed: who changed it (the TSIG key's name, or "api"), what, and
    /// the zone's new serial.
    Change {
        at_ms: u64,
        by: String,
        what: String,
        serial: u32,
    },
    /// A secondary of ours moved along: `"notified"` when it acknowledged our
    /// NOTIFY of `serial`, `"caught up"` when it transferred `serial` from us.
    Secondary {
        at_ms: u64,
        zone: String,
        serial: u32,
        secondary: SocketAddr,
        state: &'static str,
    },
    /// An HTTP request served: which site, which layer answered, how fast.
    Http {
        at_ms: u64,
        client: SocketAddr,
        /// A standard method's name is borrowed, so publishing allocates nothing
        /// for it (see [`method_name`]).
        method: Cow<'static, str>,
        host: String,
        path: String,
        status: u16,
        /// The layer that answered: one of a few fixed names.
        layer: &'static str,
        micros: u64,
    },
}

/// `method` as an event field: the standard methods as static names, anything
/// else copied. Every HTTP request publishes an event, and most are `GET`.
pub(crate) fn method_name(method: &str) -> Cow<'static, str> {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE",
    ];
    match KNOWN.iter().find(|known| **known == method) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(method.to_owned()),
    }
}

/// Milliseconds since the Unix epoch, for the `at_ms` fields.
pub(crate) fn now_ms() -> u64 {
    ms_at(SystemTime::now())
}

/// `at` as milliseconds since the Unix epoch, for a caller that has already
/// read the clock (the web server reads it once per request, for the access log
/// line and the live event).
pub(crate) fn ms_at(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the epoch as an RFC 3339 time in UTC, as the question
/// history and `onebox zone log` show times.
pub(crate) fn rfc3339(at_ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// One answered DNS question as the DNS engine hands it over: borrowed, so that
/// publishing it copies a few bytes and allocates nothing. It is also the query
/// log's record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'a> {
    /// When the query arrived: the engine read the clock then anyway, so the
    /// event's time costs no clock read of its own.
    pub(crate) at: Instant,
    pub(crate) client: SocketAddr,
    pub(crate) transport: &'static str,
    pub(crate) name: &'a str,
    pub(crate) qtype: &'a str,
    pub(crate) rcode: &'a str,
    pub(crate) answers: u16,
    pub(crate) micros: u64,
}

/// The publisher side, cheap to clone into every server.
#[derive(Clone)]
pub(crate) struct Live {
    inner: Arc<Inner>,
}

struct Inner {
    /// How many viewers are subscribed: the one word of the live view that the
    /// hot path reads. Written only when a viewer comes or goes, and on a cache
    /// line of its own so that no other write here evicts it from every core.
    viewers: Padded<AtomicUsize>,
    sender: broadcast::Sender<Arc<Event>>,
    /// The instant the live view began, and the wall clock then: a question's
    /// time is its arrival instant measured from here, which orders the rings'
    /// questions among themselves and gives their `at_ms` without a clock read.
    base: Instant,
    base_ms: u64,
    /// Every thread's ring, for readers to merge (written when a thread first
    /// publishes, read by readers).
    rings: Mutex<Vec<Arc<Ring>>>,
    /// Rings whose thread has ended, for the next new thread to take over (with
    /// their events: nothing is lost when a thread goes).
    free: Mutex<Vec<Arc<Ring>>>,
    /// For a thread that publishes while its thread-locals are being torn down.
    spare: Arc<Ring>,
    /// Zone changes and secondaries' progress: rare, so one shared ring.
    others: Mutex<VecDeque<(u64, Arc<Event>)>>,
}

/// A value alone on its cache lines (128 bytes covers the adjacent-line
/// prefetcher of x86).
#[repr(align(128))]
struct Padded<T>(T);

/// One thread's recent events. Only its thread writes it; the lock is taken by
/// that thread for every event (uncontended, on a cache line no other core
/// writes) and by a reader now and then.
#[repr(align(128))]
#[derive(Default)]
struct Ring(Mutex<Recent>);

#[derive(Default)]
struct Recent {
    /// The last [`QUESTIONS`] DNS questions this thread answered.
    questions: VecDeque<Asked>,
    /// The last [`HISTORY`] HTTP requests this thread served, with their instant.
    http: VecDeque<(u64, Arc<Event>)>,
}

/// A DNS question as a ring keeps it: fixed size, formatted into an [`Event`]
/// only when someone reads it.
#[derive(Clone)]
struct Asked {
    /// Nanoseconds since [`Inner::base`]: the order readers merge rings by.
    nanos: u64,
    at_ms: u64,
    client: SocketAddr,
    transport: &'static str,
    name: Text<NAME_INLINE>,
    qtype: Text<14>,
    rcode: Text<14>,
    answers: u16,
    micros: u64,
}

/// Names up to this long (nearly all of them) are kept inside the ring's entry.
const NAME_INLINE: usize = 62;

/// Text kept inline up to `N` bytes, on the heap beyond that.
#[derive(Clone)]
enum Text<const N: usize> {
    Inline { len: u8, bytes: [u8; N] },
    Heap(Box<str>),
}

impl<const N: usize> Text<N> {
    fn new(text: &str) -> Self {
        match u8::try_from(text.len()) {
            Ok(len) if text.len() <= N => {
                let mut bytes = [0; N];
                bytes[..text.len()].copy_from_slice(text.as_bytes());
                Text::Inline { len, bytes }
            }
            _ => Text::Heap(text.into()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied whole from a `str`, so always valid UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(text) => text,
        }
    }
}

impl Asked {
    fn new(nanos: u64, at_ms: u64, q: &Question<'_>) -> Self {
        Asked {
            nanos,
            at_ms,
            client: q.client,
            transport: q.transport,
            name: Text::new(q.name),
            qtype: Text::new(q.qtype),
            rcode: Text::new(q.rcode),
            answers: q.answers,
            micros: q.micros,
        }
    }

    fn event(&self) -> Event {
        Event::Dns {
            at_ms: self.at_ms,
            client: self.client,
            transport: self.transport,
            name: self.name.as_str().to_string(),
            qtype: self.qtype.as_str().to_string(),
            rcode: self.rcode.as_str().to_string(),
            answers: self.answers,
            micros: self.micros,
        }
    }
}

/// The rings this thread publishes to, one per [`Live`] (a process has one; unit
/// tests have many).
struct Mine {
    live: Weak<Inner>,
    ring: Arc<Ring>,
}

impl Mine {
    fn of(&self, inner: &Arc<Inner>) -> bool {
        std::ptr::eq(self.live.as_ptr(), Arc::as_ptr(inner))
    }
}

impl Drop for Mine {
    /// The thread is ending: its ring, events and all, goes to the next new
    /// thread, so threads that come and go (tokio's blocking pool) never add rings.
    fn drop(&mut self) {
        if let Some(inner) = self.live.upgrade() {
            lock(&inner.free).push(self.ring.clone());
        }
    }
}

thread_local! {
    static MINE: RefCell<Vec<Mine>> = const { RefCell::new(Vec::new()) };
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub(crate) fn new() -> Self {
        let (sender, _) = broadcast::channel(CHANNEL);
        let spare = Arc::new(Ring::default());
        Self {
            inner: Arc::new(Inner {
                viewers: Padded(AtomicUsize::new(0)),
                sender,
                base: Instant::now(),
                base_ms: now_ms(),
                rings: Mutex::new(vec![spare.clone()]),
                free: Mutex::new(Vec::new()),
                spare,
                others: Mutex::new(VecDeque::with_capacity(HISTORY)),
            }),
        }
    }

    /// Records an answered DNS question: the per-query path. It writes only this
    /// thread's ring, and builds an [`Event`] only while a viewer is watching.
    pub(crate) fn question(&self, question: &Question<'_>) {
        let nanos = self.nanos(question.at);
        let at_ms = self.inner.base_ms + nanos / 1_000_000;
        let asked = Asked::new(nanos, at_ms, question);
        self.with_ring(|recent| push_bounded(&mut recent.questions, QUESTIONS, asked));
        if self.watched() {
            let _ = self
                .inner
                .sender
                .send(Arc::new(Asked::new(nanos, at_ms, question).event()));
        }
    }

    /// Records an event and hands it to current viewers. Never blocks on them.
    pub(crate) fn publish(&self, event: Event) {
        let nanos = self.nanos(Instant::now());
        match &event {
            Event::Dns {
                name,
                qtype,
                rcode,
                answers,
                client,
                transport,
                at_ms,
                micros,
            } => {
                let asked = Asked::new(
                    nanos,
                    *at_ms,
                    &Question {
                        at: self.inner.base,
                        client: *client,
                        transport,
                        name,
                        qtype,
                        rcode,
                        answers: *answers,
                        micros: *micros,
                    },
                );
                self.with_ring(|recent| push_bounded(&mut recent.questions, QUESTIONS, asked));
                if self.watched() {
                    let _ = self.inner.sender.send(Arc::new(event));
                }
            }
            Event::Http { .. } => {
                let event = Arc::new(event);
                let kept = (nanos, event.clone());
                self.with_ring(|recent| push_bounded(&mut recent.http, HISTORY, kept));
                if self.watched() {
                    let _ = self.inner.sender.send(event);
                }
            }
            Event::Change { .. } | Event::Secondary { .. } => {
                let event = Arc::new(event);
                push_bounded(
                    &mut lock(&self.inner.others),
                    HISTORY,
                    (nanos, event.clone()),
                );
                if self.watched() {
                    let _ = self.inner.sender.send(event);
                }
            }
        }
    }

    /// The recent events and a receiver for what comes next. Counting the viewer
    /// and subscribing first, reading history second, means no event falls
    /// between the two (at worst one appears twice): a publisher adds to its ring
    /// before it looks at the count, so either the read below finds the event in
    /// the ring or the publisher, whose ring lock came after the read's, sees the
    /// count and sends it.
    pub(crate) fn subscribe(&self) -> (Vec<Arc<Event>>, Receiver) {
        self.inner.viewers.0.fetch_add(1, Ordering::Relaxed);
        let receiver = Receiver {
            receiver: self.inner.sender.subscribe(),
            inner: self.inner.clone(),
        };
        (self.history(), receiver)
    }

    /// The last [`HISTORY`] events of every kind, oldest first.
    fn history(&self) -> Vec<Arc<Event>> {
        let mut all: Vec<(u64, Arc<Event>)> = self
            .newest_questions(HISTORY)
            .into_iter()
            .map(|asked| (asked.nanos, Arc::new(asked.event())))
            .collect();
        for ring in self.rings() {
            let recent = lock(&ring.0);
            all.extend(recent.http.iter().cloned());
        }
        all.extend(lock(&self.inner.others).iter().cloned());
        // Stable: events of one thread with the same instant keep their order.
        all.sort_by_key(|(nanos, _)| *nanos);
        let older = all.len().saturating_sub(HISTORY);
        all.drain(..older);
        all.into_iter().map(|(_, event)| event).collect()
    }

    /// The recent zone changes and secondaries' progress, oldest first (at
    /// most [`CHANGES`]).
    pub(crate) fn changes(&self) -> Vec<Arc<Event>> {
        let others = lock(&self.inner.others);
        let older = others.len().saturating_sub(CHANGES);
        others
            .iter()
            .skip(older)
            .map(|(_, event)| event.clone())
            .collect()
    }

    /// The recent DNS questions, oldest first (at most [`QUESTIONS`]).
    pub(crate) fn questions(&self) -> Vec<Arc<Event>> {
        self.newest_questions(QUESTIONS)
            .iter()
            .map(|asked| Arc::new(asked.event()))
            .collect()
    }

    /// The newest `n` questions of all rings, oldest first. Two passes, so that
    /// only `n` entries are ever copied however many threads there are: the
    /// first finds the instant of the `n`-th newest, the second copies what is
    /// at least that new (a question that arrived in between is trimmed again).
    /// Each ring is locked only while it is read, never while events are built.
    fn newest_questions(&self, n: usize) -> Vec<Asked> {
        let rings = self.rings();
        let mut stamps: Vec<u64> = Vec::new();
        for ring in &rings {
            stamps.extend(lock(&ring.0).questions.iter().map(|asked| asked.nanos));
        }
        let cut = match stamps.len().checked_sub(n) {
            Some(i) if n > 0 => *stamps.select_nth_unstable(i).1,
            _ => 0,
        };
        drop(stamps);
        let mut picked: Vec<Asked> = Vec::new();
        for ring in &rings {
            let recent = lock(&ring.0);
            picked.extend(recent.questions.iter().filter(|a| a.nanos >= cut).cloned());
        }
        picked.sort_by_key(|asked| asked.nanos);
        let older = picked.len().saturating_sub(n);
        picked.drain(..older);
        picked
    }

    /// The rings to read, copied out so that no reader holds the list while a
    /// new thread wants to add its ring.
    fn rings(&self) -> Vec<Arc<Ring>> {
        lock(&self.inner.rings).clone()
    }

    /// Whether anyone is watching the stream: one relaxed read of a word that
    /// only changes when a viewer comes or goes.
    fn watched(&self) -> bool {
        self.inner.viewers.0.load(Ordering::Relaxed) > 0
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.inner.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Runs `push` on this thread's ring, taking one on the thread's first event.
    fn with_ring(&self, push: impl FnOnce(&mut Recent)) {
        let inner = &self.inner;
        let mut push = Some(push);
        // One borrow and one scan per event: this runs for every DNS query. The
        // pushes only drop old entries, which never come back here.
        let _ = MINE.try_with(|mine| {
            let mut mine = mine.borrow_mut();
            let at = match mine.iter().position(|m| m.of(inner)) {
                Some(at) => at,
                None => {
                    self.adopt(&mut mine);
                    mine.len() - 1
                }
            };
            if let (Some(m), Some(push)) = (mine.get(at), push.take()) {
                push(&mut lock(&m.ring.0));
            }
        });
        // This thread's locals are being torn down: the shared spare ring.
        if let Some(push) = push {
            push(&mut lock(&inner.spare.0));
        }
    }

    /// Gives this thread a ring: one a finished thread left, or a new one.
    fn adopt(&self, mine: &mut Vec<Mine>) {
        // Rings of live views that are gone (unit tests make many).
        mine.retain(|m| m.live.strong_count() > 0);
        let freed = lock(&self.inner.free).pop();
        let ring = freed.unwrap_or_else(|| {
            let ring = Arc::new(Ring::default());
            lock(&self.inner.rings).push(ring.clone());
            ring
        });
        mine.push(Mine {
            live: Arc::downgrade(&self.inner),
            ring,
        });
    }
}

/// A viewer's end of the stream; counted as watching until dropped.
pub(crate) struct Receiver {
    receiver: broadcast::Receiver<Arc<Event>>,
    inner: Arc<Inner>,
}

impl Receiver {
    /// The next event, or how many the viewer missed by falling behind.
    pub(crate) async fn recv(&mut self) -> Result<Arc<Event>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.inner.viewers.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Appends to a ring, dropping the oldest entry once it holds `cap`.
fn push_bounded<T>(ring: &mut VecDeque<T>, cap: usize, item: T) {
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str) -> Event {
        Event::Dns {
            at_ms: now_ms(),
            client: "127.0.0.1:5353".parse().unwrap(),
            transport: "udp",
            name: name.into(),
            qtype: "A".into(),
            rcode: "NOERROR".into(),
            answers: 2,
            micros: 40,
        }
    }

    #[tokio::test]
    async fn viewers_get_history_then_new_events() {
        let live = Live::new();
        live.publish(dns("a.foobar.com."));
        let (history, mut receiver) = live.subscribe();
        assert_eq!(history.len(), 1);
        live.publish(dns("b.foobar.com."));
        let next = receiver.recv().await.unwrap();
        assert!(matches!(&*next, Event::Dns { name, .. } if name == "b.foobar.com."));
        let json = serde_json::to_value(&*next).unwrap();
        assert_eq!(json["kind"], "dns");
    }

    #[test]
    fn memory_is_bounded_and_publishing_never_waits_for_viewers() {
        let live = Live::new();
        let (_, _slow_viewer) = live.subscribe(); // never reads
        for i in 0..(CHANNEL * 3) {
            live.publish(dns(&format!("n{i}.foobar.com.")));
        }
        let (history, _) = live.subscribe();
        assert_eq!(history.len(), HISTORY);
    }

    fn question(live: &Live, at: Instant, name: &str) {
        live.question(&Question {
            at,
            client: "127.0.0.1:5353".parse().unwrap(),
            transport: "udp",
            name,
            qtype: "AAAA",
            rcode: "NXDOMAIN",
            answers: 0,
            micros: 3,
        });
    }

    fn names(events: &[Arc<Event>]) -> Vec<String> {
        events
            .iter()
            .map(|event| match &**event {
                Event::Dns { name, .. } => name.clone(),
                other => panic!("not a question: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn questions_of_many_threads_merge_in_arrival_order_and_stay_bounded() {
        let live = Live::new();
        let t0 = Instant::now();
        // Four threads, each with its own ring (none ends before all have
        // published, so none hands its ring on): question i arrived at
        // t0 + i µs and was answered by thread i % 4.
        let all_done = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for thread in 0..4 {
                let (live, all_done) = (live.clone(), &all_done);
                scope.spawn(move || {
                    for i in (thread..2400).step_by(4) {
                        let at = t0 + std::time::Duration::from_micros(i as u64);
                        question(&live, at, &format!("n{i}.foobar.com."));
                    }
                    all_done.wait();
                });
            }
        });
        assert_eq!(live.rings().len(), 5, "the spare and one per thread");
        let expected: Vec<String> = (1400..2400).map(|i| format!("n{i}.foobar.com.")).collect();
        assert_eq!(names(&live.questions()), expected);
        let (history, _) = live.subscribe();
        assert_eq!(names(&history), expected[expected.len() - HISTORY..]);
    }

    #[test]
    fn a_thread_that_ends_hands_its_ring_and_its_questions_on() {
        let live = Live::new();
        for i in 0..20 {
            let live = live.clone();
            std::thread::spawn(move || question(&live, Instant::now(), &format!("t{i}.")))
                .join()
                .unwrap();
        }
        // The spare ring and one ring that each thread took over in turn.
        assert_eq!(live.rings().len(), 2);
        let expected: Vec<String> = (0..20).map(|i| format!("t{i}.")).collect();
        assert_eq!(names(&live.questions()), expected);
    }

    #[test]
    fn a_question_waits_on_no_lock_another_thread_holds() {
        let live = Live::new();
        let (ready, is_ready) = std::sync::mpsc::channel();
        let (go, goes) = std::sync::mpsc::channel::<()>();
        let (done, is_done) = std::sync::mpsc::channel();
        let worker = {
            let live = live.clone();
            std::thread::spawn(move || {
                question(&live, Instant::now(), "first."); // takes its ring
                ready.send(()).unwrap();
                goes.recv().unwrap();
                question(&live, Instant::now(), "second.");
                done.send(()).unwrap();
            })
        };
        is_ready.recv().unwrap();
        // Every lock the live view shares between threads, held elsewhere.
        let registry = lock(&live.inner.rings);
        let free = lock(&live.inner.free);
        let others = lock(&live.inner.others);
        let spare = lock(&live.inner.spare.0);
        go.send(()).unwrap();
        let waited = is_done.recv_timeout(std::time::Duration::from_secs(10));
        drop((registry, free, others, spare));
        assert!(waited.is_ok(), "a question waited on a shared lock");
        worker.join().unwrap();
        assert_eq!(names(&live.questions()), ["first.", "second."]);
    }

    #[tokio::test]
    async fn the_stream_is_fed_only_while_someone_watches() {
        let live = Live::new();
        question(&live, Instant::now(), "before.foobar.com.");
        assert!(!live.watched());
        let (history, mut receiver) = live.subscribe();
        assert!(live.watched());
        assert_eq!(names(&history), ["before.foobar.com."]);
        // A name too long to keep inline, and one just short enough.
        let long = format!("{}.foobar.com.", "a".repeat(100));
        let short = format!("{}.", "b".repeat(NAME_INLINE - 1));
        for name in [&long, &short] {
            question(&live, Instant::now(), name);
            let next = receiver.recv().await.unwrap();
            let json = serde_json::to_value(&*next).unwrap();
            assert_eq!(json["name"], name.as_str());
            assert_eq!(json["qtype"], "AAAA");
            assert_eq!(json["rcode"], "NXDOMAIN");
            assert_eq!(json["kind"], "dns");
        }
        assert_eq!(
            names(&live.questions()),
            ["before.foobar.com.", long.as_str(), short.as_str()]
        );
        drop(receiver);
        assert!(!live.watched());
    }

    #[test]
    fn changes_keep_their_own_bound() {
        let live = Live::new();
        for serial in 0..(CHANGES as u32 + 5) {
            live.publish(Event::Change {
                at_ms: now_ms(),
                by: "api".into(),
                what: "add".into(),
                serial,
            });
        }
        let changes = live.changes();
        assert_eq!(changes.len(), CHANGES);
        assert!(matches!(&*changes[0], Event::Change { serial: 5, .. }));
    }
}
