//! A web node of the cluster (issue 14): `serve --dns off` serves the site with
//! no DNS in any form (no UDP, TCP or DoT socket, no DoH), reads its zones for the
//! site's names all the same, and its `/readyz` checks HTTP and the database only.
//! `--node-name` puts `Onebox-Node` on every response the web layer makes and
//! "served by NAME" on the home page, so a client behind a load balancer sees
//! which node answered; `onebox maintenance on` still drains such a node.

use std::time::Duration;

use crate::harness::*;

const NODE: &str = "node1";

/// A cluster's web node: no DNS, a name.
fn web_node() -> Onebox {
    Onebox::spawn()
        .dns("off")
        .args(["--node-name", NODE])
        .start()
}

/// `GET https://www.foobar.com:PORT{path}` with curl, trusting the server's CA:
/// (status, header block).
fn https_get(server: &Onebox, path: &str) -> (u16, String) {
    let port = server.ready_addr("https").port();
    let resolve = format!("www.foobar.com:{port}:127.0.0.1");
    let url = format!("https://www.foobar.com:{port}{path}");
    let ca = server.ready_path("ca");
    let (status, headers, _) = curl(&["--cacert", path_text(&ca), "--resolve", &resolve, &url]);
    (status, headers)
}

#[test]
fn dns_off_binds_no_dns_socket_and_still_serves_the_site() {
    skip_unless!(require_tool("curl", "curl"));
    let server = web_node();
    // The keys stay, as null: scripts read the ready line by key.
    for key in ["dns", "dot"] {
        assert!(
            server
                .ready
                .get(key)
                .is_some_and(serde_json::Value::is_null),
            "{key} must be null with --dns off: {}",
            server.ready
        );
    }
    // Exactly the web and metrics listeners: no UDP at all, no DNS or DoT over TCP.
    let mut want: Vec<_> = ["http", "https", "metrics"]
        .iter()
        .map(|key| ("tcp", server.ready_addr(key)))
        .collect();
    want.sort();
    assert_eq!(server.sockets(), want, "the sockets of a --dns off node");

    // The zones are still read: the site's names are served, others get 421.
    let home = http_get(&server, "www.foobar.com", "/");
    assert_eq!(home.status, 200, "{}", home.text());
    assert_contains_all(
        &home.text(),
        &["How this page reached you", "www.foobar.com"],
    );
    assert_eq!(http_get(&server, "elsewhere.example", "/").status, 421);

    // /readyz asks no DNS: "off", and ready on HTTP and the database alone.
    let ready = http_get(&server, "foobar.com", "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.text());
    let ready = ready.json();
    assert_eq!(ready["dns"], "off", "{ready}");
    assert_eq!(ready["db"], "ok", "{ready}");
    assert_eq!(ready["ready"], true, "{ready}");

    // No DNS over HTTPS either (a query for www.foobar.com A, RFC 8484 GET).
    let (status, headers) = https_get(
        &server,
        "/dns-query?dns=AAABAAABAAAAAAAAA3d3dwZmb29iYXIDY29tAAABAAE",
    );
    assert_eq!(status, 404, "{headers}");
}

/// (what, method, host, path, headers, body, expected status).
type Case<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [u8],
    u16,
);

