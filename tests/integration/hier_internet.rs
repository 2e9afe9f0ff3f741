//! The toy Internet (`internet/`): the root at 127.0.0.2 refers to com, com at
//! 127.0.0.3 refers to foobar.com at 127.0.0.1, and the resolver at 127.0.0.53
//! follows the chain and caches it. All on one port, as the contract says.

use std::net::SocketAddr;

use crate::harness::*;

/// Serves `internet/` (or `zones`) with every authority on the fixture's DNS port.
fn internet(zones: &std::path::Path) -> Onebox {
    Onebox::spawn().zones(zones).start()
}

/// The address of the server for `zone` from the ready line's `authorities`.
fn authority(server: &Onebox, zone: &str) -> SocketAddr {
    server.ready["authorities"][zone][0]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no authority for {zone}: {}", server.ready))
}

fn has(records: &[DigRecord], rtype: &str, name: &str, data: &str) -> bool {
    records
        .iter()
        .any(|r| r.rtype == rtype && r.name == name && r.data == data)
}

/// `www.foobar.com A` asked of `server` is a referral to `zone`: NOERROR, no AA,
/// no answer, `zone NS ns` in AUTHORITY and the glue `ns A glue` in ADDITIONAL.
fn assert_referral(server: SocketAddr, zone: &str, ns: &str, glue: &str) {
    let reply = dig(server, &["www.foobar.com", "A"]);
    assert_eq!(reply.status, "NOERROR", "{}", reply.stdout);
    assert!(!reply.has_flag("aa"), "{}", reply.stdout);
    assert!(reply.answer.is_empty(), "{}", reply.stdout);
    assert!(has(&reply.authority, "NS", zone, ns), "{}", reply.stdout);
    assert!(has(&reply.additional, "A", ns, glue), "{}", reply.stdout);
}

#[test]
fn root_and_com_refer_and_the_resolver_answers_then_answers_from_cache() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = internet(&repo_path("internet"));
    let port = server.dns.port();
    let root = authority(&server, ".");
    let com = authority(&server, "com");
    assert_eq!(root, SocketAddr::from(([127, 0, 0, 2], port)));
    assert_eq!(com, SocketAddr::from(([127, 0, 0, 3], port)));
    assert_eq!(authority(&server, "foobar.com"), server.dns);
    let resolver = server.ready_addr("resolver");
    assert_eq!(resolver, SocketAddr::from(([127, 0, 0, 53], port)));

    // The root: a referral to com, no AA, NS in AUTHORITY, glue in ADDITIONAL.
    assert_referral(root, "com.", "a.nic.com.", "127.0.0.3");

    // com: a referral to foobar.com.
    assert_referral(com, "foobar.com.", "ns1.foobar.com.", "127.0.0.1");

    // The resolver: CNAME + A, RA set, AA never.
    let first = dig(resolver, &["+rec", "www.foobar.com", "A"]);
    assert_eq!(first.status, "NOERROR", "{}", first.stdout);
    assert!(first.has_flag("ra"), "{}", first.stdout);
    assert!(!first.has_flag("aa"), "{}", first.stdout);
    assert!(
        has(&first.answer, "CNAME", "www.foobar.com.", "foobar.com."),
        "{}",
        first.stdout
    );
    assert!(
        has(&first.answer, "A", "foobar.com.", "127.0.0.1"),
        "{}",
        first.stdout
    );

    // The same question again comes from the cache, and the cache view says so.
    let second = dig(resolver, &["+rec", "www.foobar.com", "A"]);
    assert_eq!(type_data(&second.answer), type_data(&first.answer));
    let view = http_get(&server, "www.foobar.com", "/_onebox/api/resolver/cache").json();
    let recent: Vec<&serde_json::Value> = view["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "www.foobar.com." && r["type"] == "A")
        .collect();
    assert_eq!(recent.len(), 2, "{view:#}");
    assert_eq!(recent[0]["from_cache"], false, "{view:#}");
    let asked: Vec<&str> = recent[0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s.as_str())
        .collect();
    let expected = [root.to_string(), com.to_string(), server.dns.to_string()];
    assert_eq!(asked, expected, "root, then com, then foobar.com: {view:#}");
    assert_eq!(recent[1]["from_cache"], true, "{view:#}");
    assert_eq!(
        recent[1]["servers"].as_array().unwrap().len(),
        0,
        "{view:#}"
    );
    let cached = view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "www.foobar.com." && e["type"] == "CNAME")
        .unwrap_or_else(|| panic!("no cache entry for www.foobar.com CNAME: {view:#}"));
    assert!(cached["hits"].as_u64().unwrap() >= 1, "{view:#}");
    assert!(cached["ttl"].as_u64().unwrap() <= 3600, "{view:#}");
}

