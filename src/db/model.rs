//! The tables, their row types and the operations the application needs, each one
//! read or one write transaction.
//!
//! Keys are plain redb types (so range scans are ordered); values are JSON rows
//! behind a typed wrapper. JSON keeps the file readable by future versions that add
//! fields (serde ignores unknown ones and defaults missing ones), and the schema
//! version in `meta` guards changes JSON cannot absorb.

use std::fmt;
use std::marker::PhantomData;

use redb::{
    AccessGuard, Database, Key, ReadTransaction, ReadableTable, Table, TableDefinition,
    TableHandle, TypeName, Value,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Db, DbError};

/// The layout this build reads and writes. Bump it when a change needs a migration.
pub(crate) const SCHEMA_VERSION: u64 = 2;
const APP: &[u8] = b"onebox";

/// `schema` → version (u64 little-endian), `app` → "onebox".
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// username → user.
const USERS: TableDefinition<&str, Row<User>> = TableDefinition::new("users");
/// SHA-256 of the session token → session. Storing the hash means a copy of the
/// database file does not hand out working session cookies.
const SESSIONS: TableDefinition<&[u8], Row<Session>> = TableDefinition::new("sessions");
/// post id (1, 2, 3, … in commit order) → post. Newest first is a reverse range scan.
const POSTS: TableDefinition<u64, Row<PostRow>> = TableDefinition::new("posts");
/// host name → visits.
pub(super) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("counters");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct User {
    pub(crate) username: String,
    /// The argon2id PHC string (algorithm, parameters, salt and hash).
    pub(crate) password_hash: String,
    pub(crate) created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Session {
    pub(crate) username: String,
    pub(crate) created_at: u64,
    pub(crate) expires_at: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PostRow {
    author: String,
    body: String,
    created_at: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct NewPost {
    pub(crate) author: String,
    pub(crate) body: String,
    pub(crate) created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Post {
    pub(crate) id: u64,
    pub(crate) author: String,
    pub(crate) body: String,
    pub(crate) created_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserCreated {
    Created,
    Taken,
}

/// A row as stored: JSON bytes, decoded on demand. redb's `from_bytes` cannot fail,
/// so decoding happens in [`Row::decode`], where a damaged row becomes an error for
/// one request instead of a panic in the server.
pub(crate) struct Row<T> {
    bytes: Vec<u8>,
    _type: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> Row<T> {
    fn encode(value: &T) -> Result<Self, DbError> {
        let bytes = serde_json::to_vec(value).map_err(|e| DbError::Storage(e.to_string()))?;
        Ok(Self {
            bytes,
            _type: PhantomData,
        })
    }

    fn decode(&self) -> Result<T, DbError> {
        serde_json::from_slice(&self.bytes).map_err(|e| DbError::Corrupt(e.to_string()))
    }
}

impl<T> fmt::Debug for Row<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Row({})", String::from_utf8_lossy(&self.bytes))
    }
}

/// The stable name redb records for each row type: renaming a Rust type must not
/// make an existing file unreadable.
trait RowName {
    const NAME: &'static str;
}
impl RowName for User {
    const NAME: &'static str = "onebox.user.json";
}
impl RowName for Session {
    const NAME: &'static str = "onebox.session.json";
}
impl RowName for PostRow {
    const NAME: &'static str = "onebox.post.json";
}

impl<T: RowName> Value for Row<T> {
    type SelfType<'a>
        = Row<T>
    where
        Self: 'a;
    type AsBytes<'a>
        = &'a [u8]
    where
        Self: 'a;

    fn fixed_width() -> Option<usize> {
        None
    }

    fn from_bytes<'a>(data: &'a [u8]) -> Row<T>
    where
        Self: 'a,
    {
        Row {
            bytes: data.to_vec(),
            _type: PhantomData,
        }
    }

    fn as_bytes<'a, 'b: 'a>(value: &'a Row<T>) -> &'a [u8]
    where
        Self: 'b,
    {
        &value.bytes
    }

    fn type_name() -> TypeName {
        TypeName::new(T::NAME)
    }
}

fn storage(e: impl Into<redb::Error>) -> DbError {
    DbError::Storage(e.into().to_string())
}

/// Calls `row` with each key and value of `table`, in key order (the dump's walk
/// over every table).
fn each_row<K: Key + 'static, V: Value + 'static>(
    tx: &ReadTransaction,
    table: TableDefinition<K, V>,
    mut row: impl FnMut(AccessGuard<K>, AccessGuard<V>) -> Result<(), DbError>,
) -> Result<(), DbError> {
    for entry in tx
        .open_table(table)
        .map_err(storage)?
        .iter()
        .map_err(storage)?
    {
        let (key, value) = entry.map_err(storage)?;
        row(key, value)?;
    }
    Ok(())
}

pub(crate) fn schema_of(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<Option<u64>, DbError> {
    let Some(raw) = meta.get("schema").map_err(storage)? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = raw
        .value()
        .try_into()
        .map_err(|_| DbError::Corrupt("schema version is not 8 bytes".into()))?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

/// Checks that the file is ours and not from the future; a fresh file gets the
/// schema and empty tables, so later reads never meet a missing table.
pub(crate) fn check_or_init(db: &Database) -> Result<(), String> {
    let tx = db.begin_write().map_err(|e| e.to_string())?;
    let existing: Vec<String> = tx
        .list_tables()
        .map_err(|e| e.to_string())?
        .map(|t| t.name().to_string())
        .collect();
    if existing.iter().any(|t| t == META.name()) {
        let meta = tx.open_table(META).map_err(|e| e.to_string())?;
        let app = meta.get("app").map_err(|e| e.to_string())?;
        if app.as_ref().map(|a| a.value()) != Some(APP) {
            return Err("is not a onebox database (its meta table has no onebox mark)".into());
        }
        drop(app);
        match schema_of(&meta).map_err(|e| e.to_string())? {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(format!(
                    "was written by a newer onebox (schema {v}); this onebox reads schema {SCHEMA_VERSION}: upgrade onebox or use another --data DIR"
                ));
            }
            // Schema 1 had no zone journal: its tables are created below.
            Some(1) => {
                drop(meta);
                let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
                meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())
                    .map_err(|e| e.to_string())?;
                tracing::info!("db: migrated schema 1 to {SCHEMA_VERSION} (zone journal added)");
            }
            Some(_) => {}
            None => return Err("is not a onebox database (no schema version)".into()),
        }
    } else if !existing.is_empty() {
        return Err(format!(
            "is not a onebox database (it has tables {} but no onebox schema)",
            existing.join(", ")
        ));
    } else {
        let mut meta = tx.open_table(META).map_err(|e| e.to_string())?;
        meta.insert("app", APP).map_err(|e| e.to_string())?;
        meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())
            .map_err(|e| e.to_string())?;
    }
    tx.open_table(USERS).map_err(|e| e.to_string())?;
    tx.open_table(SESSIONS).map_err(|e| e.to_string())?;
    tx.open_table(POSTS).map_err(|e| e.to_string())?;
    tx.open_table(COUNTERS).map_err(|e| e.to_string())?;
    super::journal::create_tables(&tx)?;
    tx.commit().map_err(|e| e.to_string())
}

impl Db {
    /// Registers `user` unless the name is taken. The check and the insert are one
    /// transaction, so two racing registrations cannot both win.
    pub(crate) async fn create_user(&self, user: User) -> Result<UserCreated, DbError> {
        self.write(move |tx| {
            let mut users = tx.open_table(USERS).map_err(storage)?;
            if users
                .get(user.username.as_str())
                .map_err(storage)?
                .is_some()
            {
                return Ok(UserCreated::Taken);
            }
            let row = Row::encode(&user)?;
            users.insert(user.username.as_str(), row).map_err(storage)?;
            Ok(UserCreated::Created)
        })
        .await
    }

    pub(crate) async fn user(&self, username: String) -> Result<Option<User>, DbError> {
        self.read(move |tx| {
            let users = tx.open_table(USERS).map_err(storage)?;
            let row = users.get(username.as_str()).map_err(storage)?;
            row.map(|r| r.value().decode()).transpose()
        })
        .await
    }

    pub(crate) async fn create_session(
        &self,
        token_hash: [u8; 32],
        session: Session,
    ) -> Result<(), DbError> {
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).map_err(storage)?;
            // Sweep a few expired sessions on the way, so the table does not grow forever.
            purge_expired(&mut sessions, session.created_at, 16)?;
            sessions
                .insert(token_hash.as_slice(), Row::encode(&session)?)
                .map_err(storage)?;
            Ok(())
        })
        .await
    }

    /// The session for a token hash, if it exists and has not expired at `now`.
    pub(crate) async fn session(
        &self,
        token_hash: [u8; 32],
        now: u64,
    ) -> Result<Option<Session>, DbError> {
        self.read_here(move |tx| {
            let sessions = tx.open_table(SESSIONS).map_err(storage)?;
            let Some(row) = sessions.get(token_hash.as_slice()).map_err(storage)? else {
                return Ok(None);
            };
            let session = row.value().decode()?;
            Ok((session.expires_at > now).then_some(session))
        })
    }

    /// How many sessions have not expired at `now`. A scan of the table: redb keeps
    /// no secondary index, and a scrape every few seconds over the toy's sessions
    /// costs less than maintaining one on every login.
    pub(crate) async fn sessions_active(&self, now: u64) -> Result<u64, DbError> {
        self.read(move |tx| {
            let sessions = tx.open_table(SESSIONS).map_err(storage)?;
            let mut active = 0;
            for entry in sessions.iter().map_err(storage)? {
                let (_, row) = entry.map_err(storage)?;
                if row.value().decode()?.expires_at > now {
                    active += 1;
                }
            }
            Ok(active)
        })
        .await
    }

    /// Removes a session; true if it existed.
    pub(crate) async fn delete_session(&self, token_hash: [u8; 32]) -> Result<bool, DbError> {
        self.write(move |tx| {
            let mut sessions = tx.open_table(SESSIONS).map_err(storage)?;
            let removed = sessions.remove(token_hash.as_slice()).map_err(storage)?;
            Ok(removed.is_some())
        })
        .await
    }

    /// Stores a post and returns its id: one more than the newest id, assigned
    /// inside the write transaction, so ids follow commit order.
    pub(crate) async fn create_post(&self, post: NewPost) -> Result<u64, DbError> {
        let id = self
            .write(move |tx| {
                let mut posts = tx.open_table(POSTS).map_err(storage)?;
                let id = match posts.last().map_err(storage)? {
                    Some((key, _)) => key.value() + 1,
                    None => 1,
                };
                let row = Row::encode(&PostRow {
                    author: post.author,
                    body: post.body,
                    created_at: post.created_at,
                })?;
                posts.insert(id, row).map_err(storage)?;
                Ok(id)
            })
            .await;
        // Before the poster hears back, so its next page cannot show a stale board.
        self.posts_changed();
        id
    }

    /// Up to `limit` posts, newest first, with ids below `before` when given.
    pub(crate) async fn posts(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Post>, DbError> {
        self.read(move |tx| {
            let posts = tx.open_table(POSTS).map_err(storage)?;
            let range = match before {
                Some(before) => posts.range(..before),
                None => posts.range::<u64>(..),
            }
            .map_err(storage)?;
            let mut out = Vec::new();
            for entry in range.rev().take(limit) {
                let (id, row) = entry.map_err(storage)?;
                let row = row.value().decode()?;
                out.push(Post {
                    id: id.value(),
                    author: row.author,
                    body: row.body,
                    created_at: row.created_at,
                });
            }
            Ok(out)
        })
        .await
    }

    /// Adds one visit to `host`'s counter and returns the new count.
    pub(crate) async fn count_visit(&self, host: String) -> Result<u64, DbError> {
        self.inner.writer.count_visit(host).await
    }
}

