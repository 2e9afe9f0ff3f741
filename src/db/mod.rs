//! The database box: redb, embedded and ACID, one file in the data folder.
//!
//! Every write goes through one writer thread ([`writer`]) that gathers the write
//! requests waiting at that moment into a single durable transaction and answers
//! each caller only after `commit()` has returned: a request is acknowledged only
//! when its data is on disk, and 32 posters waiting together cost one fsync, not 32.
//! Visit counters take a shorter road to the disk, a small log of their own
//! ([`visits`]), and join redb with the next other write.
//! Reads run on tokio's blocking pool, each in its own read transaction (redb's
//! MVCC lets them run alongside the writer). redb is synchronous, so no call here
//! ever runs on an async worker thread.
//!
//! PostgreSQL ([`postgres`]) is the second backend, for sites that outgrow one
//! box; [`Backend`] picks one from `--db`'s scheme, and the rest of onebox only
//! sees the [`Store`] trait.

pub(crate) mod journal;
mod lock;
mod model;
mod postgres;
mod store;
mod visits;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use redb::backends::InMemoryBackend;
use redb::{Database, ReadTransaction, ReadableDatabase, WriteTransaction};

pub(crate) use model::{NewPost, Post, Session, User, UserCreated};
pub(crate) use store::{Dump, Store};

use lock::DirLock;
use model::{META, SCHEMA_VERSION};

/// Which database to use, chosen by the scheme of `--db` (as Atuin does):
/// `postgres://…` (or `postgresql://…`) is PostgreSQL, `redb:DIR` is the embedded
/// database in DIR, and no `--db` at all keeps `--data`/`--ephemeral`'s redb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Backend {
    /// redb in this folder (`DIR/onebox.redb`).
    Redb(PathBuf),
    /// redb in memory (`--ephemeral`).
    Memory,
    /// A PostgreSQL connection URL, libpq style (multi-host, `sslmode`, …).
    Postgres(String),
}

impl Backend {
    /// Reads a `--db` value.
    pub(crate) fn parse(spec: &str) -> anyhow::Result<Self> {
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            Ok(Backend::Postgres(spec.to_string()))
        } else if let Some(path) = spec.strip_prefix("redb:") {
            if path.is_empty() {
                bail!("--db redb: needs a folder, as in redb:data");
            }
            Ok(Backend::Redb(PathBuf::from(path)))
        } else {
            bail!(
                "unknown database {:?}: use postgres://USER@HOST/DB or redb:DIR",
                postgres::redact(spec)
            )
        }
    }

    /// Opens the database. PostgreSQL is connected to and migrated here, so a
    /// wrong URL or password stops the start with a clear message.
    pub(crate) async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Backend::Redb(dir) => Arc::new(Db::open(dir)?),
            Backend::Memory => Arc::new(Db::in_memory()?),
            Backend::Postgres(url) => Arc::new(postgres::Pg::connect(url).await?),
        })
    }
}

/// The database file inside `--data DIR`.
pub(crate) const DB_FILE: &str = "onebox.redb";

/// A failure the caller cannot fix by retrying differently: the storage layer broke
/// or the database is shutting down. The web layer turns it into a 500/503.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum DbError {
    #[error("database error: {0}")]
    Storage(String),
    #[error("a stored row could not be decoded: {0}")]
    Corrupt(String),
    #[error("the database is shutting down")]
    Closed,
    /// The disk holding the database has no room: writes wait for space, reads go on.
    #[error("the disk holding the database is full")]
    Full,
    /// A database server (PostgreSQL) could not be reached or did not answer in
    /// time: the request may succeed if retried, so the app answers 503.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
}

impl From<redb::Error> for DbError {
    fn from(e: redb::Error) -> Self {
        DbError::Storage(e.to_string())
    }
}

