//! DNS UPDATE (RFC 2136) on onebox's own zone model, authenticated with TSIG.
//!
//! hickory-server 0.26 implements UPDATE only in its SQLite store, so we do it
//! here, on the records parsed from the zone files: check the TSIG on the raw
//! bytes, then the prerequisites (§3.2), then prescan the update section
//! (§3.4.1), then apply every change to a copy of the zone and swap the copy in
//! as a whole. The copy shares every RRset the update does not touch
//! ([`super::rrsets`]), so an update to a zone of 100,000 records costs what it
//! touches, not the zone. A failure at any step leaves the zone untouched: the
//! update is atomic. The answer cache belongs to the zone set being replaced,
//! so it goes with it and no stale answer survives a change.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType, RrKey};

use super::journal::{Author, Journal};
use super::rrsets::{self, Rrsets};
use super::tsig::{self, TsigKey};
use super::{Zone, Zones};

/// The most records one zone may hold after an update: beyond it an UPDATE is
/// REFUSED, so a runaway script cannot grow the server without bound.
pub(crate) const MAX_RECORDS_PER_ZONE: usize = 100_000;

/// The records cap in force: [`MAX_RECORDS_PER_ZONE`], or in debug builds only
/// `ONEBOX_TEST_MAX_RECORDS=N`, so a test reaches the cap in a few dozen updates.
/// Release builds ignore the variable.
fn max_records() -> usize {
    #[cfg(debug_assertions)]
    {
        static CAP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *CAP.get_or_init(|| {
            std::env::var("ONEBOX_TEST_MAX_RECORDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(MAX_RECORDS_PER_ZONE)
        })
    }
    #[cfg(not(debug_assertions))]
    MAX_RECORDS_PER_ZONE
}
/// RFC 2181 §8: a TTL is at most 2^31 - 1.
const MAX_TTL: u32 = i32::MAX as u32;

/// `serve --update-rate N`'s default: each key may apply this many updates in a
/// burst, refilled at this many per second.
pub(crate) const DEFAULT_UPDATE_RATE: u32 = 200;

/// The updates-per-second budget of each key (`onebox-update.` for UPDATE,
/// `api` for the fixture API): a token bucket of `rate` updates refilled at
/// `rate` per second. Every update is a durable commit and a rebuild of the
/// zone's catalog, so a runaway script would otherwise starve the rest. There
/// are only ever as many buckets as keys, so the map stays tiny.
#[derive(Debug, Clone)]
pub(crate) struct UpdateLimit {
    rate: f64,
    buckets: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (f64, Instant)>>>,
}

impl UpdateLimit {
    /// `None` for 0: no limit.
    pub(crate) fn new(per_second: u32) -> Option<Self> {
        (per_second > 0).then(|| Self {
            rate: f64::from(per_second),
            buckets: std::sync::Arc::default(),
        })
    }

    /// Takes one update from `key`'s bucket, or says how long until one is back.
    pub(crate) fn take(&self, key: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.rate, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.rate);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

/// What an update did, for the log and the live view.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) rcode: ResponseCode,
    pub(crate) zone: String,
    /// The new serial when something changed.
    pub(crate) serial: Option<u32>,
}

/// Answers one UPDATE message. `key` is the one TSIG key that may change our
/// zones; without a key (tests, the fuzzer) every update is refused.
pub(crate) async fn handle(
    zones: &Zones,
    journal: Option<&Journal>,
    key: Option<&TsigKey>,
    limit: Option<&UpdateLimit>,
    packet: &[u8],
    client: SocketAddr,
) -> (Vec<u8>, Outcome) {
    let now = tsig::now();
    let signature = tsig::find(packet);
    let mut outcome = Outcome {
        rcode: ResponseCode::Refused,
        zone: String::new(),
        serial: None,
    };
    // The message without its TSIG record, with the original ID: what hickory parses.
    let body = match &signature {
        Some(sig) => tsig::strip(packet, sig),
        None => packet.to_vec(),
    };
    let parsed = Message::from_vec(&body).ok();
    let reply = |rcode: ResponseCode, message: Option<&Message>| -> Vec<u8> {
        response(packet, message, rcode)
    };

    let (Some(key), Some(sig)) = (key, signature.as_ref()) else {
        // No key configured, or an unsigned request: a policy refusal, as BIND
        // gives when its update-policy does not match (no TSIG error applies).
        tracing::warn!(%client, "update refused: not signed with the onebox TSIG key");
        return (reply(ResponseCode::Refused, parsed.as_ref()), outcome);
    };
    if let Err(error) = tsig::verify(packet, sig, key, now) {
        // RFC 8945 §5.2: NOTAUTH with the TSIG error; only BADTIME is signed.
        tracing::warn!(%client, "update refused: {error}");
        outcome.rcode = ResponseCode::NotAuth;
        let bytes = reply(ResponseCode::NotAuth, parsed.as_ref());
        let signed = error == tsig::TsigError::BadTime;
        return (
            tsig::sign_response(bytes, key, sig, error.code(), signed, now),
            outcome,
        );
    }
    let sign = |bytes: Vec<u8>| tsig::sign_response(bytes, key, sig, 0, true, now);
    if let Some(Err(wait)) = limit.map(|l| l.take(&sig.key_name)) {
        // Signed, so the client can trust the refusal; it may retry after `wait`.
        tracing::warn!(
            %client,
            key = %sig.key_name,
            "update refused: over the key's rate (--update-rate); one more in {} ms",
            wait.as_millis()
        );
        return (sign(reply(ResponseCode::Refused, parsed.as_ref())), outcome);
    }
    let Some(message) = parsed else {
        outcome.rcode = ResponseCode::FormErr;
        return (sign(reply(ResponseCode::FormErr, None)), outcome);
    };
    // The journal names the key as the live view does, and where the update came from.
    let author = Author {
        by: key.name.clone(),
        from: Some(client),
    };
    let rcode = match apply(zones, journal, &message, author).await {
        Ok((zone, serial)) => {
            outcome.zone = zone;
            outcome.serial = serial;
            ResponseCode::NoError
        }
        Err((zone, rcode)) => {
            outcome.zone = zone;
            rcode
        }
    };
    outcome.rcode = rcode;
    match outcome.serial {
        Some(serial) => tracing::info!(%client, zone = %outcome.zone, serial, "zone updated"),
        None => tracing::info!(%client, zone = %outcome.zone, rcode = %rcode, "update not applied"),
    }
    (sign(reply(rcode, Some(&message))), outcome)
}

/// The reply: the request's ID, its zone (when it names exactly one), our
/// rcode. Built by hand when the request could not be parsed, so even garbage
/// gets a well-formed FORMERR.
fn response(packet: &[u8], request: Option<&Message>, rcode: ResponseCode) -> Vec<u8> {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let mut message = Message::new(id, MessageType::Response, OpCode::Update);
    message.metadata.response_code = rcode;
    // One zone is echoed, never more: RFC 2136 §3.1.1 allows one, and echoing
    // dozens of long names would make a UDP refusal bigger than we promise.
    if let Some([zone]) = request.map(|r| r.queries.as_slice()) {
        message.queries.push(zone.clone());
    }
    message.to_vec().unwrap_or_else(|_| {
        // A header alone always encodes: ID, QR + opcode 5, the rcode, no records.
        let mut header = vec![0; 12];
        header[..2].copy_from_slice(&id.to_be_bytes());
        header[2] = 0x80 | (5 << 3);
        header[3] = rcode.low();
        header
    })
}

/// Checks the zone section, then applies the update to that zone: computed on
/// a copy that shares every untouched RRset, journaled durably, then put in
/// place. On success, the zone's name and the new serial (`None` when nothing
/// changed).
async fn apply(
    zones: &Zones,
    journal: Option<&Journal>,
    message: &Message,
    by: Author,
) -> Result<(String, Option<u32>), (String, ResponseCode)> {
    // §3.1.1: exactly one zone, of type SOA.
    let [zone] = message.queries.as_slice() else {
        return Err((String::new(), ResponseCode::FormErr));
    };
    let origin = zone.name().clone();
    let shown = origin.to_string();
    if zone.query_type() != RecordType::SOA || zone.query_class() != DNSClass::IN {
        return Err((shown, ResponseCode::FormErr));
    }
    // One change at a time: each is computed from the zone the last one left.
    let _turn = match journal {
        Some(journal) => Some(journal.lock().await),
        None => None,
    };
    let set = zones.snapshot();
    let Some(current) = set
        .zones
        .values()
        .find(|z| super::same_name(z.origin(), &origin))
        .cloned()
    else {
        return Err((shown, ResponseCode::NotAuth));
    };
    drop(set);
    let change = match compute(&current, message) {
        Ok(Some(change)) => change,
        Ok(None) => return Ok((shown, None)),
        Err(rcode) => return Err((shown, rcode)),
    };
    // Durable before it is served or answered: a change the client saw
    // acknowledged survives kill -9. Journaled under the zone's own name (lower
    // case, as the file gives it), not as the client spelled it: a restart
    // replays the journal by that name.
    if let Some(journal) = journal
        && let Err(e) = journal
            .record(&current.origin().to_string(), &current, &change, by)
            .await
    {
        tracing::error!("update not applied: the journal write failed: {e:#}");
        return Err((shown, ResponseCode::ServFail));
    }
    match zones.apply(&origin, change.rrsets, &change.touched).await {
        Ok(serial) => Ok((shown, Some(serial))),
        Err(e) => {
            tracing::error!("update not applied: {e:#}");
            Err((shown, ResponseCode::ServFail))
        }
    }
}

/// One update worked out: the zone's records after it (sharing every RRset it
/// did not touch with the records before), and what it changed.
#[derive(Debug)]
pub(crate) struct Change {
    pub(crate) rrsets: Rrsets,
    /// The RRsets it changed, each once.
    pub(crate) touched: Vec<RrKey>,
    /// The records it took out and put in, the old and the new SOA among them.
    pub(crate) removed: Vec<Record>,
    pub(crate) added: Vec<Record>,
    pub(crate) serial_from: u32,
    pub(crate) serial_to: u32,
}

/// A zone's records while an update is applied to them: a clone of the served
/// map (O(1)), changed copy-on-write, with the keys it changed.
struct Draft {
    rrsets: Rrsets,
    touched: BTreeSet<RrKey>,
}

impl Draft {
    /// The records of one RRset, none when there is no such RRset.
    fn records(&self, key: &RrKey) -> Vec<Record> {
        self.rrsets
            .get(key)
            .map(|set| set.records_without_rrsigs().cloned().collect())
            .unwrap_or_default()
    }

    /// Makes `records` the RRset at `key` (none deletes it), unless it already is.
    fn put(&mut self, key: RrKey, records: Vec<Record>) {
        let same = match self.rrsets.get(&key) {
            Some(set) => set.records_without_rrsigs().eq(records.iter()),
            None => records.is_empty(),
        };
        if !same {
            self.rrsets.set(key.clone(), records);
            self.touched.insert(key);
        }
    }

    /// The records removed and added since `before`, looking only at the
    /// touched RRsets: as sets, so the order records sit in never counts.
    fn difference(&self, before: &Rrsets) -> (Vec<Record>, Vec<Record>) {
        let (mut removed, mut added) = (Vec::new(), Vec::new());
        let records = |sets: &Rrsets, key: &RrKey| -> Vec<Record> {
            sets.get(key)
                .map(|set| set.records_without_rrsigs().cloned().collect())
                .unwrap_or_default()
        };
        for key in &self.touched {
            let (old, new) = (records(before, key), records(&self.rrsets, key));
            removed.extend(old.iter().filter(|r| !new.contains(r)).cloned());
            added.extend(new.iter().filter(|r| !old.contains(r)).cloned());
        }
        (removed, added)
    }
}

/// The update's change to `zone`, `None` when it changes nothing, or the
/// rcode that refuses it. Costs what the update touches: O(log n) per record.
fn compute(zone: &Zone, message: &Message) -> Result<Option<Change>, ResponseCode> {
    let origin = zone.origin();
    let before = zone.rrsets();
    check_prerequisites(origin, before, &message.answers)?;
    prescan(origin, &message.authorities)?;
    let mut draft = Draft {
        rrsets: before.clone(),
        touched: BTreeSet::new(),
    };
    for update in &message.authorities {
        apply_one(origin, &mut draft, update);
    }
    // Changed means different records, not merely records touched: an update
    // that deletes a record and adds it back (as the same UPDATE resent by a
    // client whose UDP reply was late does) changes nothing, and must not bump
    // the serial nor journal an empty change.
    let (removed, added) = draft.difference(before);
    if removed.is_empty() && added.is_empty() {
        return Ok(None);
    }
    let cap = max_records();
    if draft.rrsets.len() > cap {
        tracing::warn!("update refused: zone {origin} would hold more than {cap} records");
        return Err(ResponseCode::Refused);
    }
    // The serial goes up by one (RFC 1982: wrapping), unless the update itself
    // set a newer one.
    let serial_from = zone.serial();
    let soa_key = rrsets::key(origin, RecordType::SOA);
    let mut soa = draft.records(&soa_key);
    let mut serial_to = serial_from;
    if let Some(record) = soa.first_mut()
        && let RData::SOA(data) = &mut record.data
    {
        if data.serial == serial_from {
            data.serial = serial_from.wrapping_add(1);
        }
        serial_to = data.serial;
    }
    draft.put(soa_key, soa);
    let (removed, added) = draft.difference(before);
    Ok(Some(Change {
        rrsets: draft.rrsets,
        touched: draft.touched.into_iter().collect(),
        removed,
        added,
        serial_from,
        serial_to,
    }))
}

fn lower(name: &Name) -> LowerName {
    LowerName::from(name)
}

/// The same owner, type and data (RFC 2136 §1.1.1: TTL does not count).
fn same_record(a: &Record, b: &Record) -> bool {
    lower(&a.name) == lower(&b.name) && a.record_type() == b.record_type() && a.data == b.data
}

/// §3.2: every prerequisite must hold, or the update is refused with the
/// rcode that names the first one that does not.
fn check_prerequisites(
    origin: &Name,
    records: &Rrsets,
    prereqs: &[Record],
) -> Result<(), ResponseCode> {
    let has = |name: &Name, rtype: RecordType| records.get(&rrsets::key(name, rtype)).is_some();
    // Value-dependent prerequisites (class IN) are compared as whole RRsets.
    let mut wanted: Vec<&Record> = Vec::new();
    for pre in prereqs {
        if pre.ttl != 0 {
            return Err(ResponseCode::FormErr);
        }
        if !origin.zone_of(&pre.name) {
            return Err(ResponseCode::NotZone);
        }
        let rtype = pre.record_type();
        let empty = matches!(pre.data, RData::Update0(_));
        match pre.dns_class {
            DNSClass::ANY => {
                if !empty {
                    return Err(ResponseCode::FormErr);
                }
                if rtype == RecordType::ANY {
                    if records.at(&pre.name).next().is_none() {
                        return Err(ResponseCode::NXDomain);
                    }
                } else if !has(&pre.name, rtype) {
                    return Err(ResponseCode::NXRRSet);
                }
            }
            DNSClass::NONE => {
                if !empty {
                    return Err(ResponseCode::FormErr);
                }
                if rtype == RecordType::ANY {
                    if records.at(&pre.name).next().is_some() {
                        return Err(ResponseCode::YXDomain);
                    }
                } else if has(&pre.name, rtype) {
                    return Err(ResponseCode::YXRRSet);
                }
            }
            DNSClass::IN => {
                if empty || rtype == RecordType::ANY {
                    return Err(ResponseCode::FormErr);
                }
                wanted.push(pre);
            }
            _ => return Err(ResponseCode::NotAuth),
        }
    }
    // §3.2.3: each named RRset must equal exactly the records listed for it.
    let mut checked: Vec<(LowerName, RecordType)> = Vec::new();
    for pre in &wanted {
        let key = (lower(&pre.name), pre.record_type());
        if checked.contains(&key) {
            continue;
        }
        let listed: Vec<&&Record> = wanted
            .iter()
            .filter(|r| lower(&r.name) == key.0 && r.record_type() == key.1)
            .collect();
        let present: Vec<&Record> = records
            .get(&rrsets::key(&pre.name, key.1))
            .map(|set| set.records_without_rrsigs().collect())
            .unwrap_or_default();
        let equal = present.len() == listed.len()
            && present
                .iter()
                .all(|p| listed.iter().any(|l| l.data == p.data))
            && listed
                .iter()
                .all(|l| present.iter().any(|p| l.data == p.data));
        if !equal {
            return Err(ResponseCode::NXRRSet);
        }
        checked.push(key);
    }
    Ok(())
}

/// §3.4.1: the whole update section is checked before anything is applied.
fn prescan(origin: &Name, updates: &[Record]) -> Result<(), ResponseCode> {
    for update in updates {
        if !origin.zone_of(&update.name) {
            return Err(ResponseCode::NotZone);
        }
        let rtype = update.record_type();
        let meta = matches!(
            rtype,
            RecordType::AXFR | RecordType::IXFR | RecordType::OPT | RecordType::TSIG
        ) || u16::from(rtype) == 253
            || u16::from(rtype) == 254;
        let empty = matches!(update.data, RData::Update0(_));
        if meta || update.ttl > MAX_TTL {
            return Err(ResponseCode::FormErr);
        }
        match update.dns_class {
            DNSClass::IN => {
                if rtype == RecordType::ANY || empty {
                    return Err(ResponseCode::FormErr);
                }
            }
            DNSClass::ANY => {
                if update.ttl != 0 || !empty {
                    return Err(ResponseCode::FormErr);
                }
            }
            DNSClass::NONE => {
                if update.ttl != 0 || rtype == RecordType::ANY || empty {
                    return Err(ResponseCode::FormErr);
                }
            }
            _ => return Err(ResponseCode::FormErr),
        }
    }
    Ok(())
}

/// §3.4.2: applies one change. Changes the RFC says to ignore (a CNAME beside
/// other data, deleting the apex SOA or the last apex NS) are ignored silently,
/// as BIND and Knot do, and logged.
fn apply_one(origin: &Name, draft: &mut Draft, update: &Record) {
    let apex = lower(&update.name) == lower(origin);
    let rtype = update.record_type();
    let here = rrsets::key(&update.name, rtype);
    match update.dns_class {
        DNSClass::IN => {
            let cname = draft
                .rrsets
                .get(&rrsets::key(&update.name, RecordType::CNAME))
                .is_some();
            let others = draft
                .rrsets
                .at(&update.name)
                .any(|set| set.record_type() != RecordType::CNAME);
            if rtype == RecordType::CNAME && others {
                tracing::warn!(
                    "update ignored: a CNAME cannot sit beside other data at {}",
                    update.name
                );
                return;
            }
            if rtype != RecordType::CNAME && cname {
                tracing::warn!(
                    "update ignored: {} has a CNAME, which allows no other data",
                    update.name
                );
                return;
            }
            let mut record = update.clone();
            record.dns_class = DNSClass::IN;
            if rtype == RecordType::SOA {
                // Only the apex has an SOA, and only a newer serial replaces it.
                let current = draft.records(&here);
                if let (true, RData::SOA(new), Some(RData::SOA(old))) =
                    (apex, &record.data, current.first().map(|r| &r.data))
                    && super::engine::serial_newer(new.serial, old.serial)
                {
                    draft.put(here, vec![record]);
                }
                return;
            }
            if rtype == RecordType::CNAME {
                // One CNAME per name: the new one replaces the old.
                draft.put(here, vec![record]);
                return;
            }
            // One TTL per RRset (RFC 2181 §5.2): the new record's TTL applies to all.
            let mut records = draft.records(&here);
            for r in &mut records {
                r.ttl = record.ttl;
            }
            if !records.iter().any(|r| same_record(r, &record)) {
                records.push(record);
            }
            draft.put(here, records);
        }
        DNSClass::ANY => {
            let protected = |t: RecordType| apex && matches!(t, RecordType::SOA | RecordType::NS);
            let keys: Vec<RrKey> = if rtype == RecordType::ANY {
                draft
                    .rrsets
                    .at(&update.name)
                    .map(|set| rrsets::key(set.name(), set.record_type()))
                    .collect()
            } else {
                vec![here]
            };
            for key in keys {
                if !protected(key.record_type) {
                    draft.put(key, Vec::new());
                }
            }
        }
        DNSClass::NONE => {
            if rtype == RecordType::SOA {
                return;
            }
            let mut records = draft.records(&here);
            let matching = records.iter().filter(|r| same_record(r, update)).count();
            if apex && rtype == RecordType::NS && records.len() <= matching {
                tracing::warn!("update ignored: it would delete the last NS of {origin}");
                return;
            }
            records.retain(|r| !same_record(r, update));
            draft.put(here, records);
        }
        _ => {}
    }
}

/// One record as the fixture API names it: `{"name","type","value","ttl"}`.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub(crate) struct RecordSpec {
    pub(crate) name: String,
    #[serde(rename = "type")]
    pub(crate) rtype: String,
    pub(crate) value: String,
    #[serde(default = "default_ttl")]
    pub(crate) ttl: u32,
}

