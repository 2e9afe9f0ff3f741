//! DNS UPDATE (RFC 2136) with TSIG (RFC 8945), driven by the real clients people
//! use: BIND's `nsupdate` and Knot's `knsupdate`, checked with `dig`. Also the
//! TSIG key file onebox makes and `onebox key print`.

use std::process::{Command, Stdio};

use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::harness::*;

/// Answers of `name TYPE` as (type, data) pairs.
fn look(server: &Onebox, name: &str, rtype: &str) -> Vec<(String, String)> {
    server
        .dig(&[name, rtype])
        .answer
        .iter()
        .map(|r| (r.rtype.clone(), r.data.clone()))
        .collect()
}

#[test]
fn dyn_key_file_is_made_on_first_start_and_printed_in_bind_format() {
    use std::os::unix::fs::PermissionsExt;
    let data = TempDir::new("data");
    let server = Onebox::spawn().data(data.path()).start();
    let path = server.ready_path("tsig");
    assert_eq!(path, data.path().join("onebox-update.key"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the key file must be owner-only");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("key \"onebox-update.\" {"), "{text}");
    assert!(text.contains("algorithm hmac-sha256;"), "{text}");
    drop(server);

    let data_arg = data.path().display().to_string();
    let printed = onebox_ok(["key", "--data", &data_arg, "print"]);
    assert_eq!(printed.stdout, text, "print gives the file as it is");
    let json = printed_key(&data);
    assert_eq!(json["name"], "onebox-update.");
    assert_eq!(json["algorithm"], "hmac-sha256");
    assert!(text.contains(json["secret"].as_str().unwrap()));

    // A second start keeps the key clients already hold.
    let again = Onebox::spawn().data(data.path()).start();
    assert_eq!(
        std::fs::read_to_string(again.ready_path("tsig")).unwrap(),
        text
    );
}

#[test]
fn dyn_ephemeral_keeps_the_key_in_its_temporary_folder() {
    let data = TempDir::new("cwd");
    let server = Onebox::spawn().cwd(data.path()).start();
    let path = server.ready_path("tsig");
    assert!(path.is_file(), "{}", path.display());
    assert!(path.starts_with(std::env::temp_dir()), "{}", path.display());
    assert!(
        tree(data.path()).is_empty(),
        "nothing written where it runs"
    );
}

/// The TSIG key in `data` as `onebox key --data DATA print --json` prints it.
fn printed_key(data: &TempDir) -> serde_json::Value {
    let data_arg = data.path().display().to_string();
    onebox_ok(["key", "--data", &data_arg, "print", "--json"]).json()
}

/// onebox on the test zones, for a test that updates it with nsupdate and checks
/// with dig: the zones folder (to keep) and the server; `None`, and the test
/// returns, where dig or nsupdate is missing.
fn nsupdate_onebox() -> Option<(TempDir, Onebox)> {
    nsupdate_tools().then(|| {
        let zones = test_zones("");
        let server = Onebox::start_with_zones(&zones);
        (zones, server)
    })
}

