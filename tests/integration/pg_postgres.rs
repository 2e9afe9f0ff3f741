//! PostgreSQL as onebox's database (`--db postgres://…`), each test on a private
//! throwaway cluster: the server stopped and started again under a running
//! onebox, reads served by a synchronous streaming replica while the primary is
//! stopped and writes resumed once it is promoted (a two-host URL),
//! post ids under concurrent writers, a schema from the future, and
//! `onebox db migrate` round trips. The site suites themselves run on PostgreSQL
//! through `ONEBOX_TEST_DB` (see harness/postgres.rs), not here.

use crate::harness::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A onebox on `url`, unthrottled so tests can post quickly.
fn onebox_on(url: &str) -> Onebox {
    Onebox::spawn()
        .args(["--db", url, "--post-rate", "0"])
        .start()
}

/// A fresh PostgreSQL, onebox on a database of it, and a signed-in user's token.
fn site_on_postgres() -> (PgCluster, Onebox, String) {
    let pg = PgCluster::start();
    let server = onebox_on(&pg.create_db("site"));
    let token = user_token(&server, "ann");
    (pg, server, token)
}

/// [`post_as`] with the post's text `body`.
fn post(server: &Onebox, token: &str, body: &str) -> Response {
    post_as(
        server,
        token,
        &serde_json::json!({ "body": body }).to_string(),
    )
}

fn readyz(server: &Onebox) -> Response {
    http_get(server, "foobar.com", "/readyz")
}

#[test]
fn pg_stopped_database_gives_503_and_recovers_without_a_restart() {
    skip_unless!(require_postgres());
    let (pg, server, token) = site_on_postgres();
    assert_eq!(post(&server, &token, "before").status, 201);
    assert_eq!(readyz(&server).status, 200);

    pg.stop_server();
    // Writes fail fast and say when to come back; the request never hangs (the
    // bound is generous: onebox's own deadline is 5 s).
    let started = Instant::now();
    let r = post(&server, &token, "while down");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "no Retry-After");
    assert!(started.elapsed() < Duration::from_secs(20), "a write hung");
    let r = readyz(&server);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["db"], "failing");
    // The web server itself is fine.
    assert_eq!(health(server.http), Some(200));

    pg.start_server();
    wait_until("writes recover after PostgreSQL restarts", || {
        post(&server, &token, "after").status == 201
    });
    assert_eq!(readyz(&server).status, 200);
    let bodies: Vec<String> = all_posts(&server).into_values().map(|(_, b)| b).collect();
    assert_eq!(bodies.first().map(String::as_str), Some("before"));
    assert!(!bodies.iter().any(|b| b == "while down"), "{bodies:?}");
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
}

#[test]
fn pg_reads_survive_a_stopped_primary_and_writes_resume_after_promotion() {
    skip_unless!(require_postgres());
    let primary = PgCluster::start();
    primary.create_db("site");
    // Synchronous: every acknowledged post is on the replica before the 201.
    let replica = primary.synchronous_replica();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/site?target_session_attrs=read-write",
        primary.port, replica.port
    );
    let server = onebox_on(&url);
    let token = user_token(&server, "ann");
    let mut acknowledged = BTreeMap::new();
    for i in 0..5 {
        let r = post(&server, &token, &format!("on the primary {i}"));
        assert_eq!(r.status, 201, "{}", r.text());
        acknowledged.insert(
            r.json()["id"].as_u64().unwrap(),
            format!("on the primary {i}"),
        );
    }

    // No waiting for the replica to catch up: the commits already waited.
    primary.stop_server();
    // Reads go on, from the replica: the board, the API, a signed-in visitor.
    let home = http_get(&server, "www.foobar.com", "/");
    assert_eq!(home.status, 200, "{}", home.text());
    assert!(home.text().contains("on the primary 4"), "{}", home.text());
    assert_posts_kept(&server, &acknowledged, "with the primary stopped");
    let cookie = format!("onebox_session={token}");
    let signed_in = http_get_with(&server, "www.foobar.com", "/", &[("Cookie", &cookie)]);
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
    assert!(
        signed_in.text().contains(r#"action="/logout""#),
        "the session was read: {}",
        signed_in.text()
    );
    // Each page view also counts a visit, a write: it must not cost the replica a
    // connection attempt every time (learning, each time, that it is read-only).
    let sessions = || -> u64 {
        let sql = "SELECT sessions FROM pg_stat_database WHERE datname = 'site'";
        replica.psql("postgres", sql).parse().unwrap()
    };
    let before = sessions();
    for _ in 0..30 {
        assert_eq!(http_get(&server, "www.foobar.com", "/").status, 200);
    }
    // One per view without the pause on failed writes; with it, one a second
    // at most (the bound is generous: 30 views would have to take 20 s).
    let opened = sessions() - before;
    assert!(
        opened < 20,
        "30 page views opened {opened} sessions on the replica"
    );
    // Still ready: HAProxy keeps a node that serves reads.
    assert_eq!(readyz(&server).status, 200);
    // Writes fail with a time to come back, within onebox's 5 s database
    // deadline (the bound here is generous; the web server's own is 30 s).
    let started = Instant::now();
    let r = post(&server, &token, "while the primary is down");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some(), "no Retry-After");
    assert!(started.elapsed() < Duration::from_secs(10), "a write hung");

    replica.promote();
    let mut after = String::new();
    wait_until("writes resume on the promoted replica", || {
        let r = post(&server, &token, "after failover");
        after = r.text();
        r.status == 201
    });
    assert_eq!(readyz(&server).status, 200);
    assert_posts_kept(&server, &acknowledged, "after failover");
    let found = all_posts(&server);
    let newest = found
        .last_key_value()
        .map(|(id, (_, body))| (*id, body.clone()));
    assert_eq!(newest, Some((6, "after failover".to_string())), "{after}");
    assert!(
        !found
            .values()
            .any(|(_, b)| b == "while the primary is down"),
        "a refused write was stored: {found:?}"
    );
    drop(server);
}

