//! The toy Internet's recursive, caching resolver: what a laptop's stub asks.
//!
//! It starts from the toy root's hints and follows referrals down (root → com →
//! foobar.com), the way Unbound or BIND's resolver does, and keeps what it learns
//! for as long as the TTLs allow, answers and "no such name" alike (RFC 2308).
//! It is our own small iterative resolver on hickory-proto's message types rather
//! than hickory-resolver's `recursor` feature, which in 0.26 is experimental,
//! talks to port 53 only and refuses loopback servers: the toy Internet lives on
//! loopback, on one port of the user's choosing.
//!
//! What it does to be a good citizen, and to be hard to poison:
//! - QNAME minimisation (RFC 9156): a server is asked only for one label more than
//!   the zone it is known to serve (`com.` of the root, `foobar.com.` of com).
//! - A fresh socket (so a fresh random source port) and a random ID per query, and
//!   0x20 mixed case in the name (a spoofed answer must echo the exact case): RFC
//!   5452's defences against off-path cache poisoning plus the 0x20 draft's, the
//!   class of flaw of hickory's advisory GHSA-83hf-93m4-rgwq (fixed in 0.26).
//! - Bailiwick checks: a server may only tell us about names inside the zone it
//!   was asked as; glue outside that zone is dropped.
//! - Bounded work: at most [`MAX_QUERIES`] queries, [`MAX_REFERRALS`] referrals
//!   and [`MAX_CNAMES`] CNAME links per resolution.
//! - Only loopback servers are ever asked, so no packet leaves the machine, and only
//!   loopback clients are answered, so it is never an open resolver.
//! - A query with RD clear (`dig +norecurse`) is answered from the cache only, and
//!   REFUSED (with an Extended DNS Error) when the cache does not hold it. RFC 1034
//!   §4.3.1 says a server recurses only when RD asks for it; answering from cache
//!   is what BIND and Unbound do too, and it lets a learner look into the cache
//!   (cache snooping, harmless here: only this machine may ask).
//! - A server that does not answer, or answers REFUSED or SERVFAIL, is lame: the
//!   next one is tried, and when none is left the client gets SERVFAIL with an
//!   Extended DNS Error (RFC 8914) saying which.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::opt::EdnsOption;
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

use super::ChainLink;

/// How long one server may take to answer. On loopback an answer takes well under
/// a millisecond; a stopped server usually refuses at once (ICMP port unreachable).
const QUERY_TIMEOUT: Duration = Duration::from_millis(1000);
/// At most this many questions sent for one resolution (Unbound allows more, but
/// the toy is three levels deep).
pub(crate) const MAX_QUERIES: usize = 32;
/// At most this many referrals followed for one resolution.
pub(crate) const MAX_REFERRALS: usize = 10;
/// At most this many CNAME links followed (hickory's limit too).
pub(crate) const MAX_CNAMES: usize = 8;
/// Entries kept in the cache; past it the oldest are dropped.
const MAX_ENTRIES: usize = 10_000;
/// Resolutions remembered for the cache view.
const RECENT: usize = 50;
/// RFC 8914 info codes we send.
const EDE_OTHER: u16 = 0;
const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;
/// Resolutions in flight at once; past it a UDP query is dropped (the client
/// retries), so a flood cannot grow tasks and sockets without bound.
const MAX_IN_FLIGHT: usize = 256;
/// The EDNS option code of an Extended DNS Error (RFC 8914 §2).
const EDE_OPTION: u16 = 15;

/// One question sent while resolving: a line of the trace.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Step {
    /// The server asked.
    pub(crate) server: SocketAddr,
    /// The zone that server was asked as (`.`, `com.`, `foobar.com.`).
    pub(crate) zone: String,
    /// The question as sent, minimised and in 0x20 mixed case.
    pub(crate) qname: String,
    pub(crate) qtype: String,
    /// `referral`, `answer`, `nodata`, `nxdomain` or `error`.
    pub(crate) kind: &'static str,
    /// A few words: `referral to com.`, `timeout`, `REFUSED`.
    pub(crate) detail: String,
    /// The records that mattered: NS and glue of a referral, or the answer.
    pub(crate) records: Vec<String>,
    pub(crate) micros: u64,
}

/// The end of a resolution.
#[derive(Debug, Clone)]
struct Outcome {
    rcode: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    ede: Option<(u16, String)>,
    steps: Vec<Step>,
}

/// What a resolution of one name (without following CNAMEs) found.
enum Single {
    /// The records at the name: the asked type, or a CNAME.
    Records(Vec<Record>),
    /// NXDOMAIN or NODATA, with the zone's SOA when the server sent one.
    Negative(ResponseCode, Option<Box<Record>>),
    /// Nobody could answer: the Extended DNS Error to send.
    Fail(u16, String),
    /// RD was clear and the cache does not hold the name: nothing was asked.
    Uncached,
}

/// The work spent on one resolution, against the bounds above.
#[derive(Default)]
struct Budget {
    queries: usize,
    referrals: usize,
    /// Some name of the chain was not in the cache: the resolution is a cache miss.
    missed_cache: bool,
}

