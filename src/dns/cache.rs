//! The fast path: answers already computed for these exact zones, replayed with the
//! query's ID patched in.
//!
//! Authoritative data only changes on reload, so the answer to a given query is a
//! pure function of the query's bytes (minus its ID) and the transport. NSD and
//! Knot lead the speed tables by pre-rendering answers; we memoise them instead:
//! the first query of a kind goes through hickory, and every later identical one
//! costs a hash lookup and a copy. Each [`super::ZoneSet`] owns its cache, so a
//! reload starts empty and no stale answer can survive it.
//!
//! Only plain queries are cached: opcode QUERY, one question written without
//! compression, no records other than an OPT with no options, and no zone
//! transfers. Everything else takes the full path, so the two paths give
//! byte-identical answers by construction (a property test checks it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::ZoneSet;
use super::peer::Transport;

/// Enough for every name and type a zone fixture sees, small enough that a flood of
/// random names cannot grow memory: when full, the cache starts over.
const CAPACITY: usize = 8192;

/// A cached answer and what the query log says about it.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) reply: Vec<u8>,
    pub(crate) qname: String,
    pub(crate) qtype: String,
    pub(crate) rcode: String,
    pub(crate) answers: u16,
}

#[derive(Debug, Default)]
pub(crate) struct AnswerCache {
    map: RwLock<HashMap<Vec<u8>, std::sync::Arc<Cached>>>,
}

