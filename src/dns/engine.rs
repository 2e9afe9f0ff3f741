//! The answer engine: query bytes in, response bytes out, for every DNS transport.
//!
//! hickory-server's `Catalog` does the lookup (exact names, CNAME chasing, wildcards,
//! NXDOMAIN and NODATA). Around it we add what a mature authoritative server does and
//! hickory 0.26 does not:
//! drop any packet with QR=1 before parsing it; refuse non-IN classes, UPDATE, NOTIFY
//! and zone transfers to strangers; cap the negative TTL at the SOA MINIMUM (RFC 2308);
//! put the SOA in AUTHORITY after a CNAME that leads to nothing (RFC 6604); answer
//! EDNS with our own OPT (payload 1232, the DO bit copied, no options echoed, but
//! padding added on DoT and DoH when the query was padded, RFC 8467); answer IXFR
//! as RFC 1995 §4 allows a server without a journal; and truncate cleanly when a
//! UDP answer does not fit.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hickory_server::net::NetError;
use hickory_server::net::runtime::{Time, TokioTime};
use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;

use super::cache::{self, AnswerCache, Cached};
use super::journal::Journal;
use super::peer::{Cidr, Transport};
use super::tsig::{self, TsigKey};
use super::{ZoneSet, Zones};
use crate::live::{self, Event, Live, Question};

/// The largest UDP answer we send with EDNS: the DNS Flag Day 2020 value that NSD,
/// Knot and BIND use, small enough never to be fragmented on real paths.
pub(crate) const EDNS_UDP_LIMIT: u16 = 1232;
/// RFC 1035 §4.2.1: without EDNS a UDP answer is at most 512 bytes.
const PLAIN_UDP_LIMIT: usize = 512;

/// Turns queries into answers. Cheap to clone; shared by every listener.
#[derive(Clone, Debug)]
pub(crate) struct Engine {
    zones: Zones,
    transfer: Arc<Vec<Cidr>>,
    /// Off only in tests that compare the fast path with the full one.
    use_cache: bool,
    /// Where the live view hears about each query.
    live: Option<Live>,
    /// The key that may UPDATE our zones; without one every UPDATE is refused.
    tsig: Option<Arc<TsigKey>>,
    /// Where UPDATEs are made durable; without one they live in memory only.
    journal: Option<Journal>,
    /// `--update-rate`: each key's budget of updates per second.
    update_limit: Option<super::update::UpdateLimit>,
}

impl Engine {
    pub(crate) fn new(zones: Zones, allow_transfer: Vec<Cidr>) -> Self {
        Self {
            zones,
            transfer: Arc::new(allow_transfer),
            use_cache: true,
            live: None,
            tsig: None,
            journal: None,
            update_limit: None,
        }
    }

    /// Refuses UPDATEs beyond `limit` per key (see `update.rs`).
    pub(crate) fn with_update_limit(mut self, limit: Option<super::update::UpdateLimit>) -> Self {
        self.update_limit = limit;
        self
    }

    /// Journals every UPDATE before answering it.
    pub(crate) fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Accepts DNS UPDATE signed with `key` (see `update.rs`).
    pub(crate) fn with_tsig(mut self, key: TsigKey) -> Self {
        self.tsig = Some(Arc::new(key));
        self
    }

    /// Publishes every answered query to the live view too.
    pub(crate) fn with_live(mut self, live: Live) -> Self {
        self.live = Some(live);
        self
    }

    /// The query log and the live view: one event per query. Borrowed all the
    /// way: a cached answer's name, type and rcode are copied into the live
    /// view's ring as bytes, never cloned into `String`s.
    fn record(&self, question: &Question<'_>) {
        log_query(question);
        if let Some(live) = &self.live {
            live.question(question);
        }
    }

    /// Answers one query. `None` means send nothing: the packet was a response
    /// (QR=1), too short to be DNS, or otherwise not worth a reply.
    pub(crate) async fn answer(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        // Only a transfer over a stream has more than the first message.
        let (first, _rest) = self.answer_stream(packet, client, transport).await?;
        Some(first)
    }

    /// Answers one query with every message of its answer, in order: the first,
    /// then the rest, which only a zone transfer over TCP or TLS has (RFC 5936
    /// §2.2); for every other answer the rest is empty and allocates nothing.
    /// `None` as for [`Engine::answer`].
    pub(crate) async fn answer_stream(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
        let mut reply = Vec::new();
        if self.answer_cached(None, packet, client, transport, Instant::now(), &mut reply) {
            return Some((reply, Vec::new()));
        }
        self.answer_full(packet, client, transport).await
    }

