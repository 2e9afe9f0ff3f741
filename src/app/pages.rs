//! The HTML pages: the board, register, log in, log out, post. Forms post back to
//! the server and get a redirect (post/redirect/get), so reloading never resends
//! a form. Every form carries a CSRF token.

use super::LoginCheck;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use maud::Markup;

use super::views::{self, Frame, Reached};
use super::{App, Ctx, Login, api, auth};
use crate::db::{DbError, UserCreated};
use crate::web::trace::millis;

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
    async fn visitor(&self, ctx: &Ctx) -> Result<Visitor, DbError> {
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
        let mut response = (status, body(&frame)).into_response();
        let headers = response.headers_mut();
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
    fn csrf_rejection(&self, ctx: &Ctx, form: &HashMap<String, String>) -> Option<Response> {
        let cookie = ctx.cookie(auth::CSRF_COOKIE);
        if self
            .csrf
            .verify(cookie.as_deref(), form.get("csrf").map(String::as_str))
        {
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

fn db_failed(ctx: &Ctx, e: &DbError) -> Response {
    tracing::error!("app: {e}");
    if matches!(e, DbError::Full) {
        let mut response = plain_page(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            "Nothing was saved",
            "The disk holding the database is full. Reading works; please try writing again later.",
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return response;
    }
    plain_page(
        ctx,
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The database could not answer. Please try again in a moment.",
    )
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

/// A posted form's fields, once it is readable and carries a valid CSRF token:
/// every form handler starts here, so none can forget the token.
fn form_fields(
    app: &App,
    ctx: &Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Result<HashMap<String, String>, Box<Response>> {
    let form = form.map(|Form(map)| map).map_err(|rejection| {
        Box::new(plain_page(
            ctx,
            rejection.status(),
            "That form could not be read",
            &rejection.body_text(),
        ))
    })?;
    match app.csrf_rejection(ctx, &form) {
        Some(rejection) => Err(Box::new(rejection)),
        None => Ok(form),
    }
}

/// `GET /`: the board, newest posts first, and how this page reached you.
pub(super) async fn home(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    let before = query
        .as_ref()
        .ok()
        .and_then(|Query(q)| q.get("before"))
        .and_then(|b| b.parse::<u64>().ok());
    board(&app, &ctx, before, StatusCode::OK, None, "").await
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
        Err(e) => return db_failed(ctx, &e),
    };
    // The counter is a nicety: a page that cannot count (a full disk) still shows.
    let visits = match ctx
        .trace
        .db_write(app.db.count_visit(ctx.host.clone()))
        .await
    {
        Ok(n) => Some(n),
        Err(DbError::Full) => None,
        Err(e) => return db_failed(ctx, &e),
    };
    // One extra row tells whether an "older posts" link is needed.
    let mut posts = match ctx.trace.db_read(app.db.posts(before, PAGE + 1)).await {
        Ok(p) => p,
        Err(e) => return db_failed(ctx, &e),
    };
    let older = (posts.len() > PAGE).then(|| {
        posts.truncate(PAGE);
        posts.last().map(|p| p.id)
    });
    let reached = reached(app, ctx, visits);
    app.render(ctx, &visitor, status, "Community board", |frame| {
        views::home(
            frame,
            &posts,
            older.flatten(),
            before.is_some(),
            error,
            draft,
            &reached,
        )
    })
}

/// Gathers the facts for the panel, all from this request: the live zone, the
/// connection, the protocol, and the trace's database counts so far.
fn reached(app: &App, ctx: &Ctx, visits: Option<u64>) -> Reached {
    let chain = app.zones.chain(&ctx.host);
    let snapshot = ctx.trace.snapshot();
    let local_ip = ctx.conn.as_ref().map(|c| c.local.ip());
    let dns_addresses: Vec<String> = chain
        .iter()
        .filter(|l| l.rtype == "A" || l.rtype == "AAAA")
        .map(|l| l.data.clone())
        .collect();
    let tls = ctx.is_tls();
    let protocol = match (ctx.version, tls) {
        (Version::HTTP_2, false) => "HTTP/2 (h2c, cleartext)".to_string(),
        (Version::HTTP_2, true) => "HTTP/2 (h2)".to_string(),
        (Version::HTTP_11, _) => "HTTP/1.1".to_string(),
        (Version::HTTP_10, _) => "HTTP/1.0".to_string(),
        (other, _) => format!("{other:?}"),
    };
    Reached {
        host: ctx.host.clone(),
        chain,
        peer: ctx.conn.as_ref().map(|c| c.peer.to_string()),
        local: ctx.conn.as_ref().map(|c| c.local.to_string()),
        local_is_dns_address: local_ip.map(|ip| dns_addresses.iter().any(|a| *a == ip.to_string())),
        protocol,
        tls,
        route: snapshot
            .route
            .unwrap_or_else(|| format!("{} {}", ctx.method, ctx.path)),
        db_reads: snapshot.db_reads,
        db_writes: snapshot.db_writes,
        db_ms: millis(snapshot.db),
        so_far_ms: millis(snapshot.elapsed),
        visits,
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
        Err(e) => return db_failed(ctx, &e),
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

/// `POST /register`: create the account, log in, back to the board.
pub(super) async fn register(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = match form_fields(&app, &ctx, form) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let username = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    if let Err(e) = auth::check_username(&username).and_then(|()| auth::check_password(&password)) {
        return account_page(
            &app,
            &ctx,
            true,
            StatusCode::UNPROCESSABLE_ENTITY,
            &username,
            Some(&e),
        )
        .await;
    }
    match app.register(&ctx, username.clone(), password).await {
        Ok(UserCreated::Created) => {}
        Ok(UserCreated::Taken) => {
            let message = format!("The username {username} is taken. Try another.");
            return account_page(
                &app,
                &ctx,
                true,
                StatusCode::CONFLICT,
                &username,
                Some(&message),
            )
            .await;
        }
        Err(e) => return db_failed(&ctx, &e),
    }
    sign_in(&app, &ctx, username).await
}

/// `POST /login`.
pub(super) async fn login(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = match form_fields(&app, &ctx, form) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let username = form.get("username").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    match app.check_login(&ctx, &username, &password).await {
        Ok(LoginCheck::Ok) => {}
        Ok(LoginCheck::Throttled(wait)) => {
            let mut response = account_page(
                &app,
                &ctx,
                false,
                StatusCode::TOO_MANY_REQUESTS,
                &username,
                Some(&format!(
                    "Too many failed logins. Try again in {wait} seconds."
                )),
            )
            .await;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, wait.into());
            return response;
        }
        Ok(LoginCheck::Wrong) => {
            return account_page(
                &app,
                &ctx,
                false,
                StatusCode::UNAUTHORIZED,
                &username,
                Some("Wrong username or password."),
            )
            .await;
        }
        Err(e) => return db_failed(&ctx, &e),
    }
    sign_in(&app, &ctx, username).await
}

/// Starts a session and sends the visitor home with its cookie.
async fn sign_in(app: &App, ctx: &Ctx, username: String) -> Response {
    match app.start_session(ctx, username).await {
        Ok((token, _)) => redirect("/", &[app.session_cookie(ctx, &token)]),
        Err(e) => db_failed(ctx, &e),
    }
}

/// `POST /logout`: end the session and clear the cookie.
pub(super) async fn logout(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    // Logging out changes state, so it takes the CSRF token like any form.
    if let Err(rejection) = form_fields(&app, &ctx, form) {
        return *rejection;
    }
    if let Some(token) = ctx.cookie(auth::SESSION_COOKIE)
        && let Err(e) = ctx
            .trace
            .db_write(app.db.delete_session(auth::token_hash(&token)))
            .await
    {
        return db_failed(&ctx, &e);
    }
    redirect(
        "/",
        &[auth::set_cookie(auth::SESSION_COOKIE, "", 0, ctx.is_tls())],
    )
}

/// `POST /posts`: the board's form. Errors re-render the board with the draft kept.
pub(super) async fn create_post(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let form = match form_fields(&app, &ctx, form) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let login = match app.cookie_login(&ctx).await {
        Ok(Some(login)) => login,
        Ok(None) => return redirect("/login", &[]),
        Err(e) => return db_failed(&ctx, &e),
    };
    let body = form.get("body").cloned().unwrap_or_default();
    if let Err(e) = api::check_post_body(&body) {
        let message = format!("Your post was not saved: {e}.");
        return board(
            &app,
            &ctx,
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(&message),
            &body,
        )
        .await;
    }
    match app.add_post(&ctx, login.session.username, body).await {
        Ok(post) => redirect(&format!("/#post-{}", post.id), &[]),
        Err(e) => db_failed(&ctx, &e),
    }
}

/// Anything else: JSON 404 under `/api/`, a page elsewhere.
pub(super) async fn not_found(ctx: Ctx) -> Response {
    if ctx.path.starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": format!("no such endpoint: {} {}", ctx.method, ctx.path) })),
        )
            .into_response();
    }
    plain_page(
        &ctx,
        StatusCode::NOT_FOUND,
        "Page not found",
        &format!("There is nothing at {} on {}.", ctx.path, ctx.host),
    )
}
