//! `onebox resolver`: `print` shows, for each platform, the exact files that route
//! only our zones to onebox and changes nothing; `install` needs `--yes`, writes
//! exactly those files, and `uninstall` removes exactly what it added. Every test
//! installs under `--root` in a temp folder, never into the machine's real /etc.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use crate::harness::*;

/// A fake root holding only NetworkManager's hook file, as `tree` lists it; the
/// other platforms' files sort after it.
const NETWORK_MANAGER_TREE: [&str; 4] = [
    "etc/",
    "etc/NetworkManager/",
    "etc/NetworkManager/dnsmasq.d/",
    "etc/NetworkManager/dnsmasq.d/onebox.conf",
];

/// The here-document for `path` in `print`'s output: the file's exact contents.
fn heredoc<'a>(printed: &'a str, path: &str) -> &'a str {
    let start = format!("sudo tee {path} > /dev/null <<'EOF'\n");
    let from = printed
        .find(&start)
        .unwrap_or_else(|| panic!("no file {path} in:\n{printed}"))
        + start.len();
    let len = printed[from..].find("EOF\n").expect("heredoc ends");
    &printed[from..from + len]
}

const MARKER: &str = "# written by onebox resolver install; remove with onebox resolver uninstall";

/// Zones folder with two zones, so each hook must list both and nothing wider.
fn two_zones() -> TempDir {
    let dir = TempDir::new("zones");
    for zone in ["foobar.com", "example.test"] {
        dir.write(
            &format!("{zone}.zone"),
            &format!(
                "$ORIGIN {zone}.\n$TTL 3600\n\
                 @ 3600 IN SOA ns1.{zone}. hostmaster.{zone}. 1 7200 3600 1209600 3600\n\
                 @ 3600 IN NS  ns1.{zone}.\n\
                 ns1 3600 IN A 127.0.0.1\n\
                 @ 3600 IN A 127.0.0.1\n"
            ),
        );
    }
    dir
}

/// `onebox resolver print --platform PLATFORM --zones ZONES EXTRA...`, which must
/// succeed.
fn resolver_print(platform: &str, zones: &str, extra: &[&str]) -> Run {
    let mut args = vec![
        "resolver",
        "print",
        "--platform",
        platform,
        "--zones",
        zones,
    ];
    args.extend_from_slice(extra);
    onebox_ok(args)
}

/// An empty folder standing in for `/` (`--root`), and its path as text.
fn fake_root() -> (TempDir, String) {
    let root = TempDir::new("root");
    let path = root.path().to_str().unwrap().to_string();
    (root, path)
}

fn no_zones_dir() -> String {
    // A folder that does not exist: the built-in foobar.com zone is used.
    std::env::temp_dir()
        .join("onebox-visit-test-no-such-zones-dir")
        .display()
        .to_string()
}

#[test]
fn print_systemd_resolved_drop_in() {
    let zones = no_zones_dir();
    let run = resolver_print("systemd-resolved", &zones, &[]);
    let file = heredoc(&run.stdout, "/etc/systemd/resolved.conf.d/onebox.conf");
    assert_eq!(
        file,
        format!("{MARKER}\n[Resolve]\nDNS=127.0.0.1:1053\nDomains=~foobar.com\n")
    );
    assert_contains_all(
        &run.stdout,
        &[
            "\nsudo mkdir -p /etc/systemd/resolved.conf.d\n",
            "\nsudo systemctl restart systemd-resolved\n",
            "# check: resolvectl query www.foobar.com\n",
        ],
    );
}

#[test]
fn print_macos_resolver_file_per_zone() {
    let zones = two_zones();
    // Without a subcommand, `resolver` prints.
    let mut args = vec!["resolver", "--platform", "macos", "--dns", "127.0.0.1:5353"];
    args.extend(["--zones", zones.path().to_str().unwrap()]);
    let run = onebox_ok(args);
    for zone in ["foobar.com", "example.test"] {
        let file = heredoc(&run.stdout, &format!("/etc/resolver/{zone}"));
        assert_eq!(file, format!("{MARKER}\nnameserver 127.0.0.1\nport 5353\n"));
    }
    // Only our zones: no file for a TLD, no catch-all.
    for wide in ["/etc/resolver/com ", "/etc/resolver/test "] {
        assert!(!run.stdout.contains(wide), "{}", run.stdout);
    }
    // The install line repeats the flags, so it writes these very files.
    let install = format!(
        "# or let onebox do it: sudo onebox resolver install --platform macos --zones {} --dns 127.0.0.1:5353 --yes\n",
        zones.path().display()
    );
    assert_contains(&run.stdout, &install);
}