    /// The fast path: a cached answer for a plain query, without touching hickory
    /// or the async runtime, replayed into `reply` (a buffer the caller may
    /// reuse); `false` means "take the full path". A UDP worker
    /// passes its own copy of the cache (`local`), which a hit reads without a
    /// lock or a shared write; other callers read the zone set's shared cache.
    /// `started` is when the query was read: a UDP worker reads that clock once
    /// per batch, not once per query (in a VM a clock read costs as much as the
    /// rest of the bookkeeping), so a query's time counts from its batch's
    /// arrival.
    pub(crate) fn answer_cached(
        &self,
        local: Option<&mut cache::Local>,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
        started: Instant,
        reply: &mut Vec<u8>,
    ) -> bool {
        if !self.use_cache {
            return false;
        }
        let shared;
        let cached: &Cached = match local {
            Some(local) => match local.get(packet, transport, || self.zones.snapshot()) {
                Some(cached) => cached,
                None => return false,
            },
            None => {
                let Some(key) = AnswerCache::key(packet, transport) else {
                    return false;
                };
                let Some(found) = self.zones.snapshot().answers.get(&key) else {
                    return false;
                };
                shared = found;
                &shared
            }
        };
        cache::replay(cached, packet, reply);
        let micros = started.elapsed().as_micros() as u64;
        crate::metrics::dns::query(
            transport.as_str(),
            client.is_ipv6(),
            &cached.qtype,
            &cached.rcode,
            micros,
            reply.len(),
            true,
        );
        self.record(&Question {
            at: started,
            client,
            transport: transport.as_str(),
            name: &cached.qname,
            qtype: &cached.qtype,
            rcode: &cached.rcode,
            answers: cached.answers,
            micros,
        });
        true
    }

