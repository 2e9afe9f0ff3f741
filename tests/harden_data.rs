//! Proves the database box keeps its promises under abuse (issue 7, data): many
//! `kill -9`s at random moments lose no acknowledged post and leave a file redb's
//! integrity check passes; a full disk turns writes into clear 503s while reads go
//! on and writing resumes; a damaged file is refused by name, untouched, no panic.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

mod common;
mod site_common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Tmpfs;
use site_common::{Server, api, http, temp_dir, user_token};

/// Every post on the server, by id: (author, body).
fn all_posts(server: &Server) -> BTreeMap<u64, (String, String)> {
    let mut out = BTreeMap::new();
    let mut path = "/api/v1/posts?limit=1000".to_string();
    loop {
        let r = api(server, "GET", &path, &[], "");
        assert_eq!(r.status, 200, "{}", r.text());
        let posts = r.json()["posts"].as_array().unwrap().clone();
        let Some(last) = posts.last() else { break };
        let last = last["id"].as_u64().unwrap();
        for p in posts {
            let id = p["id"].as_u64().unwrap();
            let value = (
                p["author"].as_str().unwrap().to_string(),
                p["body"].as_str().unwrap().to_string(),
            );
            assert!(out.insert(id, value).is_none(), "id {id} listed twice");
        }
        path = format!("/api/v1/posts?limit=1000&before={last}");
    }
    out
}

/// A post body that checks itself: its length and a checksum of the rest are in it.
fn body_for(round: u64, writer: u64, n: u64) -> String {
    let filler = "abcdefghij".repeat((n % 40) as usize);
    let text = format!("r{round} w{writer} n{n} {filler}");
    let sum: u32 = text.bytes().map(u32::from).sum();
    format!("{text} len={} sum={sum}", text.len())
}

/// The acknowledged (id, body) pairs, shared with the writer threads.
type Acks = Arc<Mutex<Vec<(u64, String)>>>;
/// A way to damage a database file's bytes.
type Damage = fn(&mut Vec<u8>);

/// Posts from `writers` threads until the server stops answering; returns the
/// acknowledged (id, body) pairs.
fn post_stream(
    server: &Server,
    token: &str,
    round: u64,
    writers: u64,
) -> (Acks, Vec<std::thread::JoinHandle<()>>) {
    let acks = Arc::new(Mutex::new(Vec::new()));
    let handles = (0..writers)
        .map(|w| {
            let (addr, auth, acks) = (server.http, format!("Bearer {token}"), acks.clone());
            std::thread::spawn(move || {
                for n in 0.. {
                    let body = body_for(round, w, n);
                    let json = serde_json::json!({ "body": body }).to_string();
                    let headers = [
                        ("Authorization", auth.as_str()),
                        ("Content-Type", "application/json"),
                    ];
                    match http(
                        addr,
                        "POST",
                        "/api/v1/posts",
                        "foobar.com",
                        &headers,
                        json.as_bytes(),
                    ) {
                        Ok(r) if r.status == 201 => {
                            let id = r.json()["id"].as_u64().unwrap();
                            acks.lock().unwrap().push((id, body));
                        }
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.text()),
                        Err(_) => return, // killed
                    }
                }
            })
        })
        .collect();
    (acks, handles)
}

/// xorshift, seeded from the clock and printed, so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Opens the file with redb itself (after a crash this runs redb's repair) and
/// runs its full integrity check: every checksum of every page.
fn redb_integrity(file: &Path) -> bool {
    let mut db = redb::Database::open(file)
        .unwrap_or_else(|e| panic!("redb cannot open {} after kill -9: {e}", file.display()));
    db.check_integrity()
        .unwrap_or_else(|e| panic!("check_integrity on {} failed: {e}", file.display()))
}

