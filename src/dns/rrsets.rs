//! A zone's records as served: one shared RRset per (owner, type), in a
//! persistent ordered map, so a change costs what it touches.
//!
//! An UPDATE to a zone of 100,000 records used to copy and regroup every
//! record. Here the map is persistent (`imbl::OrdMap`): cloning it is O(1), and
//! changing one key copies only the O(log n) tree nodes on its path, so the
//! zone before an UPDATE and the zone after share every RRset the UPDATE did
//! not touch: the very same `Arc<RecordSet>` allocations, which hickory's zone
//! handler holds too. Keys are in DNS canonical order (RFC 4034 §6.1), where
//! every name below a node sorts right after it: whether a name exists (with
//! records, or as an empty non-terminal) is one O(log n) lookup.

use std::sync::Arc;

use hickory_server::proto::rr::{LowerName, Name, Record, RecordSet, RecordType, RrKey};

/// The RRsets of one zone. Cheap to clone: clones share everything until changed.
#[derive(Clone, Default)]
pub(crate) struct Rrsets {
    map: imbl::OrdMap<RrKey, Arc<RecordSet>>,
    /// Records (not RRsets), for the records cap and the logs.
    records: usize,
}

impl std::fmt::Debug for Rrsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rrsets")
            .field("rrsets", &self.map.len())
            .field("records", &self.records)
            .finish()
    }
}

/// The key of `name`'s RRset of `rtype`.
pub(crate) fn key(name: &Name, rtype: RecordType) -> RrKey {
    RrKey::new(LowerName::from(name), rtype)
}

/// One RRset holding `records` (all of one owner and type), built the way
/// hickory's own zone loading builds it.
fn rrset(name: &Name, rtype: RecordType, records: Vec<Record>) -> Arc<RecordSet> {
    let ttl = records.first().map_or(0, |r| r.ttl);
    let mut set = RecordSet::with_ttl(name.clone(), rtype, ttl);
    for record in records {
        set.insert(record, 0);
    }
    Arc::new(set)
}

impl Rrsets {
    /// Groups records into RRsets (the first record of a set names its owner's case).
    pub(crate) fn from_records(records: impl IntoIterator<Item = Record>) -> Self {
        let mut grouped: std::collections::BTreeMap<RrKey, Vec<Record>> = Default::default();
        for record in records {
            grouped
                .entry(key(&record.name, record.record_type()))
                .or_default()
                .push(record);
        }
        let mut out = Self::default();
        for (key, records) in grouped {
            out.set(key, records);
        }
        out
    }

    /// The RRset of `name` and `rtype`, if any.
    pub(crate) fn get(&self, key: &RrKey) -> Option<&Arc<RecordSet>> {
        self.map.get(key)
    }

    /// Every RRset at `name`, by type: an O(log n) range of the map.
    pub(crate) fn at(&self, name: &Name) -> impl Iterator<Item = &Arc<RecordSet>> {
        let name = LowerName::from(name);
        let first = RrKey::new(name.clone(), RecordType::from(u16::MIN));
        let last = RrKey::new(name, RecordType::from(u16::MAX));
        self.map.range(first..=last).map(|(_, set)| set)
    }

    /// Every record at `name`.
    pub(crate) fn records_at(&self, name: &Name) -> impl Iterator<Item = &Record> {
        self.at(name).flat_map(|set| set.records_without_rrsigs())
    }

    /// Whether `name` is a node: it has records, or names below it do (an
    /// empty non-terminal, RFC 8020). Names below `name` sort right after it, so
    /// the first key at or after it says.
    pub(crate) fn is_node(&self, name: &Name) -> bool {
        let name = LowerName::from(name);
        let first = RrKey::new(name.clone(), RecordType::from(u16::MIN));
        self.map
            .get_next(&first)
            .is_some_and(|(key, _)| name.zone_of(&key.name))
    }

    /// Replaces the RRset at `key` with `records`; none removes it.
    pub(crate) fn set(&mut self, key: RrKey, records: Vec<Record>) {
        let old = match records.first() {
            None => self.map.remove(&key),
            Some(first) => {
                let name = first.name.clone();
                let set = rrset(&name, key.record_type, records);
                self.records += set.records_count();
                self.map.insert(key, set)
            }
        };
        if let Some(old) = old {
            self.records -= old.records_count();
        }
    }

    /// Every RRset, in canonical order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&RrKey, &Arc<RecordSet>)> {
        self.map.iter()
    }

    /// Every record, in canonical order.
    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.map
            .values()
            .flat_map(|set| set.records_without_rrsigs())
    }

    /// How many records (not RRsets).
    pub(crate) fn len(&self) -> usize {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use hickory_server::proto::rr::RData;
    use hickory_server::proto::rr::rdata::A;

    use super::*;

    fn a(name: &str) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            60,
            RData::A(A::new(192, 0, 2, 1)),
        )
    }

    #[test]
    fn nodes_include_empty_non_terminals_and_nothing_beside_them() {
        let sets = Rrsets::from_records([a("x.b.example."), a("ba.example."), a("example.")]);
        let node = |n: &str| sets.is_node(&Name::from_ascii(n).unwrap());
        assert!(node("example."));
        assert!(node("B.example."), "an empty non-terminal, in any case");
        assert!(node("x.b.example."));
        assert!(node("ba.example."));
        assert!(!node("a.example."));
        assert!(!node("c.example."));
        assert!(!node("y.b.example."));
        assert!(!node("b.ba.example."));
        assert_eq!(sets.len(), 3);
    }

    #[test]
    fn a_change_shares_every_rrset_it_does_not_touch() {
        let before = Rrsets::from_records((0..100).map(|i| a(&format!("h{i}.example."))));
        let mut after = before.clone();
        let touched = key(&Name::from_ascii("h7.example.").unwrap(), RecordType::A);
        after.set(touched.clone(), Vec::new());
        assert_eq!(after.len(), 99);
        assert_eq!(before.len(), 100, "the old version is untouched");
        for (key, set) in before.iter() {
            match after.get(key) {
                Some(kept) => assert!(Arc::ptr_eq(set, kept), "{key:?} was copied"),
                None => assert_eq!(*key, touched),
            }
        }
    }
}