    async fn answer_full(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
        let started = Instant::now();
        // A header is 12 bytes; anything shorter is not DNS. QR=1 is a response: a
        // server that answers responses can be made to loop with another server, so
        // NSD and Knot drop them on the raw header, before any parsing.
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return None;
        }
        // UPDATE (opcode 5) is verified on the raw bytes, which its TSIG signs.
        if (packet[2] >> 3) & 0x0F == 5 {
            return Some((
                self.update(packet, client, transport, started).await,
                Vec::new(),
            ));
        }
        // A query signed with our TSIG key (RFC 8945): typically a secondary that
        // holds the key, which may then transfer from outside --allow-transfer.
        // The MAC covers the raw bytes, so it is checked here; hickory parses the
        // message without its TSIG record, and the answer is signed in turn (§5.3).
        let signature = tsig::find(packet);
        let body = signature.as_ref().map(|sig| tsig::strip(packet, sig));
        let now = tsig::now();
        let verdict = signature.as_ref().map(|sig| match self.tsig.as_deref() {
            Some(key) => tsig::verify(packet, sig, key, now),
            None => Err(tsig::TsigError::BadKey),
        });
        let Ok(request) = Request::from_bytes(
            body.unwrap_or_else(|| packet.to_vec()),
            client,
            transport.protocol(),
        ) else {
            let reply = formerr(packet);
            let micros = started.elapsed().as_micros() as u64;
            let ipv6 = client.is_ipv6();
            crate::metrics::dns::query(
                transport.as_str(),
                ipv6,
                "",
                "FORMERR",
                micros,
                reply.len(),
                false,
            );
            return Some((reply, Vec::new()));
        };
        // One snapshot for the whole query: the answer and the cache it goes into
        // belong to the same zones, even if a reload lands meanwhile.
        let set = self.zones.snapshot();
        let Answer {
            bytes: mut reply,
            rcode,
            rest,
        } = match verdict {
            Some(Err(error)) => {
                // §5.2: NOTAUTH carrying the TSIG error; nothing is answered.
                tracing::warn!(%client, "signed query refused: {error}");
                error_reply(&request, ResponseCode::NotAuth, true)
            }
            _ => {
                self.respond(&set, &request, client, transport, verdict.is_some())
                    .await
            }
        };
        if wants_padding(&request, transport) {
            reply = pad(reply);
        }
        // The TSIG record goes last, after any padding (§5.3). Only BADTIME is
        // signed among the errors (§5.3.2); without a key there is nothing to sign with.
        if let (Some(sig), Some(key)) = (&signature, self.tsig.as_deref()) {
            reply = match verdict {
                Some(Err(error)) => tsig::sign_response(
                    reply,
                    key,
                    sig,
                    error.code(),
                    error == tsig::TsigError::BadTime,
                    now,
                ),
                _ => tsig::sign_response(reply, key, sig, 0, true, now),
            };
        }
        // Every message of a signed transfer is signed too, each chained on the
        // MAC of the one before (RFC 8945 §5.3.1), so a secondary can verify all.
        let mut prior = match (&signature, self.tsig.as_deref(), &verdict) {
            (Some(sig), Some(key), Some(Ok(()))) => {
                tsig::find(&reply).map(|ours| (sig, key, ours.mac))
            }
            _ => None,
        };
        let rest: Vec<Vec<u8>> = rest
            .into_iter()
            .map(|next| match &mut prior {
                Some((sig, key, mac)) => {
                    let (signed, signed_mac) = tsig::sign_continuation(next, key, sig, mac, now);
                    *mac = signed_mac;
                    signed
                }
                None => next,
            })
            .collect();
        let (mut qname, mut qtype) = (String::new(), String::new());
        if let [query] = request.queries.queries() {
            qname = query.original().name().to_string();
            qtype = query.query_type().to_string();
            // A transfer sent in full over a stream: that secondary now holds the
            // zone's current serial.
            if matches!(query.query_type(), RecordType::AXFR | RecordType::IXFR)
                && rcode == ResponseCode::NoError
                && transport != Transport::Udp
                && let (Some(live), Some(zone)) =
                    (&self.live, set.zone_for(query.original().name()))
            {
                live.publish(Event::Secondary {
                    at_ms: live::now_ms(),
                    zone: zone.origin().to_string(),
                    serial: zone.serial(),
                    secondary: client,
                    state: "caught up",
                });
            }
        }
        let rcode = rcode_name(rcode);
        let answers = match reply.get(6..8) {
            Some(count) => u16::from_be_bytes([count[0], count[1]]),
            None => 0,
        };
        let micros = started.elapsed().as_micros() as u64;
        crate::metrics::dns::query(
            transport.as_str(),
            client.is_ipv6(),
            &qtype,
            rcode,
            micros,
            reply.len(),
            false,
        );
        self.record(&Question {
            at: started,
            client,
            transport: transport.as_str(),
            name: &qname,
            qtype: &qtype,
            rcode,
            answers,
            micros,
        });
        if self.use_cache
            && let Some(key) = AnswerCache::key(packet, transport)
        {
            set.answers.insert(
                key,
                Cached {
                    reply: reply.clone(),
                    qname,
                    qtype,
                    rcode: rcode.to_string(),
                    answers,
                },
            );
        }
        Some((reply, rest))
    }

    async fn update(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
        started: Instant,
    ) -> Vec<u8> {
        let (reply, outcome) = super::update::handle(
            &self.zones,
            self.journal.as_ref(),
            self.tsig.as_deref(),
            self.update_limit.as_ref(),
            packet,
            client,
        )
        .await;
        if let (Some(serial), Some(live), Some(key)) = (outcome.serial, &self.live, &self.tsig) {
            live.publish(Event::Change {
                at_ms: live::now_ms(),
                by: key.name.clone(),
                what: format!("UPDATE of {} from {client}", outcome.zone),
                serial,
            });
        }
        self.record(&Question {
            at: started,
            client,
            transport: transport.as_str(),
            name: &outcome.zone,
            qtype: "UPDATE",
            rcode: rcode_name(outcome.rcode),
            answers: 0,
            micros: started.elapsed().as_micros() as u64,
        });
        reply
    }

    /// IXFR with the real differences, from the journal (RFC 1995 §4); `None`
    /// leaves the question to [`whole_zone`]: over UDP, a current client, no journal,
    /// or one that does not reach back to the client's serial.
    async fn ixfr_from_journal(
        &self,
        set: &ZoneSet,
        request: &Request,
        query: &Query,
        transport: Transport,
    ) -> Option<Answer> {
        let journal = self.journal.as_ref()?;
        if transport == Transport::Udp {
            return None;
        }
        let zone = set
            .zone_for(query.name())
            .filter(|z| super::same_name(z.origin(), query.name()))?;
        let ours = soa_serial(zone.soa())?;
        let theirs = request.authorities.iter().find_map(soa_serial)?;
        if !serial_newer(ours, theirs) {
            return None;
        }
        let records = journal
            .ixfr(&zone.origin().to_string(), theirs, zone.soa())
            .await?;
        let mut message = response_to(request, true);
        message.metadata.authoritative = true;
        message.answers = records;
        message.edns = request.edns.as_ref().map(our_opt);
        Some(transfer(message, request, transport))
    }

    async fn respond(
        &self,
        set: &ZoneSet,
        request: &Request,
        client: SocketAddr,
        transport: Transport,
        signed: bool,
    ) -> Answer {
        let metadata = &request.metadata;
        let queries = request.queries.queries();
        match metadata.op_code {
            OpCode::Query => {}
            // We are the only server for our zones and take no dynamic updates or
            // change notifications: refuse rather than pretend (RFC 2136, RFC 1996).
            OpCode::Update | OpCode::Notify => {
                return error_reply(request, ResponseCode::Refused, true);
            }
            _ => return error_reply(request, ResponseCode::NotImp, false),
        }
        if let Some(edns) = &request.edns
            && edns.version() > 0
        {
            // RFC 6891 §6.1.3: we speak EDNS version 0 only.
            return error_reply(request, ResponseCode::BADVERS, true);
        }
        let [query] = queries else {
            // RFC 9619: exactly one question.
            return error_reply(request, ResponseCode::FormErr, false);
        };
        if query.query_class() != DNSClass::IN {
            // hickory ignores QCLASS; CH version.bind and friends must not get IN data.
            return error_reply(request, ResponseCode::Refused, true);
        }
        let qtype = query.query_type();
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            // Only to the networks --allow-transfer lists (or with our TSIG key), and never over UDP (RFC 5936
            // §4.2): TCP, or TLS as XoT (RFC 9103). The one exception is IXFR over
            // UDP, which RFC 1995 §2 answers with the current SOA alone, telling a
            // secondary whether to come back over TCP.
            // A request validly signed with our key may transfer from anywhere.
            let allowed = (signed || self.transfer.iter().any(|net| net.contains(client.ip())))
                && (matches!(transport, Transport::Tcp | Transport::Tls)
                    || (qtype == RecordType::IXFR && transport == Transport::Udp));
            if !allowed {
                return error_reply(request, ResponseCode::Refused, true);
            }
            if qtype == RecordType::IXFR {
                if let Some(answer) = self
                    .ixfr_from_journal(set, request, query.original(), transport)
                    .await
                {
                    return answer;
                }
                return whole_zone(set, request, query.original(), transport, true);
            }
            // From our own model of the zone, not hickory's catalog: hickory 0.26
            // sends one message, cut at 64 KiB, so a big zone would arrive partial.
            return whole_zone(set, request, query.original(), transport, false);
        }

        // Below a zone cut the data belongs to another server: refer the client to
        // it, as NSD and Knot do (hickory 0.26 answers authoritatively instead).
        // A DS query at the cut itself is the parent's to answer.
        if let Some(zone) = set.zone_for(query.original().name())
            && let Some((cut, servers)) = zone.delegation(query.original().name())
            && !(qtype == RecordType::DS && cut == *query.original().name())
        {
            let mut message = response_to(request, true);
            message.additionals = zone.glue(&servers);
            message.authorities = servers;
            polish(set, &mut message, query.original(), request.edns.as_ref());
            return finish(message, request, transport);
        }

        // Negative answers come from our own model of the zone, which follows RFC 4592
        // where hickory 0.26 does not: a wildcard never answers for a name that
        // exists, nor below one (its closest encloser).
        if let Some(zone) = set.zone_for(query.original().name()) {
            let name = query.original().name();
            let negative = if !zone.name_exists(name) {
                Some(ResponseCode::NXDomain)
            } else if qtype != RecordType::ANY && zone.is_node(name) && !zone.has_data(name, qtype)
            {
                Some(ResponseCode::NoError)
            } else {
                None
            };
            if let Some(rcode) = negative {
                let mut message = response_to(request, true);
                message.metadata.authoritative = true;
                message.metadata.response_code = rcode;
                message.authorities.push(zone.negative_soa().clone());
                polish(set, &mut message, query.original(), request.edns.as_ref());
                return finish(message, request, transport);
            }
        }

        let capture = Capture::default();
        set.catalog
            .handle_request::<Capture, TokioTime>(request, capture.clone())
            .await;
        let Some(raw) = capture.take() else {
            return error_reply(request, ResponseCode::ServFail, true);
        };
        let Ok(mut message) = Message::from_vec(&raw) else {
            return error_reply(request, ResponseCode::ServFail, true);
        };
        polish(set, &mut message, query.original(), request.edns.as_ref());
        finish(message, request, transport)
    }
}

