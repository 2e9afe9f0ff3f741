//! The database box on a full disk (needs root to mount a small tmpfs): writes
//! turn into clear 503s while reads go on, and writing resumes when space returns.

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

    let filler = fill(tmpfs.path());
    // Write until the database needs a page it cannot get (bounded).
    let mut refused = None;
    for i in 0..300 {
        let body = format!("while full {i} {}", "z".repeat(1900));
        let r = post(&server, &body);
        if r.status == 201 {
            acknowledged.insert(r.json()["id"].as_u64().unwrap(), body);
        } else {
            refused = Some(r);
            break;
        }
    }
    let mut findings = Vec::new();
    let refused = refused.expect("300 large posts on a full disk were all accepted");
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
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let resumed = loop {
        let r = post(&server, "after space returned");
        if r.status == 201 {
            acknowledged.insert(
                r.json()["id"].as_u64().unwrap(),
                "after space returned".into(),
            );
            break None;
        }
        if Instant::now() > deadline {
            break Some(format!("{} {}", r.status, r.text()));
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    if let Some(last) = resumed {
        findings.push(format!("writes did not resume once space returned: {last}"));
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
