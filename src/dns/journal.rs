//! Keeps every zone equal to its file plus the changes made since, across
//! restarts, reloads and `kill -9`.
//!
//! The rule when both the file and the journal changed is Knot's
//! `zonefile-load: difference`: the journal holds the changes made by UPDATE
//! (and the fixture API); when the user edits the zone file, the difference
//! between the file as last seen and the file now is applied as one more change
//! on top, with a new serial. Nothing is lost silently: an UPDATE's record stays
//! unless the file's edit removes that very record, and a record the file adds
//! is added even if an UPDATE deleted it before.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_server::proto::rr::{RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable};

use super::rrsets::Rrsets;
use super::update;
use super::{Zone, Zones};
use crate::db::Db;
use crate::db::journal::{JournalEntry, ZoneBase};

/// Who made a change, as its journal entry says: the name the live view shows
/// (the TSIG key's, `api`, or `zone file`) and, for a change that came over the
/// network, the client's address.
#[derive(Debug, Clone)]
pub(crate) struct Author {
    pub(crate) by: String,
    pub(crate) from: Option<SocketAddr>,
}

/// The journal of every zone, in the database. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Journal {
    db: Db,
    /// Held by every change (UPDATE, reload): one at a time, so each is computed
    /// from the zone the previous one left.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// The zones known to have a base in the database, so an update writes
    /// only its own entry, not the whole zone again.
    based: Arc<std::sync::Mutex<HashSet<String>>>,
}

/// Records as wire bytes, the journal's form.
fn encode<'a>(records: impl IntoIterator<Item = &'a Record>) -> Vec<Vec<u8>> {
    records
        .into_iter()
        .filter_map(|r| r.to_bytes().ok())
        .collect()
}

fn decode<'a>(records: impl IntoIterator<Item = &'a Vec<u8>>) -> Vec<Record> {
    records
        .into_iter()
        .filter_map(|bytes| Record::from_bytes(bytes).ok())
        .collect()
}

/// A zone's records as wire bytes, in a set: replaying an entry or comparing
/// two versions costs O(log n) per record, never O(n) per record.
type Wire = BTreeSet<Vec<u8>>;

fn soa_in(records: &Wire) -> Option<(Vec<u8>, Record)> {
    records.iter().find_map(|bytes| {
        Record::from_bytes(bytes)
            .ok()
            .filter(|r| r.record_type() == RecordType::SOA)
            .map(|r| (bytes.clone(), r))
    })
}

fn serial_of(records: &Wire) -> Option<u32> {
    match soa_in(records)?.1.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// Applies one journal entry: its removed records out, its added records in.
fn replay(records: &mut Wire, entry: &JournalEntry) {
    for record in &entry.removed {
        records.remove(record);
    }
    records.extend(entry.added.iter().cloned());
}

/// What changed from `before` to `after`, as the journal stores it.
fn difference(before: &Wire, after: &Wire) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    (
        before.difference(after).cloned().collect(),
        after.difference(before).cloned().collect(),
    )
}

fn now() -> u64 {
    super::tsig::now()
}

impl Journal {
    pub(crate) fn new(db: Db) -> Self {
        Self {
            db,
            lock: Arc::new(tokio::sync::Mutex::new(())),
            based: Arc::default(),
        }
    }

    /// Taken around every change to the zones.
    pub(crate) async fn lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    fn is_based(&self, zone: &str) -> bool {
        self.based
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(zone)
    }

    fn mark_based(&self, zone: &str) {
        self.based
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(zone.to_string());
    }

    /// Journals one change to `zone` (the caller holds [`Journal::lock`]);
    /// returns once it is durable. Costs what the change touched, except for
    /// a zone never synced, which gets its base (the whole zone) first.
    pub(crate) async fn record(
        &self,
        zone: &str,
        before: &Zone,
        change: &update::Change,
        author: Author,
    ) -> anyhow::Result<()> {
        let entry = JournalEntry {
            serial_from: change.serial_from,
            serial_to: change.serial_to,
            removed: encode(&change.removed),
            added: encode(&change.added),
            at: now(),
            by: author.by,
            from: author.from.map(|a| a.to_string()),
        };
        let base = (!self.is_based(zone)).then(|| {
            let records = encode(before.records());
            ZoneBase {
                file_records: records.clone(),
                records,
                file_digest: before.digest(),
            }
        });
        self.db
            .journal_append(zone.to_string(), Some(entry), base, true)
            .await?;
        self.mark_based(zone);
        Ok(())
    }

