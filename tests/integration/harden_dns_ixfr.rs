//! Issue 10 item 19: IXFR answered as RFC 1995 §4 allows a server without a journal
//! of changes. A client whose serial is current gets the single SOA; any other gets
//! the whole zone AXFR-style (SOA … SOA) inside the IXFR reply. The transfer rules
//! of AXFR apply: `--allow-transfer` networks only, and over UDP only the single
//! SOA (RFC 1995 §2), which tells a secondary that is behind to come back over TCP.
//! Checked with dig, which says "Transfer failed" on a reply it cannot use.

use std::path::Path;

use crate::harness::*;
use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::RecordType;

/// The serial of `TEST_ZONE_HEAD`.
const SERIAL: u32 = 7;

fn transfer_server() -> (Onebox, TempDir) {
    let zones = test_zones("");
    let server = Onebox::spawn()
        .zones(zones.path())
        .args(["--allow-transfer", "127.0.0.0/8"])
        .start();
    (server, zones)
}

/// `(name, TYPE, data)` of every record dig printed for a transfer.
fn listed(dig: &Dig) -> Vec<(String, String, String)> {
    axfr_records(&dig.stdout)
        .into_iter()
        .map(|r| (r.name, r.rtype, r.data))
        .collect()
}

fn soa_line() -> (String, String, String) {
    (
        "foobar.com.".into(),
        "SOA".into(),
        format!("ns1.foobar.com. hostmaster.foobar.com. {SERIAL} 7200 3600 1209600 300"),
    )
}

#[test]
fn ixfr_from_an_older_serial_gets_the_whole_zone_axfr_style() {
    let (server, _zones) = transfer_server();
    for transport in ["+tcp", "+tls"] {
        let args: Vec<String> = match transport {
            "+tls" => vec![
                "+tls".into(),
                "-p".into(),
                server.ready_addr("dot").port().to_string(),
            ],
            _ => vec!["+tcp".into()],
        };
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        let ixfr = format!("IXFR={}", SERIAL - 1);
        all.extend(["foobar.com", ixfr.as_str()]);
        let dig = server.dig(&all);
        assert!(
            !dig.stdout.contains("Transfer failed"),
            "{transport}:\n{}",
            dig.stdout
        );
        let got = listed(&dig);
        assert_eq!(
            got.len(),
            6,
            "{transport}: SOA, 4 records, SOA:\n{}",
            dig.stdout
        );
        assert_eq!(got.first(), Some(&soa_line()), "{}", dig.stdout);
        assert_eq!(got.last(), Some(&soa_line()), "{}", dig.stdout);
        for expected in [
            ("foobar.com.", "NS", "ns1.foobar.com."),
            ("ns1.foobar.com.", "A", "127.0.0.1"),
            ("foobar.com.", "A", "127.0.0.1"),
            ("www.foobar.com.", "CNAME", "foobar.com."),
        ] {
            let expected = (
                expected.0.to_string(),
                expected.1.to_string(),
                expected.2.to_string(),
            );
            assert!(
                got.contains(&expected),
                "{expected:?} missing:\n{}",
                dig.stdout
            );
        }
    }
}

#[test]
fn ixfr_from_the_current_serial_gets_the_single_soa() {
    let (server, _zones) = transfer_server();
    // Current, and "newer than ours" (a secondary that was ahead): nothing to send.
    for serial in [SERIAL, SERIAL + 1] {
        let ixfr = format!("IXFR={serial}");
        let dig = server.dig(&["+tcp", "foobar.com", &ixfr]);
        assert!(!dig.stdout.contains("Transfer failed"), "{}", dig.stdout);
        assert_eq!(listed(&dig), [soa_line()], "{ixfr}:\n{}", dig.stdout);
    }
}

