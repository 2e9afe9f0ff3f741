//! The request context: what the web server learns about a request (its
//! connection, the site name it asked for) and what one request went through,
//! measured as it happens (which layer answered, how long each layer took, how many
//! database reads and writes it needed). The access log, the `Server-Timing` header
//! and the "How this page reached you" panel all read the same record, so they
//! cannot disagree.
//!
//! A leaf module: the web server fills these in and the application reads them,
//! so neither has to import the other.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Response;

/// `default`, or the whole seconds above 0 in the variable `var`: how a test shortens
/// a request-side timer (a session's life, an idle connection's) without a flag.
/// `serve` reads each once at startup; anything else in it is a clear error.
pub(crate) fn seconds_from_env(var: &str, default: Duration) -> anyhow::Result<Duration> {
    let Ok(text) = std::env::var(var) else {
        return Ok(default);
    };
    let seconds = text.parse::<u64>().ok().filter(|s| *s > 0);
    let expected = || anyhow::anyhow!("{var}={text}: expected whole seconds above 0");
    seconds.map(Duration::from_secs).ok_or_else(expected)
}

/// The TCP connection a request arrived on, put into every request's extensions by
/// the accept loop.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    /// The visitor's address and port.
    pub(crate) peer: SocketAddr,
    /// Our address and port that accepted the connection.
    pub(crate) local: SocketAddr,
    pub(crate) tls: bool,
    /// The HTTP implementation answering on this connection, as the home page's
    /// panel names it: hyper, or the web server's own HTTP/1.1 loop.
    pub(crate) server: &'static str,
}

impl ConnInfo {
    /// [`ConnInfo::server`] for connections hyper serves.
    pub(crate) const HYPER: &'static str = "hyper";
    /// [`ConnInfo::server`] for requests the web server's own loop answers.
    pub(crate) const OWN_LOOP: &'static str = "onebox's own HTTP/1.1 loop";
}

/// The site name a request asked for, lower-case without port or trailing dot,
/// once the web server has checked that the zone serves it.
#[derive(Debug, Clone)]
pub(crate) struct SiteHost(pub(crate) String);

/// A plain `GET /` from a visitor who sent no cookies, as the web server's home
/// fast path hands it to the application: the facts the page shows, none of
/// HTTP's machinery, so neither side names the other.
#[derive(Debug)]
pub(crate) struct HomeRequest {
    /// The site name, as the zone serves it.
    pub(crate) host: String,
    pub(crate) conn: ConnInfo,
    pub(crate) version: axum::http::Version,
    /// The request's trace, which the page fills in as the router's path would.
    pub(crate) trace: Arc<Trace>,
}

/// The page the application answers a [`HomeRequest`] with: status, headers and
/// body exactly as its router would answer the same request. serve.rs builds it
/// over the application and hands it to the web server.
#[derive(Clone)]
pub(crate) struct HomePage(Arc<HomeFn>);

/// The function behind [`HomePage`].
type HomeFn =
    dyn Fn(HomeRequest) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> + Send + Sync;

impl HomePage {
    pub(crate) fn new(
        page: impl Fn(HomeRequest) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(page))
    }

    /// The page for `req`, once the application has built it.
    pub(crate) fn page(
        &self,
        req: HomeRequest,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        (self.0)(req)
    }
}

impl std::fmt::Debug for HomePage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HomePage(..)")
    }
}

/// Which part of the server produced the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// The web server itself: host check, limits, health endpoints.
    Web,
    /// A file: built in, or from `--site DIR`.
    Static,
    /// The application server.
    App,
    /// The DNS server, asked over HTTPS (`/dns-query`).
    Dns,
}

impl Layer {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Layer::Web => "web",
            Layer::Static => "static",
            Layer::App => "app",
            Layer::Dns => "dns",
        }
    }
}

/// One request's measurements. Shared (in an `Arc`) between the access layer and
/// whatever handles the request.
#[derive(Debug)]
pub(crate) struct Trace {
    start: Instant,
    /// The measurements so far; `elapsed` is filled in when a snapshot is taken.
    data: Mutex<Snapshot>,
}

/// A copy of the measurements at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    /// The layer that answered.
    pub(crate) layer: Layer,
    /// The matched application route, e.g. `GET /api/v1/posts`.
    pub(crate) route: Option<String>,
    /// Since the request arrived.
    pub(crate) elapsed: Duration,
    /// Inside the layer that answered.
    pub(crate) stage: Duration,
    pub(crate) db: Duration,
    pub(crate) db_reads: u32,
    pub(crate) db_writes: u32,
    /// The database engine's name ("redb", "PostgreSQL 15"), set by whoever
    /// talks to it, so `Server-Timing` can say which one answered.
    pub(crate) db_name: Option<Arc<str>>,
}

