//! NOTIFY (RFC 1996): tells secondaries a zone changed, so they fetch it (by
//! IXFR) at once instead of at their next refresh.
//!
//! A watcher compares each zone's serial with the last one it saw, so every kind
//! of change (UPDATE, the fixture API, a reloaded file) is announced the same
//! way, without the code that changes zones knowing about secondaries. Each
//! NOTIFY goes over UDP and is retried with doubling waits until the secondary
//! answers, within a bounded number of tries (§3.6: it is only a hint).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query};
use hickory_server::proto::rr::{DNSClass, Name, RData, RecordType};
use tokio_util::sync::CancellationToken;

use super::Zones;
use crate::live::{Event, Live};

/// How often the watcher looks at the serials.
const WATCH_EVERY: Duration = Duration::from_millis(200);
/// Tries per secondary and change: waits of 1, 2, 4, 8, 16 s, about 30 s in all.
const TRIES: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// Where NOTIFY goes for one zone: each `--notify` address, and every NS host of
/// the zone (port 53) whose address the zone holds, except onebox itself.
fn targets(zones: &Zones, origin: &Name, extra: &[SocketAddr], own: SocketAddr) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = extra.to_vec();
    let set = zones.snapshot();
    if let Some(zone) = set
        .zones
        .values()
        .find(|z| super::same_name(z.origin(), origin))
    {
        let servers: Vec<_> = zone
            .rrsets()
            .get(&super::rrsets::key(origin, RecordType::NS))
            .map(|set| set.records_without_rrsigs().cloned().collect())
            .unwrap_or_default();
        for glue in zone.glue(&servers) {
            let ip: IpAddr = match glue.data {
                RData::A(a) => a.0.into(),
                RData::AAAA(a) => a.0.into(),
                _ => continue,
            };
            let addr = SocketAddr::new(ip, 53);
            if ip != own.ip() && !ip.is_unspecified() && !out.contains(&addr) {
                out.push(addr);
            }
        }
    }
    out
}

/// Runs until `shutdown`: announces every serial change to the zone's secondaries.
pub(crate) async fn watch(
    zones: Zones,
    extra: Vec<SocketAddr>,
    own: SocketAddr,
    live: Live,
    shutdown: CancellationToken,
) {
    let mut seen: HashMap<String, u32> = zones
        .snapshot()
        .zones
        .values()
        .map(|z| (z.origin().to_string(), z.serial()))
        .collect();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(WATCH_EVERY) => {}
        }
        let now: Vec<(Name, u32)> = zones
            .snapshot()
            .zones
            .values()
            .map(|z| (z.origin().clone(), z.serial()))
            .collect();
        for (origin, serial) in now {
            let key = origin.to_string();
            if seen.insert(key, serial) == Some(serial) {
                continue;
            }
            for target in targets(&zones, &origin, &extra, own) {
                let (origin, stop, live) = (origin.clone(), shutdown.clone(), live.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        acked = send(origin.clone(), serial, target) => if acked {
                            live.publish(Event::Secondary {
                                at_ms: crate::live::now_ms(),
                                zone: origin.to_string(),
                                serial,
                                secondary: target,
                                state: "notified",
                            });
                        }
                    }
                });
            }
        }
    }
}

/// Sends one NOTIFY until it is acknowledged or the tries run out; whether the
/// secondary acknowledged it.
async fn send(origin: Name, serial: u32, target: SocketAddr) -> bool {
    let bind: SocketAddr = if target.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match tokio::net::UdpSocket::bind(bind).await {
        Ok(socket) => socket,
        Err(e) => {
            tracing::warn!("notify {target} for {origin}: cannot open a socket: {e}");
            return false;
        }
    };
    let id: u16 = rand::random();
    let mut message = Message::new(id, MessageType::Query, OpCode::Notify);
    message.metadata.authoritative = true;
    let mut query = Query::query(origin.clone(), RecordType::SOA);
    query.set_query_class(DNSClass::IN);
    message.queries.push(query);
    let Ok(packet) = message.to_vec() else {
        return false;
    };
    let mut wait = FIRST_WAIT;
    for attempt in 1..=TRIES {
        if let Err(e) = socket.send_to(&packet, target).await {
            tracing::debug!("notify {target} for {origin}: {e}");
        }
        let mut buf = [0u8; 512];
        let acked = tokio::time::timeout(wait, async {
            loop {
                match socket.recv_from(&mut buf).await {
                    Ok((len, from)) if from == target && len >= 12 => {
                        // QR set, our ID, opcode NOTIFY: the secondary heard us.
                        if buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
                            return buf[3] & 0x0F;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return u8::MAX,
                }
            }
        })
        .await;
        match acked {
            Ok(0) => {
                tracing::info!(zone = %origin, serial, secondary = %target, "notify acknowledged");
                return true;
            }
            Ok(rcode) => {
                tracing::warn!(zone = %origin, serial, secondary = %target, rcode, "notify refused");
                return false;
            }
            Err(_) => {
                tracing::debug!(zone = %origin, secondary = %target, attempt, "notify not answered yet");
                wait *= 2;
            }
        }
    }
    tracing::warn!(zone = %origin, serial, secondary = %target, "notify never acknowledged after {TRIES} tries");
    false
}
