//! `onebox visit` against the real binary: the page through our DNS (CNAME, then A,
//! then the web server at that address, over TLS for https), and every failure
//! path named by its hop with its own exit code, in the text view and in `--json`.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

/// `onebox visit --json --dns DNS URL EXTRA...`: the run and its JSON document.
fn visit_json(dns: impl ToString, url: &str, extra: &[&str]) -> (Run, serde_json::Value) {
    let dns = dns.to_string();
    let mut args = vec!["visit", "--json", "--dns", &dns, url];
    args.extend_from_slice(extra);
    let run = onebox(args);
    let json = run.json();
    (run, json)
}

/// [`visit_json`] through `server`'s DNS, trusting the test CA `ca`.
fn visit_trusting(server: &Onebox, url: &str, ca: &TestCa) -> (Run, serde_json::Value) {
    let cacert = ca.cert_path();
    visit_json(server.dns, url, &["--cacert", cacert.to_str().unwrap()])
}

/// [`tls_site`] and the URL of its root page under `host` (a name onebox's zone
/// points at the HTTPS server).
fn tls_site_url(host: &str) -> (TestCa, TlsServer, Onebox, String) {
    let (ca, tls, server) = tls_site();
    let url = format!("https://{host}:{}/", tls.addr.port());
    (ca, tls, server, url)
}

/// Asserts that visit failed with exit code `code` at `hop`, naming `kind`; returns
/// the error's message.
fn assert_failed<'a>(
    run: &Run,
    v: &'a serde_json::Value,
    code: i32,
    hop: &str,
    kind: &str,
) -> &'a str {
    assert_eq!(run.code, Some(code), "{v:#}");
    assert_eq!(v["ok"], false, "{v:#}");
    assert_eq!(v["error"]["hop"], hop, "{v:#}");
    assert_eq!(v["error"]["kind"], kind, "{v:#}");
    v["error"]["message"].as_str().unwrap()
}

#[test]
fn www_goes_through_the_cname_and_the_a_record_to_the_page() {
    let server = Onebox::start();
    let url = format!("http://www.foobar.com:{}/", server.http.port());
    let (run, v) = visit_json(server.dns, &url, &[]);
    assert_eq!(run.code, Some(0), "{v:#}\n{}", run.stderr);
    assert_eq!(v["ok"], true);
    assert_eq!(v["error"], serde_json::Value::Null);
    assert_eq!(hops(&v)[..3], ["dns", "connect", "http"]);

    // The answer chain, as our zone has it: a CNAME to a name, then that name's A.
    let dns = step(&v, "dns");
    assert_eq!(dns["server"], server.dns.to_string());
    let answers = dns["answers"].as_array().unwrap();
    assert_eq!(answers.len(), 2, "{dns:#}");
    assert_eq!(answers[0]["name"], "www.foobar.com.");
    assert_eq!(answers[0]["type"], "CNAME");
    assert_eq!(answers[0]["ttl"], 3600);
    assert_eq!(answers[0]["data"], "foobar.com.");
    assert_eq!(answers[1]["name"], "foobar.com.");
    assert_eq!(answers[1]["type"], "A");
    assert_eq!(answers[1]["ttl"], 3600);
    assert_eq!(answers[1]["data"], "127.0.0.1");
    assert_eq!(dns["address"], "127.0.0.1");

    // Connected where the A record points, on the URL's port.
    assert_eq!(step(&v, "connect")["address"], server.http.to_string());

    let http = step(&v, "http");
    assert_eq!(http["status"], 200);
    assert_eq!(http["method"], "GET");
    assert_eq!(
        http["host"],
        format!("www.foobar.com:{}", server.http.port())
    );
    assert!(http["first_byte_micros"].is_u64());
    let timing = find_in(&http["headers"], "name", "server-timing");
    // `app;dur=0.21` or `app;desc="application";dur=0.21`: both are valid syntax.
    let value = timing["value"].as_str().unwrap();
    assert!(
        value
            .split(',')
            .any(|metric| metric.trim().starts_with("app;") && metric.contains("dur=")),
        "no app duration in Server-Timing: {value}"
    );

    // The server's own account of its application time becomes a step.
    let app = step(&v, "app");
    assert_eq!(app["ok"], true);
    assert!(app["micros"].is_u64(), "{app:#}");

    for key in ["dns", "connect", "first_byte", "total"] {
        assert!(v["timing"][key].is_u64(), "timing.{key}: {v:#}");
    }
    assert_eq!(v["timing"]["tls"], serde_json::Value::Null);
}