#[test]
fn every_response_names_the_node_and_the_home_page_says_which() {
    skip_unless!(require_tool("curl", "curl"));
    let server = web_node();
    let www = "www.foobar.com";
    let token = user_token(&server, "nodetest");
    let bearer = format!("Bearer {token}");
    let authorized = [
        ("Authorization", bearer.as_str()),
        ("Content-Type", "application/json"),
    ];
    // One of each kind of responder: the app's pages and API, static files,
    // health, the web layer's own errors.
    let cases: [Case; 10] = [
        ("page", "GET", www, "/", &[], b"", 200),
        ("api", "GET", www, "/api/v1/posts", &[], b"", 200),
        (
            "api write",
            "POST",
            www,
            "/api/v1/posts",
            &authorized,
            br#"{"body":"from node1"}"#,
            201,
        ),
        ("api error", "POST", www, "/api/v1/posts", &[], b"{}", 401),
        ("static", "GET", www, "/static/site.css", &[], b"", 200),
        ("not found", "GET", www, "/no/such/page", &[], b"", 404),
        ("other host", "GET", "elsewhere.example", "/", &[], b"", 421),
        ("method", "DELETE", www, "/", &[], b"", 405),
        ("healthz", "GET", "127.0.0.1", "/healthz", &[], b"", 200),
        ("readyz", "GET", "127.0.0.1", "/readyz", &[], b"", 200),
    ];
    for (what, method, host, path, headers, body, status) in cases {
        let reply = http(server.http, method, path, host, headers, body)
            .unwrap_or_else(|e| panic!("{what}: {method} {path}: {e}"));
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        assert_eq!(
            reply.header("onebox-node"),
            Some(NODE),
            "{what}: {:?}",
            reply.headers
        );
    }
    // 413 is decided on the declared length, before any body is read.
    let too_big =
        "POST /api/v1/posts HTTP/1.1\r\nHost: www.foobar.com\r\nContent-Length: 2000000\r\n\r\n";
    let answer = raw_exchange(server.http, too_big.as_bytes(), Duration::from_secs(2));
    assert_eq!(answer.status, Some(413), "{}", answer.text);
    assert!(
        answer
            .text
            .to_ascii_lowercase()
            .contains("onebox-node: node1"),
        "413: {}",
        answer.text
    );
    // HTTPS goes through the same layers.
    let (status, headers) = https_get(&server, "/");
    assert_eq!(status, 200, "{headers}");
    assert_eq!(
        header_of(&headers, "onebox-node"),
        Some(NODE),
        "https: {headers}"
    );
    // The page says it in words, as one greppable phrase.
    assert!(
        http_get(&server, www, "/")
            .text()
            .contains("served by node1")
    );

    // Without --node-name there is no header and no sentence.
    let plain = Onebox::start();
    let home = http_get(&plain, www, "/");
    assert_eq!(home.status, 200);
    assert_eq!(home.header("onebox-node"), None, "{:?}", home.headers);
    assert!(
        !home.text().contains("served by"),
        "no node name, no sentence"
    );
}

#[test]
fn maintenance_drains_a_web_node_and_off_brings_it_back() {
    let server = web_node();
    let readyz = |server: &Onebox| http_get(server, "127.0.0.1", "/readyz");
    assert_eq!(readyz(&server).status, 200);
    // HAProxy's `option httpchk GET /readyz` sends HTTP/1.0 with no Host header.
    let haproxy_check = |server: &Onebox| {
        let check = b"GET /readyz HTTP/1.0\r\n\r\n";
        raw_exchange(server.http, check, Duration::from_secs(2)).status
    };
    assert_eq!(haproxy_check(&server), Some(200));

    server.maintenance(true);
    // What HAProxy's check sees: 503, from this node.
    let check = readyz(&server);
    assert_eq!(check.status, 503, "{}", check.text());
    assert_eq!(check.header("onebox-node"), Some(NODE));
    assert_eq!(haproxy_check(&server), Some(503));
    for path in ["/", "/api/v1/posts"] {
        let reply = http_get(&server, "www.foobar.com", path);
        assert_eq!(reply.status, 503, "{path}: {}", reply.text());
        assert_eq!(reply.header("retry-after"), Some("60"), "{path}");
        assert_eq!(reply.header("onebox-node"), Some(NODE), "{path}");
    }
    // The page does not send the visitor to a DNS server this node does not run.
    let page = http_get(&server, "www.foobar.com", "/").text();
    assert!(
        page.contains("--dns off") && !page.contains("dig @"),
        "{page}"
    );
    // Health is not readiness: the process is fine, so HAProxy may re-admit it later.
    assert_eq!(http_get(&server, "127.0.0.1", "/healthz").status, 200);

    server.maintenance(false);
    assert_eq!(readyz(&server).status, 200);
    assert_eq!(haproxy_check(&server), Some(200));
    assert_eq!(http_get(&server, "www.foobar.com", "/").status, 200);
}

#[test]
fn flags_that_cannot_work_on_a_web_node_are_refused() {
    // (arguments besides --dns off, what the refusal must say)
    let refusals: [(&[&str], &str); 4] = [
        (&["--node-name", "node 1"], "--node-name"),
        (&["--node-name", "node1\r\nx-injected: 1"], "--node-name"),
        (&["--notify", "127.0.0.1:5300"], "--notify needs DNS"),
        (&["--dot", "127.0.0.1:0"], "--dot needs DNS"),
    ];
    for (args, says) in refusals {
        let why = format!("with --dns off {args:?}");
        let failed = Onebox::spawn().dns("off").args(args).refused(&why);
        assert!(failed.stderr.contains(says), "{why}: {}", failed.stderr);
    }
    let internet = Onebox::spawn()
        .dns("off")
        .zones(repo_path("internet"))
        .refused("--dns off with the toy Internet");
    assert!(
        internet
            .stderr
            .contains("--dns off cannot serve the toy Internet"),
        "{}",
        internet.stderr
    );
}
