//! The cluster's plan (which process listens where) and every engine's
//! configuration, generated as commented text: `haproxy.cfg`, `knot.conf`,
//! `nsd.conf`, `postgresql.conf`, `pg_hba.conf` and the cluster's copy of the zone.
//! They are written to `DATA/cluster/` for the learner to read: each file spells
//! out one remedy of the one-server design.
//!
//! The address scheme: every process has a loopback address of its own, and the
//! ports repeat the ones the user chose, so two clusters started with different
//! ports never collide.
//!
//! | who | address |
//! |---|---|
//! | HAProxy (the zone's apex A record) | `--http`, `--https` (127.0.0.1:8080, :8443) |
//! | HAProxy's stats page | 127.0.4.1 on the `--http` port |
//! | node K | 127.0.1.K on the `--http` and `--https` ports |
//! | hidden DNS primary (onebox) | `--dns` (127.0.0.1:1053) |
//! | Knot, NSD (the zone's NS set) | 127.0.2.1, 127.0.2.2 on the `--dns` port |
//! | PostgreSQL primary, replica | 127.0.3.1, 127.0.3.2 on the `--dns` port (TCP) |

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The zone the cluster serves (the built-in site's zone).
pub(crate) const ZONE: &str = "foobar.com";
/// The database every node shares on the PostgreSQL primary.
pub(crate) const DATABASE: &str = "onebox";

/// Where every process of the cluster listens, and where its files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// `DATA/cluster`, absolute: children run with other working folders.
    pub(crate) dir: PathBuf,
    /// The three addresses the user chose; every other one follows from them
    /// by the table above (the methods below), so it is stated only once.
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) dns: SocketAddr,
    pub(crate) nodes: Vec<NodePlan>,
}

/// One onebox web node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NodePlan {
    pub(crate) name: String,
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
}

fn at(a: u8, b: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, a, b)), port)
}

impl Plan {
    /// The plan for `nodes` nodes with the balancer on `http`/`https` and the DNS
    /// primary on `dns`; `dir` is `DATA/cluster`.
    pub(crate) fn new(
        dir: PathBuf,
        nodes: u8,
        http: SocketAddr,
        https: SocketAddr,
        dns: SocketAddr,
    ) -> Self {
        Plan {
            dir,
            http,
            https,
            dns,
            nodes: (1..=nodes)
                .map(|k| NodePlan {
                    name: format!("node{k}"),
                    http: at(1, k, http.port()),
                    https: at(1, k, https.port()),
                })
                .collect(),
        }
    }

    /// HAProxy's stats page.
    pub(crate) fn stats(&self) -> SocketAddr {
        at(4, 1, self.http.port())
    }

    /// Knot, the first secondary (ns1).
    pub(crate) fn knot(&self) -> SocketAddr {
        at(2, 1, self.dns.port())
    }

    /// NSD, the second secondary (ns2).
    pub(crate) fn nsd(&self) -> SocketAddr {
        at(2, 2, self.dns.port())
    }

    pub(crate) fn pg_primary(&self) -> SocketAddr {
        at(3, 1, self.dns.port())
    }

    pub(crate) fn pg_replica(&self) -> SocketAddr {
        at(3, 2, self.dns.port())
    }