/// AXFR (RFC 5936), or IXFR (RFC 1995) without a journal of changes
/// (`incremental`), as §4 allows: a client whose serial is current gets the
/// single SOA ("nothing new"); any other client gets the whole zone, AXFR-style
/// (SOA, records, SOA), inside the IXFR reply. Over UDP an IXFR answer is always
/// the single SOA (§2): a secondary that is behind retries over TCP.
fn whole_zone(
    set: &ZoneSet,
    request: &Request,
    query: &Query,
    transport: Transport,
    incremental: bool,
) -> Answer {
    let Some(zone) = set
        .zone_for(query.name())
        .filter(|z| super::same_name(z.origin(), query.name()))
    else {
        // Not the apex of a zone of ours: nothing to transfer (RFC 2136 §2.6 NOTAUTH,
        // what NSD and Knot answer).
        return error_reply(request, ResponseCode::NotAuth, true);
    };
    let ours = soa_serial(zone.soa());
    // The client's version travels as an SOA in AUTHORITY (RFC 1995 §3). Without
    // one we cannot know it is current, so it gets the whole zone.
    let theirs = request.authorities.iter().find_map(soa_serial);
    let current = incremental
        && theirs.is_some_and(|theirs| ours.is_some_and(|ours| !serial_newer(ours, theirs)));
    let mut message = response_to(request, true);
    message.metadata.authoritative = true;
    if current || transport == Transport::Udp {
        message.answers.push(zone.soa().clone());
    } else {
        message.answers = zone.transfer();
    }
    message.edns = request.edns.as_ref().map(our_opt);
    transfer(message, request, transport)
}

fn soa_serial(record: &Record) -> Option<u32> {
    match &record.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    }
}

/// Serial number arithmetic (RFC 1982 §3.2): whether `a` is newer than `b`,
/// counting across the wrap at 2^32.
pub(crate) fn serial_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// RFC 8467 §4.1: responses are padded to a multiple of this many bytes.
const PADDING_BLOCK: usize = 468;

/// RFC 7830 §4 and RFC 8467: pad a response only when its query was padded, and
/// only where padding hides anything, on an encrypted transport. UDP and TCP
/// answers are never padded (padding in the clear only costs bytes).
fn wants_padding(request: &Request, transport: Transport) -> bool {
    matches!(transport, Transport::Tls | Transport::Https)
        && request
            .edns
            .as_ref()
            .is_some_and(|edns| edns.option(EdnsCode::Padding).is_some())
}

