//! Proves HTTPS, DNS over HTTPS and DNS over TLS against the real binary with real
//! clients: curl (HTTP/1.1 and HTTP/2, DoH GET and POST), dig (+https, +https-get,
//! +tls), openssl s_client (TLS versions, ALPN) and `onebox visit`, all trusting
//! only the CA from the ready line, and failing without it or under another name.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::harness::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls;

/// curl's exit code when the server's certificate does not verify.
const CURLE_PEER_FAILED_VERIFICATION: i32 = 60;

/// A server with JSON logs, and what the tests need from its ready line.
struct Fixture {
    server: Onebox,
    ca: PathBuf,
    https: SocketAddr,
    http: SocketAddr,
    dot: SocketAddr,
}

impl Fixture {
    fn start() -> Self {
        Self::from(
            Onebox::spawn()
                .global_args(["--log-format", "json"])
                .start(),
        )
    }

    /// Wraps a server started some other way (e.g. on its own zones).
    fn from(server: Onebox) -> Self {
        let ca = server.ready_path("ca");
        assert!(ca.is_file(), "the ready line's CA is not a file: {ca:?}");
        Self {
            ca,
            https: server.ready_addr("https"),
            http: server.http_addr(),
            dot: server.ready_addr("dot"),
            server,
        }
    }

    fn ca(&self) -> &str {
        self.ca.to_str().expect("CA path is UTF-8")
    }

    /// `openssl s_client` to `connect` for www.foobar.com, verifying against our
    /// CA, plus `args`: (success, stdout, stderr).
    fn s_client(&self, connect: SocketAddr, args: &[&str]) -> (bool, String, String) {
        let connect = connect.to_string();
        let mut all = vec![
            "s_client",
            "-connect",
            &connect,
            "-servername",
            "www.foobar.com",
            "-CAfile",
            self.ca(),
            "-verify_return_error",
        ];
        all.extend_from_slice(args);
        openssl(&all)
    }

    /// [`s_client`](Self::s_client), which must connect with the certificate
    /// verified; its stdout.
    fn s_client_verified(&self, connect: SocketAddr, args: &[&str]) -> String {
        let (ok, out, err) = self.s_client(connect, args);
        assert!(
            ok && out.contains("Verify return code: 0 (ok)"),
            "openssl s_client {args:?} to {connect} should succeed and verify:\n{out}\n{err}"
        );
        out
    }

    /// `https://NAME:PORT/PATH`, with curl's `--resolve` sending NAME to 127.0.0.1.
    fn https_url(&self, name: &str, path: &str) -> (String, String) {
        (
            format!("https://{name}:{}{path}", self.https.port()),
            format!("{name}:{}:127.0.0.1", self.https.port()),
        )
    }

    fn http_url(&self, name: &str, path: &str) -> (String, String) {
        (
            format!("http://{name}:{}{path}", self.http.port()),
            format!("{name}:{}:127.0.0.1", self.http.port()),
        )
    }