    /// A file or folder in `DATA/cluster`.
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A child's log file, `DATA/cluster/logs/NAME.log`.
    pub(crate) fn log(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The stats page, for the learner's browser.
    pub(crate) fn stats_url(&self) -> String {
        format!("http://{}/", self.stats())
    }

    /// The URL every node is given: both PostgreSQL servers, and libpq's rule to
    /// use whichever accepts writes. After a failover (the replica promoted) a
    /// node's new connections find the new primary by themselves, with no restart.
    pub(crate) fn db_url(&self) -> String {
        format!(
            "postgres://postgres@{},{}/{DATABASE}?target_session_attrs=read-write&connect_timeout=2",
            self.pg_primary(),
            self.pg_replica()
        )
    }

    /// Every address a process of the cluster listens on, for `down`'s check
    /// that nothing is left: (what, address, also UDP).
    pub(crate) fn listeners(&self) -> Vec<(String, SocketAddr, bool)> {
        let mut out = vec![
            ("haproxy http".to_string(), self.http, false),
            ("haproxy https".to_string(), self.https, false),
            ("haproxy stats".to_string(), self.stats(), false),
            ("dns primary".to_string(), self.dns, true),
            ("knot".to_string(), self.knot(), true),
            ("nsd".to_string(), self.nsd(), true),
            ("postgres primary".to_string(), self.pg_primary(), false),
            ("postgres replica".to_string(), self.pg_replica(), false),
        ];
        for node in &self.nodes {
            out.push((format!("{} http", node.name), node.http, false));
            out.push((format!("{} https", node.name), node.https, false));
        }
        out
    }
}

/// The cluster's copy of the zone: the NS set names the two secondaries (with
/// glue), never the primary, which stays hidden; the apex A record is the
/// balancer, so every visitor reaches HAProxy, never a node directly.
pub(crate) fn zone(plan: &Plan) -> String {
    let apex = match plan.http.ip() {
        IpAddr::V4(ip) => format!("A     {ip}"),
        IpAddr::V6(ip) => format!("AAAA  {ip}"),
    };
    format!(
        r#"; {ZONE} as the cluster serves it: generated by `onebox cluster up`.
;
; The hidden primary (onebox on {dns}) holds this file and takes DNS UPDATE;
; the servers the world is told about are the two secondaries below. They copy
; the zone from the primary (AXFR, then IXFR after each NOTIFY), so DNS keeps
; answering when the primary is down: the remedy for DNS as a single point of
; failure. The primary's own address appears nowhere in the zone.

$ORIGIN {ZONE}.
$TTL 3600
@     3600 IN SOA   ns1.{ZONE}. hostmaster.{ZONE}. (
                    1       ; serial: every UPDATE bumps it; secondaries copy when it grows
                    7200    ; refresh: how often secondaries ask without a NOTIFY
                    3600    ; retry
                    1209600 ; expire: secondaries answer this long without the primary
                    3600 )  ; minimum (negative-answer TTL)

; The NS set: Knot and NSD, two implementations, so one bug cannot take both down.
@     3600 IN NS    ns1.{ZONE}.
@     3600 IN NS    ns2.{ZONE}.
; Glue: their addresses (resolvers need them to reach the servers of this zone).
ns1   3600 IN A     {knot}
ns2   3600 IN A     {nsd}

; The apex address is the load balancer (HAProxy), not any one web node.
@     3600 IN {apex}
www   3600 IN CNAME {ZONE}.
"#,
        dns = plan.dns,
        knot = plan.knot().ip(),
        nsd = plan.nsd().ip(),
    )
}

/// HAProxy: round robin over the nodes with active health checks on `/readyz`.
///
/// HTTPS is passed through (TCP mode), not terminated here: each node keeps
/// serving TLS itself with a certificate from the one cluster CA (copied into
/// every node's data folder), so the node still knows the request came over TLS
/// (its `Secure` cookies and its same-origin check compare `https://` origins)
/// without trusting a forwarded header, and HAProxy holds no private key. The
/// cost: HTTPS is balanced per connection, not per request, and HAProxy cannot
/// retry an HTTPS request; plain HTTP is balanced and retried per request.
pub(crate) fn haproxy_cfg(plan: &Plan) -> String {
    let mut http_servers = String::new();
    let mut https_servers = String::new();
    for node in &plan.nodes {
        let _ = writeln!(http_servers, "    server {} {} check", node.name, node.http);
        let _ = writeln!(
            https_servers,
            "    server {} {} check port {}",
            node.name,
            node.https,
            node.http.port()
        );
    }
    format!(
        r#"# HAProxy in front of the onebox nodes: generated by `onebox cluster up`.
# The remedies it shows: no single web server (round robin over {n} nodes),
# maintenance without downtime (a node whose /readyz fails is drained), and
# scaling out (add nodes behind one address).

global
    # `onebox cluster status` reads each server's state and counters here.
    stats socket {sock} mode 600 level admin
    maxconn 4096
    log stderr format raw daemon notice

defaults
    mode http
    log global
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # A request whose node refused the connection or closed it without an
    # answer (killed with -9, or stopping) is sent again, to another node
    # (redispatch): a node's death costs few failed requests.
    # A 503 is retried too: a node just put in maintenance answers 503 until
    # its failed /readyz checks take it out (about 0.6 s); another node serves
    # those requests instead, so a drain costs the visitor nothing.
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout 503
    # Every server is checked every 300 ms: 2 failed checks take it out of the
    # rotation, 2 good ones put it back (about 0.6 s each way).
    default-server inter 300ms fall 2 rise 2

frontend http
    bind {http}
    # A POST might have been applied before its node died: retry it only when
    # the connection failed, never after it was sent (no double post).
    http-request disable-l7-retry if METH_POST
    default_backend nodes_http

backend nodes_http
    balance roundrobin
    # The check asks what a visitor needs: /readyz answers 200 only when the
    # node reads its database (and 503 under `onebox maintenance on`).
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host {ZONE}
    http-check expect status 200
{http_servers}
# HTTPS is passed through to the nodes' own TLS (see the README for why); the
# health check still asks /readyz on each node's plain HTTP port.
frontend https
    mode tcp
    bind {https}
    default_backend nodes_https

backend nodes_https
    mode tcp
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host {ZONE}
    http-check expect status 200
{https_servers}
# The stats page, for the learner: each node's state and its requests.
listen stats
    bind {stats}
    stats enable
    stats uri /
    stats refresh 2s
"#,
        n = plan.nodes.len(),
        sock = plan.path("haproxy.sock").display(),
        http = plan.http,
        https = plan.https,
        stats = plan.stats(),
    )
}

/// The start of a Knot DNS configuration: one worker of each kind, listening on
/// `listen`, every file it writes (pid, control socket, database) in `dir`, its
/// log on stderr. Callers add their `remote:`, `template:` and `zone:` sections.
pub fn knot_conf_head(dir: &Path, listen: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: {ip}@{port}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{d}/knot.sock"
database:
    storage: "{d}"
log:
  - target: stderr
    any: info
"#,
        ip = listen.ip(),
        port = listen.port()
    )
}

