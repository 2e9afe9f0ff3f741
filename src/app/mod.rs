//! The application server box: the site's logic. A small community board where
//! visitors register, log in and post short messages everyone can read, as HTML
//! pages ([`pages`], rendered by [`views`]) and as a JSON API ([`api`]).
//!
//! It sits behind the web server, which has already checked the host name and the
//! limits, and in front of the database, which it reaches only through [`Db`]
//! calls timed by the request's [`Trace`].

mod api;
pub(crate) mod auth;
mod pages;
mod throttle;
mod views;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Version};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

use crate::db::{Db, DbError, Session};
use crate::dns::Zones;
use crate::web::front::SiteHost;
use crate::web::{ConnInfo, Trace};
use auth::Csrf;

/// What the application needs from the rest of onebox.
#[derive(Debug)]
pub(crate) struct AppConfig {
    pub(crate) db: Db,
    pub(crate) zones: Zones,
    pub(crate) session_ttl: Duration,
}

#[derive(Debug)]
pub(crate) struct App {
    db: Db,
    zones: Zones,
    session_ttl: Duration,
    csrf: Csrf,
    /// A real argon2 hash of nothing in particular, computed on first use: a login
    /// for a name that does not exist is checked against it, so it takes as long as
    /// a wrong password and does not reveal which names exist.
    decoy_hash: OnceLock<String>,
    /// argon2 runs at most this many at once. Each takes 19 MiB and a core for tens
    /// of milliseconds; unbounded, a burst of logins would queue hundreds of them on
    /// the blocking pool and take gigabytes. Beyond the cap, requests wait their turn.
    argon2_slots: Arc<tokio::sync::Semaphore>,
    /// Failed-login budgets per account and per address.
    throttle: throttle::Throttle,
}

/// The outcome of a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoginCheck {
    Ok,
    Wrong,
    /// Too many failures lately: try again after this many seconds.
    Throttled(u64),
}

pub(crate) fn router(config: AppConfig) -> Router {
    let app = Arc::new(App {
        db: config.db,
        zones: config.zones,
        session_ttl: config.session_ttl,
        csrf: Csrf::new(),
        decoy_hash: OnceLock::new(),
        argon2_slots: Arc::new(tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
        )),
        throttle: throttle::Throttle::default(),
    });
    Router::new()
        .route("/", get(pages::home))
        .route("/register", get(pages::register_form).post(pages::register))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/posts", post(pages::create_post))
        .route("/api/v1/users", post(api::create_user))
        .route(
            "/api/v1/sessions",
            post(api::create_session).delete(api::delete_session),
        )
        .route("/api/v1/posts", get(api::list_posts).post(api::create_post))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn(name_route))
        .with_state(app)
}

/// Tells the trace which route answered, for the access log and the page panel.
async fn name_route(req: Request, next: Next) -> Response {
    if let (Some(trace), Some(path)) = (
        req.extensions().get::<Arc<Trace>>(),
        req.extensions().get::<MatchedPath>(),
    ) {
        trace.set_route(format!("{} {}", req.method(), path.as_str()));
    }
    next.run(req).await
}

/// Everything a handler needs to know about the request it is answering.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) trace: Arc<Trace>,
    pub(crate) host: String,
    pub(crate) conn: Option<ConnInfo>,
    pub(crate) version: Version,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: HeaderMap,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let trace = parts
            .extensions
            .get::<Arc<Trace>>()
            .cloned()
            .unwrap_or_else(|| Arc::new(Trace::new(Instant::now())));
        let host = parts
            .extensions
            .get::<SiteHost>()
            .map(|h| h.0.clone())
            .unwrap_or_default();
        Ok(Ctx {
            trace,
            host,
            conn: parts.extensions.get::<ConnInfo>().cloned(),
            version: parts.version,
            method: parts.method.clone(),
            path: parts.uri.path().to_string(),
            headers: parts.headers.clone(),
        })
    }
}

