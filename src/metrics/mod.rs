//! Monitoring: the Prometheus `/metrics` listener, the series it serves, and
//! `onebox top`, a terminal view of the same numbers.
//!
//! Every other box records into process-wide counters here with one call per
//! event (a query answered, a response sent, a commit); this module imports none
//! of them. A scrape reads the counters and writes them through the
//! `prometheus-client` crate's encoders: the Prometheus text format by default,
//! OpenMetrics when the scraper's `Accept` asks for it (as Prometheus does).
//!
//! - `dns`, `web`, `site`, `resolver`: the series of each box, named as CoreDNS names its
//!   own with an `onebox_` prefix.
//! - `process`: the standard `process_*` series.
//! - `sharded`: the per-thread counters that keep recording cheap.
//! - `server`: the listener; [`top`]: the terminal view.

pub(crate) mod dns;
mod encode;
pub(crate) mod process;
pub(crate) mod resolver;
pub(crate) mod server;
mod sharded;
pub(crate) mod site;
pub mod top;

pub(crate) mod web;

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Registry;

use encode::levels;

/// Off with `--metrics off`: the hot-path recorders then return at once.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Whether the per-query and per-request series are recorded.
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Stops (or resumes) recording the per-query and per-request series.
pub(crate) fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Questions a scrape asks the running server, wired by `serve` (which knows the
/// boxes) so this module needs to know none of them.
pub(crate) struct Probes {
    /// What `/readyz` would answer now (a real DNS query and database read).
    pub(crate) ready: Box<dyn Fn() -> BoxFuture<bool> + Send + Sync>,
    /// The database file's size in bytes (`None` in memory).
    pub(crate) db_bytes: Box<dyn Fn() -> Option<u64> + Send + Sync>,
    /// When the soonest-expiring served certificate expires, in Unix seconds.
    pub(crate) certificate_expiry: Box<dyn Fn() -> Option<i64> + Send + Sync>,
    /// Each zone and the SOA serial it serves now.
    pub(crate) zone_serials: Box<dyn Fn() -> Vec<(String, u32)> + Send + Sync>,
    /// How many sessions have not expired (`None` when the database did not answer).
    pub(crate) sessions_active: Box<dyn Fn() -> BoxFuture<Option<u64>> + Send + Sync>,
}

/// A future the probes return; boxed because each caller's is a different type.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

static PROBES: OnceLock<Probes> = OnceLock::new();

/// The last readiness answer: -1 before any scrape asked, then 0 or 1.
static READY: AtomicI64 = AtomicI64::new(-1);

/// The last count of unexpired sessions: -1 before any scrape asked, or when the
/// database did not answer (the gauge is then left out rather than shown as 0).
static SESSIONS_ACTIVE: AtomicI64 = AtomicI64::new(-1);

/// Asks the asynchronous probes (readiness, sessions active), once per scrape,
/// before the series are written (encoding is synchronous; the probes are not).
pub(crate) async fn refresh_probes() {
    if let Some(probes) = PROBES.get() {
        let (ready, sessions) = tokio::join!((probes.ready)(), (probes.sessions_active)());
        READY.store(i64::from(ready), Ordering::Relaxed);
        let sessions = sessions.and_then(|n| i64::try_from(n).ok()).unwrap_or(-1);
        SESSIONS_ACTIVE.store(sessions, Ordering::Relaxed);
    }
}

/// Installs the probes; the first call wins (there is one server per process).
pub(crate) fn set_probes(probes: Probes) {
    let _ = PROBES.set(probes);
}

/// Every `onebox_*` series.
#[derive(Debug)]
struct OneboxCollector;

impl Collector for OneboxCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let serials = PROBES.get().map(|p| (p.zone_serials)()).unwrap_or_default();
        dns::encode(&mut e, &serials)?;
        web::encode(&mut e)?;
        site::encode(&mut e)?;
        resolver::encode(&mut e)?;
        let Some(probes) = PROBES.get() else {
            return Ok(());
        };
        // A negative level is "not set in this process" (no server running).
        let level = |v: &AtomicI64| Some(v.load(Ordering::Relaxed)).filter(|v| *v >= 0);
        #[rustfmt::skip]
        let gauges = [
            ("ready", "1 when /readyz would answer 200 (DNS and database work), 0 for 503.", level(&READY)),
            ("app_sessions_active", "Sessions that have not expired (logged in and not logged out).", level(&SESSIONS_ACTIVE)),
            ("db_size_bytes", "Size of the database file in bytes.", (probes.db_bytes)().map(|b| b as i64)),
            ("certificate_expiry_timestamp_seconds", "When the soonest-expiring served certificate expires (Unix time).", (probes.certificate_expiry)()),
        ];
        levels(&mut e, &gauges)
    }
}

#[derive(Debug)]
struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        process::encode(&mut e)
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ProcessCollector));
        registry
            .sub_registry_with_prefix("onebox")
            .register_collector(Box::new(OneboxCollector));
        registry
    })
}

/// The exposition formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// The classic Prometheus text format (version 0.0.4).
    Prometheus,
    /// OpenMetrics 1.0 text: counters' `_total`, and `# EOF` at the end.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header names it, as Prometheus's does.
    pub(crate) fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }

    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Every series, as one scrape's body.
pub(crate) fn render(format: Format) -> Result<String, std::fmt::Error> {
    let mut out = String::with_capacity(16 * 1024);
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, registry())?
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry())?,
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_carry_the_series_and_only_openmetrics_ends_with_eof() {
        dns::query("udp", false, "A", "NOERROR", 120, 60, true);
        let text = render(Format::Prometheus).unwrap();
        assert!(
            text.contains(
                "onebox_dns_requests_total{zone=\".\",proto=\"udp\",family=\"1\",type=\"A\"}"
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE onebox_dns_request_duration_seconds histogram"));
        assert!(text.contains("process_resident_memory_bytes"));
        assert!(!text.contains("# EOF"));
        let open = render(Format::OpenMetrics).unwrap();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(open.contains("# TYPE onebox_dns_requests counter"));
    }

    #[test]
    fn accept_picks_the_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";
        assert_eq!(Format::from_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::from_accept(Some("text/plain")), Format::Prometheus);
        assert_eq!(Format::from_accept(None), Format::Prometheus);
    }
}
