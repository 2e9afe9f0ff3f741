//! The fixture API for scripts: `/_onebox/api/records` adds, deletes and lists
//! records while onebox runs, in the spirit of pebble-challtestsrv.
//!
//! It is a thin JSON skin over the DNS layer's `change_record`, the same code
//! path as a DNS UPDATE (validation, serial, journal). Every call needs
//! `Authorization: Bearer TOKEN` with the admin token (`onebox key print
//! --admin`); without it the answer is 401.
//!
//! `/_onebox/api/history/dns?name=…` lists the recent DNS questions (the live
//! view's per-query events, kept in their own ring of
//! [`QUESTIONS`](crate::live::QUESTIONS)), so a test can assert "the client asked
//! for X", like pebble-challtestsrv's `/dns-request-history`. The token does not
//! widen what the live view would show the caller: without `--live-public` only
//! the questions from the caller's own address, and names outside our zones hidden.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::live::Viewer;
use crate::dns::Zones;
use crate::dns::journal::{Author, Journal};
use crate::dns::update::{self, ChangeError, RecordSpec, UpdateLimit};
use crate::live::{Event, Live};
use crate::request::ConnInfo;

/// What the fixture API works on, handed over by serve.rs.
pub(crate) struct Api {
    pub(crate) zones: Zones,
    pub(crate) journal: Journal,
    /// The admin token every call must bear.
    pub(crate) token: String,
    /// Where DNS questions are published, for the question history.
    pub(crate) live: Live,
    /// `serve --live-public`: the history shows every client's questions.
    pub(crate) live_public: bool,
    /// The `--update-rate` budget the API shares with UPDATE (as key `api`).
    pub(crate) limit: Option<UpdateLimit>,
}

/// The routes, to be merged into the router the web server is handed.
pub(crate) fn router(api: Api) -> axum::Router {
    axum::Router::new()
        .route(
            "/_onebox/api/records",
            get(list).post(change).delete(change),
        )
        .route("/_onebox/api/history/dns", get(history))
        .with_state(Arc::new(api))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Constant-time comparison of the bearer token with ours.
/// [`error`] with `Retry-After: seconds`, for a refusal that waiting cures.
fn retry_after(status: StatusCode, e: &ChangeError, seconds: u64) -> Response {
    let mut response = error(status, &e.to_string());
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    response
}

fn authorized(api: &Api, headers: &HeaderMap) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), api.token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "send Authorization: Bearer TOKEN with the admin token (onebox key print --admin)",
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

async fn list(State(api): State<Arc<Api>>, headers: HeaderMap) -> Response {
    if !authorized(&api, &headers) {
        return unauthorized();
    }
    Json(update::list_records(&api.zones)).into_response()
}

/// `POST` adds the record in the body, `DELETE` removes it.
async fn change(
    State(api): State<Arc<Api>>,
    method: Method,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    body: axum::body::Bytes,
) -> Response {
    let add = method == Method::POST;
    if !authorized(&api, &headers) {
        return unauthorized();
    }
    let spec: RecordSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"name\",\"type\",\"value\",\"ttl\"}}: {e}"),
            );
        }
    };
    let journal = Some(&api.journal);
    // The journal says "api", as the live view does, and which client it was.
    let author = Author {
        by: "api".into(),
        from: extensions.get::<ConnInfo>().map(|c| c.peer),
    };
    match update::change_record(&api.zones, journal, api.limit.as_ref(), &spec, add, author).await {
        Ok(serial) => {
            let verb = if add { "add" } else { "delete" };
            api.live.publish(Event::Change {
                at_ms: crate::live::now_ms(),
                by: "api".into(),
                what: format!("{verb} {} {} {}", spec.name, spec.rtype, spec.value),
                serial,
            });
            Json(serde_json::json!({ "ok": true, "serial": serial })).into_response()
        }
        Err(e @ ChangeError::BadInput(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ ChangeError::NotOurs(_)) => error(StatusCode::NOT_FOUND, &e.to_string()),
        // The record limit: retrying will not help, the zone must shrink first.
        Err(e @ ChangeError::Full { .. }) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e @ ChangeError::TooFast(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            retry_after(StatusCode::TOO_MANY_REQUESTS, &e, seconds.max(1))
        }
        // The journal could not write (a full disk): waiting helps, as for a
        // post refused on a full disk, which is told the same 30 s.
        Err(e @ ChangeError::Unavailable) => retry_after(StatusCode::SERVICE_UNAVAILABLE, &e, 30),
    }
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    /// Only the questions for this name (any case, trailing dot or not).
    name: Option<String>,
}

/// The recent DNS questions the caller may see, newest first.
async fn history(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    Query(query): Query<HistoryQuery>,
) -> Response {
    if !authorized(&api, &headers) {
        return unauthorized();
    }
    let caller = extensions.get::<ConnInfo>().map(|c| c.peer.ip());
    let viewer = Viewer::new(caller, api.live_public, &api.zones);
    let wanted = query
        .name
        .map(|n| n.trim_end_matches('.').to_ascii_lowercase());
    let questions: Vec<_> = api
        .live
        .questions()
        .iter()
        .rev()
        .filter_map(|event| viewer.view(event))
        .filter_map(|event| match event {
            Event::Dns {
                at_ms,
                client,
                transport,
                name,
                qtype,
                rcode,
                ..
            } => {
                let asked = name.trim_end_matches('.').to_ascii_lowercase();
                if wanted.as_ref().is_some_and(|w| *w != asked) {
                    return None;
                }
                Some(serde_json::json!({
                    "name": name,
                    "type": qtype,
                    "transport": transport,
                    "client": client.to_string(),
                    "time": crate::live::rfc3339(at_ms),
                    "at_ms": at_ms,
                    "rcode": rcode,
                }))
            }
            _ => None,
        })
        .collect();
    Json(serde_json::json!({
        "questions": questions,
        "capacity": crate::live::QUESTIONS,
    }))
    .into_response()
}