/// A cached answer or negative answer.
#[derive(Debug, Clone)]
struct Entry {
    rcode: ResponseCode,
    /// NXDOMAIN or NODATA: `records` holds the SOA, not an answer.
    negative: bool,
    /// The records (positive) or the SOA (negative, when there was one).
    records: Vec<Record>,
    stored: Instant,
    ttl: u32,
    /// The servers whose answer this is.
    servers: Vec<SocketAddr>,
    hits: u64,
}

impl Entry {
    fn new(
        rcode: ResponseCode,
        negative: bool,
        records: Vec<Record>,
        ttl: u32,
        server: SocketAddr,
    ) -> Self {
        Self {
            rcode,
            negative,
            records,
            stored: Instant::now(),
            ttl,
            servers: vec![server],
            hits: 0,
        }
    }

    fn ttl_left(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        u32::try_from(age)
            .ok()
            .and_then(|age| self.ttl.checked_sub(age))
            .filter(|left| *left > 0)
    }

    /// The records with their TTLs counted down, as a cache hands them out.
    fn aged(&self, now: Instant) -> Option<Vec<Record>> {
        let left = self.ttl_left(now)?;
        Some(
            self.records
                .iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.ttl = r.ttl.min(left);
                    r
                })
                .collect(),
        )
    }
}

/// A zone cut learnt from a referral: where to ask about names below it.
#[derive(Debug, Clone)]
struct Delegation {
    zone: Name,
    servers: Vec<SocketAddr>,
    stored: Instant,
    ttl: u32,
}

/// One resolution, for the cache view: which servers, and whether the cache answered.
#[derive(Debug, Clone, serde::Serialize)]
struct Recent {
    at_ms: u64,
    name: String,
    #[serde(rename = "type")]
    rtype: String,
    rcode: String,
    from_cache: bool,
    servers: Vec<SocketAddr>,
    /// Who asked: the home page shows a client the path of its own resolution.
    client: IpAddr,
    /// Each server asked, with the zone it was asked as, in order.
    asked: Vec<(String, SocketAddr)>,
    micros: u64,
}

/// How one name was resolved for one client, for the web page's panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Walk {
    /// The zones asked, in order, each with its server; when the cache answered,
    /// the walk that filled the cache, if still among the recent resolutions.
    pub(crate) asked: Vec<(String, SocketAddr)>,
    pub(crate) from_cache: bool,
    pub(crate) age: Duration,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<(LowerName, RecordType), Entry>,
    delegations: HashMap<LowerName, Delegation>,
    recent: VecDeque<Recent>,
}

/// The resolver. Cheap to clone; every clone shares the cache.
#[derive(Clone)]
pub(crate) struct Recursor {
    hints: Arc<Vec<SocketAddr>>,
    /// The port every toy server listens on: glue carries addresses, not ports.
    port: u16,
    qmin: bool,
    cache: Arc<Mutex<Cache>>,
    /// Where the live view hears about each resolution, and whether the cache
    /// answered it.
    live: Option<crate::live::Live>,
}

impl std::fmt::Debug for Recursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recursor")
            .field("hints", &self.hints)
            .finish_non_exhaustive()
    }
}

impl Recursor {
    /// A caching resolver starting at these root servers (all on one port).
    pub(crate) fn new(hints: Vec<IpAddr>, port: u16) -> Self {
        Self {
            hints: Arc::new(
                hints
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect(),
            ),
            port,
            qmin: true,
            cache: Arc::default(),
            live: None,
        }
    }