#[test]
fn print_networkmanager_dnsmasq_lines() {
    let zones = two_zones();
    let run = resolver_print("networkmanager", zones.path().to_str().unwrap(), &[]);
    let file = heredoc(&run.stdout, "/etc/NetworkManager/dnsmasq.d/onebox.conf");
    assert_eq!(
        file,
        format!(
            "{MARKER}\nserver=/example.test/127.0.0.1#1053\nserver=/foobar.com/127.0.0.1#1053\n"
        )
    );
    assert_contains_all(
        &run.stdout,
        &["\nsudo systemctl reload NetworkManager\n", "dns=dnsmasq"],
    );
}

#[test]
fn print_two_zones_for_systemd_routes_each_and_nothing_wider() {
    let zones = two_zones();
    let zones = zones.path().to_str().unwrap();
    let run = resolver_print("systemd-resolved", zones, &["--dns", "[::1]:1053"]);
    let file = heredoc(&run.stdout, "/etc/systemd/resolved.conf.d/onebox.conf");
    assert_contains_all(
        file,
        &[
            "\nDNS=[::1]:1053\n",
            "\nDomains=~example.test ~foobar.com\n",
        ],
    );
}

#[test]
fn print_changes_nothing() {
    let root = TempDir::new("root");
    let zones = no_zones_dir();
    for mut args in [
        vec!["resolver"],
        vec!["resolver", "print", "--platform", "all"],
    ] {
        args.extend(["--root", root.path().to_str().unwrap(), "--zones", &zones]);
        let run = onebox_ok(&args);
        assert_contains(&run.stdout, "sudo tee ");
        assert!(run.stdout.contains(root.path().to_str().unwrap()));
    }
    assert!(root.tree().is_empty(), "print wrote {:?}", root.tree());
}

#[test]
fn install_needs_consent() {
    let root = TempDir::new("root");
    let run = onebox([
        "resolver",
        "install",
        "--platform",
        "macos",
        "--zones",
        &no_zones_dir(),
        "--root",
        root.path().to_str().unwrap(),
    ]);
    assert_ne!(run.code, Some(0));
    assert_contains(&run.stderr, "--yes");
    assert!(root.tree().is_empty(), "wrote {:?}", root.tree());

    let run = onebox([
        "resolver",
        "uninstall",
        "--root",
        root.path().to_str().unwrap(),
    ]);
    assert_ne!(run.code, Some(0));
    assert_contains(&run.stderr, "--yes");
}

#[test]
fn install_writes_what_print_shows_and_uninstall_removes_exactly_that() {
    let (root, rootp) = fake_root();
    let zones = two_zones();
    let zones = zones.path().to_str().unwrap().to_string();
    let common = [
        "--root",
        &rootp,
        "--zones",
        &zones,
        "--dns",
        "127.0.0.1:1053",
    ];

    let printed = onebox_ok(
        ["resolver", "print", "--platform", "all"]
            .iter()
            .chain(&common),
    );

    let run = onebox_ok(
        ["resolver", "install", "--platform", "all", "--yes"]
            .iter()
            .chain(&common),
    );
    assert!(
        run.stdout
            .contains("sudo systemctl restart systemd-resolved")
    );
    assert_eq!(
        root.tree(),
        [
            &NETWORK_MANAGER_TREE[..],
            &[
                "etc/resolver/",
                "etc/resolver/example.test",
                "etc/resolver/foobar.com",
                "etc/systemd/",
                "etc/systemd/resolved.conf.d/",
                "etc/systemd/resolved.conf.d/onebox.conf",
            ],
        ]
        .concat()
    );
    for rel in [
        "etc/systemd/resolved.conf.d/onebox.conf",
        "etc/resolver/foobar.com",
        "etc/resolver/example.test",
        "etc/NetworkManager/dnsmasq.d/onebox.conf",
    ] {
        let path = root.path().join(rel);
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.starts_with(&format!("{MARKER}\n")), "{written}");
        // The same lines print showed, plus a note of the folders install created.
        let shown = heredoc(&printed.stdout, path.to_str().unwrap());
        let without_notes: String = written
            .lines()
            .filter(|l| !l.starts_with("# onebox created directory: "))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(without_notes, shown, "{rel}");
    }

    // Installing again replaces our own files; nothing else appears.
    onebox_ok(
        ["resolver", "install", "--platform", "all", "--yes"]
            .iter()
            .chain(&common),
    );

    let run = onebox_ok(["resolver", "uninstall", "--yes", "--root", &rootp]);
    assert_eq!(run.stdout.matches("removed ").count(), 4, "{}", run.stdout);
    assert!(root.tree().is_empty(), "left behind: {:?}", root.tree());

    let run = onebox_ok(["resolver", "uninstall", "--yes", "--root", &rootp]);
    assert_contains(&run.stdout, "nothing to remove");
}

