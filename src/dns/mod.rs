//! The "Domain and DNS" box: an authoritative DNS server for the zones in `zones/`.
//!
//! Request order: [`server`] reads a query from UDP, TCP or DNS over TLS (and the
//! web server hands over DNS over HTTPS through [`doh`]); [`engine`] turns its bytes
//! into answer bytes (hickory-server's `Catalog` looks the name up, then we bring the
//! answer to the standard of NSD and Knot), replaying repeats from [`cache`]; and
//! [`Zones`] holds the zones that [`zonefile`] read and checked, swapped atomically
//! on reload. [`lookup`] is the other direction: the client that `visit` and
//! `doctor` use to ask a DNS server a question.
//! hickory's types stay inside this module; the rest of onebox sees strings and
//! `std::net` addresses.

pub(crate) mod authorities;
pub(crate) mod cache;
pub(crate) mod doh;
pub(crate) mod engine;
pub(crate) mod journal;
pub(crate) mod lookup;
pub(crate) mod notify;
mod peer;
pub(crate) mod probe;
pub(crate) mod recursor;
pub(crate) mod rrsets;
pub(crate) mod server;
pub(crate) mod tsig;
pub(crate) mod update;
pub(crate) mod zonefile;

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use anyhow::{Context, bail};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};

pub(crate) use engine::Engine;
pub(crate) use peer::{Cidr, Transport};
use zonefile::{ParsedZone, Problem, ZoneSource};

/// The zone this binary serves when `--zones` names no folder, so `onebox serve`
/// works from any directory.
const BUILTIN_ZONE: &str = include_str!("../../zones/foobar.com.zone");
const BUILTIN_NAME: &str = "<built-in>/foobar.com.zone";

/// Checks zone files the way `serve` does at startup and on reload.
/// Returns the problems, one `FILE:LINE: message` each, and the warnings.
pub(crate) fn check_files(paths: &[PathBuf]) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ok, mut problems, mut warnings) = (Vec::new(), Vec::new(), Vec::new());
    for path in paths {
        match ZoneSource::from_path(path)
            .map_err(|p| vec![p])
            .and_then(|s| zonefile::parse_zone(&s))
        {
            Ok(zone) => {
                warnings.extend(zone.warnings.iter().map(ToString::to_string));
                ok.push(format!(
                    "{}: zone {} serial {}, {} records",
                    path.display(),
                    zone.origin,
                    zone.serial,
                    zone.records.len()
                ));
            }
            Err(found) => problems.extend(found.iter().map(ToString::to_string)),
        }
    }
    (ok, problems, warnings)
}

/// One link of a resolution chain, as a resolver would print it:
/// `www.foobar.com. 3600 CNAME foobar.com.`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct ChainLink {
    pub(crate) name: String,
    pub(crate) ttl: u32,
    #[serde(rename = "type")]
    pub(crate) rtype: String,
    pub(crate) data: String,
}

/// Each watched file of a zone, with when it was last seen (time and size).
type Stamps = Arc<[(PathBuf, Option<(SystemTime, u64)>)]>;

/// hickory's answer engine for one zone.
pub(crate) type Handler = InMemoryZoneHandler<TokioRuntimeProvider>;

/// A zone as served: its records plus what the answer engine needs.
///
/// A change (UPDATE, the fixture API) makes a new `Zone` that shares every
/// untouched RRset with the old one ([`rrsets::Rrsets`]) and hickory's handler,
/// which the change edits in place under its own lock (see [`Zones::apply`]).
pub(crate) struct Zone {
    origin: Name,
    /// The SOA serial served.
    serial: u32,
    /// A hash of the zone file's text as last read, to tell "changed" from "touched".
    digest: u64,
    rrsets: rrsets::Rrsets,
    /// The SOA as written: what opens and closes a zone transfer.
    soa: Record,
    /// The SOA with the negative TTL, for AUTHORITY in negative answers.
    negative_soa: Record,
    /// When each watched file was last seen, to notice edits.
    stamps: Stamps,
    handler: Arc<Handler>,
}

