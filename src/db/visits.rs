//! The visit counters' log: a small file beside the database that makes a
//! counted visit durable for one `fdatasync`, folded into redb now and then.
//!
//! Every home page view adds one to its host's counter and promises the new
//! count is on disk before the page is sent. Through redb, each batch of views
//! paid a copy-on-write B-tree commit with two fsyncs: 61% of the writer
//! thread's time in a profile of the home page, and the writer a quarter of the
//! server's. A counter needs far less: the new totals, written once.
//!
//! So a batch that only counts visits appends one record to `visits.log`, a
//! file of [`LOG_BYTES`] written full of zeros when it is created (overwriting
//! blocks that already exist changes no file-system metadata, so `fdatasync`
//! flushes one data block and nothing else). A record holds the new total of
//! each host the batch counted, the log's epoch, and a CRC-32 of both.
//!
//! redb stays the home of the counters. Every write transaction that commits
//! anything else first *folds* the totals counted since the last fold into the
//! `counters` table and stores the next epoch in `meta`, in the same durable
//! commit; so does a full log, and a clean shutdown. After a fold, records of
//! the old epoch are history: the log is written from its start again.
//!
//! At open, the records of the epoch redb names are replayed, in order, up to
//! the first that is torn (its CRC fails: the crash came mid-write, and that
//! batch was never answered), and folded at once. A log whose epoch redb does
//! not name (a stale file, another database's) is ignored: a database that has
//! never used a log starts at a random epoch.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::Context;
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};

use super::model::{COUNTERS, META};
use super::{DbError, storage};

/// The log's file name inside the data folder.
pub(crate) const LOG_FILE: &str = "visits.log";
/// The log's size: about 8,000 batches of one host between folds, each fold one
/// redb commit, and a quarter of a megabyte to read at start.
pub(super) const LOG_BYTES: u64 = 256 * 1024;
/// Hosts counted since the last fold, at most, before the next batch folds:
/// bounds the memory a stream of made-up `Host` names could take.
const MAX_PENDING: usize = 256;
/// `meta` key: the epoch whose log records redb does not have yet.
const EPOCH_KEY: &str = "visits_epoch";
/// A record's head: payload length (u32), CRC-32 of epoch and payload (u32),
/// epoch (u64), all little-endian.
const HEAD: usize = 16;

/// The counters' state inside the writer thread, which alone owns it.
pub(super) struct Visits {
    /// `None` for a database in memory: nothing to make durable.
    log: Option<Log>,
    /// Totals counted since the last fold, by host: what redb does not have yet.
    pending: HashMap<String, u64>,
    /// The epoch new records are written with (redb's `visits_epoch`).
    epoch: u64,
}

struct Log {
    file: File,
    /// Where the next record goes.
    end: u64,
    /// The file's size (smaller in tests, to fill it quickly).
    capacity: u64,
}

impl Visits {
    /// Counters for a database in memory: counted in memory, folded into redb
    /// with the next other write.
    pub(super) fn in_memory() -> Self {
        Self {
            log: None,
            pending: HashMap::new(),
            epoch: 0,
        }
    }

    /// Opens (or creates) `DIR/visits.log`, replays the records redb does not
    /// have yet and folds them in, so the log starts empty.
    pub(super) fn open(db: &Database, dir: &Path) -> anyhow::Result<Self> {
        Self::open_sized(db, dir, LOG_BYTES)
    }

    fn open_sized(db: &Database, dir: &Path, capacity: u64) -> anyhow::Result<Self> {
        let path = dir.join(LOG_FILE);
        let file = open_log(&path, capacity)?;
        let stored = stored_epoch(db).with_context(|| format!("{}", path.display()))?;
        let mut visits = Self {
            log: Some(Log {
                file,
                end: 0,
                capacity,
            }),
            pending: HashMap::new(),
            // Half the range: epochs only ever go up by one, so this never wraps.
            epoch: stored.unwrap_or_else(|| rand::random::<u64>() >> 1),
        };
        if stored.is_some() {
            visits
                .replay()
                .with_context(|| format!("failed to read {}", path.display()))?;
        }
        if stored.is_none() || !visits.pending.is_empty() {
            let replayed = visits.pending.len();
            let mut tx = db.begin_write().context("failed to fold the visit log")?;
            tx.set_two_phase_commit(true);
            visits
                .fold(&tx)
                .and_then(|()| tx.commit().map_err(|e| DbError::Storage(e.to_string())))
                .with_context(|| format!("failed to fold {} into the database", path.display()))?;
            visits.folded();
            if replayed > 0 {
                tracing::info!("db: {replayed} visit counter(s) recovered from the visit log");
            }
        }
        Ok(visits)
    }

