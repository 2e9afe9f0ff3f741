//! Proves the database box's promises on the real binary and real redb files:
//! data survives restarts, every acknowledged post survives `kill -9`, one data
//! folder has one owner, foreign files are refused, and SIGTERM lets a request in
//! flight finish before the database closes.

use crate::harness::*;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn everything_survives_a_restart() {
    let (dir, server) = Onebox::start_unthrottled_fresh("restart");
    assert_eq!(server.ready["data"], dir.to_str().unwrap());
    let token = user_token(&server, "ann");
    for i in 0..3 {
        let r = post_as(&server, &token, &format!(r#"{{"body":"kept {i}"}}"#));
        assert_eq!(r.status, 201);
    }
    http_get(&server, "foobar.com", "/");
    let before = all_posts(&server);
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    // On redb the file holds everything; on PostgreSQL it holds only the DNS
    // journal (the PostgreSQL schema has no journal yet), so it is there too.
    assert!(dir.join("onebox.redb").is_file());

    let server = Onebox::start_unthrottled_on(&dir);
    assert_eq!(all_posts(&server), before);
    // The session and the account are still there.
    let r = post_as(&server, &token, r#"{"body":"after restart"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let creds = r#"{"username":"ann","password":"ann-password"}"#;
    login(&server, creds);
    let page = http_get(&server, "foobar.com", "/").text();
    assert_contains(&page, "visited <strong>2</strong> times");
    drop(server);
}

#[test]
fn kill_9_during_a_stream_of_posts_loses_no_acknowledged_post() {
    let dir = TempDir::new("kill9");
    let mut acknowledged: BTreeMap<u64, String> = BTreeMap::new();
    let mut token = String::new();
    for round in 0..3u64 {
        let server = Onebox::start_unthrottled_on(&dir);
        let found = all_posts(&server);
        // Every post acknowledged before the last crash is here, exactly.
        for (id, body) in &acknowledged {
            match found.get(id) {
                Some((author, got)) => {
                    assert_eq!(author, "writer");
                    assert_eq!(got, body, "post {id} changed");
                }
                None => panic!("round {round}: acknowledged post {id} is missing after kill -9"),
            }
        }
        if round == 0 {
            token = user_token(&server, "writer");
        }
        // Four writers post as fast as they can; each records what got a 201.
        let acks = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (addr, token, acks) = (server.http, token.clone(), acks.clone());
                std::thread::spawn(move || {
                    for n in 0.. {
                        let body =
                            format!("round {round} writer {w} post {n} {}", "x".repeat(n % 50));
                        let json = serde_json::json!({ "body": body }).to_string();
                        let r = try_post_as(addr, &token, &json);
                        match r {
                            Ok(r) if r.status == 201 => {
                                let id = r.json()["id"].as_u64().unwrap();
                                acks.lock().unwrap().push((id, body));
                            }
                            Ok(r) => panic!("unexpected {}: {}", r.status, r.text()),
                            Err(_) => return, // the server is gone
                        }
                    }
                })
            })
            .collect();
        // Let a stream build up, then crash mid-stream.
        let deadline = Instant::now() + Duration::from_secs(20);
        while acks.lock().unwrap().len() < 50 + 40 * round as usize && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        server.kill9();
        for w in writers {
            w.join().unwrap();
        }
        let acks = acks.lock().unwrap().clone();
        assert!(
            acks.len() >= 50,
            "round {round}: only {} posts acknowledged",
            acks.len()
        );
        for (id, body) in acks {
            assert!(
                acknowledged.insert(id, body).is_none(),
                "id {id} acknowledged twice"
            );
        }
    }
    let server = Onebox::start_unthrottled_on(&dir);
    assert_posts_kept(&server, &acknowledged, "after the last kill -9");
    drop(server);
}

#[test]
fn a_second_onebox_on_the_same_data_dir_is_refused_by_pid() {
    // On PostgreSQL several nodes sharing one database is the point.
    skip_unless!(redb_only());
    let (dir, first) = Onebox::start_unthrottled_fresh("inuse");
    let err = Onebox::try_start(&["--data", dir.to_str().unwrap()], &[])
        .expect_err("second server must not start");
    let expected = format!("data dir {} in use by pid {}", dir.display(), first.pid);
    assert_contains(&err, &expected);
    assert!(!err.contains("panicked"), "{err}");
    // After the first one is killed, the folder is free again: the lock died with it.
    first.kill9();
    let again = Onebox::start_unthrottled_on(&dir);
    drop(again);
}

#[test]
fn a_foreign_file_is_refused_clearly() {
    skip_unless!(redb_only());
    let dir = TempDir::new("foreign");
    std::fs::write(dir.join("onebox.redb"), b"SQLite format 3\0 and more bytes").unwrap();
    let err = Onebox::try_start(&["--data", dir.to_str().unwrap()], &[])
        .expect_err("must not start on a foreign file");
    assert_contains(&err, "is not a onebox database");
}

#[test]
fn sigterm_lets_a_request_in_flight_finish_then_closes_the_database() {
    let (dir, server) = Onebox::start_unthrottled_fresh("drain");
    let body = br#"{"username":"late","password":"correct horse"}"#;
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /api/v1/users HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..10]).unwrap();
    // The request is now in flight (its body half sent). Stop the server.
    std::thread::sleep(Duration::from_millis(200));
    server.signal(libc::SIGTERM);
    // New connections stop being accepted (bounded wait).
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(server.http).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    stream.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    let drained = log.find("http: all connections closed").expect(&log);
    let closed = log.find("db: closed").expect(&log);
    assert!(drained < closed, "the database closes last: {log}");
    // And the late registration was committed.
    let server = Onebox::start_unthrottled_on(&dir);
    let creds = r#"{"username":"late","password":"correct horse"}"#;
    login(&server, creds);
    drop(server);
}

#[test]
fn a_file_from_a_newer_onebox_is_refused_clearly() {
    // PostgreSQL's counterpart: pg_postgres::pg_a_newer_schema_is_refused_and_left_alone.
    skip_unless!(redb_only());
    let (dir, server) = Onebox::start_unthrottled_fresh("newer");
    assert_eq!(http_get(&server, "foobar.com", "/healthz").status, 200);
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    // Pretend a future onebox wrote this file: bump the schema version in `meta`.
    {
        let db = redb::Database::open(dir.join("onebox.redb")).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(redb::TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("schema", 99u64.to_le_bytes().as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    let err = Onebox::try_start(&["--data", dir.to_str().unwrap()], &[])
        .expect_err("must not start on a newer file");
    assert_contains(&err, "was written by a newer onebox (schema 99)");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn every_counted_visit_survives_kill_9_right_after_its_page() {
    // The page says the counter was committed before it was sent: concurrent
    // views share commits, and a crash the moment the last page arrives loses none.
    let dir = TempDir::new("visits");
    let server = Onebox::start_on(&dir);
    let seen: Vec<u64> = (0..8)
        .map(|_| {
            let addr = server.http;
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        let r = http(addr, "GET", "/", "foobar.com", &[], b"").unwrap();
                        assert_eq!(r.status, 200);
                        visits_on(&r.text())
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    server.kill9();
    // Each view got its own number: none was counted twice or skipped.
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=80).collect::<Vec<u64>>());
    let server = Onebox::start_on(&dir);
    let page = http_get(&server, "foobar.com", "/").text();
    assert_eq!(visits_on(&page), 81, "{page}");
}
