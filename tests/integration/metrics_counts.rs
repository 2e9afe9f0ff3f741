//! Issue 16: `/metrics` counts every DNS query and every HTTP request exactly once,
//! whichever transport and whichever path (the replay fast path or the full one)
//! served it; the ready line names the listener; `--metrics off` has none.

use hickory_server::proto::rr::RecordType;

use crate::harness::*;

/// One scrape of `server`'s `/metrics`, in the Prometheus text format.
pub fn scrape(server: &Onebox) -> String {
    let addr = server.ready_addr("metrics");
    let response = http(addr, "GET", "/metrics", "127.0.0.1", &[], b"").expect("scrape /metrics");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

/// The sum of the samples of `name` whose labels include every pair of `labels`
/// (0 when none: a series appears once it has counted something).
pub fn value(scrape: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
            series_name == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|(_, v)| v.parse::<f64>().expect("a sample value"))
        .sum()
}

#[test]
fn every_dns_query_counts_once_on_udp_tcp_dot_and_doh() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = Onebox::start();
    let ca = server.ready_path("ca").display().to_string();
    let tls_ca = format!("+tls-ca={ca}");
    let before = scrape(&server);

    // Three names asked four times each: the first of each goes the full path, the
    // repeats are replayed from the answer cache. Both must count.
    let names = ["www.foobar.com.", "foobar.com.", "nope.foobar.com."];
    for _ in 0..4 {
        for name in names {
            ask_udp(server.dns, &query(name, RecordType::A));
        }
    }
    for _ in 0..3 {
        for name in names {
            ask_tcp(server.dns, &query(name, RecordType::A));
        }
    }
    let (dot, https) = (server.ready_addr("dot"), server.ready_addr("https"));
    for _ in 0..2 {
        for name in ["www.foobar.com", "foobar.com"] {
            let reply = dig(dot, &["+tls", &tls_ca, name, "A"]);
            assert_eq!(
                reply.status, "NOERROR",
                "dig +tls:\n{}{}",
                reply.stdout, reply.stderr
            );
            let reply = dig(https, &["+https", &tls_ca, name, "A"]);
            assert_eq!(
                reply.status, "NOERROR",
                "dig +https:\n{}{}",
                reply.stdout, reply.stderr
            );
        }
    }

    let after = scrape(&server);
    let rose = |proto: &str| {
        let labels = [("proto", proto), ("type", "A")];
        value(&after, "onebox_dns_requests_total", &labels)
            - value(&before, "onebox_dns_requests_total", &labels)
    };
    assert_eq!(
        [rose("udp"), rose("tcp"), rose("tls"), rose("https")],
        [12.0, 9.0, 4.0, 4.0],
        "A queries counted per transport (udp, tcp, tls, https):\n{after}"
    );
    let nxdomain = [("rcode", "NXDOMAIN")];
    assert_eq!(
        value(&after, "onebox_dns_responses_total", &nxdomain)
            - value(&before, "onebox_dns_responses_total", &nxdomain),
        7.0,
        "nope.foobar.com was asked 4 times over UDP and 3 over TCP"
    );
    let hits = value(&after, "onebox_dns_cache_hits_total", &[])
        - value(&before, "onebox_dns_cache_hits_total", &[]);
    assert!(
        hits >= 9.0,
        "the UDP repeats come from the answer cache, yet it counted {hits} hits"
    );
    let observed = value(&after, "onebox_dns_request_duration_seconds_count", &[])
        - value(&before, "onebox_dns_request_duration_seconds_count", &[]);
    assert!(
        observed >= 29.0,
        "every query is timed: {observed} observations"
    );
}