#[test]
fn text_view_is_aligned_plain_when_piped_and_has_a_timing_line() {
    let server = Onebox::start();
    let url = format!("http://www.foobar.com:{}/", server.http.port());
    let run = onebox(["visit", "--dns", &server.dns.to_string(), &url]);
    let out = run.plain_stdout(0);
    assert_contains_all(
        out,
        &[
            "www.foobar.com.  3600  CNAME  foobar.com.\n",
            "foobar.com.      3600  A      127.0.0.1\n",
        ],
    );
    assert_contains(out, &format!("✓ connect  tcp {}", server.http));
    assert_contains(out, "→ 200 OK");
    let timing = out
        .lines()
        .find(|l| l.starts_with("timing"))
        .unwrap_or_else(|| panic!("no timing line:\n{out}"));
    for part in ["dns ", "connect ", "first byte ", "total "] {
        assert_contains(timing, part);
    }
    assert_contains(out, "result     ok, 200 OK");
}

#[test]
fn nxdomain_is_a_dns_failure() {
    let server = Onebox::start();
    let (run, v) = visit_json(server.dns, "http://nope.foobar.com/", &[]);
    assert_failed(&run, &v, 3, "dns", "nxdomain");
    assert_eq!(v["error"]["exit_code"], 3);
    let message = v["error"]["message"].as_str().unwrap();
    assert_contains_all(message, &["NXDOMAIN", "no such name in the zone"]);
    assert_eq!(hops(&v), ["dns"], "nothing after a failed hop");
    assert_eq!(step(&v, "dns")["ok"], false);

    let text = onebox([
        "visit",
        "--dns",
        &server.dns.to_string(),
        "http://nope.foobar.com/",
    ]);
    assert_eq!(text.code, Some(3));
    assert!(
        text.stdout
            .contains("error      dns: nope.foobar.com does not exist"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_name_outside_our_zones_is_refused() {
    let server = Onebox::start();
    let (run, v) = visit_json(server.dns, "http://example.org/", &[]);
    let message = assert_failed(&run, &v, 3, "dns", "refused");
    assert_contains_all(message, &["REFUSED", "not authoritative"]);
}

#[test]
fn a_name_without_an_address_record_is_nodata() {
    let zones = zones_with_apex("127.0.0.1", "text 3600 IN TXT \"no address here\"\n");
    let server = Onebox::start_with_zones(&zones);
    let (run, v) = visit_json(server.dns, "http://text.foobar.com/", &[]);
    let message = assert_failed(&run, &v, 3, "dns", "nodata");
    assert_contains(message, "exists but has no address record");
}

#[test]
fn silence_at_the_dns_address_is_a_timeout() {
    // Bound and never read: the question arrives and nobody answers.
    let silent = silent_dns();
    let dns = silent.local_addr().unwrap().to_string();
    let (run, v) = visit_json(&dns, "http://www.foobar.com/", &[]);
    let message = assert_failed(&run, &v, 3, "dns", "dns_timeout");
    assert!(
        message.contains(&dns) && message.contains("timeout"),
        "{message}"
    );
    drop(silent);
}

#[test]
fn dns_pointing_where_nothing_listens_is_connection_refused() {
    // The zone sends visitors to 127.0.0.3, where no web server runs: one machine,
    // one address, and when it is down the whole site is down.
    let zones = zones_with_apex("127.0.0.3", "");
    let server = Onebox::start_with_zones(&zones);
    let port = free_port();
    let url = format!("http://www.foobar.com:{port}/");
    let (run, v) = visit_json(server.dns, &url, &[]);
    let message = assert_failed(&run, &v, 4, "connect", "connection_refused");
    assert_eq!(step(&v, "dns")["ok"], true);
    assert_eq!(step(&v, "dns")["address"], "127.0.0.3");
    let answers = step(&v, "dns")["answers"].as_array().unwrap().clone();
    assert_eq!(answers[1]["ttl"], 300, "the TTL comes from the zone: {v:#}");
    let connect = step(&v, "connect");
    assert_eq!(connect["ok"], false);
    assert_eq!(connect["address"], format!("127.0.0.3:{port}"));
    assert_eq!(v["error"]["exit_code"], 4);
    assert_contains(message, "single point of failure");
}

#[test]
fn https_with_the_ca_shows_tls_version_and_alpn() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (ca, tls, server, url) = tls_site_url("www.foobar.com");
    let (run, v) = visit_trusting(&server, &url, &ca);
    assert_eq!(run.code, Some(0), "{v:#}");
    assert_eq!(hops(&v), ["dns", "connect", "tls", "http"]);
    let tls_step = step(&v, "tls");
    assert_eq!(tls_step["ok"], true);
    assert_eq!(tls_step["sni"], "www.foobar.com");
    assert_eq!(tls_step["version"], "TLSv1.3");
    assert_eq!(tls_step["alpn"], "http/1.1");
    assert!(v["timing"]["tls"].is_u64(), "{v:#}");
    assert_eq!(step(&v, "http")["status"], 200);

    let text = onebox_ok([
        "visit",
        "--dns",
        &server.dns.to_string(),
        "--cacert",
        ca.cert_path().to_str().unwrap(),
        &url,
    ]);
    assert!(
        text.stdout
            .contains("✓ tls      sni www.foobar.com, TLSv1.3, alpn http/1.1"),
        "{}",
        text.stdout
    );
    let timing = text
        .stdout
        .lines()
        .find(|l| l.starts_with("timing"))
        .unwrap();
    assert_contains(timing, " tls ");

    // An absolute name (trailing dot) resolves the same and sends the same SNI.
    let absolute = format!("https://www.foobar.com.:{}/", tls.addr.port());
    let (run, v) = visit_trusting(&server, &absolute, &ca);
    assert_eq!(run.code, Some(0), "{v:#}");
    assert_eq!(step(&v, "tls")["sni"], "www.foobar.com");
}

#[test]
fn alpn_h2_sends_the_request_over_http2_with_the_authority() {
    skip_unless!(require_tool("openssl", "openssl"));
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["www.foobar.com"]);
    let h2 = H2Server::start(&cert, &key);
    let server = Onebox::start();
    let url = format!("https://www.foobar.com:{}/h2?x=1", h2.addr.port());
    let (run, v) = visit_trusting(&server, &url, &ca);
    assert_eq!(run.code, Some(0), "{v:#}");
    assert_eq!(step(&v, "tls")["alpn"], "h2");
    let http = step(&v, "http");
    assert_eq!(http["version"], "HTTP/2.0");
    assert_eq!(http["status"], 200);
    assert_eq!(http["body_bytes"], 5);
    assert_eq!(step(&v, "app")["micros"], 500);
    // HTTP/2 names the site in :authority, as Host does for HTTP/1.1.
    assert_eq!(
        h2.requests(),
        [format!("GET www.foobar.com:{} /h2", h2.addr.port())]
    );
}

#[test]
fn an_untrusted_certificate_fails_at_the_tls_hop() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (_ca, _tls, server, url) = tls_site_url("www.foobar.com");

    // No --cacert: nothing is trusted, and the message says what to pass.
    let (run, v) = visit_json(server.dns, &url, &[]);
    let message = assert_failed(&run, &v, 5, "tls", "tls_untrusted");
    assert_contains(message, "--cacert FILE");
    assert_eq!(hops(&v), ["dns", "connect", "tls"]);
    assert_eq!(step(&v, "tls")["ok"], false);

    // Another CA's certificate: still untrusted.
    let other = TestCa::new();
    let (run, v) = visit_trusting(&server, &url, &other);
    let message = assert_failed(&run, &v, 5, "tls", "tls_untrusted");
    assert_contains(message, "(the --cacert file)");
}