#[test]
fn zone_files_sharing_a_folder_install_created_are_all_removed() {
    let (root, rootp) = fake_root();
    let zones = two_zones();
    onebox_ok([
        "resolver",
        "install",
        "--platform",
        "macos",
        "--yes",
        "--root",
        &rootp,
        "--zones",
        zones.path().to_str().unwrap(),
    ]);
    assert_eq!(
        root.tree(),
        [
            "etc/",
            "etc/resolver/",
            "etc/resolver/example.test",
            "etc/resolver/foobar.com"
        ]
    );
    onebox_ok([
        "resolver",
        "uninstall",
        "--platform",
        "macos",
        "--yes",
        "--root",
        &rootp,
    ]);
    assert!(root.tree().is_empty(), "left behind: {:?}", root.tree());
}

#[test]
fn uninstall_leaves_files_and_folders_that_were_there_before() {
    let (root, rootp) = fake_root();
    // Someone else's resolver file and drop-in, in folders that already exist.
    root.write("etc/resolver/corp.example", "nameserver 10.0.0.1\n");
    root.write(
        "etc/systemd/resolved.conf.d/vpn.conf",
        "[Resolve]\nDNS=10.0.0.1\n",
    );
    let before = root.tree();

    for platform in ["macos", "systemd-resolved"] {
        onebox_ok([
            "resolver",
            "install",
            "--platform",
            platform,
            "--yes",
            "--root",
            &rootp,
            "--zones",
            &no_zones_dir(),
        ]);
    }
    assert!(root.path().join("etc/resolver/foobar.com").is_file());
    // Folders that existed are not noted as created.
    let mac = std::fs::read_to_string(root.path().join("etc/resolver/foobar.com")).unwrap();
    assert!(!mac.contains("created directory"), "{mac}");

    onebox_ok(["resolver", "uninstall", "--yes", "--root", &rootp]);
    assert_eq!(root.tree(), before);
    assert_eq!(
        std::fs::read_to_string(root.path().join("etc/resolver/corp.example")).unwrap(),
        "nameserver 10.0.0.1\n"
    );
}

#[test]
fn install_refuses_to_overwrite_a_file_it_did_not_write() {
    let (root, rootp) = fake_root();
    let foreign = "server=/foobar.com/192.0.2.1\n";
    root.write("etc/NetworkManager/dnsmasq.d/onebox.conf", foreign);
    let run = onebox([
        "resolver",
        "install",
        "--platform",
        "all",
        "--yes",
        "--root",
        &rootp,
        "--zones",
        &no_zones_dir(),
    ]);
    assert_ne!(run.code, Some(0));
    assert_contains(&run.stderr, "not written by onebox");
    // All or nothing: the other platforms' files were not written either.
    assert_eq!(root.tree(), NETWORK_MANAGER_TREE);
    let path = root.path().join("etc/NetworkManager/dnsmasq.d/onebox.conf");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), foreign);

    // And uninstall keeps it, saying why.
    let run = onebox_ok(["resolver", "uninstall", "--yes", "--root", &rootp]);
    assert_contains(&run.stdout, "not written by onebox");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), foreign);
}

#[cfg(target_os = "linux")]
#[test]
fn install_on_a_machine_without_the_platform_says_so() {
    // Linux is never macOS, so this can only fail with the message, never write /etc.
    let run = onebox([
        "resolver",
        "install",
        "--platform",
        "macos",
        "--yes",
        "--zones",
        &no_zones_dir(),
    ]);
    assert_ne!(run.code, Some(0));
    assert_contains_all(&run.stderr, &["not macOS", "nothing installed"]);
}

#[test]
fn a_bind_address_is_not_a_resolver_target() {
    for dns in ["0.0.0.0:1053", "127.0.0.1:0"] {
        let run = onebox(["resolver", "print", "--platform", "all", "--dns", dns]);
        assert_eq!(run.code, Some(1), "{dns}: {}", run.stdout);
        assert!(run.stdout.is_empty());
        assert_contains(&run.stderr, "serve's ready line");
    }
}