    /// Reads the records of the current epoch from the log's start into
    /// `pending`, stopping at the first that is not one (zeros, an older epoch,
    /// or torn).
    fn replay(&mut self) -> std::io::Result<()> {
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let mut bytes = vec![0; log.capacity as usize];
        log.file.read_exact_at(&mut bytes, 0)?;
        let mut at = 0;
        while let Some((totals, len)) = decode(&bytes[at..], self.epoch) {
            for (host, total) in totals {
                self.pending.insert(host, total);
            }
            at += len;
        }
        log.end = at as u64;
        Ok(())
    }

    /// Whether a batch counting `hosts` can go to the log, or must go through a
    /// redb transaction (which folds first).
    pub(super) fn has_room(&self, hosts: &[&str]) -> bool {
        let mut new = 0;
        let mut bytes = HEAD;
        for (i, host) in hosts.iter().enumerate() {
            if host.len() > u8::MAX as usize {
                return false;
            }
            // Each distinct host once per record.
            if hosts[..i].contains(host) {
                continue;
            }
            bytes += 1 + host.len() + 8;
            if !self.pending.contains_key(*host) {
                new += 1;
            }
        }
        self.pending.len() + new <= MAX_PENDING
            && self
                .log
                .as_ref()
                .is_none_or(|log| log.end + bytes as u64 <= log.capacity)
    }

    /// Counts one visit for each of `hosts` and makes the new totals durable
    /// before returning them, in order. On failure nothing is counted.
    pub(super) fn count(&mut self, db: &Database, hosts: &[&str]) -> Result<Vec<u64>, DbError> {
        // Each distinct host's total before the batch, to put back on failure.
        let mut before: Vec<(&str, Option<u64>)> = Vec::new();
        let mut read: Option<ReadTransaction> = None;
        let mut totals = Vec::with_capacity(hosts.len());
        for &host in hosts {
            let total = match self.pending.get_mut(host) {
                Some(total) => {
                    if !before.iter().any(|(h, _)| *h == host) {
                        before.push((host, Some(*total)));
                    }
                    *total += 1;
                    *total
                }
                None => {
                    let stored = match stored_total(db, &mut read, host) {
                        Ok(stored) => stored,
                        Err(e) => {
                            self.restore(&before);
                            return Err(e);
                        }
                    };
                    before.push((host, None));
                    self.pending.insert(host.to_string(), stored + 1);
                    stored + 1
                }
            };
            totals.push(total);
        }
        if let Err(e) = self.append(&before) {
            // Not counted. If the record reached the disk anyway and the server
            // crashes before the next record overwrites it, these visits count
            // at the next start: a count for a page that showed an error, never
            // a lost count for a page that showed one.
            self.restore(&before);
            return Err(e);
        }
        Ok(totals)
    }

    /// Writes one record with the current totals of `hosts` and waits for it to
    /// reach the disk.
    fn append(&mut self, hosts: &[(&str, Option<u64>)]) -> Result<(), DbError> {
        let Some(log) = &mut self.log else {
            return Ok(());
        };
        let totals = hosts
            .iter()
            .map(|(host, _)| (*host, self.pending.get(*host).copied().unwrap_or(0)));
        let record = encode(totals, self.epoch);
        log.file
            .write_all_at(&record, log.end)
            .and_then(|()| log.file.sync_data())
            .map_err(|e| log_error(&e))?;
        log.end += record.len() as u64;
        Ok(())
    }

