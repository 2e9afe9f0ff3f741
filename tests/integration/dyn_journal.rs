//! The zone journal: an acknowledged UPDATE survives `kill -9`, and an edited
//! zone file is applied on top of journaled changes, losing neither.

use std::process::{Command, Stdio};

use crate::harness::*;

#[test]
fn dyn_an_acknowledged_update_survives_kill_9() {
    skip_unless!(nsupdate_tools());
    let (zones, data, server) = onebox_with_data("");
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.10");
    server.nsupdate_ok("update add api.foobar.com 60 A 192.0.2.11");
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
