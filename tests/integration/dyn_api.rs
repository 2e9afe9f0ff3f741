//! The fixture API at `/_onebox/api/records`: add, delete and list records with
//! the admin token, through the same path (and journal) as DNS UPDATE.

use crate::harness::*;

const RECORDS: &str = "/_onebox/api/records";

fn txt(server: &Onebox, name: &str) -> Vec<String> {
    server
        .dig(&[name, "TXT"])
        .answers_of("TXT")
        .iter()
        .map(|r| r.data.clone())
        .collect()
}

#[test]
fn dyn_records_api_adds_lists_and_deletes_behind_the_admin_token() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let zones = test_zones("");
    let data = TempDir::new("data");
    let server = Onebox::spawn()
        .zones(&zones)
        .data(data.path())
        .args(["--allow-transfer", "127.0.0.0/8"])
        .start();
    let token = server.admin_token();
    let printed = onebox_ok([
        "key",
        "--data",
        &data.path().display().to_string(),
        "print",
        "--admin",
    ]);
    assert_eq!(printed.stdout.trim(), token);
    let auth = format!("Bearer {token}");
    let with_token = [("Authorization", auth.as_str())];
    let body = r#"{"name":"t.foobar.com","type":"TXT","value":"hello","ttl":60}"#;

    // Without the token, or with a wrong one: 401, and nothing changes.
    assert_eq!(api(&server, "POST", RECORDS, &[], body).status, 401);
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(api(&server, "POST", RECORDS, &wrong, body).status, 401);
    assert_eq!(api(&server, "GET", RECORDS, &[], "").status, 401);
    assert!(txt(&server, "t.foobar.com").is_empty());

    let added = api(&server, "POST", RECORDS, &with_token, body);
    assert_eq!(added.status, 200, "{}", added.text());
    assert_eq!(added.json()["serial"], 8);
    assert_eq!(txt(&server, "t.foobar.com"), ["\"hello\""]);
    let listed = api(&server, "GET", RECORDS, &with_token, "").json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "t.foobar.com" && r["type"] == "TXT" && r["value"] == "hello"),
        "{listed}"
    );
    let a = r#"{"name":"api.foobar.com","type":"A","value":"192.0.2.7","ttl":60}"#;
    assert_eq!(api(&server, "POST", RECORDS, &with_token, a).status, 200);
    assert_eq!(
        server.dig(&["api.foobar.com", "A"]).answers_of("A").len(),
        1
    );

    let deleted = api(&server, "DELETE", RECORDS, &with_token, body);
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(deleted.json()["serial"], 10);
    assert!(txt(&server, "t.foobar.com").is_empty());

    // Bad input is a clear 4xx, never a change.
    let bad_type = r#"{"name":"x.foobar.com","type":"SRV","value":"1 2 3 x","ttl":60}"#;
    assert_eq!(
        api(&server, "POST", RECORDS, &with_token, bad_type).status,
        400
    );
    let bad_ip = r#"{"name":"x.foobar.com","type":"A","value":"not-an-ip","ttl":60}"#;
    assert_eq!(
        api(&server, "POST", RECORDS, &with_token, bad_ip).status,
        400
    );
    let outside = r#"{"name":"x.example.net","type":"A","value":"192.0.2.1","ttl":60}"#;
    assert_eq!(
        api(&server, "POST", RECORDS, &with_token, outside).status,
        404
    );
    assert_eq!(api(&server, "POST", RECORDS, &with_token, "{").status, 400);

    // The API's changes are journaled like UPDATE's: IXFR shows them.
    let ixfr = server.dig(&["+tcp", "foobar.com", "IXFR=7"]);
    let records = axfr_records(&ixfr.stdout);
    assert_eq!(
        records.iter().filter(|r| r.rtype == "SOA").count(),
        8,
        "{}",
        ixfr.stdout
    );
    drop(server);
    let server = Onebox::spawn().zones(&zones).data(data.path()).start();
    assert_eq!(
        server.dig(&["api.foobar.com", "A"]).answers_of("A").len(),
        1
    );
}
