//! In-process tests of the app's router: requests go straight into the `Router`
//! with `tower::ServiceExt::oneshot` over an in-memory database (as axum's
//! `testing` example does), for status and body checks that need no socket.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{AppConfig, build};
use crate::db::Db;
use crate::dns::Zones;
use crate::request::ConnInfo;

fn app_with(post_rate: u32) -> Router {
    build(AppConfig {
        resolutions: None,
        changes: None,
        store: Arc::new(Db::in_memory().expect("in-memory database")),
        // A folder that does not exist: the built-in foobar.com zone.
        zones: Zones::load(Path::new("/nonexistent/onebox-app-tests"), false)
            .expect("built-in zone"),
        session_ttl: Duration::from_secs(3600),
        post_rate,
        node_name: None,
    })
    .0
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .expect("{\"error\": string}")
            .to_string()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Reply {
    let response = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .expect("a readable body")
        .to_vec();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// A request from `peer`, as the web server would hand it over.
fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut req = builder.body(Body::from(body.to_string())).expect("valid");
    req.extensions_mut().insert(ConnInfo {
        peer: SocketAddr::from(([192, 0, 2, 1], 40000)),
        local: SocketAddr::from(([127, 0, 0, 1], 8080)),
        tls: false,
        server: ConnInfo::HYPER,
    });
    req
}

fn json_post(path: &str, body: &Value) -> Request<Body> {
    request(
        "POST",
        path,
        &[("content-type", "application/json")],
        &body.to_string(),
    )
}

#[tokio::test]
async fn register_login_and_the_json_error_shape() {
    let app = app_with(60);
    let creds = json!({"username": "ann", "password": "correct horse"});
    let r = send(&app, json_post("/api/v1/users", &creds)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json(), json!({"username": "ann"}));

    let r = send(&app, json_post("/api/v1/users", &creds)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(r.error(), "username ann is taken");

    let wrong = json!({"username": "ann", "password": "wrong horse"});
    let r = send(&app, json_post("/api/v1/sessions", &wrong)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.error(), "wrong username or password");

    let r = send(&app, json_post("/api/v1/sessions", &creds)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.json()["token"].as_str().expect("a token").to_string();
    assert!(r.headers.get(header::SET_COOKIE).is_some());

    let auth = format!("Bearer {token}");
    let r = send(
        &app,
        request(
            "POST",
            "/api/v1/posts",
            &[("authorization", &auth)],
            r#"{"body":"hello"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.json()["author"], "ann");
    let r = send(&app, request("GET", "/api/v1/posts?limit=1", &[], "")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["posts"][0]["body"], "hello");
}

#[tokio::test]
async fn bad_requests_get_their_status_and_one_error_shape() {
    let app = app_with(60);
    for (body, status) in [
        ("{\"username\":", StatusCode::BAD_REQUEST),
        ("<b>hi</b>", StatusCode::BAD_REQUEST),
        (
            "[\"ann\", \"correct horse\"]",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("5", StatusCode::UNPROCESSABLE_ENTITY),
        ("{\"username\":\"ann\"}", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "{\"username\":5,\"password\":\"correct horse\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "{\"username\":\"Ann!\",\"password\":\"correct horse\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "{\"username\":\"ann\",\"password\":\"short\"}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let r = send(&app, request("POST", "/api/v1/users", &[], body)).await;
        assert_eq!(r.status, status, "{body}");
        assert!(!r.error().is_empty(), "{body}");
    }
    let r = send(&app, request("GET", "/api/v1/posts?limit=0", &[], "")).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.error().contains("limit"), "{}", r.error());

    let r = send(&app, request("GET", "/api/v1/nothing", &[], "")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error(), "no such endpoint: GET /api/v1/nothing");

    let r = send(&app, request("GET", "/nothing", &[], "")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&r.body).contains("Page not found"));

    let r = send(
        &app,
        request("POST", "/api/v1/posts", &[], r#"{"body":"hi"}"#),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.error().starts_with("log in first"), "{}", r.error());
}

#[tokio::test]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let app = app_with(60);
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = send(
        &app,
        request(
            "POST",
            "/register",
            &form,
            "username=ann&password=correct+horse",
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&r.body).contains("could not be verified"));
    let creds = json!({"username": "ann", "password": "correct horse"});
    let r = send(&app, json_post("/api/v1/sessions", &creds)).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the account must not exist"
    );
}

/// 60 wrong passwords at once for one account: the budget (5) is reserved before
/// argon2 runs, so at most 5 are checked (401) and the rest are refused (429), and
/// then the right password is refused too while the account is locked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_logins_reach_argon2_at_most_five_times() {
    let app = app_with(60);
    let creds = json!({"username": "ann", "password": "correct horse"});
    assert_eq!(
        send(&app, json_post("/api/v1/users", &creds)).await.status,
        StatusCode::CREATED
    );
    let wrong = json!({"username": "ann", "password": "wrong horse"});
    let tasks: Vec<_> = (0..60)
        .map(|_| {
            let (app, req) = (app.clone(), json_post("/api/v1/sessions", &wrong));
            tokio::spawn(async move { send(&app, req).await.status })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for task in tasks {
        match task.await.expect("task") {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(checked <= 5, "{checked} wrong passwords reached argon2");
    assert_eq!(checked + refused, 60);
    let r = send(&app, json_post("/api/v1/sessions", &creds)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get(header::RETRY_AFTER).is_some());
}

#[tokio::test]
async fn posting_beyond_the_rate_gets_429_with_retry_after() {
    let app = app_with(3);
    let creds = json!({"username": "ann", "password": "correct horse"});
    send(&app, json_post("/api/v1/users", &creds)).await;
    let token = send(&app, json_post("/api/v1/sessions", &creds))
        .await
        .json()["token"]
        .as_str()
        .expect("a token")
        .to_string();
    let auth = format!("Bearer {token}");
    let post = || {
        request(
            "POST",
            "/api/v1/posts",
            &[("authorization", &auth)],
            r#"{"body":"x"}"#,
        )
    };
    for _ in 0..3 {
        assert_eq!(send(&app, post()).await.status, StatusCode::CREATED);
    }
    let r = send(&app, post()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.error().starts_with("too many posts"), "{}", r.error());
    let wait: u64 = r.headers[header::RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&wait), "{wait}");
}

#[tokio::test]
async fn sign_ups_are_budgeted_per_address() {
    let app = app_with(60);
    for i in 0..10 {
        let creds = json!({"username": format!("user{i}"), "password": "correct horse"});
        let r = send(&app, json_post("/api/v1/users", &creds)).await;
        assert_eq!(r.status, StatusCode::CREATED, "sign-up {i}");
    }
    let creds = json!({"username": "user10", "password": "correct horse"});
    let r = send(&app, json_post("/api/v1/users", &creds)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.error().starts_with("too many sign-ups"), "{}", r.error());
    assert!(r.headers.get(header::RETRY_AFTER).is_some());
    // Invalid input costs nothing: it is refused before the budget is touched.
    let bad = json!({"username": "x", "password": "correct horse"});
    let r = send(&app, json_post("/api/v1/users", &bad)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}