/// Adds a Padding option to a finished reply so the whole DNS message is a
/// multiple of [`PADDING_BLOCK`] bytes. A reply without an OPT record (a bare
/// FORMERR) has nowhere to put padding and is sent as it is, as is one that would
/// outgrow a DNS message; padding is a privacy measure, never a reason to fail.
fn pad(reply: Vec<u8>) -> Vec<u8> {
    let Ok(mut message) = Message::from_vec(&reply) else {
        return reply;
    };
    let Some(edns) = message.edns.as_mut() else {
        return reply;
    };
    edns.options_mut().remove(EdnsCode::Padding);
    edns.options_mut().insert(EdnsOption::Unknown(
        u16::from(EdnsCode::Padding),
        Vec::new(),
    ));
    let Ok(bare) = message.to_vec() else {
        return reply;
    };
    let fill = (PADDING_BLOCK - bare.len() % PADDING_BLOCK) % PADDING_BLOCK;
    if bare.len() + fill > usize::from(u16::MAX) {
        return reply;
    }
    if let Some(edns) = message.edns.as_mut() {
        edns.options_mut().remove(EdnsCode::Padding);
        edns.options_mut().insert(EdnsOption::Unknown(
            u16::from(EdnsCode::Padding),
            vec![0; fill],
        ));
    }
    message.to_vec().unwrap_or(reply)
}

/// A reply on the wire and its response code (for the query log; BADVERS lives
/// partly in the OPT record, so it is not readable from the header alone).
struct Answer {
    bytes: Vec<u8>,
    rcode: ResponseCode,
    /// The messages after the first of a zone transfer over a stream (RFC 5936
    /// §2.2); empty for every other answer.
    rest: Vec<Vec<u8>>,
}

/// How many bytes of records one transfer message carries at most, as BIND
/// does: a 100,000-record zone cannot fit the 65,535 bytes of one DNS message
/// over TCP, and smaller messages let the first leave while the rest is signed.
const TRANSFER_CHUNK: usize = 16 * 1024;

/// Encodes a zone transfer (AXFR, or IXFR's records) for `transport`: over a
/// stream, as several messages of at most [`TRANSFER_CHUNK`] bytes of records
/// each (RFC 5936 §2.2). Only the first carries the question and OPT (§2.2.1
/// recommends this); each has the same ID, flags and RCODE. Records keep their
/// order, so the first message starts and the last ends with the SOA.
fn transfer(mut message: Message, request: &Request, transport: Transport) -> Answer {
    if transport == Transport::Udp {
        return finish(message, request, transport);
    }
    let rcode = message.metadata.response_code;
    let mut chunks: Vec<Vec<Record>> = vec![Vec::new()];
    let mut size = 0;
    for record in std::mem::take(&mut message.answers) {
        // Uncompressed size: an upper bound, as name compression only shrinks it.
        let len = record
            .to_bytes()
            .map_or(TRANSFER_CHUNK, |bytes| bytes.len());
        if size + len > TRANSFER_CHUNK && chunks.last().is_some_and(|c| !c.is_empty()) {
            chunks.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(record);
        }
    }
    let mut next = response_to(request, false);
    next.metadata.authoritative = message.metadata.authoritative;
    next.metadata.response_code = rcode;
    let mut encoded = Vec::with_capacity(chunks.len());
    for (i, answers) in chunks.into_iter().enumerate() {
        let mut part = if i == 0 {
            message.clone()
        } else {
            next.clone()
        };
        part.answers = answers;
        match part.to_vec() {
            Ok(bytes) => encoded.push(bytes),
            Err(_) => return error_reply(request, ResponseCode::ServFail, true),
        }
    }
    let mut messages = encoded.into_iter();
    let bytes = messages.next().unwrap_or_default();
    Answer {
        bytes,
        rcode,
        rest: messages.collect(),
    }
}

/// Encodes a finished message for `transport`; SERVFAIL if it cannot be encoded.
fn finish(message: Message, request: &Request, transport: Transport) -> Answer {
    let rcode = message.metadata.response_code;
    match encode(message, transport, request.edns.as_ref()) {
        Some(bytes) => Answer {
            bytes,
            rcode,
            rest: Vec::new(),
        },
        None => error_reply(request, ResponseCode::ServFail, true),
    }
}

/// The start of every reply we build ourselves: the request's ID, opcode, RD
/// and CD copied, and its question when `with_question` and it has one entry.
fn response_to(request: &Request, with_question: bool) -> Message {
    let req = &request.metadata;
    let mut message = Message::new(req.id, MessageType::Response, req.op_code);
    message.metadata.recursion_desired = req.recursion_desired;
    message.metadata.checking_disabled = req.checking_disabled;
    // Only a section of one entry is echoed. More is malformed (RFC 9619 for
    // queries, RFC 2136 §3.1.1 for an UPDATE's zone section), and echoing dozens
    // of long names would make a refusal bigger than the UDP size we promise.
    if let (true, [query]) = (with_question, request.queries.queries()) {
        message.queries.push(query.original().clone());
    }
    message
}