#[test]
fn random_kill_9s_lose_no_acknowledged_post_and_leave_a_sound_file() {
    let dir = temp_dir("harden-kill9");
    let file = dir.join("onebox.redb");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill -9 test seed {seed}");
    let mut rng = Rng(seed);
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut token = String::new();
    let (mut kills, mut checked_by_redb) = (0u32, 0u32);
    let started = Instant::now();
    const ROUNDS: u64 = 40;
    // Bounded in time as well as in rounds: a slow machine does fewer rounds.
    for round in 0..ROUNDS {
        if round >= 8 && started.elapsed() > Duration::from_secs(60) {
            break;
        }
        let server =
            Server::start_with(&["--data", dir.to_str().unwrap(), "--post-rate", "0"], &[]);
        let found = all_posts(&server);
        assert!(
            acknowledged.is_empty() || !found.is_empty(),
            "round {round}: the database came back empty (seed {seed})"
        );
        for (id, body) in &acknowledged {
            match found.get(id) {
                Some((author, got)) => {
                    assert_eq!(author, "writer", "post {id}");
                    assert_eq!(got, body, "post {id} changed (seed {seed})");
                }
                None => panic!("round {round}: acknowledged post {id} missing (seed {seed})"),
            }
        }
        // Whatever is there but was never acknowledged must still be whole.
        for (id, (_, body)) in &found {
            let (text, tail) = body.rsplit_once(" len=").expect("self-checking body");
            let (len, sum) = tail.split_once(" sum=").unwrap();
            assert_eq!(text.len().to_string(), len, "post {id} is torn: {body}");
            let expect: u32 = text.bytes().map(u32::from).sum();
            assert_eq!(expect.to_string(), sum, "post {id} is torn: {body}");
        }
        if round == 0 {
            token = user_token(&server, "writer");
        }
        let (acks, writers) = post_stream(&server, &token, round, 4);
        // Crash at a random moment: 0–400 ms after the stream started, so some
        // kills land in the first commits and others deep in a batch.
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        server.kill9();
        kills += 1;
        for w in writers {
            w.join().unwrap();
        }
        for (id, body) in acks.lock().unwrap().drain(..) {
            assert!(
                acknowledged.insert(id, body).is_none(),
                "id {id} acknowledged twice"
            );
        }
        // Every other round, redb itself opens (and repairs) the crashed file and
        // checks every checksum; the other rounds leave the repair to onebox.
        if round % 2 == 1 {
            assert!(
                redb_integrity(&file),
                "round {round}: integrity check failed (seed {seed})"
            );
            checked_by_redb += 1;
        }
    }
    let server = Server::start_with(&["--data", dir.to_str().unwrap(), "--post-rate", "0"], &[]);
    let found = all_posts(&server);
    for (id, body) in &acknowledged {
        assert_eq!(
            found.get(id).map(|(_, b)| b),
            Some(body),
            "post {id} (seed {seed})"
        );
    }
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    assert!(redb_integrity(&file), "integrity after the last clean stop");
    eprintln!(
        "kill -9: {kills} kills survived, {} acknowledged posts verified exact ({} on disk), \
         {checked_by_redb} crashed files checked by redb's check_integrity, {:?}",
        acknowledged.len(),
        found.len(),
        started.elapsed()
    );
    assert!(
        kills >= 8 && acknowledged.len() >= 50,
        "too little exercised: {kills} kills"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

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
    let tmpfs = Tmpfs::mount("8m");
    let data = tmpfs.path().join("data");
    let server = Server::start_with(&["--data", data.to_str().unwrap(), "--post-rate", "0"], &[]);
    let token = user_token(&server, "filler");
    let auth = format!("Bearer {token}");
    let post = |server: &Server, body: &str| {
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
    let found = all_posts(&server);
    for (id, body) in &acknowledged {
        assert_eq!(
            found.get(id).map(|(_, b)| b),
            Some(body),
            "post {id} while full"
        );
    }
    let page = http(server.http, "GET", "/", "foobar.com", &[], b"").unwrap();
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
    let server = Server::start_with(&["--data", data.to_str().unwrap(), "--post-rate", "0"], &[]);
    let found = all_posts(&server);
    for (id, body) in &acknowledged {
        assert_eq!(
            found.get(id).map(|(_, b)| b),
            Some(body),
            "post {id} after restart"
        );
    }
    drop(server);
    assert!(redb_integrity(&data.join("onebox.redb")));
    assert!(findings.is_empty(), "{}", findings.join("\n"));
}

/// A real database with a few posts, stopped cleanly; returns its data folder.
fn a_real_database(tag: &str) -> std::path::PathBuf {
    let dir = temp_dir(tag);
    let server = Server::start_with(&["--data", dir.to_str().unwrap(), "--post-rate", "0"], &[]);
    let token = user_token(&server, "ann");
    for i in 0..50 {
        let body =
            serde_json::json!({ "body": format!("post {i} {}", "y".repeat(500)) }).to_string();
        let r = api(
            &server,
            "POST",
            "/api/v1/posts",
            &[("Authorization", &format!("Bearer {token}"))],
            &body,
        );
        assert_eq!(r.status, 201);
    }
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    dir
}

#[test]
fn a_damaged_database_file_is_refused_by_name_untouched_without_a_panic() {
    let damages: [(&str, Damage); 4] = [
        ("truncated to half", |b| b.truncate(b.len() / 2)),
        ("header overwritten", |b| b[9..512].fill(0x5A)),
        ("zeroed after the magic", |b| b[9..].fill(0)),
        ("garbage after the magic", |b| {
            for (i, x) in b[9..].iter_mut().enumerate() {
                *x = (i * 31 % 251) as u8;
            }
        }),
    ];
    let mut report = String::new();
    for (name, damage) in damages {
        let dir = a_real_database("harden-damaged");
        let file = dir.join("onebox.redb");
        let mut bytes = std::fs::read(&file).unwrap();
        damage(&mut bytes);
        std::fs::write(&file, &bytes).unwrap();
        match Server::try_start(&["--data", dir.to_str().unwrap()], &[]) {
            Ok(server) => {
                // redb may recover from its second commit slot; then no post may be
                // lost or changed, and nothing may have come back empty.
                let r = api(&server, "GET", "/api/v1/posts?limit=1000", &[], "");
                let count = if r.status == 200 {
                    r.json()["posts"].as_array().map_or(0, Vec::len)
                } else {
                    0
                };
                report.push_str(&format!(
                    "{name}: started, GET posts {} with {count} posts\n",
                    r.status
                ));
                assert_eq!(
                    count, 50,
                    "{name}: started on a damaged file and lost data:\n{report}"
                );
            }
            Err(stderr) => {
                report.push_str(&format!(
                    "{name}: refused: {}\n",
                    stderr.lines().last().unwrap_or("")
                ));
                assert!(!stderr.contains("panicked"), "{name}: panic:\n{stderr}");
                assert!(
                    stderr.contains(&file.display().to_string()),
                    "{name}: the error does not name the file:\n{stderr}"
                );
                assert_eq!(
                    std::fs::read(&file).unwrap(),
                    bytes,
                    "{name}: the refused file was modified"
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{report}");
}