/// One nsupdate run: its lines, then the name and type to dig and what dig must see.
type Step<'a> = (&'a [&'a str], &'a str, &'a str, Vec<(String, String)>);

#[test]
fn dyn_nsupdate_adds_changes_and_deletes_a_txt_and_cname() {
    let Some((_zones, server)) = nsupdate_onebox() else {
        return;
    };
    let start = server.soa_serial("foobar.com");

    let steps: [Step; 6] = [
        (
            &["update add api.foobar.com 60 A 192.0.2.10"],
            "api.foobar.com",
            "A",
            vec![("A".into(), "192.0.2.10".into())],
        ),
        (
            &[
                "update delete api.foobar.com A",
                "update add api.foobar.com 60 A 192.0.2.11",
            ],
            "api.foobar.com",
            "A",
            vec![("A".into(), "192.0.2.11".into())],
        ),
        (
            &["update add _acme-challenge.foobar.com 60 TXT \"token-1\""],
            "_acme-challenge.foobar.com",
            "TXT",
            vec![("TXT".into(), "\"token-1\"".into())],
        ),
        (
            &["update delete _acme-challenge.foobar.com TXT \"token-1\""],
            "_acme-challenge.foobar.com",
            "TXT",
            vec![],
        ),
        (
            &["update add blue.foobar.com 60 CNAME api.foobar.com."],
            "blue.foobar.com",
            "CNAME",
            vec![("CNAME".into(), "api.foobar.com.".into())],
        ),
        (
            &["update delete blue.foobar.com CNAME"],
            "blue.foobar.com",
            "CNAME",
            vec![],
        ),
    ];
    let mut expected_serial = start;
    for (lines, name, rtype, want) in steps {
        let (code, out) = server.nsupdate_signed(lines);
        assert_eq!(code, Some(0), "{lines:?}: {out}");
        expected_serial += 1;
        assert_eq!(look(&server, name, rtype), want, "{lines:?}");
        assert_eq!(
            server.soa_serial("foobar.com"),
            expected_serial,
            "{lines:?}: one bump per update"
        );
    }
}

#[test]
fn dyn_knsupdate_adds_and_deletes_with_the_printed_key() {
    skip_unless!(
        require_tool("dig", "bind9-dnsutils"),
        require_tool("knsupdate", "knot-dnsutils")
    );
    let (_zones, data, server) = onebox_with_data("");
    let json = printed_key(&data);
    let secret = format!(
        "{}:{}:{}",
        json["algorithm"].as_str().unwrap(),
        json["name"].as_str().unwrap(),
        json["secret"].as_str().unwrap()
    );
    let dns = server.dns_addr();
    let run = |body: &str| {
        let dir = TempDir::new("knsupdate");
        let script = format!(
            "server {} {}\nzone foobar.com.\norigin foobar.com.\n{body}\nsend\nquit\n",
            dns.ip(),
            dns.port()
        );
        let file = dir.write("script", &script);
        let mut command = Command::new("knsupdate");
        command
            .args(["-t", "2", "-r", "0", "-y", &secret])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (status, stdout, stderr) = run_bounded(command);
        assert_eq!(status.code(), Some(0), "{body}: {stdout}{stderr}");
    };
    let start = server.soa_serial("foobar.com");
    run("update add knot 60 TXT \"from-knot\"");
    assert_eq!(
        look(&server, "knot.foobar.com", "TXT"),
        vec![("TXT".to_string(), "\"from-knot\"".to_string())]
    );
    assert_eq!(server.soa_serial("foobar.com"), start + 1);
    run("update delete knot TXT");
    assert!(look(&server, "knot.foobar.com", "TXT").is_empty());
    assert_eq!(server.soa_serial("foobar.com"), start + 2);
}

/// Signs `message` with hmac-sha256 the way RFC 8945 §4.3 says, written here
/// independently of onebox's own code so a shared mistake cannot hide.
fn sign(message: &Message, key_name: &str, secret: &[u8], time: u64) -> Vec<u8> {
    sign_bytes(encode(message), key_name, secret, time)
}

/// [`sign`] for a message already in wire form (which may be one hickory would
/// not write).
fn sign_bytes(mut packet: Vec<u8>, key_name: &str, secret: &[u8], time: u64) -> Vec<u8> {
    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.trim_end_matches('.').split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }
    let mut vars = wire(key_name);
    vars.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
    vars.extend_from_slice(&wire("hmac-sha256."));
    vars.extend_from_slice(&time.to_be_bytes()[2..]);
    vars.extend_from_slice(&[1, 44, 0, 0, 0, 0]); // fudge 300, error 0, other len 0
    let hkey = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mac = ring::hmac::sign(&hkey, &[packet.as_slice(), &vars].concat());
    let mut rdata = wire("hmac-sha256.");
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&[1, 44, 0, 32]);
    rdata.extend_from_slice(mac.as_ref());
    rdata.extend_from_slice(&packet[..2]);
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    packet.extend_from_slice(&wire(key_name));
    packet.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    packet.extend_from_slice(&rdata);
    packet[11] += 1;
    packet
}

