//! Issue 10, item 12: posting has a per-account rate. A concurrent burst from one
//! account stores at most the documented budget (`--post-rate`, 60 a minute by
//! default); the rest get 429 with `Retry-After`, and nothing refused is stored.

use std::sync::{Arc, Barrier};

use crate::harness::{Server, api, http, user_token};

#[test]
fn a_concurrent_burst_of_posts_stops_at_the_accounts_rate() {
    const BURST: usize = 150;
    let server = Arc::new(Server::start());
    let token = user_token(&server, "ann");
    let barrier = Arc::new(Barrier::new(BURST));
    let threads: Vec<_> = (0..BURST)
        .map(|i| {
            let (server, barrier, auth) =
                (server.clone(), barrier.clone(), format!("Bearer {token}"));
            std::thread::spawn(move || {
                barrier.wait();
                let body = serde_json::json!({ "body": format!("post {i}") }).to_string();
                let r = http(
                    server.http,
                    "POST",
                    "/api/v1/posts",
                    "www.foobar.com",
                    &[
                        ("Authorization", auth.as_str()),
                        ("Content-Type", "application/json"),
                    ],
                    body.as_bytes(),
                )
                .expect("an answer");
                let retry = r.header("retry-after").map(str::to_string);
                (r.status, retry)
            })
        })
        .collect();
    let (mut stored, mut refused) = (0, 0);
    for t in threads {
        match t.join().expect("poster") {
            (201, _) => stored += 1,
            (429, Some(wait)) => {
                assert!(wait.parse::<u64>().is_ok_and(|w| w >= 1), "{wait}");
                refused += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("{BURST} concurrent posts by one account: {stored} stored, {refused} refused");
    // 60 in the bucket; at one per second, a slow run may earn a few more.
    assert!((60..=70).contains(&stored), "{stored} posts stored");
    let listed = api(&server, "GET", "/api/v1/posts?limit=1000", &[], "").json()["posts"]
        .as_array()
        .expect("posts")
        .len();
    assert_eq!(listed, stored, "only acknowledged posts are stored");
}
