//! The storage interface the application talks to: its own operations (create a
//! user, find a session, add a post, list posts, count a visit), never a storage
//! engine's types. The redb [`Db`] implements it today; a second backend (say
//! PostgreSQL) would implement the same trait and the application would not change.
//!
//! The methods return boxed futures so that the app can hold any backend as
//! `Arc<dyn Store>`: a trait with plain `async fn`s cannot be used as `dyn`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{Db, DbError, NewPost, Post, Session, User, UserCreated};

/// Every row of every table, in key order: what `onebox db migrate` copies from
/// one backend to another. Backend-neutral, so either side can be either engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dump {
    pub(crate) users: Vec<User>,
    pub(crate) sessions: Vec<([u8; 32], Session)>,
    pub(crate) posts: Vec<Post>,
    pub(crate) counters: Vec<(String, u64)>,
}

/// What every [`Store`] call returns: a future that is `Send`, so handlers can
/// await it on any worker thread.
pub(crate) type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, DbError>> + Send + 'a>>;

/// The application's storage operations. Every write is acknowledged only once it
/// is durable; every read sees only committed data.
pub(crate) trait Store: Send + Sync + fmt::Debug {
    /// Registers `user` unless the name is taken, atomically.
    fn create_user(&self, user: User) -> StoreFuture<'_, UserCreated>;
    /// The user called `username`, if any.
    fn user(&self, username: String) -> StoreFuture<'_, Option<User>>;
    /// Stores a session under the SHA-256 of its token.
    fn create_session(&self, token_hash: [u8; 32], session: Session) -> StoreFuture<'_, ()>;
    /// The session for a token hash, if it exists and has not expired at `now`.
    fn session(&self, token_hash: [u8; 32], now: u64) -> StoreFuture<'_, Option<Session>>;
    /// Removes a session; true if it existed.
    fn delete_session(&self, token_hash: [u8; 32]) -> StoreFuture<'_, bool>;
    /// How many sessions have not expired at `now` (the sessions-active gauge).
    fn sessions_active(&self, now: u64) -> StoreFuture<'_, u64>;
    /// Stores a post and returns its id (ids follow commit order).
    fn create_post(&self, post: NewPost) -> StoreFuture<'_, u64>;
    /// Up to `limit` posts, newest first, with ids below `before` when given.
    fn posts(&self, before: Option<u64>, limit: usize) -> StoreFuture<'_, Vec<Post>>;
    /// Adds one visit to `host`'s counter and returns the new count.
    fn count_visit(&self, host: String) -> StoreFuture<'_, u64>;
    /// A number that changes whenever the posts change, when this backend can
    /// tell without a round trip (only this process writes them); `None` when it
    /// cannot (PostgreSQL: another node may post), so nothing may be cached.
    fn posts_version(&self) -> Option<u64> {
        None
    }
    /// A real round trip to the data (for `/readyz`): fails while it is unreachable.
    fn ping(&self) -> StoreFuture<'_, ()>;
    /// The engine's name for people: "redb", "PostgreSQL 15".
    fn backend(&self) -> Arc<str>;
    /// Where the data lives, for messages (never a password).
    fn location(&self) -> String;
    /// Finishes the writes already accepted and releases the storage.
    fn close(&self);
    /// Every row, from one consistent snapshot.
    fn dump(&self) -> StoreFuture<'_, Dump>;
    /// Replaces every row with `dump`'s, in one transaction.
    fn load(&self, dump: Dump) -> StoreFuture<'_, ()>;
    /// True if no table has a row.
    fn is_empty(&self) -> StoreFuture<'_, bool>;
}

/// The redb backend: each operation is the inherent `Db` method of the same name
/// (inherent methods win over trait methods, so these calls do not recurse).
impl Store for Db {
    fn create_user(&self, user: User) -> StoreFuture<'_, UserCreated> {
        Box::pin(Db::create_user(self, user))
    }
    fn user(&self, username: String) -> StoreFuture<'_, Option<User>> {
        Box::pin(Db::user(self, username))
    }
    fn create_session(&self, token_hash: [u8; 32], session: Session) -> StoreFuture<'_, ()> {
        Box::pin(Db::create_session(self, token_hash, session))
    }
    fn session(&self, token_hash: [u8; 32], now: u64) -> StoreFuture<'_, Option<Session>> {
        Box::pin(Db::session(self, token_hash, now))
    }
    fn delete_session(&self, token_hash: [u8; 32]) -> StoreFuture<'_, bool> {
        Box::pin(Db::delete_session(self, token_hash))
    }
    fn sessions_active(&self, now: u64) -> StoreFuture<'_, u64> {
        Box::pin(Db::sessions_active(self, now))
    }
    fn create_post(&self, post: NewPost) -> StoreFuture<'_, u64> {
        Box::pin(Db::create_post(self, post))
    }
    fn posts(&self, before: Option<u64>, limit: usize) -> StoreFuture<'_, Vec<Post>> {
        Box::pin(Db::posts(self, before, limit))
    }
    fn count_visit(&self, host: String) -> StoreFuture<'_, u64> {
        Box::pin(Db::count_visit(self, host))
    }
    fn posts_version(&self) -> Option<u64> {
        Some(Db::posts_version(self))
    }
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move { Db::ping(self).await.map(|_| ()) })
    }
    fn backend(&self) -> Arc<str> {
        // Asked twice per page view: one shared name, not an allocation each time.
        static NAME: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from("redb"));
        NAME.clone()
    }
    fn location(&self) -> String {
        Db::location(self).to_string()
    }
    fn close(&self) {
        Db::close(self.clone());
    }
    fn dump(&self) -> StoreFuture<'_, Dump> {
        Box::pin(Db::dump(self))
    }
    fn load(&self, dump: Dump) -> StoreFuture<'_, ()> {
        Box::pin(Db::load(self, dump))
    }
    fn is_empty(&self) -> StoreFuture<'_, bool> {
        Box::pin(async move {
            let dump = Db::dump(self).await?;
            Ok(dump == Dump::default())
        })
    }
}
