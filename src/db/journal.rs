//! The zone journal: the changes made to each DNS zone while onebox runs, in
//! the same redb file as everything else.
//!
//! The database stores bytes and knows nothing of DNS: a record is opaque wire
//! bytes, a serial a number. The DNS layer decides what they mean. Each entry is
//! written in its own durable transaction before the UPDATE is answered, the
//! same promise as a post.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{Db, DbError, storage};

/// (zone, sequence number 1, 2, 3, …) → one change, as JSON.
pub(crate) const JOURNAL: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("zone_journal");
/// zone → what the journal is relative to, as JSON.
pub(crate) const ZONE_BASE: TableDefinition<&str, &[u8]> = TableDefinition::new("zone_base");

/// One change to a zone: records out, records in, and the serials around it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct JournalEntry {
    pub(crate) serial_from: u32,
    pub(crate) serial_to: u32,
    pub(crate) removed: Vec<Vec<u8>>,
    pub(crate) added: Vec<Vec<u8>>,
    /// Seconds since the epoch.
    pub(crate) at: u64,
    /// Who made it, named as the live view names them: the TSIG key
    /// ("onebox-update."), "api" (the fixture API) or "zone file". (Entries
    /// written before the key was named say "update ADDRESS".)
    pub(crate) by: String,
    /// Where it came from: the client's address for UPDATE and the API; `None`
    /// for the zone file and for entries written before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) from: Option<String>,
}

/// The most entries one zone's journal holds. Past it the oldest half are
/// folded into the zone's base (their records applied to it, the entries
/// dropped), so the file stays bounded however many updates come; an IXFR from
/// a serial before the base then gets the whole zone, as RFC 1995 §4 allows.
/// Folding half at a time makes the cost of rewriting the base once per 500
/// updates, not once per update.
pub(crate) const MAX_ENTRIES: u64 = 1000;

/// Where a zone's journal starts: the records it applies to, and the zone file
/// as last seen (its digest and records), to tell when the user edited it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ZoneBase {
    pub(crate) records: Vec<Vec<u8>>,
    pub(crate) file_digest: u64,
    pub(crate) file_records: Vec<Vec<u8>>,
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, DbError> {
    serde_json::to_vec(value).map_err(storage)
}

fn unjson<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, DbError> {
    serde_json::from_slice(bytes).map_err(|e| DbError::Corrupt(e.to_string()))
}

/// Creates the journal's tables: part of a fresh file, and the migration from
/// schema 1 (which had no journal).
pub(crate) fn create_tables(tx: &WriteTransaction) -> Result<(), String> {
    tx.open_table(JOURNAL).map_err(|e| e.to_string())?;
    tx.open_table(ZONE_BASE).map_err(|e| e.to_string())?;
    Ok(())
}

impl Db {
    /// Every entry of `zone`'s journal, oldest first, and with `with_base` its
    /// base (the whole zone: an IXFR leaves it, as it needs only the entries).
    pub(crate) async fn zone_journal(
        &self,
        zone: String,
        with_base: bool,
    ) -> Result<(Option<ZoneBase>, Vec<JournalEntry>), DbError> {
        self.read(move |tx| {
            let bases = tx.open_table(ZONE_BASE).map_err(storage)?;
            let base = match bases.get(zone.as_str()).map_err(storage)? {
                Some(raw) if with_base => Some(unjson(raw.value())?),
                _ => None,
            };
            let journal = tx.open_table(JOURNAL).map_err(storage)?;
            let mut entries = Vec::new();
            for row in journal
                .range((zone.as_str(), 0)..=(zone.as_str(), u64::MAX))
                .map_err(storage)?
            {
                let (_, value) = row.map_err(storage)?;
                entries.push(unjson(value.value())?);
            }
            Ok((base, entries))
        })
        .await
    }

