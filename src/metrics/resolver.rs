//! The toy Internet's recursive resolver's series: its cache's size, hits and
//! misses, and the queries it sends upstream by level of the hierarchy.
//!
//! `level` is one of three fixed values decided by the zone the query was sent to
//! (the root, a TLD, anything below), never the name asked: CoreDNS's rule of
//! bounded labels, so a scrape's size does not grow with the names resolved.

use std::sync::atomic::{AtomicI64, Ordering};

use prometheus_client::encoding::DescriptorEncoder;

use super::encode::{counters, gauge, one};
use super::sharded::Sharded;

/// The levels of the hierarchy a query can be sent to, in counter order.
const LEVELS: [&str; 3] = ["root", "tld", "other"];

const HITS: usize = 0;
const MISSES: usize = 1;
const UPSTREAM: usize = 2;
const WIDTH: usize = UPSTREAM + LEVELS.len();

static COUNTERS: Sharded<WIDTH> = Sharded::new();

/// Entries in the resolver's cache, set by the resolver each time it changes.
static CACHE_ENTRIES: AtomicI64 = AtomicI64::new(0);

/// Which level of the hierarchy a zone is, by its label count (0 is the root).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Root,
    Tld,
    Other,
}

impl Level {
    /// "." is the root, a single label (`com.`) a TLD, anything longer "other".
    pub(crate) fn of_zone(labels: usize) -> Self {
        match labels {
            0 => Level::Root,
            1 => Level::Tld,
            _ => Level::Other,
        }
    }
}

/// A question resolved: wholly from the cache (`hit`), or not.
pub(crate) fn lookup(hit: bool) {
    COUNTERS.add(if hit { HITS } else { MISSES }, 1);
}

/// A query sent to an authoritative server of a zone at `level`.
pub(crate) fn upstream(level: Level) {
    COUNTERS.add(UPSTREAM + level as usize, 1);
}

/// The cache now holds `entries` answers (positive and negative).
pub(crate) fn cache_entries(entries: usize) {
    CACHE_ENTRIES.store(
        i64::try_from(entries).unwrap_or(i64::MAX),
        Ordering::Relaxed,
    );
}

/// Writes the resolver series (zero until `--zones internet` runs a resolver).
pub(crate) fn encode(e: &mut DescriptorEncoder) -> std::fmt::Result {
    gauge(
        e,
        "resolver_cache_entries",
        "Answers (positive and negative) held in the resolver's cache.",
        &one(CACHE_ENTRIES.load(Ordering::Relaxed)),
    )?;
    #[rustfmt::skip]
    let table = [
        ("resolver_cache_hits", "Questions the resolver answered wholly from its cache (every CNAME link).", one(COUNTERS.get(HITS))),
        ("resolver_cache_misses", "Questions the cache could not answer alone (some name was asked upstream).", one(COUNTERS.get(MISSES))),
        ("resolver_upstream_queries", "Queries the resolver sent to authoritative servers, by the level of the zone asked.", COUNTERS.by_label("level", &LEVELS, UPSTREAM)),
    ];
    counters(e, &table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_level_comes_from_the_zone_label_count() {
        assert_eq!(Level::of_zone(0), Level::Root);
        assert_eq!(Level::of_zone(1), Level::Tld);
        assert_eq!(Level::of_zone(2), Level::Other);
        assert_eq!(Level::of_zone(5), Level::Other);
    }
}