    /// The answer to an IXFR from `theirs` (RFC 1995 §4): the current SOA, then
    /// for each change since, the old SOA and the records removed, the new SOA
    /// and the records added, and the current SOA again. `None` when the journal
    /// does not reach back to `theirs` (compacted, or a serial it never had):
    /// the caller then sends the whole zone.
    pub(crate) async fn ixfr(
        &self,
        zone: &str,
        theirs: u32,
        current: &Record,
    ) -> Option<Vec<Record>> {
        let (_, entries) = self.db.zone_journal(zone.to_string(), false).await.ok()?;
        let start = entries.iter().position(|e| e.serial_from == theirs)?;
        let mut answer = vec![current.clone()];
        let mut expected = theirs;
        for entry in &entries[start..] {
            if entry.serial_from != expected {
                return None;
            }
            let removed = decode(&entry.removed);
            let added = decode(&entry.added);
            let soa = |list: &[Record]| {
                list.iter()
                    .find(|r| r.record_type() == RecordType::SOA)
                    .cloned()
            };
            let (old_soa, new_soa) = (soa(&removed)?, soa(&added)?);
            answer.push(old_soa);
            answer.extend(
                removed
                    .into_iter()
                    .filter(|r| r.record_type() != RecordType::SOA),
            );
            answer.push(new_soa);
            answer.extend(
                added
                    .into_iter()
                    .filter(|r| r.record_type() != RecordType::SOA),
            );
            expected = entry.serial_to;
        }
        let RData::SOA(now) = &current.data else {
            return None;
        };
        if expected != now.serial {
            return None;
        }
        answer.push(current.clone());
        Some(answer)
    }

    /// Brings every zone to its file plus its journal, after a start or a
    /// reload (the caller holds [`Journal::lock`]). A zone whose file changed
    /// since it was last seen gets the file's edits as one more journaled change.
    pub(crate) async fn sync(&self, zones: &Zones) -> anyhow::Result<()> {
        let set = zones.snapshot();
        for zone in set.zones.values() {
            let name = zone.origin().to_string();
            let (base, entries) = self.db.zone_journal(name.clone(), true).await?;
            let Some(base) = base else {
                let records = encode(zone.records());
                let base = ZoneBase {
                    file_records: records.clone(),
                    records,
                    file_digest: zone.digest(),
                };
                self.db
                    .journal_append(name.clone(), None, Some(base), false)
                    .await?;
                self.mark_based(&name);
                continue;
            };
            self.mark_based(&name);
            let mut current: Wire = base.records.iter().cloned().collect();
            for entry in &entries {
                replay(&mut current, entry);
            }
            let journal_serial = serial_of(&current).unwrap_or(zone.serial());
            if zone.digest() == base.file_digest && zone.serial() == journal_serial {
                continue; // Already file + journal.
            }
            if zone.digest() != base.file_digest {
                let file_old: Wire = base.file_records.iter().cloned().collect();
                let file_new: Wire = encode(zone.records()).into_iter().collect();
                let before = current.clone();
                apply_file_edit(&mut current, &file_old, &file_new);
                let (removed, added) = difference(&before, &current);
                let entry = (!removed.is_empty() || !added.is_empty()).then(|| JournalEntry {
                    serial_from: serial_of(&before).unwrap_or(0),
                    serial_to: serial_of(&current).unwrap_or(0),
                    removed,
                    added,
                    at: now(),
                    by: "zone file".into(),
                    from: None,
                });
                let new_base = ZoneBase {
                    records: base.records.clone(),
                    file_digest: zone.digest(),
                    file_records: file_new.into_iter().collect(),
                };
                if let Some(entry) = &entry {
                    tracing::info!(
                        "zone {name}: the file's edits applied on top of {} journaled changes: serial {}",
                        entries.len(),
                        entry.serial_to
                    );
                }
                self.db
                    .journal_append(name.clone(), entry, Some(new_base), false)
                    .await?;
            }
            zones.replace_zone(zone.origin(), Rrsets::from_records(decode(&current)))?;
        }
        Ok(())
    }
}

/// The file's edits (old file → new file) applied to the current zone. The SOA
/// is special: its fields come from the new file, and its serial is the file's
/// when that is newer, else one more than the current one (RFC 1982).
fn apply_file_edit(current: &mut Wire, file_old: &Wire, file_new: &Wire) {
    let old_soa = soa_in(current);
    let file_soa = soa_in(file_new);
    let not_soa =
        |r: &&Vec<u8>| Record::from_bytes(r).is_ok_and(|r| r.record_type() != RecordType::SOA);
    for removed in file_old.difference(file_new).filter(not_soa) {
        current.remove(removed);
    }
    current.extend(file_new.difference(file_old).filter(not_soa).cloned());
    if let (Some((old_bytes, old)), Some((_, file_soa))) = (old_soa, file_soa)
        && let (RData::SOA(old_data), RData::SOA(file_data)) = (&old.data, &file_soa.data)
    {
        let mut soa = file_soa.clone();
        if let RData::SOA(data) = &mut soa.data {
            data.serial = if super::engine::serial_newer(file_data.serial, old_data.serial) {
                file_data.serial
            } else {
                old_data.serial.wrapping_add(1)
            };
        }
        if let Ok(bytes) = soa.to_bytes() {
            current.remove(&old_bytes);
            current.insert(bytes);
        }
    }
}

/// The database in `data` and a runtime to read it with, for the commands
/// that work on a stopped onebox's journal (opening it takes the data folder's
/// lock, so a running onebox makes them fail with a clear message).
fn offline(data: &std::path::Path) -> anyhow::Result<(Db, tokio::runtime::Runtime)> {
    use anyhow::Context as _;
    let db = Db::open(data)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    Ok((db, runtime))
}

