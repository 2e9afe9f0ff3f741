//! The toy Internet's resolver reaches the other ways in: DoH answers through it,
//! it answers RD-clear questions from its cache only, and the home page shows the
//! path a name took to reach the browser.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

use crate::harness::*;

/// `onebox serve --zones internet`: the root, com and the resolver run too.
fn internet() -> Onebox {
    Onebox::spawn().zones(repo_path("internet")).start()
}

/// One DoH GET for `name`/A with RD set, verified against the server's CA.
fn doh_get(server: &Onebox, name: &str) -> (u16, String, Vec<u8>) {
    let mut message = query(name, RecordType::A);
    message.metadata.id = 0; // RFC 8484 §4.1: 0 keeps GETs cacheable
    message.metadata.recursion_desired = true;
    let https = server.ready_addr("https");
    let url = format!(
        "https://127.0.0.1:{}/dns-query?dns={}",
        https.port(),
        URL_SAFE_NO_PAD.encode(encode(&message))
    );
    let ca = server.ready_path("ca");
    curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        "-H",
        "accept: application/dns-message",
        &url,
    ])
}

#[test]
fn doh_answers_through_the_resolver_when_the_toy_internet_runs() {
    skip_unless!(require_tool("curl", "curl"));
    let server = internet();
    let (status, head, body) = doh_get(&server, "www.foobar.com.");
    assert_eq!(status, 200, "{head}");
    let reply = decode(&body);
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    // A resolver's answer: RA set, AA never (the authoritative engine sets AA).
    assert!(reply.metadata.recursion_available, "{reply:?}");
    assert!(!reply.metadata.authoritative, "{reply:?}");
    assert_eq!(types(&reply.answers), ["CNAME", "A"], "{reply:?}");
    // And the resolver did the walk: its cache view has the resolution.
    let view = http_get(&server, "www.foobar.com", "/_onebox/api/resolver/cache").json();
    let walked = view["recent"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "www.foobar.com." && r["from_cache"] == false);
    assert!(walked, "DoH did not go through the resolver: {view:#}");
}

#[test]
fn doh_stays_authoritative_without_a_root_zone() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let (status, head, body) = doh_get(&server, "www.foobar.com.");
    assert_eq!(status, 200, "{head}");
    let reply = decode(&body);
    assert!(reply.metadata.authoritative, "{reply:?}");
    assert!(!reply.metadata.recursion_available, "{reply:?}");
}

#[test]
fn the_resolver_answers_rd_clear_from_its_cache_only() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = internet();
    let resolver = server.ready_addr("resolver");
    // The harness's dig sends RD clear: a cold cache must not make it recurse.
    let cold = dig(resolver, &["www.foobar.com", "A"]);
    assert_eq!(cold.status, "REFUSED", "{}", cold.stdout);
    assert!(cold.answer.is_empty(), "{}", cold.stdout);
    let view = http_get(&server, "www.foobar.com", "/_onebox/api/resolver/cache").json();
    assert_eq!(
        view["entries"].as_array().map(Vec::len),
        Some(0),
        "an RD-clear question filled the cache: {view:#}"
    );
    // With RD the resolver walks the chain; RD clear then answers from the cache.
    let walked = dig(resolver, &["+rec", "www.foobar.com", "A"]);
    assert_eq!(walked.status, "NOERROR", "{}", walked.stdout);
    let cached = dig(resolver, &["www.foobar.com", "A"]);
    assert_eq!(cached.status, "NOERROR", "{}", cached.stdout);
    assert!(cached.has_flag("ra"), "{}", cached.stdout);
    assert!(!cached.has_flag("aa"), "{}", cached.stdout);
    assert_eq!(
        rtypes(&cached.answer),
        rtypes(&walked.answer),
        "{}",
        cached.stdout
    );
}

#[test]
fn the_home_page_shows_the_path_the_resolver_took_for_this_client() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = internet();
    let resolver = server.ready_addr("resolver");
    let port = server.dns.port();
    let panel = |page: &str| -> Option<String> {
        let start = page.find(">Resolver<")?;
        let end = page[start..]
            .find(">DNS<")
            .map_or(page.len(), |e| start + e);
        Some(page[start..end].to_string())
    };

    // Nothing resolved yet by this client: no resolver step on the page.
    let before = http_get(&server, "www.foobar.com", "/").text();
    assert_eq!(panel(&before), None, "{before}");

    // dig and the HTTP client both come from 127.0.0.1, as a browser's lookup and
    // its connection do.
    let walked = dig(resolver, &["+rec", "www.foobar.com", "A"]);
    assert_eq!(walked.status, "NOERROR", "{}", walked.stdout);
    let page = http_get(&server, "www.foobar.com", "/").text();
    let shown = panel(&page).unwrap_or_else(|| panic!("no resolver step: {page}"));
    let root = format!("the root at <code>127.0.0.2:{port}</code>");
    let com = format!("<code>com.</code> at <code>127.0.0.3:{port}</code>");
    let foobar = format!("<code>foobar.com.</code> at <code>127.0.0.1:{port}</code>");
    let at = |needle: &str| {
        shown
            .find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in {shown}"))
    };
    assert!(at(&root) < at(&com) && at(&com) < at(&foobar), "{shown}");
    assert!(!shown.contains("from its cache"), "{shown}");

    // The same name again comes from the cache, and the page says so.
    dig(resolver, &["+rec", "www.foobar.com", "A"]);
    let page = http_get(&server, "www.foobar.com", "/").text();
    let shown = panel(&page).unwrap_or_else(|| panic!("no resolver step: {page}"));
    assert_contains(&shown, "from its cache");
    assert!(
        shown.contains(&root),
        "the walk that filled the cache: {shown}"
    );

    // Another name's resolution is not this page's.
    let page = http_get(&server, "foobar.com", "/").text();
    assert_eq!(panel(&page), None, "{page}");
}

