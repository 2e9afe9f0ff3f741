//! Proves the database box keeps its promises under abuse (issue 7, data): many
//! `kill -9`s at random moments lose no acknowledged post and leave a file redb's
//! integrity check passes; a full disk turns writes into clear 503s while reads go
//! on and writing resumes; a damaged file is refused by name, untouched, no panic.

use crate::harness::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    server: &Onebox,
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

#[test]
fn random_kill_9s_lose_no_acknowledged_post_and_leave_a_sound_file() {
    let dir = TempDir::new("harden-kill9");
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
        let server = Onebox::start_unthrottled_on(&dir);
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
        std::thread::sleep(Duration::from_millis(rng.below(400) as u64));
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
    let server = Onebox::start_unthrottled_on(&dir);
    assert_posts_kept(&server, &acknowledged, &format!("(seed {seed})"));
    let on_disk = all_posts(&server).len();
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    assert!(redb_integrity(&file), "integrity after the last clean stop");
    eprintln!(
        "kill -9: {kills} kills survived, {} acknowledged posts verified exact ({} on disk), \
         {checked_by_redb} crashed files checked by redb's check_integrity, {:?}",
        acknowledged.len(),
        on_disk,
        started.elapsed()
    );
    assert!(
        kills >= 8 && acknowledged.len() >= 50,
        "too little exercised: {kills} kills"
    );
}

/// A real database with a few posts, stopped cleanly; returns its data folder.
fn a_real_database(tag: &str) -> TempDir {
    let (dir, server) = Onebox::start_unthrottled_fresh(tag);
    let token = user_token(&server, "ann");
    for i in 0..50 {
        let body =
            serde_json::json!({ "body": format!("post {i} {}", "y".repeat(500)) }).to_string();
        let r = post_as(&server, &token, &body);
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
        match Onebox::try_start(&["--data", dir.to_str().unwrap()], &[]) {
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
    }
    eprintln!("{report}");
}
