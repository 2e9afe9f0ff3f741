//! `serve --update-rate N`: each key (the TSIG key for UPDATE, `api` for the
//! fixture API) applies at most a bucket of N changes, refilled at N per second;
//! beyond it UPDATE gets REFUSED (with a log line) and the API 429 + Retry-After,
//! and nothing refused is applied. A zone holds at most 100,000 records (UPDATE
//! REFUSED, the API 409). The journal keeps at most 1,000 entries per zone,
//! folding the oldest into its base. Bursts are concurrent, RSS measured.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::*;

const RATE: u32 = 5;

#[test]
fn dyn_update_rate_refuses_a_concurrent_burst_beyond_the_bucket() {
    skip_unless!(nsupdate_tools());
    let (_zones, server) = onebox_on_test_zones(&["--update-rate", &RATE.to_string()]);
    let before = server.rss_kib();

    // 8 clients × 5 API changes at once: 40 against a bucket of 5.
    let started = Instant::now();
    let answers: Vec<(u16, Option<String>)> = api_burst(&server, 8, 5, 'b')
        .into_iter()
        .map(|r| (r.status, r.header("Retry-After").map(str::to_string)))
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<_> = answers.iter().filter(|(s, _)| *s == 429).collect();
    assert_eq!(ok + limited.len(), 40, "{answers:?}");
    assert!(ok >= RATE as usize, "the bucket's {RATE} pass: {answers:?}");
    let most = RATE as f64 * (1.0 + elapsed) + 1.0;
    assert!(
        (ok as f64) <= most,
        "{ok} passed in {elapsed:.1} s, at most {most}"
    );
    assert!(
        limited.iter().all(|(_, retry)| retry.is_some()),
        "{limited:?}"
    );
    // Exactly the accepted changes were applied: one serial each.
    assert_eq!(server.soa_serial("foobar.com"), 7 + ok as u32);

    // UPDATE has its own bucket (the TSIG key's): 20 messages in one nsupdate
    // run, back to back; those past the bucket are REFUSED and change nothing.
    let serial = server.soa_serial("foobar.com");
    let messages: Vec<Vec<String>> = (0..20)
        .map(|i| vec![format!("update add u{i}.foobar.com 60 A 192.0.2.2")])
        .collect();
    let started = Instant::now();
    let (_, out) = server.nsupdate_messages(&messages);
    let elapsed = started.elapsed().as_secs_f64();
    assert!(out.contains("REFUSED"), "{out}");
    let applied = server.soa_serial("foobar.com") - serial;
    assert!(applied >= 1, "{out}");
    let most = RATE as f64 * (1.0 + elapsed) + 1.0;
    assert!(
        f64::from(applied) <= most,
        "{applied} applied in {elapsed:.1} s: {out}"
    );
    assert!(
        server.stderr().contains("over the key's rate"),
        "{}",
        server.stderr()
    );

    let after = server.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

/// `clients` threads at once, each adding `each` A records through the fixture
/// API (named `{first}{client}-{i}.foobar.com`); every response.
fn api_burst(server: &Onebox, clients: usize, each: usize, first: char) -> Vec<Response> {
    burst(clients, each, |client, i| {
        let body = format!(
            r#"{{"name":"{first}{client}-{i}.foobar.com","type":"A","value":"192.0.2.1"}}"#
        );
        server.records_api("POST", &body)
    })
}

/// The record lines of an IXFR answer (dig prints a transfer without sections).
fn transfer(server: &Onebox, serial: u32) -> Vec<DigRecord> {
    axfr_records(
        &server
            .dig(&[&format!("IXFR={serial}"), "foobar.com"])
            .stdout,
    )
}

#[test]
fn dyn_journal_folds_its_oldest_entries_past_1000_and_ixfr_falls_back() {
    skip_unless!(nsupdate_tools());
    let (zones, data) = (test_zones(""), TempDir::new("data"));
    let server = Onebox::spawn()
        .zones(&zones)
        .data(data.path())
        .args(["--update-rate", "0", "--allow-transfer", "127.0.0.0/8"])
        .start();
    let before = server.rss_kib();
    // 1,100 updates of one name, four nsupdate clients at once.
    std::thread::scope(|scope| {
        for client in 0..4 {
            let server = &server;
            scope.spawn(move || {
                let messages: Vec<Vec<String>> = (0..275)
                    .map(|i| {
                        vec![
                            format!("update delete c{client}.foobar.com A"),
                            format!(
                                "update add c{client}.foobar.com 60 A 192.0.2.{}",
                                i % 250 + 1
                            ),
                        ]
                    })
                    .collect();
                let (code, out) = server.nsupdate_messages(&messages);
                assert_eq!(code, Some(0), "{out}");
            });
        }
    });
    let serial = server.soa_serial("foobar.com");
    assert_eq!(serial, 7 + 1100);

    // From the file's serial, folded away: the whole zone, AXFR-style (SOA, the
    // records, SOA) rather than differences (whose second record is an SOA).
    let whole = transfer(&server, 7);
    assert!(whole.len() > 3, "{whole:?}");
    assert_eq!(whole[0].rtype, "SOA");
    assert_ne!(
        whole[1].rtype, "SOA",
        "a serial before the base gets the whole zone"
    );
    // From a recent serial: still the differences.
    let recent = transfer(&server, serial - 2);
    assert_eq!(recent[1].rtype, "SOA", "{recent:?}");
    assert!(
        recent[1].data.contains(&format!(" {} ", serial - 2)),
        "{recent:?}"
    );

    let after = server.rss_kib();
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // The folded base plus the kept entries is the same zone after a restart.
    let names: Vec<Vec<String>> = (0..4)
        .map(|c| server.dig_a(&format!("c{c}.foobar.com")))
        .collect();
    drop(server);
    let server = Onebox::spawn().zones(&zones).data(data.path()).start();
    assert_eq!(server.soa_serial("foobar.com"), serial);
    for (c, seen) in names.iter().enumerate() {
        assert_eq!(&server.dig_a(&format!("c{c}.foobar.com")), seen);
        assert_eq!(seen.len(), 1);
    }
}

/// The records TEST_ZONE_HEAD holds: SOA, NS, ns1 A, the apex A, www CNAME.
const HEAD_RECORDS: usize = 5;
/// Room under the cap in the record-cap test: fewer than the burst's adds.
const ROOM: usize = 20;

/// The records `server` serves for foobar.com, by AXFR (which lists the SOA twice).
fn zone_size(server: &Onebox) -> usize {
    axfr_records(&server.dig(&["foobar.com", "AXFR"]).stdout)
        .len()
        .saturating_sub(1)
}

#[test]
fn dyn_record_cap_refuses_a_concurrent_burst_past_it() {
    skip_unless!(nsupdate_tools());
    // The cap is 100,000 (dyn_updates_to_a_zone_at_the_100000_record_cap_...
    // reaches it); a burst test is simpler on a small zone, so this one lowers
    // it through the debug-only ONEBOX_TEST_MAX_RECORDS: the same check, in 20 adds.
    let cap = HEAD_RECORDS + ROOM;
    let zones = test_zones("");
    let server = Onebox::spawn()
        .zones(&zones)
        .env("ONEBOX_TEST_MAX_RECORDS", cap.to_string())
        .args(["--update-rate", "0", "--allow-transfer", "127.0.0.0/8"])
        .start();
    assert_eq!(zone_size(&server), HEAD_RECORDS);
    let before = server.rss_kib();
    let mut peak = PeakRss::watch(server.pid, Duration::from_millis(20));

    // At once: 4 nsupdate clients × 15 UPDATEs and 4 API clients × 15 adds (120
    // new names against room for 20), and a watcher counting the zone by AXFR.
    let done = AtomicBool::new(false);
    let (outputs, answers, largest) = std::thread::scope(|scope| {
        let (server, done) = (&server, &done);
        let watcher = scope.spawn(move || {
            let mut largest = 0;
            while !done.load(Ordering::Relaxed) {
                largest = largest.max(zone_size(server));
            }
            largest
        });
        let updates: Vec<_> = (0..4)
            .map(|client| {
                scope.spawn(move || {
                    let messages: Vec<Vec<String>> = (0..15)
                        .map(|i| {
                            vec![format!(
                                "update add u{client}-{i}.foobar.com 60 A 192.0.2.1"
                            )]
                        })
                        .collect();
                    server.nsupdate_messages(&messages).1
                })
            })
            .collect();
        let calls = scope.spawn(move || api_burst(server, 4, 15, 'a'));
        let outputs: Vec<String> = updates.into_iter().map(|w| w.join().unwrap()).collect();
        let answers: Vec<(u16, String)> = calls
            .join()
            .unwrap()
            .into_iter()
            .map(|r| (r.status, r.text()))
            .collect();
        done.store(true, Ordering::Relaxed);
        (outputs, answers, watcher.join().unwrap())
    });
    let peak = peak.stop();

    // UPDATE past the cap: REFUSED, with a log line naming the cap.
    assert!(
        outputs.iter().any(|out| out.contains("REFUSED")),
        "{outputs:?}"
    );
    assert_contains(
        &server.stderr(),
        &format!("would hold more than {cap} records"),
    );
    // The API past the cap: 409 with a JSON error that says why.
    let added = answers.iter().filter(|(status, _)| *status == 200).count();
    let full: Vec<_> = answers
        .iter()
        .filter(|(status, _)| *status == 409)
        .collect();
    assert_eq!(added + full.len(), 60, "{answers:?}");
    assert!(!full.is_empty(), "{answers:?}");
    for (_, body) in &full {
        let error: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(
            error["error"],
            format!("zone foobar.com. is full: it holds at most {cap} records; delete some first")
        );
    }
    // Never over the cap, and exactly at it now: the room filled and no more.
    assert!(largest <= cap, "the zone held {largest} records, cap {cap}");
    assert_eq!(zone_size(&server), cap);
    // One serial per accepted change, the API's (names a*) and the UPDATEs'
    // (u*) together; the zone's own names start with neither.
    let records = axfr_records(&server.dig(&["foobar.com", "AXFR"]).stdout);
    let made_by = |first: char| records.iter().filter(|r| r.name.starts_with(first)).count();
    let (by_update, by_api) = (made_by('u'), made_by('a'));
    assert_eq!(by_api, added);
    assert_eq!(by_update + by_api, ROOM, "{records:?}");
    assert_eq!(server.soa_serial("foobar.com"), 7 + ROOM as u32);
    // RSS under the burst: within 32 MiB of idle.
    assert!(
        peak < before + 32 * 1024,
        "RSS peaked at {peak} KiB from {before} KiB"
    );

    // At the cap a deletion makes room for exactly one more.
    let one = r#"{"name":"extra.foobar.com","type":"A","value":"192.0.2.3"}"#;
    assert_eq!(server.records_api("POST", one).status, 409);
    let gone = records
        .iter()
        .find(|r| r.name.starts_with(['u', 'a']))
        .unwrap();
    server.nsupdate_ok(&format!("update delete {} A", gone.name));
    assert_eq!(server.records_api("POST", one).status, 200);
    assert_eq!(zone_size(&server), cap);
    assert_eq!(server.soa_serial("foobar.com"), 7 + ROOM as u32 + 2);
}

/// The records cap onebox ships with (`MAX_RECORDS_PER_ZONE`).
const CAP: usize = 100_000;
/// The UPDATEs the 100,000-record test sends, half of them adds.
const UPDATES: usize = 50;

#[test]
fn dyn_updates_to_a_zone_at_the_100000_record_cap_apply_one_by_one() {
    skip_unless!(nsupdate_tools());
    use std::fmt::Write as _;
    // A zone that reaches the real cap with the test's adds: the head, then
    // generated names h0, h1, … up to CAP minus the adds to come.
    let generated = CAP - HEAD_RECORDS - UPDATES / 2;
    let mut extra = String::with_capacity(generated * 32);
    for i in 0..generated {
        let _ = writeln!(
            extra,
            "h{i} 3600 IN A 10.{}.{}.{}",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        );
    }
    let (_zones, _data, server) = onebox_with_data(&extra);
    let serial = server.soa_serial("foobar.com");
    assert_eq!(server.dig_a("h99.foobar.com"), ["10.0.0.99"]);
    let before = server.rss_kib();

    // Each UPDATE alone, and dig sees it at once with the next serial: even
    // ones add a name, odd ones change the address of an existing one.
    let started = Instant::now();
    for i in 0..UPDATES {
        let (name, line) = if i % 2 == 0 {
            let name = format!("n{i}.foobar.com");
            let line = format!("update add {name} 60 A 192.0.2.{}", i + 1);
            (name, line)
        } else {
            let name = format!("h{}.foobar.com", i * 1000);
            let line = format!(
                "update delete {name} A\nupdate add {name} 60 A 192.0.2.{}",
                i + 1
            );
            (name, line)
        };
        let lines: Vec<&str> = line.lines().collect();
        let (code, out) = server.nsupdate_signed(&lines);
        assert_eq!(code, Some(0), "update {i}: {out}");
        assert_eq!(
            server.dig_a(&name),
            [format!("192.0.2.{}", i + 1)],
            "update {i}"
        );
        assert_eq!(server.soa_serial("foobar.com"), serial + 1 + i as u32);
    }
    // Not an assertion (timing depends on the machine): the figure the README quotes.
    eprintln!(
        "{UPDATES} UPDATEs to a {CAP}-record zone, each checked with dig: {:.3} s per UPDATE",
        started.elapsed().as_secs_f64() / UPDATES as f64
    );

    // Now exactly at the cap: one more name is REFUSED and changes nothing,
    // while a change that adds nothing still passes.
    let (_, out) = server.nsupdate_signed(&["update add over.foobar.com 60 A 192.0.2.250"]);
    assert_contains(&out, "REFUSED");
    assert!(server.dig_a("over.foobar.com").is_empty());
    assert_contains(
        &server.stderr(),
        &format!("would hold more than {CAP} records"),
    );
    server.nsupdate_ok("update delete n0.foobar.com A");
    server.nsupdate_ok("update add over.foobar.com 60 A 192.0.2.250");
    assert_eq!(server.dig_a("over.foobar.com"), ["192.0.2.250"]);
    // Untouched names still answer; the old address of a changed one is gone.
    assert_eq!(server.dig_a("h2.foobar.com"), ["10.0.0.2"]);
    assert_eq!(server.dig_a("h1000.foobar.com"), ["192.0.2.2"]);

    let after = server.rss_kib();
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB over {UPDATES} updates"
    );
}