    fn restore(&mut self, before: &[(&str, Option<u64>)]) {
        for (host, total) in before {
            match total {
                Some(total) => {
                    self.pending.insert(host.to_string(), *total);
                }
                None => {
                    self.pending.remove(*host);
                }
            }
        }
    }

    /// True when redb already holds every counted visit.
    pub(super) fn is_folded(&self) -> bool {
        self.pending.is_empty() && self.log.as_ref().is_none_or(|log| log.end == 0)
    }

    /// Writes the totals counted since the last fold into `tx`, with the next
    /// epoch. Call [`Visits::folded`] once `tx` has committed.
    pub(super) fn fold(&self, tx: &WriteTransaction) -> Result<(), DbError> {
        if !self.pending.is_empty() {
            let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
            for (host, total) in &self.pending {
                counters.insert(host.as_str(), *total).map_err(storage)?;
            }
        }
        if self.log.is_some() {
            let next = self.epoch + 1;
            let mut meta = tx.open_table(META).map_err(storage)?;
            meta.insert(EPOCH_KEY, next.to_le_bytes().as_slice())
                .map_err(storage)?;
        }
        Ok(())
    }

    /// The fold committed: redb has every total, and the log starts over in the
    /// next epoch.
    pub(super) fn folded(&mut self) {
        if !self.is_folded() {
            crate::metrics::site::visit_log_fold();
        }
        self.pending.clear();
        self.epoch += 1;
        if let Some(log) = &mut self.log {
            log.end = 0;
        }
    }
}

/// Adds one visit to `host`'s counter inside a redb transaction: for a batch
/// that also writes something else, after [`Visits::fold`].
pub(super) fn count_in(tx: &WriteTransaction, host: &str) -> Result<u64, DbError> {
    let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
    let count = counters
        .get(host)
        .map_err(storage)?
        .map_or(0, |c| c.value())
        + 1;
    counters.insert(host, count).map_err(storage)?;
    Ok(count)
}

/// The epoch redb has stored, if this database has ever used a log.
fn stored_epoch(db: &Database) -> Result<Option<u64>, DbError> {
    let tx = db.begin_read().map_err(storage)?;
    let meta = tx.open_table(META).map_err(storage)?;
    let Some(value) = meta.get(EPOCH_KEY).map_err(storage)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = value
        .value()
        .try_into()
        .map_err(|_| DbError::Corrupt(format!("{EPOCH_KEY} is not 8 bytes")))?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

/// `host`'s total as redb has it, through one read transaction per batch.
fn stored_total(
    db: &Database,
    read: &mut Option<ReadTransaction>,
    host: &str,
) -> Result<u64, DbError> {
    let tx = match read {
        Some(tx) => tx,
        None => read.insert(db.begin_read().map_err(storage)?),
    };
    let counters = tx.open_table(COUNTERS).map_err(storage)?;
    Ok(counters
        .get(host)
        .map_err(storage)?
        .map_or(0, |c| c.value()))
}

/// Opens the log, creating it full of zeros (and durably named) if it is
/// missing or shorter than `capacity`.
fn open_log(path: &Path, capacity: u64) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        // Owner only, like everything in the data folder (`db migrate` opens
        // folders that `serve` never settled).
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let size = file
        .metadata()
        .with_context(|| format!("failed to read {}", path.display()))?
        .len();
    if size < capacity {
        // Real zeros, not a hole: a write into a hole allocates a block, and
        // its fdatasync then commits file-system metadata too.
        let zeros = vec![0; (capacity - size) as usize];
        file.write_all_at(&zeros, size)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("failed to create {}", path.display()))?;
        if let Some(dir) = path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("failed to sync {}", dir.display()))?;
        }
    }
    Ok(file)
}

/// One record: head, then per host its length (u8), its bytes and its total (u64).
fn encode<'a>(totals: impl Iterator<Item = (&'a str, u64)>, epoch: u64) -> Vec<u8> {
    let mut record = vec![0; HEAD];
    for (host, total) in totals {
        record.push(host.len() as u8);
        record.extend_from_slice(host.as_bytes());
        record.extend_from_slice(&total.to_le_bytes());
    }
    let len = (record.len() - HEAD) as u32;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&epoch.to_le_bytes());
    crc.update(&record[HEAD..]);
    record[0..4].copy_from_slice(&len.to_le_bytes());
    record[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    record[8..16].copy_from_slice(&epoch.to_le_bytes());
    record
}