impl std::fmt::Debug for Zone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zone")
            .field("origin", &self.origin)
            .field("serial", &self.serial)
            .field("rrsets", &self.rrsets)
            .finish_non_exhaustive()
    }
}

impl Zone {
    fn new(parsed: ParsedZone, axfr: AxfrPolicy) -> anyhow::Result<Self> {
        let stamps = parsed.files.iter().map(|p| (p.clone(), stamp(p))).collect();
        let rrsets = rrsets::Rrsets::from_records(parsed.records.into_iter().map(|(r, _)| r));
        Self::build(parsed.origin, parsed.digest, stamps, rrsets, axfr)
    }

    /// A zone of these records, with a handler of its own (a load, a reload).
    fn build(
        origin: Name,
        digest: u64,
        stamps: Stamps,
        rrsets: rrsets::Rrsets,
        axfr: AxfrPolicy,
    ) -> anyhow::Result<Self> {
        let mut handler = Handler::empty(origin.clone(), ZoneType::Primary, axfr);
        *handler.records_get_mut() = rrsets
            .iter()
            .map(|(key, set)| (key.clone(), set.clone()))
            .collect();
        Self::with_handler(origin, digest, stamps, rrsets, Arc::new(handler))
    }

    fn with_handler(
        origin: Name,
        digest: u64,
        stamps: Stamps,
        rrsets: rrsets::Rrsets,
        handler: Arc<Handler>,
    ) -> anyhow::Result<Self> {
        let soa = rrsets
            .get(&rrsets::key(&origin, RecordType::SOA))
            .and_then(|set| set.records_without_rrsigs().next().cloned())
            .with_context(|| format!("zone {origin} has no SOA at its apex"))?;
        let RData::SOA(data) = &soa.data else {
            bail!("zone {origin}: the SOA record holds no SOA data");
        };
        let serial = data.serial;
        let mut negative_soa = soa.clone();
        // RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM).
        negative_soa.ttl = soa.ttl.min(data.minimum);
        Ok(Self {
            origin,
            serial,
            digest,
            rrsets,
            soa,
            negative_soa,
            stamps,
            handler,
        })
    }

    /// This zone with `rrsets` in place of its records, as a reload's journal
    /// replay makes it: a handler of its own, built from all of them.
    pub(crate) fn replaced(
        &self,
        rrsets: rrsets::Rrsets,
        axfr: AxfrPolicy,
    ) -> anyhow::Result<Self> {
        Self::build(
            self.origin.clone(),
            self.digest,
            self.stamps.clone(),
            rrsets,
            axfr,
        )
    }

    /// The SOA serial served.
    pub(crate) fn serial(&self) -> u32 {
        self.serial
    }

    /// The hash of the zone file's text as last read.
    pub(crate) fn digest(&self) -> u64 {
        self.digest
    }

    /// The records, one RRset per owner and type.
    pub(crate) fn rrsets(&self) -> &rrsets::Rrsets {
        &self.rrsets
    }