/// The start of an NSD configuration: one server process, listening on `listen`,
/// run as the current user without chroot, every file it writes (zone list,
/// transfer state, pid) in `dir`. It ends inside `server:`: callers add their own
/// server options (such as `verbosity:`), then `remote-control:` and `zone:`.
pub fn nsd_conf_head(dir: &Path, listen: SocketAddr) -> String {
    let d = dir.display();
    format!(
        r#"server:
    server-count: 1
    ip-address: {ip}@{port}
    username: ""
    chroot: ""
    zonesdir: "{d}"
    database: ""
    zonelistfile: "{d}/zone.list"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    pidfile: "{d}/nsd.pid"
"#,
        ip = listen.ip(),
        port = listen.port()
    )
}

/// Knot as a secondary of the hidden primary.
pub(crate) fn knot_conf(plan: &Plan) -> String {
    format!(
        "# Knot DNS, secondary for {ZONE}: generated by `onebox cluster up`.\n\
         # It copies the zone from the hidden primary and answers on its own address,\n\
         # which the zone's NS set and glue name (ns1.{ZONE}).\n{}",
        knot_secondary(&plan.path("knot"), plan.knot(), plan.dns, None)
    )
}

/// NSD as a secondary of the hidden primary.
pub(crate) fn nsd_conf(plan: &Plan) -> String {
    format!(
        "# NSD, secondary for {ZONE}: generated by `onebox cluster up`.\n\
         # It copies the zone from the hidden primary and answers on its own address,\n\
         # which the zone's NS set and glue name (ns2.{ZONE}).\n{}",
        nsd_secondary(&plan.path("nsd"), plan.nsd(), plan.dns)
    )
}

/// A whole Knot configuration: a secondary for the zone on `listen`, copying
/// from `primary` (AXFR, then IXFR after each NOTIFY), its files in `dir`.
pub fn knot_secondary(
    dir: &Path,
    listen: SocketAddr,
    primary: SocketAddr,
    tsig_secret: Option<&str>,
) -> String {
    // With onebox's TSIG key, Knot signs its SOA queries and transfers, which
    // onebox then admits from outside --allow-transfer.
    let (key, use_key) = match tsig_secret {
        Some(secret) => (
            format!(
                "\n# onebox's UPDATE key, to sign transfers with.\nkey:\n  - id: onebox-update.\n    algorithm: hmac-sha256\n    secret: {secret}\n"
            ),
            "    key: onebox-update.\n",
        ),
        None => (String::new(), ""),
    };
    format!(
        r#"{head}{key}
# The primary it copies from.
remote:
  - id: primary
    address: {pip}@{pport}
{use_key}
# Who may tell it "the zone changed" (NOTIFY): only loopback, where the primary is.
acl:
  - id: notify_from_primary
    address: 127.0.0.0/8
    action: notify
# Who may copy the zone from it (dig AXFR): loopback, to compare copies.
  - id: transfer_to_loopback
    address: 127.0.0.0/8
    action: transfer

# Keep the copy in Knot's journal only (no zone file written back), and keep
# the differences, so the next transfer can be an IXFR.
template:
  - id: default
    storage: "{d}"
    zonefile-sync: -1
    journal-content: changes

zone:
  - domain: {ZONE}
    master: primary
    acl: [notify_from_primary, transfer_to_loopback]
"#,
        head = knot_conf_head(dir, listen),
        pip = primary.ip(),
        pport = primary.port(),
        d = dir.display(),
    )
}