#[test]
fn each_authority_answers_only_for_its_own_zones() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = internet(&repo_path("internet"));
    let (root, com) = (authority(&server, "."), authority(&server, "com"));

    // foobar.com's server (the --dns address) does not serve com.
    let refused = server.dig(&["com", "NS"]);
    assert_eq!(refused.status, "REFUSED", "{}", refused.stdout);

    // DS is the parent's to answer (RFC 4035 §3.1.4.1): com says NODATA with its SOA.
    let ds = dig(com, &["foobar.com", "DS"]);
    assert_eq!(ds.status, "NOERROR", "{}", ds.stdout);
    assert!(ds.has_flag("aa"), "{}", ds.stdout);
    assert!(ds.answer.is_empty(), "{}", ds.stdout);
    assert_eq!(rtypes(&ds.authority), ["SOA"], "{}", ds.stdout);
    assert_eq!(ds.authority[0].name, "com.", "{}", ds.stdout);

    // A root NXDOMAIN carries the root's own SOA.
    let nx = dig(root, &["nope.invalid", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.stdout);
    assert!(nx.has_flag("aa"), "{}", nx.stdout);
    assert_eq!(rtypes(&nx.authority), ["SOA"], "{}", nx.stdout);
    assert_eq!(nx.authority[0].name, ".", "{}", nx.stdout);
}

#[test]
fn the_resolver_caches_nxdomain_and_reports_a_dead_server_with_ede() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    // The root also delegates org to 127.0.0.9, where nothing listens: a down server.
    let dir = TempDir::new("hier-internet");
    for file in ["com.zone", "foobar.com.zone"] {
        let text = std::fs::read_to_string(repo_path("internet").join(file)).unwrap();
        dir.write(file, &text);
    }
    let root = std::fs::read_to_string(repo_path("internet/root.zone")).unwrap();
    dir.write(
        "root.zone",
        &format!("{root}org. 172800 IN NS a.nic.org.\na.nic.org. 172800 IN A 127.0.0.9\n"),
    );
    let server = internet(dir.path());
    let resolver = server.ready_addr("resolver");

    let down = dig(resolver, &["+rec", "www.example.org", "A"]);
    assert_eq!(down.status, "SERVFAIL", "{}", down.stdout);
    assert!(
        down.stdout.contains("EDE: 22"),
        "an Extended DNS Error 22 (No Reachable Authority): {}",
        down.stdout
    );

    let nx = dig(resolver, &["+rec", "nope.foobar.com", "A"]);
    assert_eq!(nx.status, "NXDOMAIN", "{}", nx.stdout);
    assert_eq!(rtypes(&nx.authority), ["SOA"], "{}", nx.stdout);
    let again = dig(resolver, &["+rec", "nope.foobar.com", "A"]);
    assert_eq!(again.status, "NXDOMAIN", "{}", again.stdout);

    // NODATA after a CNAME, cached: the second answer is the same CNAME and
    // nothing else (a cached SOA must never turn into an answer record).
    for round in ["first", "cached"] {
        let aaaa = dig(resolver, &["+rec", "www.foobar.com", "AAAA"]);
        assert_eq!(aaaa.status, "NOERROR", "{round}: {}", aaaa.stdout);
        assert_eq!(rtypes(&aaaa.answer), ["CNAME"], "{round}: {}", aaaa.stdout);
    }

    let view = http_get(&server, "www.foobar.com", "/_onebox/api/resolver/cache").json();
    let entry = find_in(&view["entries"], "name", "nope.foobar.com.");
    assert_eq!(entry["kind"], "nxdomain", "{view:#}");
    // RFC 2308: kept for min(SOA TTL, MINIMUM) = 3600 s in foobar.com.
    assert!(entry["ttl"].as_u64().unwrap() <= 3600, "{view:#}");
    let again_nx = view["recent"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "nope.foobar.com.")
        .nth(1)
        .unwrap_or_else(|| panic!("the second NXDOMAIN is not in the view: {view:#}"))
        .clone();
    assert_eq!(again_nx["from_cache"], true, "{view:#}");
}

/// Whether `needles` appear in `text` in this order.
fn in_order(text: &str, needles: &[&str]) {
    let mut from = 0;
    for needle in needles {
        match text[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{needle:?} missing (or out of order) after byte {from}:\n{text}"),
        }
    }
}

