//! The JSON API under `/api/v1/`. Scripts and tests depend on its paths, fields and
//! status codes exactly; every error is `{"error": "..."}`.

use super::LoginCheck;
use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{App, Ctx, Login, auth, now, rfc3339};
use crate::db::{DbError, NewPost, Post, User, UserCreated};

/// Longest post, in characters.
pub(crate) const MAX_POST_CHARS: usize = 2000;
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// An API error: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("30"),
            );
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        tracing::error!("app: {e}");
        match e {
            DbError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
            ),
            DbError::Full => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the disk holding the database is full: nothing was written; try again later",
            ),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "database error"),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

/// Reads a JSON object: 413 for a body over the limit, 400 for bytes that are not
/// JSON, 422 for JSON that is not an object.
fn json_object(body: Result<Bytes, BytesRejection>) -> Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|r| ApiError::new(r.status(), r.body_text().to_lowercase()))?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected a JSON object",
        )),
    }
}

fn string_field(map: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match map.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} must be a string"),
        )),
        None => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{name} is missing"),
        )),
    }
}

fn unprocessable(message: String) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

/// `POST /api/v1/users {"username","password"}` → 201, 409 taken, 422 invalid.
pub(super) async fn create_user(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let map = json_object(body)?;
    let username = string_field(&map, "username")?;
    let password = string_field(&map, "password")?;
    auth::check_username(&username).map_err(unprocessable)?;
    auth::check_password(&password).map_err(unprocessable)?;
    match app.register(&ctx, username.clone(), password).await? {
        UserCreated::Created => {
            Ok((StatusCode::CREATED, Json(json!({ "username": username }))).into_response())
        }
        UserCreated::Taken => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("username {username} is taken"),
        )),
    }
}

impl App {
    /// Hashes the password (blocking pool) and stores the user.
    pub(super) async fn register(
        &self,
        ctx: &Ctx,
        username: String,
        password: String,
    ) -> Result<UserCreated, DbError> {
        let hash = self
            .argon2(move || auth::hash_password(&password))
            .await?
            .map_err(DbError::Storage)?;
        ctx.trace
            .db_write(self.db.create_user(User {
                username,
                password_hash: hash,
                created_at: now(),
            }))
            .await
    }
}

/// `POST /api/v1/sessions {"username","password"}` → 201 `{"token"}` plus the
/// session cookie; 401 for wrong credentials.
pub(super) async fn create_session(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let map = json_object(body)?;
    let username = string_field(&map, "username")?;
    let password = string_field(&map, "password")?;
    match app.check_login(&ctx, &username, &password).await? {
        LoginCheck::Ok => {}
        LoginCheck::Wrong => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "wrong username or password",
            ));
        }
        LoginCheck::Throttled(wait) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many failed logins: try again in {wait} s"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, wait.into());
            return Ok(response);
        }
    }
    let (token, expires_at) = app.start_session(&ctx, username.clone()).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, app.session_cookie(&ctx, &token))],
        Json(json!({
            "token": token,
            "username": username,
            "expires_at": rfc3339(expires_at),
        })),
    )
        .into_response())
}

/// `DELETE /api/v1/sessions` → 204: ends the session named by `Bearer` or the
/// cookie (if any) and clears the cookie. Logging out twice is not an error.
pub(super) async fn delete_session(State(app): State<Arc<App>>, ctx: Ctx) -> ApiResult {
    let token = auth::bearer(&ctx.headers).or_else(|| ctx.cookie(auth::SESSION_COOKIE));
    if let Some(token) = token {
        ctx.trace
            .db_write(app.db.delete_session(auth::token_hash(&token)))
            .await?;
    }
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            auth::set_cookie(auth::SESSION_COOKIE, "", 0, ctx.is_tls()),
        )],
    )
        .into_response())
}

/// Who is posting: `Authorization: Bearer TOKEN`, else the session cookie.
///
/// Cookie-authenticated API writes must say `Content-Type: application/json`.
/// That is the API's CSRF defence: a page on another site can make a browser send
/// our cookie with a form post (`text/plain`, `multipart/form-data` or
/// `application/x-www-form-urlencoded`), but sending `application/json` across sites
/// needs a CORS preflight, which we never grant. A `Bearer` token is never sent by a
/// browser on its own, so it needs no such check.
async fn api_login(app: &App, ctx: &Ctx) -> Result<Login, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "log in first: send Authorization: Bearer TOKEN (from POST /api/v1/sessions) or the session cookie",
        )
    };
    if let Some(token) = auth::bearer(&ctx.headers) {
        return app.login_for(ctx, &token).await?.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "session token is unknown or expired",
            )
        });
    }
    let login = app.cookie_login(ctx).await?.ok_or_else(unauthorized)?;
    let is_json = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "with cookie authentication, send Content-Type: application/json",
        ));
    }
    Ok(login)
}

/// Checks a post body: 1–2000 characters, not only whitespace.
pub(crate) fn check_post_body(body: &str) -> Result<(), String> {
    let chars = body.chars().count();
    if chars == 0 || body.trim().is_empty() {
        return Err("body must not be empty".into());
    }
    if chars > MAX_POST_CHARS {
        return Err(format!(
            "body must be at most {MAX_POST_CHARS} characters (it has {chars})"
        ));
    }
    Ok(())
}

/// `POST /api/v1/posts {"body"}` → 201 `{"id"}`; 401 not logged in; 400 malformed
/// JSON; 422 bad body. The 201 is sent only after the post is durably committed.
pub(super) async fn create_post(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let login = api_login(&app, &ctx).await?;
    let map = json_object(body)?;
    let text = string_field(&map, "body")?;
    check_post_body(&text).map_err(unprocessable)?;
    let post = app.add_post(&ctx, login.session.username, text).await?;
    Ok((StatusCode::CREATED, Json(post_json(&post))).into_response())
}

impl App {
    pub(super) async fn add_post(
        &self,
        ctx: &Ctx,
        author: String,
        body: String,
    ) -> Result<Post, DbError> {
        let created_at = now();
        let new = NewPost {
            author: author.clone(),
            body: body.clone(),
            created_at,
        };
        let id = ctx.trace.db_write(self.db.create_post(new)).await?;
        Ok(Post {
            id,
            author,
            body,
            created_at,
        })
    }
}

fn post_json(post: &Post) -> Value {
    json!({
        "id": post.id,
        "author": post.author,
        "body": post.body,
        "created_at": rfc3339(post.created_at),
    })
}

/// `GET /api/v1/posts?limit=N&before=ID` → newest first; `limit` 1–1000 (default
/// 50); `before` returns only older posts (ids below it), for paging.
pub(super) async fn list_posts(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|r| ApiError::new(StatusCode::BAD_REQUEST, r.body_text()))?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                unprocessable(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let before = match query.get("before") {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            unprocessable("before must be a post id (a whole number from 1)".into())
        })?),
    };
    let posts = ctx.trace.db_read(app.db.posts(before, limit)).await?;
    let list: Vec<Value> = posts.iter().map(post_json).collect();
    Ok(Json(json!({ "posts": list })).into_response())
}