/// `onebox zone export ZONE`: the zone as onebox would serve it (its file plus
/// the journal), as a master file. Opens the database, so the server must be
/// stopped; a file edited since it last ran is journaled now, as it would be
/// at the next start.
pub(crate) fn export(
    zone: &str,
    zones_dir: &std::path::Path,
    data: &std::path::Path,
) -> anyhow::Result<String> {
    let zones = Zones::load(zones_dir, false)?;
    let (db, runtime) = offline(data)?;
    let journal = Journal::new(db.clone());
    runtime.block_on(journal.sync(&zones))?;
    db.close();
    let wanted = zone.trim_end_matches('.').to_ascii_lowercase();
    let set = zones.snapshot();
    let Some(found) = set.zones.values().find(|z| {
        z.origin()
            .to_string()
            .trim_end_matches('.')
            .to_ascii_lowercase()
            == wanted
    }) else {
        anyhow::bail!(
            "no zone {zone} in {}: the zones are {}",
            zones_dir.display(),
            zones.names().join(", ")
        );
    };
    let mut out = format!(
        "; {} as served by onebox: its file plus the journaled changes\n$ORIGIN {}\n",
        found.origin(),
        found.origin()
    );
    // A transfer's order: the SOA first, as every master-file reader expects,
    // then the rest; not the closing SOA.
    let records = found.transfer();
    for record in &records[..records.len().saturating_sub(1)] {
        out.push_str(&presentation(record));
        out.push('\n');
    }
    Ok(out)
}

/// One journal entry as `onebox zone log` shows it: the records in master-file
/// form, the SOA left out (the serials say it).
#[derive(serde::Serialize)]
struct Change {
    serial_from: u32,
    serial_to: u32,
    at: String,
    by: String,
    from: Option<String>,
    removed: Vec<String>,
    added: Vec<String>,
}

/// `onebox zone log ZONE`: the zone's journal, oldest first, as text or JSON.
/// Only reads: entries folded into the base by compaction are no longer there,
/// and a file edited since onebox last ran shows up after its next start.
pub(crate) fn log(zone: &str, data: &std::path::Path, json: bool) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    // Db::open would make an empty database; a wrong folder deserves an error.
    if !data.join(crate::db::DB_FILE).is_file() {
        anyhow::bail!(
            "no database in {}: onebox has not run with this data folder",
            data.display()
        );
    }
    let name = format!("{}.", zone.trim_end_matches('.').to_ascii_lowercase());
    let (db, runtime) = offline(data)?;
    let read = runtime.block_on(db.zone_journal(name.clone(), true));
    db.close();
    let (base, entries) = read?;
    if base.is_none() {
        anyhow::bail!(
            "no journal for zone {name} in {}: onebox has not served it with this data folder",
            data.display()
        );
    }
    let shown = |records: &[Vec<u8>]| -> Vec<String> {
        decode(records)
            .iter()
            .filter(|r| r.record_type() != RecordType::SOA)
            .map(presentation)
            .collect()
    };
    let changes: Vec<Change> = entries
        .into_iter()
        .map(|e| Change {
            serial_from: e.serial_from,
            serial_to: e.serial_to,
            at: crate::live::rfc3339(e.at.saturating_mul(1000)),
            removed: shown(&e.removed),
            added: shown(&e.added),
            by: e.by,
            from: e.from,
        })
        .collect();
    if json {
        let mut line = serde_json::json!({ "zone": name, "changes": changes }).to_string();
        line.push('\n');
        return Ok(line);
    }
    let mut out = String::new();
    for change in &changes {
        let from = change
            .from
            .as_deref()
            .map(|f| format!(" from {f}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "serial {} -> {}  {}  {}{from}",
            change.serial_from, change.serial_to, change.at, change.by
        );
        for record in &change.removed {
            let _ = writeln!(out, "  - {record}");
        }
        for record in &change.added {
            let _ = writeln!(out, "  + {record}");
        }
    }
    Ok(out)
}

/// A record in master-file form. hickory's `Display` is right for most types but
/// prints TXT strings bare and run together, so TXT is written here: each
/// string quoted, `"` and `\\` escaped, other bytes outside printable ASCII as
/// `\\DDD` (RFC 1035 §5.1).
fn presentation(record: &Record) -> String {
    let RData::TXT(txt) = &record.data else {
        return record.to_string();
    };
    let strings: Vec<String> = txt
        .txt_data
        .iter()
        .map(|bytes| {
            let mut text = String::from("\"");
            for &b in bytes.iter() {
                match b {
                    b'"' | b'\\' => {
                        text.push('\\');
                        text.push(char::from(b));
                    }
                    0x20..=0x7E => text.push(char::from(b)),
                    _ => text.push_str(&format!("\\{b:03}")),
                }
            }
            text.push('"');
            text
        })
        .collect();
    format!(
        "{} {} {} TXT {}",
        record.name,
        record.ttl,
        record.dns_class,
        strings.join(" ")
    )
}
