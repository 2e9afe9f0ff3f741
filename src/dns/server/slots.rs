//! The TCP and TLS connection slots, and who gives one up when they run out.
//!
//! A cap on connections keeps an attacker from exhausting memory or file
//! descriptors, but a cap that turns new clients away lets anyone who holds the
//! slots open (idle, never sending a query) shut TCP for everybody. RFC 7766 §6.2.3
//! says a server under resource pressure should close idle connections instead;
//! NSD and Knot do. So when every slot is taken, the connection that has been idle
//! the longest is told to close, and the new one gets its slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// The open connections of one listener.
#[derive(Debug)]
pub(crate) struct Slots {
    cap: usize,
    /// Bumped on every sign of life of any connection: a connection's last value
    /// orders it by idleness without reading a clock (and without ties).
    clock: AtomicU64,
    open: Mutex<HashMap<u64, Held>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct Held {
    last_active: Arc<AtomicU64>,
    close: CancellationToken,
}

/// One connection's slot. Dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    id: u64,
    last_active: Arc<AtomicU64>,
    close: CancellationToken,
    slots: Arc<Slots>,
}

impl Slots {
    pub(crate) fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            cap: cap.max(1),
            clock: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// Gives a new connection a slot. When all are taken, the longest-idle
    /// connection is told to close first; returns whether one was.
    pub(crate) fn admit(self: &Arc<Self>) -> (Slot, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let last_active = Arc::new(AtomicU64::new(self.tick()));
        let close = CancellationToken::new();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut shed = false;
        if open.len() >= self.cap
            && let Some(idlest) = open
                .iter()
                .min_by_key(|(_, held)| held.last_active.load(Ordering::Relaxed))
                .map(|(id, _)| *id)
            && let Some(held) = open.remove(&idlest)
        {
            // Removed at once, so the next admission cannot pick it again while its
            // task is still winding down.
            held.close.cancel();
            shed = true;
        }
        open.insert(
            id,
            Held {
                last_active: last_active.clone(),
                close: close.clone(),
            },
        );
        drop(open);
        let slot = Slot {
            id,
            last_active,
            close,
            slots: self.clone(),
        };
        (slot, shed)
    }

    /// Connections holding a slot now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Slot {
    /// The connection did something (a query arrived, an answer left): it is the
    /// least idle of all now.
    pub(crate) fn touch(&self) {
        self.last_active.store(self.slots.tick(), Ordering::Relaxed);
    }

    /// Cancelled when this connection is shed to make room for a new one.
    pub(crate) fn shed(&self) -> &CancellationToken {
        &self.close
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_sheds_the_longest_idle_connection() {
        let slots = Slots::new(2);
        let (a, shed) = slots.admit();
        assert!(!shed);
        let (b, _) = slots.admit();
        a.touch(); // b is now the idlest, although a is older
        let (c, shed) = slots.admit();
        assert!(shed, "a full house must shed, not refuse");
        assert!(b.shed().is_cancelled());
        assert!(!a.shed().is_cancelled());
        assert!(!c.shed().is_cancelled());
        assert_eq!(slots.len(), 2);
        drop(b); // its task ends; the slot was already handed over
        assert_eq!(slots.len(), 2);
        drop(a);
        assert_eq!(slots.len(), 1);
        let (_d, shed) = slots.admit();
        assert!(!shed, "room again: nobody is shed");
    }
}
