//! Proves the web server survives hostile HTTP (issue 7, H1–H8): slow clients are
//! closed while others are served, the size limits answer 431/413, the accept loop
//! outlives EMFILE, ambiguous framing is refused (with nginx as the oracle), HTTP/2
//! floods stay bounded, and logins are rate limited.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a probe waits to see whether the server closes: hyper closes right
/// after an error answer, so this only bounds the keep-alive case.
const LINGER: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------
// H5–H6: limits
// ---------------------------------------------------------------------------------

/// Sends a head and then `body_len` bytes from another thread while reading the
/// answer here, so an early 413 is read before the server's close could reset it.
fn send_big(addr: SocketAddr, head: String, body: Vec<u8>) -> RawAnswer {
    let stream = TcpStream::connect(addr).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let _ = writer.write_all(&body);
    });
    let mut reader = stream;
    let answer = read_answer(&mut reader, DEADLINE);
    let _ = reader.shutdown(std::net::Shutdown::Both);
    sender.join().unwrap();
    answer
}

#[test]
fn oversize_headers_get_431_and_oversize_bodies_get_413() {
    let mut server = Onebox::start();
    let addr = server.http_addr();
    let big = "a".repeat(40 * 1024);
    let head = format!("GET / HTTP/1.1\r\nHost: foobar.com\r\nX-Big: {big}\r\n\r\n");
    let answer = raw_exchange(addr, head.as_bytes(), LINGER);
    assert_eq!(answer.status, Some(431), "{}", answer.text);
    assert!(answer.closed, "still open after 431");

    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let head = format!("GET / HTTP/1.1\r\nHost: foobar.com\r\n{many}\r\n");
    let answer = raw_exchange(addr, head.as_bytes(), LINGER);
    assert!(
        matches!(answer.status, Some(431 | 400)),
        "200 header lines: {}",
        answer.text
    );

    let two_mib = vec![b'x'; 2 * 1024 * 1024];
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        two_mib.len()
    );
    let answer = send_big(addr, head, two_mib.clone());
    assert_eq!(answer.status, Some(413), "{}", answer.text);
    assert!(
        answer.text.contains("\"error\""),
        "413 is JSON under /api/: {}",
        answer.text
    );

    // The same without a length: chunked, so the limit must count as it reads.
    let mut chunked = Vec::new();
    for piece in two_mib.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = "POST /api/v1/users HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_string();
    let answer = send_big(addr, head, chunked);
    assert_eq!(answer.status, Some(413), "{}", answer.text);
    assert_eq!(health(addr), Some(200));
    assert!(server.is_running());
}

/// The number of file descriptors `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// With its descriptor limit lowered to what it uses plus 16, 80 connections make
/// `accept` fail with EMFILE. The accept loop must log it, keep going, and serve
/// again as soon as descriptors are free.
#[test]
fn the_accept_loop_survives_emfile_and_recovers() {
    skip_unless!(require_tool("prlimit", "util-linux"));
    let mut server = Onebox::start();
    let addr = server.http_addr();
    assert_eq!(health(addr), Some(200));
    let limit = open_fds(server.pid) + 16;
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", server.pid))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("run prlimit");
    assert!(status.success(), "prlimit failed");

    let held: Vec<TcpStream> = (0..80)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let log = server.wait_for_log("accept failed", 0);
    assert_contains(&log, "Too many open files");
    assert!(server.is_running(), "onebox died at EMFILE:\n{log}");
    drop(held);

    // Descriptors come back as the server sees those clients go; then it serves.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last = None;
    while Instant::now() < deadline {
        last = health(addr);
        if last == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        last,
        Some(200),
        "never recovered after EMFILE:\n{}",
        server.stderr()
    );
    assert!(server.is_running());
}

// ---------------------------------------------------------------------------------
// H7: request smuggling, nginx as the oracle
// ---------------------------------------------------------------------------------