impl Db {
    /// Every row of the four tables, from one read transaction.
    pub(crate) async fn dump(&self) -> Result<super::store::Dump, DbError> {
        // The counters counted since the last fold are in the visit log only.
        self.settle().await?;
        self.read(|tx| {
            let mut dump = super::store::Dump::default();
            each_row(tx, USERS, |_, row| {
                dump.users.push(row.value().decode()?);
                Ok(())
            })?;
            each_row(tx, SESSIONS, |key, row| {
                let hash: [u8; 32] = key
                    .value()
                    .try_into()
                    .map_err(|_| DbError::Corrupt("a session key is not 32 bytes".into()))?;
                dump.sessions.push((hash, row.value().decode()?));
                Ok(())
            })?;
            each_row(tx, POSTS, |id, row| {
                let row = row.value().decode()?;
                dump.posts.push(Post {
                    id: id.value(),
                    author: row.author,
                    body: row.body,
                    created_at: row.created_at,
                });
                Ok(())
            })?;
            each_row(tx, COUNTERS, |host, visits| {
                dump.counters
                    .push((host.value().to_string(), visits.value()));
                Ok(())
            })?;
            Ok(dump)
        })
        .await
    }

    /// Replaces the four tables' rows with `dump`'s, in one write transaction.
    pub(crate) async fn load(&self, dump: super::store::Dump) -> Result<(), DbError> {
        let loaded = self
            .write(move |tx| {
                tx.delete_table(USERS).map_err(storage)?;
                tx.delete_table(SESSIONS).map_err(storage)?;
                tx.delete_table(POSTS).map_err(storage)?;
                tx.delete_table(COUNTERS).map_err(storage)?;
                let mut users = tx.open_table(USERS).map_err(storage)?;
                for user in &dump.users {
                    users
                        .insert(user.username.as_str(), Row::encode(user)?)
                        .map_err(storage)?;
                }
                let mut sessions = tx.open_table(SESSIONS).map_err(storage)?;
                for (hash, session) in &dump.sessions {
                    sessions
                        .insert(hash.as_slice(), Row::encode(session)?)
                        .map_err(storage)?;
                }
                let mut posts = tx.open_table(POSTS).map_err(storage)?;
                for post in &dump.posts {
                    let row = Row::encode(&PostRow {
                        author: post.author.clone(),
                        body: post.body.clone(),
                        created_at: post.created_at,
                    })?;
                    posts.insert(post.id, row).map_err(storage)?;
                }
                let mut counters = tx.open_table(COUNTERS).map_err(storage)?;
                for (host, visits) in &dump.counters {
                    counters.insert(host.as_str(), *visits).map_err(storage)?;
                }
                Ok(())
            })
            .await;
        self.posts_changed();
        loaded
    }
}

