//! The JSON API under `/api/v1/`. Scripts and tests depend on its paths, fields and
//! status codes exactly; every error is `{"error": "..."}`, built in one place: the
//! [`IntoResponse`] for [`AppError`].

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::domain::{AppError, Login};
use super::{App, Ctx, auth, rfc3339};
use crate::db::Post;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

/// The API's one error body: `{"error": message}` with the error's status, and
/// `Retry-After` where waiting helps.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let AppError::Db(e) = &self {
            tracing::error!("app: {e}");
        }
        let mut response = (
            self.status(),
            Json(json!({ "error": self.public_message() })),
        )
            .into_response();
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

type ApiResult = Result<Response, AppError>;

/// `{"username", "password"}`, for sign-up and login.
#[derive(Debug, Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// `{"body"}`, a new post.
#[derive(Debug, Deserialize)]
struct NewPostBody {
    body: String,
}

/// `?limit=N&before=ID`. Read as text so a bad value gets the API's own 422 message.
#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    limit: Option<String>,
    before: Option<String>,
}

/// Reads a JSON object into `T`: 413 for a body over the limit, 400 for bytes that
/// are not JSON, 422 for JSON that is not an object or lacks a field (or has one of
/// the wrong type).
fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, AppError> {
    let bytes = body.map_err(|r| AppError::Unreadable {
        status: r.status(),
        message: r.body_text().to_lowercase(),
    })?;
    // serde would also fill a struct from a JSON array; the API takes objects only.
    let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let not_object = || AppError::Invalid("expected a JSON object".into());
    match serde_json::from_slice::<T>(&bytes) {
        Ok(value) if is_object => Ok(value),
        Ok(_) => Err(not_object()),
        Err(e) if e.is_data() && !is_object => Err(not_object()),
        Err(e) if e.is_data() => Err(AppError::Invalid(e.to_string())),
        Err(e) => Err(AppError::Unreadable {
            status: StatusCode::BAD_REQUEST,
            message: format!("malformed JSON: {e}"),
        }),
    }
}

/// `POST /api/v1/users {"username","password"}` → 201, 409 taken, 422 invalid,
/// 429 too many sign-ups from this address.
pub(super) async fn create_user(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let creds: Credentials = json_body(body)?;
    app.register(&ctx, &creds.username, &creds.password).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "username": creds.username })),
    )
        .into_response())
}

/// `POST /api/v1/sessions {"username","password"}` → 201 `{"token"}` plus the
/// session cookie; 401 for wrong credentials; 429 while the account or address is
/// throttled.
pub(super) async fn create_session(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let creds: Credentials = json_body(body)?;
    app.check_login(&ctx, &creds.username, &creds.password)
        .await?;
    let (token, expires_at) = app.start_session(&ctx, &creds.username).await?;
    Ok((
        StatusCode::CREATED,
        [(header::SET_COOKIE, app.session_cookie(&ctx, &token))],
        Json(json!({
            "token": token,
            "username": creds.username,
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
        app.end_session(&ctx, &token).await?;
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
async fn api_login(app: &App, ctx: &Ctx) -> Result<Login, AppError> {
    if let Some(token) = auth::bearer(&ctx.headers) {
        return app
            .login_for(ctx, &token)
            .await?
            .ok_or(AppError::Unauthorized(
                "session token is unknown or expired",
            ));
    }
    let login = app.cookie_login(ctx).await?.ok_or(AppError::Unauthorized(
        "log in first: send Authorization: Bearer TOKEN (from POST /api/v1/sessions) or the session cookie",
    ))?;
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
        return Err(AppError::NotJson);
    }
    Ok(login)
}

/// `POST /api/v1/posts {"body"}` → 201 `{"id"}`; 401 not logged in; 400 malformed
/// JSON; 422 bad body; 429 over the account's posting rate. The 201 is sent only
/// after the post is durably committed.
pub(super) async fn create_post(
    State(app): State<Arc<App>>,
    ctx: Ctx,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let login = api_login(&app, &ctx).await?;
    let new: NewPostBody = json_body(body)?;
    let post = app
        .add_post(&ctx, &login.session.username, &new.body)
        .await?;
    Ok((StatusCode::CREATED, Json(post_json(&post))).into_response())
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
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult {
    let Query(query) = query.map_err(|r| AppError::Unreadable {
        status: StatusCode::BAD_REQUEST,
        message: r.body_text(),
    })?;
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let before = match query.before {
        None => None,
        Some(raw) => Some(raw.parse::<u64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            AppError::Invalid("before must be a post id (a whole number from 1)".into())
        })?),
    };
    let posts = app.posts(&ctx, before, limit).await?;
    let list: Vec<Value> = posts.iter().map(post_json).collect();
    Ok(Json(json!({ "posts": list })).into_response())
}
