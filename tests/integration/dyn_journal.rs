//! The zone journal: an acknowledged UPDATE survives `kill -9`, and an edited
//! zone file is applied on top of journaled changes, losing neither.

use std::process::{Command, Stdio};

use crate::harness::*;

#[test]
fn dyn_an_acknowledged_update_survives_kill_9() {
    skip_unless!(nsupdate_tools());
    let (zones, data, server) = onebox_with_data("");
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");
    // The zone named in another case is the same zone, and journaled as such.
    let (code, out) = server.nsupdate_signed(&[
        "zone FOOBAR.Com",
        "update add api.foobar.com 60 A 192.0.2.11",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let after = server.soa_serial("foobar.com");
    assert_eq!(after, 9);
    server.kill9();

    let server = Onebox::spawn().zones(&zones).data(data.path()).start();
    let mut seen = server.dig_a("api.foobar.com");
    seen.sort();
    assert_eq!(seen, ["192.0.2.10", "192.0.2.11"]);
    assert_eq!(
        server.soa_serial("foobar.com"),
        after,
        "the journal's serial, not the file's"
    );
}

#[test]
fn dyn_an_edited_zone_file_applies_on_top_of_the_journal() {
    skip_unless!(nsupdate_tools());
    let (zones, data, server) = onebox_with_data("old 60 IN A 192.0.2.1\n");
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");
    assert_eq!(server.soa_serial("foobar.com"), 8);

    // The user edits the file while onebox runs, without bumping its serial:
    // removes `old`, adds `edit`. The watcher reloads it.
    zones.write(
        "foobar.com.zone",
        &format!("{TEST_ZONE_HEAD}edit 60 IN A 192.0.2.2\n"),
    );
    let deadline = std::time::Instant::now() + DEADLINE;
    while server.dig_a("edit.foobar.com").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never showed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        server.dig_a("api.foobar.com"),
        ["192.0.2.10"],
        "the update is kept"
    );
    assert!(
        server.dig_a("old.foobar.com").is_empty(),
        "the file's removal applies"
    );
    assert_eq!(
        server.soa_serial("foobar.com"),
        9,
        "the edit is one more change, with its own serial"
    );

    // And the same after a restart: file + journal, nothing lost, no new change.
    drop(server);
    let server = Onebox::spawn().zones(&zones).data(data.path()).start();
    assert_eq!(server.dig_a("api.foobar.com"), ["192.0.2.10"]);
    assert_eq!(server.dig_a("edit.foobar.com"), ["192.0.2.2"]);
    assert!(server.dig_a("old.foobar.com").is_empty());
    assert_eq!(server.soa_serial("foobar.com"), 9);
}

#[test]
fn dyn_zone_export_writes_file_plus_journal_that_checkers_accept() {
    skip_unless!(
        nsupdate_tools(),
        require_tool("named-checkzone", "bind9-utils")
    );
    let (zones, data, server) = onebox_with_data("");
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");
    server.nsupdate_ok("update add t.foobar.com 60 TXT \"say \\\"hi\\\"\" \"two\"");
    server.nsupdate_ok("update delete www.foobar.com CNAME");
    drop(server);

    let zones_arg = zones.path().display().to_string();
    let data_arg = data.path().display().to_string();
    let export = onebox_ok([
        "zone",
        "export",
        "foobar.com",
        "--data",
        &data_arg,
        "--zones",
        &zones_arg,
    ])
    .stdout;
    assert!(
        export.contains("serial") || export.contains(" SOA "),
        "{export}"
    );
    assert!(
        export.contains("api.foobar.com. 60 IN A 192.0.2.10"),
        "{export}"
    );
    assert!(
        export.contains(r#"t.foobar.com. 60 IN TXT "say \"hi\"" "two""#),
        "{export}"
    );
    assert!(!export.contains("www.foobar.com."), "{export}");
    assert!(export.contains(" 10 7200 "), "serial 10: {export}");

    let out = TempDir::new("export");
    let file = out.write("foobar.com.zone", &export);
    let checked = onebox(["check", &file.display().to_string()]);
    assert_eq!(
        checked.code,
        Some(0),
        "{}{}",
        checked.stdout,
        checked.stderr
    );
    let mut command = Command::new("named-checkzone");
    command
        .arg("foobar.com")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (status, stdout, stderr) = run_bounded(command);
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("loaded serial 10"), "{stdout}");
}

#[test]
fn dyn_zone_log_names_the_key_or_api_and_the_client_of_each_change() {
    skip_unless!(nsupdate_tools());
    let (_zones, data, server) = onebox_with_data("");
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");
    let added = server.records_api(
        "POST",
        r#"{"name":"t.foobar.com","type":"TXT","value":"hi"}"#,
    );
    assert_eq!(added.status, 200, "{}", added.text());
    drop(server);

    // Who made each change, named as the live view names them (the TSIG key's
    // name, "api"), and the client it came from.
    let data_arg = data.path().display().to_string();
    let log = onebox_ok(["zone", "log", "foobar.com", "--data", &data_arg, "--json"]).json();
    assert_eq!(log["zone"], "foobar.com.");
    let changes = log["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 2, "{log}");
    let (update, call) = (&changes[0], &changes[1]);
    assert_eq!(update["by"], "onebox-update.", "{log}");
    assert_eq!(call["by"], "api", "{log}");
    for change in changes {
        let from = change["from"].as_str().unwrap_or_default();
        assert!(from.starts_with("127.0.0.1:"), "{log}");
    }
    assert_eq!(
        (&update["serial_from"], &update["serial_to"]),
        (&7.into(), &8.into())
    );
    assert_eq!(
        update["added"],
        serde_json::json!(["api.foobar.com. 60 IN A 192.0.2.10"])
    );
    assert_eq!(
        call["added"],
        serde_json::json!([r#"t.foobar.com. 60 IN TXT "hi""#])
    );
    assert_eq!(call["removed"], serde_json::json!([]));

    // The text form says the same, one change then its records.
    let text = onebox_ok(["zone", "log", "foobar.com.", "--data", &data_arg]).stdout;
    assert_contains_all(
        &text,
        &[
            "serial 7 -> 8  ",
            "  onebox-update. from 127.0.0.1:",
            "  + api.foobar.com. 60 IN A 192.0.2.10\n",
            "serial 8 -> 9  ",
            "  api from 127.0.0.1:",
        ],
    );
    // A folder onebox never ran with: an error, and no database made there.
    let empty = TempDir::new("empty");
    let dir = path_text(empty.path());
    let run = onebox(["zone", "log", "foobar.com", "--data", dir]);
    assert_ne!(run.code, Some(0), "{}", run.stdout);
    assert_contains(&run.stderr, "no database in");
    assert!(empty.tree().is_empty(), "{:?}", empty.tree());
}
