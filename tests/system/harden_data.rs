//! The database box on a full disk (needs root to mount a small tmpfs): writes
//! turn into clear 503s while reads go on, and writing resumes when space returns.
//! That holds for posts, for a concurrent burst of them (RSS measured), and for
//! the zone journal: a record change that cannot be journaled is 503 on the
//! fixture API and SERVFAIL on UPDATE, never a 409, and nothing is applied.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Fills the file system at `dir` with a filler file; returns its path.
fn fill(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0xAAu8; 64 * 1024];
    loop {
        if file.write_all(&block).is_err() {
            break;
        }
    }
    // The last partial block may have left a few bytes free; take them too.
    while file.write_all(&[0u8]).is_ok() {}
    path
}

/// Fills the disk, then makes writes with `write(i)` until one is refused: redb
/// may still find free pages inside its file, so a full disk is only proven by
/// a write that fails (bounded: 300 tries). Returns the filler, how many writes
/// were still accepted, and the refusal.
fn fill_until_refused(
    dir: &Path,
    accepted: u16,
    mut write: impl FnMut(usize) -> Response,
) -> (std::path::PathBuf, usize, Response) {
    let filler = fill(dir);
    for i in 0..300 {
        let r = write(i);
        if r.status != accepted {
            return (filler, i, r);
        }
    }
    panic!("300 writes on a full disk were all accepted");
}

