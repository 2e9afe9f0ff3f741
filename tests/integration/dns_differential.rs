//! Proves onebox answers like NSD and Knot (checklist D25): the same zone served by
//! all three, each started here on its own loopback port, gets the same generated
//! corpus of queries over UDP and TCP. Rcode, header flags, the echoed question,
//! ANSWER, AUTHORITY and OPT must be equal; ADDITIONAL is compared leniently. A
//! difference passes only if `ALLOWED` explains it (the standards leave that choice
//! to the server) or `KNOWN_ONEBOX_BUGS` lists it (to be fixed in src/); any other
//! difference fails with every server's answer side by side.
//!
//! `cargo test --test dns_differential -- --nocapture` prints the summary counts.
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{Name, Record, RecordType};

/// A zone with the shapes an authoritative server gets wrong: SOA TTL 3600 but
/// MINIMUM 300 (negative answers must say 300, RFC 2308 §3), a wildcard with an
/// exact name beside it, a delegation with in-bailiwick glue, a CNAME chain, CNAMEs
/// to a wildcard, into the delegation, to nothing and out of the zone, empty non-terminals (`c`, `b.c`,
/// `wild`, `_tcp`), and a TXT RRset too big for 512 bytes (truncation without EDNS).
const RICH_ZONE: &str = r#"$ORIGIN foobar.com.
$TTL 3600
@          3600 IN SOA   ns1.foobar.com. hostmaster.foobar.com. 7 7200 3600 1209600 300
@          3600 IN NS    ns1.foobar.com.
@          3600 IN NS    ns2.foobar.com.
@          3600 IN A     127.0.0.1
@          3600 IN AAAA  ::1
@          3600 IN MX    10 mail.foobar.com.
@          3600 IN MX    20 mx.example.net.
@          3600 IN TXT   "v=spf1 -all"
@          3600 IN HTTPS 1 . alpn=h2
ns1        3600 IN A     127.0.0.1
ns2        3600 IN A     127.0.0.2
ns2        3600 IN AAAA  ::2
mail       3600 IN A     127.0.0.3
www        3600 IN CNAME foobar.com.
alias1     300  IN CNAME alias2.foobar.com.
alias2     600  IN CNAME www.foobar.com.
ext        3600 IN CNAME www.example.org.
dangling   3600 IN CNAME nothere.foobar.com.
towild     3600 IN CNAME host.wild.foobar.com.
tosub      3600 IN CNAME host.sub.foobar.com.
*.wild     600  IN A     127.0.0.4
*.wild     600  IN TXT   "wildcard"
exact.wild 600  IN A     127.0.0.5
a.b.c      3600 IN A     127.0.0.6
sub        3600 IN NS    ns.sub.foobar.com.
sub        3600 IN NS    ns.example.net.
ns.sub     3600 IN A     127.0.0.7
_sip._tcp  3600 IN SRV   10 5 5060 sip.foobar.com.
sip        3600 IN A     127.0.0.8
multi      3600 IN A     127.0.0.9
multi      3600 IN A     127.0.0.10
multi      3600 IN A     127.0.0.11
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd00"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd01"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd02"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd03"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd04"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd05"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd06"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd07"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd08"
big        3600 IN TXT   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd09"
txt        3600 IN TXT   "two" "strings"
"#;

/// The names asked about in the rich zone: every record above, the names between
/// them, names that do not exist, and names outside the zone (including ones that
/// merely end in "foobar.com" or contain it).
const RICH_NAMES: &[&str] = &[
    "foobar.com.",
    "www.foobar.com.",
    "alias1.foobar.com.",
    "ext.foobar.com.",
    "dangling.foobar.com.",
    "towild.foobar.com.",
    "tosub.foobar.com.",
    "host.wild.foobar.com.",
    "a.b.wild.foobar.com.",
    "exact.wild.foobar.com.",
    "a.exact.wild.foobar.com.",
    "wild.foobar.com.",
    "*.wild.foobar.com.",
    "a.b.c.foobar.com.",
    "b.c.foobar.com.",
    "x.b.c.foobar.com.",
    "sub.foobar.com.",
    "x.sub.foobar.com.",
    "ns.sub.foobar.com.",
    "_sip._tcp.foobar.com.",
    "_tcp.foobar.com.",
    "mail.foobar.com.",
    "multi.foobar.com.",
    "big.foobar.com.",
    "txt.foobar.com.",
    "ns2.foobar.com.",
    "nope.foobar.com.",
    "deep.nope.foobar.com.",
    "x.www.foobar.com.",
    "example.org.",
    "com.",
    ".",
    "xfoobar.com.",
    "foobar.com.example.org.",
];