    /// Publishes every resolution to the live view too.
    pub(crate) fn with_live(mut self, live: crate::live::Live) -> Self {
        self.live = Some(live);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves `qname`/`qtype` from the cache or the toy servers, following CNAMEs.
    /// With `cache_only` (RD clear) no server is asked.
    async fn resolve(&self, qname: &Name, qtype: RecordType, cache_only: bool) -> Outcome {
        let mut budget = Budget::default();
        let outcome = self
            .resolve_chain(qname, qtype, cache_only, &mut budget)
            .await;
        // One hit or miss per question, as the cache view's `from_cache` says:
        // a CNAME chain is a hit only when every link came from the cache.
        crate::metrics::resolver::lookup(!budget.missed_cache);
        outcome
    }

    /// [`Self::resolve`]'s work, with the budget it spends.
    async fn resolve_chain(
        &self,
        qname: &Name,
        qtype: RecordType,
        cache_only: bool,
        budget: &mut Budget,
    ) -> Outcome {
        let mut outcome = Outcome {
            rcode: ResponseCode::NoError,
            answers: Vec::new(),
            authorities: Vec::new(),
            ede: None,
            steps: Vec::new(),
        };
        let mut name = qname.to_lowercase();
        for _ in 0..=MAX_CNAMES {
            match self
                .resolve_one(&name, qtype, cache_only, &mut outcome.steps, budget)
                .await
            {
                Single::Records(records) => {
                    let target = records.iter().find_map(|r| match &r.data {
                        RData::CNAME(target) if r.record_type() != qtype => {
                            Some(target.0.to_lowercase())
                        }
                        _ => None,
                    });
                    outcome.answers.extend(records);
                    match target {
                        Some(target) => name = target,
                        None => return outcome,
                    }
                }
                Single::Negative(rcode, soa) => {
                    outcome.rcode = rcode;
                    outcome.authorities.extend(soa.map(|soa| *soa));
                    return outcome;
                }
                Single::Fail(code, text) => {
                    outcome.rcode = ResponseCode::ServFail;
                    outcome.answers.clear();
                    outcome.ede = Some((code, text));
                    return outcome;
                }
                Single::Uncached => {
                    outcome.rcode = ResponseCode::Refused;
                    outcome.answers.clear();
                    outcome.ede = Some((
                        EDE_OTHER,
                        format!(
                            "{name} is not in the cache and RD is clear: set RD (dig +recurse) to let the resolver ask"
                        ),
                    ));
                    return outcome;
                }
            }
        }
        outcome.rcode = ResponseCode::ServFail;
        outcome.answers.clear();
        outcome.ede = Some((
            EDE_OTHER,
            format!("more than {MAX_CNAMES} CNAME links from {qname}"),
        ));
        outcome
    }

    /// Resolves one name, without following a CNAME found there.
    async fn resolve_one(
        &self,
        name: &Name,
        qtype: RecordType,
        cache_only: bool,
        steps: &mut Vec<Step>,
        budget: &mut Budget,
    ) -> Single {
        if let Some(hit) = self.cached(name, qtype) {
            return hit;
        }
        // A question the cache cannot answer is a miss, even when RD is clear
        // and nothing is asked.
        budget.missed_cache = true;
        if cache_only {
            return Single::Uncached;
        }
        let (mut zone, mut servers) = self.closest_cut(name);
        // RFC 9156: ask each server for one label below the zone it serves.
        let mut labels = usize::from(zone.num_labels()) + 1;
        loop {
            let full = !self.qmin || labels >= usize::from(name.num_labels());
            let (ask, ask_type) = if full {
                (name.clone(), qtype)
            } else {
                // RFC 9156 §2.1 suggests A for the hidden type: it looks like any query.
                (name.trim_to(labels), RecordType::A)
            };
            let (reply, server) = match self
                .ask_any(&servers, &zone, &ask, ask_type, steps, budget)
                .await
            {
                Ok(found) => found,
                Err(fail) => return fail,
            };
            let rcode = reply.metadata.response_code;
            let soa = reply
                .authorities
                .iter()
                .find(|r| r.record_type() == RecordType::SOA && zone.zone_of(&r.name))
                .cloned();
            if rcode == ResponseCode::NXDomain {
                // RFC 8020: nothing exists below a name that does not exist, so a
                // minimised NXDOMAIN settles the full name too.
                self.store_negative(name, qtype, ResponseCode::NXDomain, soa.clone(), server);
                return Single::Negative(ResponseCode::NXDomain, soa.map(Box::new));
            }
            if let Some((child, child_servers, ttl)) = referral(&reply, &zone, &ask, self.port) {
                budget.referrals += 1;
                if budget.referrals > MAX_REFERRALS {
                    return Single::Fail(
                        EDE_OTHER,
                        format!("more than {MAX_REFERRALS} referrals for {name}"),
                    );
                }
                if child_servers.is_empty() {
                    return Single::Fail(
                        EDE_NO_REACHABLE_AUTHORITY,
                        format!("the referral to {child} carries no usable glue"),
                    );
                }
                self.lock().delegations.insert(
                    LowerName::from(&child),
                    Delegation {
                        zone: child.clone(),
                        servers: child_servers.clone(),
                        stored: Instant::now(),
                        ttl,
                    },
                );
                labels = usize::from(child.num_labels()) + 1;
                zone = child;
                servers = child_servers;
                continue;
            }
            if !full {
                // The shorter name exists here and is no zone cut: one label more.
                labels += 1;
                continue;
            }
            // Bailiwick: only records inside the zone this server was asked as.
            let answers: Vec<Record> = reply
                .answers
                .iter()
                .filter(|r| zone.zone_of(&r.name))
                .map(|r| {
                    let mut r = r.clone();
                    r.name = r.name.to_lowercase();
                    r
                })
                .collect();
            let here: Vec<Record> = answers
                .iter()
                .filter(|r| {
                    LowerName::from(&r.name) == LowerName::from(name)
                        && (r.record_type() == qtype || r.record_type() == RecordType::CNAME)
                })
                .cloned()
                .collect();
            if here.is_empty() {
                self.store_negative(name, qtype, ResponseCode::NoError, soa.clone(), server);
                return Single::Negative(ResponseCode::NoError, soa.map(Box::new));
            }
            // Keep the rest of the chain the server gave (in bailiwick) for the
            // next link, so following the CNAME costs no extra query.
            let mut rrsets: HashMap<(LowerName, RecordType), Vec<Record>> = HashMap::new();
            for record in answers {
                rrsets
                    .entry((LowerName::from(&record.name), record.record_type()))
                    .or_default()
                    .push(record);
            }
            for ((owner, rtype), records) in rrsets {
                self.store(owner, rtype, ResponseCode::NoError, records, server);
            }
            return Single::Records(here);
        }
    }

    /// A cached answer for the name (the type asked, or a CNAME there).
    fn cached(&self, name: &Name, qtype: RecordType) -> Option<Single> {
        let now = Instant::now();
        let mut cache = self.lock();
        for rtype in [qtype, RecordType::CNAME] {
            let Some(entry) = cache.entries.get_mut(&(LowerName::from(name), rtype)) else {
                continue;
            };
            let Some(records) = entry.aged(now) else {
                continue;
            };
            entry.hits += 1;
            if !entry.negative && !records.is_empty() {
                return Some(Single::Records(records));
            }
            if rtype == qtype {
                return Some(Single::Negative(
                    entry.rcode,
                    records.into_iter().next().map(Box::new),
                ));
            }
        }
        None
    }

    fn store(
        &self,
        owner: LowerName,
        rtype: RecordType,
        rcode: ResponseCode,
        records: Vec<Record>,
        server: SocketAddr,
    ) {
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
        self.store_entry(owner, rtype, Entry::new(rcode, false, records, ttl, server));
    }

    /// RFC 2308 §5: a negative answer is kept for min(SOA TTL, SOA MINIMUM); one
    /// without an SOA is not cached at all.
    fn store_negative(
        &self,
        name: &Name,
        qtype: RecordType,
        rcode: ResponseCode,
        soa: Option<Record>,
        server: SocketAddr,
    ) {
        let Some(soa) = soa else { return };
        let ttl = match &soa.data {
            RData::SOA(data) => soa.ttl.min(data.minimum),
            _ => soa.ttl,
        };
        self.store_entry(
            LowerName::from(name),
            qtype,
            Entry::new(rcode, true, vec![soa], ttl, server),
        );
    }

    fn store_entry(&self, owner: LowerName, rtype: RecordType, entry: Entry) {
        if entry.ttl == 0 {
            return;
        }
        let mut cache = self.lock();
        if cache.entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            cache.entries.retain(|_, e| e.ttl_left(now).is_some());
            if cache.entries.len() >= MAX_ENTRIES {
                cache.entries.clear();
            }
        }
        cache.entries.insert((owner, rtype), entry);
        crate::metrics::resolver::cache_entries(cache.entries.len());
    }

