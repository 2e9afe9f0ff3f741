//! The HTML pages: the board, register, log in, log out, post. Forms post back to
//! the server and get a redirect (post/redirect/get), so reloading never resends
//! a form. Every form carries a CSRF token.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError, RwLock, Weak};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, PreEscaped};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::domain::{AppError, Login};
use super::views::{self, Frame, Reached};
use super::{App, Ctx, auth};
use crate::db::{DbError, Post};
use crate::dns::{ChainLink, ZoneSet, Zones};
use crate::request::{HomeRequest, millis};

/// Posts per page on the board.
const PAGE: usize = 20;
/// How long the CSRF cookie lives (it is re-issued whenever it is missing).
const CSRF_COOKIE_SECS: u64 = 30 * 24 * 3600;

/// Who is looking at a page: their login (if any) and their CSRF cookie.
struct Visitor {
    login: Option<Login>,
    csrf_cookie: String,
    /// The cookie is new and must be sent with this response.
    new_csrf: bool,
}

impl Visitor {
    fn user(&self) -> Option<&str> {
        self.login.as_ref().map(|l| l.session.username.as_str())
    }
}

impl App {
    async fn visitor(&self, ctx: &Ctx) -> Result<Visitor, AppError> {
        let login = self.cookie_login(ctx).await?;
        let (csrf_cookie, new_csrf) = match ctx.cookie(auth::CSRF_COOKIE) {
            Some(value) if !value.is_empty() => (value, false),
            _ => (auth::Csrf::new_cookie_value(), true),
        };
        Ok(Visitor {
            login,
            csrf_cookie,
            new_csrf,
        })
    }

    /// Renders with the visitor's frame and sends the cookies the page needs.
    fn render(
        &self,
        ctx: &Ctx,
        visitor: &Visitor,
        status: StatusCode,
        title: &str,
        body: impl FnOnce(&Frame<'_>) -> Markup,
    ) -> Response {
        let token = self.csrf.token_for(&visitor.csrf_cookie);
        let frame = Frame {
            title,
            host: &ctx.host,
            user: visitor.user(),
            csrf: &token,
        };
        self.respond(ctx, visitor, status, body(&frame).into_string())
    }

    /// A rendered page with the headers every page carries and the visitor's
    /// CSRF cookie when it is new.
    fn respond(&self, ctx: &Ctx, visitor: &Visitor, status: StatusCode, html: String) -> Response {
        let mut response = (status, Html(html)).into_response();
        let headers = response.headers_mut();
        // Room for every header the page and the web server's front add (about
        // ten): a map that grows rehashes and reallocates on the way, once per
        // doubling, for every page.
        headers.reserve(12);
        // Pages are per-visitor: never cache them in shared caches.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // No scripts at all, and forms may only post back to us.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
        if visitor.new_csrf {
            let cookie = auth::set_cookie(
                auth::CSRF_COOKIE,
                &visitor.csrf_cookie,
                CSRF_COOKIE_SECS,
                ctx.is_tls(),
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, value);
            }
        }
        response
    }

    /// A form's CSRF token must match the visitor's cookie: `Some(403 page)` if not.
    fn csrf_rejection(&self, ctx: &Ctx, token: &str) -> Option<Response> {
        let cookie = ctx.cookie(auth::CSRF_COOKIE);
        if self.csrf.verify(cookie.as_deref(), Some(token)) {
            return None;
        }
        Some(plain_page(
            ctx,
            StatusCode::FORBIDDEN,
            "This form could not be verified",
            "The form was missing its security token, or it came from another site. Go back, reload the page and try again (cookies must be enabled).",
        ))
    }
}

