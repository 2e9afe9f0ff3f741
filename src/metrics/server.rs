//! The metrics listener: `GET /metrics` on its own address (`--metrics`, by default
//! 127.0.0.1:9153, CoreDNS's port), apart from the web server so a scrape never
//! competes with visitors for connection slots and never passes the site's
//! virtual-host rules.

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{Format, render};

/// Serves `/metrics` until `shutdown` is cancelled.
pub(crate) async fn serve(
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let app = Router::new().route("/metrics", get(scrape));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| anyhow::anyhow!("metrics listener failed: {e}"))
}

async fn scrape(headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::from_accept(accept);
    super::refresh_probes().await;
    match render(format) {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics could not be encoded\n",
        )
            .into_response(),
    }
}
