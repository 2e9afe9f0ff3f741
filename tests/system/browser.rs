//! A real browser loads http://www.foobar.com/ with the name resolved by onebox's
//! own DNS server: headless Chromium in a private network namespace whose
//! resolv.conf points at onebox, with no hosts-file entry and no resolver flags.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

#[test]
fn chromium_resolves_through_onebox_and_loads_the_site() {
    skip_unless!(
        require_root(),
        require_tool("chromium", "chromium"),
        require_tool("unshare", "util-linux")
    );
    let (_, artifacts) = run_e2e_script("browser-e2e.sh", "browser");
    let read = |name: &str| std::fs::read_to_string(artifacts.join(name)).unwrap_or_default();

    // The page came from our site, under the name the browser asked for.
    let dom = read("dom.html");
    assert_contains_all(&dom, &["How this page reached you", "www.foobar.com"]);
    let shot = std::fs::read(artifacts.join("shot.png")).unwrap_or_default();
    assert!(
        shot.starts_with(b"\x89PNG"),
        "no screenshot (Chromium exits 0 even when the load fails)"
    );

    // onebox answered Chromium's lookup and served the request: the name really
    // went through our DNS server, then to the address its A record gives.
    let log = read("server.log");
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let asked = events.iter().any(|e| {
        e["target"] == "onebox::dns::query"
            && e["qname"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("www.foobar.com."))
            && e["qtype"] == "A"
            && e["rcode"] == "NOERROR"
    });
    assert!(
        asked,
        "no query for www.foobar.com A in onebox's log:\n{log}"
    );
    let served = events.iter().any(|e| {
        e["target"] == "onebox::web::access"
            && e["host"] == "www.foobar.com"
            && e["path"] == "/"
            && e["status"] == 200
    });
    assert!(
        served,
        "no access-log event for GET / on www.foobar.com:\n{log}"
    );

    // Negative control: with onebox stopped the same load fails.
    assert!(
        !read("after-stop.html").contains("How this page reached you"),
        "the page loaded without onebox: the test would pass without our DNS"
    );
}