/// The names asked about in the shipped zone.
const SHIPPED_NAMES: &[&str] = &[
    "foobar.com.",
    "www.foobar.com.",
    "ns1.foobar.com.",
    "nope.foobar.com.",
    "x.www.foobar.com.",
    "example.org.",
    "com.",
];

/// Every name is asked for each of these types.
const QTYPES: &[RecordType] = &[
    RecordType::A,
    RecordType::AAAA,
    RecordType::MX,
    RecordType::TXT,
    RecordType::NS,
    RecordType::SOA,
    RecordType::CNAME,
    RecordType::ANY,
    RecordType::HTTPS,
    RecordType::SRV,
    RecordType::DS,
    RecordType::Unknown(1000),
];

/// One query of the corpus.
#[derive(Debug, Clone)]
struct Case {
    /// As sent, case and all.
    qname: String,
    qtype: RecordType,
    /// The query's OPT record: `Some((version, UDP payload size))`, or no EDNS.
    edns: Option<(u8, u16)>,
    /// The DO bit (only with `edns`).
    dnssec_ok: bool,
    /// RD, which an authoritative server copies and ignores.
    rd: bool,
    /// CD (RFC 4035 §3.2.2).
    cd: bool,
    tcp: bool,
}

/// What a modern stub sends: EDNS version 0 with the DNS Flag Day 2020 size.
const EDNS0: Option<(u8, u16)> = Some((0, 1232));

impl Case {
    /// `name TYPE` over UDP with [`EDNS0`], no flags.
    fn new(qname: &str, qtype: RecordType) -> Self {
        Self {
            qname: qname.to_string(),
            qtype,
            edns: EDNS0,
            dnssec_ok: false,
            rd: false,
            cd: false,
            tcp: false,
        }
    }

    /// The query as dig would spell it, e.g. `udp WwW.foobar.com. AAAA +edns +do`.
    fn label(&self) -> String {
        let mut label = format!(
            "{} {} {}",
            if self.tcp { "tcp" } else { "udp" },
            self.qname,
            type_name(self.qtype)
        );
        match self.edns {
            None => label.push_str(" +noedns"),
            Some(edns) if Some(edns) == EDNS0 => label.push_str(" +edns"),
            Some((version, payload)) => {
                let _ = write!(label, " +edns={version} +bufsize={payload}");
            }
        }
        for (on, flag) in [
            (self.dnssec_ok, " +do"),
            (self.rd, " +rd"),
            (self.cd, " +cd"),
        ] {
            if on {
                label.push_str(flag);
            }
        }
        label
    }

    /// `name TYPE` with the name lower case: how `KNOWN_ONEBOX_BUGS` names a query.
    fn key(&self) -> String {
        format!(
            "{} {}",
            self.qname.to_ascii_lowercase(),
            type_name(self.qtype)
        )
    }

    fn message(&self, id: u16) -> Message {
        let mut message = Message::new(id, MessageType::Query, OpCode::Query);
        let name = Name::from_ascii(&self.qname).expect("corpus names are valid");
        message.add_query(Query::query(name, self.qtype));
        message.metadata.recursion_desired = self.rd;
        message.metadata.checking_disabled = self.cd;
        if let Some((version, payload)) = self.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(payload);
            edns.set_version(version);
            edns.set_dnssec_ok(self.dnssec_ok);
            message.edns = Some(edns);
        }
        message
    }
}

/// Every name with every type (EDNS, the plain case), and beside each one variant
/// that rotates through no EDNS, DO with a mIxEd-case name, RD+CD, TCP, and TCP
/// without EDNS. Deterministic: the same corpus on every run.
fn corpus(names: &[&str]) -> Vec<Case> {
    let mut rng = Rng(0xd25);
    let mut cases = Vec::new();
    let pairs = names
        .iter()
        .flat_map(|name| QTYPES.iter().map(move |qtype| (*name, *qtype)));
    for (i, (name, qtype)) in pairs.enumerate() {
        let base = Case::new(name, qtype);
        let mut variant = base.clone();
        match i % 5 {
            0 => variant.edns = None,
            1 => {
                variant.dnssec_ok = true;
                variant.qname = scramble_case(name, &mut rng);
            }
            2 => (variant.rd, variant.cd) = (true, true),
            3 => variant.tcp = true,
            _ => {
                (variant.tcp, variant.edns, variant.rd) = (true, None, true);
                variant.qname = scramble_case(name, &mut rng);
            }
        }
        cases.push(base);
        cases.push(variant);
    }
    cases
}

