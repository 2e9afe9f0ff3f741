//! The live view's two routes: the page at `/_onebox/live` and the stream of events
//! (server-sent events) at `/_onebox/live/events` that it reads.

use std::convert::Infallible;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use tokio_util::sync::CancellationToken;

use crate::live::Live;

/// Recent events first, then each new one as it happens. A viewer that falls more
/// than the channel's length behind is told how many it missed and carries on.
pub(crate) fn events(live: &Live, shutdown: &CancellationToken) -> Response {
    let (history, receiver) = live.subscribe();
    let past = stream::iter(history.into_iter().map(|event| Ok(to_sse(&event))));
    let next = stream::unfold(receiver, |mut receiver| async move {
        let item = match receiver.recv().await {
            Ok(event) => to_sse(&event),
            Err(RecvError::Lagged(missed)) => SseEvent::default()
                .event("skipped")
                .data(missed.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok::<_, Infallible>(item), receiver))
    });
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<SseEvent, Infallible>> + Send>> =
        Box::pin(
            past.chain(next)
                .take_until(shutdown.clone().cancelled_owned()),
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

fn to_sse(event: &crate::live::Event) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(event).unwrap_or_default())
}

/// The page: a table that fills as DNS queries and HTTP requests happen. Plain
/// HTML and a few lines of script; no build step.
pub(crate) fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
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
<p class="lede">Every DNS question onebox answers and every HTTP request it serves appears here.
Run <code>dig @127.0.0.1 -p 1053 www.foobar.com</code> or open the site in another tab and watch:
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
