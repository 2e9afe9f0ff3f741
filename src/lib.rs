//! onebox: the classic "one server hosts a website" diagram as one runnable binary.
//!
//! A visit to `http://www.foobar.com/` crosses these layers, in this order, and each
//! has its own module:
//!
//! 1. `dns`: the authoritative DNS server. It answers `www.foobar.com A` with the
//!    CNAME `www → foobar.com` and then the apex **A** record, the only record that
//!    maps a name to an address.
//! 2. `web`: the web server (hyper) listening on that address. It picks the site by
//!    the `Host` name, serves static files itself and hands the rest to the app.
//! 3. `app`: the application server: accounts, sessions and posts, rendered as HTML
//!    or JSON.
//! 4. `db`: the database (redb), embedded and ACID, or PostgreSQL with `--db
//!    postgres://…` when several nodes share the data. A request is acknowledged
//!    only after its transaction is durably committed.
//! 5. [`visit`]: the visitor. `onebox visit URL` walks the same path from the client
//!    side and reports every hop.
//!
//! [`cluster`] runs the distributed version of the same diagram on real engines
//! (HAProxy, several onebox nodes, Knot and NSD, replicated PostgreSQL): the
//! remedies of one server's weaknesses.
//!
//! [`serve`] wires them together: it checks the configuration, binds every socket,
//! hands each server its sockets and one shutdown token, prints the ready line,
//! then turns signals into reloads and a graceful stop, and stops the process when
//! a server ends on its own. Nothing below it binds ports or catches signals.

pub(crate) mod app;
pub mod ca;
pub mod check;
pub mod cli;
pub mod cluster;
pub mod control;
pub(crate) mod db;
pub(crate) mod dns;
pub mod key;
pub(crate) mod live;
pub(crate) mod log;
pub mod metrics;
pub mod migrate;
pub(crate) mod private_file;
pub(crate) mod request;
pub mod serve;
pub mod testing;
pub mod visit;
/// `onebox doctor` lives with the visitor it drives; kept here so the path stays.
pub use visit::doctor;
pub(crate) mod web;

/// Entry points for the fuzzer in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use std::net::SocketAddr;

    use crate::dns::{Engine, Transport, Zones};

    /// The DNS engine over the built-in zone, as every listener uses it.
    pub struct DnsHarness {
        engine: Engine,
        /// The same zones, for the UPDATE path.
        zones: Zones,
        runtime: tokio::runtime::Runtime,
    }

    impl Default for DnsHarness {
        fn default() -> Self {
            Self::new()
        }
    }

    impl DnsHarness {
        pub fn new() -> Self {
            let zones = Zones::load(std::path::Path::new("/nonexistent-onebox-zones"), true)
                .expect("the built-in zone loads");
            let everyone = vec!["0.0.0.0/0".parse().expect("valid network")];
            Self {
                engine: Engine::new(zones.clone(), everyone),
                zones,
                runtime: tokio::runtime::Builder::new_current_thread()
                    .build()
                    .expect("a runtime"),
            }
        }

        /// Applies `packet` as a DNS UPDATE that passed TSIG: the prerequisite,
        /// prescan and apply code must turn any bytes into an rcode, never a panic.
        pub fn update(&self, packet: &[u8]) {
            let _ = self
                .runtime
                .block_on(crate::dns::update::apply_unsigned(&self.zones, packet));
        }

        /// Answers `packet` over UDP and over TCP and checks what must always hold:
        /// the reply echoes the ID, and a UDP reply fits the size we promise.
        pub fn answer(&self, packet: &[u8]) {
            let client: SocketAddr = ([127, 0, 0, 1], 5353).into();
            for transport in [Transport::Udp, Transport::Tcp] {
                let reply = self
                    .runtime
                    .block_on(self.engine.answer(packet, client, transport));
                let Some(reply) = reply else { continue };
                assert!(reply.len() >= 12, "reply shorter than a header");
                assert_eq!(reply[..2], packet[..2], "reply does not echo the query ID");
                assert!(reply[2] & 0x80 != 0, "reply without QR");
                if transport == Transport::Udp {
                    assert!(reply.len() <= 1232, "UDP reply of {} bytes", reply.len());
                }
            }
        }
    }
}