fn default_ttl() -> u32 {
    60
}

/// Why the fixture API could not make a change; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChangeError {
    #[error("{0}")]
    BadInput(String),
    #[error("no zone served here contains {0}")]
    NotOurs(String),
    /// The journal could not make the change durable (a full disk, a failing
    /// database): nothing was applied, and retrying later may work. Not a
    /// conflict with the zone's data, so never 409.
    #[error("the change could not be written to the journal, so nothing was applied; retry later")]
    Unavailable,
    #[error("zone {zone} is full: it holds at most {cap} records; delete some first")]
    Full { zone: String, cap: usize },
    #[error("too many changes: over --update-rate for the api; retry in {} ms", .0.as_millis())]
    TooFast(Duration),
}

/// Adds (`add`) or deletes one record: the fixture API's path into the very
/// same UPDATE code, so the validation, the serial and the journal are the
/// same as for `nsupdate`. Returns the zone's serial afterwards.
pub(crate) async fn change_record(
    zones: &Zones,
    journal: Option<&Journal>,
    limit: Option<&UpdateLimit>,
    spec: &RecordSpec,
    add: bool,
    by: Author,
) -> Result<u32, ChangeError> {
    use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
    // Names in the API are absolute whether or not they end in a dot.
    let fqdn = |text: &str| {
        Name::from_utf8(text).map(|mut n| {
            n.set_fqdn(true);
            n
        })
    };
    let name = fqdn(&spec.name)
        .map_err(|e| ChangeError::BadInput(format!("bad name {:?}: {e}", spec.name)))?;
    let bad = |what: &str| ChangeError::BadInput(format!("bad {what} value {:?}", spec.value));
    let rdata = match spec.rtype.to_ascii_uppercase().as_str() {
        "A" => RData::A(A(spec.value.parse().map_err(|_| bad("A"))?)),
        "AAAA" => RData::AAAA(AAAA(spec.value.parse().map_err(|_| bad("AAAA"))?)),
        "CNAME" => RData::CNAME(CNAME(fqdn(&spec.value).map_err(|_| bad("CNAME"))?)),
        "TXT" => {
            if spec.value.len() > 255 {
                return Err(ChangeError::BadInput(
                    "a TXT value is at most 255 bytes".into(),
                ));
            }
            RData::TXT(TXT::new(vec![spec.value.clone()]))
        }
        "MX" => {
            let (pref, host) = spec.value.split_once(' ').ok_or_else(|| bad("MX"))?;
            RData::MX(MX::new(
                pref.trim().parse().map_err(|_| bad("MX"))?,
                fqdn(host.trim()).map_err(|_| bad("MX"))?,
            ))
        }
        other => {
            return Err(ChangeError::BadInput(format!(
                "type {other} is not offered: use A, AAAA, CNAME, TXT or MX"
            )));
        }
    };
    let origin = zones
        .snapshot()
        .zone_for(&name)
        .map(|z| z.origin().clone())
        .ok_or_else(|| ChangeError::NotOurs(spec.name.clone()))?;
    let mut record = Record::from_rdata(name, if add { spec.ttl } else { 0 }, rdata);
    if !add {
        record.dns_class = DNSClass::NONE;
    }
    let mut message = Message::new(0, MessageType::Query, OpCode::Update);
    let mut zone = hickory_server::proto::op::Query::query(origin, RecordType::SOA);
    zone.set_query_class(DNSClass::IN);
    message.queries.push(zone);
    message.authorities.push(record);
    let refused = |zone: String, rcode: ResponseCode| match rcode {
        ResponseCode::FormErr => {
            ChangeError::BadInput("malformed record (a TTL out of range?)".into())
        }
        ResponseCode::NotZone | ResponseCode::NotAuth => ChangeError::NotOurs(spec.name.clone()),
        // The one REFUSED past the key and rate checks: the records cap.
        ResponseCode::Refused => ChangeError::Full {
            zone,
            cap: max_records(),
        },
        // SERVFAIL: the journal write failed (the log says why).
        _ => ChangeError::Unavailable,
    };
    if let Some(Err(wait)) = limit.map(|l| l.take("api")) {
        tracing::warn!(
            "api change refused: over --update-rate; one more in {} ms",
            wait.as_millis()
        );
        return Err(ChangeError::TooFast(wait));
    }
    match apply(zones, journal, &message, by).await {
        Ok((_, Some(serial))) => Ok(serial),
        Ok((_, None)) => Ok(zones
            .snapshot()
            .zone_for(&message.queries[0].name().clone())
            .map(|z| z.serial())
            .unwrap_or(0)),
        Err((zone, rcode)) => Err(refused(zone, rcode)),
    }
}

