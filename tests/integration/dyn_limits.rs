//! `serve --update-rate N`: each key (the TSIG key for UPDATE, `api` for the
//! fixture API) applies at most a bucket of N changes, refilled at N per second;
//! beyond it UPDATE gets REFUSED (with a log line) and the API 429 + Retry-After,
//! and nothing refused is applied. The journal keeps at most 1,000 entries per
//! zone, folding the oldest into its base. Bursts are concurrent, RSS measured.

use std::time::Instant;

use crate::harness::*;

const RATE: u32 = 5;

#[test]
fn dyn_update_rate_refuses_a_concurrent_burst_beyond_the_bucket() {
    skip_unless!(nsupdate_tools());
    let (_zones, server) = onebox_on_test_zones(&["--update-rate", &RATE.to_string()]);
    let before = server.rss_kib();
    let auth = format!("Bearer {}", server.admin_token());

    // 8 clients × 5 API changes at once: 40 against a bucket of 5.
    let started = Instant::now();
    let answers: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|client| {
                let (server, auth) = (&server, &auth);
                scope.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let body = format!(
                                r#"{{"name":"b{client}-{i}.foobar.com","type":"A","value":"192.0.2.1"}}"#
                            );
                            let r = api(server, "POST", "/_onebox/api/records", &[("Authorization", auth)], &body);
                            (r.status, r.header("Retry-After").map(str::to_string))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
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