#[test]
fn every_http_request_counts_once_by_host_class_method_and_status() {
    let server = Onebox::start();
    let before = scrape(&server);
    for _ in 0..4 {
        let r = http_get(&server, "foobar.com", "/");
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        let r = http_get(&server, "foobar.com", "/no-such-page");
        assert_eq!(r.status, 404);
    }
    let r = http(server.http, "HEAD", "/", "www.foobar.com", &[], b"").unwrap();
    assert_eq!(r.status, 200);
    let r = http_get(&server, "elsewhere.example", "/");
    assert_eq!(r.status, 421);
    let after = scrape(&server);

    let rose = |labels: &[(&str, &str)]| {
        value(&after, "onebox_http_requests_total", labels)
            - value(&before, "onebox_http_requests_total", labels)
    };
    let plain = ("tls", "false");
    assert_eq!(
        rose(&[
            ("host", "site"),
            ("method", "GET"),
            ("status", "2xx"),
            plain
        ]),
        4.0,
        "{after}"
    );
    assert_eq!(rose(&[("host", "site"), ("status", "4xx"), plain]), 2.0);
    assert_eq!(rose(&[("method", "HEAD"), ("proto", "h1")]), 1.0);
    assert_eq!(rose(&[("host", "other"), ("status", "4xx")]), 1.0);
    assert_eq!(rose(&[]), 8.0, "eight requests, eight counts");
    let timed = value(&after, "onebox_http_request_duration_seconds_count", &[])
        - value(&before, "onebox_http_request_duration_seconds_count", &[]);
    assert_eq!(timed, 8.0);
    assert!(
        value(&after, "onebox_http_response_bytes_total", &[])
            > value(&before, "onebox_http_response_bytes_total", &[])
    );
}

#[test]
fn the_ready_line_names_the_listener_and_accept_picks_openmetrics() {
    let server = Onebox::start();
    let addr = server.ready_addr("metrics");
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let text = scrape(&server);
    for series in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "onebox_zone_serial{zone=\"foobar.com\"}",
        "onebox_ready 1",
        "onebox_certificate_expiry_timestamp_seconds",
    ] {
        assert!(text.contains(series), "no {series} in:\n{text}");
    }
    assert!(!text.contains("# EOF"));
    let open = http(
        addr,
        "GET",
        "/metrics",
        "127.0.0.1",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
        b"",
    )
    .unwrap();
    assert!(
        open.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        open.headers
    );
    assert!(open.text().ends_with("# EOF\n"));
}

#[test]
fn metrics_off_means_no_listener_and_a_null_in_the_ready_line() {
    let server = Onebox::spawn().args(["--metrics", "off"]).start();
    assert!(server.ready["metrics"].is_null(), "{}", server.ready);
    assert!(server.ready["dns"].is_string(), "the other keys stay");
    let bad = Onebox::spawn().args(["--metrics", "nonsense"]).try_start();
    let Err(failure) = bad else {
        panic!("a bad --metrics must not start");
    };
    assert_contains(&failure.stderr, "expected ADDR:PORT or off");
}

#[test]
fn accounts_logins_posts_and_commits_are_counted() {
    let server = Onebox::start();
    let before = scrape(&server);
    let creds = r#"{"username":"ann","password":"correct horse"}"#;
    let wrong = r#"{"username":"ann","password":"wrong horse!"}"#;
    let r = sign_up(&server, creds);
    assert_eq!(
        api(&server, "POST", "/api/v1/sessions", &[], wrong).status,
        401
    );
    let bearer = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    // A counted visit waits in the visit log until the post's commit folds it in.
    assert_eq!(http_get(&server, "foobar.com", "/").status, 200);
    let posted = api(
        &server,
        "POST",
        "/api/v1/posts",
        &[("Authorization", &bearer)],
        r#"{"body":"counted"}"#,
    );
    assert_eq!(posted.status, 201, "{}", posted.text());
    let after = scrape(&server);

    let rose = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    assert_eq!(rose("onebox_app_registrations_total", &[]), 1.0, "{after}");
    assert_eq!(rose("onebox_app_logins_total", &[("result", "ok")]), 1.0);
    assert_eq!(
        rose("onebox_app_logins_total", &[("result", "failed")]),
        1.0
    );
    assert_eq!(rose("onebox_app_posts_total", &[]), 1.0);
    // The account, the session and the post are durable writes: each is in a commit.
    let commits = rose("onebox_db_commits_total", &[]);
    let requests = rose("onebox_db_commit_requests_sum", &[]);
    assert!(
        commits >= 1.0 && requests >= 3.0,
        "{commits} commits of {requests} requests"
    );
    assert_eq!(
        rose("onebox_db_commit_requests_count", &[]),
        commits,
        "one batch-size observation per commit"
    );
    assert_eq!(rose("onebox_db_write_errors_total", &[]), 0.0);
    assert!(
        rose("onebox_db_visit_log_folds_total", &[]) >= 1.0,
        "{after}"
    );
}