    /// The deepest zone cut we know above `name`, and its servers; the root hints
    /// when we know none.
    fn closest_cut(&self, name: &Name) -> (Name, Vec<SocketAddr>) {
        let now = Instant::now();
        let cache = self.lock();
        let mut current = name.clone();
        while !current.is_root() {
            if let Some(cut) = cache.delegations.get(&LowerName::from(&current))
                && u64::from(cut.ttl) > now.saturating_duration_since(cut.stored).as_secs()
            {
                return (cut.zone.clone(), cut.servers.clone());
            }
            current = current.base_name();
        }
        (Name::root(), self.hints.to_vec())
    }

    /// Asks the servers of `zone` in turn until one answers NOERROR or NXDOMAIN.
    async fn ask_any(
        &self,
        servers: &[SocketAddr],
        zone: &Name,
        ask: &Name,
        qtype: RecordType,
        steps: &mut Vec<Step>,
        budget: &mut Budget,
    ) -> Result<(Message, SocketAddr), Single> {
        let mut why = Vec::new();
        for server in servers {
            let mut step = Step {
                server: *server,
                zone: zone.to_ascii(),
                qname: ask.to_ascii(),
                qtype: qtype.to_string(),
                kind: "error",
                detail: String::new(),
                records: Vec::new(),
                micros: 0,
            };
            if !server.ip().is_loopback() {
                // The toy Internet lives on loopback: never send a packet off the machine.
                step.detail = "not asked: not a loopback address".into();
                why.push(format!("{server} is not on loopback"));
                steps.push(step);
                continue;
            }
            budget.queries += 1;
            if budget.queries > MAX_QUERIES {
                return Err(Single::Fail(
                    EDE_OTHER,
                    format!("more than {MAX_QUERIES} queries for {ask}"),
                ));
            }
            crate::metrics::resolver::upstream(crate::metrics::resolver::Level::of_zone(
                usize::from(zone.num_labels()),
            ));
            let started = Instant::now();
            let result = exchange(*server, ask, qtype).await;
            step.micros = started.elapsed().as_micros() as u64;
            match result {
                Ok((sent, reply))
                    if matches!(
                        reply.metadata.response_code,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    step.qname = sent.to_ascii();
                    describe(&mut step, &reply, zone);
                    steps.push(step);
                    return Ok((reply, *server));
                }
                Ok((sent, reply)) => {
                    step.qname = sent.to_ascii();
                    step.detail = format!("lame: {}", reply.metadata.response_code);
                    why.push(format!(
                        "{server} answered {}",
                        reply.metadata.response_code
                    ));
                }
                Err(e) => {
                    step.detail = e.clone();
                    why.push(format!("{server}: {e}"));
                }
            }
            steps.push(step);
        }
        Err(Single::Fail(
            EDE_NO_REACHABLE_AUTHORITY,
            format!("no server for {zone} answered ({})", why.join("; ")),
        ))
    }