impl Trace {
    pub(crate) fn new(start: Instant) -> Self {
        Self {
            start,
            data: Mutex::new(Snapshot {
                layer: Layer::Web,
                route: None,
                elapsed: Duration::ZERO,
                stage: Duration::ZERO,
                db: Duration::ZERO,
                db_reads: 0,
                db_writes: 0,
                db_name: None,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Snapshot) -> R) -> R {
        f(&mut self.data.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records that `layer` answered and how long it took.
    pub(crate) fn answered_by(&self, layer: Layer, took: Duration) {
        self.with(|d| {
            d.layer = layer;
            d.stage = took;
        });
    }

    pub(crate) fn set_route(&self, route: String) {
        self.with(|d| d.route = Some(route));
    }

    /// Names the database engine this request's reads and writes go to.
    pub(crate) fn set_db_name(&self, name: Arc<str>) {
        self.with(|d| d.db_name = Some(name));
    }

    /// Times a database read transaction.
    pub(crate) async fn db_read<T>(&self, fut: impl Future<Output = T>) -> T {
        self.db_timed(fut, |d| d.db_reads += 1).await
    }

    /// Times a database write (until its transaction is durably committed).
    pub(crate) async fn db_write<T>(&self, fut: impl Future<Output = T>) -> T {
        self.db_timed(fut, |d| d.db_writes += 1).await
    }

    /// Adds how long `fut` took to the database time, and `count`s it.
    async fn db_timed<T>(&self, fut: impl Future<Output = T>, count: fn(&mut Snapshot)) -> T {
        let start = Instant::now();
        let out = fut.await;
        self.with(|d| {
            d.db += start.elapsed();
            count(d);
        });
        out
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let elapsed = self.start.elapsed();
        self.with(|d| Snapshot {
            elapsed,
            ..d.clone()
        })
    }
}

impl Snapshot {
    /// The `Server-Timing` value (W3C Server Timing): `web` is the whole time inside
    /// the server, then the layer that answered, then the database inside it.
    pub(crate) fn server_timing(&self) -> String {
        use std::fmt::Write;
        // One buffer, written in place: this runs for every response, static
        // files included, and each `format!` would be an allocation of its own.
        let mut out = String::with_capacity(160);
        out.push_str("web;desc=\"web server (total)\";dur=");
        push_ms(&mut out, self.elapsed);
        let stage = match self.layer {
            Layer::Web => None,
            Layer::Static => Some("static;desc=\"static file\""),
            Layer::App => Some("app;desc=\"application\""),
            Layer::Dns => Some("dns;desc=\"dns over https\""),
        };
        if let Some(stage) = stage {
            out.push_str(", ");
            out.push_str(stage);
            out.push_str(";dur=");
            push_ms(&mut out, self.stage);
        }
        if self.db_reads + self.db_writes > 0 {
            out.push_str(", db;desc=\"database: ");
            if let Some(name) = &self.db_name {
                let _ = write!(out, "{name}, ");
            }
            let _ = write!(
                out,
                "{} {}, {} {}\";dur=",
                self.db_reads,
                plural(self.db_reads, "read", "reads"),
                self.db_writes,
                plural(self.db_writes, "write", "writes"),
            );
            push_ms(&mut out, self.db);
        }
        out
    }
}

fn plural(n: u32, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// Milliseconds with two decimals, as Server-Timing expects.
pub(crate) fn millis(d: Duration) -> String {
    let mut out = String::new();
    push_ms(&mut out, d);
    out
}

/// `d` in milliseconds with two decimals (`2.10`), rounded to the nearest
/// 10 µs: integer arithmetic, since `{:.2}` of a float was a visible share of
/// a static file's cost (every response carries this header).
fn push_ms(out: &mut String, d: Duration) {
    let hundredths = (d.as_nanos() + 5_000) / 10_000;
    // Digits by hand, not `write!`: the formatting machinery (and its padding
    // for `{:02}`) showed in a static file's profile.
    let whole = u64::try_from(hundredths / 100).unwrap_or(u64::MAX);
    for &digit in crate::log::decimal(whole, &mut [0; 20]) {
        out.push(char::from(digit));
    }
    let fraction = (hundredths % 100) as u8;
    out.push('.');
    out.push(char::from(b'0' + fraction / 10));
    out.push(char::from(b'0' + fraction % 10));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_have_two_decimals_rounded_to_ten_microseconds() {
        for (micros, text) in [
            (0, "0.00"),
            (4, "0.00"),
            (5, "0.01"),
            (2_100, "2.10"),
            (2_104_994, "2104.99"),
            (2_105_000, "2105.00"),
            (1_234_567, "1234.57"),
        ] {
            assert_eq!(millis(Duration::from_micros(micros)), text, "{micros} µs");
        }
    }

    #[test]
    fn server_timing_names_the_layers() {
        let trace = Trace::new(Instant::now());
        trace.answered_by(Layer::App, Duration::from_micros(2100));
        trace.with(|d| {
            d.db = Duration::from_micros(500);
            d.db_reads = 2;
            d.db_writes = 1;
        });
        trace.set_db_name("PostgreSQL 15".into());
        let header = trace.snapshot().server_timing();
        assert!(
            header.starts_with("web;desc=\"web server (total)\";dur="),
            "{header}"
        );
        assert!(
            header.contains(", app;desc=\"application\";dur=2.10"),
            "{header}"
        );
        assert!(
            header.contains(", db;desc=\"database: PostgreSQL 15, 2 reads, 1 write\";dur=0.50"),
            "{header}"
        );
    }
}