#[test]
fn visit_trace_walks_root_com_foobar_then_connects() {
    let server = internet(&repo_path("internet"));
    let root = authority(&server, ".").to_string();
    let com = authority(&server, "com").to_string();
    let url = format!("http://www.foobar.com:{}/", server.http.port());
    let (status, stdout, stderr) = run_onebox(&["visit", "--trace", "--root", &root, &url], None);
    assert!(status.success(), "{stdout}\n{stderr}");
    let text = strip_ansi(&stdout);
    in_order(
        &text,
        &[
            &root,
            "referral to com.",
            &com,
            "referral to foobar.com.",
            &server.dns.to_string(),
            "answer",
            "connect",
            "http",
            "200 OK",
        ],
    );

    let (status, stdout, stderr) =
        run_onebox(&["visit", "--trace", "--root", &root, "--json", &url], None);
    assert!(status.success(), "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let zones: Vec<&str> = json["trace"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["zone"].as_str())
        .collect();
    assert_eq!(zones, [".", "com.", "foobar.com."], "{json:#}");
    let hops: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["hop"].as_str())
        .collect();
    assert_eq!(&hops[..3], ["dns", "connect", "http"], "{json:#}");
}

/// `internet/` holds ordinary master files: BIND and NSD load each zone unchanged.
#[test]
fn bind_and_nsd_load_the_internet_zones() {
    skip_unless!(require_tool("named-checkzone", "bind9-utils"));
    skip_unless!(require_tool("nsd-checkzone", "nsd"));
    let dir = repo_path("internet");
    for (zone, file) in [
        (".", "root.zone"),
        ("com", "com.zone"),
        ("foobar.com", "foobar.com.zone"),
    ] {
        for tool in ["named-checkzone", "nsd-checkzone"] {
            let mut command = std::process::Command::new(tool);
            command
                .args([zone, file])
                .current_dir(&dir)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            let (status, stdout, stderr) = run_bounded(command);
            assert!(
                status.success(),
                "{tool} rejected internet/{file}:\n{stdout}{stderr}"
            );
        }
    }
}

/// Serving `.` and `com` does not widen the CA: a leaf for a name outside the
/// website names, signed with the CA's own key, fails `openssl verify`.
#[test]
fn the_ca_vouches_only_for_website_names_while_serving_root_and_com() {
    skip_unless!(require_tool("openssl", "openssl"));
    let dir = TempDir::new("hier-ca");
    let data = dir.join("data");
    let server = Onebox::spawn()
        .zones(repo_path("internet"))
        .data(&data)
        .start();
    assert!(server.ready["resolver"].is_string(), "{}", server.ready);
    let (ok, said) = forge_and_verify(&dir, &data, "DNS:www.foobar.com");
    assert!(
        ok,
        "www.foobar.com is a website name and must verify:\n{said}"
    );
    for san in ["DNS:www.google.com", "DNS:example.com", "DNS:nic.com"] {
        let (ok, said) = forge_and_verify(&dir, &data, san);
        assert!(
            !ok && said.contains("permitted subtree violation"),
            "a leaf for {san} signed by our CA must be rejected:\n{said}"
        );
    }
}

/// The teaching scenario runs end to end: referrals, the resolver, its cache,
/// negative caching, and a stopped com server (cached name fine, new name SERVFAIL+EDE).
#[test]
fn the_hierarchy_scenario_walks_referrals_cache_and_a_dead_com() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let out = crate::scripts::run("scripts/scenarios/hierarchy.sh", &[]);
    let mut from = 0;
    for needle in [
        "a.nic.com.\t\t172800\tIN\tA\t127.0.0.3",
        "ns1.foobar.com.",
        "flags: qr rd ra;",
        "www.foobar.com. A NOERROR from cache",
        "status: NXDOMAIN",
        "status: NXDOMAIN",
        "foobar.com.\t\t",
        "status: SERVFAIL",
        "; EDE: 22 (No Reachable Authority)",
    ] {
        match out[from..].find(needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{needle:?} missing or out of order:\n{out}"),
        }
    }
}

/// The live view hears each resolution, and says whether the servers were asked
/// or the cache answered.
#[test]
fn the_live_view_says_whether_the_resolver_asked_or_the_cache_answered() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let server = internet(&repo_path("internet"));
    let resolver = server.ready_addr("resolver");
    let mut events = crate::live::EventStream::open(server.http, "www.foobar.com");
    for _ in 0..2 {
        let reply = dig(resolver, &["+rec", "www.foobar.com", "A"]);
        assert_eq!(reply.status, "NOERROR", "{}", reply.stdout);
    }
    let mut seen = Vec::new();
    let of = |transport: &'static str| {
        move |e: &serde_json::Value| e["transport"] == transport && e["name"] == "www.foobar.com."
    };
    events.wait_for(
        &mut seen,
        of("resolver, asked the servers"),
        "resolver asked",
    );
    events.wait_for(&mut seen, of("resolver, from cache"), "resolver from cache");
}