#[test]
fn pg_post_ids_follow_commit_order_under_concurrent_writers() {
    skip_unless!(require_postgres());
    let (_pg, server, token) = site_on_postgres();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, token) = (server.http, token.clone());
            std::thread::spawn(move || {
                let mut ids = Vec::new();
                for n in 0..25 {
                    let body = serde_json::json!({ "body": format!("w{w} n{n}") }).to_string();
                    let r = try_post_as(addr, &token, &body).unwrap();
                    assert_eq!(r.status, 201, "{}", r.text());
                    ids.push(r.json()["id"].as_u64().unwrap());
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writers {
        let ids = w.join().unwrap();
        // Each writer's own posts get increasing ids: later commit, larger id.
        assert!(ids.windows(2).all(|p| p[0] < p[1]), "{ids:?}");
        all.extend(ids);
    }
    all.sort();
    // No gaps and no duplicates: exactly 1..=100.
    assert_eq!(all, (1..=100).collect::<Vec<u64>>());
    assert_eq!(all_posts(&server).len(), 100);
    drop(server);
}

#[test]
fn pg_a_newer_schema_is_refused_and_left_alone() {
    skip_unless!(require_postgres());
    let pg = PgCluster::start();
    let url = pg.create_db("site");
    drop(onebox_on(&url));
    pg.psql("site", "INSERT INTO onebox_schema (version) VALUES (99)");
    let failed = Onebox::spawn()
        .args(["--db", url.as_str()])
        .try_start()
        .expect_err("onebox must refuse a schema from the future");
    assert!(
        failed
            .stderr
            .contains("onebox schema 99, newer than this onebox knows"),
        "{}",
        failed.stderr
    );
    assert_eq!(
        pg.psql("site", "SELECT max(version) FROM onebox_schema"),
        "99"
    );
}

#[test]
fn pg_an_unreachable_database_stops_serve_with_a_clear_message() {
    // No PostgreSQL needed: nothing listens on this port.
    let url = format!("postgres://onebox:secret@127.0.0.1:{}/site", free_port());
    let failed = Onebox::spawn()
        .args(["--db", url.as_str()])
        .try_start()
        .expect_err("onebox must not start without its database");
    assert!(failed.stderr.contains("127.0.0.1"), "{}", failed.stderr);
    assert!(
        !failed.stderr.contains("secret"),
        "password leaked: {}",
        failed.stderr
    );
    let bad = Onebox::spawn()
        .args(["--db", "mysql://x"])
        .try_start()
        .expect_err("an unknown scheme is refused");
    assert!(bad.stderr.contains("unknown database"), "{}", bad.stderr);
}

/// The `sha256 …` checksums of a `db migrate` report, per table.
fn checksums(report: &str) -> Vec<(String, String)> {
    report
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let sum = words.iter().position(|w| *w == "sha256")?;
            Some((words[0].to_string(), words[sum + 1].to_string()))
        })
        .collect()
}

