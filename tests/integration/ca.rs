//! Proves the local CA: a name-constrained CA certificate OpenSSL reads, kept in
//! the data folder across restarts (and gone with an ephemeral run), `onebox ca
//! path|print|install|uninstall`, and that a certificate the CA key signs for a
//! name outside our zone is rejected by a verifier that honours the constraints.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::path::{Path, PathBuf};

use crate::harness::*;

/// The SHA-256 fingerprint line of a certificate, as OpenSSL reads it.
fn fingerprint(pem: &Path) -> String {
    let (ok, out, err) = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        path_text(pem),
    ]);
    assert!(ok, "openssl cannot read {pem:?}: {err}");
    out.trim().to_string()
}

/// A second zone beside foobar.com, for the CA's name constraints.
const EXAMPLE_TEST_ZONE: &str = "\
$ORIGIN example.test.
$TTL 3600
@   IN SOA ns1.example.test. hostmaster.example.test. 1 7200 3600 1209600 300
@   IN NS  ns1.example.test.
ns1 IN A   127.0.0.1
@   IN A   127.0.0.1
";

/// A temp folder and the `data` folder path inside it (not created: onebox does).
fn data_dir(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let data = dir.join("data");
    (dir, data)
}

/// Starts onebox with its state in `data` and returns it with the CA path.
fn start_on(data: &Path) -> (Onebox, PathBuf) {
    let server = Onebox::spawn().data(data).start();
    let ca = server.ready_path("ca");
    (server, ca)
}

#[test]
fn ca_certificate_is_a_ca_constrained_to_our_zone_and_loopback() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (_dir, data) = data_dir("ca-constraints");
    let (_server, ca) = start_on(&data);
    assert_eq!(ca, data.join("ca.pem"), "the CA lives in the data folder");

    let (ok, out, err) = openssl(&["x509", "-noout", "-text", "-in", path_text(&ca)]);
    assert!(ok, "openssl cannot parse the CA: {err}");
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    for expected in [
        "X509v3 Name Constraints: critical",
        "Permitted:",
        "DNS:foobar.com",
        "IP:127.0.0.1/255.255.255.255",
        "IP:0:0:0:0:0:0:0:1/FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF",
        "X509v3 Basic Constraints: critical",
    ] {
        assert!(lines.contains(&expected), "no {expected:?} in:\n{out}");
    }
    assert!(
        lines.iter().any(|l| l.starts_with("CA:TRUE")),
        "not a CA:\n{out}"
    );
    // Nothing else is permitted, and nothing is merely excluded.
    let permitted: Vec<&str> = lines
        .iter()
        .skip_while(|l| **l != "Permitted:")
        .skip(1)
        .take_while(|l| l.starts_with("DNS:") || l.starts_with("IP:"))
        .copied()
        .collect();
    assert_eq!(permitted.len(), 3, "permitted subtrees: {permitted:?}");
    assert!(!out.contains("Excluded:"), "{out}");

    // The key is for onebox alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("ca-key.pem"))
        .expect("ca-key.pem beside ca.pem")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "ca-key.pem mode {mode:o}");
}

#[test]
fn every_zone_is_permitted_and_served_over_https() {
    skip_unless!(require_tool("openssl", "openssl"));
    let zones = test_zones("");
    zones.write(
        "example.test.zone",
        &format!("{EXAMPLE_TEST_ZONE}www IN CNAME example.test.\n"),
    );
    let server = Onebox::start_with_zones(&zones);
    let ca = server.ready_path("ca");
    let names: Vec<String> = ca_permitted(&ca)
        .into_iter()
        .filter(|l| l.starts_with("DNS:"))
        .collect();
    assert_eq!(names, ["DNS:example.test", "DNS:foobar.com"]);

    let port = server.ready_addr("https").port();
    for name in ["example.test", "www.example.test", "www.foobar.com"] {
        let resolve = format!("{name}:{port}:127.0.0.1");
        let (status, out, err) = curl_write_out(
            "%{http_code}",
            &[
                "--cacert",
                path_text(&ca),
                "--resolve",
                &resolve,
                &format!("https://{name}:{port}/"),
            ],
        );
        assert!(status.success(), "{name}: {err}");
        assert_eq!(out, "200", "{name}");
    }
}

#[test]
fn ca_persists_across_restarts_with_a_data_folder() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (_dir, data) = data_dir("ca-persist");
    let (mut first, ca) = start_on(&data);
    let before = fingerprint(&ca);
    assert!(first.terminate().success());
    assert!(ca.is_file(), "the CA must outlive the server");

    let (_second, ca_again) = start_on(&data);
    assert_eq!(ca_again, ca);
    assert_eq!(
        fingerprint(&ca_again),
        before,
        "a restart must not make a new CA (users would have to trust it again)"
    );
}

