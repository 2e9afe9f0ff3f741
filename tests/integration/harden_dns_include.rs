//! Issue 10 item 9: `$INCLUDE` resolves inside the zones folder only (as NSD's
//! chroot does), reads only regular files under 16 MB, and a problem in an
//! included file names FILE:LINE without repeating the file's text, in
//! `onebox check` output and in the server's log. A FIFO include blocks neither a
//! reload nor SIGTERM; `/dev/zero` is refused without being read.

use std::ffi::CString;
use std::path::Path;

use crate::harness::*;
use hickory_server::proto::rr::RecordType;

/// `onebox check FILE`: (exit code, stdout + stderr).
fn check(file: &Path) -> (i32, String) {
    let (status, stdout, stderr) = run_onebox(&["check", &file.display().to_string()], None);
    (status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.display().to_string()).expect("a path without NUL");
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// A zones folder whose zone includes `includes`, one `$INCLUDE` per line from
/// line 8 on (after the seven lines of `TEST_ZONE_HEAD`).
fn zone_with_includes(includes: &[&str]) -> (TempDir, std::path::PathBuf) {
    let extra: String = includes.iter().map(|i| format!("$INCLUDE {i}\n")).collect();
    let dir = test_zones(&extra);
    let zone = dir.path().join("foobar.com.zone");
    (dir, zone)
}

fn assert_problem_at(output: &str, zone: &Path, line: usize, words: &str) {
    let prefix = format!("{}:{line}: ", zone.display());
    assert!(
        output
            .lines()
            .any(|l| l.contains(&prefix) && l.contains(words)),
        "expected {prefix}…{words}:\n{output}"
    );
}

#[test]
fn includes_outside_the_zones_folder_are_refused_and_never_quoted() {
    let (dir, zone) = zone_with_includes(&["../../etc/passwd", "/etc/passwd", "escape"]);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("escape")).expect("symlink");
    let (code, output) = check(&zone);
    assert_eq!(code, 1, "{output}");
    for line in [8, 9, 10] {
        assert_problem_at(&output, &zone, line, "outside the zones folder");
    }
    assert!(
        !output.contains("root:") && !output.contains("/bin/"),
        "the text of /etc/passwd was quoted:\n{output}"
    );
}

#[test]
fn an_included_file_that_fails_to_parse_is_named_but_not_quoted() {
    let (dir, zone) = zone_with_includes(&["secret.txt"]);
    dir.write(
        "secret.txt",
        "password: hunter2\n\napi_key = sk-live-0123\n",
    );
    let (code, output) = check(&zone);
    assert_eq!(code, 1, "{output}");
    let secret = dir.path().join("secret.txt");
    for line in [1, 3] {
        let at = format!("{}:{line}: ", secret.display());
        assert!(output.contains(&at), "expected {at}:\n{output}");
    }
    for word in ["hunter2", "password", "sk-live", "api_key"] {
        assert!(!output.contains(word), "{word} quoted:\n{output}");
    }
}

#[test]
fn only_regular_files_under_16_mb_are_included() {
    let (dir, zone) = zone_with_includes(&["pipe", "huge.zone.inc"]);
    mkfifo(&dir.path().join("pipe"));
    // Sparse: 17 MB long, no disk used, never read.
    std::fs::File::create(dir.path().join("huge.zone.inc"))
        .and_then(|f| f.set_len(17 * 1024 * 1024))
        .expect("a sparse file");
    let (code, output) = check(&zone);
    assert_eq!(code, 1, "{output}");
    assert_problem_at(&output, &zone, 8, "not a regular file");
    assert_problem_at(&output, &zone, 9, "larger than 16 MB");
}

#[test]
fn dev_zero_is_refused_without_reading_it() {
    let (_dir, zone) = zone_with_includes(&["/dev/zero"]);
    let (code, output) = check(&zone);
    assert_eq!(code, 1, "{output}");
    assert_problem_at(&output, &zone, 8, "outside the zones folder");
}

#[test]
fn a_fifo_include_blocks_neither_reload_nor_sigterm() {
    let zones = test_zones("");
    let mut server = Onebox::spawn().zones(zones.path()).start();
    mkfifo(&zones.path().join("pipe"));
    zones.write(
        "foobar.com.zone",
        &format!(
            "{}$INCLUDE pipe\n",
            TEST_ZONE_HEAD.replace(" 7 7200", " 8 7200")
        ),
    );
    let skip = server.stderr().len();
    server.signal(libc::SIGHUP);
    server.wait_for_log("not a regular file", skip);
    // The last good zone is still served, and shutdown is prompt.
    assert_alive(&mut server);
    let reply = ask_udp(server.dns_addr(), &query("foobar.com.", RecordType::SOA));
    assert!(
        reply.answers[0].data.to_string().contains(" 7 "),
        "{reply:?}"
    );
    let status = server.terminate();
    assert!(status.success(), "{status:?}\n{}", server.stderr());
}
