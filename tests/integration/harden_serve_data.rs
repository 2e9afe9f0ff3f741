//! Proves the data folder is private whatever the umask: the folder is 0700, the
//! database, the lock file and the CA key 0600, and an existing folder that others
//! could enter is tightened with a warning.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::{DEADLINE, ONEBOX, Onebox, TempDir, repo_path, wait_timeout};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn state_is_private_under_umask_000() {
    let tmp = TempDir::new("umask");
    let data = tmp.path().join("data");
    // sh sets the umask, then becomes onebox (exec keeps the pid).
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("umask 000 && exec \"$0\" \"$@\"")
        .arg(ONEBOX)
        .args(["serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0"])
        .arg("--zones")
        .arg(repo_path("zones"))
        .arg("--data")
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let checks = [
        (data.clone(), 0o700),
        (data.join("onebox.redb"), 0o600),
        (data.join("onebox.pid"), 0o600),
        (data.join("ca-key.pem"), 0o600),
        (data.join("ca.pem"), 0o644),
    ];
    let modes: Vec<(String, u32, u32)> = checks
        .iter()
        .map(|(path, want)| (path.display().to_string(), mode(path), *want))
        .collect();
    // SAFETY: kill(2) has no memory-safety preconditions; the pid is our child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = wait_timeout(&mut child, DEADLINE).expect("onebox exits on SIGTERM");
    assert!(ready.contains("\"ready\":true"), "ready line: {ready}");
    for (path, got, want) in modes {
        assert_eq!(got, want, "{path}: mode {got:03o}, want {want:03o}");
    }
    assert!(status.success(), "{status:?}");
}

#[test]
fn an_existing_data_folder_open_to_others_is_tightened() {
    let tmp = TempDir::new("wide");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut server = Onebox::spawn().data(&data).start();
    assert_eq!(mode(&data), 0o700, "the data folder's mode");
    // The log writer hands lines to stderr in batches, so the warning may
    // arrive just after the ready line.
    server.wait_for_log("tightened to 700", 0);
    assert!(server.terminate().success());
}
