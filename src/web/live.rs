//! The live view's two routes: the page at `/_onebox/live` and the stream of events
//! (server-sent events) at `/_onebox/live/events` that it reads.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::Web;
use crate::live::Event;

/// How many event streams may be open at once, for everyone together and from one
/// address. Each one holds a connection for as long as the viewer likes (it is a
/// request in flight, so it is never shed as idle); beyond these a viewer gets 503
/// and the browser's `EventSource` retries on its own.
pub(crate) const MAX_STREAMS: usize = 32;
pub(crate) const MAX_STREAMS_PER_ADDR: usize = 8;

/// The open streams, counted in all and per viewer address.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    open: Mutex<(usize, HashMap<Option<IpAddr>, usize>)>,
}

/// One open stream's place; given back when the stream ends.
struct Slot {
    slots: Arc<Slots>,
    viewer: Option<IpAddr>,
}

impl Slots {
    fn take(self: &Arc<Self>, viewer: Option<IpAddr>) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_addr) = &mut *open;
        let mine = by_addr.entry(viewer).or_default();
        if *total >= MAX_STREAMS || *mine >= MAX_STREAMS_PER_ADDR {
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(Slot {
            slots: self.clone(),
            viewer,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        let (total, by_addr) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(mine) = by_addr.get_mut(&self.viewer) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                by_addr.remove(&self.viewer);
            }
        }
    }
}

/// Who is watching, and what they may see. The question history
/// (`/_onebox/api/history/dns`) applies the same rules to its caller.
pub(super) struct Viewer {
    /// The viewer's own address: without `--live-public`, only events it caused.
    ip: Option<IpAddr>,
    /// `serve --live-public`: every client's events (for a classroom projector).
    public: bool,
    /// Our zones, lower case without the trailing dot ("" for the root zone).
    zones: Vec<String>,
}