    /// Answers one query from a stub (`dig`, glibc, a browser's OS resolver).
    /// `None` means send nothing (the packet was a response, or not DNS).
    pub(crate) async fn answer(
        &self,
        packet: &[u8],
        client: SocketAddr,
        udp: bool,
    ) -> Option<Vec<u8>> {
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return None;
        }
        let started = Instant::now();
        let Ok(request) = Message::from_vec(packet) else {
            let mut reply = packet[..12].to_vec();
            reply[2] = 0x80 | (packet[2] & 0x79);
            reply[3] = 0x80 | 1; // RA, FORMERR
            reply[4..12].fill(0);
            return Some(reply);
        };
        let mut reply = Message::new(
            request.metadata.id,
            MessageType::Response,
            request.metadata.op_code,
        );
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.checking_disabled = request.metadata.checking_disabled;
        reply.metadata.recursion_available = true;
        // Only a question of one entry is echoed, as the authoritative engine
        // does: more is malformed (RFC 9619), and echoing dozens of long names
        // would make even a truncated UDP reply bigger than the size we promise.
        if let [query] = request.queries.as_slice() {
            reply.queries.push(query.clone());
        }
        let mut edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_version(0);
            edns.set_max_payload(super::engine::EDNS_UDP_LIMIT);
            edns
        });
        let refuse = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if !client.ip().is_loopback() {
            // Never an open resolver: only this machine may ask.
            Some(ResponseCode::Refused)
        } else {
            None
        };
        let question = match (refuse, request.queries.as_slice()) {
            (Some(rcode), _) => Err(rcode),
            (None, [query]) if query.query_class() != DNSClass::IN => Err(ResponseCode::Refused),
            (None, [query])
                if matches!(
                    query.query_type(),
                    RecordType::AXFR | RecordType::IXFR | RecordType::ANY
                ) =>
            {
                Err(ResponseCode::NotImp)
            }
            (None, [query]) => Ok(query.clone()),
            (None, _) => Err(ResponseCode::FormErr),
        };
        let mut asked: Vec<(String, SocketAddr)> = Vec::new();
        let (rcode, from_cache, servers, name, rtype) = match question {
            Err(rcode) => {
                reply.metadata.response_code = rcode;
                (rcode, false, Vec::new(), String::new(), String::new())
            }
            Ok(query) => {
                let cache_only = !request.metadata.recursion_desired;
                let outcome = self
                    .resolve(query.name(), query.query_type(), cache_only)
                    .await;
                reply.metadata.response_code = outcome.rcode;
                reply.answers = outcome.answers;
                reply.authorities = outcome.authorities;
                if let (Some(edns), Some((code, text))) = (edns.as_mut(), &outcome.ede) {
                    let mut data = code.to_be_bytes().to_vec();
                    data.extend_from_slice(text.as_bytes());
                    edns.options_mut()
                        .insert(EdnsOption::Unknown(EDE_OPTION, data));
                }
                if let Some((_, text)) = &outcome.ede {
                    tracing::warn!(
                        "resolver: SERVFAIL for {} {}: {text}",
                        query.name(),
                        query.query_type()
                    );
                }
                let mut servers: Vec<SocketAddr> = Vec::new();
                for step in &outcome.steps {
                    if !servers.contains(&step.server) {
                        servers.push(step.server);
                    }
                    let zone = (step.zone.clone(), step.server);
                    if !asked.contains(&zone) {
                        asked.push(zone);
                    }
                }
                (
                    outcome.rcode,
                    // A REFUSED cache miss (RD clear) asked nobody, but the cache did not answer it either.
                    outcome.steps.is_empty() && outcome.rcode != ResponseCode::Refused,
                    servers,
                    query.name().to_lowercase().to_ascii(),
                    query.query_type().to_string(),
                )
            }
        };
        reply.edns = edns;
        let micros = started.elapsed().as_micros() as u64;
        if let Some(live) = &self.live
            && !name.is_empty()
        {
            live.publish(crate::live::Event::Dns {
                at_ms: crate::live::now_ms(),
                client,
                // The live view prints this beside the client: where the answer came from.
                transport: if from_cache {
                    "resolver, from cache"
                } else {
                    "resolver, asked the servers"
                },
                name: name.clone(),
                qtype: rtype.clone(),
                rcode: super::engine::rcode_name(rcode).to_string(),
                answers: u16::try_from(reply.answers.len()).unwrap_or(u16::MAX),
                micros,
            });
        }
        if !name.is_empty() {
            let mut cache = self.lock();
            if cache.recent.len() >= RECENT {
                cache.recent.pop_front();
            }
            cache.recent.push_back(Recent {
                at_ms: crate::live::now_ms(),
                name,
                rtype,
                rcode: super::engine::rcode_name(rcode).to_string(),
                from_cache,
                servers,
                client: client.ip(),
                asked,
                micros,
            });
        }
        let bytes = reply.to_vec().ok()?;
        let limit = match &request.edns {
            Some(edns) => usize::from(edns.max_payload().clamp(512, super::engine::EDNS_UDP_LIMIT)),
            None => 512,
        };
        if udp && bytes.len() > limit {
            reply.answers.clear();
            reply.authorities.clear();
            reply.additionals.clear();
            reply.metadata.truncation = true;
            return reply.to_vec().ok();
        }
        Some(bytes)
    }

    /// The latest resolution of `host` (no trailing dot needed, any case) that
    /// `client` asked for within `window`, among the recent ones. A browser asks
    /// for a name just before it connects, from the same address, so this is how
    /// the page it then loads found its way.
    pub(crate) fn latest_walk(&self, host: &str, client: IpAddr, window: Duration) -> Option<Walk> {
        let mut name = host.trim_end_matches('.').to_ascii_lowercase();
        name.push('.');
        let now = crate::live::now_ms();
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        let cache = self.lock();
        let latest = cache.recent.iter().rev().find(|r| {
            r.name == name && r.client == client && now.saturating_sub(r.at_ms) <= window_ms
        })?;
        let asked = if latest.from_cache {
            // The walk that filled the cache, by whichever client asked first.
            cache
                .recent
                .iter()
                .rev()
                .find(|r| r.name == name && !r.from_cache && !r.asked.is_empty())
                .map(|r| r.asked.clone())
                .unwrap_or_default()
        } else {
            latest.asked.clone()
        };
        Some(Walk {
            asked,
            from_cache: latest.from_cache,
            age: Duration::from_millis(now.saturating_sub(latest.at_ms)),
        })
    }

    /// The cache as JSON, for `GET /_onebox/api/resolver/cache`: each answer with
    /// its TTL counting down and the server it came from, the zone cuts learnt,
    /// and the latest resolutions with whether the cache answered them.
    pub(crate) fn cache_json(&self) -> serde_json::Value {
        let now = Instant::now();
        let cache = self.lock();
        let mut entries: Vec<serde_json::Value> = cache
            .entries
            .iter()
            .filter_map(|((owner, rtype), entry)| {
                let ttl = entry.ttl_left(now)?;
                let negative = entry.negative;
                Some(serde_json::json!({
                    "name": owner.to_string(),
                    "type": rtype.to_string(),
                    "kind": if entry.rcode == ResponseCode::NXDomain { "nxdomain" } else if negative { "nodata" } else { "answer" },
                    "ttl": ttl,
                    "records": entry.records.iter().map(record_text).collect::<Vec<_>>(),
                    "servers": entry.servers,
                    "hits": entry.hits,
                }))
            })
            .collect();
        entries.sort_by_key(|e| (e["name"].to_string(), e["type"].to_string()));
        let delegations: Vec<serde_json::Value> = cache
            .delegations
            .values()
            .filter_map(|cut| {
                let age = now.saturating_duration_since(cut.stored).as_secs();
                let ttl = u64::from(cut.ttl).checked_sub(age).filter(|t| *t > 0)?;
                Some(serde_json::json!({
                    "zone": cut.zone.to_ascii(),
                    "servers": cut.servers,
                    "ttl": ttl,
                }))
            })
            .collect();
        serde_json::json!({
            "root_hints": *self.hints,
            "qname_minimisation": self.qmin,
            "entries": entries,
            "delegations": delegations,
            "recent": cache.recent,
        })
    }
}

