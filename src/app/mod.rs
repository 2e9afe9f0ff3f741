//! The application server box: the site's logic. A small community board where
//! visitors register, log in and post short messages everyone can read, as HTML
//! pages ([`pages`], rendered by [`views`]) and as a JSON API ([`api`]), both thin
//! front-ends over one core ([`domain`]).
//!
//! It sits behind the web server, which has already checked the host name and the
//! limits and filled in the request context ([`crate::request`]), and in front of
//! the storage, which it reaches only through the [`Store`] interface, each call
//! timed by the request's [`Trace`]. It knows nothing of the web server: serve.rs
//! builds it with [`build`] and hands it over.

mod api;
pub(crate) mod auth;
mod domain;
mod pages;
mod throttle;
mod views;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{FromRequestParts, MatchedPath};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Version};
use axum::routing::{get, post};

use crate::db::Store;
use crate::dns::Zones;
use crate::request::{ConnInfo, HomePage, SiteHost, Trace};
use auth::Csrf;

/// At most this many argon2 computations run at once. Each takes 19 MiB and a core
/// for tens of milliseconds; the cap bounds their memory at about 76 MiB however
/// many sign-ups and logins arrive. Beyond it, requests wait their turn.
const MAX_HASHES: usize = 4;

/// How a recursive resolver found a name for one client, for the "How this page
/// reached you" panel. Plain strings: the app knows nothing of DNS messages or of
/// the resolver that produced them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResolutionPath {
    /// The zones whose servers were asked, in order, each with the server:
    /// `(".", "127.0.0.2:53")`, `("com.", "127.0.0.3:53")`, ...
    pub(crate) asked: Vec<(String, String)>,
    /// The resolver answered from its cache; `asked` is then the walk that
    /// filled the cache, when it is still remembered.
    pub(crate) from_cache: bool,
    /// How long ago the resolution happened.
    pub(crate) seconds_ago: u64,
}

/// Finds the latest resolution of a host name (no trailing dot, any case) asked
/// by a client address. serve.rs builds it over the toy Internet's resolver; it
/// is absent when no resolver runs.
#[derive(Clone)]
pub(crate) struct Resolutions(Arc<LookupFn>);

/// The lookup behind [`Resolutions`]: host name and client address in, path out.
type LookupFn = dyn Fn(&str, std::net::IpAddr) -> Option<ResolutionPath> + Send + Sync;

impl Resolutions {
    pub(crate) fn new(
        lookup: impl Fn(&str, std::net::IpAddr) -> Option<ResolutionPath> + Send + Sync + 'static,
    ) -> Self {
        Self(Arc::new(lookup))
    }

    fn lookup(&self, host: &str, client: std::net::IpAddr) -> Option<ResolutionPath> {
        (self.0)(host, client)
    }
}

impl std::fmt::Debug for Resolutions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolutions(..)")
    }
}

/// The recent changes to our zones, newest first, one line each ("serial 8:
/// UPDATE of foobar.com. by onebox-update."): serve.rs builds it over the live
/// view's events, so the home page can show them without knowing DNS.
#[derive(Clone)]
pub(crate) struct Changes(Arc<dyn Fn() -> Vec<String> + Send + Sync>);

impl Changes {
    pub(crate) fn new(recent: impl Fn() -> Vec<String> + Send + Sync + 'static) -> Self {
        Self(Arc::new(recent))
    }

    fn recent(&self) -> Vec<String> {
        (self.0)()
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Changes(..)")
    }
}

/// What the application needs from the rest of onebox.
#[derive(Debug)]
pub(crate) struct AppConfig {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) zones: Zones,
    /// The toy Internet's resolver, when it runs: the home page shows how it
    /// found the name.
    pub(crate) resolutions: Option<Resolutions>,
    /// The recent changes to our zones, for the home page.
    pub(crate) changes: Option<Changes>,
    pub(crate) session_ttl: Duration,
    /// `--post-rate`: posts per minute per account; 0 turns the limit off.
    pub(crate) post_rate: u32,
    /// `--node-name`: the home page says which node served it.
    pub(crate) node_name: Option<String>,
}