#[test]
fn ixfr_over_udp_gets_the_single_soa_and_strangers_are_refused() {
    let (server, _zones) = transfer_server();
    let ixfr = format!("IXFR={}", SERIAL - 1);
    let dig = server.dig(&["+notcp", "foobar.com", &ixfr]);
    assert_eq!(listed(&dig), [soa_line()], "{}", dig.stdout);

    // A name that is not one of our zones' apexes has nothing to transfer.
    let reply = ask_tcp(
        server.dns_addr(),
        &query("www.foobar.com.", RecordType::IXFR),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NotAuth);
    assert!(reply.answers.is_empty());

    // Without --allow-transfer, IXFR is refused on every transport, like AXFR.
    let closed = Onebox::start();
    for transport in ["+tcp", "+notcp"] {
        let dig = closed.dig(&[transport, "foobar.com", &ixfr]);
        assert!(
            axfr_records(&dig.stdout).is_empty(),
            "{transport}:\n{}",
            dig.stdout
        );
    }
    let reply = ask_tcp(closed.dns_addr(), &query("foobar.com.", RecordType::IXFR));
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
}

const KNOTD: &str = "/usr/sbin/knotd";
const KNOTC: &str = "/usr/sbin/knotc";

/// A knotd (from scripts/test.sh's `knot` package) that is stopped and reaped
/// whatever the test does.
struct Knot {
    child: std::process::Child,
    log: std::path::PathBuf,
    conf: std::path::PathBuf,
}

impl Knot {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) until the log shows `needle`; returns the whole log.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "knotd never logged {needle:?}:\n{log}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        kill_and_reap(&mut self.child);
    }
}

/// A loopback port nobody listens on now (UDP and TCP), for knotd.
fn free_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a TCP port");
        let port = tcp.local_addr().expect("its address").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A real secondary: Knot bootstraps by AXFR, then, once the serial moves, asks by
/// IXFR. Before, our reply made it log "not supported by remote" and fall back to
/// AXFR on every refresh; now it takes the AXFR-style IXFR reply.
#[test]
fn a_knot_secondary_refreshes_by_ixfr() {
    assert!(
        Path::new(KNOTD).is_file() && Path::new(KNOTC).is_file(),
        "knotd is not installed: run scripts/test.sh, or apt-get install knot"
    );
    let zones = test_zones("");
    let server = Onebox::spawn()
        .zones(zones.path())
        .args(["--allow-transfer", "127.0.0.0/8"])
        .start();
    let primary = server.dns_addr();
    let dir = TempDir::new("knot");
    let d = dir.path().display();
    let head = knot_conf_head(dir.path(), free_port());
    let conf = format!(
        r#"{head}remote:
  - id: primary
    address: {ip}@{primary_port}
template:
  - id: default
    storage: "{d}"
zone:
  - domain: foobar.com
    master: primary
"#,
        ip = primary.ip(),
        primary_port = primary.port(),
    );
    let conf_path = dir.write("knot.conf", &conf);
    let log = dir.path().join("knot.log");
    let child = std::process::Command::new(KNOTD)
        .arg("-c")
        .arg(&conf_path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create knot.log"))
        .spawn()
        .expect("start knotd");
    let knot = Knot {
        child,
        log,
        conf: conf_path,
    };
    knot.wait_for(&format!("serial none -> {SERIAL}"));

    // A new serial on the primary, then a refresh: Knot asks by IXFR.
    zones.write(
        "foobar.com.zone",
        &TEST_ZONE_HEAD.replace(" 7 7200", " 8 7200"),
    );
    let skip = server.stderr().len();
    server.signal(libc::SIGHUP);
    server.wait_for_log("serial 8", skip);
    let (status, out, err) = run_bounded({
        let mut knotc = std::process::Command::new(KNOTC);
        knotc
            .arg("-c")
            .arg(&knot.conf)
            .args(["zone-refresh", "foobar.com"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        knotc
    });
    assert!(status.success(), "knotc zone-refresh: {out}{err}");
    let log = knot.wait_for(&format!("serial {SERIAL} -> 8"));
    eprintln!("{log}");
    // Knot 3.2 words it "IXFR, incoming, remote …, not supported by remote" and
    // then "fallback to AXFR"; newer versions "IXFR not supported by remote".
    for complaint in ["not supported by remote", "fallback to AXFR"] {
        assert!(!log.contains(complaint), "Knot said {complaint:?}:\n{log}");
    }
    // The file's edit is journaled as a difference, so the IXFR is incremental
    // (without a journal it was the whole zone, "receiving AXFR-style IXFR"):
    // either way Knot takes it by IXFR, never by a fallback to AXFR.
    assert!(
        log.contains("IXFR, incoming") && log.contains("finished"),
        "Knot did not take the zone by IXFR:\n{log}"
    );
    drop(knot);
}
