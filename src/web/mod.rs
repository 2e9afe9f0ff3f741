//! The web server box: hyper on the address the apex A record gives.

use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::db::Db;
use crate::dns::Zones;

/// What the web server needs from the rest of onebox.
#[derive(Debug)]
pub(crate) struct WebConfig {
    pub(crate) zones: Zones,
    pub(crate) db: Db,
    pub(crate) site_dir: Option<PathBuf>,
    pub(crate) dns_addr: SocketAddr,
}

/// Serves HTTP on `listener` until `shutdown`, then drains in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    config: WebConfig,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    // Placeholder until the site lands: say what would be served, serve nothing.
    let WebConfig {
        zones,
        db,
        site_dir,
        dns_addr,
    } = config;
    for host in zones.site_hosts() {
        tracing::debug!(?listener, ?db, ?site_dir, %dns_addr, "site host {host}: {:?}", zones.chain(&host));
    }
    shutdown.cancelled().await;
    Ok(())
}
