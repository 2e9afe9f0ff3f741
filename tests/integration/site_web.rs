//! Proves the web server box on the real binary: both site names and the 421 for
//! others, h2c, static files (ETag/Last-Modified 304, ranges, compression, MIME,
//! no traversal), `--site DIR`, health and readiness, limits, Server-Timing and
//! the access log.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

#[test]
fn both_site_names_serve_the_board_and_others_get_421() {
    let server = Onebox::start();
    for host in [
        "foobar.com",
        "www.foobar.com",
        "WWW.FooBar.com.",
        "www.foobar.com:8080",
    ] {
        let r = http_get(&server, host, "/");
        assert_eq!(r.status, 200, "{host}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        let page = r.text();
        let shown = host.to_lowercase();
        let shown = shown.trim_end_matches(".").split(':').next().unwrap();
        assert!(
            page.contains(&format!("You asked for <code>{shown}</code>")),
            "{host}: {page}"
        );
    }
    for host in ["example.org", "127.0.0.1", "nope.foobar.com"] {
        let r = http_get(&server, host, "/");
        assert_eq!(r.status, 421, "{host}");
        assert!(r.text().contains("does not serve"), "{}", r.text());
        let r = http_get(&server, host, "/api/v1/posts");
        assert_eq!(r.status, 421);
        assert!(r.json()["error"].as_str().unwrap().contains(host));
    }
}

#[test]
fn the_panel_shows_the_live_chain_connection_and_layers() {
    let server = Onebox::start();
    let r = http_get(&server, "www.foobar.com", "/");
    let page = r.text();
    // The DNS chain from our zone: www is a CNAME to a name; only the A gives an address.
    let cname = page
        .find("<code class=\"name\">www.foobar.com.</code><span class=\"rr\"><span class=\"rtype\">CNAME</span> → <code>foobar.com.</code>")
        .expect("CNAME link");
    let a = page
        .find("<code class=\"name\">foobar.com.</code><span class=\"rr\"><span class=\"rtype\">A</span> → <code>127.0.0.1</code>")
        .expect("A link");
    assert!(cname < a);
    // The connection as the server saw it.
    assert_contains(&page, &format!("<code>{}</code>", server.http));
    assert_contains_all(&page, &["<strong>HTTP/1.1</strong>", "no TLS"]);
    // The database work this request did: session lookup absent (no cookie), one
    // counter write, one posts read.
    assert_contains(&page, "1 read, 1 write");
    // The counter is per host and survives between requests.
    let again = http_get(&server, "www.foobar.com", "/").text();
    assert_contains(&again, "visited <strong>2</strong> times");
    let apex = http_get(&server, "foobar.com", "/").text();
    assert_contains(&apex, "visited <strong>1</strong> time,");
    let chain_apex = apex.contains("www.foobar.com.</code>");
    assert!(!chain_apex, "the apex chain has no CNAME");
}

#[test]
fn h2c_with_prior_knowledge_takes_the_host_from_the_authority() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let port = server.http.port();
    let resolve = format!("www.foobar.com:{port}:127.0.0.1");
    let url = format!("http://www.foobar.com:{port}/");
    let (status, head, body) = curl(&["--http2-prior-knowledge", "--resolve", &resolve, &url]);
    assert!(head.starts_with("HTTP/2 200"), "{head}");
    assert_eq!(status, 200);
    let page = String::from_utf8(body).unwrap();
    assert_contains_all(
        &page,
        &[
            "You asked for <code>www.foobar.com</code>",
            "HTTP/2 (h2c, cleartext)",
        ],
    );
    // Unknown authority over h2 is refused too.
    let other = format!("other.example:{port}:127.0.0.1");
    let (status, _, _) = curl(&[
        "--http2-prior-knowledge",
        "--resolve",
        &other,
        &format!("http://other.example:{port}/"),
    ]);
    assert_eq!(status, 421);
}