/// Fills a trace step from a server's reply.
fn describe(step: &mut Step, reply: &Message, zone: &Name) {
    if reply.metadata.response_code == ResponseCode::NXDomain {
        step.kind = "nxdomain";
        step.detail = "NXDOMAIN: no such name".into();
        step.records = reply.authorities.iter().map(record_text).collect();
        return;
    }
    let ns: Vec<&Record> = reply
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    if reply.answers.is_empty() && !reply.metadata.authoritative && !ns.is_empty() {
        step.kind = "referral";
        step.detail = format!("referral to {}", ns[0].name.to_lowercase());
        step.records = ns.iter().map(|r| record_text(r)).collect();
        step.records.extend(
            reply
                .additionals
                .iter()
                .filter(|r| zone.zone_of(&r.name))
                .map(record_text),
        );
    } else if reply.answers.is_empty() {
        step.kind = "nodata";
        step.detail = "NOERROR, no records of that type".into();
    } else {
        step.kind = "answer";
        step.detail = if reply.metadata.authoritative {
            "answer (authoritative)".into()
        } else {
            "answer".into()
        };
        step.records = reply.answers.iter().map(record_text).collect();
    }
}

/// `www.foobar.com. 3600 CNAME foobar.com.`
fn record_text(record: &Record) -> String {
    format!(
        "{} {} {} {}",
        record.name.to_lowercase(),
        record.ttl,
        record.record_type(),
        record.data
    )
}