/// Our OPT record: version 0, our payload size, the DO bit copied (RFC 3225),
/// and no options: echoing a client's option is wrong. (Padding, the one option we
/// send, is added last by [`pad`], once the reply's size is known.)
fn our_opt(request_edns: &Edns) -> Edns {
    let mut edns = Edns::new();
    edns.set_version(0);
    edns.set_max_payload(EDNS_UDP_LIMIT);
    edns.set_dnssec_ok(request_edns.flags().dnssec_ok);
    edns
}

/// The mnemonic dig prints, which is what people search for.
pub(crate) fn rcode_name(rcode: ResponseCode) -> &'static str {
    match rcode {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::BADVERS => "BADVERS",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotZone => "NOTZONE",
        _ => "OTHER",
    }
}

/// The query log: one event per query, on stderr through `tracing`, at debug
/// level (`RUST_LOG=onebox::dns::query=debug` turns it on).
///
/// Not at info, the default: formatting and writing a line costs more than
/// answering a cached query, so an info-level event per query made onebox as
/// shipped 0.83× as fast per CPU-second as NSD and Knot, whose query logs are off
/// by default too. Every query still reaches the live view and its history (see
/// [`Engine::record`]), and the metrics count them all.
fn log_query(event: &Question<'_>) {
    tracing::debug!(
        target: "onebox::dns::query",
        client = %event.client,
        transport = event.transport,
        qname = %event.name,
        qtype = %event.qtype,
        rcode = %event.rcode,
        answers = event.answers,
        micros = event.micros,
        "query"
    );
}

/// Brings hickory's answer to the standard of NSD and Knot.
fn polish(set: &ZoneSet, message: &mut Message, query: &Query, request_edns: Option<&Edns>) {
    message.metadata.recursion_available = false;
    message.metadata.authentic_data = false;
    let qtype = query.query_type();

    let mut referred = false;
    // A CNAME that leads below one of our zone cuts: the chain stops there and the
    // client is referred to the child's servers (hickory puts their NS in ANSWER).
    // Asked for the CNAME itself (or ANY), there is nothing to chase.
    if !matches!(qtype, RecordType::CNAME | RecordType::ANY)
        && let Some(at) = message.answers.iter().position(|r| {
            matches!(&r.data, RData::CNAME(target)
            if set.zone_for(&target.0).is_some_and(|z| z.delegation(&target.0).is_some()))
        })
        && let RData::CNAME(target) = &message.answers[at].data
        && let Some(zone) = set.zone_for(&target.0)
        && let Some((_, servers)) = zone.delegation(&target.0)
    {
        referred = true;
        message.metadata.response_code = ResponseCode::NoError;
        message.answers.truncate(at + 1);
        message.additionals = zone.glue(&servers);
        message.authorities = servers;
    }

    // RFC 6604 / RFC 2308: a CNAME chain that ends in our zone at a name with no
    // data of the asked type is NODATA (or NXDOMAIN when that name does not exist),
    // and a negative answer carries the SOA so resolvers can cache it.
    let only_cnames = !message.answers.is_empty()
        && message
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::CNAME);
    if !referred
        && message.metadata.response_code == ResponseCode::NoError
        && only_cnames
        && !matches!(qtype, RecordType::CNAME | RecordType::ANY)
        && let Some(RData::CNAME(target)) = message.answers.last().map(|r| &r.data)
        && let Some(zone) = set.zone_for(&target.0)
    {
        if !zone.name_exists(&target.0) {
            message.metadata.response_code = ResponseCode::NXDomain;
        }
        if !message
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
        {
            message
                .authorities
                .retain(|r| r.record_type() != RecordType::NS);
            message.authorities.push(zone.negative_soa().clone());
        }
    }

    // RFC 4592: a name a wildcard covers exists, so a missing type there is NODATA;
    // hickory says NXDOMAIN.
    if message.metadata.response_code == ResponseCode::NXDomain
        && message.answers.is_empty()
        && let Some(zone) = set.zone_for(query.name())
        && zone.name_exists(query.name())
    {
        message.metadata.response_code = ResponseCode::NoError;
    }

    // RFC 2308 §3: the TTL of the SOA in a negative answer is min(SOA TTL, MINIMUM);
    // hickory sends the SOA record's own TTL.
    for record in message.authorities.iter_mut() {
        if record.record_type() == RecordType::SOA
            && let Some(zone) = set.zone_for(&record.name)
        {
            record.ttl = record.ttl.min(zone.negative_soa().ttl);
        }
    }

    // Never hickory's OPT, which echoes the client's payload size.
    message.edns = request_edns.map(our_opt);
}

