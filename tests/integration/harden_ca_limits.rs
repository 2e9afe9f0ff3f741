//! The CA keeps its limits when onebox also serves the root and a TLD: its name
//! constraints are exactly the website names (never `.`, `com` or a zone that only
//! delegates), a leaf its key signs for any other name fails `openssl verify`, and
//! a hand-made CA wider than that is refused by `serve`, `ca print` and `ca install`.

use std::path::Path;
use std::process::ExitStatus;

use crate::harness::*;

/// A zones folder with the root zone (delegating `com`), a `com` zone (delegating
/// `foobar.com`) and `foobar.com` itself: one website, two zones that delegate.
fn hierarchy() -> TempDir {
    let zones = test_zones("");
    zones.write(
        "root.zone",
        "$ORIGIN .\n$TTL 3600\n\
         @   IN SOA a.root-servers.net. hostmaster.root-servers.net. 1 7200 3600 1209600 300\n\
         @   IN NS  a.root-servers.net.\n\
         a.root-servers.net. IN A 127.0.0.1\n\
         com. IN NS ns1.com.\n\
         ns1.com. IN A 127.0.0.1\n",
    );
    zones.write(
        "com.zone",
        "$ORIGIN com.\n$TTL 3600\n\
         @   IN SOA ns1.com. hostmaster.com. 1 7200 3600 1209600 300\n\
         @   IN NS  ns1.com.\n\
         ns1 IN A   127.0.0.1\n\
         foobar IN NS ns1.foobar\n\
         ns1.foobar IN A 127.0.0.1\n",
    );
    zones
}

/// `onebox ca --data DATA --zones ZONES ACTION`: (status, stdout, stderr).
fn ca_with_zones(data: &Path, zones: &Path, action: &str) -> (ExitStatus, String, String) {
    onebox_ca(data, &["--zones", path_text(zones), action])
}

#[test]
fn with_root_and_com_zones_the_ca_permits_only_the_website() {
    let zones = hierarchy();
    let dir = TempDir::new("hard-ca-hierarchy");
    let data = dir.path().join("data");
    let server = Onebox::spawn().zones(zones.path()).data(&data).start();
    // The three zones are really loaded, and the root delegates com.
    let referral = server.dig(&["com.", "NS"]);
    assert!(
        referral.stdout.contains("ns1.com."),
        "the root zone is not served: {}",
        referral.stdout
    );
    let ca = server.ready_path("ca");
    assert_eq!(
        ca_permitted(&ca),
        [
            "DNS:foobar.com",
            "IP:127.0.0.1/255.255.255.255",
            "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
        ],
        "the constraints must be exactly the website names and loopback"
    );

    // `ca print` accepts this CA and says what it may vouch for.
    let (status, out, err) = ca_with_zones(&data, zones.path(), "print");
    assert!(status.success(), "ca print: {err}");
    assert_contains(
        &out,
        "# It may vouch for: foobar.com, 127.0.0.1/32, ::1/128\n",
    );

    for inside in ["foobar.com", "www.foobar.com"] {
        let (ok, said) = forge_and_verify(&dir, &data, &format!("DNS:{inside}"));
        assert!(ok, "{inside} is a website of ours and must verify:\n{said}");
    }
    for outside in ["www.google.com", "example.com", "com"] {
        let (ok, said) = forge_and_verify(&dir, &data, &format!("DNS:{outside}"));
        assert!(
            !ok && said.contains("permitted subtree violation"),
            "a leaf for {outside} signed by our CA must be rejected:\n{said}"
        );
    }
}

/// A CA made by hand (as a careless operator or an intruder would) that may
/// vouch for google.com and every IPv4 address, with its key, in `data`.
fn plant_wide_ca(data: &Path) {
    plant_ca(
        data,
        "permitted;DNS:google.com,permitted;DNS:foobar.com,permitted;IP:0.0.0.0/0.0.0.0",
    );
}

/// A hand-made CA in `data` whose name constraints permit `permitted`
/// (openssl's `nameConstraints` syntax), with its key.
fn plant_ca(data: &Path, permitted: &str) {
    std::fs::create_dir_all(data).unwrap();
    let (ok, err) = openssl_new_cert(
        &data.join("ca-key.pem"),
        &data.join("ca.pem"),
        &[
            "-subj",
            "/CN=not onebox",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
            "-addext",
            &format!("nameConstraints=critical,{permitted}"),
            "-days",
            "2",
        ],
    );
    assert!(ok, "openssl could not make the wide CA: {err}");
}

#[test]
fn a_hand_made_ca_wider_than_the_websites_is_refused_everywhere() {
    let dir = TempDir::new("hard-ca-wide");
    let data = dir.path().join("data");
    plant_wide_ca(&data);
    let zones = hierarchy();

    let refused = Onebox::spawn()
        .zones(zones.path())
        .data(&data)
        .refused("with a CA that may vouch for google.com and 0.0.0.0/0");
    for needle in [
        "refusing the CA",
        "google.com (not a website onebox serves)",
        "0.0.0.0/0 (not loopback)",
        "remove ca.pem and ca-key.pem",
    ] {
        assert!(
            refused.stderr.contains(needle),
            "serve's refusal lacks {needle:?}:\n{}",
            refused.stderr
        );
    }

    let (root, store) = fake_ca_root(dir.path());
    let root_arg = path_text(&root);
    for args in [
        vec!["print"],
        vec!["install", "--root", root_arg],
        vec!["install", "--yes", "--root", root_arg],
    ] {
        // Refused: exit 1.
        let (out, err) = onebox_ca_exits(&data, &args, 1);
        assert!(
            err.contains("refusing the CA") && err.contains("0.0.0.0/0 (not loopback)"),
            "{args:?}: unclear refusal:\n{err}"
        );
        assert!(
            !out.contains("BEGIN CERTIFICATE"),
            "{args:?} printed the CA"
        );
    }
    assert!(
        !store.join("onebox-local-ca.crt").exists(),
        "ca install --yes installed the wide CA"
    );
}

#[test]
fn ca_print_and_install_check_the_exact_website_names_of_the_zones() {
    // google.com and loopback only: no structural fault (two labels, loopback
    // networks), so only the zones' website names can show it is not ours.
    let dir = TempDir::new("hard-ca-google");
    let data = dir.path().join("data");
    plant_ca(
        &data,
        "permitted;DNS:google.com,permitted;IP:127.0.0.1/255.255.255.255",
    );
    let zones = hierarchy();
    for action in ["print", "install"] {
        let (status, out, err) = ca_with_zones(&data, zones.path(), action);
        assert_eq!(
            status.code(),
            Some(1),
            "ca {action} must refuse:\n{out}\n{err}"
        );
        assert!(
            err.contains("refusing the CA")
                && err.contains("google.com (not a website onebox serves)"),
            "ca {action}: unclear refusal:\n{err}"
        );
        assert!(
            !out.contains("BEGIN CERTIFICATE"),
            "ca {action} printed the CA"
        );
    }
}