/// Every A, AAAA, CNAME, TXT and MX record served, as the fixture API lists them.
pub(crate) fn list_records(zones: &Zones) -> Vec<RecordSpec> {
    let set = zones.snapshot();
    let mut out = Vec::new();
    for zone in set.zones.values() {
        for record in zone.records() {
            let value = match &record.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::CNAME(c) => c.0.to_string(),
                RData::MX(mx) => format!("{} {}", mx.preference, mx.exchange),
                RData::TXT(txt) => txt
                    .txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(""),
                _ => continue,
            };
            out.push(RecordSpec {
                name: record.name.to_string().trim_end_matches('.').to_string(),
                rtype: record.record_type().to_string(),
                value,
                ttl: record.ttl,
            });
        }
    }
    out
}

/// The fuzzer's way past TSIG (which it cannot forge): parses and applies an
/// UPDATE exactly as a signed one would be, on `zones`, with no journal.
pub(crate) async fn apply_unsigned(zones: &Zones, packet: &[u8]) -> Option<ResponseCode> {
    let message = Message::from_vec(packet).ok()?;
    let author = Author {
        by: "fuzz".into(),
        from: None,
    };
    Some(match apply(zones, None, &message, author).await {
        Ok(_) => ResponseCode::NoError,
        Err((_, rcode)) => rcode,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hickory_server::proto::op::Query;
    use hickory_server::proto::rr::rdata::A;

    use super::*;

    #[test]
    fn update_limit_spends_each_keys_bucket_apart() {
        assert!(UpdateLimit::new(0).is_none(), "0 means no limit");
        let limit = UpdateLimit::new(2).unwrap();
        assert!(limit.take("onebox-update.").is_ok());
        assert!(limit.take("onebox-update.").is_ok());
        // The third within the same second waits; at most half a second at 2/s.
        let wait = limit.take("onebox-update.").unwrap_err();
        assert!(wait <= Duration::from_millis(500), "{wait:?}");
        // The API's bucket is its own.
        assert!(limit.take("api").is_ok());
    }

    fn zones() -> Zones {
        Zones::load(std::path::Path::new("/nonexistent-onebox-zones"), false).unwrap()
    }

    fn update(records: Vec<Record>, zone_count: usize) -> Vec<u8> {
        let mut message = Message::new(7, MessageType::Query, OpCode::Update);
        for _ in 0..zone_count {
            let mut zone = Query::query(Name::from_ascii("foobar.com.").unwrap(), RecordType::SOA);
            zone.set_query_class(DNSClass::IN);
            message.queries.push(zone);
        }
        message.authorities = records;
        message.to_vec().unwrap()
    }

    fn a(name: &str, ttl: u32) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            ttl,
            RData::A(A::new(192, 0, 2, 1)),
        )
    }

    fn run(zones: &Zones, packet: &[u8]) -> Option<ResponseCode> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(apply_unsigned(zones, packet))
    }

    #[test]
    fn malformed_updates_are_formerr_and_change_nothing() {
        let zones = zones();
        // The one test zone's serial, as queries see it now.
        let serial_now = || zones.snapshot().zones.values().next().unwrap().serial();
        let serial = serial_now();
        // No zone, two zones.
        assert_eq!(
            run(&zones, &update(vec![a("x.foobar.com.", 60)], 0)),
            Some(ResponseCode::FormErr)
        );
        assert_eq!(
            run(&zones, &update(vec![a("x.foobar.com.", 60)], 2)),
            Some(ResponseCode::FormErr)
        );
        // A TTL above 2^31 - 1.
        assert_eq!(
            run(&zones, &update(vec![a("x.foobar.com.", u32::MAX)], 1)),
            Some(ResponseCode::FormErr)
        );
        // Class ANY with a TTL or with data: only "delete the RRset" has that class.
        let mut any = a("x.foobar.com.", 0);
        any.dns_class = DNSClass::ANY;
        assert_eq!(
            run(&zones, &update(vec![any], 1)),
            Some(ResponseCode::FormErr)
        );
        // Class NONE with a TTL.
        let mut none = a("x.foobar.com.", 60);
        none.dns_class = DNSClass::NONE;
        assert_eq!(
            run(&zones, &update(vec![none], 1)),
            Some(ResponseCode::FormErr)
        );
        // Outside the zone.
        assert_eq!(
            run(&zones, &update(vec![a("x.example.net.", 60)], 1)),
            Some(ResponseCode::NotZone)
        );
        assert_eq!(serial_now(), serial, "nothing was applied");
        // And a good one is applied, with the serial bumped by one.
        assert_eq!(
            run(&zones, &update(vec![a("x.foobar.com.", 60)], 1)),
            Some(ResponseCode::NoError)
        );
        assert_eq!(serial_now(), serial.wrapping_add(1));
    }

    /// A refusal echoes the zone section only when it names one zone, so that
    /// it never grows past the UDP size we promise (the fuzzer found a
    /// 1,579-byte REFUSED to an unsigned UPDATE of 37 zones).
    #[test]
    fn a_refusal_echoes_one_zone_and_never_forty() {
        let client: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let refuse = |zone_names: Vec<String>| {
            let mut message = Message::new(7, MessageType::Query, OpCode::Update);
            for name in zone_names {
                let mut zone = Query::query(Name::from_ascii(name).unwrap(), RecordType::SOA);
                zone.set_query_class(DNSClass::IN);
                message.queries.push(zone);
            }
            let packet = message.to_vec().unwrap();
            let (reply, outcome) = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(handle(&zones(), None, None, None, &packet, client));
            assert_eq!(outcome.rcode, ResponseCode::Refused);
            (
                packet.len(),
                reply.len(),
                Message::from_vec(&reply).unwrap(),
            )
        };
        let (_, _, one) = refuse(vec!["foobar.com.".to_string()]);
        assert_eq!(one.metadata.response_code, ResponseCode::Refused);
        assert_eq!(one.queries.len(), 1, "one zone is echoed");
        // Distinct names, so that compression cannot shrink the echo.
        let many = (0..40)
            .map(|i| format!("{i:02}{}.example.", "x".repeat(48)))
            .collect();
        let (asked, size, reply) = refuse(many);
        assert!(asked > 2000, "the zone section alone is over the limit");
        assert!(size <= 1232, "a refusal of {size} bytes");
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(reply.queries.is_empty());
    }

    #[test]
    fn an_update_shares_every_rrset_it_does_not_touch() {
        let zones = zones();
        let zone_now = || zones.snapshot().zones.values().next().unwrap().clone();
        let before = zone_now();
        let mut txt = Record::from_rdata(
            Name::from_ascii("www.foobar.com.").unwrap(),
            60,
            RData::TXT(hickory_server::proto::rr::rdata::TXT::new(vec!["x".into()])),
        );
        assert_eq!(
            run(&zones, &update(vec![a("new.foobar.com.", 60)], 1)),
            Some(ResponseCode::NoError)
        );
        // A CNAME allows no TXT beside it: ignored, so nothing changed at www.
        txt.dns_class = DNSClass::IN;
        assert_eq!(
            run(&zones, &update(vec![txt], 1)),
            Some(ResponseCode::NoError)
        );
        let after = zone_now();
        assert_eq!(after.serial(), before.serial().wrapping_add(1));
        assert_eq!(after.record_count(), before.record_count() + 1);
        let touched = [
            rrsets::key(&Name::from_ascii("new.foobar.com.").unwrap(), RecordType::A),
            rrsets::key(before.origin(), RecordType::SOA),
        ];
        let mut shared = 0;
        for (key, set) in before.rrsets().iter() {
            let kept = after.rrsets().get(key).expect("nothing was deleted");
            if touched.contains(key) {
                assert!(!Arc::ptr_eq(set, kept), "{key:?} was changed in place");
            } else {
                assert!(Arc::ptr_eq(set, kept), "{key:?} was copied");
                shared += 1;
            }
        }
        assert!(shared > 3, "only {shared} RRsets compared");
        assert!(after.rrsets().get(&touched[0]).is_some());
        // hickory's handler answers from the very same RRsets.
        let set = zones.snapshot();
        let served = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let zone = set.zones.values().next().unwrap();
                let records = zone.handler.records().await;
                records
                    .iter()
                    .all(|(key, rrset)| Arc::ptr_eq(rrset, zone.rrsets().get(key).unwrap()))
                    && records.len() == zone.rrsets().iter().count()
            });
        assert!(served, "hickory's handler and the model differ");
    }

    /// dyn_limits' folding test once saw one serial too many: a client resent
    /// an UPDATE whose reply was late, and the copy, applied after another
    /// client's change, deleted and re-added the same record. That changes
    /// nothing, so it must not bump the serial.
    #[test]
    fn the_same_update_applied_twice_bumps_the_serial_once() {
        let zones = zones();
        let serial = || zones.snapshot().zones.values().next().unwrap().serial();
        let mut delete = a("c0.foobar.com.", 0);
        delete.dns_class = DNSClass::ANY;
        delete.data = RData::Update0(RecordType::A);
        let replace = update(vec![delete, a("c0.foobar.com.", 60)], 1);
        let first = serial();
        assert_eq!(run(&zones, &replace), Some(ResponseCode::NoError));
        assert_eq!(
            run(&zones, &update(vec![a("c1.foobar.com.", 60)], 1)),
            Some(ResponseCode::NoError)
        );
        assert_eq!(serial(), first.wrapping_add(2));
        assert_eq!(run(&zones, &replace), Some(ResponseCode::NoError));
        assert_eq!(serial(), first.wrapping_add(2), "the copy changed nothing");
    }

    #[test]
    fn random_bytes_after_a_valid_header_never_panic() {
        let zones = zones();
        let base = update(vec![a("x.foobar.com.", 60)], 1);
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..3000 {
            let mut packet = base.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = 2 + (state as usize) % (packet.len() - 2);
                packet[at] = (state >> 32) as u8;
            }
            let _ = run(&zones, &packet);
        }
    }
}
