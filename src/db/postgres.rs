//! The PostgreSQL backend: the same [`Store`] operations as redb, for when several
//! web nodes must share one database (`serve --db postgres://…`).
//!
//! - Connections come from a bounded pool (deadpool-postgres); every pool wait,
//!   connect and query has a deadline, so an unreachable server turns into
//!   [`DbError::Unavailable`] (503 with `Retry-After`) instead of a hung request.
//! - TLS goes through rustls with the *ring* provider, only when the URL asks for
//!   it (`sslmode=require`); `prefer` (libpq's default) stays plain TCP.
//! - libpq multi-host URLs (`host=a,b` or `postgres://a:5432,b:5433/db`) with
//!   `target_session_attrs=read-write` make new connections find the primary, so
//!   after a failover the pool heals by itself once the old connections fail.
//! - **Reads outlive the primary.** With a multi-host URL (primary first, then
//!   its streaming replicas) reads get a second, smaller pool whose connections
//!   take the first host that answers at all (`target_session_attrs=any`): the
//!   primary while it is up, so a visitor reads their own writes; the replica
//!   while it is down. So with the primary stopped the board, the posts API and
//!   logged-in sessions are still served, while writes, which only the write pool
//!   makes, answer 503 with `Retry-After` within the deadline (at once for a
//!   second after a failed connect: see [`Writes`]). Once a replica is
//!   promoted, the write pool's next connection finds it read-write and writes
//!   resume, with no restart. Read connections are retired after
//!   [`READ_CONNECTION_AGE`], so reads move back to a primary that returns. Why
//!   not one pool with `any`: its connections pinned to a replica would fail every
//!   write until they died, even with the primary back. Why not "primary pool
//!   first, replica on failure": every read during an outage would first pay a
//!   failed connection (or a connect timeout) to the dead primary.
//! - Every connection runs with `synchronous_commit=remote_apply`: a request is
//!   acknowledged only after its commit is flushed to the WAL and, when the
//!   primary has a synchronous standby (`synchronous_standby_names`), replayed
//!   there too: an acknowledged post survives the primary's loss and is visible in
//!   the replica's reads at once. Without a synchronous standby it means `on`.
//!   Concurrent commits share WAL
//!   flushes (PostgreSQL's own group commit); posts are additionally batched by
//!   [`post_writer`] (onebox's group commit, kept), because their ids must follow
//!   commit order, which serialises them on one row lock: batching makes that lock
//!   cost one commit per batch, and one statement per batch.
//! - The schema is versioned ([`MIGRATIONS`]) and brought up to date at start in
//!   one transaction; a schema newer than this binary knows is refused, never altered.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::config::{SslMode, TargetSessionAttrs};
use tokio_postgres::error::SqlState;

use super::store::{Dump, StoreFuture};
use super::{DbError, NewPost, Post, Session, Store, User, UserCreated};

/// The numbered migrations, applied in order; a migration's number is its index + 1.
/// Append only: a released migration never changes.
const MIGRATIONS: &[&str] = &[include_str!("migrations/0001_initial.sql")];
/// The schema this build reads and writes.
pub(crate) const PG_SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;
/// Two nodes starting at once must not both migrate: the first holds this
/// transaction-scoped advisory lock (an arbitrary constant, "onebox" in ASCII).
const MIGRATION_LOCK: i64 = 0x6f6e_65626f78;

/// Connections in the pool: enough for 32 concurrent posters' reads and the other
/// writes, few enough that several nodes stay under `max_connections` (100).
const POOL_SIZE: usize = 16;
/// Connections in the read pool (multi-host URLs only): reads are short, and a
/// node then holds at most 24 connections (3 nodes: 72, under the default 100).
const READ_POOL_SIZE: usize = 8;
/// A read connection older than this is closed when idle, so that reads which
/// moved to a replica during an outage come back to the primary when it returns.
const READ_CONNECTION_AGE: Duration = Duration::from_secs(30);
/// How often idle read connections are checked against [`READ_CONNECTION_AGE`].
const READ_RETIRE_EVERY: Duration = Duration::from_secs(5);
/// Connecting (TCP, TLS, authentication) must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// One operation (pool wait, its queries, its commit) must finish within this;
/// below the web server's 30 s request timeout, so the client gets a 503, not a 408.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most posts in one transaction (as the redb writer's batch).
const MAX_POST_BATCH: usize = 256;
/// Most session lookups answered by one query.
const MAX_SESSION_BATCH: usize = 256;
/// Session lookup queries in flight at once, each on its own pooled connection.
const SESSION_READERS: usize = 4;

