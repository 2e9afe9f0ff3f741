//! The local CA's part that needs namespaces: two ephemeral servers that are each
//! PID 1 of their own PID namespace (as in containers) keep separate CA files and
//! control sockets.

use std::path::PathBuf;

use crate::harness::*;

/// `onebox serve --ephemeral` as PID 1 of its own PID namespace, as in a
/// container: every such server has the same process id.
struct Pid1 {
    unshare: std::process::Child,
    ready: serde_json::Value,
}

impl Pid1 {
    fn start() -> Self {
        use std::io::BufRead;
        assert_tool("unshare", "util-linux");
        let mut unshare = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--pid", "--fork"])
            .arg(ONEBOX)
            .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
            .arg("--zones")
            .arg(repo_path("zones"))
            .arg("--ephemeral")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run unshare");
        let stdout = unshare.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(READY_WAIT).unwrap_or_default();
        let ready = serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
        let this = Self { unshare, ready };
        assert_eq!(this.ready["pid"], 1, "not PID 1 in a namespace: {line:?}");
        this
    }

    fn path(&self, key: &str) -> PathBuf {
        PathBuf::from(self.ready[key].as_str().expect("a path in the ready line"))
    }
}

impl Drop for Pid1 {
    fn drop(&mut self) {
        // SIGTERM onebox itself (unshare's child, seen from here by its host pid)
        // so it cleans up as it would in a container, then reap unshare.
        let children = format!("/proc/{0}/task/{0}/children", self.unshare.id());
        for pid in std::fs::read_to_string(children)
            .unwrap_or_default()
            .split_whitespace()
        {
            if let Ok(pid) = pid.parse::<libc::pid_t>() {
                // SAFETY: kill(2) has no memory-safety preconditions.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
        }
        if wait_timeout(&mut self.unshare, DEADLINE).is_none() {
            kill_and_reap(&mut self.unshare);
        }
    }
}

#[test]
fn ephemeral_servers_with_the_same_pid_keep_separate_ca_and_control_socket() {
    skip_unless!(require_tool("unshare", "util-linux"));
    let first = Pid1::start();
    let second = Pid1::start();
    assert_ne!(
        first.path("control"),
        second.path("control"),
        "`onebox maintenance --control` would reach either server"
    );
    assert_ne!(first.path("ca"), second.path("ca"));
    let (first_ca, first_control) = (first.path("ca"), first.path("control"));
    drop(second);
    assert!(first_ca.is_file(), "the other server's exit removed our CA");
    let (status, out, err) = run_onebox(
        &[
            "maintenance",
            "status",
            "--control",
            first_control.to_str().unwrap(),
        ],
        None,
    );
    assert!(status.success(), "control socket gone: {out}{err}");
}