/// A referral in `reply` from a server of `zone` asked about `ask`: the child zone,
/// its servers' addresses from the glue (on the toy's `port`), and the NS TTL.
/// `None` when the reply is no referral, or one that breaks the bailiwick rules.
fn referral(
    reply: &Message,
    zone: &Name,
    ask: &Name,
    port: u16,
) -> Option<(Name, Vec<SocketAddr>, u32)> {
    if !reply.answers.is_empty() || reply.metadata.authoritative {
        return None;
    }
    let ns: Vec<&Record> = reply
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    let child = ns.first()?.name.to_lowercase();
    // The child must be strictly below the zone asked and at or above the name
    // asked: a server cannot hand out authority it does not have.
    if !zone.zone_of(&child)
        || LowerName::from(&child) == LowerName::from(zone)
        || !child.zone_of(ask)
    {
        return None;
    }
    let targets: Vec<LowerName> = ns
        .iter()
        .filter(|r| LowerName::from(&r.name) == LowerName::from(&child))
        .filter_map(|r| match &r.data {
            RData::NS(target) => Some(LowerName::from(&target.0)),
            _ => None,
        })
        .collect();
    let mut servers = Vec::new();
    for glue in &reply.additionals {
        // Glue is believed only for the NS names and only inside the zone of the
        // server that sent it: anything else could point us anywhere.
        if !targets.contains(&LowerName::from(&glue.name)) || !zone.zone_of(&glue.name) {
            continue;
        }
        let ip = match &glue.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let addr = SocketAddr::new(ip, port);
        if !servers.contains(&addr) {
            servers.push(addr);
        }
    }
    let ttl = ns.iter().map(|r| r.ttl).min().unwrap_or(0);
    Some((child, servers, ttl))
}

/// `WwW.fOoBaR.cOm.`: each letter's case picked at random (0x20 encoding). The
/// server echoes the question byte for byte, so an answer in another case is forged.
fn mixed_case(name: &Name) -> Name {
    let text: String = name
        .to_ascii()
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() && rand::random::<bool>() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    Name::from_ascii(&text).unwrap_or_else(|_| name.clone())
}

/// One question to one server: UDP from a fresh socket (a fresh random port), a
/// random ID and 0x20 case; TCP when the answer comes back truncated. Returns the
/// name as sent and the reply, which must match all three.
async fn exchange(
    server: SocketAddr,
    name: &Name,
    qtype: RecordType,
) -> Result<(Name, Message), String> {
    let sent = mixed_case(name);
    let id: u16 = rand::random();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.queries.push(Query::query(sent.clone(), qtype));
    let mut edns = Edns::new();
    edns.set_version(0);
    edns.set_max_payload(super::engine::EDNS_UDP_LIMIT);
    query.edns = Some(edns);
    let bytes = query
        .to_vec()
        .map_err(|e| format!("cannot encode the query: {e}"))?;
    let matches = |reply: &Message| {
        reply.metadata.id == id
            && reply.metadata.message_type == MessageType::Response
            && matches!(reply.queries.as_slice(), [q] if q.name().eq_case(&sent) && q.query_type() == qtype)
    };
    let reply = tokio::time::timeout(QUERY_TIMEOUT, async {
        let local: SocketAddr = if server.is_ipv4() {
            (std::net::Ipv4Addr::LOCALHOST, 0).into()
        } else {
            (std::net::Ipv6Addr::LOCALHOST, 0).into()
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
        socket.connect(server).await.map_err(|e| e.to_string())?;
        socket.send(&bytes).await.map_err(io_reason)?;
        let mut buf = vec![0u8; 65535];
        loop {
            let n = socket.recv(&mut buf).await.map_err(io_reason)?;
            // Anything that does not match is ignored, as a forgery would be.
            if let Ok(reply) = Message::from_vec(&buf[..n])
                && matches(&reply)
            {
                return Ok::<Message, String>(reply);
            }
        }
    })
    .await
    .map_err(|_| "timeout".to_string())??;
    if !reply.metadata.truncation {
        return Ok((sent, reply));
    }
    let reply = tokio::time::timeout(QUERY_TIMEOUT, async {
        let mut stream = TcpStream::connect(server).await.map_err(io_reason)?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.map_err(io_reason)?;
        let len = stream.read_u16().await.map_err(io_reason)?;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.map_err(io_reason)?;
        Message::from_vec(&buf).map_err(|e| format!("bad answer over TCP: {e}"))
    })
    .await
    .map_err(|_| "timeout over TCP".to_string())??;
    if !matches(&reply) {
        return Err("the TCP answer does not match the question".into());
    }
    Ok((sent, reply))
}

fn io_reason(e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens there)".into()
        }
        _ => e.to_string(),
    }
}

/// The resolver's listeners: UDP and TCP on one address, until `shutdown`.
pub(crate) async fn serve(
    recursor: Recursor,
    udp: UdpSocket,
    tcp: TcpListener,
    shutdown: CancellationToken,
) {
    let udp = Arc::new(udp);
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let mut buf = vec![0u8; 65535];
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            received = udp.recv_from(&mut buf) => {
                let Ok((n, client)) = received else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue; // busy: drop it, as a loaded resolver does
                };
                let packet = buf[..n].to_vec();
                let (recursor, udp) = (recursor.clone(), udp.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    if let Some(reply) = recursor.answer(&packet, client, true).await {
                        let _ = udp.send_to(&reply, client).await;
                    }
                });
            }
            accepted = tcp.accept() => {
                let Ok((stream, client)) = accepted else { continue };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue; // busy: closing the connection tells the client at once
                };
                let (recursor, shutdown) = (recursor.clone(), shutdown.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = serve_tcp(recursor, stream, client) => {}
                    }
                });
            }
        }
    }
}