/// The PostgreSQL store. Cheap to share: the pool and the post writer are behind
/// handles.
#[derive(Debug)]
pub(crate) struct Pg {
    /// Every write, and every read when the URL names one host.
    writes: Arc<Writes>,
    /// Reads, with a multi-host URL: any host that answers, in the URL's order.
    reads: Option<Pool>,
    posts: mpsc::Sender<PostJob>,
    sessions: mpsc::Sender<SessionJob>,
    /// "PostgreSQL 15", for the page panel and `Server-Timing`.
    name: Arc<str>,
    /// The URL without its password, for messages.
    location: String,
}

type PostJob = (NewPost, oneshot::Sender<Result<u64, DbError>>);
/// A session lookup: the token hash, the time it must be valid at, and the reply.
type SessionJob = (
    [u8; 32],
    u64,
    oneshot::Sender<Result<Option<Session>, DbError>>,
);

impl Pg {
    /// Connects to `url`, brings the schema up to date and starts the post writer.
    /// Must run inside the tokio runtime.
    pub(crate) async fn connect(url: &str) -> anyhow::Result<Self> {
        let location = redact(url);
        let mut config: tokio_postgres::Config = url
            .parse()
            .with_context(|| format!("invalid PostgreSQL URL {location}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A dead peer (a powered-off primary) is noticed by keepalives, not only
        // by the query deadline.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        // The durability promise does not depend on the server's configuration.
        let options = match config.get_options() {
            Some(existing) => format!("{existing} -c synchronous_commit=remote_apply"),
            None => "-c synchronous_commit=remote_apply".to_string(),
        };
        config.options(&options);
        if config.get_application_name().is_none() {
            config.application_name("onebox");
        }
        let reads = if config.get_hosts().len() > 1 {
            let mut any = config.clone();
            any.target_session_attrs(TargetSessionAttrs::Any);
            let reads = pool(any, READ_POOL_SIZE)?;
            tokio::spawn(retire_read_connections(reads.clone()));
            Some(reads)
        } else {
            None
        };
        let writes = Arc::new(Writes {
            pool: pool(config, POOL_SIZE)?,
            failed_at: std::sync::Mutex::new(None),
        });
        let name = migrate(&writes.pool)
            .await
            .map_err(|e| anyhow::anyhow!("{location}: {e}"))?;
        let (posts, queue) = mpsc::channel(4096);
        tokio::spawn(post_writer(writes.clone(), queue));
        // Session lookups are reads: with a replica they go where reads go, so a
        // signed-in visitor stays signed in while the primary is down.
        let session_pool = reads.clone().unwrap_or_else(|| writes.pool.clone());
        let (sessions, lookups) = mpsc::channel(4096);
        let lookups = Arc::new(tokio::sync::Mutex::new(lookups));
        for _ in 0..SESSION_READERS {
            tokio::spawn(session_reader(session_pool.clone(), lookups.clone()));
        }
        tracing::info!("db: {location} ({name}, schema {PG_SCHEMA_VERSION})");
        Ok(Self {
            writes,
            reads,
            posts,
            sessions,
            name: name.into(),
            location,
        })
    }

    /// Runs `f` on a pooled connection, the whole of it bounded by [`QUERY_TIMEOUT`].
    async fn with<R, F>(&self, f: F) -> Result<R, DbError>
    where
        F: AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<R, tokio_postgres::Error>,
    {
        bounded(async {
            let mut client = self.writes.get().await?;
            f(&mut client).await.map_err(pg_error)
        })
        .await
    }
}

/// After the write pool failed to connect, writes fail at once for this long
/// rather than each trying again.
const WRITES_PAUSE: Duration = Duration::from_secs(1);

/// The write pool, and when it last failed to connect. With the primary down and
/// a multi-host URL, each attempt connects to the replica only to learn that it
/// is read-only: one attempt per page view (the visit counter writes) would be a
/// storm of connections on the one server still serving the reads. So for
/// [`WRITES_PAUSE`] after a failure writes answer 503 at once; after a promotion
/// they resume within that pause.
#[derive(Debug)]
struct Writes {
    pool: Pool,
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Writes {
    async fn get(&self) -> Result<deadpool_postgres::Object, DbError> {
        let failed_at = *self
            .failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = failed_at
            && at.elapsed() < WRITES_PAUSE
        {
            return Err(DbError::Unavailable(format!(
                "no writable database {} ms ago; trying again within {} s",
                at.elapsed().as_millis(),
                WRITES_PAUSE.as_secs()
            )));
        }
        self.pool.get().await.map_err(|e| {
            use deadpool_postgres::{PoolError, TimeoutType};
            // Connecting failed: the primary is gone (a pool busy with other
            // requests, `Timeout(Wait)`, says nothing about the primary).
            if matches!(
                e,
                PoolError::Backend(_) | PoolError::Timeout(TimeoutType::Create)
            ) {
                *self
                    .failed_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(std::time::Instant::now());
            }
            pool_error(e)
        })
    }
}

impl Pg {
    /// Runs a read-only `f` on the read pool (the write pool with one host),
    /// bounded by [`QUERY_TIMEOUT`]. A read that fails because its connection
    /// broke (the primary just went away) is tried once more on a fresh one, which
    /// finds the host that still answers: the visitor never sees the switch.
    async fn read<R, F>(&self, f: F) -> Result<R, DbError>
    where
        F: AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<R, tokio_postgres::Error> + Clone,
    {
        let Some(reads) = &self.reads else {
            return self.with(f).await;
        };
        bounded(retry_once(reads, f)).await
    }
}

/// A pool of at most `size` connections made from `config`, each step of getting
/// one bounded in time.
fn pool(config: tokio_postgres::Config, size: usize) -> anyhow::Result<Pool> {
    let manager_config = ManagerConfig {
        // `Fast` reuses a connection unless it is closed; a broken one fails
        // its next query, is dropped, and the pool opens a new one.
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match config.get_ssl_mode() {
        SslMode::Require => Manager::from_config(config, tls()?, manager_config),
        _ => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
    };
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(QUERY_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
        .recycle_timeout(Some(QUERY_TIMEOUT))
        .build()
        .context("failed to build the PostgreSQL connection pool")
}

/// Closes idle read connections older than [`READ_CONNECTION_AGE`] until the pool
/// closes: the next read reconnects in the URL's order, to the primary if it is up.
async fn retire_read_connections(reads: Pool) {
    while !reads.is_closed() {
        tokio::time::sleep(READ_RETIRE_EVERY).await;
        reads.retain(|_, metrics| metrics.age() < READ_CONNECTION_AGE);
    }
}

/// `fut`, or [`DbError::Unavailable`] once [`QUERY_TIMEOUT`] has passed.
async fn bounded<R>(fut: impl Future<Output = Result<R, DbError>>) -> Result<R, DbError> {
    tokio::time::timeout(QUERY_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(DbError::Unavailable(format!(
                "no answer within {}s",
                QUERY_TIMEOUT.as_secs()
            )))
        })
}

/// rustls with the ring provider (no aws-lc-rs), trusting `PGSSLROOTCERT` when
/// set, else the system's CA bundle: `sslmode=require` with verification.
fn tls() -> anyhow::Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let path = std::env::var("PGSSLROOTCERT")
        .unwrap_or_else(|_| "/etc/ssl/certs/ca-certificates.crt".to_string());
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path)
        .with_context(|| format!("failed to read the CA certificates in {path}"))?;
    for cert in certs {
        let cert = cert.with_context(|| format!("failed to parse {path}"))?;
        roots
            .add(cert)
            .with_context(|| format!("a certificate in {path} is not usable"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("rustls has no TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The URL with its password replaced, for logs and error messages.
pub(crate) fn redact(url: &str) -> String {
    // postgres://user:secret@host/db → postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // The user info ends at the authority's last '@' (a password may hold '@').
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some((auth, host)) = rest[..end].rsplit_once('@') else {
        return url.to_string();
    };
    let tail = &rest[end..];
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_string(),
    }
}

/// Brings the schema up to date in one transaction and returns the server's name
/// ("PostgreSQL 15").
async fn migrate(pool: &Pool) -> Result<String, String> {
    let mut client = pool.get().await.map_err(|e| pool_error(e).to_string())?;
    let text = |e: tokio_postgres::Error| pg_error(e).to_string();
    let version: i32 = client
        .query_one("SHOW server_version_num", &[])
        .await
        .map_err(text)?
        .get::<_, String>(0)
        .parse()
        .map_err(|e| format!("unexpected server_version_num: {e}"))?;
    if version < 150_000 {
        return Err(format!(
            "PostgreSQL {} is too old: onebox needs 15 or newer",
            version / 10_000
        ));
    }
    let tx = client.transaction().await.map_err(text)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(text)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS onebox_schema (
             version    integer     PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(text)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM onebox_schema", &[])
        .await
        .map_err(text)?
        .get(0);
    if current > PG_SCHEMA_VERSION {
        return Err(format!(
            "the database has onebox schema {current}, newer than this onebox knows ({PG_SCHEMA_VERSION}): upgrade onebox; nothing was changed"
        ));
    }
    for (number, sql) in (1..).zip(MIGRATIONS).skip(current as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| format!("migration {number} failed: {}", text(e)))?;
        tx.execute(
            "INSERT INTO onebox_schema (version) VALUES ($1)",
            &[&number],
        )
        .await
        .map_err(text)?;
        tracing::info!("db: applied migration {number}");
    }
    tx.commit().await.map_err(text)?;
    Ok(format!("PostgreSQL {}", version / 10_000))
}

/// The one task that inserts posts. It takes every post waiting (up to
/// [`MAX_POST_BATCH`]), reserves that many ids under the `onebox_post_seq` row
/// lock, inserts them and commits once; only then are the callers answered.
/// Ids follow commit order across every node sharing the database, because the
/// row lock is held until commit.
async fn post_writer(writes: Arc<Writes>, mut queue: mpsc::Receiver<PostJob>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_POST_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let posts: Vec<&NewPost> = batch.iter().map(|(post, _)| post).collect();
        let started = std::time::Instant::now();
        let result = bounded(insert_posts(&writes, &posts)).await;
        // The same commit series as redb's writer: one commit holding this batch.
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        crate::metrics::site::commit(batch.len(), micros, result.is_ok());
        match result {
            Ok(first_id) => {
                for (id, (_, reply)) in (first_id..).zip(batch) {
                    let _ = reply.send(Ok(id));
                }
            }
            Err(e) => {
                for (_, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Inserts `posts` in one statement (so one implicit transaction and one round
/// trip with the statement cached); returns the first post's id. The CTE takes
/// the ids under the `onebox_post_seq` row lock, held until the commit.
async fn insert_posts(writes: &Writes, posts: &[&NewPost]) -> Result<u64, DbError> {
    const INSERT: &str = "WITH seq AS (
           UPDATE onebox_post_seq SET last_id = last_id + cardinality($1::text[])
           RETURNING last_id
         )
         INSERT INTO posts (id, author, body, created_at)
         SELECT seq.last_id - cardinality($1::text[]) + t.ord, t.author, t.body, t.created_at
         FROM seq, unnest($1::text[], $2::text[], $3::bigint[])
              WITH ORDINALITY AS t(author, body, created_at, ord)
         RETURNING id";
    let client = writes.get().await?;
    let statement = client.prepare_cached(INSERT).await.map_err(pg_error)?;
    let authors: Vec<&str> = posts.iter().map(|p| p.author.as_str()).collect();
    let bodies: Vec<&str> = posts.iter().map(|p| p.body.as_str()).collect();
    let times: Vec<i64> = posts.iter().map(|p| to_i64(p.created_at)).collect();
    let rows = client
        .query(&statement, &[&authors, &bodies, &times])
        .await
        .map_err(pg_error)?;
    let first = rows
        .iter()
        .map(|row| row.get::<_, i64>(0))
        .min()
        .ok_or_else(|| DbError::Storage("the post insert returned no ids".into()))?;
    if rows.len() != posts.len() {
        return Err(DbError::Storage(format!(
            "inserted {} posts of {}",
            rows.len(),
            posts.len()
        )));
    }
    to_u64(first)
}

/// The tasks that read sessions. Every authenticated request looks its session up,
/// so under load this is the busiest query: each reader takes every lookup queued
/// (up to [`MAX_SESSION_BATCH`]) and answers them all with one `= ANY($1)` query,
/// one round trip and one executor run for the batch instead of one per request.
/// Nothing is cached: a batch's query starts after each of its lookups was asked,
/// so a logout committed before a request arrived is always seen, as with one
/// query per request. [`SESSION_READERS`] readers share the queue, so one slow
/// batch does not hold up the next.
async fn session_reader(pool: Pool, queue: Arc<tokio::sync::Mutex<mpsc::Receiver<SessionJob>>>) {
    loop {
        let batch = {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut batch = vec![first];
            while batch.len() < MAX_SESSION_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            batch
        };
        let mut hashes: Vec<&[u8]> = batch.iter().map(|(hash, _, _)| hash.as_slice()).collect();
        hashes.sort_unstable();
        hashes.dedup();
        match bounded(read_sessions(&pool, &hashes)).await {
            Ok(rows) => {
                for (hash, now, reply) in batch {
                    // Each lookup keeps its own "valid at": expiry is checked per request.
                    let found = rows
                        .iter()
                        .find(|(h, s)| *h == hash && s.expires_at > now)
                        .map(|(_, s)| s.clone());
                    let _ = reply.send(Ok(found));
                }
            }
            Err(e) => {
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Runs `f` on a connection from `pool`; when it fails because its connection
/// broke (the server it led to stopped: a failover), once more on a fresh one,
/// which finds the host that still answers. Shared by [`Pg::read`] and the
/// session readers.
async fn retry_once<R, F>(pool: &Pool, f: F) -> Result<R, DbError>
where
    F: AsyncFnOnce(&mut deadpool_postgres::Client) -> Result<R, tokio_postgres::Error> + Clone,
{
    let mut client = pool.get().await.map_err(pool_error)?;
    match f.clone()(&mut client).await {
        Err(e) if connection_lost(&e) => {
            tracing::debug!("db: a read connection broke ({e}); trying another");
            drop(client);
            let mut client = pool.get().await.map_err(pool_error)?;
            f(&mut client).await.map_err(pg_error)
        }
        done => done.map_err(pg_error),
    }
}

/// The sessions stored under `hashes`, expired or not, in one cached statement
/// (a broken connection replaced once, as for every read).
async fn read_sessions(pool: &Pool, hashes: &[&[u8]]) -> Result<Vec<([u8; 32], Session)>, DbError> {
    let rows = retry_once(pool, async |c| {
        let statement = c
            .prepare_cached(
                "SELECT token_hash, username, created_at, expires_at FROM sessions
                 WHERE token_hash = ANY($1)",
            )
            .await?;
        c.query(&statement, &[&hashes]).await
    })
    .await?;
    rows.iter().map(session_row).collect()
}

/// A `token_hash, username, created_at, expires_at` row as a keyed session.
fn session_row(row: &tokio_postgres::Row) -> Result<([u8; 32], Session), DbError> {
    let hash: &[u8] = row.get(0);
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|_| DbError::Corrupt("a session key is not 32 bytes".into()))?;
    let session = Session {
        username: row.get(1),
        created_at: to_u64(row.get(2))?,
        expires_at: to_u64(row.get(3))?,
    };
    Ok((hash, session))
}

/// Unix seconds fit an i64 until the year 292 billion; saturate rather than wrap.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> Result<u64, DbError> {
    u64::try_from(n).map_err(|_| DbError::Corrupt(format!("negative value {n} in a stored row")))
}

/// A pool failure: no connection could be had in time, or connecting failed.
fn pool_error(e: deadpool_postgres::PoolError) -> DbError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(kind) => DbError::Unavailable(format!(
            "no database connection within the deadline ({kind:?})"
        )),
        PoolError::Closed => DbError::Closed,
        other => DbError::Unavailable(other.to_string()),
    }
}

/// Whether the connection itself failed (refused, reset, closed, or the server
/// shutting down under it), rather than the statement.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || [SqlState::ADMIN_SHUTDOWN, SqlState::CRASH_SHUTDOWN].contains(code)
        }
    }
}

/// Connection-level failures (refused, reset, closed, the server shutting down,
/// a standby that cannot take writes) are "unavailable": retrying later can
/// work. SQL errors are storage errors.
fn pg_error(e: tokio_postgres::Error) -> DbError {
    let unavailable = connection_lost(&e)
        || e.code().is_some_and(|code| {
            [
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::READ_ONLY_SQL_TRANSACTION,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
            ]
            .contains(code)
        });
    // The Display of a server error is only "db error"; its source has the text.
    let text = match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(&e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    };
    if unavailable {
        DbError::Unavailable(text)
    } else {
        DbError::Storage(text)
    }
}

impl Store for Pg {
    fn create_user(&self, user: User) -> StoreFuture<'_, UserCreated> {
        Box::pin(self.with(async move |c| {
            let created = c
                .execute(
                    "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (username) DO NOTHING",
                    &[
                        &user.username,
                        &user.password_hash,
                        &to_i64(user.created_at),
                    ],
                )
                .await?;
            Ok(if created == 1 {
                UserCreated::Created
            } else {
                UserCreated::Taken
            })
        }))
    }

    fn user(&self, username: String) -> StoreFuture<'_, Option<User>> {
        Box::pin(async move {
            let row = self
                .read(async |c| {
                    let st = c
                        .prepare_cached(
                            "SELECT password_hash, created_at FROM users WHERE username = $1",
                        )
                        .await?;
                    c.query_opt(&st, &[&username]).await
                })
                .await?;
            row.map(|row| {
                Ok(User {
                    username: username.clone(),
                    password_hash: row.get(0),
                    created_at: to_u64(row.get(1))?,
                })
            })
            .transpose()
        })
    }

    fn create_session(&self, token_hash: [u8; 32], session: Session) -> StoreFuture<'_, ()> {
        Box::pin(self.with(async move |c| {
            let tx = c.transaction().await?;
            // Sweep a few expired sessions on the way, as the redb backend does.
            tx.execute(
                "DELETE FROM sessions WHERE token_hash IN
                   (SELECT token_hash FROM sessions WHERE expires_at <= $1 LIMIT 16)",
                &[&to_i64(session.created_at)],
            )
            .await?;
            tx.execute(
                "INSERT INTO sessions (token_hash, username, created_at, expires_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (token_hash) DO UPDATE SET username = excluded.username,
                   created_at = excluded.created_at, expires_at = excluded.expires_at",
                &[
                    &token_hash.as_slice(),
                    &session.username,
                    &to_i64(session.created_at),
                    &to_i64(session.expires_at),
                ],
            )
            .await?;
            tx.commit().await
        }))
    }

    fn session(&self, token_hash: [u8; 32], now: u64) -> StoreFuture<'_, Option<Session>> {
        // The queue and the reader's query, together within one deadline, as before.
        Box::pin(bounded(async move {
            let (reply, answer) = oneshot::channel();
            self.sessions
                .send((token_hash, now, reply))
                .await
                .map_err(|_| DbError::Closed)?;
            answer.await.unwrap_or(Err(DbError::Closed))
        }))
    }

    fn delete_session(&self, token_hash: [u8; 32]) -> StoreFuture<'_, bool> {
        Box::pin(self.with(async move |c| {
            let n = c
                .execute(
                    "DELETE FROM sessions WHERE token_hash = $1",
                    &[&token_hash.as_slice()],
                )
                .await?;
            Ok(n > 0)
        }))
    }

    fn sessions_active(&self, now: u64) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let row = self
                .read(async |c| {
                    c.query_one(
                        "SELECT count(*) FROM sessions WHERE expires_at > $1",
                        &[&to_i64(now)],
                    )
                    .await
                })
                .await?;
            // count(*) is a bigint, never negative.
            to_u64(row.get(0))
        })
    }

    fn create_post(&self, post: NewPost) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            self.posts
                .send((post, reply))
                .await
                .map_err(|_| DbError::Closed)?;
            answer.await.unwrap_or(Err(DbError::Closed))
        })
    }

    fn posts(&self, before: Option<u64>, limit: usize) -> StoreFuture<'_, Vec<Post>> {
        Box::pin(async move {
            let before = before.map_or(i64::MAX, to_i64);
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = self
                .read(async |c| {
                    let st = c
                        .prepare_cached(
                            "SELECT id, author, body, created_at FROM posts
                             WHERE id < $1 ORDER BY id DESC LIMIT $2",
                        )
                        .await?;
                    c.query(&st, &[&before, &limit]).await
                })
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(Post {
                        id: to_u64(row.get(0))?,
                        author: row.get(1),
                        body: row.get(2),
                        created_at: to_u64(row.get(3))?,
                    })
                })
                .collect()
        })
    }

    fn count_visit(&self, host: String) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let visits: i64 = self
                .with(async |c| {
                    let st = c
                        .prepare_cached(
                            "INSERT INTO counters (host, visits) VALUES ($1, 1)
                             ON CONFLICT (host) DO UPDATE SET visits = counters.visits + 1
                             RETURNING visits",
                        )
                        .await?;
                    Ok(c.query_one(&st, &[&host]).await?.get(0))
                })
                .await?;
            to_u64(visits)
        })
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        // Through the read pool: a node that can still serve reads (its primary
        // stopped, its replica up) stays ready, so a load balancer keeps it in.
        Box::pin(self.read(async |c| {
            // A read that needs the schema, not just a socket: "SELECT 1" would
            // pass against an empty database.
            c.query_one("SELECT max(version) FROM onebox_schema", &[])
                .await
                .map(|_| ())
        }))
    }

    fn backend(&self) -> Arc<str> {
        self.name.clone()
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn close(&self) {
        self.writes.pool.close();
        if let Some(reads) = &self.reads {
            reads.close();
        }
        tracing::info!("db: closed {}", self.location);
    }

    fn dump(&self) -> StoreFuture<'_, Dump> {
        Box::pin(async move {
            let (users, sessions, posts, counters) = self
                .with(async |c| {
                    // One snapshot of all four tables, however busy the site is.
                    let tx = c
                        .build_transaction()
                        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()
                        .await?;
                    let users = tx
                        .query(
                            "SELECT username, password_hash, created_at FROM users ORDER BY username",
                            &[],
                        )
                        .await?;
                    let sessions = tx
                        .query(
                            "SELECT token_hash, username, created_at, expires_at FROM sessions
                             ORDER BY token_hash",
                            &[],
                        )
                        .await?;
                    let posts = tx
                        .query(
                            "SELECT id, author, body, created_at FROM posts ORDER BY id",
                            &[],
                        )
                        .await?;
                    let counters = tx
                        .query("SELECT host, visits FROM counters ORDER BY host", &[])
                        .await?;
                    tx.commit().await?;
                    Ok((users, sessions, posts, counters))
                })
                .await?;
            let mut dump = Dump::default();
            for row in users {
                dump.users.push(User {
                    username: row.get(0),
                    password_hash: row.get(1),
                    created_at: to_u64(row.get(2))?,
                });
            }
            for row in &sessions {
                dump.sessions.push(session_row(row)?);
            }
            for row in posts {
                dump.posts.push(Post {
                    id: to_u64(row.get(0))?,
                    author: row.get(1),
                    body: row.get(2),
                    created_at: to_u64(row.get(3))?,
                });
            }
            for row in counters {
                dump.counters.push((row.get(0), to_u64(row.get(1))?));
            }
            Ok(dump)
        })
    }

    fn load(&self, dump: Dump) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            // A copy can be large: it gets its own, longer deadline.
            let work = async {
                let mut client = self.writes.get().await?;
                let tx = client.transaction().await.map_err(pg_error)?;
                load_rows(&tx, &dump).await.map_err(pg_error)?;
                tx.commit().await.map_err(pg_error)
            };
            tokio::time::timeout(Duration::from_secs(600), work)
                .await
                .unwrap_or_else(|_| {
                    Err(DbError::Unavailable("the copy took over 10 minutes".into()))
                })
        })
    }

    fn is_empty(&self) -> StoreFuture<'_, bool> {
        Box::pin(self.with(async |c| {
            let row = c
                .query_one(
                    "SELECT NOT (EXISTS (SELECT 1 FROM users) OR EXISTS (SELECT 1 FROM sessions)
                       OR EXISTS (SELECT 1 FROM posts) OR EXISTS (SELECT 1 FROM counters))",
                    &[],
                )
                .await?;
            Ok(row.get(0))
        }))
    }
}