#[test]
fn the_os_hook_sends_only_the_website_zones_to_the_resolver() {
    let internet = repo_path("internet");
    let internet = internet.to_str().unwrap();
    let sd = |extra: &[&str]| {
        let mut args = vec![
            "resolver",
            "print",
            "--platform",
            "systemd-resolved",
            "--zones",
            internet,
            "--dns",
            "127.0.0.1:5300",
        ];
        args.extend_from_slice(extra);
        onebox_ok(args).stdout
    };
    // The resolver, on the DNS port by default (as serve picks it), for
    // foobar.com only: never the root or com, which would capture every .com name.
    let out = sd(&[]);
    assert_contains(&out, "DNS=127.0.0.53:5300\n");
    assert_contains(&out, "Domains=~foobar.com\n");
    let out = sd(&["--resolver", "127.0.0.54:5301"]);
    assert_contains(&out, "DNS=127.0.0.54:5301\n");
    assert_contains(&out, "--resolver 127.0.0.54:5301");

    // A plain zones folder: --dns as before, and --resolver is an error.
    let plain = onebox_ok([
        "resolver",
        "print",
        "--platform",
        "systemd-resolved",
        "--dns",
        "127.0.0.1:5300",
    ])
    .stdout;
    assert_contains(&plain, "DNS=127.0.0.1:5300\n");
    let refused = onebox([
        "resolver",
        "print",
        "--platform",
        "systemd-resolved",
        "--resolver",
        "127.0.0.53:5300",
    ]);
    assert_ne!(refused.code, Some(0), "{}", refused.stdout);
    assert_contains(&refused.stderr, "no root zone");
}

/// `doctor --json` against `server` with the toy Internet's zones.
fn doctor_internet(server: &Onebox, extra: &[&str]) -> serde_json::Value {
    let internet = repo_path("internet");
    let mut args = vec!["--json", "--zones", internet.to_str().unwrap()];
    args.extend_from_slice(extra);
    let run = server.doctor(&args);
    serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor --json ({e}): {}\n{}", run.stdout, run.stderr))
}

#[test]
fn doctor_checks_the_website_zones_and_the_resolver_in_the_toy_internet() {
    let server = internet();
    let resolver = server.ready_addr("resolver");
    let report = doctor_internet(&server, &[]);
    // Only the website zone: the root and com are not served at --dns.
    assert_eq!(
        report["zones"],
        serde_json::json!(["foobar.com"]),
        "{report:#}"
    );
    assert_eq!(report["resolver"], resolver.to_string(), "{report:#}");
    let status = |report: &serde_json::Value, check: &str| -> Vec<String> {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["check"] == check)
            .map(|c| c["status"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(status(&report, "dns"), ["pass"], "{report:#}");
    assert_eq!(status(&report, "resolver"), ["pass"], "{report:#}");

    // A resolver address where nothing listens fails, with the fix.
    let silent = free_port();
    let wrong = format!("127.0.0.53:{silent}");
    let report = doctor_internet(&server, &["--resolver", &wrong]);
    assert_eq!(status(&report, "resolver"), ["fail"], "{report:#}");
    assert_eq!(report["ok"], false, "{report:#}");
}

#[test]
fn the_com_server_follows_a_zone_reload() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let dir = TempDir::new("hier-reload");
    for file in ["root.zone", "com.zone", "foobar.com.zone"] {
        std::fs::copy(repo_path("internet").join(file), dir.join(file)).unwrap();
    }
    let server = Onebox::spawn().zones(dir.path()).start();
    let com = std::net::SocketAddr::from(([127, 0, 0, 3], server.dns.port()));
    let before = dig(com, &["www.bar.com", "A"]);
    assert_eq!(before.status, "NXDOMAIN", "{}", before.stdout);

    // A new delegation in com, with a new serial, then a reload.
    let text = std::fs::read_to_string(dir.join("com.zone"))
        .unwrap()
        .replace("2026112601 ; serial", "2026112602 ; serial")
        + "bar          172800 IN  NS  ns1.bar.com.\nns1.bar      172800 IN  A   127.0.0.1\n";
    std::fs::write(dir.join("com.zone"), text).unwrap();
    server.signal(libc::SIGHUP);

    // The com server at 127.0.0.3 now refers bar.com (bounded wait for the reload).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = dig(com, &["www.bar.com", "A"]);
        if after.status == "NOERROR"
            && after
                .authority
                .iter()
                .any(|r| r.rtype == "NS" && r.name == "bar.com.")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the com server still serves the old zone: {}",
            after.stdout
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