/// Serializes, truncating for UDP: a reply that does not fit loses ADDITIONAL first
/// (optional data), and if it still does not fit is sent with TC=1 and no records,
/// so the client retries over TCP and gets the whole answer.
fn encode(
    mut message: Message,
    transport: Transport,
    request_edns: Option<&Edns>,
) -> Option<Vec<u8>> {
    let bytes = message.to_vec().ok()?;
    if transport != Transport::Udp {
        return Some(bytes);
    }
    let limit = match request_edns {
        Some(edns) => usize::from(edns.max_payload().clamp(512, EDNS_UDP_LIMIT)),
        None => PLAIN_UDP_LIMIT,
    };
    if bytes.len() <= limit {
        return Some(bytes);
    }
    message.additionals.clear();
    let bytes = message.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    message.answers.clear();
    message.authorities.clear();
    message.metadata.truncation = true;
    message.to_vec().ok()
}

/// A reply with no records: the question (when `with_question`, and only a
/// question of one entry), our OPT if the query had one, and the rcode.
fn error_reply(request: &Request, rcode: ResponseCode, with_question: bool) -> Answer {
    let mut message = response_to(request, with_question);
    message.metadata.response_code = rcode;
    message.edns = request.edns.as_ref().map(our_opt);
    let bytes = message
        .to_vec()
        .unwrap_or_else(|_| header_only(request.metadata.id, request_opcode_bits(request), rcode));
    Answer {
        bytes,
        rcode,
        rest: Vec::new(),
    }
}

fn request_opcode_bits(request: &Request) -> u8 {
    u8::from(request.metadata.op_code) & 0x0f
}

/// FORMERR for a packet we could not parse: just a header, ID and opcode copied.
fn formerr(packet: &[u8]) -> Vec<u8> {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let opcode = (packet[2] >> 3) & 0x0f;
    let mut reply = header_only(id, opcode, ResponseCode::FormErr);
    reply[2] |= packet[2] & 0x01; // RD is copied
    reply
}

fn header_only(id: u16, opcode: u8, rcode: ResponseCode) -> Vec<u8> {
    let mut reply = vec![0u8; 12];
    reply[0..2].copy_from_slice(&id.to_be_bytes());
    reply[2] = 0x80 | (opcode << 3);
    reply[3] = u16::from(rcode) as u8 & 0x0f;
    reply
}

/// A `ResponseHandler` that keeps the encoded answer instead of sending it, so the
/// engine can polish it and every transport can send it its own way.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Option<Vec<u8>>>>);

impl Capture {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        let info = response.destructive_emit(&mut encoder)?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        Ok(info)
    }
}