#[test]
fn sessions_active_counts_the_unexpired_sessions_at_scrape_time() {
    let server = Onebox::start();
    let creds = r#"{"username":"bea","password":"correct horse"}"#;
    register(&server, creds);
    // Two logins are two sessions; logging one out leaves exactly one.
    let tokens: Vec<String> = (0..2)
        .map(|_| {
            login(&server, creds).json()["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let two = scrape(&server);
    assert_eq!(value(&two, "onebox_app_sessions_active", &[]), 2.0, "{two}");
    let bearer = format!("Bearer {}", tokens[0]);
    assert_eq!(
        api(
            &server,
            "DELETE",
            "/api/v1/sessions",
            &[("Authorization", &bearer)],
            ""
        )
        .status,
        204
    );
    let one = scrape(&server);
    assert_eq!(value(&one, "onebox_app_sessions_active", &[]), 1.0, "{one}");
}

#[test]
fn the_resolver_counts_upstream_queries_by_level_and_cache_hits_and_misses() {
    let server = Onebox::spawn().zones(repo_path("internet")).start();
    let resolver = server.ready_addr("resolver");
    let mut question = query("www.foobar.com.", RecordType::A);
    question.metadata.recursion_desired = true;
    let before = scrape(&server);

    // The first resolution walks the hierarchy: root, then com, then foobar.com.
    let first = ask_udp(resolver, &question);
    assert_eq!(first.metadata.response_code.to_string(), "No Error");
    assert!(!first.answers.is_empty(), "{first:?}");
    let walked = scrape(&server);
    let rose = |after: &str, name: &str, labels: &[(&str, &str)]| {
        value(after, name, labels) - value(&before, name, labels)
    };
    for level in ["root", "tld", "other"] {
        assert!(
            rose(
                &walked,
                "onebox_resolver_upstream_queries_total",
                &[("level", level)]
            ) >= 1.0,
            "no upstream query at level {level}: {walked}"
        );
    }
    assert_eq!(
        rose(&walked, "onebox_resolver_cache_misses_total", &[]),
        1.0
    );
    assert_eq!(rose(&walked, "onebox_resolver_cache_hits_total", &[]), 0.0);
    let entries = value(&walked, "onebox_resolver_cache_entries", &[]);
    assert!(entries >= 2.0, "the CNAME and the A are cached: {walked}");

    // The same question again: one hit, and not one more query upstream.
    question.metadata.id = question.metadata.id.wrapping_add(1);
    let second = ask_udp(resolver, &question);
    assert_eq!(second.answers.len(), first.answers.len(), "{second:?}");
    let cached = scrape(&server);
    assert_eq!(rose(&cached, "onebox_resolver_cache_hits_total", &[]), 1.0);
    assert_eq!(
        rose(&cached, "onebox_resolver_cache_misses_total", &[]),
        1.0
    );
    assert_eq!(
        value(&cached, "onebox_resolver_upstream_queries_total", &[]),
        value(&walked, "onebox_resolver_upstream_queries_total", &[]),
        "{cached}"
    );
    assert_eq!(
        value(&cached, "onebox_resolver_cache_entries", &[]),
        entries
    );
}