/// The site's database. Cheap to clone: every clone shares one redb handle and one
/// writer thread.
#[derive(Clone)]
pub(crate) struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    redb: Arc<Database>,
    writer: writer::Writer,
    /// Where the data lives, for messages: the file path, or "memory".
    location: String,
    /// Bumped after every write that may change the posts: readers that keep a
    /// rendered board compare it to know theirs is still the database's. Only
    /// this process writes the file (the folder lock), so no change goes unseen.
    posts_version: AtomicU64,
    /// Held for as long as the database is open; released by the kernel even on `kill -9`.
    _lock: Option<DirLock>,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl Db {
    /// Opens (or creates) `DIR/onebox.redb`, refusing a data folder another onebox
    /// is using and a file that is not ours or is from a newer onebox.
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create data dir {}", dir.display()))?;
        let lock = DirLock::acquire(dir)?;
        let path = dir.join(DB_FILE);
        if !looks_like_redb(&path)? {
            bail!(
                "{} is not a onebox database (not a redb file)",
                path.display()
            );
        }
        let redb = match Database::builder().create(&path) {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => bail!(
                "database file {} is already open in another process",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("failed to open {}", path.display())),
        };
        Self::start(
            redb,
            path.display().to_string(),
            Some(lock),
            Some(dir.to_path_buf()),
        )
    }

    /// A database that lives only in memory: for test fixtures and parallel runs.
    pub(crate) fn in_memory() -> anyhow::Result<Self> {
        let redb = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .context("failed to create the in-memory database")?;
        Self::start(redb, "memory".into(), None, None)
    }

    fn start(
        redb: Database,
        location: String,
        lock: Option<DirLock>,
        dir: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Self> {
        model::check_or_init(&redb).map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
        let visits = match &dir {
            Some(dir) => visits::Visits::open(&redb, dir)?,
            None => visits::Visits::in_memory(),
        };
        let redb = Arc::new(redb);
        let writer = writer::Writer::start(redb.clone(), dir, visits)?;
        tracing::info!("db: {location} (schema {SCHEMA_VERSION})");
        Ok(Self {
            inner: Arc::new(Inner {
                redb,
                writer,
                location,
                posts_version: AtomicU64::new(0),
                _lock: lock,
            }),
        })
    }

    /// Stops the writer after the writes already queued are committed. The file
    /// itself closes when the last clone is dropped.
    pub(crate) fn close(self) {
        self.inner.writer.stop();
        let (transactions, requests) = self.write_stats();
        tracing::info!(
            "db: closed {} ({requests} writes committed in {transactions} transactions)",
            self.inner.location
        );
    }

    /// Runs `f` in a read transaction on the blocking pool.
    pub(crate) async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<R, DbError> + Send + 'static,
    {
        let redb = self.inner.redb.clone();
        tokio::task::spawn_blocking(move || {
            let tx = redb
                .begin_read()
                .map_err(|e| DbError::Storage(e.to_string()))?;
            f(&tx)
        })
        .await
        .map_err(|e| DbError::Storage(format!("read task failed: {e}")))?
    }

    /// Runs `f` in a read transaction right here, on the caller's thread: for point
    /// lookups by key (a session per authenticated request), where handing the work
    /// to the blocking pool and back costs two thread wake-ups, far more than the
    /// lookup itself (a few B-tree pages, held in redb's cache).
    pub(crate) fn read_here<R, F>(&self, f: F) -> Result<R, DbError>
    where
        F: FnOnce(&ReadTransaction) -> Result<R, DbError>,
    {
        let tx = self
            .inner
            .redb
            .begin_read()
            .map_err(|e| DbError::Storage(e.to_string()))?;
        f(&tx)
    }

    /// Runs `f` inside the next group-committed write transaction and returns its
    /// result once that transaction is durably committed. If anything in the batch
    /// fails, nothing in it is committed and every caller gets an error.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R, DbError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, DbError> + Send + 'static,
    {
        self.inner.writer.submit(f).await
    }

    /// Waits until redb holds every visit counted so far (a write of nothing
    /// folds the visit log): for reads of the counters table.
    pub(crate) async fn settle(&self) -> Result<(), DbError> {
        self.write(|_| Ok(())).await
    }

    /// How many write transactions and write requests the writer has committed:
    /// requests / transactions is the group-commit batching factor.
    pub(crate) fn write_stats(&self) -> (u64, u64) {
        self.inner.writer.stats()
    }

    /// The posts' version: it changes whenever a post may have been written.
    pub(crate) fn posts_version(&self) -> u64 {
        self.inner.posts_version.load(Ordering::Acquire)
    }

    /// Called once a write that touches the posts has finished, committed or not
    /// (a spurious bump only costs a reader one re-read).
    fn posts_changed(&self) {
        self.inner.posts_version.fetch_add(1, Ordering::AcqRel);
    }

    /// A real round trip through redb: read the schema version.
    pub(crate) async fn ping(&self) -> Result<u64, DbError> {
        self.read(|tx| {
            let meta = tx.open_table(META).map_err(redb::Error::from)?;
            model::schema_of(&meta)?.ok_or_else(|| DbError::Corrupt("no schema version".into()))
        })
        .await
    }

    pub(crate) fn location(&self) -> &str {
        &self.inner.location
    }
}

/// Any storage-layer failure, as the error callers see.
fn storage(e: impl fmt::Display) -> DbError {
    DbError::Storage(e.to_string())
}

/// Whether `path` is absent, empty (redb creates it) or starts with redb's magic
/// number. Checked before redb sees the file, so a stray file gets a clear message.
fn looks_like_redb(path: &Path) -> anyhow::Result<bool> {
    const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
    use std::io::Read;
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e).with_context(|| format!("failed to open {}", path.display())),
    };
    let mut head = Vec::with_capacity(MAGIC.len());
    file.by_ref()
        .take(MAGIC.len() as u64)
        .read_to_end(&mut head)
        .with_context(|| format!("failed to read {}", path.display()))?;
    Ok(head.is_empty() || head == MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        assert_eq!(
            Backend::parse("postgres://u@h/db").unwrap(),
            Backend::Postgres("postgres://u@h/db".into())
        );
        assert!(matches!(
            Backend::parse("postgresql://h1:5432,h2:5433/db?target_session_attrs=read-write"),
            Ok(Backend::Postgres(_))
        ));
        assert_eq!(
            Backend::parse("redb:data").unwrap(),
            Backend::Redb("data".into())
        );
        assert!(Backend::parse("redb:").is_err());
        let err = Backend::parse("mysql://root:hunter2@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown database"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
}
