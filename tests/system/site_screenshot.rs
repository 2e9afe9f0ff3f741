//! Proves the home page renders as a real page in a real browser: headless
//! Chromium loads it (CSS, favicon and diagram included) and a screenshot is saved
//! to `test-artifacts/home.png` for the README.
//!
//! Chromium cannot send a made-up `Host` for a bare IP, so this test maps
//! `www.foobar.com` to 127.0.0.1 with `--host-resolver-rules`. That is only for the
//! picture: resolving the name through our own DNS is the browser end-to-end test's job.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;
use std::path::PathBuf;
use std::process::Command;

fn chromium(args: &[String]) -> std::process::Output {
    let profile = TempDir::new("chromium-profile");
    let out = Command::new("timeout")
        .arg("90")
        .arg("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-features=HttpsUpgrades",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium is installed (apt-get install chromium)");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

#[test]
fn home_page_renders_in_chromium_and_is_saved_as_a_screenshot() {
    skip_unless!(require_tool("chromium", "chromium"));
    let server = Onebox::start();
    let seed = [
        (
            "ada",
            "Hello, board! This whole site (DNS, web server, app and database) runs in one process.",
        ),
        (
            "grace",
            "dig www.foobar.com gives a CNAME to foobar.com, then the A record: names first, addresses last.",
        ),
        (
            "ada",
            "<script>alert('hi')</script> stays plain text: templates escape by default.",
        ),
        (
            "grace",
            "kill -9 the server mid-post: every acknowledged post is still here after the restart.",
        ),
    ];
    let mut tokens = std::collections::HashMap::new();
    for (user, body) in seed {
        let token = tokens
            .entry(user)
            .or_insert_with(|| user_token(&server, user))
            .clone();
        let r = post_as(
            &server,
            &token,
            &serde_json::json!({ "body": body }).to_string(),
        );
        assert_eq!(r.status, 201);
    }
    let url = format!("http://www.foobar.com:{}/", server.http.port());
    let rules = "--host-resolver-rules=MAP www.foobar.com 127.0.0.1".to_string();

    // The DOM Chromium built: our page, with the hostile post as text.
    let dom = chromium(&[rules.clone(), "--dump-dom".into(), url.clone()]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_contains_all(
        &dom,
        &[
            "How this page reached you",
            "You asked for <code>www.foobar.com</code>",
            "&lt;script&gt;alert('hi')&lt;/script&gt;",
        ],
    );

    let artifacts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    for (name, size) in [("home.png", "1000,900"), ("home-phone.png", "390,844")] {
        let shot = artifacts.join(name);
        let _ = std::fs::remove_file(&shot);
        // Chromium exits 0 even when the page fails: check the file, not the status.
        let out = chromium(&[
            rules.clone(),
            format!("--window-size={size}"),
            format!("--screenshot={}", shot.display()),
            url.clone(),
        ]);
        let png = std::fs::read(&shot)
            .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&out.stderr)));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(png.len() > 20_000, "a real page is not a blank image");
    }
    // The browser fetched the stylesheet and images through our static layer.
    let (_, log) = server.stop();
    for path in ["/static/site.css", "/favicon.svg", "/static/stack.svg"] {
        assert!(log.contains(path), "{path} not requested: {log}");
    }
}