/// Size and EDNS edges for the rich zone. `big TXT` (about 700 bytes) does not fit
/// 512: without EDNS or with a 512-byte buffer, UDP must set TC (RFC 1035 §4.2.1,
/// RFC 6891 §7) and TCP must carry it whole. EDNS version 1 must get BADVERS
/// (RFC 6891 §6.1.3), a 4096-byte buffer an OPT that offers 1232.
fn edge_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for qtype in [RecordType::TXT, RecordType::ANY] {
        for (edns, tcp) in [(None, false), (None, true), (Some((0, 512)), false)] {
            cases.push(Case {
                edns,
                tcp,
                ..Case::new("big.foobar.com.", qtype)
            });
        }
    }
    cases.push(Case {
        edns: Some((0, 4096)),
        ..Case::new("big.foobar.com.", RecordType::TXT)
    });
    for (name, qtype) in [
        ("foobar.com.", RecordType::SOA),
        ("www.foobar.com.", RecordType::A),
        ("nope.foobar.com.", RecordType::A),
        ("example.org.", RecordType::A),
    ] {
        for tcp in [false, true] {
            cases.push(Case {
                edns: Some((1, 1232)),
                tcp,
                dnssec_ok: tcp,
                ..Case::new(name, qtype)
            });
        }
    }
    cases
}