    /// Appends one entry to `zone`'s journal (and, when given, sets its base in
    /// the same transaction: always, or with `base_if_missing` only when the zone
    /// has none yet); returns once it is durable.
    pub(crate) async fn journal_append(
        &self,
        zone: String,
        entry: Option<JournalEntry>,
        base: Option<ZoneBase>,
        base_if_missing: bool,
    ) -> Result<(), DbError> {
        self.write(move |tx| {
            if let Some(base) = &base {
                let mut bases = tx.open_table(ZONE_BASE).map_err(storage)?;
                let present = bases.get(zone.as_str()).map_err(storage)?.is_some();
                if !(base_if_missing && present) {
                    bases
                        .insert(zone.as_str(), json(base)?.as_slice())
                        .map_err(storage)?;
                }
            }
            if let Some(entry) = &entry {
                let mut journal = tx.open_table(JOURNAL).map_err(storage)?;
                let next = match journal
                    .range((zone.as_str(), 0)..=(zone.as_str(), u64::MAX))
                    .map_err(storage)?
                    .next_back()
                {
                    Some(row) => row.map_err(storage)?.0.value().1 + 1,
                    None => 1,
                };
                journal
                    .insert((zone.as_str(), next), json(entry)?.as_slice())
                    .map_err(storage)?;
                let first = match journal
                    .range((zone.as_str(), 0)..=(zone.as_str(), u64::MAX))
                    .map_err(storage)?
                    .next()
                {
                    Some(row) => row.map_err(storage)?.0.value().1,
                    None => next,
                };
                if next - first + 1 > MAX_ENTRIES {
                    let mut bases = tx.open_table(ZONE_BASE).map_err(storage)?;
                    let base: Option<ZoneBase> = match bases.get(zone.as_str()).map_err(storage)? {
                        Some(raw) => Some(unjson(raw.value())?),
                        None => None,
                    };
                    // Without a base there is nothing to fold into: keep the entries.
                    if let Some(mut base) = base {
                        let last = next - MAX_ENTRIES / 2;
                        for seq in first..=last {
                            let Some(raw) =
                                journal.remove((zone.as_str(), seq)).map_err(storage)?
                            else {
                                continue;
                            };
                            fold(&mut base.records, &unjson(raw.value())?);
                        }
                        bases
                            .insert(zone.as_str(), json(&base)?.as_slice())
                            .map_err(storage)?;
                    }
                }
            }
            Ok(())
        })
        .await
    }
}

/// Applies one entry to a base's records: its removed records out, its added
/// records in (once), as the DNS layer replays it. In O(n + entry), not
/// O(n × entry): the base of a zone at the records cap holds 100,000.
fn fold(records: &mut Vec<Vec<u8>>, entry: &JournalEntry) {
    let removed: std::collections::HashSet<&Vec<u8>> = entry.removed.iter().collect();
    records.retain(|r| !removed.contains(r));
    let mut present: std::collections::HashSet<Vec<u8>> = records.iter().cloned().collect();
    for record in &entry.added {
        if present.insert(record.clone()) {
            records.push(record.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use redb::{Database, ReadableDatabase, TableHandle};

    use super::super::model::tests::set_schema;
    use super::super::model::{META, check_or_init, schema_of};
    use super::*;

    #[test]
    fn fold_applies_an_entry_to_the_base_records() {
        let mut records = vec![b"a".to_vec(), b"b".to_vec()];
        let entry = JournalEntry {
            serial_from: 1,
            serial_to: 2,
            removed: vec![b"a".to_vec()],
            added: vec![b"c".to_vec(), b"b".to_vec()],
            at: 0,
            by: "test".into(),
            from: None,
        };
        fold(&mut records, &entry);
        assert_eq!(records, [b"b".to_vec(), b"c".to_vec()]);
    }

    #[test]
    fn a_schema_1_file_gains_the_journal_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("old.redb")).unwrap();
        check_or_init(&db).unwrap();
        // Make it what schema 1 wrote: the same tables, no journal, version 1.
        let tx = db.begin_write().unwrap();
        tx.delete_table(JOURNAL).unwrap();
        tx.delete_table(ZONE_BASE).unwrap();
        set_schema(&tx, 1);
        tx.commit().unwrap();

        check_or_init(&db).unwrap();
        let tx = db.begin_read().unwrap();
        let meta = tx.open_table(META).unwrap();
        assert_eq!(schema_of(&meta).unwrap(), Some(2));
        let tables: Vec<String> = tx
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        assert!(tables.contains(&"zone_journal".to_string()), "{tables:?}");
        assert!(tables.contains(&"zone_base".to_string()), "{tables:?}");
    }
}