#[derive(Debug)]
pub(crate) struct App {
    store: Arc<dyn Store>,
    zones: Zones,
    resolutions: Option<Resolutions>,
    changes: Option<Changes>,
    session_ttl: Duration,
    node_name: Option<String>,
    csrf: Csrf,
    /// The argon2 hash a login for an unknown name is checked against, computed
    /// on first use (see `decoy_hash` in [`domain`]).
    decoy_hash: OnceLock<String>,
    /// [`MAX_HASHES`] permits; each argon2 run holds one until it finishes.
    argon2_slots: Arc<tokio::sync::Semaphore>,
    /// The abuse budgets: failed logins, sign-ups, posts.
    throttle: throttle::Throttle,
    /// The anonymous board, pre-rendered per host and posts version.
    boards: pages::Boards,
}

/// The application's router, and its anonymous home page as a function of plain
/// values ([`HomePage`]) for the web server's fast path: both over one [`App`].
pub(crate) fn build(config: AppConfig) -> (Router, HomePage) {
    return_hash_memory_to_the_os();
    let app = Arc::new(App {
        store: config.store,
        zones: config.zones,
        resolutions: config.resolutions,
        changes: config.changes,
        session_ttl: config.session_ttl,
        node_name: config.node_name,
        csrf: Csrf::new(),
        decoy_hash: OnceLock::new(),
        argon2_slots: Arc::new(tokio::sync::Semaphore::new(MAX_HASHES)),
        throttle: throttle::Throttle::new(config.post_rate),
        boards: pages::Boards::default(),
    });
    let home_app = app.clone();
    let home = HomePage::new(move |req| Box::pin(pages::anonymous_home(home_app.clone(), req)));
    let router = Router::new()
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
        .with_state(app);
    (router, home)
}

/// argon2 allocates a 19 MiB buffer per hash. glibc serves allocations above its
/// mmap threshold with their own `mmap` and unmaps them on free, but the threshold
/// adapts upwards (to 32 MiB) after the first large free, after which the buffers
/// come from the heap arenas, and glibc keeps freed arena memory: 100 concurrent
/// sign-ups left the process at 1.2 GB for good. Pinning the threshold at 128 KiB
/// (which also stops it adapting) makes every argon2 buffer an mmap that goes back
/// to the OS when the hash ends. Other allocators (musl) already behave this way.
fn return_hash_memory_to_the_os() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only changes a malloc tuning parameter; it is
            // thread-safe and any value is valid for M_MMAP_THRESHOLD up to 32 MiB.
            let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024) };
            if ok != 1 {
                tracing::warn!(
                    "app: could not set malloc's mmap threshold; hash memory may be kept"
                );
            }
        });
    }
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

/// Every handler takes a [`Ctx`] first (after its state), so building it is where
/// the trace learns which route answered (for the access log and the page panel)
/// and which database engine serves it (for `Server-Timing`): a middleware layer
/// around the router did this before, at the cost of a boxed future per request.
impl FromRequestParts<Arc<App>> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Infallible> {
        let trace = parts
            .extensions
            .get::<Arc<Trace>>()
            .cloned()
            .unwrap_or_else(|| Arc::new(Trace::new(Instant::now())));
        trace.set_db_name(app.store.backend());
        if let Some(path) = parts.extensions.get::<MatchedPath>() {
            trace.set_route(format!("{} {}", parts.method, path.as_str()));
        }
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
        auth::cookie(&self.headers, name)
    }

    pub(crate) fn is_tls(&self) -> bool {
        self.conn.as_ref().is_some_and(|c| c.tls)
    }
}

impl App {
    fn session_cookie(&self, ctx: &Ctx, token: &str) -> String {
        auth::set_cookie(
            auth::SESSION_COOKIE,
            token,
            self.session_ttl.as_secs().max(1),
            ctx.is_tls(),
        )
    }
}

/// How long a login lasts: 7 days, or `ONEBOX_SESSION_TTL_SECS` seconds. The
/// variable is deliberately not a flag: it exists so tests can watch a session
/// expire. serve.rs reads it once at startup and passes the value down.
pub(crate) fn session_ttl_from_env() -> anyhow::Result<Duration> {
    let week = Duration::from_secs(7 * 24 * 3600);
    crate::request::seconds_from_env("ONEBOX_SESSION_TTL_SECS", week)
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
    use time::format_description::well_known::Rfc3339;
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        // Only a time beyond the year 9999 gets here; no stored post has one.
        .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_675_452), "2026-11-26T06:44:12Z");
    }
}