/// `TXT`, or `TYPE1000` for a type without a mnemonic (RFC 3597 §5).
fn type_name(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// `foobar.com.` → `FoObAR.cOm.`, the same way on every run.
fn scramble_case(name: &str, rng: &mut Rng) -> String {
    name.chars()
        .map(|c| {
            if rng.next() & 1 == 1 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// One record as compared: (owner lower case, TYPE, TTL, RDATA); sections are
/// compared as sorted lists of these. RDATA is lower
/// case too except in TXT, because names in RDATA compare without case and servers
/// compress them against the question, whose case is the client's.
type Rr = (String, String, u32, String);

/// A reply reduced to what the comparison looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct View {
    /// `NoError`, `NXDomain`, `BADVERS`, ...; or `no reply`, `unparseable: ...`.
    rcode: String,
    /// The question echoed back, case and all.
    question: String,
    /// Which of `aa tc ra rd ad` are set.
    flags: String,
    cd: bool,
    answer: Vec<Rr>,
    authority: Vec<Rr>,
    additional: Vec<Rr>,
    /// `none`, or `v0`, `v0 do`.
    opt: String,
    /// The OPT's advertised UDP payload size.
    payload: Option<u16>,
}

impl View {
    fn of(reply: Option<Vec<u8>>, id: u16) -> Self {
        let Some(bytes) = reply else {
            return Self {
                rcode: "no reply".into(),
                ..Self::default()
            };
        };
        let message = match Message::from_vec(&bytes) {
            Ok(message) => message,
            Err(e) => {
                return Self {
                    rcode: format!("unparseable: {e}: {bytes:02x?}"),
                    ..Self::default()
                };
            }
        };
        let m = &message.metadata;
        if m.id != id {
            return Self {
                rcode: format!("reply ID {} to query ID {id}", m.id),
                ..Self::default()
            };
        }
        let flags = [
            (m.authoritative, "aa"),
            (m.truncation, "tc"),
            (m.recursion_available, "ra"),
            (m.recursion_desired, "rd"),
            (m.authentic_data, "ad"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, flag)| *flag)
        .collect::<Vec<_>>()
        .join(" ");
        // Sorted, not deduplicated: a record sent twice is a difference too.
        let section = |records: &[Record]| {
            let mut section: Vec<Rr> = records.iter().map(rr).collect();
            section.sort();
            section
        };
        Self {
            rcode: rcode_name(m.response_code),
            question: message
                .queries
                .iter()
                .map(|q| format!("{} {}", q.name(), q.query_type()))
                .collect::<Vec<_>>()
                .join(", "),
            flags,
            cd: m.checking_disabled,
            answer: section(&message.answers),
            authority: section(&message.authorities),
            additional: section(&message.additionals),
            opt: match &message.edns {
                None => "none".into(),
                Some(edns) if edns.flags().dnssec_ok => format!("v{} do", edns.version()),
                Some(edns) => format!("v{}", edns.version()),
            },
            payload: message.edns.as_ref().map(Edns::max_payload),
        }
    }

    fn tc(&self) -> bool {
        self.flags.split(' ').any(|f| f == "tc")
    }

    /// A referral: not authoritative, the child's NS RRset in AUTHORITY.
    fn is_referral(&self) -> bool {
        !self.flags.split(' ').any(|f| f == "aa")
            && self.answer.is_empty()
            && self.authority.iter().any(|(_, rtype, ..)| rtype == "NS")
    }

    /// The field, printed for a diff.
    fn show(&self, field: Field) -> String {
        let records = |set: &Vec<Rr>| {
            if set.is_empty() {
                return "(empty)".to_string();
            }
            set.iter()
                .map(|(name, rtype, ttl, data)| format!("{name} {ttl} {rtype} {data}"))
                .collect::<Vec<_>>()
                .join("\n            ")
        };
        match field {
            Field::Rcode => self.rcode.clone(),
            Field::Question => self.question.clone(),
            Field::Flags => format!("[{}]", self.flags),
            Field::Cd => format!("cd={}", self.cd),
            Field::Answer => records(&self.answer),
            Field::Authority => records(&self.authority),
            Field::Additional => records(&self.additional),
            Field::Opt => self.opt.clone(),
            Field::Payload => format!("{:?}", self.payload),
        }
    }
}

/// `NoError`, `NXDomain`, ...; 16 is BADVERS here (hickory calls it BADSIG, the
/// TSIG meaning of the same number).
fn rcode_name(code: ResponseCode) -> String {
    if u16::from(code) == 16 {
        "BADVERS".into()
    } else {
        format!("{code:?}")
    }
}

fn rr(record: &Record) -> Rr {
    let rtype = record.record_type();
    let data = record.data.to_string();
    let data = if rtype == RecordType::TXT {
        data
    } else {
        data.to_ascii_lowercase()
    };
    (
        record.name.to_lowercase().to_ascii(),
        rtype.to_string(),
        record.ttl,
        data,
    )
}

/// The parts of a reply compared one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    Rcode,
    Question,
    Flags,
    Cd,
    Answer,
    Authority,
    Opt,
    Payload,
    Additional,
}

const FIELDS: [Field; 9] = [
    Field::Rcode,
    Field::Question,
    Field::Flags,
    Field::Cd,
    Field::Answer,
    Field::Authority,
    Field::Opt,
    Field::Payload,
    Field::Additional,
];

/// The servers in the order of every `[View; 3]`.
const SERVERS: [&str; 3] = ["onebox", "NSD", "Knot"];

/// A difference that is not a bug: the standards let each server choose.
struct Allowance {
    reason: &'static str,
    applies: fn(&Case, Field, &[View; 3]) -> bool,
}

const ALLOWED: &[Allowance] = &[
    Allowance {
        reason: "ANY: RFC 8482 §4.1 lets each server pick which RRset it returns; \
                 onebox returns exactly one, owned by the query name",
        applies: |case, field, views| {
            let [onebox, nsd, knot] = views;
            case.qtype == RecordType::ANY
                && field == Field::Answer
                && onebox.answer.is_empty() == nsd.answer.is_empty()
                && onebox.answer.is_empty() == knot.answer.is_empty()
                && one_rrset_owned_by(&onebox.answer, &case.qname)
        },
    },
    Allowance {
        reason: "CD: onebox copies it, as RFC 4035 §3 asks of a security-aware server; \
                 NSD and Knot clear it when serving an unsigned zone",
        applies: |case, field, views| {
            let [onebox, nsd, knot] = views;
            field == Field::Cd && case.cd && onebox.cd && !nsd.cd && !knot.cd
        },
    },
    Allowance {
        reason: "BADVERS: onebox copies DO into the error's OPT as RFC 3225 §3 asks of \
                 every response, and so does Knot; NSD clears it",
        applies: |_case, field, views| {
            let [onebox, _nsd, knot] = views;
            field == Field::Opt
                && views.iter().all(|v| v.rcode == "BADVERS")
                && onebox.opt == knot.opt
        },
    },
    Allowance {
        reason: "SOA queries: onebox (hickory) adds the apex NS RRset to AUTHORITY; optional \
                 data (RFC 2181 §6.1), which NSD without minimal-responses adds to every answer",
        applies: |case, field, views| {
            let [onebox, nsd, knot] = views;
            case.qtype == RecordType::SOA
                && field == Field::Authority
                && nsd.authority.is_empty()
                && knot.authority.is_empty()
                && !onebox.authority.is_empty()
                && onebox
                    .authority
                    .iter()
                    // The apex of each zone compared: foobar.com, and the toy
                    // Internet's com and root.
                    .all(|(name, rtype, ..)| {
                        matches!(name.as_str(), "foobar.com." | "com." | ".") && rtype == "NS"
                    })
        },
    },
    Allowance {
        reason: "ADDITIONAL, compared leniently: optional in answers (RFC 1034 §4.3.2 step 6; \
                 hickory adds the addresses of the first NS/MX/SRV target only, minimal NSD \
                 none, Knot all), so onebox may send less, but nothing neither NSD nor Knot \
                 sends, and in a referral every glue record both send",
        applies: |_case, field, views| {
            let [onebox, nsd, knot] = views;
            let glue_kept = !views.iter().any(View::is_referral)
                || nsd
                    .additional
                    .iter()
                    .filter(|r| knot.additional.contains(r))
                    .all(|r| onebox.additional.contains(r));
            field == Field::Additional && additional_within(onebox, nsd, knot) && glue_kept
        },
    },
];

/// True if everything onebox puts in ADDITIONAL, NSD or Knot puts there too.
fn additional_within(onebox: &View, nsd: &View, knot: &View) -> bool {
    onebox
        .additional
        .iter()
        .all(|r| nsd.additional.contains(r) || knot.additional.contains(r))
}

/// True if every record in `set` is owned by the query name and has one type.
fn one_rrset_owned_by(set: &[Rr], qname: &str) -> bool {
    let owner = qname.to_ascii_lowercase();
    let types: BTreeSet<_> = set.iter().map(|(_, rtype, _, _)| rtype).collect();
    set.iter().all(|(name, ..)| *name == owner) && types.len() <= 1
}

/// A onebox bug this test found, listed so the suite stays green until src/ fixes
/// it. Remove a query with its fix: a listed query that no longer differs fails
/// the test, so the list only shrinks when the bug is really gone.
struct KnownBug {
    /// Each `name TYPE`, the name lower case and absolute, stands for every variant
    /// (flags, case, transport) of that query in the corpus.
    queries: &'static [&'static str],
    /// The parts of the reply that differ.
    fields: &'static [Field],
    why: &'static str,
}

const KNOWN_ONEBOX_BUGS: &[KnownBug] = &[];

const NSD: &str = "/usr/sbin/nsd";
const KNOTD: &str = "/usr/sbin/knotd";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Daemon {
    Nsd,
    Knot,
}

impl Daemon {
    fn name(self) -> &'static str {
        match self {
            Daemon::Nsd => "NSD",
            Daemon::Knot => "Knot",
        }
    }

    /// Writes the daemon's configuration into `dir` and returns the command line.
    /// Every path the daemon writes to is inside `dir`; it runs in the foreground,
    /// as the current user, with one worker.
    fn command(self, dir: &Path, zone: &Path, port: u16) -> Command {
        let origin = origin_of(zone);
        let d = dir.display();
        let zone = zone.display();
        match self {
            Daemon::Nsd => {
                // minimal-responses: NSD's default adds the apex NS RRset to the
                // AUTHORITY of every positive answer; onebox and Knot answer
                // minimally, so compare against NSD's minimal mode. RRL is on by
                // default in Debian's NSD and would slip (TC=1) a burst from one
                // client; onebox exempts loopback.
                let head = nsd_conf_head(dir, port);
                let conf = format!(
                    r#"{head}    logfile: "{d}/nsd.log"
    verbosity: 1
    minimal-responses: yes
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: "{origin}"
    zonefile: "{zone}"
"#
                );
                let path = dir.join("nsd.conf");
                std::fs::write(&path, conf).expect("write nsd.conf");
                let mut command = Command::new(NSD);
                command.arg("-d").arg("-c").arg(path);
                command
            }
            Daemon::Knot => {
                let head = knot_conf_head(dir, port);
                let conf = format!(
                    r#"{head}template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
zone:
  - domain: "{origin}"
    file: "{zone}"
"#
                );
                let path = dir.join("knot.conf");
                std::fs::write(&path, conf).expect("write knot.conf");
                let mut command = Command::new(KNOTD);
                command.arg("-c").arg(path);
                command
            }
        }
    }
}