/// One TCP connection: length-prefixed queries until the client stops or idles.
async fn serve_tcp(recursor: Recursor, mut stream: TcpStream, client: SocketAddr) {
    const IDLE: Duration = Duration::from_secs(10);
    loop {
        let Ok(Ok(len)) = tokio::time::timeout(IDLE, stream.read_u16()).await else {
            return;
        };
        let mut packet = vec![0u8; usize::from(len)];
        if !matches!(
            tokio::time::timeout(IDLE, stream.read_exact(&mut packet)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Some(reply) = recursor.answer(&packet, client, false).await else {
            continue;
        };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}

/// What `visit --trace` prints: every question asked on the way, then the answer.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Trace {
    /// The name resolved.
    pub(crate) name: String,
    pub(crate) steps: Vec<Step>,
    pub(crate) rcode: String,
    pub(crate) answers: Vec<ChainLink>,
    pub(crate) addresses: Vec<IpAddr>,
    /// The Extended DNS Error, when resolution failed.
    pub(crate) error: Option<String>,
}

/// Resolves `host` (type A) iteratively from `root`, with no cache, recording each
/// step: `visit --trace`.
pub(crate) async fn trace(root: SocketAddr, host: &str) -> anyhow::Result<Trace> {
    let mut name = Name::from_ascii(host.trim_end_matches('.'))
        .map_err(|e| anyhow::anyhow!("bad host name {host}: {e}"))?;
    name.set_fqdn(true);
    // A fresh resolver: its cache starts empty, so every step is asked on the
    // wire, and holds only what this trace learns (the rest of a CNAME chain
    // that came in the same answer, as any resolver would use it).
    let recursor = Recursor::new(vec![root.ip()], root.port());
    let outcome = recursor.resolve(&name, RecordType::A, false).await;
    let addresses = outcome
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Ok(Trace {
        name: name.to_ascii(),
        steps: outcome.steps,
        rcode: super::engine::rcode_name(outcome.rcode).to_string(),
        answers: outcome
            .answers
            .iter()
            .map(|r| ChainLink {
                name: r.name.to_lowercase().to_ascii(),
                ttl: r.ttl,
                rtype: r.record_type().to_string(),
                data: r.data.to_string(),
            })
            .collect(),
        addresses,
        error: outcome
            .ede
            .map(|(code, text)| format!("EDE {code}: {text}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_case_keeps_the_name() {
        let name = Name::from_ascii("www.foobar.com.").unwrap();
        for _ in 0..20 {
            let mixed = mixed_case(&name);
            assert_eq!(LowerName::from(&mixed), LowerName::from(&name));
        }
    }

    /// A refusal of a message with many questions carries none of them, so it
    /// fits in UDP: the twin of the authoritative engine's fix for a 1,579-byte
    /// reply the fuzzer found. Neither message is resolved (no hints needed).
    #[tokio::test]
    async fn refusals_of_many_questions_fit_in_udp() {
        let recursor = Recursor::new(Vec::new(), 53);
        let client: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        // A query of 40 questions (FORMERR) and an UPDATE of 40 zones (NOTIMP).
        for (opcode, expected) in [(0u8, ResponseCode::FormErr), (5, ResponseCode::NotImp)] {
            let mut packet = vec![0xab, 0xcd, (opcode << 3) | 1, 0, 0, 40, 0, 0, 0, 0, 0, 0];
            for i in 0..40 {
                // Distinct names, so that compression cannot shrink the echo.
                let label = format!("{i:02}{}", "x".repeat(48));
                packet.push(label.len() as u8);
                packet.extend_from_slice(label.as_bytes());
                packet.extend_from_slice(&[0, 0, 1, 0, 1]);
            }
            assert!(packet.len() > 2000, "the question alone is over the limit");
            let reply = recursor.answer(&packet, client, true).await.unwrap();
            assert!(reply.len() <= 512, "opcode {opcode}: {} bytes", reply.len());
            let reply = Message::from_vec(&reply).unwrap();
            assert_eq!(reply.metadata.id, 0xabcd);
            assert!(reply.queries.is_empty(), "opcode {opcode}");
            assert_eq!(reply.metadata.response_code, expected);
        }
    }

    #[test]
    fn out_of_bailiwick_glue_is_dropped() {
        let mut reply = Message::new(1, MessageType::Response, OpCode::Query);
        let com = Name::from_ascii("com.").unwrap();
        let ns = Name::from_ascii("a.nic.com.").unwrap();
        reply.authorities.push(Record::from_rdata(
            com.clone(),
            172800,
            RData::NS(hickory_server::proto::rr::rdata::NS(ns.clone())),
        ));
        reply.additionals.push(Record::from_rdata(
            ns,
            172800,
            RData::A("127.0.0.3".parse::<std::net::Ipv4Addr>().unwrap().into()),
        ));
        let ask = Name::from_ascii("foobar.com.").unwrap();
        // From the root, glue for a.nic.com is in bailiwick.
        let (child, servers, _) = referral(&reply, &Name::root(), &ask, 53).unwrap();
        assert_eq!(child, com);
        assert_eq!(servers, ["127.0.0.3:53".parse::<SocketAddr>().unwrap()]);
        // From a server asked as org., neither the referral nor its glue is.
        let org = Name::from_ascii("org.").unwrap();
        assert!(referral(&reply, &org, &ask, 53).is_none());
    }
}
