//! Proves `onebox maintenance on|off|status` against a running server: the site
//! (HTML and API, HTTP and HTTPS) answers 503 with Retry-After, /readyz fails while
//! /healthz, DNS (UDP and DoH) and the live view carry on, `onebox visit` names the cause (exit 6),
//! and everything comes back with `off`. A wrong control path is a clear error.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::net::SocketAddr;
use std::path::Path;

use crate::harness::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_server::proto::rr::RecordType;

/// A response as curl saw it: status, header block, body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        header_of(&self.head, name)
    }
}

/// GET `path` with `Host: host` from `addr`, over HTTPS when `ca` is given.
fn get(addr: SocketAddr, host: &str, path: &str, ca: Option<&Path>) -> Reply {
    let scheme = if ca.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{host}:{}{path}", addr.port());
    let resolve = format!("{host}:{}:{}", addr.port(), addr.ip());
    let mut args = vec!["--resolve", &resolve];
    let ca_text = ca.map(|p| p.to_str().unwrap().to_string());
    if let Some(ca) = &ca_text {
        args.extend(["--cacert", ca]);
    }
    args.push(&url);
    let (status, head, body) = curl(&args);
    let body = String::from_utf8_lossy(&body).into_owned();
    Reply { status, head, body }
}

/// `onebox maintenance STATE --control PATH`: (exit code, stdout, stderr).
fn maintenance(state: &str, how: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["maintenance", state];
    args.extend(how);
    let (status, out, err) = run_onebox(&args, None);
    (status.code(), out.trim().to_string(), err)
}

/// `onebox visit URL --dns DNS --json`: (exit code, the JSON document).
fn visit(server: &Onebox, host: &str) -> (Option<i32>, serde_json::Value) {
    let url = format!("http://{host}:{}/", server.http_addr().port());
    let dns = server.dns_addr().to_string();
    let (status, out, err) = run_onebox(&["visit", &url, "--dns", &dns, "--json"], None);
    let json = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("visit --json printed no JSON ({e}):\n{out}\n{err}"));
    (status.code(), json)
}

