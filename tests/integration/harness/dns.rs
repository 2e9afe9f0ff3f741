//! The DNS side of the harness: real `dig` (run and parsed), and our own few lines
//! of DNS client over `std::net` sockets with hickory-proto messages, for the
//! packets dig will not send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{Name, Record, RecordType};

use super::{Onebox, assert_tool, run_bounded};

// ---------------------------------------------------------------------------------
// dig
// ---------------------------------------------------------------------------------

/// One resource record as dig prints it: `www.foobar.com. 3600 IN CNAME foobar.com.`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigRecord {
    pub name: String,
    pub ttl: u32,
    pub class: String,
    pub rtype: String,
    pub data: String,
}

/// What `dig` printed, parsed. For a message dig printed twice (a truncated UDP
/// answer retried over TCP) the last one wins.
#[derive(Debug, Clone, Default)]
pub struct Dig {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`, ...; empty if dig got no answer.
    pub status: String,
    pub opcode: String,
    pub flags: Vec<String>,
    /// The QUESTION section lines, without the leading `;`.
    pub question: Vec<String>,
    pub answer: Vec<DigRecord>,
    pub authority: Vec<DigRecord>,
    pub additional: Vec<DigRecord>,
    /// The OPT pseudosection lines, without the leading `; `; empty = no OPT.
    pub opt: Vec<String>,
    /// `MSG SIZE  rcvd:`.
    pub size: Option<usize>,
}

impl Dig {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Asserts an authoritative answer (AA set) with this status.
    pub fn assert_authoritative(&self, status: &str) {
        assert_eq!(self.status, status, "{}", self.stdout);
        assert!(self.has_flag("aa"), "no AA: {}", self.stdout);
    }

    /// The `; EDNS: version: 0, flags: do; udp: 1232` line, if there was an OPT.
    pub fn edns_line(&self) -> Option<&str> {
        self.opt
            .iter()
            .find(|l| l.starts_with("EDNS:"))
            .map(String::as_str)
    }

    /// Answer records of one type.
    pub fn answers_of(&self, rtype: &str) -> Vec<&DigRecord> {
        self.answer.iter().filter(|r| r.rtype == rtype).collect()
    }
}

impl Onebox {
    /// The same `dig` over UDP (`+notcp`) and over TCP (`+tcp`).
    pub fn dig_udp_and_tcp(&self, args: &[&str]) -> [Dig; 2] {
        ["+notcp", "+tcp"].map(|transport| self.dig(&[&[transport], args].concat()))
    }

    /// The serial of `zone`'s SOA as dig sees it now.
    pub fn soa_serial(&self, zone: &str) -> u32 {
        soa_serial_at(self.dns_addr(), zone)
            .unwrap_or_else(|| panic!("no SOA for {zone} from {}", self.dns_addr()))
    }

    /// The A records `dig` sees for `name`.
    pub fn dig_a(&self, name: &str) -> Vec<String> {
        dig_a_at(self.dns_addr(), name)
    }

    /// Runs `nsupdate ARGS SCRIPT` against this server for zone foobar.com (the
    /// script, `LINES` then `send`, is a file: nsupdate reads it as it would
    /// stdin) and returns (exit code, stdout + stderr).
    pub fn nsupdate(&self, args: &[&str], lines: &[&str]) -> (Option<i32>, String) {
        nsupdate_at(self.dns_addr(), args, lines)
    }

    /// [`Onebox::nsupdate`] signed with onebox's own TSIG key (`nsupdate -k`).
    pub fn nsupdate_signed(&self, lines: &[&str]) -> (Option<i32>, String) {
        let key = self.ready_path("tsig").display().to_string();
        self.nsupdate(&["-k", &key], lines)
    }

    /// Sends each of `messages` (its update lines) as one UPDATE, signed with
    /// onebox's TSIG key, all from one nsupdate run; returns (exit code, output).
    pub fn nsupdate_messages(&self, messages: &[Vec<String>]) -> (Option<i32>, String) {
        let last = messages.len().saturating_sub(1);
        let lines: Vec<&str> = messages
            .iter()
            .enumerate()
            .flat_map(|(i, lines)| {
                // nsupdate() sends the last message itself.
                let send = (i < last).then_some("send");
                lines.iter().map(String::as_str).chain(send)
            })
            .collect();
        self.nsupdate_signed(&lines)
    }

    /// One update `line` signed with onebox's TSIG key; fails the test unless
    /// nsupdate succeeds.
    pub fn nsupdate_ok(&self, line: &str) {
        let (code, out) = self.nsupdate_signed(&[line]);
        assert_eq!(code, Some(0), "{line}: {out}");
    }
}

/// [`Onebox::nsupdate`] against any DNS server at `dns`.
pub fn nsupdate_at(dns: SocketAddr, args: &[&str], lines: &[&str]) -> (Option<i32>, String) {
    super::assert_tool("nsupdate", "bind9-dnsutils");
    let dir = super::TempDir::new("nsupdate");
    let mut script = format!("server {} {}\nzone foobar.com\n", dns.ip(), dns.port());
    for line in lines {
        script.push_str(line);
        script.push('\n');
    }
    script.push_str("send\n");
    let file = dir.write("script", &script);
    let mut command = super::piped("nsupdate");
    command.args(args).arg(&file);
    let (status, stdout, stderr) = super::run_bounded(command);
    (status.code(), format!("{stdout}{stderr}"))
}

/// `Onebox::start()` for a test that asks it with dig: `None`, and the test
/// returns, where dig is missing (see [`require_tool`](super::require_tool)).
pub fn dig_onebox() -> Option<Onebox> {
    super::require_tool("dig", "bind9-dnsutils").then(Onebox::start)
}

/// [`dig_onebox`] on a zones folder of [`TEST_ZONE_HEAD`](super::TEST_ZONE_HEAD) +
/// `extra`; the folder comes back too, to keep it (and edit it) for the test.
pub fn dig_onebox_on(extra: &str) -> Option<(super::TempDir, Onebox)> {
    dig_onebox_with(extra, &[])
}

/// [`dig_onebox_on`] with more files (name, text) in the zones folder before
/// onebox starts: other zones, `$INCLUDE`d files.
pub fn dig_onebox_with(extra: &str, files: &[(&str, &str)]) -> Option<(super::TempDir, Onebox)> {
    super::require_tool("dig", "bind9-dnsutils").then(|| {
        let zones = super::test_zones(extra);
        for (name, text) in files {
            zones.write(name, text);
        }
        let server = Onebox::start_with_zones(&zones);
        (zones, server)
    })
}

/// Whether dig and nsupdate are both here (see [`require_tool`](super::require_tool)):
/// what a test that updates onebox and checks with dig needs.
pub fn nsupdate_tools() -> bool {
    super::require_tool("dig", "bind9-dnsutils")
        && super::require_tool("nsupdate", "bind9-dnsutils")
}

/// onebox on a zones folder of [`TEST_ZONE_HEAD`](super::TEST_ZONE_HEAD) with
/// serve `args`; the folder comes back too, to keep it for the test.
pub fn onebox_on_test_zones(args: &[&str]) -> (super::TempDir, Onebox) {
    let zones = super::test_zones("");
    let server = Onebox::spawn().zones(&zones).args(args).start();
    (zones, server)
}

/// onebox on a zones folder of [`TEST_ZONE_HEAD`](super::TEST_ZONE_HEAD) + `extra`
/// and a data folder of its own (where the zone journal and the TSIG key live);
/// both folders come back too, to keep them for the test (and restart on them).
pub fn onebox_with_data(extra: &str) -> (super::TempDir, super::TempDir, Onebox) {
    let zones = super::test_zones(extra);
    let data = super::TempDir::new("data");
    let server = Onebox::spawn().zones(&zones).data(data.path()).start();
    (zones, data, server)
}

/// The serial of `zone`'s SOA at any DNS server (onebox, Knot, NSD), or `None`
/// when it does not answer with exactly one SOA.
pub fn soa_serial_at(server: SocketAddr, zone: &str) -> Option<u32> {
    let dig = dig(server, &[zone, "SOA"]);
    let soa = dig.answers_of("SOA");
    if soa.len() != 1 {
        return None;
    }
    soa[0].data.split_whitespace().nth(2)?.parse().ok()
}

/// The A records `dig` sees for `name` at any DNS server.
pub fn dig_a_at(server: SocketAddr, name: &str) -> Vec<String> {
    dig(server, &[name, "A"])
        .answers_of("A")
        .iter()
        .map(|r| r.data.clone())
        .collect()
}

/// Runs `dig @SERVER -p PORT +time=2 +tries=1 +norec ARGS...` and parses its output.
/// Fails the test if dig is not installed.
pub fn dig(server: SocketAddr, args: &[&str]) -> Dig {
    assert_tool("dig", "bind9-dnsutils");
    let mut command = super::piped("dig");
    command
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=2", "+tries=1", "+norec"])
        .args(args);
    let (status, stdout, stderr) = run_bounded(command);
    let mut dig = parse_dig(&stdout);
    dig.stderr = stderr;
    dig.exit_code = status.code();
    dig
}

/// Parses dig's default output format.
pub fn parse_dig(stdout: &str) -> Dig {
    let mut dig = Dig {
        stdout: stdout.to_string(),
        ..Dig::default()
    };
    #[derive(PartialEq)]
    enum Section {
        None,
        Opt,
        Question,
        Answer,
        Authority,
        Additional,
    }
    let mut section = Section::None;
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix(";; ->>HEADER<<- ") {
            // A new message: forget an earlier (truncated) one.
            let keep = (dig.stdout.clone(), dig.stderr.clone());
            dig = Dig {
                stdout: keep.0,
                stderr: keep.1,
                ..Dig::default()
            };
            for part in rest.split(", ") {
                if let Some(v) = part.strip_prefix("opcode: ") {
                    dig.opcode = v.to_string();
                } else if let Some(v) = part.strip_prefix("status: ") {
                    dig.status = v.to_string();
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix(";; flags:") {
            let flags = rest.split(';').next().unwrap_or("");
            dig.flags = flags.split_whitespace().map(String::from).collect();
            continue;
        }
        if let Some(rest) = line.strip_prefix(";; MSG SIZE  rcvd: ") {
            dig.size = rest.trim().parse().ok();
            continue;
        }
        match line {
            ";; OPT PSEUDOSECTION:" => section = Section::Opt,
            ";; QUESTION SECTION:" => section = Section::Question,
            ";; ANSWER SECTION:" => section = Section::Answer,
            ";; AUTHORITY SECTION:" => section = Section::Authority,
            ";; ADDITIONAL SECTION:" => section = Section::Additional,
            "" => section = Section::None,
            _ => match section {
                Section::None => {}
                Section::Opt => dig
                    .opt
                    .push(line.trim_start_matches(';').trim().to_string()),
                Section::Question => dig.question.push(line.trim_start_matches(';').to_string()),
                Section::Answer => dig.answer.extend(parse_record(line)),
                Section::Authority => dig.authority.extend(parse_record(line)),
                Section::Additional => dig.additional.extend(parse_record(line)),
            },
        }
    }
    dig
}

/// Parses one `name ttl class type data...` line of dig output.
pub fn parse_record(line: &str) -> Option<DigRecord> {
    let mut parts = line.split_whitespace();
    let name = parts.next()?.to_string();
    let ttl = parts.next()?.parse().ok()?;
    let class = parts.next()?.to_string();
    let rtype = parts.next()?.to_string();
    let data = parts.collect::<Vec<_>>().join(" ");
    Some(DigRecord {
        name,
        ttl,
        class,
        rtype,
        data,
    })
}

/// Every record line of a zone transfer listing (dig AXFR prints no sections).
pub fn axfr_records(stdout: &str) -> Vec<DigRecord> {
    stdout
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .filter_map(parse_record)
        .collect()
}

// ---------------------------------------------------------------------------------
// Our own DNS client
// ---------------------------------------------------------------------------------

/// A query for `name`/`rtype`, class IN, RD clear, no EDNS, with a fresh ID.
pub fn query(name: &str, rtype: RecordType) -> Message {
    static NEXT_ID: AtomicU32 = AtomicU32::new(0x1234);
    let id = NEXT_ID.fetch_add(7919, Ordering::Relaxed) as u16;
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii(name).expect("valid query name");
    message.add_query(Query::query(name, rtype));
    message
}

/// The same query with an OPT record advertising `payload` bytes.
pub fn with_edns(mut message: Message, payload: u16) -> Message {
    let mut edns = Edns::new();
    edns.set_max_payload(payload);
    edns.set_version(0);
    message.edns = Some(edns);
    message
}

pub fn encode(message: &Message) -> Vec<u8> {
    message.to_vec().expect("encode a DNS message")
}

pub fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).unwrap_or_else(|e| panic!("reply does not parse ({e}): {bytes:02x?}"))
}

/// Sends one UDP datagram from a fresh socket and returns the first reply within
/// `wait`, or `None`. A `None` is what the server sends to packets it must ignore.
pub fn udp_try(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP client socket");
    socket.connect(server).expect("connect UDP socket");
    socket.set_read_timeout(Some(wait)).expect("set timeout");
    socket.send(packet).expect("send UDP");
    let mut buf = vec![0u8; 65_535];
    match socket.recv(&mut buf) {
        Ok(n) => Some(buf[..n].to_vec()),
        Err(_) => None,
    }
}

/// Sends raw query bytes over UDP and returns the raw reply; panics if none arrives.
pub fn udp_raw(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    udp_try(server, packet, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("no UDP reply from {server} to {packet:02x?}"))
}

/// Asks over UDP and returns the parsed reply, checking that its ID matches.
pub fn ask_udp(server: SocketAddr, message: &Message) -> Message {
    let reply = decode(&udp_raw(server, &encode(message)));
    assert_eq!(reply.metadata.id, message.metadata.id, "reply ID");
    reply
}

/// Opens a TCP connection to the server with generous I/O deadlines.
pub fn tcp_connect(server: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(server).expect("connect TCP");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("set read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("set write timeout");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// Prefixes a message with its two-byte length (RFC 1035 §4.2.2).
pub fn frame(message: &[u8]) -> Vec<u8> {
    let len = u16::try_from(message.len()).expect("message under 64 KiB");
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    framed
}

/// Reads one length-prefixed message from a TCP stream.
pub fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut body)?;
    Ok(body)
}

/// Sends raw query bytes over a new TCP connection and returns the raw reply.
pub fn tcp_raw(server: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut stream = tcp_connect(server);
    stream.write_all(&frame(packet)).expect("write TCP query");
    read_framed(&mut stream).expect("read TCP reply")
}

/// Asks over TCP and returns the parsed reply, checking that its ID matches.
pub fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
    let reply = decode(&tcp_raw(server, &encode(message)));
    assert_eq!(reply.metadata.id, message.metadata.id, "reply ID");
    reply
}

/// The same question over UDP and over TCP: both replies, UDP's first.
pub fn ask_udp_and_tcp(server: SocketAddr, message: &Message) -> [Message; 2] {
    [ask_udp(server, message), ask_tcp(server, message)]
}

/// A record as `(name, ttl, TYPE, data)`, names lower case with the trailing dot.
pub fn summary(record: &Record) -> (String, u32, String, String) {
    (
        record.name.to_lowercase().to_ascii(),
        record.ttl,
        record.record_type().to_string(),
        record.data.to_string(),
    )
}

/// The record types of a section, in order.
pub fn types(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.record_type().to_string())
        .collect()
}

/// SplitMix64: a tiny deterministic PRNG, so a failing packet can be reproduced.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// Asserts the server still answers `foobar.com SOA` over UDP, the liveness probe
/// after abuse.
pub fn assert_alive(server: &mut Onebox) {
    assert!(server.is_running(), "onebox exited:\n{}", server.stderr());
    let reply = ask_udp(server.dns_addr(), &query("foobar.com.", RecordType::SOA));
    assert_eq!(
        reply.metadata.response_code,
        hickory_server::proto::op::ResponseCode::NoError
    );
    assert_eq!(types(&reply.answers), ["SOA"]);
}

/// Each record as (TYPE, data), to compare a whole section in one assertion.
pub fn type_data(records: &[DigRecord]) -> Vec<(&str, &str)> {
    records
        .iter()
        .map(|r| (r.rtype.as_str(), r.data.as_str()))
        .collect()
}

/// Each record as (TYPE, TTL).
pub fn type_ttl(records: &[DigRecord]) -> Vec<(&str, u32)> {
    records.iter().map(|r| (r.rtype.as_str(), r.ttl)).collect()
}

/// Each record as (name, TYPE, data).
pub fn name_type_data(records: &[DigRecord]) -> Vec<(&str, &str, &str)> {
    records
        .iter()
        .map(|r| (r.name.as_str(), r.rtype.as_str(), r.data.as_str()))
        .collect()
}

/// The TYPE of each record, in order.
pub fn rtypes(records: &[DigRecord]) -> Vec<&str> {
    records.iter().map(|r| r.rtype.as_str()).collect()
}
