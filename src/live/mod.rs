//! The live view: what the DNS and web boxes are doing, as it happens.
//!
//! Every DNS answer and every HTTP response is published here; the page at
//! `/_onebox/live` streams them to a browser, so a learner can run `dig` or load
//! the site in another tab and watch the name become a page. Memory is bounded (a
//! ring of recent events plus a bounded channel) and publishing never waits: a
//! slow viewer misses events, it never slows the servers.
// The web server publishes HTTP events and serves the page once the site lands.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::broadcast;

/// How many recent events a new viewer sees first, and how far a viewer may fall
/// behind before it skips ahead.
const HISTORY: usize = 200;
const CHANNEL: usize = 1024;

/// How many recent DNS questions `/_onebox/api/history/dns` can list: a ring of
/// their own, so a burst of web requests never pushes out the question a test
/// script is about to ask about. Each entry is a few hundred bytes at most (a
/// name is at most 255), so the ring stays under a megabyte.
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
        method: String,
        host: String,
        path: String,
        status: u16,
        layer: String,
        micros: u64,
    },
}

/// Milliseconds since the Unix epoch, for the `at_ms` fields.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
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

/// The publisher side, cheap to clone into every server.
#[derive(Clone)]
pub(crate) struct Live {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Arc<Event>>,
    history: Mutex<VecDeque<Arc<Event>>>,
    /// The last [`QUESTIONS`] DNS events, for the question history.
    questions: Mutex<VecDeque<Arc<Event>>>,
    /// The last [`CHANGES`] change and secondary events, for the home page.
    changes: Mutex<VecDeque<Arc<Event>>>,
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
        Self {
            inner: Arc::new(Inner {
                sender,
                history: Mutex::new(VecDeque::with_capacity(HISTORY)),
                questions: Mutex::new(VecDeque::with_capacity(QUESTIONS)),
                changes: Mutex::new(VecDeque::with_capacity(CHANGES)),
            }),
        }
    }

    /// Records an event and hands it to current viewers. Never blocks on them.
    pub(crate) fn publish(&self, event: Event) {
        let event = Arc::new(event);
        push_bounded(&self.inner.history, HISTORY, &event);
        match *event {
            Event::Dns { .. } => push_bounded(&self.inner.questions, QUESTIONS, &event),
            Event::Change { .. } | Event::Secondary { .. } => {
                push_bounded(&self.inner.changes, CHANGES, &event);
            }
            Event::Http { .. } => {}
        }
        // An error only means nobody is watching right now.
        let _ = self.inner.sender.send(event);
    }

    /// The recent events and a receiver for what comes next. Subscribing first
    /// and reading history second means no event falls between the two (at worst
    /// one appears twice).
    pub(crate) fn subscribe(&self) -> (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>) {
        let receiver = self.inner.sender.subscribe();
        let history = self
            .inner
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        (history, receiver)
    }

    /// The recent zone changes and secondaries' progress, oldest first (at
    /// most [`CHANGES`]).
    pub(crate) fn changes(&self) -> Vec<Arc<Event>> {
        let changes = self.inner.changes.lock().unwrap_or_else(|e| e.into_inner());
        changes.iter().cloned().collect()
    }

    /// The recent DNS questions, oldest first (at most [`QUESTIONS`]).
    pub(crate) fn questions(&self) -> Vec<Arc<Event>> {
        let questions = self
            .inner
            .questions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        questions.iter().cloned().collect()
    }
}

/// Appends to a ring, dropping the oldest entry once it holds `cap`.
fn push_bounded(ring: &Mutex<VecDeque<Arc<Event>>>, cap: usize, event: &Arc<Event>) {
    let mut ring = ring.lock().unwrap_or_else(|e| e.into_inner());
    if ring.len() == cap {
        ring.pop_front();
    }
    ring.push_back(event.clone());
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
}