// Keep `Time` in scope for the turbofish above; TokioTime implements it.
const _: fn() = || {
    fn assert_time<T: Time>() {}
    assert_time::<TokioTime>();
};

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic corpus of queries: names in and out of the zone, in mixed
    /// case, every common type, with and without EDNS, DO and RD, plus mutations.
    fn corpus(size: usize) -> Vec<Vec<u8>> {
        let names: [&[u8]; 8] = [
            b"\x03www\x06foobar\x03com\x00",
            b"\x03WwW\x06FooBar\x03cOm\x00",
            b"\x06foobar\x03com\x00",
            b"\x03ns1\x06foobar\x03com\x00",
            b"\x04nope\x06foobar\x03com\x00",
            b"\x01a\x01b\x06foobar\x03com\x00",
            b"\x07example\x03org\x00",
            b"\x00",
        ];
        let types: [u16; 12] = [1, 28, 6, 2, 15, 16, 255, 5, 65, 1000, 252, 251];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::new();
        while out.len() < size {
            let r = next();
            let mut q = vec![
                (r >> 8) as u8,
                r as u8,
                if r & 1 == 1 { 0x01 } else { 0x00 },
                0,
                0,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
            ];
            q.extend_from_slice(names[(r >> 16) as usize % names.len()]);
            q.extend_from_slice(&types[(r >> 24) as usize % types.len()].to_be_bytes());
            q.extend_from_slice(&if (r >> 32) % 17 == 0 { [0, 3] } else { [0, 1] });
            match (r >> 40) % 4 {
                0 => {}
                edns => {
                    q[11] = 1;
                    let size: u16 = [512, 1232, 4096][edns as usize - 1];
                    let version = u8::from((r >> 50) % 13 == 0);
                    let flags = if (r >> 52) & 1 == 1 { 0x80 } else { 0 };
                    q.extend_from_slice(&[0, 0, 41]);
                    q.extend_from_slice(&size.to_be_bytes());
                    q.extend_from_slice(&[0, version, flags, 0, 0, 0]);
                }
            }
            if (r >> 56) % 5 == 0 {
                // A mutation: flip a byte, truncate or append.
                let i = (next() as usize) % q.len();
                match next() % 3 {
                    0 => q[i] ^= 1 << (next() % 8),
                    1 => q.truncate(i.max(1)),
                    _ => q.push(next() as u8),
                }
            }
            out.push(q);
        }
        out
    }

    #[tokio::test]
    async fn cached_answers_are_byte_identical_to_full_answers() {
        let zones = Zones::load(std::path::Path::new("/nonexistent-onebox-zones"), false).unwrap();
        let fast = Engine::new(zones.clone(), Vec::new());
        let mut full = Engine::new(zones.clone(), Vec::new());
        full.use_cache = false;
        let client: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let mut hits = 0;
        // A UDP worker's own copy of the cache, as `server::udp` keeps one.
        let mut local = cache::Local::default();
        // Replayed into one buffer each, reused as a UDP worker reuses its own.
        let (mut shared_buffer, mut own_buffer) = (Vec::new(), Vec::new());
        let now = Instant::now;
        for query in corpus(4000) {
            for transport in [Transport::Udp, Transport::Tcp] {
                let expected = full.answer(&query, client, transport).await;
                let first = fast.answer(&query, client, transport).await;
                let cached = fast
                    .answer_cached(None, &query, client, transport, now(), &mut shared_buffer)
                    .then(|| shared_buffer.clone());
                assert_eq!(first, expected, "first answer differs for {query:02x?}");
                if cached.is_some() {
                    hits += 1;
                    assert_eq!(cached, expected, "cached answer differs for {query:02x?}");
                }
                let own = fast
                    .answer_cached(
                        Some(&mut local),
                        &query,
                        client,
                        transport,
                        now(),
                        &mut own_buffer,
                    )
                    .then(|| own_buffer.clone());
                assert_eq!(own, cached, "worker's copy differs for {query:02x?}");
            }
        }
        assert!(
            hits > 1000,
            "the corpus should exercise the cache, got {hits} hits"
        );
        assert!(zones.snapshot().answers.len() > 10);
    }

    #[tokio::test]
    async fn padding_only_on_encrypted_transports_and_only_when_asked() {
        let zones = Zones::load(std::path::Path::new("/nonexistent-onebox-zones"), false).unwrap();
        let engine = Engine::new(zones, Vec::new());
        let client: SocketAddr = "127.0.0.1:853".parse().unwrap();
        let mut padded = b"\x12\x34\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03www\x06foobar\x03com\x00\x00\x01\x00\x01".to_vec();
        // OPT: root, type 41, payload 1232, no flags, RDLEN 12: Padding (12) of 8 bytes.
        padded.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 12, 0, 8]);
        padded.extend_from_slice(&[0; 8]);
        for transport in [Transport::Tls, Transport::Https] {
            let reply = engine.answer(&padded, client, transport).await.unwrap();
            assert_eq!(reply.len() % PADDING_BLOCK, 0, "{transport:?}");
            assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 2);
        }
        for transport in [Transport::Udp, Transport::Tcp] {
            let reply = engine.answer(&padded, client, transport).await.unwrap();
            assert!(reply.len() < 200, "{transport:?}: {} bytes", reply.len());
        }
    }

    #[test]
    fn serial_arithmetic_wraps() {
        assert!(serial_newer(8, 7));
        assert!(!serial_newer(7, 7));
        assert!(!serial_newer(7, 8));
        assert!(serial_newer(1, u32::MAX), "1 follows 4294967295");
        assert!(!serial_newer(u32::MAX, 1));
    }

    /// A refusal never grows past the UDP size we promise, however many long
    /// names its question section holds: the fuzzer found a 1,579-byte REFUSED
    /// to an UPDATE of 37 zones. An UPDATE (REFUSED) and a query of EDNS
    /// version 1 (BADVERS) both echoed the whole section.
    #[tokio::test]
    async fn refusals_of_many_questions_fit_in_udp() {
        let zones = Zones::load(std::path::Path::new("/nonexistent-onebox-zones"), false).unwrap();
        let engine = Engine::new(zones, Vec::new());
        let client: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        for (opcode, version) in [(5u8, 0u8), (0, 1)] {
            let mut packet = vec![0xab, 0xcd, opcode << 3, 0, 0, 40, 0, 0, 0, 0, 0, 1];
            for i in 0..40 {
                // Distinct names, so that compression cannot shrink the echo.
                let label = format!("{i:02}{}", "x".repeat(48));
                packet.push(label.len() as u8);
                packet.extend_from_slice(label.as_bytes());
                packet.extend_from_slice(&[0, 0, 6, 0, 1]);
            }
            // OPT: root, type 41, payload 1232, the version, no options.
            packet.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, version, 0, 0, 0, 0]);
            assert!(packet.len() > 2000, "the question alone is over the limit");
            let reply = engine
                .answer(&packet, client, Transport::Udp)
                .await
                .unwrap();
            assert!(
                reply.len() <= usize::from(EDNS_UDP_LIMIT),
                "opcode {opcode}: {} bytes",
                reply.len()
            );
            let reply = Message::from_vec(&reply).unwrap();
            assert_eq!(reply.metadata.id, 0xabcd);
            assert!(reply.queries.is_empty(), "opcode {opcode}");
            let expected = if opcode == 5 {
                ResponseCode::Refused
            } else {
                ResponseCode::BADVERS
            };
            // BADVERS and BADSIG share 16, which hickory decodes as BADSIG.
            assert_eq!(u16::from(reply.metadata.response_code), u16::from(expected));
        }
    }

    #[test]
    fn formerr_copies_id_and_opcode() {
        let reply = formerr(&[0xab, 0xcd, 0x01, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(reply, [0xab, 0xcd, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