    /// The server's JSON query-log events for `qname`, once at least `expected`
    /// have arrived (or at the deadline): log lines are written by a background
    /// thread, so they may trail the reply a little.
    fn query_events(&self, qname: &str, expected: usize) -> Vec<serde_json::Value> {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let events: Vec<serde_json::Value> = self
                .server
                .stderr()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|e| e["target"] == "onebox::dns::query" && e["qname"] == qname)
                .collect();
            if events.len() >= expected || std::time::Instant::now() > deadline {
                return events;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// curl to completion: (exit code, stdout, stderr), for the TLS failures whose
/// exit code is the point.
fn curl_exit(args: &[&str]) -> (Option<i32>, String, String) {
    let (status, stdout, stderr) = run_tool("curl", args, "curl");
    (status.code(), stdout, stderr)
}

/// Whether a Set-Cookie value carries the `Secure` attribute.
fn is_secure(set_cookie: &str) -> bool {
    set_cookie
        .split(';')
        .skip(1)
        .any(|attr| attr.trim().eq_ignore_ascii_case("secure"))
}

#[test]
fn site_answers_over_http1_and_http2_for_apex_and_www() {
    skip_unless!(require_tool("curl", "curl"));
    let f = Fixture::start();
    for (flag, version, panel) in [
        ("--http1.1", "1.1", "HTTP/1.1"),
        ("--http2", "2", "HTTP/2 (h2)"),
    ] {
        for name in ["foobar.com", "www.foobar.com"] {
            let (url, resolve) = f.https_url(name, "/");
            let (code, out, err) = curl_exit(&[
                "-sS",
                flag,
                "--cacert",
                f.ca(),
                "--resolve",
                &resolve,
                "-w",
                "\n%{http_code} %{http_version} %{scheme}",
                &url,
            ]);
            assert_eq!(code, Some(0), "curl {flag} {url}: {err}");
            let (body, summary) = out.rsplit_once('\n').expect("curl -w line");
            assert_eq!(summary, format!("200 {version} HTTPS"), "{flag} {name}");
            assert!(
                body.contains("How this page reached you"),
                "{flag} {name}: not our page:\n{body}"
            );
            // The page's panel reports the connection it came over.
            let panel_line = body
                .lines()
                .find(|l| l.contains("<p>From <code>"))
                .unwrap_or_else(|| panic!("{flag} {name}: no connection line:\n{body}"));
            assert!(
                panel_line.contains(panel) && panel_line.contains("TLS"),
                "{flag} {name}: panel says {panel_line}"
            );
        }
    }
}

#[test]
fn session_cookie_is_secure_over_https_only() {
    skip_unless!(require_tool("curl", "curl"));
    let f = Fixture::start();
    let account = r#"{"username":"tls-alice","password":"correct horse battery"}"#;
    let post = |url: &str, resolve: &str, path_for_ca: Option<&str>| {
        let mut args = vec![
            "-sS",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-H",
            "content-type: application/json",
            "--data",
            account,
            "--resolve",
            resolve,
        ];
        if let Some(ca) = path_for_ca {
            args.extend(["--cacert", ca]);
        }
        args.push(url);
        let (code, head, err) = curl_exit(&args);
        assert_eq!(code, Some(0), "curl {url}: {err}");
        head
    };

    let (url, resolve) = f.https_url("www.foobar.com", "/api/v1/users");
    let head = post(&url, &resolve, Some(f.ca()));
    assert!(
        head.starts_with("HTTP/2 201"),
        "register over HTTPS:\n{head}"
    );

    let (url, resolve) = f.https_url("www.foobar.com", "/api/v1/sessions");
    let head = post(&url, &resolve, Some(f.ca()));
    assert!(head.starts_with("HTTP/2 201"), "login over HTTPS:\n{head}");
    let cookie = header_of(&head, "set-cookie").expect("a session cookie over HTTPS");
    assert!(
        cookie.starts_with("onebox_session=") && is_secure(cookie),
        "over HTTPS the session cookie must be Secure: {cookie}"
    );

    let (url, resolve) = f.http_url("www.foobar.com", "/api/v1/sessions");
    let head = post(&url, &resolve, None);
    assert!(head.starts_with("HTTP/1.1 201"), "login over HTTP:\n{head}");
    let cookie = header_of(&head, "set-cookie").expect("a session cookie over HTTP");
    assert!(
        cookie.starts_with("onebox_session=") && !is_secure(cookie),
        "over plain HTTP a Secure cookie would never come back: {cookie}"
    );
}

/// dig's answer to `www.foobar.com A` must be the CNAME and the apex A.
fn assert_cname_and_a(reply: &Dig, how: &str) {
    assert_eq!(
        reply.status, "NOERROR",
        "{how}:\n{}{}",
        reply.stdout, reply.stderr
    );
    let answer = name_type_data(&reply.answer);
    assert_eq!(
        answer,
        [
            ("www.foobar.com.", "CNAME", "foobar.com."),
            ("foobar.com.", "A", "127.0.0.1")
        ],
        "{how}:\n{}",
        reply.stdout
    );
}

#[test]
fn dig_gets_the_same_answer_over_doh_post_doh_get_and_dot() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let f = Fixture::start();
    let tls_ca = format!("+tls-ca={}", f.ca());
    for (addr, flag, label) in [
        (f.https, "+https", "(HTTPS)"),
        (f.https, "+https-get", "(HTTPS-GET)"),
        (f.dot, "+tls", "(TLS)"),
    ] {
        let reply = dig(addr, &[flag, &tls_ca, "www.foobar.com", "A"]);
        assert_cname_and_a(&reply, flag);
        assert!(
            reply.stdout.contains(label),
            "dig {flag} did not use {label}:\n{}",
            reply.stdout
        );
    }
    let transports: Vec<String> = f
        .query_events("www.foobar.com.", 3)
        .iter()
        .map(|e| e["transport"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(transports, ["https", "https", "tls"], "query log");

    // The CA is what makes dig trust us: with the system's CAs it refuses.
    for (addr, flag) in [(f.https, "+https"), (f.dot, "+tls")] {
        let reply = dig(
            addr,
            &[
                flag,
                "+tls-ca=/etc/ssl/certs/ca-certificates.crt",
                "www.foobar.com",
                "A",
            ],
        );
        let said = format!("{}{}", reply.stdout, reply.stderr);
        assert!(
            reply.answer.is_empty() && said.contains("certificate verification"),
            "dig {flag} trusted a server the system CAs do not vouch for:\n{}{}",
            reply.stdout,
            reply.stderr
        );
    }
}

/// One DoH exchange with curl: `packet` sent by GET (`?dns=`) or POST to `url`
/// (`--resolve` sends www.foobar.com to our HTTPS port). Returns curl's header
/// block; the answer is written to `answer`.
fn doh(f: &Fixture, method: &str, url: &str, packet: &Path, answer: &Path) -> String {
    let (_, resolve) = f.https_url("www.foobar.com", "/");
    let get_url = format!(
        "{url}?dns={}",
        URL_SAFE_NO_PAD.encode(std::fs::read(packet).unwrap())
    );
    let data = format!("@{}", packet.display());
    let mut args = vec![
        "-sS",
        "--cacert",
        f.ca(),
        "--resolve",
        &resolve,
        "-D",
        "-",
        "-o",
        answer.to_str().unwrap(),
        "-H",
        "accept: application/dns-message",
    ];
    if method == "POST" {
        args.extend([
            "-H",
            "content-type: application/dns-message",
            "--data-binary",
            &data,
            url,
        ]);
    } else {
        args.push(&get_url);
    }
    let (code, head, err) = curl_exit(&args);
    assert_eq!(code, Some(0), "curl DoH {method} {url}: {err}");
    head
}

/// Writes a query for `name`/`rtype` with ID 0 (RFC 8484 §4.1: DoH clients should
/// use 0, so answers are cacheable) and returns its path.
fn doh_query(dir: &TempDir, name: &str, rtype: RecordType) -> PathBuf {
    let mut message = query(name, rtype);
    message.metadata.id = 0;
    let path = dir.path().join(format!("{name}{rtype}.query"));
    std::fs::write(&path, encode(&message)).unwrap();
    path
}

#[test]
fn doh_get_and_post_with_curl_and_no_doh_over_plain_http() {
    skip_unless!(require_tool("curl", "curl"));
    let f = Fixture::start();
    let dir = TempDir::new("doh");
    let packet = doh_query(&dir, "www.foobar.com.", RecordType::A);
    let port = f.https.port();
    // By name, and by address as browsers' secure-DNS settings name it (the
    // certificate for a client that sends no SNI carries the loopback IPs).
    let by_name = format!("https://www.foobar.com:{port}/dns-query");
    let by_ip = format!("https://127.0.0.1:{port}/dns-query");
    for (method, url) in [
        ("GET", &by_name),
        ("POST", &by_name),
        ("GET", &by_ip),
        ("POST", &by_ip),
    ] {
        let answer_file = dir.path().join("answer.bin");
        let head = doh(&f, method, url, &packet, &answer_file);
        let how = format!("DoH {method} {url}");
        assert!(head.starts_with("HTTP/2 200"), "{how}:\n{head}");
        assert_eq!(
            header_of(&head, "content-type"),
            Some("application/dns-message"),
            "{how}:\n{head}"
        );
        // The freshness lifetime is the smallest TTL in the answer (RFC 8484 §5.1).
        assert_eq!(
            header_of(&head, "cache-control"),
            Some("max-age=3600"),
            "{how}:\n{head}"
        );
        let reply = decode(&std::fs::read(&answer_file).unwrap());
        assert_eq!(reply.metadata.id, 0, "{how}");
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        let answers: Vec<_> = reply.answers.iter().map(summary).collect();
        assert_eq!(
            answers,
            [
                (
                    "www.foobar.com.".to_string(),
                    3600,
                    "CNAME".to_string(),
                    "foobar.com.".to_string()
                ),
                (
                    "foobar.com.".to_string(),
                    3600,
                    "A".to_string(),
                    "127.0.0.1".to_string()
                )
            ],
            "{how}"
        );
    }
    let transports: Vec<String> = f
        .query_events("www.foobar.com.", 4)
        .iter()
        .map(|e| e["transport"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(transports, ["https"; 4], "query log");

    // Plain HTTP would carry the query in the clear: no DoH there.
    let (url, resolve) = f.http_url("www.foobar.com", "/dns-query");
    let dns_param = URL_SAFE_NO_PAD.encode(std::fs::read(&packet).unwrap());
    let query = format!("{url}?dns={dns_param}");
    let (status, out, err) = curl_write_out("%{http_code}", &["--resolve", &resolve, &query]);
    assert!(status.success(), "{err}");
    assert_eq!(out, "404", "/dns-query over plain HTTP");
}

#[test]
fn doh_negative_answers_are_cached_no_longer_than_the_soa_minimum() {
    skip_unless!(require_tool("curl", "curl"));
    // TEST_ZONE_HEAD: SOA TTL 3600, MINIMUM 300 (RFC 8484 §5.1, RFC 2308 §5).
    let zones = test_zones("");
    let f = Fixture::from(Onebox::start_with_zones(&zones));
    let dir = TempDir::new("doh-negative");
    let url = format!("https://127.0.0.1:{}/dns-query", f.https.port());
    for (name, rtype, rcode) in [
        ("nope.foobar.com.", RecordType::A, ResponseCode::NXDomain),
        ("www.foobar.com.", RecordType::AAAA, ResponseCode::NoError),
    ] {
        let packet = doh_query(&dir, name, rtype);
        let answer_file = dir.path().join("answer.bin");
        let head = doh(&f, "GET", &url, &packet, &answer_file);
        let reply = decode(&std::fs::read(&answer_file).unwrap());
        assert_eq!(reply.metadata.response_code, rcode, "{name} {rtype}");
        assert!(
            reply.answers.iter().all(|r| r.record_type() != rtype),
            "{name} {rtype} must have no {rtype} records"
        );
        assert_eq!(
            header_of(&head, "cache-control"),
            Some("max-age=300"),
            "{name} {rtype}:\n{head}"
        );
    }
}

#[test]
fn only_tls_1_2_and_1_3_are_accepted() {
    skip_unless!(require_tool("openssl", "openssl"));
    let f = Fixture::start();
    for (version, accepted) in [
        ("-tls1", false),
        ("-tls1_1", false),
        ("-tls1_2", true),
        ("-tls1_3", true),
    ] {
        if accepted {
            let out = f.s_client_verified(f.https, &[version]);
            let expected = format!("New, TLSv1.{},", version.trim_start_matches("-tls1_"));
            assert!(out.contains(&expected), "{version}:\n{out}");
        } else {
            // OpenSSL 3 refuses TLS 1.0/1.1 itself at its default security level;
            // level 0 makes it really offer them, so the refusal is the server's.
            let args = [version, "-cipher", "DEFAULT@SECLEVEL=0"];
            let (ok, out, err) = f.s_client(f.https, &args);
            assert!(
                !ok && err.contains("alert") && !err.contains("no protocols available"),
                "the server must refuse {version} with an alert:\n{out}\n{err}"
            );
        }
    }
}

#[test]
fn alpn_offers_h2_and_http11_on_https_and_dot_on_dns_over_tls() {
    skip_unless!(require_tool("openssl", "openssl"));
    let f = Fixture::start();
    for (addr, alpn) in [(f.https, "h2"), (f.https, "http/1.1"), (f.dot, "dot")] {
        let out = f.s_client_verified(addr, &["-alpn", alpn]);
        assert!(
            out.contains(&format!("ALPN protocol: {alpn}")),
            "ALPN {alpn} on {addr}:\n{out}"
        );
    }
}

#[test]
fn certificate_fails_for_other_names_and_without_the_ca() {
    skip_unless!(require_tool("curl", "curl"));
    let f = Fixture::start();
    // Another name sent to our address: no certificate of ours may claim it.
    let (url, resolve) = f.https_url("example.org", "/");
    let (code, _, err) = curl_exit(&["-sS", "--cacert", f.ca(), "--resolve", &resolve, &url]);
    assert_eq!(
        code,
        Some(CURLE_PEER_FAILED_VERIFICATION),
        "example.org must not verify: {err}"
    );
    // Our name, but curl trusts only the system's CAs.
    let (url, resolve) = f.https_url("www.foobar.com", "/");
    let (code, _, err) = curl_exit(&["-sS", "--resolve", &resolve, &url]);
    assert_eq!(
        code,
        Some(CURLE_PEER_FAILED_VERIFICATION),
        "without --cacert the certificate must not verify: {err}"
    );
}

#[test]
fn visit_shows_the_tls_hop_and_needs_the_ca() {
    let f = Fixture::start();
    let url = format!("https://www.foobar.com:{}/", f.https.port());
    let dns = f.server.dns_addr().to_string();

    let (status, out, err) = run_onebox(
        &["visit", "--cacert", f.ca(), &url, "--dns", &dns, "--json"],
        None,
    );
    assert_eq!(status.code(), Some(0), "visit with the CA:\n{out}\n{err}");
    let visit: serde_json::Value = serde_json::from_str(&out).expect("visit --json");
    let hop = |name| step(&visit, name);
    let tls = hop("tls");
    assert_eq!(tls["ok"], true, "{tls}");
    assert_eq!(tls["sni"], "www.foobar.com", "{tls}");
    assert_eq!(tls["version"], "TLSv1.3", "{tls}");
    assert_eq!(tls["alpn"], "h2", "{tls}");
    let http = hop("http");
    assert_eq!(http["status"], 200, "{http}");
    assert_eq!(http["version"], "HTTP/2.0", "{http}");

    let (status, out, err) = run_onebox(&["visit", &url, "--dns", &dns, "--json"], None);
    assert_eq!(
        status.code(),
        Some(5),
        "visit without the CA:\n{out}\n{err}"
    );
    let visit: serde_json::Value = serde_json::from_str(&out).expect("visit --json");
    assert_eq!(visit["ok"], false, "{visit}");
    assert_eq!(visit["error"]["hop"], "tls", "{visit}");
    let last = visit["steps"].as_array().and_then(|s| s.last()).cloned();
    assert_eq!(
        last.map(|s| s["hop"].clone()),
        Some("tls".into()),
        "{visit}"
    );
}

/// A DNS-over-TLS connection from our own few lines of rustls, trusting only `ca`.
fn dot_connect(
    ca: &Path,
    addr: SocketAddr,
    name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("read the CA") {
        roots.add(cert.expect("a PEM certificate")).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"dot".to_vec()];
    let server_name = ServerName::try_from(name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), server_name).unwrap();
    rustls::StreamOwned::new(conn, tcp_connect(addr))
}

#[test]
fn dot_answers_pipelined_queries_on_one_connection() {
    let f = Fixture::start();
    let mut tls = dot_connect(&f.ca, f.dot, "www.foobar.com");
    // RFC 7858 §3.3: a client may send several queries without waiting; the
    // server answers each (in any order), matched by ID.
    let asked = [
        query("www.foobar.com.", RecordType::A),
        query("foobar.com.", RecordType::SOA),
        query("nope.foobar.com.", RecordType::A),
    ];
    let mut burst = Vec::new();
    for message in &asked {
        burst.extend(frame(&encode(message)));
    }
    tls.write_all(&burst).expect("send the queries over TLS");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"dot"[..]));

    let mut replies = std::collections::HashMap::new();
    for _ in &asked {
        let mut len = [0u8; 2];
        tls.read_exact(&mut len).expect("a reply length");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tls.read_exact(&mut body).expect("a reply");
        let reply = decode(&body);
        replies.insert(reply.metadata.id, reply);
    }
    let reply = |i: usize| {
        replies
            .get(&asked[i].metadata.id)
            .unwrap_or_else(|| panic!("no reply to query {i}"))
    };
    assert_eq!(types(&reply(0).answers), ["CNAME", "A"]);
    assert_eq!(types(&reply(1).answers), ["SOA"]);
    assert_eq!(reply(2).metadata.response_code, ResponseCode::NXDomain);
    let transports: Vec<String> = f
        .query_events("www.foobar.com.", 1)
        .iter()
        .map(|e| e["transport"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(transports, ["tls"], "query log");

    // The certificate is for our names only.
    let mut other = dot_connect(&f.ca, f.dot, "example.org");
    let err = other
        .write_all(&frame(&encode(&asked[0])))
        .and_then(|()| other.read_exact(&mut [0u8; 2]))
        .expect_err("a DoT server must not verify as example.org");
    assert!(
        err.to_string().contains("certificate"),
        "unexpected error: {err}"
    );
}

#[test]
fn every_site_name_in_the_zone_verifies_over_https() {
    skip_unless!(require_tool("curl", "curl"));
    let zones = test_zones("shop.eu 3600 IN CNAME foobar.com.\n");
    let f = Fixture::from(Onebox::start_with_zones(&zones));
    for ((url, resolve), tls) in [
        (f.http_url("shop.eu.foobar.com", "/"), false),
        (f.https_url("shop.eu.foobar.com", "/"), true),
    ] {
        let mut args = vec!["--resolve", &resolve];
        if tls {
            args.extend(["--cacert", f.ca()]);
        }
        args.push(&url);
        let (status, out, err) = curl_write_out("%{http_code}", &args);
        assert!(status.success(), "{url}: {err}");
        assert_eq!(out, "200", "{url}");
    }
}