#[test]
fn a_kept_ca_that_cannot_vouch_for_a_new_zone_says_so_and_how_to_fix_it() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (_dir, data) = data_dir("ca-new-zone");
    let zones = test_zones("");
    let (mut first, ca) = {
        let server = Onebox::spawn().zones(zones.path()).data(&data).start();
        let ca = server.ready_path("ca");
        (server, ca)
    };
    let before = fingerprint(&ca);
    assert!(first.terminate().success());

    zones.write("example.test.zone", EXAMPLE_TEST_ZONE);
    let second = Onebox::spawn().zones(zones.path()).data(&data).start();
    // The CA users already trust is kept (a new one would need trusting again)...
    assert_eq!(fingerprint(&second.ready_path("ca")), before);
    // ...and the log says what that means and what to do.
    let log = second.wait_for_log("may not vouch for example.test", 0);
    assert!(
        log.contains("remove ca.pem and ca-key.pem"),
        "no fix named:\n{log}"
    );
}

#[test]
fn ephemeral_ca_and_control_socket_go_away_at_exit() {
    skip_unless!(require_tool("openssl", "openssl"));
    let mut server = Onebox::start();
    let ca = server.ready_path("ca");
    let control = server.ready_path("control");
    assert!(ca.is_file(), "{ca:?}");
    fingerprint(&ca);
    let folder = ca.parent().unwrap().to_path_buf();
    assert!(server.terminate().success());
    assert!(!ca.exists(), "ephemeral CA left behind: {ca:?}");
    assert!(!control.exists(), "control socket left behind: {control:?}");
    assert!(!folder.exists(), "ephemeral folder left behind: {folder:?}");
}

#[test]
fn ca_path_and_print_show_the_certificate_and_how_to_use_it() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (dir, data) = data_dir("ca-print");
    let (_server, ca) = start_on(&data);

    let (out, _) = onebox_ca_exits(&data, &["path"], 0);
    assert_eq!(
        PathBuf::from(out.trim()),
        ca.canonicalize().unwrap(),
        "ca path"
    );
    // `path` is the default action.
    let (default_out, _) = onebox_ca_exits(&data, &[], 0);
    assert_eq!(default_out, out);

    let (out, _) = onebox_ca_exits(&data, &["print"], 0);
    for expected in [
        "curl --cacert",
        "SSL_CERT_FILE=",
        "REQUESTS_CA_BUNDLE=",
        "NODE_EXTRA_CA_CERTS=",
        "-----BEGIN CERTIFICATE-----",
        "-----END CERTIFICATE-----",
    ] {
        assert!(
            out.contains(expected),
            "ca print lacks {expected:?}:\n{out}"
        );
    }
    // The printed output as a whole is something OpenSSL reads as our CA.
    let printed = dir.write("printed.txt", &out);
    assert_eq!(fingerprint(&printed), fingerprint(&ca));

    // No CA yet: a clear error, not a crash.
    let empty = dir.path().join("empty");
    let (status, out, err) = onebox_ca(&empty, &["path"]);
    assert!(!status.success(), "ca path without a CA:\n{out}");
    assert!(
        err.contains("no CA in") && err.contains("onebox serve --data"),
        "unclear error: {err}"
    );
}

#[test]
fn ca_install_asks_first_and_uninstall_removes_exactly_what_it_added() {
    let (dir, data) = data_dir("ca-install");
    let (_server, ca) = start_on(&data);
    let (root, store) = fake_ca_root(dir.path());
    // Someone else's certificate in the same store, which must survive.
    std::fs::write(store.join("other.crt"), "not ours\n").unwrap();
    let before = tree(&root);
    let root_arg = path_text(&root);

    // Without --yes: exit 2, and only a description of what it would do.
    let (out, _) = onebox_ca_exits(&data, &["install", "--root", root_arg], 2);
    assert!(
        out.contains("--yes") && out.contains("onebox-local-ca.crt"),
        "install without --yes must say what it would do:\n{out}"
    );
    assert_eq!(tree(&root), before, "install without --yes changed files");

    onebox_ca_exits(&data, &["install", "--yes", "--root", root_arg], 0);
    let installed = store.join("onebox-local-ca.crt");
    assert_eq!(
        std::fs::read(&installed).expect("the installed CA"),
        std::fs::read(&ca).unwrap()
    );

    onebox_ca_exits(&data, &["uninstall", "--root", root_arg], 0);
    assert_eq!(tree(&root), before, "uninstall must remove exactly the CA");
    assert_eq!(
        std::fs::read(store.join("other.crt")).unwrap(),
        b"not ours\n"
    );

    // Twice is fine and says so.
    let (out, _) = onebox_ca_exits(&data, &["uninstall", "--root", root_arg], 0);
    assert_contains(&out, "not installed");
}

#[test]
fn name_constraints_make_openssl_reject_leaves_outside_the_zone() {
    skip_unless!(require_tool("openssl", "openssl"));
    let (dir, data) = data_dir("ca-forge");
    let (_server, _ca) = start_on(&data);

    // The control: inside the constraints, the same recipe verifies.
    for san in ["DNS:www.foobar.com", "DNS:foobar.com", "IP:127.0.0.1"] {
        let (ok, said) = forge_and_verify(&dir, &data, san);
        assert!(
            ok,
            "{san} is inside the constraints and must verify:\n{said}"
        );
    }
    for san in [
        "DNS:bank.example",
        "DNS:foobar.com.evil.example",
        "IP:10.0.0.1",
    ] {
        let (ok, said) = forge_and_verify(&dir, &data, san);
        assert!(
            !ok && said.contains("permitted subtree violation"),
            "a leaf for {san} signed by our CA must be rejected:\n{said}"
        );
    }
}