/// The record at the start of `bytes` if it is a whole one of `epoch`: its
/// totals and its length.
fn decode(bytes: &[u8], epoch: u64) -> Option<(Vec<(String, u64)>, usize)> {
    let head = bytes.get(..HEAD)?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let at = u64::from_le_bytes(head[8..16].try_into().ok()?);
    if len == 0 || at != epoch {
        return None;
    }
    let payload = bytes.get(HEAD..HEAD.checked_add(len)?)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&epoch.to_le_bytes());
    hasher.update(payload);
    if hasher.finalize() != crc {
        return None;
    }
    let mut totals = Vec::new();
    let mut rest = payload;
    while let Some((&n, tail)) = rest.split_first() {
        let host = std::str::from_utf8(tail.get(..n as usize)?).ok()?;
        let total = u64::from_le_bytes(tail.get(n as usize..n as usize + 8)?.try_into().ok()?);
        totals.push((host.to_string(), total));
        rest = &tail[n as usize + 8..];
    }
    Some((totals, HEAD + len))
}

/// ENOSPC and EDQUOT become [`DbError::Full`], as for a commit.
fn log_error(e: &std::io::Error) -> DbError {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => DbError::Full,
        _ => DbError::Storage(format!("visit log write failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::writer::Writer;
    use std::sync::Arc;

    /// A onebox database file in a fresh folder (removed on drop).
    fn database() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("onebox.redb")).unwrap();
        super::super::model::check_or_init(&db).unwrap();
        (dir, db)
    }

    /// redb's counters, as a sorted list.
    fn stored(db: &Database) -> Vec<(String, u64)> {
        let tx = db.begin_read().unwrap();
        let table = tx.open_table(COUNTERS).unwrap();
        let mut rows: Vec<_> = table
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().to_string(), v.value())
            })
            .collect();
        rows.sort();
        rows
    }

    fn row(host: &str, n: u64) -> (String, u64) {
        (host.to_string(), n)
    }

    /// A crash leaves the counts in the log only; the next open puts them in redb.
    #[test]
    fn counts_in_the_log_reach_redb_at_the_next_open() {
        let (dir, db) = database();
        let mut visits = Visits::open(&db, dir.path()).unwrap();
        assert_eq!(visits.count(&db, &["a", "a", "b"]).unwrap(), [1, 2, 1]);
        assert_eq!(visits.count(&db, &["a"]).unwrap(), [3]);
        // The crash: no fold, the writer never shut down.
        drop(visits);
        assert_eq!(stored(&db), [], "nothing folded yet");
        let visits = Visits::open(&db, dir.path()).unwrap();
        assert_eq!(stored(&db), [row("a", 3), row("b", 1)]);
        assert!(visits.is_folded(), "the log starts empty after the fold");
        // And again: the folded records are history, not replayed twice.
        drop(visits);
        let mut visits = Visits::open(&db, dir.path()).unwrap();
        assert_eq!(stored(&db), [row("a", 3), row("b", 1)]);
        assert_eq!(visits.count(&db, &["a"]).unwrap(), [4]);
    }

    /// A record torn by the crash (its batch never answered) is not counted; the
    /// ones before it are.
    #[test]
    fn a_torn_record_is_not_counted() {
        let (dir, db) = database();
        let mut visits = Visits::open(&db, dir.path()).unwrap();
        visits.count(&db, &["a"]).unwrap();
        let first = visits.log.as_ref().unwrap().end;
        visits.count(&db, &["a"]).unwrap();
        drop(visits);
        let log = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(LOG_FILE))
            .unwrap();
        // The last byte of the second record's total.
        let end = first + (HEAD + 1 + 1 + 8) as u64;
        log.write_all_at(&[0xff], end - 1).unwrap();
        Visits::open(&db, dir.path()).unwrap();
        assert_eq!(stored(&db), [row("a", 1)]);
    }

    /// A log beside a database that never wrote it (copied, or left behind by a
    /// deleted database) is not replayed into it.
    #[test]
    fn another_databases_log_is_ignored() {
        let (dir, db) = database();
        let mut visits = Visits::open(&db, dir.path()).unwrap();
        visits.count(&db, &["a", "a"]).unwrap();
        drop(visits);
        let (other, fresh) = database();
        std::fs::copy(dir.path().join(LOG_FILE), other.path().join(LOG_FILE)).unwrap();
        Visits::open(&fresh, other.path()).unwrap();
        assert_eq!(stored(&fresh), []);
    }

    /// Through the writer: a full log folds into redb and starts over, a write
    /// transaction sees every count so far, and a clean stop leaves them all in
    /// redb.
    #[test]
    fn the_writer_folds_when_the_log_fills_and_before_other_writes() {
        let (dir, db) = database();
        // Room for four records of one short host.
        let visits = Visits::open_sized(&db, dir.path(), 4 * (HEAD as u64 + 10)).unwrap();
        let db = Arc::new(db);
        let writer = Writer::start(db.clone(), Some(dir.path().to_path_buf()), visits).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for i in 1..=10 {
                assert_eq!(writer.count_visit("a".into()).await.unwrap(), i);
            }
            // 10 visits, 4 to a log: at least two folds.
            assert!(stored(&db).first().is_some_and(|(_, n)| *n >= 8));
            let seen = writer
                .submit(|tx| {
                    let counters = tx.open_table(COUNTERS).map_err(storage)?;
                    Ok(counters.get("a").map_err(storage)?.map(|v| v.value()))
                })
                .await
                .unwrap();
            assert_eq!(seen, Some(10), "a write sees every count");
            assert_eq!(writer.count_visit("a".into()).await.unwrap(), 11);
        });
        writer.stop();
        assert_eq!(stored(&db), [row("a", 11)]);
    }

    /// Visits to more hosts than [`MAX_PENDING`], all at once, are folded into
    /// redb before the last of them is counted: the hosts waiting for a fold,
    /// held in memory, stay bounded whatever `Host` names a burst brings.
    #[test]
    fn a_burst_of_many_hosts_is_folded_before_it_outgrows_the_bound() {
        let (dir, db) = database();
        let visits = Visits::open(&db, dir.path()).unwrap();
        let db = Arc::new(db);
        let writer =
            Arc::new(Writer::start(db.clone(), Some(dir.path().to_path_buf()), visits).unwrap());
        let hosts = MAX_PENDING + 44;
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let tasks: Vec<_> = (0..hosts)
                    .map(|i| {
                        let writer = writer.clone();
                        tokio::spawn(async move { writer.count_visit(format!("h{i}.test")).await })
                    })
                    .collect();
                for task in tasks {
                    assert_eq!(task.await.unwrap().unwrap(), 1);
                }
            });
        // Before the stop's own fold: the bound forced at least one already.
        let folded = stored(&db).len();
        assert!(folded >= hosts - MAX_PENDING, "{folded} hosts folded");
        writer.stop();
        assert_eq!(stored(&db).len(), hosts);
    }

    /// What `decode` refuses: a record of another epoch, a bad checksum, zeros.
    #[test]
    fn decode_takes_only_whole_records_of_its_epoch() {
        let record = encode([("foobar.com", 7), ("www.foobar.com", 2)].into_iter(), 5);
        let (totals, len) = decode(&record, 5).unwrap();
        assert_eq!(totals, [row("foobar.com", 7), row("www.foobar.com", 2)]);
        assert_eq!(len, record.len());
        assert!(decode(&record, 6).is_none());
        assert!(decode(&record[..record.len() - 1], 5).is_none());
        assert!(decode(&[0; 64], 0).is_none());
        let mut torn = record.clone();
        torn[HEAD + 3] ^= 1;
        assert!(decode(&torn, 5).is_none());
    }
}