fn purge_expired(
    sessions: &mut Table<&[u8], Row<Session>>,
    now: u64,
    at_most: usize,
) -> Result<(), DbError> {
    let mut expired = Vec::new();
    for entry in sessions.iter().map_err(storage)? {
        let (key, row) = entry.map_err(storage)?;
        if row.value().decode().is_ok_and(|s| s.expires_at <= now) {
            expired.push(key.value().to_vec());
            if expired.len() >= at_most {
                break;
            }
        }
    }
    for key in expired {
        sessions.remove(key.as_slice()).map_err(storage)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn posts_come_back_newest_first_and_page() {
        runtime().block_on(async {
            let db = Db::in_memory().unwrap();
            for i in 0..5 {
                let id = db
                    .create_post(NewPost {
                        author: "ann".into(),
                        body: format!("post {i}"),
                        created_at: 1,
                    })
                    .await
                    .unwrap();
                assert_eq!(id, i + 1);
            }
            let page = db.posts(None, 2).await.unwrap();
            assert_eq!(page.iter().map(|p| p.id).collect::<Vec<_>>(), [5, 4]);
            let next = db.posts(Some(4), 10).await.unwrap();
            assert_eq!(next.iter().map(|p| p.id).collect::<Vec<_>>(), [3, 2, 1]);
            assert_eq!(next[0].body, "post 2");
        });
    }

    #[test]
    fn usernames_are_unique_and_sessions_expire() {
        runtime().block_on(async {
            let db = Db::in_memory().unwrap();
            let user = User {
                username: "ann".into(),
                password_hash: "x".into(),
                created_at: 1,
            };
            assert_eq!(
                db.create_user(user.clone()).await.unwrap(),
                UserCreated::Created
            );
            assert_eq!(db.create_user(user).await.unwrap(), UserCreated::Taken);
            let session = Session {
                username: "ann".into(),
                created_at: 10,
                expires_at: 20,
            };
            db.create_session([7; 32], session).await.unwrap();
            assert!(db.session([7; 32], 19).await.unwrap().is_some());
            assert!(db.session([7; 32], 20).await.unwrap().is_none());
            assert!(db.delete_session([7; 32]).await.unwrap());
            assert!(db.session([7; 32], 0).await.unwrap().is_none());
        });
    }

    /// Writes `version` as the file's schema, as an older or newer onebox would have.
    pub(crate) fn set_schema(tx: &redb::WriteTransaction, version: u64) {
        tx.open_table(META)
            .unwrap()
            .insert("schema", version.to_le_bytes().as_slice())
            .unwrap();
    }

    #[test]
    fn foreign_and_future_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A redb file with someone else's tables.
        {
            let db = Database::create(dir.path().join("other.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(TableDefinition::<&str, u64>::new("stuff"))
                .unwrap()
                .insert("a", 1)
                .unwrap();
            tx.commit().unwrap();
            let err = check_or_init(&db).unwrap_err();
            assert!(err.contains("not a onebox database"), "{err}");
        }
        // Ours, from a newer onebox.
        {
            let db = Database::create(dir.path().join("newer.redb")).unwrap();
            check_or_init(&db).unwrap();
            let tx = db.begin_write().unwrap();
            set_schema(&tx, 99);
            tx.commit().unwrap();
            let err = check_or_init(&db).unwrap_err();
            assert!(err.contains("newer onebox (schema 99)"), "{err}");
        }
    }
}