#[test]
fn static_files_revalidate_with_304_and_serve_ranges() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let url = server.url("/static/site.css");
    let host = ["-H", "Host: www.foobar.com"];
    let (status, head, body) = curl(&[host[0], host[1], &url]);
    assert_eq!(status, 200);
    assert_eq!(
        header_of(&head, "content-type").unwrap(),
        "text/css; charset=utf-8"
    );
    assert_eq!(header_of(&head, "accept-ranges").unwrap(), "bytes");
    let etag = header_of(&head, "etag").expect("etag");
    let modified = header_of(&head, "last-modified").expect("last-modified");
    assert!(etag.starts_with('"'), "strong etag: {etag}");
    let full = body;
    assert!(full.len() > 1000);

    let inm = format!("If-None-Match: {etag}");
    let (status, head, body) = curl(&[host[0], host[1], "-H", &inm, &url]);
    assert_eq!(status, 304, "{head}");
    assert!(body.is_empty());
    assert_eq!(header_of(&head, "etag").unwrap(), etag);

    let ims = format!("If-Modified-Since: {modified}");
    let (status, _, _) = curl(&[host[0], host[1], "-H", &ims, &url]);
    assert_eq!(status, 304);
    let (status, _, _) = curl(&[host[0], host[1], "-H", "If-None-Match: \"other\"", &url]);
    assert_eq!(status, 200);
    let (status, _, _) = curl(&[
        host[0],
        host[1],
        "-H",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",
        &url,
    ]);
    assert_eq!(status, 200);

    let (status, head, body) = curl(&[host[0], host[1], "--range", "0-9", &url]);
    assert_eq!(status, 206);
    assert_eq!(body, full[..10]);
    assert_eq!(
        header_of(&head, "content-range").unwrap(),
        format!("bytes 0-9/{}", full.len())
    );
    let (status, _, body) = curl(&[host[0], host[1], "--range", "-5", &url]);
    assert_eq!(status, 206);
    assert_eq!(body, full[full.len() - 5..]);
    let beyond = format!("{}-", full.len() + 10);
    let (status, head, _) = curl(&[host[0], host[1], "--range", &beyond, &url]);
    assert_eq!(status, 416);
    assert_eq!(
        header_of(&head, "content-range").unwrap(),
        format!("bytes */{}", full.len())
    );
    // If-Range with a stale validator: the whole file, not a fragment of a new one.
    let (status, _, body) = curl(&[
        host[0],
        host[1],
        "--range",
        "0-9",
        "-H",
        "If-Range: \"stale\"",
        &url,
    ]);
    assert_eq!(status, 200);
    assert_eq!(body, full);

    // Compression when asked, and a weak validator for the compressed form.
    for (encoding, name) in [("gzip", "gzip"), ("br", "br")] {
        let ae = format!("Accept-Encoding: {encoding}");
        let (status, head, body) = curl(&[host[0], host[1], "-H", &ae, &url]);
        assert_eq!(status, 200);
        assert_eq!(header_of(&head, "content-encoding"), Some(name), "{head}");
        assert!(header_of(&head, "etag").unwrap().starts_with("W/"));
        assert!(body.len() < full.len());
    }
    let (_, _, body) = curl(&[host[0], host[1], "--compressed", &url]);
    assert_eq!(body, full);

    let (status, head, _) = curl(&[host[0], host[1], &server.url("/favicon.svg")]);
    assert_eq!(status, 200);
    assert_eq!(header_of(&head, "content-type").unwrap(), "image/svg+xml");
}

#[test]
fn site_dir_files_are_served_and_traversal_is_refused() {
    let dir = TempDir::new("sitedir");
    std::fs::create_dir_all(dir.join("img")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from the folder\n").unwrap();
    std::fs::write(dir.join("img/dot.png"), b"\x89PNG\r\n\x1a\nfake").unwrap();
    std::fs::write(dir.join(".env"), "SECRET=1").unwrap();
    let outside = dir.parent().unwrap().join(format!(
        "{}-outside.txt",
        dir.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&outside, "FILE-OUTSIDE-THE-SITE").unwrap();
    let server = Onebox::start_with(&["--ephemeral", "--site", dir.to_str().unwrap()], &[]);

    let r = http_get(&server, "foobar.com", "/hello.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello from the folder\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = http_get(&server, "foobar.com", "/img/dot.png");
    assert_eq!(r.header("content-type"), Some("image/png"));
    // Paths that name no file there go to the application.
    let r = http_get(&server, "foobar.com", "/");
    assert!(r.text().contains("How this page reached you"));
    let r = http_get(&server, "foobar.com", "/static/site.css");
    assert_eq!(r.status, 200, "built-in assets still back the pages");
    let escape = format!("/../{}", outside.file_name().unwrap().to_str().unwrap());
    let encoded = format!("/%2e%2e/{}", outside.file_name().unwrap().to_str().unwrap());
    let slashes = format!(
        "/img%2f..%2f..%2f{}",
        outside.file_name().unwrap().to_str().unwrap()
    );
    for path in [
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/img/..%2f..%2f..%2fetc%2fpasswd",
        escape.as_str(),
        encoded.as_str(),
        slashes.as_str(),
        "/.env",
        "/img/",
    ] {
        let r = http_get(&server, "foobar.com", path);
        assert_eq!(r.status, 404, "{path}");
        let text = r.text();
        assert!(
            !text.contains("root:")
                && !text.contains("FILE-OUTSIDE-THE-SITE")
                && !text.contains("SECRET"),
            "{path}: {text}"
        );
    }
    std::fs::remove_file(&outside).unwrap();
}

#[test]
fn health_and_readiness_answer_for_any_host() {
    let server = Onebox::start();
    let r = http_get(&server, "10.1.2.3", "/healthz");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = http_get(&server, "127.0.0.1", "/readyz");
    assert_eq!(r.status, 200, "{}", r.text());
    let ready = r.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["dns"], "ok");
    assert_eq!(ready["db"], "ok");
    assert_eq!(ready["http"], "ok");
}

#[test]
fn limits_give_413_431_and_400() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let big = vec![b'a'; 1024 * 1024 + 1];
    let r = http(
        server.http,
        "POST",
        "/api/v1/posts",
        "foobar.com",
        &[],
        &big,
    )
    .unwrap();
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].is_string());
    // Chunked, so the size is only known while reading.
    let dir = TempDir::new("big");
    let file = dir.join("big.json");
    std::fs::write(&file, &big).unwrap();
    let data = format!("@{}", file.display());
    let (status, _, body) = curl(&[
        "-H",
        "Host: foobar.com",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &data,
        &server.url("/api/v1/users"),
    ]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    let huge = "a".repeat(100_000);
    let r = http_get_with(&server, "foobar.com", "/", &[("X-Big", &huge)]);
    assert_eq!(r.status, 431);
    // HTTP/1.1 without Host.
    let mut s = std::net::TcpStream::connect(server.http).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
}