/// A page without visitor-specific parts, for errors.
fn plain_page(ctx: &Ctx, status: StatusCode, heading: &str, text: &str) -> Response {
    let frame = Frame {
        title: heading,
        host: &ctx.host,
        user: None,
        csrf: "",
    };
    let mut response = (status, views::message(&frame, heading, text)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error no form can show inline (the database, mostly): a page of its own.
fn error_page(ctx: &Ctx, e: &AppError) -> Response {
    let (heading, text) = match e {
        AppError::Db(crate::db::DbError::Full) => (
            "Nothing was saved",
            "The disk holding the database is full. Reading works; please try writing again later."
                .to_string(),
        ),
        AppError::Db(_) => (
            "Something went wrong",
            "The database could not answer. Please try again in a moment.".to_string(),
        ),
        other => (
            "That did not work",
            format!("{}.", capitalised(&other.public_message())),
        ),
    };
    if let AppError::Db(e) = e {
        tracing::error!("app: {e}");
    }
    let mut response = plain_page(ctx, e.status(), heading, &text);
    with_retry_after(&mut response, e);
    response
}

fn with_retry_after(response: &mut Response, e: &AppError) {
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn redirect(location: &str, cookies: &[String]) -> Response {
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    for cookie in cookies {
        if let Ok(value) = HeaderValue::from_str(cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// A form that carries the CSRF token.
trait CsrfForm {
    fn csrf(&self) -> &str;
}

/// `POST /register` and `POST /login`.
#[derive(Debug, Deserialize)]
pub(super) struct AccountForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /posts`.
#[derive(Debug, Deserialize)]
pub(super) struct PostForm {
    #[serde(default)]
    body: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /logout`: only the token.
#[derive(Debug, Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfForm for AccountForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for PostForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl CsrfForm for TokenForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// `?before=ID` on the board.
#[derive(Debug, Deserialize)]
pub(super) struct BoardQuery {
    before: Option<String>,
}

/// A posted form, once it is readable and carries a valid CSRF token: every form
/// handler starts here, so none can forget the token.
fn form_fields<T: DeserializeOwned + CsrfForm>(
    app: &App,
    ctx: &Ctx,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, Box<Response>> {
    let Form(form) = form.map_err(|rejection| {
        Box::new(plain_page(
            ctx,
            rejection.status(),
            "That form could not be read",
            &rejection.body_text(),
        ))
    })?;
    match app.csrf_rejection(ctx, form.csrf()) {
        Some(rejection) => Err(Box::new(rejection)),
        None => Ok(form),
    }
}

/// `GET /`: the board, newest posts first, and how this page reached you.
pub(super) async fn home(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    query: Result<Query<BoardQuery>, QueryRejection>,
) -> Response {
    let before = query
        .ok()
        .and_then(|Query(q)| q.before)
        .and_then(|b| b.parse::<u64>().ok());
    board(&app, &ctx, before, StatusCode::OK, None, "").await
}

/// `GET /` for a visitor with no cookies over HTTP/1.x, asked by the web server's
/// home fast path: the same page, headers and trace as [`home`] gives that request
/// through the router (the route, the backend's name, the visit counted durably
/// before the page is built), from plain values instead of axum's extractors.
pub(super) async fn anonymous_home(app: Arc<App>, req: HomeRequest) -> Response {
    // What the router and `Ctx`'s extractor record for the same request.
    req.trace.set_db_name(app.store.backend());
    req.trace.set_route("GET /".to_string());
    let ctx = Ctx {
        trace: req.trace,
        host: req.host,
        conn: Some(req.conn),
        version: req.version,
        method: Method::GET,
        path: "/".to_string(),
        // No cookies: no session to look up and a new CSRF cookie, as on the
        // ordinary path; an empty map allocates nothing.
        headers: HeaderMap::new(),
    };
    board(&app, &ctx, None, StatusCode::OK, None, "").await
}

async fn board(
    app: &App,
    ctx: &Ctx,
    before: Option<u64>,
    status: StatusCode,
    error: Option<&str>,
    draft: &str,
) -> Response {
    let visitor = match app.visitor(ctx).await {
        Ok(v) => v,
        Err(e) => return error_page(ctx, &e),
    };
    // The counter is a nicety: a page that cannot count still shows, when the
    // disk is full or when the database takes no writes (a PostgreSQL primary
    // down, its replica serving the reads).
    let visits = match app.count_visit(ctx).await {
        Ok(n) => Ok(n),
        Err(AppError::Db(crate::db::DbError::Full)) => Err(views::NotCounted::DiskFull),
        Err(AppError::Db(crate::db::DbError::Unavailable(_))) => Err(views::NotCounted::NoWrites),
        Err(e) => return error_page(ctx, &e),
    };
    // The newest posts as an anonymous visitor sees them are the same for every
    // such view until a post is written: render them once per posts version and
    // splice in this request's panel. The version is read before the posts, so a
    // post committed meanwhile makes the next view render again.
    let plain = visitor.login.is_none() && before.is_none() && error.is_none() && draft.is_empty();
    if let Some(version) = app.store.posts_version().filter(|_| plain) {
        let board = match app.boards.get(&ctx.host, version) {
            Some(board) => board,
            None => match newest_board(app, ctx, version).await {
                Ok(board) => board,
                Err(e) => return error_page(ctx, &e),
            },
        };
        let panel = views::reached_panel(&reached(app, ctx, visits)).into_string();
        let mut html = String::with_capacity(board.front.len() + panel.len() + board.back.len());
        html.push_str(&board.front);
        html.push_str(&panel);
        html.push_str(&board.back);
        return app.respond(ctx, &visitor, status, html);
    }
    let (posts, older) = match page_of_posts(app, ctx, before).await {
        Ok(page) => page,
        Err(e) => return error_page(ctx, &e),
    };
    let reached = reached(app, ctx, visits);
    app.render(ctx, &visitor, status, "Community board", |frame| {
        views::home(
            frame,
            &posts,
            older,
            before.is_some(),
            error,
            draft,
            views::reached_panel(&reached),
        )
    })
}

/// A page of posts older than `before`, and the id for the "older posts" link
/// when there are more.
async fn page_of_posts(
    app: &App,
    ctx: &Ctx,
    before: Option<u64>,
) -> Result<(Vec<Post>, Option<u64>), AppError> {
    // One extra row tells whether an "older posts" link is needed.
    let mut posts = app.posts(ctx, before, PAGE + 1).await?;
    let older = (posts.len() > PAGE).then(|| {
        posts.truncate(PAGE);
        posts.last().map(|p| p.id)
    });
    Ok((posts, older.flatten()))
}

/// Stands where the panel goes while the rest of the board is rendered once. No
/// post can forge it: maud escapes every `<` in what visitors write.
const PANEL_SLOT: &str = "<onebox-panel-slot>";

/// The anonymous newest board of one host, rendered around the panel's place.
#[derive(Debug)]
struct Board {
    posts_version: u64,
    front: String,
    back: String,
}

/// The rendered boards, one per host (the web server admits only the zone's
/// site names, so this stays small); each is replaced when the posts change.
/// Also each host's DNS chain for the panel, worked out once per zone set.
#[derive(Default)]
pub(super) struct Boards {
    boards: RwLock<HashMap<String, Arc<Board>>>,
    /// Keyed by host, with a weak handle on the zone set it was read from: the
    /// handle keeps that set's address from being reused (so comparing addresses
    /// tells whether the zones were reloaded since) without keeping the set itself.
    chains: RwLock<HashMap<String, KnownChain>>,
}

/// A host's chain and the zone set it was read from.
type KnownChain = (Weak<ZoneSet>, Arc<[ChainLink]>);

impl std::fmt::Debug for Boards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Boards(..)")
    }
}

impl Boards {
    /// `host`'s chain in the live zones, as the panel shows it.
    fn chain(&self, zones: &Zones, host: &str) -> Arc<[ChainLink]> {
        // Taken before the chain is read: if a reload lands in between, the chain
        // is newer than its key and the next view reads it again.
        let set = zones.snapshot();
        if let Some((seen, chain)) = self
            .chains
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            && std::ptr::eq(seen.as_ptr(), Arc::as_ptr(&set))
        {
            return chain.clone();
        }
        let chain: Arc<[ChainLink]> = zones.chain(host).into();
        self.chains
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_string(), (Arc::downgrade(&set), chain.clone()));
        chain
    }

    fn get(&self, host: &str, posts_version: u64) -> Option<Arc<Board>> {
        self.boards
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(host)
            .filter(|board| board.posts_version == posts_version)
            .cloned()
    }

    fn put(&self, host: &str, board: Arc<Board>) {
        self.boards
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(host.to_string(), board);
    }
}

/// Reads the newest posts and renders the anonymous board around the panel's
/// slot, keeping it for the views that follow at the same posts version.
async fn newest_board(app: &App, ctx: &Ctx, posts_version: u64) -> Result<Arc<Board>, AppError> {
    let (posts, older) = page_of_posts(app, ctx, None).await?;
    let frame = Frame {
        title: "Community board",
        host: &ctx.host,
        user: None,
        // No form on an anonymous board carries it.
        csrf: "",
    };
    let page = views::home(
        &frame,
        &posts,
        older,
        false,
        None,
        "",
        PreEscaped(PANEL_SLOT.into()),
    )
    .into_string();
    let (front, back) = page
        .split_once(PANEL_SLOT)
        .ok_or_else(|| AppError::Db(DbError::Storage("the board lost its panel slot".into())))?;
    let board = Arc::new(Board {
        posts_version,
        front: front.to_string(),
        back: back.to_string(),
    });
    app.boards.put(&ctx.host, board.clone());
    Ok(board)
}

/// Gathers the facts for the panel, all from this request: the live zone, the
/// connection, the protocol, and the trace's database counts so far.
fn reached(app: &App, ctx: &Ctx, visits: Result<u64, views::NotCounted>) -> Reached {
    let chain = app.boards.chain(&app.zones, &ctx.host);
    let snapshot = ctx.trace.snapshot();
    let local_ip = ctx.conn.as_ref().map(|c| c.local.ip());
    // Compared as addresses, not as text: parsing is cheaper than formatting,
    // and this runs on every view.
    let local_is_dns_address = local_ip.map(|ip| {
        chain.iter().any(|l| {
            (l.rtype == "A" || l.rtype == "AAAA") && l.data.parse::<IpAddr>().ok() == Some(ip)
        })
    });
    let tls = ctx.is_tls();
    let protocol = match (ctx.version, tls) {
        (Version::HTTP_2, false) => Cow::Borrowed("HTTP/2 (h2c, cleartext)"),
        (Version::HTTP_2, true) => Cow::Borrowed("HTTP/2 (h2)"),
        (Version::HTTP_11, _) => Cow::Borrowed("HTTP/1.1"),
        (Version::HTTP_10, _) => Cow::Borrowed("HTTP/1.0"),
        (other, _) => Cow::Owned(format!("{other:?}")),
    };
    Reached {
        host: ctx.host.clone(),
        chain,
        peer: ctx.conn.as_ref().map(|c| address_text(c.peer)),
        local: ctx.conn.as_ref().map(|c| address_text(c.local)),
        local_is_dns_address,
        protocol,
        tls,
        route: snapshot
            .route
            .unwrap_or_else(|| format!("{} {}", ctx.method, ctx.path)),
        db_name: app.store.backend(),
        db_reads: snapshot.db_reads,
        db_writes: snapshot.db_writes,
        db_ms: millis(snapshot.db),
        so_far_ms: millis(snapshot.elapsed),
        web_server: ctx
            .conn
            .as_ref()
            .map_or(crate::request::ConnInfo::HYPER, |c| c.server),
        visits,
        node: app.node_name.clone(),
        resolution: app
            .resolutions
            .as_ref()
            .zip(ctx.conn.as_ref())
            .and_then(|(resolutions, conn)| resolutions.lookup(&ctx.host, conn.peer.ip())),
        changes: app.changes.as_ref().map(|c| c.recent()).unwrap_or_default(),
    }
}

/// `addr` as `Display` writes it (`127.0.0.1:8080`, `[::1]:8080`). IPv4, the
/// common case, is written digit by digit: the formatting machinery costs more
/// than the rest of the panel's connection line, twice per view.
fn address_text(addr: SocketAddr) -> String {
    let SocketAddr::V4(v4) = addr else {
        return addr.to_string();
    };
    let mut out = String::with_capacity(21);
    for (i, octet) in v4.ip().octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_decimal(&mut out, u16::from(octet));
    }
    out.push(':');
    push_decimal(&mut out, v4.port());
    out
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u16) {
    for &digit in crate::log::decimal(u64::from(n), &mut [0; 20]) {
        out.push(char::from(digit));
    }
}

pub(super) async fn register_form(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    account_page(&app, &ctx, true, StatusCode::OK, "", None).await
}

pub(super) async fn login_form(State(app): State<Arc<App>>, ctx: Ctx) -> Response {
    account_page(&app, &ctx, false, StatusCode::OK, "", None).await
}

async fn account_page(
    app: &App,
    ctx: &Ctx,
    register: bool,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    let visitor = match app.visitor(ctx).await {
        Ok(v) => v,
        Err(e) => return error_page(ctx, &e),
    };
    let title = if register {
        "Create an account"
    } else {
        "Log in"
    };
    app.render(ctx, &visitor, status, title, |frame| {
        views::account_form(frame, register, username, error)
    })
}

/// `POST /register`: create the account, log in, back to the board. A refusal
/// re-renders the form with the name kept.
pub(super) async fn register(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    account_submit(&app, &ctx, form, true).await
}

/// `POST /login`.
pub(super) async fn login(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<AccountForm>, FormRejection>,
) -> Response {
    account_submit(&app, &ctx, form, false).await
}

/// Both account forms: check the form, then create the account (`register`) or
/// check the password, and sign in; a refusal shows the same form again.
async fn account_submit(
    app: &App,
    ctx: &Ctx,
    form: Result<Form<AccountForm>, FormRejection>,
    register: bool,
) -> Response {
    let form = match form_fields(app, ctx, form) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let outcome = if register {
        app.register(ctx, &form.username, &form.password).await
    } else {
        app.check_login(ctx, &form.username, &form.password).await
    };
    match outcome {
        Ok(()) => sign_in(app, ctx, &form.username).await,
        Err(e) => account_error(app, ctx, register, &form.username, &e).await,
    }
}

/// The register or login form again, saying what went wrong; errors that are not
/// about the form (the database) get their own page.
async fn account_error(
    app: &App,
    ctx: &Ctx,
    register: bool,
    username: &str,
    e: &AppError,
) -> Response {
    let message = match e {
        AppError::Invalid(text) => format!("{}.", capitalised(text)),
        AppError::Taken(name) => format!("The username {name} is taken. Try another."),
        AppError::WrongLogin => "Wrong username or password.".to_string(),
        AppError::Throttled { what, retry_after } => {
            format!("Too many {what}. Try again in {retry_after} seconds.")
        }
        _ => return error_page(ctx, e),
    };
    let mut response = account_page(app, ctx, register, e.status(), username, Some(&message)).await;
    with_retry_after(&mut response, e);
    response
}

/// Starts a session and sends the visitor home with its cookie.
async fn sign_in(app: &App, ctx: &Ctx, username: &str) -> Response {
    match app.start_session(ctx, username).await {
        Ok((token, _)) => redirect("/", &[app.session_cookie(ctx, &token)]),
        Err(e) => error_page(ctx, &e),
    }
}

/// `POST /logout`: end the session and clear the cookie.
pub(super) async fn logout(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<TokenForm>, FormRejection>,
) -> Response {
    // Logging out changes state, so it takes the CSRF token like any form.
    if let Err(rejection) = form_fields(&app, &ctx, form) {
        return *rejection;
    }
    if let Some(token) = ctx.cookie(auth::SESSION_COOKIE)
        && let Err(e) = app.end_session(&ctx, &token).await
    {
        return error_page(&ctx, &e);
    }
    redirect(
        "/",
        &[auth::set_cookie(auth::SESSION_COOKIE, "", 0, ctx.is_tls())],
    )
}

/// `POST /posts`: the board's form. Refusals re-render the board with the draft kept.
pub(super) async fn create_post(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<PostForm>, FormRejection>,
) -> Response {
    let form = match form_fields(&app, &ctx, form) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let login = match app.cookie_login(&ctx).await {
        Ok(Some(login)) => login,
        Ok(None) => return redirect("/login", &[]),
        Err(e) => return error_page(&ctx, &e),
    };
    match app
        .add_post(&ctx, &login.session.username, &form.body)
        .await
    {
        Ok(post) => redirect(&format!("/#post-{}", post.id), &[]),
        Err(e @ (AppError::Invalid(_) | AppError::Throttled { .. })) => {
            let message = format!("Your post was not saved: {}.", e.public_message());
            let mut response =
                board(&app, &ctx, None, e.status(), Some(&message), &form.body).await;
            with_retry_after(&mut response, &e);
            response
        }
        Err(e) => error_page(&ctx, &e),
    }
}

/// Anything else: JSON 404 under `/api/`, a page elsewhere.
pub(super) async fn not_found(ctx: Ctx) -> Response {
    if ctx.path.starts_with("/api/") {
        return AppError::NotFound(format!("no such endpoint: {} {}", ctx.method, ctx.path))
            .into_response();
    }
    plain_page(
        &ctx,
        StatusCode::NOT_FOUND,
        "Page not found",
        &format!("There is nothing at {} on {}.", ctx.path, ctx.host),
    )
}

#[cfg(test)]
mod address_tests {
    use super::*;

    /// The hand-written form must be exactly what `Display` gives, edges included.
    #[test]
    fn address_text_matches_display() {
        for addr in [
            "0.0.0.0:0",
            "127.0.0.1:8080",
            "10.20.30.40:65535",
            "255.255.255.255:9",
            "192.0.2.100:443",
            "[::1]:8443",
            "[2001:db8::7]:80",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            assert_eq!(address_text(addr), addr.to_string());
        }
    }
}
