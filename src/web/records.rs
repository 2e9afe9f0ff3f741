//! The fixture API for scripts: `/_onebox/api/records` adds, deletes and lists
//! records while onebox runs, in the spirit of pebble-challtestsrv.
//!
//! It is a thin JSON skin over the DNS layer's `change_record`, the same code
//! path as a DNS UPDATE (validation, serial, journal). Every call needs
//! `Authorization: Bearer TOKEN` with the admin token (`onebox key print
//! --admin`); without it the answer is 401.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::dns::Zones;
use crate::dns::journal::Journal;
use crate::dns::update::{self, ChangeError, RecordSpec};

struct Api {
    zones: Zones,
    journal: Journal,
    token: String,
}

/// The routes, to be merged into the router the web server is handed.
pub(crate) fn router(zones: Zones, journal: Journal, token: String) -> axum::Router {
    axum::Router::new()
        .route("/_onebox/api/records", get(list).post(add).delete(remove))
        .with_state(Arc::new(Api {
            zones,
            journal,
            token,
        }))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Constant-time comparison of the bearer token with ours.
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

async fn add(State(api): State<Arc<Api>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    change(&api, &headers, &body, true).await
}

async fn remove(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    change(&api, &headers, &body, false).await
}

async fn change(api: &Api, headers: &HeaderMap, body: &[u8], add: bool) -> Response {
    if !authorized(api, headers) {
        return unauthorized();
    }
    let spec: RecordSpec = match serde_json::from_slice(body) {
        Ok(spec) => spec,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("expected {{\"name\",\"type\",\"value\",\"ttl\"}}: {e}"),
            );
        }
    };
    match update::change_record(&api.zones, Some(&api.journal), &spec, add, "api".into()).await {
        Ok(serial) => Json(serde_json::json!({ "ok": true, "serial": serial })).into_response(),
        Err(e @ ChangeError::BadInput(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ ChangeError::NotOurs(_)) => error(StatusCode::NOT_FOUND, &e.to_string()),
        Err(e @ ChangeError::Refused(_)) => error(StatusCode::TOO_MANY_REQUESTS, &e.to_string()),
    }
}
