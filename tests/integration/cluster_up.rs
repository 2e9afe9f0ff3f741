//! `onebox cluster up|status|down` on the real engines: HAProxy in front of two
//! onebox nodes, Knot and NSD copying the zone from a hidden onebox primary,
//! PostgreSQL with a streaming replica. One test walks the whole contract, since
//! bringing a cluster up is the expensive part.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::harness::*;

/// `cluster down` on drop, so a failed assertion leaves no cluster running.
struct Down(PathBuf);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = onebox([
            "cluster".as_ref(),
            "down".as_ref(),
            "--data".as_ref(),
            self.0.as_os_str(),
        ]);
    }
}

/// A pid that is still a running process (a zombie nobody reaped is not).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| Some(stat.rsplit_once(") ")?.1.chars().next()? != 'Z'))
        .unwrap_or(false)
}

fn addr(value: &serde_json::Value) -> SocketAddr {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an address: {value}"))
}

#[test]
fn cluster_up_balances_two_nodes_serves_dns_from_secondaries_and_down_leaves_nothing() {
    skip_unless!(
        require_tool("haproxy", "haproxy"),
        require_tool("knotd", "knot"),
        require_tool("nsd", "nsd"),
        require_postgres(),
        require_tool("dig", "bind9-dnsutils"),
        require_tool("nsupdate", "bind9-dnsutils"),
        require_tool("curl", "curl")
    );
    let work = TempDir::new("cluster");
    // Under root PostgreSQL runs as the postgres user, which must be able to
    // pass through this folder to its own.
    std::fs::set_permissions(work.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let data = work.join("data");
    let (http, https, dns) = (free_port(), free_port(), free_port());
    let up = onebox_ok([
        "cluster".to_string(),
        "up".into(),
        "--nodes".into(),
        "2".into(),
        "--data".into(),
        data.display().to_string(),
        "--http".into(),
        format!("127.0.0.1:{http}"),
        "--https".into(),
        format!("127.0.0.1:{https}"),
        "--dns".into(),
        format!("127.0.0.1:{dns}"),
    ]);
    let _down = Down(data.clone());
    assert_eq!(up.stdout.lines().count(), 1, "one line: {}", up.stdout);
    let ready = up.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(addr(&ready["lb"]["http"]).port(), http);
    assert!(
        ready["lb"]["stats"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.4.1:")
    );
    let nodes = ready["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for (k, node) in nodes.iter().enumerate() {
        assert_eq!(node["name"], format!("node{}", k + 1));
        assert_eq!(
            addr(&node["http"]).ip().to_string(),
            format!("127.0.1.{}", k + 1)
        );
        assert!(running(node["pid"].as_u64().unwrap()));
    }
    let primary = addr(&ready["dns"]["primary"]);
    assert!(running(ready["dns"]["primary_pid"].as_u64().unwrap()));
    let secondaries: Vec<SocketAddr> = ready["dns"]["secondaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| addr(&s["addr"]))
        .collect();
    assert_eq!(secondaries.len(), 2);
    addr(&ready["postgres"]["primary"]);
    addr(&ready["postgres"]["replica"]);

    // HTTP through HAProxy: round robin, each answer saying which node served it.
    let target = format!("www.foobar.com:{http}:127.0.0.1");
    let url = format!("http://www.foobar.com:{http}/");
    let served: Vec<String> = (0..6)
        .map(|_| {
            let (status, headers, _) = curl(&["--resolve", &target, &url]);
            assert_eq!(status, 200, "{headers}");
            header_of(&headers, "onebox-node")
                .unwrap_or_else(|| panic!("no Onebox-Node header: {headers}"))
                .to_string()
        })
        .collect();
    assert!(served.contains(&"node1".to_string()), "{served:?}");
    assert!(served.contains(&"node2".to_string()), "{served:?}");
    assert!(
        served.windows(2).all(|w| w[0] != w[1]),
        "round robin alternates: {served:?}"
    );

    // HTTPS through HAProxy verifies against the cluster's CA.
    let ca = ready["ca"].as_str().unwrap();
    let (status, headers, _) = curl(&[
        "--cacert",
        ca,
        "--resolve",
        &format!("www.foobar.com:{https}:127.0.0.1"),
        &format!("https://www.foobar.com:{https}/"),
    ]);
    assert_eq!(status, 200, "{headers}");

    let (status, _, _) = curl(&[ready["lb"]["stats"].as_str().unwrap()]);
    assert_eq!(status, 200, "the stats page");

    // Each secondary answers the apex A (the balancer) at the primary's serial.
    let serial = soa_serial_at(primary, "foobar.com").expect("the primary answers SOA");
    for secondary in &secondaries {
        let a = dig(*secondary, &["foobar.com", "A"]);
        assert!(a.has_flag("aa"), "{}", a.stdout);
        assert_eq!(
            a.answers_of("A")
                .iter()
                .map(|r| r.data.as_str())
                .collect::<Vec<_>>(),
            ["127.0.0.1"],
            "{}",
            a.stdout
        );
        assert_eq!(
            soa_serial_at(*secondary, "foobar.com"),
            Some(serial),
            "{secondary}"
        );
    }

    // An UPDATE signed with the primary's key reaches both secondaries (NOTIFY, IXFR).
    let key = ready["dns"]["tsig"].as_str().unwrap();
    let (code, out) = nsupdate_at(
        primary,
        &["-k", key],
        &["update add blue.foobar.com 60 A 192.0.2.7"],
    );
    assert_eq!(code, Some(0), "nsupdate: {out}");
    let started = Instant::now();
    for secondary in &secondaries {
        while soa_serial_at(*secondary, "foobar.com") != Some(serial + 1) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{secondary} did not get serial {} within 5 s",
                serial + 1
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(dig_a_at(*secondary, "blue.foobar.com"), ["192.0.2.7"]);
    }

    // status: both nodes UP in HAProxy's view, each with its share of requests.
    let status = onebox_ok([
        "cluster".as_ref(),
        "status".as_ref(),
        "--json".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
    ])
    .json();
    assert_eq!(status["running"], true);
    let mut shares = 0.0;
    for node in status["nodes"].as_array().unwrap() {
        assert_eq!(node["health"], "UP", "{status}");
        assert!(node["requests"].as_u64().unwrap() >= 3, "{status}");
        shares += node["share"].as_f64().unwrap();
    }
    assert!((shares - 1.0).abs() < 1e-9, "{status}");
    let column = |list: &str, key: &str| -> Vec<serde_json::Value> {
        status[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row[key].clone())
            .collect()
    };
    assert_eq!(
        column("postgres", "role"),
        ["primary", "replica"],
        "{status}"
    );
    assert!(
        column("dns", "serial").iter().all(|s| *s == serial + 1),
        "{status}"
    );

    // down: no process of the tree and no listener on any of its addresses.
    let mut pids: Vec<u64> = vec![
        ready["supervisor_pid"].as_u64().unwrap(),
        ready["lb"]["pid"].as_u64().unwrap(),
        ready["dns"]["primary_pid"].as_u64().unwrap(),
        ready["postgres"]["primary_pid"].as_u64().unwrap(),
        ready["postgres"]["replica_pid"].as_u64().unwrap(),
    ];
    pids.extend(nodes.iter().map(|n| n["pid"].as_u64().unwrap()));
    pids.extend(
        ready["dns"]["secondaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["pid"].as_u64().unwrap()),
    );
    onebox_ok([
        "cluster".as_ref(),
        "down".as_ref(),
        "--data".as_ref(),
        data.as_os_str(),
    ]);
    let left: Vec<_> = pids.iter().filter(|pid| running(**pid)).collect();
    assert!(left.is_empty(), "still running after down: {left:?}");
    let mut tcp: Vec<SocketAddr> = vec![
        addr(&ready["lb"]["http"]),
        addr(&ready["lb"]["https"]),
        primary,
    ];
    tcp.extend(secondaries.iter().copied());
    tcp.push(addr(&ready["postgres"]["primary"]));
    tcp.push(addr(&ready["postgres"]["replica"]));
    for node in nodes {
        tcp.push(addr(&node["http"]));
        tcp.push(addr(&node["https"]));
    }
    for listener in &tcp {
        assert!(
            TcpListener::bind(listener).is_ok(),
            "something still listens on {listener}"
        );
    }
    for udp in std::iter::once(primary).chain(secondaries) {
        assert!(
            UdpSocket::bind(udp).is_ok(),
            "something still listens on udp {udp}"
        );
    }
}

#[test]
fn cluster_up_names_a_busy_address_and_starts_nothing() {
    skip_unless!(
        require_tool("haproxy", "haproxy"),
        require_tool("knotd", "knot"),
        require_tool("nsd", "nsd"),
        require_postgres()
    );
    let work = TempDir::new("cluster-busy");
    let data = work.join("data");
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let http = taken.local_addr().unwrap();
    let run = onebox([
        "cluster".to_string(),
        "up".into(),
        "--data".into(),
        data.display().to_string(),
        "--http".into(),
        http.to_string(),
        "--https".into(),
        format!("127.0.0.1:{}", free_port()),
        "--dns".into(),
        format!("127.0.0.1:{}", free_port()),
    ]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "no ready line: {}", run.stdout);
    assert!(
        run.stderr.contains(&format!("{http} (haproxy http)")),
        "{}",
        run.stderr
    );
    assert!(!data.join("cluster/state.json").exists());
    assert!(
        !data.join("cluster/pg-primary").exists(),
        "nothing was started"
    );
}