impl AnswerCache {
    /// The cache key of a query, or `None` when the query is not plain enough to
    /// be answered from the cache.
    pub(crate) fn key(packet: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let mut key = Vec::with_capacity(packet.len());
        key_into(&mut key, packet, transport).then_some(key)
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<std::sync::Arc<Cached>> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    pub(crate) fn insert(&self, key: Vec<u8>, cached: Cached) {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, std::sync::Arc::new(cached));
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Writes the cache key of a query into `key` (replacing what it held); `false`
/// when the query is not plain enough to be answered from the cache.
fn key_into(key: &mut Vec<u8>, packet: &[u8], transport: Transport) -> bool {
    if !is_plain_query(packet) {
        return false;
    }
    key.clear();
    // Only UDP answers differ (they may be truncated); every stream transport
    // gets the same bytes.
    key.push(u8::from(transport == Transport::Udp));
    key.extend_from_slice(&packet[2..]);
    true
}

/// One UDP worker's private view of the answer cache: the zone set it answers
/// from and the cached answers it has already looked up there.
///
/// The shared cache sits behind a lock and the current set behind another, so
/// every core that answered through them would write to the same few cache
/// lines (the locks' reader counts, the `Arc`'s reference count) for every
/// query: that traffic, not the lookup, is what stops a server from scaling
/// with cores. A hit here touches only this worker's memory and reads one flag
/// of the set ([`ZoneSet::is_retired`]). When the set is replaced (reload,
/// UPDATE) the worker drops its copies and starts over from the new set, so it
/// can never serve an answer the shared cache would not.
#[derive(Default)]
pub(crate) struct Local {
    set: Option<Arc<ZoneSet>>,
    /// Key to a place in `slots`: a hit then hashes its key once and returns a
    /// borrow taken after the lookup (a borrow returned from inside it would
    /// keep the map borrowed on the miss path too, which forced a second lookup).
    answers: HashMap<Vec<u8>, usize>,
    slots: Vec<Arc<Cached>>,
    /// The key of the query at hand, reused so that a hit allocates nothing.
    key: Vec<u8>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local")
            .field("answers", &self.answers.len())
            .finish_non_exhaustive()
    }
}

impl Local {
    /// The cached answer to `packet`, looked up in this worker's copy first and
    /// the set's shared cache second. `current` gives the set being served when
    /// the worker's own is stale (or it has none yet).
    pub(crate) fn get(
        &mut self,
        packet: &[u8],
        transport: Transport,
        current: impl FnOnce() -> Arc<ZoneSet>,
    ) -> Option<&Cached> {
        if !key_into(&mut self.key, packet, transport) {
            return None;
        }
        let set = match &self.set {
            Some(set) if !set.is_retired() => set,
            _ => {
                self.answers.clear();
                self.slots.clear();
                self.set.insert(current())
            }
        };
        let slot = match self.answers.get(self.key.as_slice()) {
            Some(&slot) => slot,
            None => {
                let cached = set.answers.get(&self.key)?;
                if self.answers.len() >= CAPACITY {
                    self.answers.clear();
                    self.slots.clear();
                }
                self.slots.push(cached);
                self.answers.insert(self.key.clone(), self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        // Borrowed, not cloned: an `Arc` clone would write the reference count
        // that every worker's copy shares.
        self.slots.get(slot).map(|cached| &**cached)
    }
}

/// Replays a cached answer for a query into `reply` (replacing what it held):
/// the same bytes with the query's ID. A UDP worker passes a buffer it reuses
/// batch after batch, so a replayed answer allocates nothing.
pub(crate) fn replay(cached: &Cached, packet: &[u8], reply: &mut Vec<u8>) {
    reply.clear();
    reply.extend_from_slice(&cached.reply);
    reply[0] = packet[0];
    reply[1] = packet[1];
}

/// Opcode QUERY, QR=0, exactly one question with an uncompressed name, no answer
/// or authority records, at most one additional record which must be an OPT with
/// no options, and nothing after it.
fn is_plain_query(packet: &[u8]) -> bool {
    if packet.len() < 17 || packet.len() > 512 {
        return false;
    }
    let flags = packet[2];
    if flags & 0x80 != 0 || (flags >> 3) & 0x0f != 0 {
        return false;
    }
    let count = |i: usize| u16::from_be_bytes([packet[i], packet[i + 1]]);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return false;
    }
    // The question name: length-prefixed labels of 1 to 63 bytes, no pointers,
    // at most 255 bytes in all.
    let mut at = 12;
    loop {
        let Some(&len) = packet.get(at) else {
            return false;
        };
        if len == 0 {
            at += 1;
            break;
        }
        if len > 63 {
            return false;
        }
        at += 1 + usize::from(len);
        if at - 12 > 255 {
            return false;
        }
    }
    if at - 12 > 255 || packet.len() < at + 4 {
        return false;
    }
    let qtype = u16::from_be_bytes([packet[at], packet[at + 1]]);
    // Zone transfers depend on who asks; OPT and other meta types are odd enough
    // to leave to the full path.
    if matches!(qtype, 41 | 250 | 251 | 252 | 253 | 254) {
        return false;
    }
    at += 4;
    if count(10) == 0 {
        return at == packet.len();
    }
    // OPT: root name, type 41, class (payload), TTL (ext-rcode, version, flags), RDLEN 0.
    packet.len() == at + 11
        && packet[at] == 0
        && packet[at + 1..at + 3] == [0, 41]
        && packet[at + 9..at + 11] == [0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, opt: Option<[u8; 11]>) -> Vec<u8> {
        let mut q = vec![
            0x12,
            0x34,
            0x00,
            0x00,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            u8::from(opt.is_some()),
        ];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        if let Some(opt) = opt {
            q.extend_from_slice(&opt);
        }
        q
    }

    const WWW: &[u8] = b"\x03www\x06foobar\x03com\x00";
    const OPT: [u8; 11] = [0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0];

    #[test]
    fn plain_queries_are_cacheable() {
        assert!(is_plain_query(&query(WWW, 1, None)));
        assert!(is_plain_query(&query(WWW, 1, Some(OPT))));
        let mut with_option = query(WWW, 1, Some(OPT));
        let last = with_option.len() - 1;
        with_option[last] = 4;
        assert!(
            !is_plain_query(&with_option),
            "an OPT with options is not plain"
        );
        assert!(
            !is_plain_query(&query(WWW, 252, None)),
            "AXFR depends on the client"
        );
        assert!(
            !is_plain_query(&query(b"\xc0\x0c", 1, None)),
            "compressed name"
        );
        let mut trailing = query(WWW, 1, None);
        trailing.push(0);
        assert!(!is_plain_query(&trailing));
        let mut notify = query(WWW, 6, None);
        notify[2] = 4 << 3;
        assert!(!is_plain_query(&notify));
    }

    #[test]
    fn key_ignores_the_id_but_not_the_transport() {
        let mut a = query(WWW, 1, None);
        let b = a.clone();
        a[0] = 0xff;
        assert_eq!(
            AnswerCache::key(&a, Transport::Udp),
            AnswerCache::key(&b, Transport::Udp)
        );
        assert_ne!(
            AnswerCache::key(&a, Transport::Udp),
            AnswerCache::key(&a, Transport::Tcp)
        );
        assert_eq!(
            AnswerCache::key(&a, Transport::Tls),
            AnswerCache::key(&a, Transport::Tcp)
        );
    }
}