/// Frees the disk (removes `filler`), then retries `write` until it is
/// accepted (bounded: 15 s); the last refusal when it never is.
fn free_and_retry(
    filler: &Path,
    accepted: u16,
    mut write: impl FnMut() -> Response,
) -> Result<Response, String> {
    std::fs::remove_file(filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = write();
        if r.status == accepted {
            return Ok(r);
        }
        if Instant::now() > deadline {
            return Err(format!("{} {}", r.status, r.text()));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_full_disk_answers_503_keeps_reads_and_resumes_when_space_returns() {
    skip_unless!(require_root(), require_tool("mount", "mount"));
    let tmpfs = Tmpfs::mount("8m");
    let data = tmpfs.path().join("data");
    let server = Onebox::start_unthrottled_on(&data);
    let token = user_token(&server, "filler");
    let auth = format!("Bearer {token}");
    let post = |server: &Onebox, body: &str| {
        let json = serde_json::json!({ "body": body }).to_string();
        api(
            server,
            "POST",
            "/api/v1/posts",
            &[("Authorization", &auth)],
            &json,
        )
    };
    let mut acknowledged = BTreeMap::new();
    for i in 0..20 {
        let body = format!("before full {i}");
        let r = post(&server, &body);
        assert_eq!(r.status, 201, "{}", r.text());
        acknowledged.insert(r.json()["id"].as_u64().unwrap(), body);
    }

    // Write until the database needs a page it cannot get (bounded).
    let (filler, _, refused) = fill_until_refused(tmpfs.path(), 201, |i| {
        let body = format!("while full {i} {}", "z".repeat(1900));
        let r = post(&server, &body);
        if r.status == 201 {
            acknowledged.insert(r.json()["id"].as_u64().unwrap(), body);
        }
        r
    });
    let mut findings = Vec::new();
    eprintln!(
        "write on a full disk: {} {}",
        refused.status,
        refused.text()
    );
    if refused.status != 503 {
        findings.push(format!(
            "write on a full disk got {}, want 503: {}",
            refused.status,
            refused.text()
        ));
    }
    let error = refused.json()["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if !(error.contains("disk") || error.contains("space")) {
        findings.push(format!(
            "the error does not say the disk is full: {error:?}"
        ));
    }
    // Reads keep working and see everything acknowledged.
    assert_posts_kept(&server, &acknowledged, "while full");
    let page = http_get(&server, "foobar.com", "/");
    if page.status != 200 {
        findings.push(format!("GET / on a full disk got {}", page.status));
    }

    // Space returns: writing resumes without a restart (bounded wait).
    match free_and_retry(&filler, 201, || post(&server, "after space returned")) {
        Ok(r) => {
            acknowledged.insert(
                r.json()["id"].as_u64().unwrap(),
                "after space returned".into(),
            );
        }
        Err(last) => findings.push(format!("writes did not resume once space returned: {last}")),
    }

    // Nothing was corrupted: a restart sees every acknowledged post.
    let (_, log) = server.stop();
    assert!(!log.contains("panicked"), "{log}");
    let server = Onebox::start_unthrottled_on(&data);
    assert_posts_kept(&server, &acknowledged, "after restart");
    drop(server);
    assert!(redb_integrity(&data.join("onebox.redb")));
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

/// The writer checks free space once per batch, before its commit: a burst of
/// concurrent posters on a full disk must each get 503 + Retry-After (never a
/// 500, never a hang), memory must stay bounded, and posts are accepted again
/// once space returns.
#[test]
fn a_burst_of_posts_on_a_full_disk_all_get_503_and_memory_stays_bounded() {
    skip_unless!(require_root(), require_tool("mount", "mount"));
    const CLIENTS: usize = 16;
    const EACH: usize = 20;
    let tmpfs = Tmpfs::mount("8m");
    let data = tmpfs.path().join("data");
    let server = Onebox::start_unthrottled_on(&data);
    let token = user_token(&server, "burster");
    let post = |body: &str| {
        post_as(
            &server,
            &token,
            &serde_json::json!({ "body": body }).to_string(),
        )
    };
    let (filler, _, refused) = fill_until_refused(tmpfs.path(), 201, |i| {
        post(&format!("fill {i} {}", "z".repeat(1900)))
    });
    assert_eq!(refused.status, 503, "{}", refused.text());

    let before = server.rss_kib();
    let mut peak = PeakRss::watch(server.pid, Duration::from_millis(20));
    let answers = burst(CLIENTS, EACH, |client, i| {
        let r = post(&format!("burst {client}-{i} {}", "y".repeat(1900)));
        let retry = r.header("Retry-After").map(str::to_string);
        (r.status, retry, r.text())
    });
    let peak = peak.stop();
    assert_eq!(answers.len(), CLIENTS * EACH);
    let wrong: Vec<_> = answers
        .iter()
        .filter(|(status, retry, _)| *status != 503 || retry.is_none())
        .collect();
    assert!(
        wrong.is_empty(),
        "want 503 + Retry-After for all: {wrong:?}"
    );
    assert!(
        peak < before + 64 * 1024,
        "RSS rose from {before} KiB to a peak of {peak} KiB under the burst"
    );

    let resumed = free_and_retry(&filler, 201, || post("after the burst"));
    assert!(
        resumed.is_ok(),
        "posts not accepted once space returned: {resumed:?}"
    );
    let (_, log) = server.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// A record change the journal cannot write (the disk is full) is 503 with
/// Retry-After and a JSON error on the fixture API, SERVFAIL on UPDATE, and is
/// not applied; once space returns, changes go through again.
#[test]
fn a_full_disk_makes_record_changes_503_and_servfail_and_applies_nothing() {
    skip_unless!(
        require_root(),
        require_tool("mount", "mount"),
        nsupdate_tools()
    );
    let tmpfs = Tmpfs::mount("8m");
    let zones = test_zones("");
    let server = Onebox::spawn()
        .zones(&zones)
        .data(tmpfs.path().join("data"))
        .args(["--update-rate", "0"])
        .start();
    let serial = server.soa_serial("foobar.com");
    let before = server.rss_kib();
    let add = |name: &str| {
        let body = serde_json::json!({ "name": name, "type": "TXT", "value": "z".repeat(250) });
        server.records_api("POST", &body.to_string())
    };
    let (filler, applied, refused) =
        fill_until_refused(tmpfs.path(), 200, |i| add(&format!("f{i}.foobar.com")));
    eprintln!(
        "record change on a full disk: {} {}",
        refused.status,
        refused.text()
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.header("Retry-After").is_some(),
        "{:?}",
        refused.headers
    );
    assert_contains(
        refused.json()["error"].as_str().unwrap_or_default(),
        "journal",
    );
    // The refused change is not served, and the serial counts only those applied.
    let refused_name = format!("f{applied}.foobar.com");
    assert!(
        server
            .dig(&[&refused_name, "TXT"])
            .answers_of("TXT")
            .is_empty()
    );
    assert_eq!(server.soa_serial("foobar.com"), serial + applied as u32);
    // UPDATE: SERVFAIL, and nothing applied either.
    let (_, out) = server.nsupdate_signed(&["update add full.foobar.com 60 A 192.0.2.9"]);
    assert_contains(&out, "SERVFAIL");
    assert!(server.dig_a("full.foobar.com").is_empty());
    assert_eq!(server.soa_serial("foobar.com"), serial + applied as u32);
    assert!(server.rss_kib() < before + 32 * 1024);

    let resumed = free_and_retry(&filler, 200, || add("after.foobar.com"));
    assert!(
        resumed.is_ok(),
        "changes not accepted once space returned: {resumed:?}"
    );
    server.nsupdate_ok("update add full.foobar.com 60 A 192.0.2.9");
    assert_eq!(server.dig_a("full.foobar.com"), ["192.0.2.9"]);
}