/// What RFC 9112 (and the issue) demand for one probe.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Must be answered 400 and the connection closed.
    Reject,
    /// RFC 9112 §6.3: a server MAY reject Content-Length with Transfer-Encoding,
    /// or process the body as chunked; either way it MUST close afterwards.
    Close,
    /// A valid request: must be served and the connection kept.
    Accept,
    /// The RFC allows more than one answer (e.g. a recipient MAY accept a bare
    /// LF); recorded and compared, not asserted.
    Either,
}

fn probes() -> Vec<(&'static str, Rule, String)> {
    // A route that reads its body, so the chunked decoder really runs.
    let user = r#"{"username":"chunky","password":"chunky-password"}"#;
    let post =
        "POST /api/v1/users HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\n";
    vec![
        (
            "valid GET",
            Rule::Accept,
            "GET / HTTP/1.1\r\nHost: foobar.com\r\n\r\n".into(),
        ),
        (
            "valid chunked POST",
            Rule::Accept,
            format!(
                "{post}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{user}\r\n0\r\n\r\n",
                user.len()
            ),
        ),
        (
            "CL + TE",
            Rule::Close,
            format!("{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE + CL",
            Rule::Close,
            format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"),
        ),
        (
            "two different CL",
            Rule::Reject,
            format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        ),
        (
            "CL list 5, 6",
            Rule::Reject,
            format!("{post}Content-Length: 5, 6\r\n\r\nhello!"),
        ),
        (
            "two equal CL",
            Rule::Either,
            format!("{post}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        ),
        (
            "CL +5",
            Rule::Reject,
            format!("{post}Content-Length: +5\r\n\r\nhello"),
        ),
        (
            "CL 0x5",
            Rule::Reject,
            format!("{post}Content-Length: 0x5\r\n\r\nhello"),
        ),
        (
            "CL 1_0",
            Rule::Reject,
            format!("{post}Content-Length: 1_0\r\n\r\nhelloworld"),
        ),
        (
            "CL -1",
            Rule::Reject,
            format!("{post}Content-Length: -1\r\n\r\nhello"),
        ),
        (
            "CL overflow",
            Rule::Reject,
            format!("{post}Content-Length: 99999999999999999999999\r\n\r\nhello"),
        ),
        (
            "chunk size zz",
            Rule::Reject,
            format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "chunk size overflow",
            Rule::Reject,
            format!(
                "{post}Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n"
            ),
        ),
        (
            "chunk size -5",
            Rule::Reject,
            format!("{post}Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "bare CR in chunk ext",
            Rule::Reject,
            format!("{post}Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n"),
        ),
        (
            "TE gzip (not chunked last)",
            Rule::Reject,
            format!("{post}Transfer-Encoding: gzip\r\n\r\nhello"),
        ),
        (
            "TE chunked, identity",
            Rule::Reject,
            format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        ),
        (
            "TE xchunked",
            Rule::Reject,
            format!("{post}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        ),
        (
            "space before colon",
            Rule::Reject,
            "GET / HTTP/1.1\r\nHost : foobar.com\r\n\r\n".into(),
        ),
        (
            "space before colon in CL",
            Rule::Reject,
            format!("{post}Content-Length : 5\r\n\r\nhello"),
        ),
        (
            "missing Host",
            Rule::Reject,
            "GET / HTTP/1.1\r\n\r\n".into(),
        ),
        (
            "two Hosts",
            Rule::Reject,
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nHost: evil.example\r\n\r\n".into(),
        ),
        (
            "bare CR in a header",
            Rule::Reject,
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nX-A: b\rc\r\n\r\n".into(),
        ),
        (
            "bare LF line ends",
            Rule::Either,
            "GET / HTTP/1.1\nHost: foobar.com\n\n".into(),
        ),
        (
            "bare LF in chunked body",
            Rule::Either,
            format!("{post}Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n"),
        ),
        (
            "obs-fold",
            Rule::Either,
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nX-A: b\r\n c\r\n\r\n".into(),
        ),
        (
            "NUL in a header",
            Rule::Reject,
            "GET / HTTP/1.1\r\nHost: foobar.com\r\nX-A: b\0c\r\n\r\n".into(),
        ),
    ]
}

fn describe(a: &RawAnswer) -> String {
    let status = a.status.map_or("-".to_string(), |s| s.to_string());
    format!("{status}{}", if a.closed { " close" } else { " keep" })
}

#[test]
fn ambiguous_framing_gets_400_and_close_and_is_compared_with_nginx() {
    skip_unless!(require_tool("nginx", "nginx"));
    let server = Onebox::start();
    let nginx = Nginx::start();
    let (ours, theirs) = (server.http_addr(), nginx.addr);
    let probes = probes();
    // Every probe on its own connection, all at once: the wait is one LINGER.
    let handles: Vec<_> = probes
        .iter()
        .map(|(_, _, bytes)| {
            let bytes = bytes.clone().into_bytes();
            std::thread::spawn(move || {
                (
                    raw_exchange(ours, &bytes, LINGER),
                    raw_exchange(theirs, &bytes, LINGER),
                )
            })
        })
        .collect();
    let answers: Vec<(RawAnswer, RawAnswer)> =
        handles.into_iter().map(|h| h.join().unwrap()).collect();

    let mut table = String::from("| probe | rule | onebox | nginx 1.22 |\n|---|---|---|---|\n");
    let mut failures = Vec::new();
    for ((name, rule, _), (us, them)) in probes.iter().zip(&answers) {
        table.push_str(&format!(
            "| {name} | {rule:?} | {} | {} |\n",
            describe(us),
            describe(them)
        ));
        let ok = match rule {
            Rule::Reject => us.status == Some(400) && us.closed,
            Rule::Close => us.status.is_some() && us.closed,
            Rule::Accept => us.status.is_some_and(|s| s < 500 && s != 400) && !us.closed,
            Rule::Either => us.status.is_some(),
        };
        if !ok {
            failures.push(format!("{name}: {us:?}"));
        }
    }
    eprintln!("{table}");
    // The oracle itself must be working for the comparison to mean anything.
    assert_eq!(
        answers[0].1.status,
        Some(200),
        "nginx oracle: {:?}",
        answers[0].1
    );
    assert!(failures.is_empty(), "{}\n{table}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------
// Application: login rate limiting
// ---------------------------------------------------------------------------------

/// POST /api/v1/sessions with `password`; the answer.
fn login(addr: SocketAddr, user: &str, password: &str) -> RawAnswer {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    let request = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw_exchange(addr, request.as_bytes(), DEADLINE)
}

/// Password guessing against one account, then against many accounts from one
/// address, must meet 429 with Retry-After (per account and per address), and the
/// rightful owner still gets in from elsewhere once the account's bucket refills.
#[test]
fn logins_are_rate_limited_per_account_and_per_address() {
    let server = Onebox::start();
    let addr = server.http_addr();
    let body = r#"{"username":"victim","password":"victim-password"}"#;
    let request = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        raw_exchange(addr, request.as_bytes(), DEADLINE).status,
        Some(201)
    );

    let mut statuses = Vec::new();
    for i in 0..30 {
        let answer = login(addr, "victim", &format!("guess-{i}"));
        statuses.push(answer.status);
        if answer.status == Some(429) {
            assert!(
                answer.text.to_ascii_lowercase().contains("retry-after:"),
                "429 without Retry-After: {}",
                answer.text
            );
            break;
        }
        assert_eq!(answer.status, Some(401), "{}", answer.text);
    }
    assert_eq!(
        statuses.last().copied().flatten(),
        Some(429),
        "30 wrong passwords for one account were never limited: {statuses:?}"
    );

    // Per address: one client trying one password on many accounts.
    let mut statuses = Vec::new();
    for i in 0..60 {
        let answer = login(addr, &format!("user{i}"), "123456");
        statuses.push(answer.status);
        if answer.status == Some(429) {
            break;
        }
    }
    assert_eq!(
        statuses.last().copied().flatten(),
        Some(429),
        "60 logins to different accounts from one address were never limited: {statuses:?}"
    );
}

// ---------------------------------------------------------------------------------
// Application: user text is escaped wherever it appears
// ---------------------------------------------------------------------------------

/// The markup an attacker wants in our pages, and what it must turn into.
const XSS: &str = r#"<script>alert("x")</script><img src=x onerror=alert(1)>"#;
const XSS_ESCAPED: &str =
    "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;";

/// One HTTP/1.1 exchange with optional cookie and form body; the whole answer.
fn page(addr: SocketAddr, method: &str, target: &str, cookie: &str, form: &str) -> RawAnswer {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: foobar.com\r\nConnection: close\r\nCookie: {cookie}\r\n"
    );
    if method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            form.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(form);
    raw_exchange(addr, request.as_bytes(), DEADLINE)
}

/// Every place a visitor's text comes back in HTML: a rejected registration and a
/// failed login (both re-render the form with the username), a post, the 404 page
/// (the path), a bad query. None may carry the markup through unescaped.
#[test]
fn user_text_is_escaped_in_every_html_answer() {
    let server = Onebox::start();
    let addr = server.http_addr();
    let form_page = page(addr, "GET", "/login", "", "");
    let cookie = form_page
        .text
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .expect("the form sets its CSRF cookie")
        .to_string();
    let token = csrf_field(&form_page.text);
    let evil: String = XSS.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let mut answers = vec![
        (
            "register",
            page(
                addr,
                "POST",
                "/register",
                &cookie,
                &format!("csrf={token}&username={evil}&password=correct+horse"),
            ),
        ),
        (
            "login",
            page(
                addr,
                "POST",
                "/login",
                &cookie,
                &format!("csrf={token}&username={evil}&password=wrong+horse"),
            ),
        ),
        ("404 path", page(addr, "GET", &format!("/{evil}"), "", "")),
        (
            "query",
            page(addr, "GET", &format!("/?before={evil}"), "", ""),
        ),
    ];
    // A post by a logged-in user, shown on the home page.
    let body = r#"{"username":"xss","password":"xss-password"}"#;
    for path in ["/api/v1/users", "/api/v1/sessions"] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer = raw_exchange(addr, request.as_bytes(), DEADLINE);
        assert_eq!(answer.status, Some(201), "{}", answer.text);
        if path.ends_with("sessions") {
            let json = answer.text.split("\r\n\r\n").nth(1).unwrap_or_default();
            let token: serde_json::Value = serde_json::from_str(json).unwrap();
            let post = serde_json::json!({ "body": XSS }).to_string();
            let request = format!(
                "POST /api/v1/posts HTTP/1.1\r\nHost: foobar.com\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{post}",
                token["token"].as_str().unwrap(),
                post.len()
            );
            assert_eq!(
                raw_exchange(addr, request.as_bytes(), DEADLINE).status,
                Some(201)
            );
        }
    }
    answers.push(("home with the post", page(addr, "GET", "/", "", "")));

    let mut report = String::new();
    for (name, answer) in &answers {
        let echoed = answer.text.contains(XSS_ESCAPED);
        report.push_str(&format!(
            "{name}: {:?}, escaped copy shown: {echoed}\n",
            answer.status
        ));
        assert!(
            !answer.text.contains("<script>alert") && !answer.text.contains("<img src=x"),
            "{name}: markup came back unescaped:\n{}",
            answer.text
        );
    }
    eprintln!("{report}");
    assert!(
        answers.last().unwrap().1.text.contains(XSS_ESCAPED),
        "the post is not shown escaped:\n{report}"
    );
}