impl Ctx {
    pub(crate) fn cookie(&self, name: &str) -> Option<String> {
        auth::cookies(&self.headers).remove(name)
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.tls)
    }
}

/// A logged-in visitor.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub(crate) session: Session,
}

impl App {
    /// The session a token names, if it exists and has not expired.
    async fn login_for(&self, ctx: &Ctx, token: &str) -> Result<Option<Login>, DbError> {
        let token_hash = auth::token_hash(token);
        let session = ctx
            .trace
            .db_read(self.db.session(token_hash, now()))
            .await?;
        Ok(session.map(|session| Login { session }))
    }

    /// The visitor logged in by the session cookie, if any.
    async fn cookie_login(&self, ctx: &Ctx) -> Result<Option<Login>, DbError> {
        match ctx.cookie(auth::SESSION_COOKIE) {
            Some(token) if !token.is_empty() => self.login_for(ctx, &token).await,
            _ => Ok(None),
        }
    }

    /// Starts a session for `username`; returns the token for the cookie or `Bearer`.
    async fn start_session(&self, ctx: &Ctx, username: String) -> Result<(String, u64), DbError> {
        let token = auth::new_token();
        let created_at = now();
        let expires_at = created_at + self.session_ttl.as_secs().max(1);
        ctx.trace
            .db_write(self.db.create_session(
                auth::token_hash(&token),
                Session {
                    username,
                    created_at,
                    expires_at,
                },
            ))
            .await?;
        Ok((token, expires_at))
    }

    fn session_cookie(&self, ctx: &Ctx, token: &str) -> String {
        auth::set_cookie(
            auth::SESSION_COOKIE,
            token,
            self.session_ttl.as_secs().max(1),
            ctx.is_tls(),
        )
    }

    /// Checks a password on the blocking pool (argon2 takes tens of milliseconds),
    /// unless this account or address has used up its failed-login budget.
    async fn check_login(
        &self,
        ctx: &Ctx,
        username: &str,
        password: &str,
    ) -> Result<LoginCheck, DbError> {
        let client = ctx.conn.as_ref().map(|c| c.peer.ip());
        if let Some(wait) = self.throttle.check(username, client) {
            return Ok(LoginCheck::Throttled(wait));
        }
        let user = ctx
            .trace
            .db_read(self.db.user(username.to_string()))
            .await?;
        let phc = match &user {
            Some(user) => user.password_hash.clone(),
            None => self
                .decoy_hash
                .get_or_init(|| auth::hash_password("decoy password").unwrap_or_default())
                .clone(),
        };
        let password = password.to_string();
        let matches = self
            .argon2(move || auth::verify_password(&password, &phc))
            .await
            .unwrap_or(false);
        if user.is_some() && matches {
            Ok(LoginCheck::Ok)
        } else {
            self.throttle.failed(username, client);
            Ok(LoginCheck::Wrong)
        }
    }

    /// Runs an argon2 computation on the blocking pool, within the cap.
    async fn argon2<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, DbError> {
        let _slot = self
            .argon2_slots
            .acquire()
            .await
            .map_err(|_| DbError::Closed)?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| DbError::Storage(format!("password hashing failed: {e}")))
    }
}

/// How long a login lasts: 7 days, or `ONEBOX_SESSION_TTL_SECS` seconds. The
/// variable is deliberately not a flag: it exists so tests can watch a session
/// expire. serve.rs reads it once at startup and passes the value down.
pub(crate) fn session_ttl_from_env() -> anyhow::Result<Duration> {
    use anyhow::Context as _;
    match std::env::var("ONEBOX_SESSION_TTL_SECS") {
        Ok(text) => text
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .with_context(|| {
                format!("ONEBOX_SESSION_TTL_SECS={text}: expected whole seconds above 0")
            }),
        Err(_) => Ok(Duration::from_secs(7 * 24 * 3600)),
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// RFC 3339 in UTC, e.g. `2026-11-26T06:54:12Z`.
pub(crate) fn rfc3339(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_675_452), "2026-11-26T06:44:12Z");
    }
}