/// A running NSD or Knot. Dropping it stops its whole process group (NSD forks a
/// server and a transfer process beside the main one).
struct Oracle {
    child: Option<Child>,
    addr: SocketAddr,
    dir: PathBuf,
    /// The zone served, `foobar.com.` or `.`: readiness is its SOA answered.
    origin: String,
}

/// The zone a file holds, from its name: `foobar.com.zone` is `foobar.com.`,
/// `root.zone` the root (BIND's name for it), `com.zone` is `com.`.
fn origin_of(zone: &Path) -> String {
    let stem = zone
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".zone"))
        .expect("a zone file named ORIGIN.zone");
    match stem {
        "root" => ".".to_string(),
        stem => format!("{stem}."),
    }
}

impl Oracle {
    /// Starts the daemon on a free loopback port and waits until it answers the
    /// zone's SOA. Fails the test with the daemon's log if it cannot start: a
    /// missing oracle must not turn into a silently skipped comparison.
    fn start(daemon: Daemon, work: &Path, zone: &Path) -> Oracle {
        let program = match daemon {
            Daemon::Nsd => NSD,
            Daemon::Knot => KNOTD,
        };
        assert!(
            Path::new(program).is_file(),
            "{program} is not installed: run scripts/test.sh, or apt-get install {}",
            match daemon {
                Daemon::Nsd => "nsd",
                Daemon::Knot => "knot",
            }
        );
        // A free port can be taken by someone else between our check and the
        // daemon's bind; try another one then.
        let mut failures = String::new();
        for attempt in 1..=3 {
            let port = free_port();
            let dir = work.join(format!("{}-{attempt}", daemon.name().to_lowercase()));
            std::fs::create_dir_all(&dir).expect("create the daemon's folder");
            let output = File::create(dir.join("output.log")).expect("create output.log");
            let mut command = daemon.command(&dir, zone, port);
            command
                .stdin(Stdio::null())
                .stdout(output.try_clone().expect("clone a file handle"))
                .stderr(output)
                .process_group(0);
            let child = command
                .spawn()
                .unwrap_or_else(|e| panic!("failed to run {program}: {e}"));
            let mut oracle = Oracle {
                child: Some(child),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
                origin: origin_of(zone),
            };
            match oracle.wait_ready() {
                Ok(()) => return oracle,
                Err(why) => {
                    oracle.stop();
                    let logs = oracle.logs();
                    let _ = write!(failures, "\n--- attempt {attempt}: {why}\n{logs}");
                    if !logs.contains("already in use") {
                        break;
                    }
                }
            }
        }
        panic!(
            "{} did not start with zone {}:{failures}",
            daemon.name(),
            zone.display()
        );
    }