/// A whole NSD configuration: a secondary for the zone on `listen`, copying
/// from `primary` (a NOTIFY from loopback triggers the transfer), its files in `dir`.
pub fn nsd_secondary(dir: &Path, listen: SocketAddr, primary: SocketAddr) -> String {
    format!(
        r#"{head}    verbosity: 2
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    # Where NSD keeps its copy of the transferred zone.
    zonefile: "{d}/{ZONE}.zone"
    # A NOTIFY from loopback (the primary) triggers a transfer at once...
    allow-notify: 127.0.0.0/8 NOKEY
    # ...from the primary, which NSD also asks every SOA refresh interval.
    request-xfr: {pip}@{pport} NOKEY
    # Anyone on loopback may copy the zone from it (dig AXFR), to compare copies.
    provide-xfr: 127.0.0.0/8 NOKEY
"#,
        head = nsd_conf_head(dir, listen),
        d = dir.display(),
        pip = primary.ip(),
        pport = primary.port(),
    )
}

/// The settings both PostgreSQL servers share, included from each one's own
/// `postgresql.conf`. Addresses and ports are on each server's command line.
pub(crate) fn postgresql_conf(plan: &Plan) -> String {
    format!(
        r#"# PostgreSQL for the onebox cluster: generated by `onebox cluster up` and
# included by both servers (pg-primary/ and pg-replica/). The remedy shown:
# the database is no longer a single point of failure, because every committed
# change is streamed to a replica that can take over.

# TCP on loopback only (the address and port are on each server's command line).
unix_socket_directories = ''

# Write enough to the WAL (write-ahead log) for a replica to replay it, and let
# a few replicas (and pg_basebackup) stream it.
wal_level = replica
max_wal_senders = 4
wal_keep_size = 64MB
# The replica answers reads while it replays.
hot_standby = on

# Durable commits: a commit is acknowledged after it is flushed to disk here...
fsync = on
synchronous_commit = on
# ...and after the replica has it too. This is what makes "no acknowledged post
# is lost when the primary dies" true: a post onebox answered 201 for is on the
# replica that gets promoted. The trade-off: every write waits one round trip to
# the replica, and while the replica is down, writes on the primary wait (onebox
# nodes answer them 503 after their timeout) until it is back or this is
# cleared. The replica clears it for itself (pg-replica/postgresql.auto.conf):
# once promoted it has no standby, and waiting for one would stop every write.
synchronous_standby_names = '*'

max_connections = 200
shared_buffers = 16MB

# Who may connect: the generated file beside this one.
hba_file = '{hba}'
"#,
        hba = plan.path("pg_hba.conf").display()
    )
}

/// Who may connect: everyone on loopback, as any role, without a password
/// (`trust`). Fine for a teaching cluster bound to loopback only; a real
/// deployment uses scram-sha-256 passwords and TLS (`hostssl`).
pub(crate) fn pg_hba_conf() -> String {
    r#"# Client authentication for the onebox cluster: generated by `onebox cluster up`.
# TYPE  DATABASE     USER  ADDRESS       METHOD
host    all          all   127.0.0.0/8   trust
# The replica's streaming connection (and pg_basebackup) is a "replication" one.
host    replication  all   127.0.0.0/8   trust
"#
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::new(
            PathBuf::from("/d/cluster"),
            3,
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:8443".parse().unwrap(),
            "127.0.0.1:1053".parse().unwrap(),
        )
    }

    #[test]
    fn every_process_has_its_own_address_on_the_chosen_ports() {
        let plan = plan();
        assert_eq!(plan.nodes[2].http.to_string(), "127.0.1.3:8080");
        assert_eq!(plan.nodes[2].https.to_string(), "127.0.1.3:8443");
        assert_eq!(plan.knot().to_string(), "127.0.2.1:1053");
        assert_eq!(plan.nsd().to_string(), "127.0.2.2:1053");
        assert_eq!(plan.pg_replica().to_string(), "127.0.3.2:1053");
        let mut seen: Vec<_> = plan.listeners().iter().map(|l| l.1).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            plan.listeners().len(),
            "two listeners share an address"
        );
    }

    #[test]
    fn the_zone_names_the_secondaries_and_points_at_the_balancer() {
        let zone = zone(&plan());
        assert!(zone.contains("ns1   3600 IN A     127.0.2.1"), "{zone}");
        assert!(zone.contains("ns2   3600 IN A     127.0.2.2"), "{zone}");
        assert!(zone.contains("@     3600 IN A     127.0.0.1"), "{zone}");
    }

    #[test]
    fn haproxy_checks_every_node_on_readyz() {
        let cfg = haproxy_cfg(&plan());
        assert!(cfg.contains("server node3 127.0.1.3:8080 check\n"), "{cfg}");
        assert!(
            cfg.contains("server node3 127.0.1.3:8443 check port 8080"),
            "{cfg}"
        );
        assert!(cfg.contains("uri /readyz"), "{cfg}");
        assert!(cfg.contains("inter 300ms fall 2 rise 2"), "{cfg}");
    }
}
