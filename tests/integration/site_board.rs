//! The home page's two shortcuts, on the real binary and on both backends: the
//! anonymous board is rendered once per posts version yet shows every post the
//! moment it is acknowledged, and concurrent views share the visit counter's
//! durable writes while each still gets a number of its own.

use crate::harness::*;

/// The id in the board's "Older posts →" link.
fn older_link(page: &str) -> u64 {
    let (_, rest) = page
        .split_once("href=\"/?before=")
        .unwrap_or_else(|| panic!("no older-posts link: {page}"));
    rest.split('"').next().unwrap().parse().unwrap()
}

#[test]
fn the_board_shows_each_post_at_once_and_its_panel_is_honest() {
    let (_dir, server) = Onebox::start_unthrottled_fresh("board");
    let first = http_get(&server, "foobar.com", "/").text();
    assert_contains_all(&first, &["No posts yet", "1 read, 1 write"]);
    // On redb the board is kept per posts version, and the panel says no read was
    // needed; on PostgreSQL another node may post, so every view reads.
    let again = http_get(&server, "foobar.com", "/").text();
    let work = if test_db().is_none() {
        "0 reads, 1 write"
    } else {
        "1 read, 1 write"
    };
    assert_contains_all(&again, &[work, "visited <strong>2</strong> times"]);
    let token = user_token(&server, "ann");
    for i in 0..21 {
        let r = post_as(&server, &token, &format!(r#"{{"body":"post {i}"}}"#));
        assert_eq!(r.status, 201, "{}", r.text());
        if i == 0 {
            // Acknowledged means shown: the very next anonymous view has it.
            let page = http_get(&server, "foobar.com", "/").text();
            assert_contains(&page, "<p class=\"body\">post 0</p>");
            assert!(!page.contains("No posts yet"), "{page}");
        }
    }
    // 21 posts: the newest 20 here, the first one a page further.
    let page = http_get(&server, "foobar.com", "/").text();
    assert_contains(&page, "<p class=\"body\">post 20</p>");
    assert!(!page.contains("<p class=\"body\">post 0</p>"), "{page}");
    let older = http_get(
        &server,
        "foobar.com",
        &format!("/?before={}", older_link(&page)),
    )
    .text();
    assert_contains_all(&older, &["Older posts", "<p class=\"body\">post 0</p>"]);
    // Each host has its own board, counter and chain.
    let www = http_get(&server, "www.foobar.com", "/").text();
    assert_contains_all(
        &www,
        &[
            "Hello from <span class=\"host\">www.foobar.com</span>",
            "<p class=\"body\">post 20</p>",
            "visited <strong>1</strong> time,",
            "<span class=\"rtype\">CNAME</span>",
        ],
    );
}

#[test]
fn a_burst_of_views_on_two_hosts_gets_distinct_durable_numbers_in_bounded_memory() {
    let dir = TempDir::new("visit-burst");
    let server = Onebox::start_on(&dir);
    let idle = server.rss_kib();
    let addr = server.http;
    // 32 clients at once, half on each host: views of one host share writes,
    // and the two hosts' batches interleave.
    let views: Vec<(usize, u64)> = (0..32)
        .map(|client| {
            std::thread::spawn(move || {
                let host = ["foobar.com", "www.foobar.com"][client % 2];
                (0..8)
                    .map(|_| {
                        let r = http(addr, "GET", "/", host, &[], b"").unwrap();
                        assert_eq!(r.status, 200);
                        (client % 2, visits_on(&r.text()))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let grown = server.rss_kib().saturating_sub(idle);
    assert!(grown < 32 * 1024, "the burst grew RSS by {grown} KiB");
    for host in 0..2 {
        let mut seen: Vec<u64> = views.iter().filter(|v| v.0 == host).map(|v| v.1).collect();
        seen.sort_unstable();
        assert_eq!(seen, (1..=128).collect::<Vec<u64>>(), "host {host}");
    }
    // Every number shown was on disk before its page left: a crash right after
    // the burst loses none of them.
    server.kill9();
    let server = Onebox::start_on(&dir);
    assert_eq!(visits_on(&http_get(&server, "foobar.com", "/").text()), 129);
    assert_eq!(
        visits_on(&http_get(&server, "www.foobar.com", "/").text()),
        129
    );
}