#[test]
fn a_certificate_for_another_name_is_a_name_mismatch() {
    skip_unless!(require_tool("openssl", "openssl"));
    // Valid for www only; the apex resolves to the same address.
    let (ca, _tls, server, url) = tls_site_url("foobar.com");
    let (run, v) = visit_trusting(&server, &url, &ca);
    let message = assert_failed(&run, &v, 5, "tls", "tls_name_mismatch");
    assert_eq!(step(&v, "tls")["sni"], "foobar.com");
    assert_contains(message, "not valid for foobar.com");
}

#[test]
fn a_cacert_without_a_certificate_is_bad_input() {
    let dir = TempDir::new("cacert");
    let empty = dir.write("empty.pem", "not a certificate\n");
    let run = onebox([
        "visit",
        "--cacert",
        empty.to_str().unwrap(),
        "https://www.foobar.com/",
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_contains(&run.stderr, "holds no PEM certificate");
}

const MAINTENANCE: &str = "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\n\
    Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nback soon.\r\n";

#[test]
fn a_503_is_maintenance_and_an_http_failure() {
    let site = HttpFixture::start(MAINTENANCE);
    let server = Onebox::start();
    let url = format!("http://www.foobar.com:{}/", site.addr.port());
    let (run, v) = visit_json(server.dns, &url, &[]);
    assert_eq!(run.code, Some(6), "{v:#}");
    let http = step(&v, "http");
    assert_eq!(http["ok"], false);
    assert_eq!(http["status"], 503);
    assert_eq!(http["body_bytes"], 12);
    assert_eq!(v["error"]["hop"], "http");
    assert_eq!(v["error"]["kind"], "maintenance");
    let message = v["error"]["message"].as_str().unwrap();
    assert_contains_all(message, &["maintenance", "retry after 120"]);
}

const ECHO: &str = "HTTP/1.1 201 Created\r\nServer-Timing: app;dur=1.5, db;dur=0.25;desc=\"commit\"\r\n\
    Set-Cookie: sid=s3cr3t; HttpOnly\r\nLocation: /posts/7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

#[test]
fn method_body_headers_and_host_reach_the_server_and_cookies_stay_hidden() {
    let site = HttpFixture::start(ECHO);
    let server = Onebox::start();
    let url = format!("http://foobar.com:{}/posts?x=1", site.addr.port());
    let (run, v) = visit_json(
        server.dns,
        &url,
        &[
            "--method",
            "put",
            "--data",
            "title=hi",
            "-H",
            "X-Test: 1",
            "-H",
            "Content-Type: text/plain",
        ],
    );
    assert_eq!(run.code, Some(0), "{v:#}");
    let requests = site.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert!(
        request.starts_with("PUT /posts?x=1 HTTP/1.1\r\n"),
        "{request}"
    );
    let lower = request.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("\r\nhost: foobar.com:{}\r\n", site.addr.port())),
        "{request}"
    );
    assert_contains_all(
        &lower,
        &["\r\nx-test: 1\r\n", "\r\ncontent-type: text/plain\r\n"],
    );
    assert!(request.ends_with("\r\n\r\ntitle=hi"), "{request}");

    let http = step(&v, "http");
    assert_eq!(http["status"], 201);
    let headers = http["headers"].to_string();
    assert_contains_all(&headers, &["/posts/7", "sid (values hidden)"]);
    assert!(!run.stdout.contains("s3cr3t"), "a cookie value leaked");
    // Server-Timing becomes the app and db steps, in the server's own numbers.
    assert_eq!(step(&v, "app")["micros"], 1500);
    assert_eq!(step(&v, "db")["micros"], 250);
    assert_eq!(step(&v, "db")["description"], "commit");
}

