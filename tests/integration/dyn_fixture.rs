//! The Rust fixture `onebox::testing::Onebox`: starts, changes records that dig
//! then sees, and leaves no process behind.

use crate::harness::*;

#[test]
fn dyn_rust_fixture_adds_records_that_dig_sees_and_stops_on_drop() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let fixture = onebox::testing::Onebox::start_binary(ONEBOX).unwrap();
    let serial = fixture
        .add_a("api.foobar.com", "192.0.2.10".parse().unwrap())
        .unwrap();
    fixture.add_txt("t.foobar.com", "hello").unwrap();
    let a = dig(fixture.dns(), &["api.foobar.com", "A"]);
    assert_eq!(a.answers_of("A")[0].data, "192.0.2.10", "{}", a.stdout);
    let t = dig(fixture.dns(), &["t.foobar.com", "TXT"]);
    assert_eq!(t.answers_of("TXT")[0].data, "\"hello\"", "{}", t.stdout);
    let after = fixture.delete("t.foobar.com", "TXT", "hello").unwrap();
    assert_eq!(after, serial + 2);
    assert_eq!(
        dig(fixture.dns(), &["t.foobar.com", "TXT"]).status,
        "NXDOMAIN"
    );
    let bad = fixture.add_a("x.example.net", "192.0.2.1".parse().unwrap());
    assert!(bad.is_err(), "a name outside our zones is refused");
    let dns = fixture.dns();
    drop(fixture);
    let gone = dig(dns, &["api.foobar.com", "A"]);
    assert!(
        gone.status.is_empty(),
        "still answering after drop: {}",
        gone.stdout
    );
}