#[test]
fn server_timing_and_access_log_name_the_layer() {
    let server = Onebox::start_with(&["--ephemeral", "--log-format", "json"], &[]);
    let r = http_get(&server, "foobar.com", "/");
    let timing = r.header("server-timing").unwrap();
    assert!(timing.starts_with("web;"), "{timing}");
    let db = format!("db;desc=\"database: {}", db_name());
    assert_contains_all(timing, &["app;", &db, ", 1 read, 1 write\";dur="]);
    let r = http_get(&server, "foobar.com", "/static/site.css");
    let timing = r.header("server-timing").unwrap();
    assert!(
        timing.contains("static;") && !timing.contains("app;"),
        "{timing}"
    );
    let r = http_get(&server, "foobar.com", "/nope");
    assert_eq!(r.status, 404);
    let (clean, log) = server.stop();
    assert!(clean, "SIGTERM exits 0: {log}");
    let access = access_events(&log);
    assert_eq!(access.len(), 3, "{log}");
    let expect = [
        ("/", 200, "app"),
        ("/static/site.css", 200, "static"),
        ("/nope", 404, "app"),
    ];
    for (event, (path, status, layer)) in access.iter().zip(expect) {
        assert_eq!(event["method"], "GET", "{event}");
        assert_eq!(event["host"], "foobar.com", "{event}");
        assert_eq!(event["path"], path, "{event}");
        assert_eq!(event["status"], status, "{event}");
        assert_eq!(event["layer"], layer, "{event}");
        assert!(event["bytes"].as_u64().unwrap() > 0, "{event}");
        assert!(event["micros"].is_u64(), "{event}");
    }
}

#[test]
fn a_zone_reload_changes_which_names_the_site_answers() {
    let zones = TempDir::new("zones");
    let zone_path = zones.join("foobar.com.zone");
    let original = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/zones/foobar.com.zone"
    ))
    .unwrap();
    std::fs::write(&zone_path, &original).unwrap();
    let server = Onebox::start_with(&["--ephemeral", "--zones", zones.to_str().unwrap()], &[]);
    let r = http_get(&server, "blog.foobar.com", "/");
    assert_eq!(r.status, 421);

    let edited =
        original.replace("2026112601", "2026112602") + "blog         3600  IN  CNAME foobar.com.\n";
    assert_ne!(edited, original);
    // Written whole (rename), and picked up by serve's zone-file watcher: no signal
    // needed, so no race with the moment serve installs its SIGHUP handler.
    let tmp = zones.join("foobar.com.zone.tmp");
    std::fs::write(&tmp, edited).unwrap();
    std::fs::rename(&tmp, &zone_path).unwrap();
    // Bounded wait for the reload to land.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let page = loop {
        let r = http_get(&server, "blog.foobar.com", "/");
        if r.status == 200 {
            break r.text();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "blog.foobar.com still {}",
            r.status
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_contains(
        &page,
        "<code class=\"name\">blog.foobar.com.</code><span class=\"rr\"><span class=\"rtype\">CNAME</span> → <code>foobar.com.</code>",
    );
    drop(server);
    std::fs::remove_dir_all(&zones).unwrap();
}