#[test]
fn an_ip_address_host_skips_dns() {
    let site = HttpFixture::start(ECHO);
    // The DNS server is never asked, so one that cannot answer does no harm.
    let silent = silent_dns();
    let url = format!("http://127.0.0.1:{}/", site.addr.port());
    let (run, v) = visit_json(silent.local_addr().unwrap(), &url, &[]);
    assert_eq!(run.code, Some(0), "{v:#}");
    let dns = step(&v, "dns");
    assert!(dns["skipped"].as_str().unwrap().contains("IP address"));
    assert_eq!(dns["micros"], serde_json::Value::Null);
    assert!(site.requests()[0].contains("\r\nhost: 127.0.0.1:"));
}

#[test]
fn bad_input_exits_1_and_usage_errors_exit_2() {
    let run = onebox(["visit", "ftp://foobar.com/"]);
    assert_eq!(run.code, Some(1));
    assert_contains(&run.stderr, "unsupported URL scheme");
    assert!(run.stdout.is_empty());

    let run = onebox(["visit", "http://foobar.com/", "-H", "no colon"]);
    assert_eq!(run.code, Some(1));
    assert_contains(&run.stderr, "'Name: value'");

    let run = onebox(["visit"]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);

    let help = onebox(["visit", "--help"]);
    assert_contains(&help.stdout, "Exit codes");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    skip_unless!(require_tool("script", "bsdutils"));
    // `script` gives the command a pseudo-terminal, as an interactive shell would.
    let server = Onebox::start();
    let cmd = format!(
        "{} visit --dns {} http://nope.foobar.com/",
        ONEBOX, server.dns
    );
    let tty = |no_color: bool| {
        let mut command = std::process::Command::new("script");
        command.args(["-qec", &cmd, "/dev/null"]);
        if no_color {
            command.env("NO_COLOR", "1");
        } else {
            command.env_remove("NO_COLOR");
        }
        let out = command.output().expect("run script(1) from util-linux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = tty(false);
    assert!(
        coloured.contains("\x1b[31m"),
        "no red on a terminal: {coloured:?}"
    );
    let plain = tty(true);
    assert!(plain.contains("NXDOMAIN"), "{plain:?}");
    assert!(
        !plain.contains('\x1b'),
        "colour despite NO_COLOR: {plain:?}"
    );
}