    /// Every record, in canonical order.
    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        self.rrsets.records()
    }

    /// How many records the zone holds.
    pub(crate) fn record_count(&self) -> usize {
        self.rrsets.len()
    }

    pub(crate) fn origin(&self) -> &Name {
        &self.origin
    }

    /// Whether `name` exists here, directly or through a wildcard. A wildcard
    /// applies only at the closest encloser (RFC 4592 §3.3.1): the nearest
    /// ancestor that exists.
    pub(crate) fn name_exists(&self, name: &Name) -> bool {
        if self.is_node(name) {
            return true;
        }
        let mut parent = name.base_name();
        while self.origin().zone_of(&parent) {
            let wildcard = Name::from_ascii("*")
                .expect("valid label")
                .append_domain(&parent);
            if wildcard.is_ok_and(|w| self.is_node(&w)) {
                return true;
            }
            if self.is_node(&parent) || parent.is_root() {
                return false;
            }
            parent = parent.base_name();
        }
        false
    }

    /// Whether `name` is a node of the zone itself (records or an empty
    /// non-terminal), not merely covered by a wildcard.
    pub(crate) fn is_node(&self, name: &Name) -> bool {
        self.origin.zone_of(name) && self.rrsets.is_node(name)
    }

    /// Whether `name` holds records of `rtype`, or a CNAME (which answers every type).
    pub(crate) fn has_data(&self, name: &Name, rtype: RecordType) -> bool {
        self.records_at(name)
            .any(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
    }

    /// The zone cut at or above `name` (below the apex), with its NS records:
    /// where authority passes to another server.
    pub(crate) fn delegation(&self, name: &Name) -> Option<(Name, Vec<Record>)> {
        let apex = LowerName::from(self.origin());
        let mut current = name.clone();
        while self.origin().zone_of(&current) && LowerName::from(&current) != apex {
            let servers: Vec<Record> = self
                .records_at(&current)
                .filter(|r| r.record_type() == RecordType::NS)
                .cloned()
                .collect();
            if !servers.is_empty() {
                return Some((servers[0].name.clone(), servers));
            }
            current = current.base_name();
        }
        None
    }

    /// Addresses this zone holds for the targets of these NS records ("glue").
    pub(crate) fn glue(&self, servers: &[Record]) -> Vec<Record> {
        let mut glue = Vec::new();
        for server in servers {
            let RData::NS(target) = &server.data else {
                continue;
            };
            glue.extend(
                self.records_at(&target.0)
                    .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
                    .cloned(),
            );
        }
        glue
    }

    /// The SOA to put in AUTHORITY for a negative answer, its TTL already
    /// min(SOA TTL, MINIMUM) as RFC 2308 §3 asks.
    pub(crate) fn negative_soa(&self) -> &Record {
        &self.negative_soa
    }

    /// The zone as a transfer sends it (RFC 5936 §2.2): the SOA, every other record
    /// in canonical order, and the SOA again to close it.
    pub(crate) fn transfer(&self) -> Vec<Record> {
        let mut records = Vec::with_capacity(self.record_count() + 1);
        records.push(self.soa.clone());
        records.extend(
            self.records()
                .filter(|r| r.record_type() != RecordType::SOA)
                .cloned(),
        );
        records.push(self.soa.clone());
        records
    }

    /// The zone's SOA as written, with its own TTL.
    pub(crate) fn soa(&self) -> &Record {
        &self.soa
    }

    fn records_at<'a>(&'a self, name: &'a Name) -> impl Iterator<Item = &'a Record> + 'a {
        self.rrsets.records_at(name)
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Case-insensitive name equality (RFC 4343). hickory's `Name::eq_ignore_root_case`
/// ignores only the trailing dot, not case.
fn same_name(a: &Name, b: &Name) -> bool {
    LowerName::from(a) == LowerName::from(b)
}

/// Everything served at one moment: hickory's catalog and our view of each zone.
/// Replaced as a whole on reload, so a query sees either the old or the new set.
pub(crate) struct ZoneSet {
    pub(crate) catalog: Catalog,
    /// Keyed by the file each zone came from.
    pub(crate) zones: BTreeMap<String, Arc<Zone>>,
    /// Answers computed from exactly these zones; dropped with them on reload.
    pub(crate) answers: cache::AnswerCache,
    /// [`Zones::site_hosts`] for exactly these zones, worked out on first use: the
    /// web server checks every request's `Host` against it, and walking every
    /// record per request cost more than serving a small file.
    site_hosts: std::sync::OnceLock<Arc<[String]>>,
    /// Set once a newer set replaces this one. A UDP worker keeps its own `Arc`
    /// to the set it answers from and only checks this flag per query: a load of
    /// a cache line nobody writes until the next reload, where taking a fresh
    /// snapshot would be a lock and a shared reference count that every core
    /// writes to (see [`cache::Local`]).
    retired: std::sync::atomic::AtomicBool,
}

impl ZoneSet {
    /// A set of these zones, each answered by its own handler: O(zones), not
    /// O(records), since every zone brings its handler along. `site_hosts`, when
    /// known to be unchanged, saves working them out again.
    fn build(
        zones: BTreeMap<String, Arc<Zone>>,
        site_hosts: Option<Arc<[String]>>,
    ) -> anyhow::Result<Self> {
        let mut catalog = Catalog::new();
        let mut seen = HashSet::new();
        for (file, zone) in &zones {
            let origin = zone.origin().clone();
            if !seen.insert(LowerName::from(&origin)) {
                bail!("{file}: zone {origin} is already served from another file");
            }
            catalog.upsert(LowerName::from(&origin), vec![zone.handler.clone()]);
        }
        Ok(Self {
            catalog,
            zones,
            answers: cache::AnswerCache::default(),
            site_hosts: site_hosts
                .map(std::sync::OnceLock::from)
                .unwrap_or_default(),
            retired: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether a newer set serves in this one's place.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Puts `next` in the place of the set in `slot`, and tells whoever still
    /// holds the old one that it is stale.
    fn replace(slot: &mut Arc<ZoneSet>, next: ZoneSet) {
        let old = std::mem::replace(slot, Arc::new(next));
        old.retired
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// The zone `name` belongs to: the one with the longest matching origin.
    pub(crate) fn zone_for(&self, name: &Name) -> Option<&Arc<Zone>> {
        self.zones
            .values()
            .filter(|z| z.origin().zone_of(name))
            .max_by_key(|z| z.origin().num_labels())
    }
}

/// The zones being served. Cheap to clone; every clone sees reloads.
#[derive(Clone)]
pub(crate) struct Zones {
    current: Arc<RwLock<Arc<ZoneSet>>>,
    /// `None` serves the built-in zone.
    dir: Option<PathBuf>,
    axfr: AxfrPolicy,
    /// Views of some of these zones (the toy Internet's per-address servers, see
    /// `Zones::only`), refreshed from every reload so they never serve stale data.
    followers: Arc<std::sync::Mutex<Vec<Follower>>>,
}

/// A view over some zones (by label) that a reload of its parent refreshes.
struct Follower {
    labels: Vec<String>,
    /// Weak: a view nobody uses any more is dropped, not kept alive by its parent.
    current: std::sync::Weak<RwLock<Arc<ZoneSet>>>,
}

impl std::fmt::Debug for Zones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zones")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What a reload did, zone by zone, for the log and for tests.
#[derive(Debug, Default)]
pub(crate) struct ReloadReport {
    pub(crate) reloaded: Vec<String>,
    pub(crate) failed: Vec<String>,
}

impl Zones {
    /// Loads every `*.zone` file in `dir`, or the built-in zone when `dir` does not
    /// exist. Any problem in any file is an error: we never start with a partial zone.
    pub(crate) fn load(dir: &Path, allow_transfer: bool) -> anyhow::Result<Self> {
        let axfr = if allow_transfer {
            // The engine checks the client against --allow-transfer before hickory sees it.
            AxfrPolicy::AllowAll
        } else {
            AxfrPolicy::Deny
        };
        let dir = dir.is_dir().then(|| dir.to_path_buf());
        let mut zones = BTreeMap::new();
        let sources = match &dir {
            Some(dir) => zone_files(dir)?,
            None => vec![ZoneSource {
                display: BUILTIN_NAME.into(),
                path: None,
                text: BUILTIN_ZONE.into(),
            }],
        };
        if sources.is_empty() {
            bail!(
                "no zone files (*.zone) in {}",
                dir.as_deref().unwrap_or(Path::new(".")).display()
            );
        }
        let mut problems: Vec<Problem> = Vec::new();
        for source in sources {
            match zonefile::parse_zone(&source) {
                Ok(zone) => {
                    for warning in &zone.warnings {
                        tracing::warn!("{warning}");
                    }
                    zones.insert(source.display.clone(), Arc::new(Zone::new(zone, axfr)?));
                }
                Err(found) => problems.extend(found),
            }
        }
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            bail!("bad zone data, not serving:\n{}", list.join("\n"));
        }
        let set = ZoneSet::build(zones, None)?;
        Ok(Self {
            followers: Arc::default(),
            current: Arc::new(RwLock::new(Arc::new(set))),
            dir,
            axfr,
        })
    }

    /// The zones as they are now. Clone the `Arc` and let the lock go at once: a
    /// reload must never wait for a query, nor a query for a reload.
    pub(crate) fn snapshot(&self) -> Arc<ZoneSet> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether any zone file was added, removed or touched since it was loaded.
    pub(crate) fn changed_on_disk(&self) -> bool {
        let Some(dir) = &self.dir else { return false };
        let set = self.snapshot();
        let Ok(listed) = zone_paths(dir) else {
            return false;
        };
        let known: HashSet<&String> = set.zones.keys().collect();
        if listed.len() != known.len()
            || listed
                .iter()
                .any(|p| !known.contains(&p.display().to_string()))
        {
            return true;
        }
        set.zones
            .values()
            .any(|z| z.stamps.iter().any(|(path, seen)| stamp(path) != *seen))
    }

    /// Re-reads the zone files. A zone whose new text is bad keeps serving its last
    /// good version; the error is logged with its file and line. With `only_changed`,
    /// zones whose text did not change are left alone and not logged.
    pub(crate) fn reload(&self, only_changed: bool) -> ReloadReport {
        let mut report = ReloadReport::default();
        let Some(dir) = &self.dir else {
            tracing::info!("zones are built in: nothing to reload");
            return report;
        };
        let old = self.snapshot();
        let sources = match zone_files(dir) {
            Ok(sources) => sources,
            Err(e) => {
                tracing::error!("reload failed, keeping the zones being served: {e:#}");
                report.failed.push(format!("{e:#}"));
                return report;
            }
        };
        let mut zones = BTreeMap::new();
        for source in sources {
            let previous = old.zones.get(&source.display);
            match zonefile::parse_zone(&source) {
                Ok(parsed) => {
                    let name = parsed.origin.to_string();
                    let name = name.trim_end_matches('.');
                    if let Some(prev) = previous {
                        if prev.digest == parsed.digest {
                            // Same text: keep the old zone (and its file stamps up to date).
                            match Zone::new(parsed, self.axfr) {
                                Ok(zone) => zones.insert(source.display.clone(), Arc::new(zone)),
                                Err(_) => zones.insert(source.display.clone(), prev.clone()),
                            };
                            if !only_changed {
                                tracing::info!(
                                    "zone {name} reloaded: serial {}, {} records (unchanged)",
                                    prev.serial,
                                    prev.record_count()
                                );
                                report.reloaded.push(name.to_string());
                            }
                            continue;
                        }
                        if prev.serial == parsed.serial {
                            tracing::warn!(
                                "zone {name} changed but its serial {} did not: secondaries and caches will not notice the change; bump the serial",
                                parsed.serial
                            );
                        }
                    }
                    for warning in &parsed.warnings {
                        tracing::warn!("{warning}");
                    }
                    tracing::info!(
                        "zone {name} reloaded: serial {}, {} records",
                        parsed.serial,
                        parsed.records.len()
                    );
                    report.reloaded.push(name.to_string());
                    match Zone::new(parsed, self.axfr) {
                        Ok(zone) => {
                            zones.insert(source.display.clone(), Arc::new(zone));
                        }
                        Err(e) => {
                            tracing::error!("{e:#}");
                            report.failed.push(format!("{e:#}"));
                            if let Some(prev) = previous {
                                zones.insert(source.display.clone(), prev.clone());
                            }
                        }
                    }
                }
                Err(problems) => {
                    for problem in &problems {
                        tracing::error!("{problem}");
                        report.failed.push(problem.to_string());
                    }
                    if let Some(prev) = previous {
                        tracing::error!(
                            "zone {} not reloaded: still serving serial {}",
                            prev.origin(),
                            prev.serial
                        );
                        zones.insert(source.display.clone(), prev.clone());
                    }
                }
            }
        }
        for (file, zone) in &old.zones {
            if !zones.contains_key(file)
                && !dir
                    .join(Path::new(file).file_name().unwrap_or_default())
                    .exists()
            {
                tracing::info!("zone {} removed: its file {file} is gone", zone.origin());
            }
        }
        match ZoneSet::build(zones, None) {
            Ok(set) => {
                ZoneSet::replace(
                    &mut self.current.write().unwrap_or_else(|e| e.into_inner()),
                    set,
                );
                self.refresh_followers();
            }
            Err(e) => {
                tracing::error!("reload failed, keeping the zones being served: {e:#}");
                report.failed.push(format!("{e:#}"));
            }
        }
        report
    }

    /// Serves `next` as the records of the zone whose apex is `origin`, where
    /// only the RRsets at `touched` differ from what it serves now: an UPDATE.
    /// The cost is that of the touched RRsets, never of the whole zone: the new
    /// zone shares every other RRset with the old one, and hickory's handler
    /// (shared by both) is edited in place, all `touched` under one hold of its
    /// write lock, so each lookup sees all of the change or none of it. Then the
    /// new set replaces the old, and the answer cache goes with the old set.
    /// Changes hold the journal's lock, so no other change runs meanwhile.
    /// Returns the new serial.
    pub(crate) async fn apply(
        &self,
        origin: &Name,
        next: rrsets::Rrsets,
        touched: &[hickory_server::proto::rr::RrKey],
    ) -> anyhow::Result<u32> {
        let set = self.snapshot();
        let (file, zone) = set
            .zones
            .iter()
            .find(|(_, z)| same_name(z.origin(), origin))
            .with_context(|| format!("no zone {origin} is served"))?;
        let next = Zone::with_handler(
            zone.origin.clone(),
            zone.digest,
            zone.stamps.clone(),
            next,
            zone.handler.clone(),
        )?;
        {
            let mut served = zone.handler.records_mut().await;
            for key in touched {
                match next.rrsets.get(key) {
                    Some(rrset) => served.insert(key.clone(), rrset.clone()),
                    None => served.remove(key),
                };
            }
        }
        // The site's names depend only on CNAMEs and the apexes' addresses.
        let site_hosts = set
            .site_hosts
            .get()
            .filter(|_| {
                !touched.iter().any(|key| {
                    key.record_type == RecordType::CNAME
                        || (matches!(key.record_type, RecordType::A | RecordType::AAAA)
                            && set
                                .zones
                                .values()
                                .any(|z| LowerName::from(z.origin()) == key.name))
                })
            })
            .cloned();
        let serial = next.serial;
        let mut zones = set.zones.clone();
        zones.insert(file.clone(), Arc::new(next));
        let built = ZoneSet::build(zones, site_hosts)?;
        {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            if !Arc::ptr_eq(&current, &set) {
                // Only a change without the journal's lock (the fuzzer) gets here.
                bail!("zone {origin} changed while this change was made; try again");
            }
            ZoneSet::replace(&mut current, built);
        }
        self.refresh_followers();
        Ok(serial)
    }

    /// Serves `records` as the whole of the zone whose apex is `origin`, built
    /// afresh: the journal's replay after a start or a reload.
    pub(crate) fn replace_zone(
        &self,
        origin: &Name,
        records: rrsets::Rrsets,
    ) -> anyhow::Result<()> {
        {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            let (file, zone) = current
                .zones
                .iter()
                .find(|(_, z)| same_name(z.origin(), origin))
                .with_context(|| format!("no zone {origin} is served"))?;
            let next = zone.replaced(records, self.axfr)?;
            let mut zones = current.zones.clone();
            zones.insert(file.clone(), Arc::new(next));
            let set = ZoneSet::build(zones, None)?;
            ZoneSet::replace(&mut current, set);
        }
        self.refresh_followers();
        Ok(())
    }

    /// The zones served, by name: `foobar.com` (and `.` for the root).
    pub(crate) fn names(&self) -> Vec<String> {
        self.snapshot()
            .zones
            .values()
            .map(|z| authorities::zone_label(z.origin()))
            .collect()
    }

    /// Each zone's name and the SOA serial it serves now (for monitoring).
    pub(crate) fn serials(&self) -> Vec<(String, u32)> {
        self.snapshot()
            .zones
            .values()
            .map(|z| (display_name(z.origin()), z.serial))
            .collect()
    }

    /// One line per zone: `foobar.com. serial 2026112601, 5 records`.
    pub(crate) fn describe(&self) -> Vec<String> {
        self.snapshot()
            .zones
            .values()
            .map(|z| {
                format!(
                    "{} serial {}, {} records",
                    z.origin(),
                    z.serial,
                    z.record_count()
                )
            })
            .collect()
    }

    /// The apex address records of each zone, in zone order: where the web server
    /// should listen, because that is where DNS sends visitors.
    pub(crate) fn apex_addresses(&self) -> Vec<(String, IpAddr)> {
        let set = self.snapshot();
        let mut out = Vec::new();
        for zone in set.zones.values() {
            for record in zone.records_at(zone.origin()) {
                match &record.data {
                    RData::A(a) => out.push((display_name(zone.origin()), IpAddr::V4(a.0))),
                    RData::AAAA(a) => out.push((display_name(zone.origin()), IpAddr::V6(a.0))),
                    _ => {}
                }
            }
        }
        out
    }

    /// The names that serve the site: each zone's apex and every name whose CNAME
    /// chain leads to an apex (`www`). Lower case, no trailing dot.
    pub(crate) fn site_hosts(&self) -> Vec<String> {
        self.serving_hosts().to_vec()
    }

    /// [`Zones::site_hosts`], shared: computed once per zone version, so checking
    /// a request's host costs a lock-free read and no allocation.
    pub(crate) fn serving_hosts(&self) -> Arc<[String]> {
        hosts_of(&self.snapshot()).clone()
    }

    /// `f` of [`Zones::serving_hosts`], read in place under the read lock: no
    /// reference count is taken. Every HTTP request's host is checked here, and
    /// on many cores each shared count would be one more cache line that every
    /// core writes.
    pub(crate) fn with_serving_hosts<R>(&self, f: impl FnOnce(&[String]) -> R) -> R {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        f(hosts_of(&current))
    }

    /// How `host` resolves in our own zones, link by link, read live from the zone
    /// data being served: `www.foobar.com. CNAME foobar.com.`, `foobar.com. A 127.0.0.1`.
    pub(crate) fn chain(&self, host: &str) -> Vec<ChainLink> {
        let set = self.snapshot();
        let Ok(mut name) = Name::from_ascii(host.trim_end_matches('.')) else {
            return Vec::new();
        };
        name.set_fqdn(true);
        chain_of(&set, &name)
            .into_iter()
            .flat_map(|(_, records)| records)
            .map(|r| ChainLink {
                name: r.name.to_lowercase().to_ascii(),
                ttl: r.ttl,
                rtype: r.record_type().to_string(),
                data: r.data.to_string(),
            })
            .collect()
    }
}

/// [`ZoneSet::site_hosts`], worked out on first use.
fn hosts_of(set: &ZoneSet) -> &Arc<[String]> {
    set.site_hosts.get_or_init(|| site_hosts_of(set).into())
}

/// The site names of one zone set (see [`Zones::site_hosts`]).
fn site_hosts_of(set: &ZoneSet) -> Vec<String> {
    let apexes: HashSet<LowerName> = set
        .zones
        .values()
        .map(|z| LowerName::from(z.origin()))
        .collect();
    let mut hosts = Vec::new();
    for zone in set.zones.values() {
        for record in zone.records() {
            let name = LowerName::from(&record.name);
            let is_site = match record.record_type() {
                RecordType::A | RecordType::AAAA => apexes.contains(&name),
                RecordType::CNAME => chain_of(set, &record.name)
                    .iter()
                    .any(|(link, _)| apexes.contains(&LowerName::from(link))),
                _ => false,
            };
            let host = display_name(&record.name);
            if is_site && !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    hosts
}

/// Follows CNAMEs from `name` through our zones (at most 8 links, as hickory does),
/// giving each name visited with the CNAME or address records found there.
fn chain_of(set: &ZoneSet, start: &Name) -> Vec<(Name, Vec<Record>)> {
    let mut out: Vec<(Name, Vec<Record>)> = Vec::new();
    let mut name = start.clone();
    for _ in 0..8 {
        let Some(zone) = set.zone_for(&name) else {
            break;
        };
        let here: Vec<&Record> = zone.records_at(&name).collect();
        if let Some(cname) = here.iter().find(|r| r.record_type() == RecordType::CNAME) {
            let RData::CNAME(target) = &cname.data else {
                break;
            };
            let target = target.0.clone();
            out.push((name.clone(), vec![(*cname).clone()]));
            if out.iter().any(|(n, _)| same_name(n, &target)) {
                break; // a loop: stop where it closes
            }
            name = target;
            continue;
        }
        let addresses: Vec<Record> = here
            .into_iter()
            .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA))
            .cloned()
            .collect();
        out.push((name.clone(), addresses));
        break;
    }
    out
}

fn display_name(name: &Name) -> String {
    name.to_lowercase()
        .to_ascii()
        .trim_end_matches('.')
        .to_string()
}

fn zone_paths(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir)
        .with_context(|| format!("failed to read zone folder {}", dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "zone") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn zone_files(dir: &Path) -> anyhow::Result<Vec<ZoneSource>> {
    zone_paths(dir)?
        .iter()
        .map(|p| ZoneSource::from_path(p).map_err(|problem| anyhow::anyhow!("{problem}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Zones {
        Zones::load(Path::new("/nonexistent-onebox-zones"), false).unwrap()
    }

    #[test]
    fn negative_ttl_is_min_of_soa_ttl_and_minimum() {
        let source = ZoneSource {
            display: "t.zone".into(),
            path: None,
            text: "$TTL 3600\nfoobar.com. SOA ns1.foobar.com. h.foobar.com. 1 2 3 4 60\nfoobar.com. NS ns1.foobar.com.\n".into(),
        };
        let zone = Zone::new(zonefile::parse_zone(&source).unwrap(), AxfrPolicy::Deny).unwrap();
        assert_eq!(zone.negative_soa().ttl, 60);
        assert_eq!(zone.soa().ttl, 3600);
    }

    #[test]
    fn builtin_zone_site_hosts_and_chain() {
        let zones = builtin();
        assert_eq!(zones.site_hosts(), ["foobar.com", "www.foobar.com"]);
        assert_eq!(
            zones.apex_addresses(),
            [("foobar.com".to_string(), IpAddr::from([127, 0, 0, 1]))]
        );
        let chain = zones.chain("WWW.foobar.com");
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].rtype, "CNAME");
        assert_eq!(chain[0].name, "www.foobar.com.");
        assert_eq!(chain[0].data, "foobar.com.");
        assert_eq!(chain[1].rtype, "A");
        assert_eq!(chain[1].data, "127.0.0.1");
        assert!(
            zones
                .chain("nope.foobar.com")
                .iter()
                .all(|l| l.rtype != "A")
        );
    }
}
