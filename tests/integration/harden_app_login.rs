//! Issue 10, item 1: login throttling holds under concurrency. 200 attempts arrive
//! together (threads behind a barrier); the budget is reserved before argon2 runs,
//! so at most 5 wrong passwords per account (20 per address) are ever checked: every
//! 401 is a hash that ran, every other answer is 429 with `Retry-After`. The right
//! password is then refused too while the account is locked. Same for the HTML form.

use std::sync::{Arc, Barrier};

use crate::harness::{Response, Server, csrf_field, http, register};

const ATTEMPTS: usize = 200;

/// Runs `ATTEMPTS` requests at once and returns their answers.
fn burst(make: impl Fn(usize) -> Response + Send + Sync + 'static) -> Vec<Response> {
    let make = Arc::new(make);
    let barrier = Arc::new(Barrier::new(ATTEMPTS));
    let threads: Vec<_> = (0..ATTEMPTS)
        .map(|i| {
            let (make, barrier) = (make.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                make(i)
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("attempt thread"))
        .collect()
}

/// (hashes that ran = 401s, 429s with Retry-After); panics on anything else.
fn tally(answers: &[Response]) -> (usize, usize) {
    let (mut checked, mut refused) = (0, 0);
    for r in answers {
        match r.status {
            401 => checked += 1,
            429 => {
                let wait: u64 = r
                    .header("retry-after")
                    .expect("429 carries Retry-After")
                    .parse()
                    .expect("Retry-After in seconds");
                assert!(wait >= 1, "Retry-After {wait}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    (checked, refused)
}

/// Tallies a burst's answers, prints the counts, and asserts that at most `budget`
/// passwords reached argon2 and every other attempt got 429.
fn assert_within_budget(answers: &[Response], budget: usize, what: &str) {
    let (checked, refused) = tally(answers);
    eprintln!("{ATTEMPTS} {what}: {checked} reached argon2, {refused} got 429");
    assert!(
        checked <= budget,
        "{what}: {checked} passwords reached argon2 (budget {budget})"
    );
    assert_eq!(checked + refused, ATTEMPTS);
}

/// A server with one account, ann, whose password is "correct horse".
fn server_with_ann() -> Arc<Server> {
    let server = Arc::new(Server::start());
    let creds = r#"{"username":"ann","password":"correct horse"}"#;
    register(&server, creds);
    server
}

fn json_login(server: &Server, username: &str, password: &str) -> Response {
    let body = serde_json::json!({ "username": username, "password": password }).to_string();
    http(
        server.http,
        "POST",
        "/api/v1/sessions",
        "www.foobar.com",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
    .expect("an answer")
}

#[test]
fn concurrent_wrong_logins_for_one_account_reach_argon2_at_most_five_times() {
    let server = server_with_ann();

    let s = server.clone();
    let answers = burst(move |_| json_login(&s, "ann", "wrong horse"));
    assert_within_budget(&answers, 5, "concurrent wrong logins");

    let r = json_login(&server, "ann", "correct horse");
    assert_eq!(
        r.status,
        429,
        "the right password while locked: {}",
        r.text()
    );
    assert!(r.header("retry-after").is_some());
}

#[test]
fn concurrent_wrong_logins_from_one_address_reach_argon2_at_most_twenty_times() {
    let server = Arc::new(Server::start());
    let s = server.clone();
    // A different (valid, unknown) account each time: only the address budget binds.
    let answers = burst(move |i| json_login(&s, &format!("nobody{i}"), "wrong horse"));
    assert_within_budget(&answers, 20, "concurrent logins from one address");
}

#[test]
fn the_login_form_reserves_its_budget_before_hashing_too() {
    let server = server_with_ann();
    // A browser's CSRF cookie and the form token that goes with it.
    let page = http(server.http, "GET", "/login", "www.foobar.com", &[], b"").expect("page");
    let cookie = page.cookie("onebox_csrf").expect("a CSRF cookie");
    let token = csrf_field(&page.text());
    let form = move |server: &Server, password: &str| {
        http(
            server.http,
            "POST",
            "/login",
            "www.foobar.com",
            &[
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Cookie", &cookie),
            ],
            format!("username=ann&password={password}&csrf={token}").as_bytes(),
        )
        .expect("an answer")
    };
    let form = Arc::new(form);
    let (s, f) = (server.clone(), form.clone());
    let answers = burst(move |_| f(&s, "wrong+horse"));
    assert_within_budget(&answers, 5, "concurrent wrong form logins");

    let r = form(&server, "correct+horse");
    assert_eq!(r.status, 429, "the right password while locked");
    assert!(r.header("retry-after").is_some());
    assert!(r.text().contains("Too many failed logins"), "{}", r.text());
}
