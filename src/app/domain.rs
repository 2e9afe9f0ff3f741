//! The application core: accounts, sessions and posts as plain operations over the
//! [`Store`](crate::db::Store) and the request context, with every rule they
//! enforce (input validation, the abuse budgets, the argon2 cap) and one error type.
//! The HTML pages and the JSON API are thin front-ends that call these and map an
//! [`AppError`] to a page or to `{"error": …}`.

use std::net::IpAddr;

use axum::http::StatusCode;

use super::{App, Ctx, auth, now};
use crate::db::{DbError, NewPost, Post, Session, User, UserCreated};

/// Longest post, in characters.
pub(crate) const MAX_POST_CHARS: usize = 2000;

/// Everything an application operation can refuse or fail with. Front-ends branch
/// on it only through [`AppError::status`], [`AppError::retry_after`] and the
/// message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// Input breaks a rule (a username, a password, a post body, a parameter).
    #[error("{0}")]
    Invalid(String),
    /// The request body could not be read at all (malformed JSON, too large).
    #[error("{message}")]
    Unreadable { status: StatusCode, message: String },
    #[error("username {0} is taken")]
    Taken(String),
    #[error("wrong username or password")]
    WrongLogin,
    /// A budget is spent: try again after `retry_after` seconds.
    #[error("too many {what}: try again in {retry_after} s")]
    Throttled {
        what: &'static str,
        retry_after: u64,
    },
    /// The request needs a login it does not carry.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A cookie-authenticated API write without `Content-Type: application/json`.
    #[error("with cookie authentication, send Content-Type: application/json")]
    NotJson,
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl AppError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Unreadable { status, .. } => *status,
            AppError::Taken(_) => StatusCode::CONFLICT,
            AppError::WrongLogin | AppError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AppError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Db(DbError::Closed | DbError::Full | DbError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AppError::Db(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds for `Retry-After`, where waiting helps.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        match self {
            AppError::Throttled { retry_after, .. } => Some(*retry_after),
            AppError::Db(DbError::Closed | DbError::Full) => Some(30),
            // A database server coming back (a restart, a failover) takes seconds.
            AppError::Db(DbError::Unavailable(_)) => Some(5),
            _ => None,
        }
    }

    /// What a client is told: storage details stay in the log.
    pub(crate) fn public_message(&self) -> String {
        match self {
            AppError::Db(DbError::Closed) => "the server is shutting down".into(),
            AppError::Db(DbError::Unavailable(_)) => {
                "the database is unavailable; try again shortly".into()
            }
            AppError::Db(DbError::Full) => {
                "the disk holding the database is full: nothing was written; try again later".into()
            }
            AppError::Db(_) => "database error".into(),
            other => other.to_string(),
        }
    }
}

/// A logged-in visitor.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) session: Session,
}

/// Usernames: 3–32 of `a-z 0-9 _ -` (the API contract).
pub(crate) fn check_username(name: &str) -> Result<(), AppError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !(3..=32).contains(&name.len()) || !ok_chars {
        return Err(AppError::Invalid(
            "username must be 3 to 32 characters of a-z, 0-9, _ and -".into(),
        ));
    }
    Ok(())
}

/// Passwords: at least 8 characters. The upper bound only keeps one request from
/// feeding argon2 a megabyte.
pub(crate) fn check_password(password: &str) -> Result<(), AppError> {
    match password.chars().count() {
        n if n < 8 => Err(AppError::Invalid(
            "password must be at least 8 characters".into(),
        )),
        n if n > 1024 => Err(AppError::Invalid(
            "password must be at most 1024 characters".into(),
        )),
        _ => Ok(()),
    }
}

/// A post body: 1–2000 characters, not only whitespace.
pub(crate) fn check_post_body(body: &str) -> Result<(), AppError> {
    let chars = body.chars().count();
    if chars == 0 || body.trim().is_empty() {
        return Err(AppError::Invalid("body must not be empty".into()));
    }
    if chars > MAX_POST_CHARS {
        return Err(AppError::Invalid(format!(
            "body must be at most {MAX_POST_CHARS} characters (it has {chars})"
        )));
    }
    Ok(())
}

fn client(ctx: &Ctx) -> Option<IpAddr> {
    ctx.conn.as_ref().map(|c| c.peer.ip())
}

impl App {
    /// Creates an account: validates, takes a sign-up from the address's budget,
    /// hashes the password (within the argon2 cap) and stores the user.
    pub(crate) async fn register(
        &self,
        ctx: &Ctx,
        username: &str,
        password: &str,
    ) -> Result<(), AppError> {
        check_username(username)?;
        check_password(password)?;
        self.throttle
            .reserve_signup(client(ctx))
            .map_err(|retry_after| AppError::Throttled {
                what: "sign-ups from this address",
                retry_after,
            })?;
        let password = password.to_string();
        let hash = self
            .argon2(move || auth::hash_password(&password))
            .await?
            .map_err(DbError::Storage)?;
        let created = ctx
            .trace
            .db_write(self.store.create_user(User {
                username: username.to_string(),
                password_hash: hash,
                created_at: now(),
            }))
            .await?;
        match created {
            UserCreated::Created => {
                crate::metrics::site::registration();
                Ok(())
            }
            UserCreated::Taken => Err(AppError::Taken(username.to_string())),
        }
    }