/// Replaces the four tables' contents with `dump`'s, inside the caller's transaction.
async fn load_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    dump: &Dump,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(
        "DELETE FROM users; DELETE FROM sessions; DELETE FROM posts; DELETE FROM counters",
    )
    .await?;
    for u in &dump.users {
        tx.execute(
            "INSERT INTO users (username, password_hash, created_at) VALUES ($1, $2, $3)",
            &[&u.username, &u.password_hash, &to_i64(u.created_at)],
        )
        .await?;
    }
    for (hash, s) in &dump.sessions {
        tx.execute(
            "INSERT INTO sessions (token_hash, username, created_at, expires_at)
             VALUES ($1, $2, $3, $4)",
            &[
                &hash.as_slice(),
                &s.username,
                &to_i64(s.created_at),
                &to_i64(s.expires_at),
            ],
        )
        .await?;
    }
    for p in &dump.posts {
        tx.execute(
            "INSERT INTO posts (id, author, body, created_at) VALUES ($1, $2, $3, $4)",
            &[&to_i64(p.id), &p.author, &p.body, &to_i64(p.created_at)],
        )
        .await?;
    }
    for (host, visits) in &dump.counters {
        tx.execute(
            "INSERT INTO counters (host, visits) VALUES ($1, $2)",
            &[host, &to_i64(*visits)],
        )
        .await?;
    }
    // New posts continue after the copied ones.
    tx.execute(
        "UPDATE onebox_post_seq SET last_id = (SELECT coalesce(max(id), 0) FROM posts)",
        &[],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://onebox:s3cret@db1:5432,db2/site"),
            "postgres://onebox:***@db1:5432,db2/site"
        );
        assert_eq!(
            redact("postgres://onebox@db/site"),
            "postgres://onebox@db/site"
        );
    }

    #[test]
    fn migrations_are_numbered_from_one() {
        assert_eq!(PG_SCHEMA_VERSION as usize, MIGRATIONS.len());
        assert!(MIGRATIONS[0].contains("CREATE TABLE posts"));
    }
}