#[test]
fn pg_db_migrate_round_trips_redb_to_postgres_and_back() {
    skip_unless!(require_postgres());
    let pg = PgCluster::start();
    let url = pg.create_db("site");
    let first = TempDir::new("migrate-a");
    let server = Onebox::spawn()
        .data(&first)
        .args(["--post-rate", "0"])
        .start();
    let token = user_token(&server, "ann");
    user_token(&server, "bob");
    for i in 0..7 {
        assert_eq!(post(&server, &token, &format!("post {i} ✓")).status, 201);
    }
    http_get(&server, "foobar.com", "/");
    http_get(&server, "www.foobar.com", "/");
    let before = all_posts(&server);
    assert!(server.stop().0);

    let redb = format!("redb:{}", first.display());
    let (status, out, err) = run_onebox(&["db", "migrate", "--from", &redb, "--to", &url], None);
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("verified"), "{out}");
    let there = checksums(&out);
    assert_eq!(there.len(), 4, "{out}");

    // A second copy into the now non-empty target is refused, unless forced.
    let (status, out2, err2) = run_onebox(&["db", "migrate", "--from", &redb, "--to", &url], None);
    assert!(!status.success(), "{out2}");
    assert!(err2.contains("already has data"), "{err2}");
    let (status, out2, err2) = run_onebox(
        &["db", "migrate", "--from", &redb, "--to", &url, "--force"],
        None,
    );
    assert!(status.success(), "{out2}\n{err2}");

    // The site runs on the copy: same posts, the session still works.
    let server = onebox_on(&url);
    assert_eq!(all_posts(&server), before);
    assert_eq!(post(&server, &token, "on postgres").status, 201);
    assert!(server.stop().0);

    let second = TempDir::new("migrate-b");
    let back = format!("redb:{}", second.display());
    let (status, out3, err3) = run_onebox(&["db", "migrate", "--from", &url, "--to", &back], None);
    assert!(status.success(), "{out3}\n{err3}");
    // PostgreSQL → redb gives what redb → PostgreSQL verified, plus the one new post.
    let back_sums = checksums(&out3);
    for table in ["users", "sessions", "counters"] {
        let a = there.iter().find(|(t, _)| t == table);
        let b = back_sums.iter().find(|(t, _)| t == table);
        assert_eq!(a, b, "{table}:\n{out}\n{out3}");
    }
    let server = Onebox::spawn().data(&second).start();
    let mut want = before.clone();
    want.insert(8, ("ann".to_string(), "on postgres".to_string()));
    assert_eq!(all_posts(&server), want);
    drop(server);
}

#[test]
fn pg_sslmode_require_goes_through_rustls_and_verifies_the_server() {
    skip_unless!(require_postgres(), require_tool("openssl", "openssl"));
    let pg = PgCluster::start();
    pg.create_db("site");
    let ca = TestCa::new();
    let (cert, key) = ca.issue(&["localhost"]);
    pg.require_tls(&cert, &key);
    let base = format!("postgres://postgres@localhost:{}/site", pg.port);
    let ca_file = ca.cert_path().display().to_string();

    let tls = format!("{base}?sslmode=require");
    let server = Onebox::spawn()
        .args(["--db", tls.as_str()])
        .env("PGSSLROOTCERT", &ca_file)
        .start();
    let token = user_token(&server, "ann");
    assert_eq!(post(&server, &token, "over TLS").status, 201);
    drop(server);

    // The server takes TLS connections only: without sslmode=require onebox
    // cannot connect, so the run above really went through TLS.
    let plain = Onebox::spawn()
        .args(["--db", base.as_str()])
        .env("PGSSLROOTCERT", &ca_file)
        .try_start()
        .expect_err("a plain connection must be refused");
    assert!(plain.stderr.contains("no encryption"), "{}", plain.stderr);
    // And the certificate is verified: a CA that did not sign it is refused.
    let other = TestCa::new();
    let untrusted = Onebox::spawn()
        .args(["--db", tls.as_str()])
        .env("PGSSLROOTCERT", other.cert_path().display().to_string())
        .try_start()
        .expect_err("an unverified server must be refused");
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
}