/// An UPDATE adding `name A 192.0.2.99` to foobar.com.
fn add_a(name: &str) -> Message {
    let mut message = Message::new(0x4242, MessageType::Query, OpCode::Update);
    let mut zone = Query::query(Name::from_ascii("foobar.com.").unwrap(), RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    message.queries.push(zone);
    message.authorities.push(Record::from_rdata(
        Name::from_ascii(name).unwrap(),
        60,
        RData::A(A::new(192, 0, 2, 99)),
    ));
    message
}

/// The rcode and the TSIG error (`None` when the reply has no TSIG) of a reply
/// that echoes the request's zone section. Read from the bytes: hickory decodes
/// TSIG only with a dnssec feature, which onebox does not enable.
fn rcode_and_tsig_error(reply: &[u8]) -> (u8, Option<u16>) {
    fn skip_name(bytes: &[u8], mut at: usize) -> usize {
        loop {
            match bytes[at] {
                0 => return at + 1,
                len if len & 0xC0 == 0xC0 => return at + 2,
                len => at += 1 + usize::from(len),
            }
        }
    }
    let rcode = reply[3] & 0x0F;
    if reply[10..12] == [0, 0] {
        return (rcode, None);
    }
    let zones = u16::from_be_bytes([reply[4], reply[5]]);
    let tsig = (0..zones).fold(12, |at, _| skip_name(reply, at) + 4);
    let rdata = skip_name(reply, tsig) + 10;
    let mac_len_at = skip_name(reply, rdata) + 8;
    let mac_len = usize::from(u16::from_be_bytes([
        reply[mac_len_at],
        reply[mac_len_at + 1],
    ]));
    let error_at = mac_len_at + 2 + mac_len + 2;
    (
        rcode,
        Some(u16::from_be_bytes([reply[error_at], reply[error_at + 1]])),
    )
}

#[test]
fn dyn_unsigned_wrong_key_bad_time_and_out_of_zone_updates_change_nothing() {
    skip_unless!(nsupdate_tools());
    let (_zones, data, server) = onebox_with_data("");
    let before = server.soa_serial("foobar.com");
    let transfer = |s: &Onebox| s.dig(&["foobar.com", "SOA"]).answer.clone();
    let soa_before = transfer(&server);

    // No key at all: REFUSED.
    let (code, out) = server.nsupdate(&[], &["update add x.foobar.com 60 A 192.0.2.1"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("REFUSED"), "{out}");

    // Another secret under our key's name: NOTAUTH, BADSIG.
    let wrong = "hmac-sha256:onebox-update.:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=";
    let (code, out) = server.nsupdate(&["-y", wrong], &["update add x.foobar.com 60 A 192.0.2.1"]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("NOTAUTH") || out.contains("BADSIG"), "{out}");

    // Raw packets, to control the key name and the clock.
    let (secret, now) = signing(&data);
    // A valid signature an hour old: NOTAUTH with BADTIME (18).
    let stale = sign(
        &add_a("x.foobar.com."),
        "onebox-update.",
        &secret,
        now - 3600,
    );
    assert_eq!(
        rcode_and_tsig_error(&tcp_raw(server.dns_addr(), &stale)),
        (9, Some(18))
    );
    // A key we do not know: NOTAUTH with BADKEY (17).
    let unknown = sign(&add_a("x.foobar.com."), "someone-else.", &secret, now);
    assert_eq!(
        rcode_and_tsig_error(&tcp_raw(server.dns_addr(), &unknown)),
        (9, Some(17))
    );
    // Properly signed but outside the zone: NOTZONE (10), still signed (error 0).
    let outside = sign(&add_a("x.example.net."), "onebox-update.", &secret, now);
    assert_eq!(
        rcode_and_tsig_error(&tcp_raw(server.dns_addr(), &outside)),
        (10, Some(0))
    );
    // And nsupdate with the right key but an out-of-zone name fails too.
    let (code, out) = server.nsupdate_signed(&["update add x.example.net 60 A 192.0.2.1"]);
    assert_ne!(code, Some(0), "{out}");

    assert_eq!(transfer(&server), soa_before);
    assert_unchanged_then_applied(&server, before, &secret, now);
}

/// Asserts that nothing was applied (the serial still `before`, no
/// x.foobar.com), then that the plain [`add_a`] of it, signed with a fresh time,
/// is: the refusals before were for the reasons tested, not a broken signer.
fn assert_unchanged_then_applied(server: &Onebox, before: u32, secret: &[u8], now: u64) {
    assert_eq!(
        server.soa_serial("foobar.com"),
        before,
        "nothing was applied"
    );
    assert_eq!(server.dig(&["x.foobar.com", "A"]).status, "NXDOMAIN");
    let good = sign(&add_a("x.foobar.com."), "onebox-update.", secret, now);
    assert_eq!(
        rcode_and_tsig_error(&tcp_raw(server.dns_addr(), &good)),
        (0, Some(0))
    );
    assert_eq!(server.soa_serial("foobar.com"), before + 1);
}

#[test]
fn dyn_rules_protect_the_apex_and_cname_and_prerequisites_are_honoured() {
    let Some((_zones, server)) = nsupdate_onebox() else {
        return;
    };
    let before = server.soa_serial("foobar.com");

    // Deleting the apex SOA and the only apex NS is ignored (RFC 2136 §3.4.2.3-4),
    // and a CNAME beside the apex A is ignored (§3.4.2.2): nothing changes.
    let (code, out) = server.nsupdate_signed(&[
        "update delete foobar.com SOA",
        "update delete foobar.com NS",
        "update add foobar.com 60 CNAME www.foobar.com.",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        server.soa_serial("foobar.com"),
        before,
        "no change, no new serial"
    );
    assert_eq!(look(&server, "foobar.com", "NS").len(), 1);

    // A prerequisite that fails (the name must not exist, but it does): YXDOMAIN,
    // and the update in the same message is not applied: all or nothing.
    let (code, out) = server.nsupdate_signed(&[
        "prereq nxdomain www.foobar.com",
        "update add new.foobar.com 60 A 192.0.2.5",
    ]);
    assert_ne!(code, Some(0), "{out}");
    assert!(out.contains("YXDOMAIN"), "{out}");
    assert!(look(&server, "new.foobar.com", "A").is_empty());
    assert_eq!(server.soa_serial("foobar.com"), before);

    // A prerequisite that holds lets the update through.
    let (code, out) = server.nsupdate_signed(&[
        "prereq yxrrset www.foobar.com CNAME",
        "update add new.foobar.com 60 A 192.0.2.5",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        look(&server, "new.foobar.com", "A"),
        vec![("A".to_string(), "192.0.2.5".to_string())]
    );
}

/// What a raw signed packet needs: the secret of the server's key (in `data`)
/// and the time now, in seconds.
fn signing(data: &TempDir) -> (Vec<u8>, u64) {
    use base64::Engine as _;
    let secret = base64::engine::general_purpose::STANDARD
        .decode(printed_key(data)["secret"].as_str().unwrap())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (secret, now)
}

/// `record` in another class, with another TTL.
fn recast(mut record: Record, class: DNSClass, ttl: u32) -> Record {
    record.dns_class = class;
    record.ttl = ttl;
    record
}

#[test]
fn dyn_malformed_signed_updates_get_formerr_and_change_nothing() {
    skip_unless!(require_tool("dig", "bind9-dnsutils"));
    let (_zones, data, server) = onebox_with_data("");
    let ((secret, now), before) = (signing(&data), server.soa_serial("foobar.com"));
    // An empty record of `rtype` at x.foobar.com (RDLENGTH 0).
    let empty = |rtype| Record::update0(Name::from_ascii("x.foobar.com.").unwrap(), 0, rtype);
    // Each an add_a made wrong in one documented way (RFC 2136 §3).
    let mut cases: Vec<(&str, Message)> = Vec::new();
    let mut case = |what: &'static str, change: &dyn Fn(&mut Message)| {
        let mut message = add_a("x.foobar.com.");
        change(&mut message);
        cases.push((what, message));
    };
    case("no zone", &|m| m.queries.clear());
    case("two zones", &|m| {
        let zone = m.queries[0].clone();
        m.queries.push(zone);
    });
    case("a zone of type A", &|m| {
        m.queries[0].set_query_type(RecordType::A);
    });
    case("a TTL above 2^31 - 1", &|m| m.authorities[0].ttl = 1 << 31);
    case("class ANY with a TTL", &|m| {
        m.authorities[0] = recast(empty(RecordType::A), DNSClass::ANY, 60)
    });
    case("class ANY with data", &|m| {
        m.authorities[0] = recast(m.authorities[0].clone(), DNSClass::ANY, 0)
    });
    case("class NONE of type ANY", &|m| {
        m.authorities[0] = recast(empty(RecordType::ANY), DNSClass::NONE, 0)
    });
    case("class NONE with a TTL", &|m| {
        m.authorities[0] = recast(m.authorities[0].clone(), DNSClass::NONE, 60)
    });
    case("class IN of type ANY", &|m| {
        m.authorities[0] = recast(empty(RecordType::ANY), DNSClass::IN, 60)
    });
    case("class IN without data", &|m| {
        m.authorities[0] = recast(empty(RecordType::A), DNSClass::IN, 60)
    });
    case("an AXFR in the update section", &|m| {
        m.authorities[0] = recast(empty(RecordType::AXFR), DNSClass::ANY, 0)
    });
    case("a prerequisite with a TTL", &|m| {
        m.answers
            .push(recast(empty(RecordType::A), DNSClass::ANY, 60))
    });
    case("a prerequisite of class NONE with data", &|m| {
        let record = recast(m.authorities[0].clone(), DNSClass::NONE, 0);
        m.answers.push(record)
    });
    let mut packets: Vec<(&str, Vec<u8>)> = cases
        .iter()
        .map(|(what, message)| (*what, sign(message, "onebox-update.", &secret, now)))
        .collect();
    // Signed bytes that do not parse: an A record whose data is 3 bytes.
    let mut short = encode(&add_a("x.foobar.com."));
    let rdlength = short.len() - 6;
    short[rdlength + 1] = 3;
    short.pop();
    packets.push((
        "an A record of 3 bytes",
        sign_bytes(short, "onebox-update.", &secret, now),
    ));

    for (what, packet) in &packets {
        // FORMERR (1), signed with no TSIG error: the key was right, the message not.
        let reply = tcp_raw(server.dns_addr(), packet);
        assert_eq!(rcode_and_tsig_error(&reply), (1, Some(0)), "{what}");
    }
    assert_unchanged_then_applied(&server, before, &secret, now);
}