    /// Checks a login. The attempt is reserved from both budgets (account and
    /// address) before argon2 runs; a correct password gives the tokens back. A name
    /// that cannot be valid is refused without storing it or hashing anything.
    pub(crate) async fn check_login(
        &self,
        ctx: &Ctx,
        username: &str,
        password: &str,
    ) -> Result<(), AppError> {
        let outcome = self.check_login_uncounted(ctx, username, password).await;
        crate::metrics::site::login(match &outcome {
            Ok(()) => crate::metrics::site::Login::Ok,
            Err(AppError::Throttled { .. }) => crate::metrics::site::Login::Throttled,
            Err(_) => crate::metrics::site::Login::Failed,
        });
        outcome
    }

    async fn check_login_uncounted(
        &self,
        ctx: &Ctx,
        username: &str,
        password: &str,
    ) -> Result<(), AppError> {
        let valid_name = check_username(username).is_ok();
        let throttled = |retry_after| AppError::Throttled {
            what: "failed logins",
            retry_after,
        };
        let ticket = self
            .throttle
            .reserve_login(valid_name.then_some(username), client(ctx))
            .map_err(throttled)?;
        if !valid_name {
            return Err(AppError::WrongLogin);
        }
        let user = ctx
            .trace
            .db_read(self.store.user(username.to_string()))
            .await?;
        let phc = match &user {
            Some(user) => user.password_hash.clone(),
            None => self.decoy_hash().await?,
        };
        let password = password.to_string();
        let matches = self
            .argon2(move || auth::verify_password(&password, &phc))
            .await?;
        if user.is_some() && matches {
            self.throttle.login_succeeded(ticket);
            Ok(())
        } else {
            tracing::debug!("app: failed login for {username}");
            Err(AppError::WrongLogin)
        }
    }

    /// A real argon2 hash of nothing in particular: a login for a name that does
    /// not exist is checked against it, so it takes as long as a wrong password and
    /// does not reveal which names exist.
    async fn decoy_hash(&self) -> Result<String, AppError> {
        if let Some(hash) = self.decoy_hash.get() {
            return Ok(hash.clone());
        }
        let hash = self
            .argon2(|| auth::hash_password("decoy password"))
            .await?
            .map_err(DbError::Storage)?;
        Ok(self.decoy_hash.get_or_init(|| hash).clone())
    }

    /// Starts a session for `username`; returns the token (for the cookie or
    /// `Bearer`) and when it expires.
    pub(crate) async fn start_session(
        &self,
        ctx: &Ctx,
        username: &str,
    ) -> Result<(String, u64), AppError> {
        let token = auth::new_token();
        let created_at = now();
        let expires_at = created_at + self.session_ttl.as_secs().max(1);
        ctx.trace
            .db_write(self.store.create_session(
                auth::token_hash(&token),
                Session {
                    username: username.to_string(),
                    created_at,
                    expires_at,
                },
            ))
            .await?;
        Ok((token, expires_at))
    }

    /// Ends the session a token names (if any). Ending it twice is not an error.
    pub(crate) async fn end_session(&self, ctx: &Ctx, token: &str) -> Result<(), AppError> {
        ctx.trace
            .db_write(self.store.delete_session(auth::token_hash(token)))
            .await?;
        Ok(())
    }

    /// The session a token names, if it exists and has not expired.
    pub(crate) async fn login_for(
        &self,
        ctx: &Ctx,
        token: &str,
    ) -> Result<Option<Login>, AppError> {
        let session = ctx
            .trace
            .db_read(self.store.session(auth::token_hash(token), now()))
            .await?;
        Ok(session.map(|session| Login { session }))
    }

    /// The visitor logged in by the session cookie, if any.
    pub(crate) async fn cookie_login(&self, ctx: &Ctx) -> Result<Option<Login>, AppError> {
        match ctx.cookie(auth::SESSION_COOKIE) {
            Some(token) if !token.is_empty() => self.login_for(ctx, &token).await,
            _ => Ok(None),
        }
    }

    /// Validates and stores a post by `author`, within the account's posting rate.
    /// Returns once the post is durably committed.
    pub(crate) async fn add_post(
        &self,
        ctx: &Ctx,
        author: &str,
        body: &str,
    ) -> Result<Post, AppError> {
        check_post_body(body)?;
        self.throttle
            .reserve_post(author)
            .map_err(|retry_after| AppError::Throttled {
                what: "posts",
                retry_after,
            })?;
        let created_at = now();
        let new = NewPost {
            author: author.to_string(),
            body: body.to_string(),
            created_at,
        };
        let id = ctx.trace.db_write(self.store.create_post(new)).await?;
        crate::metrics::site::post();
        Ok(Post {
            id,
            author: author.to_string(),
            body: body.to_string(),
            created_at,
        })
    }

    /// Up to `limit` posts, newest first, older than `before` when given.
    pub(crate) async fn posts(
        &self,
        ctx: &Ctx,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Post>, AppError> {
        Ok(ctx.trace.db_read(self.store.posts(before, limit)).await?)
    }

    /// Counts a visit to the site; returns the new count once it is durable
    /// (group-committed with the other writes in flight).
    pub(crate) async fn count_visit(&self, ctx: &Ctx) -> Result<u64, AppError> {
        Ok(ctx
            .trace
            .db_write(self.store.count_visit(ctx.host.clone()))
            .await?)
    }

    /// Runs an argon2 computation on the blocking pool, within the cap. The permit
    /// moves into the blocking closure, so it is held until the hash finishes even
    /// if the client hangs up and this future is dropped: the cap bounds the hashes
    /// that exist, not the requests still listening for them.
    async fn argon2<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, AppError> {
        let permit = self
            .argon2_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| DbError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        .map_err(|e| AppError::Db(DbError::Storage(format!("password hashing failed: {e}"))))
    }
}
