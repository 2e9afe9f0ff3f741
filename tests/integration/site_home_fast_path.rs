//! The home page's fast path against the router: an anonymous `GET /` (which the
//! fast path answers) and `GET /?via=router` (a query it declines, which the board
//! ignores) must get the same status, headers and page, apart from what differs
//! per view (the date, the timings, the visit number, the ports, the new CSRF
//! cookie's value); both count their visit durably, with distinct numbers, and
//! both are in the access log alike.

use crate::harness::*;

/// The fast path's target and the same page forced through the router.
const FAST: &str = "/";
const ROUTED: &str = "/?via=router";

/// Every header but the date, lower-cased and sorted, values with digits masked
/// and the CSRF cookie's random value left out.
fn comparable(r: &Response) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| k != "date")
        .map(|(k, v)| {
            let v = if k == "set-cookie" {
                v.split_once(';')
                    .map(|(_, attrs)| attrs.to_string())
                    .unwrap_or(v)
            } else {
                v
            };
            (k, masked(&v))
        })
        .collect();
    headers.sort();
    headers
}

#[test]
fn the_home_fast_path_answers_exactly_as_the_router() {
    let data = TempDir::new("home-fast");
    let server = Onebox::spawn()
        .data(data.path())
        .args(["--log-format", "json", "--node-name", "node-a"])
        .start();
    // A post, so the board has rows to render (and the first view renders it: 1 read).
    let token = user_token(&server, "homefast");
    assert_eq!(
        post_as(&server, &token, r#"{"body":"a post on the board"}"#).status,
        201
    );
    let first = http_get(&server, "foobar.com", ROUTED);
    assert_eq!(first.status, 200, "{}", first.text());

    let mut seen = vec![visits_on(&first.text())];
    for round in 0..3 {
        let fast = http_get(&server, "foobar.com", FAST);
        let routed = http_get(&server, "foobar.com", ROUTED);
        let what = format!("round {round}");
        assert_eq!(fast.status, 200, "{what}: {}", fast.text());
        assert_eq!(comparable(&fast), comparable(&routed), "{what}");
        assert_eq!(masked(&fast.text()), masked(&routed.text()), "{what}");
        for r in [&fast, &routed] {
            assert!(r.text().contains("a post on the board"), "{what}");
            assert_eq!(r.header("onebox-node"), Some("node-a"), "{what}");
            assert_eq!(r.header("vary"), Some("accept-encoding"), "{what}");
            assert!(r.cookie("onebox_csrf").is_some(), "{what}");
            // What the page claims: one write, and on redb no read (the board
            // was rendered by the first view); on PostgreSQL another node may
            // have posted, so every view reads the board.
            let timing = r.header("server-timing").expect("server-timing");
            let work = if test_db().is_none() {
                "database: redb, 0 reads, 1 write\""
            } else {
                ", 1 read, 1 write\""
            };
            assert!(
                timing.contains(", app;desc=\"application\";dur=")
                    && timing.contains("db;desc=\"database: ")
                    && timing.contains(work),
                "{what}: {timing}"
            );
            seen.push(visits_on(&r.text()));
        }
        assert_ne!(fast.cookie("onebox_csrf"), routed.cookie("onebox_csrf"));
    }
    // Every view was counted, each with its own number.
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, seen, "visit numbers must rise with each view");

    // Both ways are logged alike, as the application's `GET /`.
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    let homes: Vec<_> = access_events(&log)
        .into_iter()
        .filter(|e| e["fields"]["path"] == "/" || e["path"] == "/")
        .collect();
    assert_eq!(homes.len(), 7, "{log}");
    for event in &homes {
        let fields = if event["fields"].is_object() {
            &event["fields"]
        } else {
            event
        };
        assert_eq!(fields["status"], 200, "{event}");
        assert_eq!(fields["layer"], "app", "{event}");
        assert_eq!(fields["route"], "GET /", "{event}");
        assert_eq!(fields["host"], "foobar.com", "{event}");
        assert!(fields["bytes"].as_u64().unwrap() > 1000, "{event}");
    }

    // The visits are durable: the counter reopened from disk goes on from them.
    let again = Onebox::start_on(data.path());
    let next = visits_on(&http_get(&again, "foobar.com", FAST).text());
    assert_eq!(next, seen.last().unwrap() + 1);
}
