//! A real Knot and a real NSD as secondaries of onebox: after an UPDATE both
//! serve the new serial within 2 s, through NOTIFY then IXFR.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A secondary daemon; dropping it stops its whole process group.
struct Secondary {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = signal_pid(self.child.id(), libc::SIGTERM);
        // SAFETY: kill(2) on our own child's process group; no memory involved.
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Secondary {
    /// Starts `knot` or `nsd` on `port` as a secondary of onebox at `primary`.
    fn start(name: &str, dir: &Path, primary: u16, port: u16) -> Self {
        let d = dir.display();
        let (listen, from) = (
            ([127, 0, 0, 1], port).into(),
            ([127, 0, 0, 1], primary).into(),
        );
        // The same configurations `onebox cluster` gives its secondaries.
        let (program, conf, args): (&str, String, Vec<String>) = if name == "knot" {
            (
                "/usr/sbin/knotd",
                onebox::cluster::config::knot_secondary(dir, listen, from),
                vec!["-c".into(), format!("{d}/secondary.conf")],
            )
        } else {
            (
                "/usr/sbin/nsd",
                onebox::cluster::config::nsd_secondary(dir, listen, from),
                vec!["-d".into(), "-c".into(), format!("{d}/secondary.conf")],
            )
        };
        std::fs::write(dir.join("secondary.conf"), conf).unwrap();
        let log = dir.join("output.log");
        let out = File::create(&log).unwrap();
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .process_group(0)
            .spawn()
            .unwrap();
        Secondary { child, port, log }
    }

    fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    fn serial(&self) -> Option<u32> {
        soa_serial_at(self.addr(), "foobar.com")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded by `limit`) until the secondary serves `serial`.
    fn wait_serial(&self, serial: u32, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if self.serial() == Some(serial) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

#[test]
fn dyn_knot_and_nsd_follow_an_update_by_notify_and_ixfr() {
    skip_unless!(
        require_tool("dig", "bind9-dnsutils"),
        require_tool("nsupdate", "bind9-dnsutils"),
        require_tool("knotd", "knot"),
        require_tool("nsd", "nsd")
    );
    let work = TempDir::new("secondaries");
    let (knot_dir, nsd_dir) = (work.path().join("knot"), work.path().join("nsd"));
    std::fs::create_dir_all(&knot_dir).unwrap();
    std::fs::create_dir_all(&nsd_dir).unwrap();
    // The secondaries' ports must be known before onebox starts (--notify), and
    // onebox's port before they start: pick theirs first.
    let zones = test_zones("");
    let knot_port = free_port();
    let nsd_port = free_port();
    let server = Onebox::spawn()
        .zones(&zones)
        .args([
            "--allow-transfer".to_string(),
            "127.0.0.0/8".to_string(),
            "--notify".to_string(),
            format!("127.0.0.1:{knot_port}"),
            "--notify".to_string(),
            format!("127.0.0.1:{nsd_port}"),
        ])
        .start();
    let primary = server.dns_addr().port();
    let knot = Secondary::start("knot", &knot_dir, primary, knot_port);
    let nsd = Secondary::start("nsd", &nsd_dir, primary, nsd_port);
    for (name, secondary) in [("knot", &knot), ("nsd", &nsd)] {
        assert!(
            secondary.wait_serial(7, DEADLINE).is_some(),
            "{name} never loaded serial 7:\n{}",
            secondary.log()
        );
    }

    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");

    // The bound the issue sets: both serve serial 8 within 2 s of the update.
    for (name, secondary) in [("knot", &knot), ("nsd", &nsd)] {
        assert!(
            secondary.wait_serial(8, Duration::from_secs(2)).is_some(),
            "{name} did not serve serial 8 within 2 s:\n{}\n--- onebox ---\n{}",
            secondary.log(),
            server.stderr()
        );
        assert_eq!(
            dig_a_at(secondary.addr(), "api.foobar.com").len(),
            1,
            "{name}"
        );
    }
    let knot_log = knot.log();
    assert!(knot_log.contains("IXFR, incoming"), "{knot_log}");
    assert!(!knot_log.contains("IXFR not supported"), "{knot_log}");
    assert!(!knot_log.contains("fallback to AXFR"), "{knot_log}");
}