#[test]
fn maintenance_takes_the_site_down_while_dns_and_the_live_view_stay_up() {
    skip_unless!(
        require_tool("curl", "curl"),
        require_tool("dig", "bind9-dnsutils")
    );
    let server = Onebox::start();
    let http = server.http_addr();
    let https = server.ready_addr("https");
    let ca = server.ready_path("ca");
    let control = server.ready_path("control");
    let how = ["--control", control.to_str().unwrap()];

    assert_eq!(
        maintenance("status", &how),
        (Some(0), "maintenance off".into(), String::new())
    );
    assert_eq!(get(http, "www.foobar.com", "/", None).status, 200);

    let (code, out, err) = maintenance("on", &how);
    assert_eq!((code, out.as_str()), (Some(0), "maintenance on"), "{err}");
    assert_eq!(maintenance("status", &how).1, "maintenance on");

    // The site: a friendly page, over HTTP and HTTPS, for both names.
    for (addr, tls, host) in [
        (http, None, "www.foobar.com"),
        (http, None, "foobar.com"),
        (https, Some(ca.as_path()), "www.foobar.com"),
    ] {
        let page = get(addr, host, "/", tls);
        assert_eq!(page.status, 503, "{host} {tls:?}: {}", page.body);
        assert_eq!(page.header("retry-after"), Some("60"), "{host}");
        assert!(
            page.header("content-type")
                .is_some_and(|t| t.starts_with("text/html")),
            "{host}: {}",
            page.head
        );
        assert!(
            page.body.contains("Down for maintenance") && page.body.contains("DNS still answers"),
            "{host}: not the maintenance page:\n{}",
            page.body
        );
    }

    // The API: JSON errors, as every API error is.
    let api = get(http, "www.foobar.com", "/api/v1/posts", None);
    assert_eq!(api.status, 503, "{}", api.body);
    assert_eq!(api.header("retry-after"), Some("60"));
    assert_eq!(api.header("content-type"), Some("application/json"));
    let error: serde_json::Value = serde_json::from_str(&api.body).expect("a JSON body");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.contains("maintenance")),
        "{error}"
    );

    // A load balancer would take us out of rotation; a liveness probe would not
    // restart us.
    assert_eq!(get(http, "127.0.0.1", "/readyz", None).status, 503);
    assert_eq!(get(http, "127.0.0.1", "/healthz", None).status, 200);

    // DNS is another box: it still leads visitors here.
    let reply = server.dig(&["www.foobar.com", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.stdout);
    assert_eq!(
        reply
            .answer
            .iter()
            .map(|r| r.rtype.as_str())
            .collect::<Vec<_>>(),
        ["CNAME", "A"],
        "{}",
        reply.stdout
    );

    // So is DNS over HTTPS, though it shares the web server's listener.
    let mut message = query("www.foobar.com.", RecordType::A);
    message.metadata.id = 0;
    let doh_url = format!(
        "https://127.0.0.1:{}/dns-query?dns={}",
        https.port(),
        URL_SAFE_NO_PAD.encode(encode(&message))
    );
    let (status, out, err) = curl_write_out(
        "%{http_code} %{content_type}",
        &["--cacert", ca.to_str().unwrap(), &doh_url],
    );
    assert!(status.success(), "{err}");
    assert_eq!(out, "200 application/dns-message", "DoH in maintenance");

    // Watching the site go down is what the live view is for.
    let live = get(http, "www.foobar.com", "/_onebox/live", None);
    assert_eq!(live.status, 200, "{}", live.body);

    // onebox visit gets through DNS and TCP, and names the HTTP hop's cause.
    let (code, trace) = visit(&server, "www.foobar.com");
    assert_eq!(code, Some(6), "{trace}");
    assert_eq!(trace["error"]["hop"], "http", "{trace}");
    assert_eq!(trace["error"]["kind"], "maintenance", "{trace}");
    assert!(
        trace["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("maintenance") && m.contains("503")),
        "{trace}"
    );
    let ok_hops: Vec<&str> = trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["ok"] == true)
        .filter_map(|s| s["hop"].as_str())
        .collect();
    assert_eq!(ok_hops, ["dns", "connect"], "{trace}");

    let (code, out, err) = maintenance("off", &how);
    assert_eq!((code, out.as_str()), (Some(0), "maintenance off"), "{err}");
    assert_eq!(maintenance("status", &how).1, "maintenance off");
    let page = get(http, "www.foobar.com", "/", None);
    assert_eq!(page.status, 200);
    assert!(page.header("retry-after").is_none());
    assert_eq!(get(http, "127.0.0.1", "/readyz", None).status, 200);
    assert_eq!(visit(&server, "www.foobar.com").0, Some(0));
}

#[test]
fn maintenance_finds_the_server_by_its_data_folder() {
    skip_unless!(require_tool("curl", "curl"));
    let dir = TempDir::new("maintenance-data");
    let data = dir.path().join("data");
    let server = Onebox::spawn().data(&data).start();
    let how = ["--data", data.to_str().unwrap()];
    assert_eq!(maintenance("on", &how).1, "maintenance on");
    assert_eq!(
        get(server.http_addr(), "www.foobar.com", "/", None).status,
        503
    );
    assert_eq!(maintenance("off", &how).1, "maintenance off");
    assert_eq!(
        get(server.http_addr(), "www.foobar.com", "/", None).status,
        200
    );
}

#[test]
fn a_wrong_control_path_is_a_clear_error() {
    let dir = TempDir::new("maintenance-bad");
    let missing = dir.path().join("no-such.sock");
    let not_a_socket = dir.write("plain-file", "hello\n");
    for path in [&missing, &not_a_socket] {
        let (code, out, err) = maintenance("on", &["--control", path.to_str().unwrap()]);
        assert_ne!(code, Some(0), "{path:?}: {out}");
        assert!(
            err.contains("no onebox is running") && err.contains(path.to_str().unwrap()),
            "unclear error for {path:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    // A data folder without a server says how to point at one.
    let (code, _, err) = maintenance("status", &["--data", dir.path().to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert_contains(&err, "--data DIR or --control PATH");
    // And a state that does not exist is a usage error.
    let (code, _, err) = maintenance("sideways", &[]);
    assert_eq!(code, Some(2), "{err}");
}