    /// Polls the zone's SOA until the daemon answers it with NOERROR.
    fn wait_ready(&mut self) -> Result<(), String> {
        let probe = encode(&query(&self.origin, RecordType::SOA));
        let deadline = Instant::now() + READY_WAIT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait().expect("try_wait")
            {
                return Err(format!("it exited with {status}"));
            }
            if let Some(reply) = udp_try(self.addr, &probe, Duration::from_millis(200))
                && let Ok(reply) = Message::from_vec(&reply)
                && reply.metadata.response_code == ResponseCode::NoError
                && !reply.answers.is_empty()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no SOA answer on {} within {READY_WAIT:?}",
                    self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the daemon logged: its output and its own log file.
    fn logs(&self) -> String {
        let mut all = String::new();
        for name in ["output.log", "nsd.log"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(name)) {
                let _ = write!(all, "[{name}]\n{text}");
            }
        }
        all
    }

    /// SIGTERM to the process group, SIGKILL after 5 s, then reap the leader.
    fn stop(&mut self) -> Option<()> {
        let mut child = self.child.take()?;
        let group = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; `-group` is the
        // process group this test created for the daemon (process_group(0)).
        unsafe { libc::kill(-group, libc::SIGTERM) };
        if wait_timeout(&mut child, Duration::from_secs(5)).is_none() {
            // SAFETY: as above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
            let _ = child.wait();
        }
        // The leader is gone; a helper it forked might not be. The group id stays
        // reserved while any member lives, so this reaches only the daemon's own.
        // SAFETY: as above.
        if unsafe { libc::kill(-group, 0) } == 0 {
            // SAFETY: as above.
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        Some(())
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// onebox, NSD and Knot serving one zone file. Fields drop in order: the servers
/// stop before their folder is removed.
struct Servers {
    onebox: Onebox,
    nsd: Oracle,
    knot: Oracle,
    _work: TempDir,
}

impl Servers {
    fn start(zone_text: &str) -> Self {
        Self::start_file("foobar.com.zone", zone_text)
    }

    /// Serves `zone_text` from a file named `file` (`root.zone`, `com.zone`).
    fn start_file(file: &str, zone_text: &str) -> Self {
        let work = TempDir::new("differential");
        let zones = work.path().join("zones");
        std::fs::create_dir_all(&zones).expect("create the zones folder");
        let zone = zones.join(file);
        std::fs::write(&zone, zone_text).expect("write the zone file");
        let onebox = Onebox::spawn().zones(&zones).start();
        let nsd = Oracle::start(Daemon::Nsd, work.path(), &zone);
        let knot = Oracle::start(Daemon::Knot, work.path(), &zone);
        Self {
            onebox,
            nsd,
            knot,
            _work: work,
        }
    }

    fn addrs(&self) -> [SocketAddr; 3] {
        [self.onebox.dns_addr(), self.nsd.addr, self.knot.addr]
    }
}

/// Sends the same bytes to one server; `None` if no reply came (UDP is tried twice,
/// from a fresh socket each time, so a late reply is never mistaken for the next).
fn ask(server: SocketAddr, packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    if tcp {
        let mut stream = tcp_connect(server);
        stream.write_all(&frame(packet)).ok()?;
        return read_framed(&mut stream).ok();
    }
    (0..2).find_map(|_| udp_try(server, packet, Duration::from_secs(2)))
}

/// What the corpus run found, counted for the summary and kept for the report.
#[derive(Default)]
struct Tally {
    queries: usize,
    identical: usize,
    /// Allowance reason → queries it explained.
    allowed: BTreeMap<&'static str, usize>,
    /// A query of KNOWN_ONEBOX_BUGS → how many corpus queries it matched.
    known: BTreeMap<&'static str, usize>,
    failures: Vec<String>,
    /// Which kinds of answer Knot gave at least once (see `KINDS`).
    kinds: BTreeSet<&'static str>,
    /// Reports of the allowed and known differences, printed when
    /// `ONEBOX_DIFF_VERBOSE` is set.
    explained: Vec<String>,
}

impl Tally {
    /// Fails the test if a query differed without an allowance or a known bug.
    fn assert_all_explained(&self, summary: &str) {
        assert!(
            self.failures.is_empty(),
            "{} of {} queries differ without an allowance or a known bug:\n\n{}\n{summary}",
            self.failures.len(),
            self.queries,
            self.failures.join("\n")
        );
    }

    fn run(&mut self, zone: &str, servers: &Servers, cases: &[Case]) {
        let addrs = servers.addrs();
        for (n, case) in cases.iter().enumerate() {
            let id = u16::try_from(n % 60_000).expect("id fits") + 1;
            let packet = encode(&case.message(id));
            let views = addrs.map(|addr| View::of(ask(addr, &packet, case.tcp), id));
            self.judge(zone, case, &views);
        }
    }

    fn judge(&mut self, zone: &str, case: &Case, views: &[View; 3]) {
        self.queries += 1;
        self.kinds.extend(kinds(&views[2]));
        let mut reasons = BTreeSet::new();
        let mut bugs = BTreeSet::new();
        let mut unexplained = Vec::new();
        for field in FIELDS {
            // Sets compare through their printed form: equal sets print equally.
            let values = views.each_ref().map(|v| v.show(field));
            if values.iter().all(|v| *v == values[0]) {
                continue;
            }
            if let Some(allowance) = ALLOWED.iter().find(|a| (a.applies)(case, field, views)) {
                reasons.insert(allowance.reason);
            } else if let Some(bug) = known_bug(case, field) {
                bugs.insert(bug);
            } else {
                unexplained.push(field);
            }
        }
        if reasons.is_empty() && bugs.is_empty() && unexplained.is_empty() {
            self.identical += 1;
        }
        for &reason in &reasons {
            *self.allowed.entry(reason).or_default() += 1;
        }
        for &(_, query) in &bugs {
            *self.known.entry(query).or_default() += 1;
        }
        if !unexplained.is_empty() {
            self.failures.push(report(zone, case, views, &unexplained));
        } else if !reasons.is_empty() || !bugs.is_empty() {
            let differing: Vec<_> = FIELDS
                .into_iter()
                .filter(|&f| views.iter().any(|v| v.show(f) != views[0].show(f)))
                .collect();
            let mut text = report(zone, case, views, &differing);
            for reason in &reasons {
                let _ = writeln!(text, "  allowed: {reason}");
            }
            for &(why, _) in &bugs {
                let _ = writeln!(text, "  known bug: {why}");
            }
            self.explained.push(text);
        }
    }

    fn summary(&self) -> String {
        let mut out = format!(
            "differential: {} queries to onebox, NSD and Knot; {} identical\n",
            self.queries, self.identical
        );
        for allowance in ALLOWED {
            let count = self.allowed.get(allowance.reason).copied().unwrap_or(0);
            let _ = writeln!(out, "  allowed  {count:4}  {}", allowance.reason);
        }
        for bug in KNOWN_ONEBOX_BUGS {
            let _ = writeln!(out, "  known onebox bug: {}", bug.why);
            for query in bug.queries {
                let count = self.known.get(query).copied().unwrap_or(0);
                let _ = writeln!(out, "    bug    {count:4}  {query} {:?}", bug.fields);
            }
        }
        let _ = writeln!(out, "  failing  {:4}", self.failures.len());
        out
    }
}

/// The known bug this difference is, as (why, query).
fn known_bug(case: &Case, field: Field) -> Option<(&'static str, &'static str)> {
    let key = case.key();
    KNOWN_ONEBOX_BUGS
        .iter()
        .filter(|bug| bug.fields.contains(&field))
        .find_map(|bug| {
            let query = bug.queries.iter().find(|q| **q == key)?;
            Some((bug.why, *query))
        })
}

/// The kinds of answer the corpus must produce, or equal answers would prove
/// little: three servers that all failed to load the zone would agree on every
/// query.
const KINDS: [&str; 8] = [
    "answer",
    "cname chain",
    "wildcard",
    "nodata",
    "nxdomain",
    "referral",
    "refused",
    "truncated",
];

/// Which of `KINDS` this reply is.
fn kinds(view: &View) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    let cnames = view.answer.iter().filter(|r| r.1 == "CNAME").count();
    let soa_only = view.authority.iter().all(|r| r.1 == "SOA") && !view.authority.is_empty();
    match view.rcode.as_str() {
        "NXDomain" => kinds.push("nxdomain"),
        "Refused" => kinds.push("refused"),
        "NoError" if view.tc() => kinds.push("truncated"),
        "NoError" if view.is_referral() => kinds.push("referral"),
        "NoError" if view.answer.is_empty() && soa_only => kinds.push("nodata"),
        "NoError" if !view.answer.is_empty() => kinds.push("answer"),
        _ => {}
    }
    if cnames >= 2 {
        kinds.push("cname chain");
    }
    if view
        .answer
        .iter()
        .any(|r| r.0.ends_with(".wild.foobar.com.") && r.2 == 600)
    {
        kinds.push("wildcard");
    }
    kinds
}

/// A readable diff: the query, then each differing field as each server has it,
/// then the rest of each reply for context.
fn report(zone: &str, case: &Case, views: &[View; 3], fields: &[Field]) -> String {
    let mut out = format!("[{zone} zone] {}  (key {:?})\n", case.label(), case.key());
    for &field in fields {
        let _ = writeln!(out, "  {field:?} differs:");
        for (server, view) in SERVERS.iter().zip(views) {
            let _ = writeln!(out, "    {server:<7} {}", view.show(field));
        }
    }
    let _ = writeln!(out, "  full replies:");
    for (server, view) in SERVERS.iter().zip(views) {
        let _ = writeln!(
            out,
            "    {server:<7} {} [{}] opt={} answer={} authority={} additional={}",
            view.rcode,
            view.flags,
            view.opt,
            view.show(Field::Answer).replace("\n            ", " | "),
            view.show(Field::Authority).replace("\n            ", " | "),
            view.show(Field::Additional)
                .replace("\n            ", " | "),
        );
    }
    out
}

#[test]
fn onebox_answers_like_nsd_and_knot() {
    skip_unless!(require_tool("knotd", "knot"), require_tool("nsd", "nsd"));
    let mut tally = Tally::default();
    for (zone, text, cases) in [
        ("shipped", shipped_zone(), corpus(SHIPPED_NAMES)),
        (
            "rich",
            RICH_ZONE.to_string(),
            [corpus(RICH_NAMES), edge_cases()].concat(),
        ),
    ] {
        let servers = Servers::start(&text);
        tally.run(zone, &servers, &cases);
    }
    let summary = tally.summary();
    if std::env::var_os("ONEBOX_DIFF_VERBOSE").is_some() {
        println!("{}", tally.explained.join("\n"));
    }
    println!("{summary}");

    let missing: Vec<_> = KINDS
        .iter()
        .filter(|kind| !tally.kinds.contains(*kind))
        .collect();
    assert!(
        missing.is_empty(),
        "the corpus never produced these kinds of answer: {missing:?}\n{summary}"
    );
    let stale: Vec<_> = KNOWN_ONEBOX_BUGS
        .iter()
        .flat_map(|bug| bug.queries)
        .filter(|query| !tally.known.contains_key(*query))
        .collect();
    tally.assert_all_explained(&summary);
    assert!(
        stale.is_empty(),
        "these KNOWN_ONEBOX_BUGS entries no longer differ (fixed? remove them): {stale:?}"
    );
}

/// Names asked of the toy Internet's root and com zones (internet/): the apex,
/// their own servers, a delegation and names below it (referrals, DS at the
/// cut, glue below the cut), and names that do not exist.
const INTERNET_NAMES: &[&str] = &[
    ".",
    "com.",
    "a.root-servers.net.",
    "root-servers.net.",
    "a.nic.com.",
    "foobar.com.",
    "www.foobar.com.",
    "ns1.foobar.com.",
    "nope.com.",
    "nope.",
    "example.org.",
];

/// The same comparison for the root and com zones onebox serves as a toy
/// Internet: NSD and Knot serve each file alone, as onebox's --dns does here.
#[test]
fn the_root_and_com_zones_answer_like_nsd_and_knot() {
    skip_unless!(require_tool("knotd", "knot"), require_tool("nsd", "nsd"));
    let mut tally = Tally::default();
    for file in ["root.zone", "com.zone"] {
        let text = std::fs::read_to_string(repo_path("internet").join(file)).unwrap();
        let servers = Servers::start_file(file, &text);
        tally.run(file, &servers, &corpus(INTERNET_NAMES));
    }
    let summary = tally.summary();
    println!("{summary}");
    tally.assert_all_explained(&summary);
}
