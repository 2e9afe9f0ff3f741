//! The toy Internet's servers: each zone answers at the addresses its NS glue gives.
//!
//! On the real Internet the root, `com` and `foobar.com` are different machines.
//! onebox gives each its own loopback address instead (Linux routes all of
//! 127.0.0.0/8 to `lo`, so 127.0.0.2 and 127.0.0.3 need no set-up), and picks
//! them the way the web server picks its address: from the zone data. A zone's
//! server is wherever the addresses of its apex NS names point, read from any
//! served zone (its own records, or the glue its parent holds). Each address gets
//! its own engine over only the zones that live there, so the root server asked
//! for `www.foobar.com` can only refer, never answer.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use hickory_server::proto::rr::{LowerName, Name, RData, RecordType};

use super::{ZoneSet, Zones};

/// How a zone is named in the ready line and the logs: `.` for the root,
/// otherwise without the trailing dot (`com`, `foobar.com`).
pub(crate) fn zone_label(name: &Name) -> String {
    if name.is_root() {
        ".".to_string()
    } else {
        super::display_name(name)
    }
}

impl Zones {
    /// Whether one of the zones is the root: then onebox is a toy Internet and
    /// starts a server per address and a recursive resolver.
    pub(crate) fn has_root(&self) -> bool {
        self.snapshot().zones.values().any(|z| z.origin().is_root())
    }

    /// Each zone (by [`zone_label`]) and the addresses its servers have: the A and
    /// AAAA records of its apex NS names, found in any served zone. A zone whose
    /// servers have no address here is left out.
    pub(crate) fn authorities(&self) -> BTreeMap<String, Vec<IpAddr>> {
        let set = self.snapshot();
        let mut out = BTreeMap::new();
        for zone in set.zones.values() {
            let mut addresses = Vec::new();
            for ns in zone.records_at(zone.origin()) {
                let RData::NS(target) = &ns.data else {
                    continue;
                };
                for holder in set.zones.values() {
                    for record in holder.records_at(&target.0) {
                        let ip = match &record.data {
                            RData::A(a) => IpAddr::V4(a.0),
                            RData::AAAA(a) => IpAddr::V6(a.0),
                            _ => continue,
                        };
                        if !addresses.contains(&ip) {
                            addresses.push(ip);
                        }
                    }
                }
            }
            if !addresses.is_empty() {
                out.insert(zone_label(zone.origin()), addresses);
            }
        }
        out
    }

    /// A view of only the zones named (by [`zone_label`]): what the server at one
    /// address serves. Every reload of `self` refreshes it, so the root and com
    /// servers serve an edited zone as soon as the --dns server does.
    pub(crate) fn only(&self, labels: &[String]) -> anyhow::Result<Zones> {
        let set = self.subset(labels)?;
        let current = Arc::new(RwLock::new(Arc::new(set)));
        self.followers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(super::Follower {
                labels: labels.to_vec(),
                current: Arc::downgrade(&current),
            });
        Ok(Zones {
            current,
            // No folder: the view is reloaded through its parent, never on its own.
            dir: None,
            axfr: self.axfr,
            followers: Arc::default(),
        })
    }

    /// The zones named, from the current set.
    fn subset(&self, labels: &[String]) -> anyhow::Result<ZoneSet> {
        let set = self.snapshot();
        let zones = set
            .zones
            .iter()
            .filter(|(_, z)| labels.contains(&zone_label(z.origin())))
            .map(|(file, z)| (file.clone(), z.clone()))
            .collect();
        ZoneSet::build(zones, None)
    }

    /// After a reload: each view from [`Zones::only`] takes the new zones. A view
    /// whose zones no longer build keeps what it served.
    pub(super) fn refresh_followers(&self) {
        let mut followers = self.followers.lock().unwrap_or_else(|e| e.into_inner());
        followers.retain(|f| f.current.strong_count() > 0);
        for follower in followers.iter() {
            let Some(current) = follower.current.upgrade() else {
                continue;
            };
            match self.subset(&follower.labels) {
                Ok(set) => {
                    ZoneSet::replace(&mut current.write().unwrap_or_else(|e| e.into_inner()), set)
                }
                Err(e) => tracing::error!(
                    "zones {} not refreshed after the reload: {e:#}",
                    follower.labels.join(", ")
                ),
            }
        }
    }

    /// The names of the root's own servers with their addresses: the "root
    /// hints" a resolver starts from. Empty when no root zone is served.
    pub(crate) fn root_hints(&self) -> Vec<(String, IpAddr)> {
        let set = self.snapshot();
        let Some(root) = set.zones.values().find(|z| z.origin().is_root()) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut hints = Vec::new();
        for ns in root.records_at(root.origin()) {
            let RData::NS(target) = &ns.data else {
                continue;
            };
            if !seen.insert(LowerName::from(&target.0)) {
                continue;
            }
            for record in root.records_at(&target.0) {
                let ip = match &record.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => continue,
                };
                if matches!(record.record_type(), RecordType::A | RecordType::AAAA) {
                    hints.push((target.0.to_ascii(), ip));
                }
            }
        }
        hints
    }
}

/// Which zones each address serves: the inverse of [`Zones::authorities`].
pub(crate) fn zones_by_address(
    authorities: &BTreeMap<String, Vec<IpAddr>>,
) -> BTreeMap<IpAddr, Vec<String>> {
    let mut out: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
    for (zone, addresses) in authorities {
        for ip in addresses {
            out.entry(*ip).or_default().push(zone.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn internet() -> Zones {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("internet");
        Zones::load(&dir, false).unwrap()
    }

    #[test]
    fn each_zone_lives_where_its_glue_says() {
        let zones = internet();
        assert!(zones.has_root());
        let authorities = zones.authorities();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(authorities["."], [ip("127.0.0.2")]);
        assert_eq!(authorities["com"], [ip("127.0.0.3")]);
        assert_eq!(authorities["foobar.com"], [ip("127.0.0.1")]);
        assert_eq!(
            zones.root_hints(),
            [("a.root-servers.net.".to_string(), ip("127.0.0.2"))]
        );
        let by_address = zones_by_address(&authorities);
        assert_eq!(by_address[&ip("127.0.0.3")], ["com"]);
        let com = zones.only(&by_address[&ip("127.0.0.3")]).unwrap();
        assert_eq!(com.names(), ["com"]);
    }

    #[test]
    fn the_default_zone_is_not_an_internet() {
        let zones = Zones::load(Path::new("/nonexistent-onebox-zones"), false).unwrap();
        assert!(!zones.has_root());
        assert!(zones.root_hints().is_empty());
    }
}