impl Viewer {
    /// A viewer at `ip` (if known) of `zones`, seeing everyone's events when `public`.
    pub(super) fn new(ip: Option<IpAddr>, public: bool, zones: &crate::dns::Zones) -> Self {
        Viewer {
            ip: ip.map(canonical),
            public,
            zones: zones
                .names()
                .into_iter()
                .map(|z| z.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    /// The event as this viewer may see it, or `None` to skip it. Never shown to
    /// anyone: query strings (only paths are ever published), cookies, tokens,
    /// `Authorization` (headers are never published at all).
    pub(super) fn view(&self, event: &Event) -> Option<Event> {
        let mut event = event.clone();
        match &mut event {
            Event::Dns { client, name, .. } => {
                if !self.public && Some(canonical(client.ip())) != self.ip {
                    return None;
                }
                if !self.public && !self.in_our_zones(name) {
                    *name = OUTSIDE.to_string();
                }
            }
            // Changes to our zones and their secondaries are about public data
            // (anyone may query the names): every viewer sees them.
            Event::Change { .. } | Event::Secondary { .. } => {}
            Event::Http { client, path, .. } => {
                if !self.public && Some(canonical(client.ip())) != self.ip {
                    return None;
                }
                // Belt and braces: a path never carries its query here.
                if let Some(cut) = path.find('?') {
                    path.truncate(cut);
                }
            }
        }
        Some(event)
    }

    fn in_our_zones(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.zones.iter().any(|zone| {
            zone.is_empty()
                || name == *zone
                || name
                    .strip_suffix(zone.as_str())
                    .is_some_and(|head| head.ends_with('.'))
        })
    }
}

/// What a private viewer sees instead of a name we are not authoritative for:
/// someone else's lookups of other sites are theirs.
const OUTSIDE: &str = "(outside our zones)";

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Recent events first, then each new one as it happens, both filtered for the
/// viewer. A viewer that falls more than the channel's length behind is told how
/// many it missed and carries on.
pub(crate) fn events(web: &Web, viewer: Option<IpAddr>) -> Response {
    let viewer = viewer.map(canonical);
    let Some(slot) = web.live_slots.take(viewer) else {
        let mut response = super::front::error_response(
            "/_onebox/live/events",
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "too many live viewers (at most {MAX_STREAMS}, {MAX_STREAMS_PER_ADDR} per address): \
                 try again shortly"
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return response;
    };
    let viewer = Arc::new(Viewer::new(viewer, web.live_public, &web.zones));
    let (history, receiver) = web.live.subscribe();
    let past: Vec<_> = history
        .iter()
        .filter_map(|event| viewer.view(event))
        .map(|event| Ok(to_sse(&event)))
        .collect();
    let next = stream::unfold(
        (receiver, viewer, slot),
        |(mut receiver, viewer, slot)| async move {
            let item = loop {
                match receiver.recv().await {
                    Ok(event) => {
                        if let Some(event) = viewer.view(&event) {
                            break to_sse(&event);
                        }
                    }
                    Err(RecvError::Lagged(missed)) => {
                        break SseEvent::default()
                            .event("skipped")
                            .data(missed.to_string());
                    }
                    Err(RecvError::Closed) => return None,
                }
            };
            Some((Ok::<_, Infallible>(item), (receiver, viewer, slot)))
        },
    );
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>> =
        Box::pin(
            stream::iter(past)
                .chain(next)
                .take_until(web.shutdown.clone().cancelled_owned()),
        );
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    // Never compress or buffer a stream that must arrive event by event.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(event).unwrap_or_default())
}

/// The page: a table that fills as DNS queries and HTTP requests happen. Plain
/// HTML and a few lines of script; no build step.
pub(crate) fn page(web: &Web) -> Response {
    let whose = if web.live_public {
        "Every DNS question onebox answers and every HTTP request it serves appears here \
         (this server runs with <code>--live-public</code>)."
    } else {
        "The DNS questions and HTTP requests that come from your own address appear here \
         (names outside our zones are hidden; <code>serve --live-public</code> shows everyone's)."
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE.replace("DIG_HINT", &dig_hint(web.dns_addr))
            .replace("WHOSE", whose),
    )
        .into_response()
}

/// How to make a DNS event show: ask our DNS, or (with `--dns off`) nothing to ask here.
fn dig_hint(dns: Option<std::net::SocketAddr>) -> String {
    match dns {
        Some(dns) => format!(
            "Run <code>dig {} www.foobar.com</code> or",
            super::front::dig_args(dns)
        ),
        None => "This node serves no DNS (<code>--dns off</code>), so only HTTP shows here:".into(),
    }
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Live: how names become pages</title>
<link rel="stylesheet" href="/static/site.css">
<style>
  table.live { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
  table.live th, table.live td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
  table.live code { font-size: 0.85rem; }
  .dns td.kind { color: #1d4ed8; font-weight: 600; }
  .http td.kind { color: #047857; font-weight: 600; }
  .bad td.result { color: #b91c1c; font-weight: 600; }
  #state { font-size: 0.9rem; color: #6b7280; }
</style></head>
<body><main class="wrap">
<section class="hero"><p class="eyebrow">Live view</p>
<h1>How names become pages, as it happens</h1>
<p class="lede">WHOSE
DIG_HINT open the site in another tab and watch:
first the name (a CNAME to another name, then the A record with the address), then the page.</p>
<p id="state">connecting…</p></section>
<table class="live"><thead><tr><th>time</th><th>box</th><th>from</th><th>what</th><th>result</th><th>µs</th></tr></thead>
<tbody id="rows"></tbody></table>
</main>
<script>
const rows = document.getElementById('rows');
const state = document.getElementById('state');
function cell(text, cls) { const td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; return td; }
function add(e) {
  const tr = document.createElement('tr');
  const time = new Date(e.at_ms).toLocaleTimeString();
  if (e.kind === 'dns') {
    tr.className = 'dns' + (e.rcode === 'NOERROR' ? '' : ' bad');
    tr.append(cell(time), cell('DNS', 'kind'), cell(e.client + ' ' + e.transport),
      cell(e.name + ' ' + e.qtype + '?'), cell(e.rcode + ', ' + e.answers + ' answer' + (e.answers === 1 ? '' : 's'), 'result'), cell(e.micros));
  } else if (e.kind === 'change') {
    tr.className = 'dns';
    tr.append(cell(time), cell('CHANGE', 'kind'), cell(e.by), cell(e.what), cell('serial ' + e.serial, 'result'), cell(''));
  } else if (e.kind === 'secondary') {
    tr.className = 'dns';
    tr.append(cell(time), cell('SECONDARY', 'kind'), cell(e.secondary), cell(e.zone), cell(e.state + ' at serial ' + e.serial, 'result'), cell(''));
  } else {
    tr.className = 'http' + (e.status < 400 ? '' : ' bad');
    tr.append(cell(time), cell('HTTP', 'kind'), cell(e.client),
      cell(e.method + ' ' + e.host + e.path), cell(e.status + ' from ' + e.layer, 'result'), cell(e.micros));
  }
  rows.prepend(tr);
  while (rows.children.length > 300) rows.lastChild.remove();
}
const source = new EventSource('/_onebox/live/events');
source.onopen = () => { state.textContent = 'connected: waiting for queries and requests'; };
source.onerror = () => { state.textContent = 'disconnected: is onebox still running? (retrying)'; };
source.onmessage = (m) => add(JSON.parse(m.data));
source.addEventListener('skipped', (m) => { state.textContent = 'too fast to show everything: skipped ' + m.data + ' events'; });
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(client: &str, name: &str) -> Event {
        Event::Dns {
            at_ms: 0,
            client: client.parse().unwrap(),
            transport: "udp",
            name: name.into(),
            qtype: "A".into(),
            rcode: "NOERROR".into(),
            answers: 1,
            micros: 1,
        }
    }

    /// A viewer from 127.0.0.2 of the zone foobar.com, with `--live-public` or not.
    fn viewer_at_127_0_0_2(public: bool) -> Viewer {
        Viewer {
            ip: Some("127.0.0.2".parse().unwrap()),
            public,
            zones: vec!["foobar.com".into()],
        }
    }

    fn name_of(event: &Event) -> &str {
        match event {
            Event::Dns { name, .. } => name,
            Event::Http { path, .. } => path,
            Event::Change { what, .. } => what,
            Event::Secondary { zone, .. } => zone,
        }
    }

    #[test]
    fn a_private_viewer_sees_only_its_own_events_and_our_names() {
        let viewer = viewer_at_127_0_0_2(false);
        assert!(
            viewer
                .view(&dns("127.0.0.3:53", "www.foobar.com."))
                .is_none()
        );
        let own = viewer
            .view(&dns("127.0.0.2:53", "www.FOOBAR.com."))
            .unwrap();
        assert_eq!(name_of(&own), "www.FOOBAR.com.");
        let other = viewer.view(&dns("127.0.0.2:53", "notfoobar.com.")).unwrap();
        assert_eq!(name_of(&other), OUTSIDE);
        let mapped = viewer.view(&dns("[::ffff:127.0.0.2]:53", "example.org."));
        assert_eq!(name_of(&mapped.unwrap()), OUTSIDE);
    }

    #[test]
    fn streams_are_capped_in_all_and_per_address() {
        let slots = Arc::new(Slots::default());
        let one = Some("127.0.0.1".parse().unwrap());
        let mine: Vec<_> = (0..MAX_STREAMS_PER_ADDR)
            .map(|_| slots.take(one).unwrap())
            .collect();
        assert!(slots.take(one).is_none());
        let others: Vec<_> = (0..MAX_STREAMS - MAX_STREAMS_PER_ADDR)
            .map(|i| {
                slots
                    .take(Some(IpAddr::from([127, 0, 1, i as u8])))
                    .unwrap()
            })
            .collect();
        assert!(slots.take(Some("127.0.0.9".parse().unwrap())).is_none());
        drop(mine);
        assert!(slots.take(one).is_some());
        drop(others);
    }

    #[test]
    fn a_public_viewer_sees_everything_but_query_strings() {
        let viewer = viewer_at_127_0_0_2(true);
        let seen = viewer.view(&dns("127.0.0.3:53", "example.org.")).unwrap();
        assert_eq!(name_of(&seen), "example.org.");
        let http = Event::Http {
            at_ms: 0,
            client: "127.0.0.3:4000".parse().unwrap(),
            method: "GET".into(),
            host: "foobar.com".into(),
            path: "/login?token=secret".into(),
            status: 200,
            layer: "app",
            micros: 1,
        };
        assert_eq!(name_of(&viewer.view(&http).unwrap()), "/login");
    }
}
