//! `onebox doctor`: checks each path a visitor depends on, in the order a browser
//! uses them, and prints pass, fail or skip with the exact fix for each failure.
//!
//! 1. onebox's DNS answers for each zone (SOA at `--dns`); in the toy Internet
//!    (the zones include a root) only the website zones are checked, and the
//!    recursive resolver (`--resolver`) must resolve each from the root too;
//! 2. the OS resolver (getaddrinfo, what browsers and curl use) reaches it and gets
//!    an address onebox's A or AAAA records give;
//! 3. the web server at those addresses (IPv6 first, as `onebox visit` tries them)
//!    answers `/healthz` with the site's `Host`;
//! 4. HTTPS at those addresses, port 8443, trusted through the CA given as
//!    `--cacert` (skipped without one).
//!
//! The report is a value first (`Report`), printed second (text or `--json`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::CertificateDer;
use serde::Serialize;

use crate::cli::DoctorArgs;
use crate::dns::lookup::{self, Ask, Lookup, LookupError};
use crate::visit::Detail;
use crate::visit::hops::{self, Limits, Scheme, Target};
use crate::visit::view::Paint;

/// getaddrinfo follows resolv.conf's own timeouts; this caps the wait for it.
const OS_RESOLVER_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Fail,
    Skip,
}

#[derive(Debug, Serialize)]
pub(crate) struct Check {
    /// `dns`, `os_resolver`, `http` or `https`.
    pub(crate) check: &'static str,
    pub(crate) zone: Option<String>,
    pub(crate) status: Status,
    pub(crate) summary: String,
    /// The command or change that fixes a failure.
    pub(crate) fix: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub(crate) ok: bool,
    pub(crate) dns: SocketAddr,
    /// The toy Internet's resolver, when the zones include a root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) resolver: Option<SocketAddr>,
    pub(crate) zones: Vec<String>,
    pub(crate) checks: Vec<Check>,
}

pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let mut zones = lookup::zone_names(&args.stack.zones)?;
    // zone_names gives the root as "". With a root, serve runs the toy Internet:
    // --dns serves only the zones whose glue points there, and a browser reaches
    // the website zones through the resolver, so those are what is checked.
    let resolver = if zones.iter().any(String::is_empty) {
        zones.retain(|z| z.contains('.'));
        Some(args.resolver.unwrap_or(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)),
            args.dns.port(),
        )))
    } else {
        if let Some(resolver) = args.resolver {
            anyhow::bail!(
                "--resolver {resolver}: the zones in {} include no root zone, so serve runs no resolver (try --zones internet)",
                args.stack.zones.display()
            );
        }
        None
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let report = runtime.block_on(diagnose(&args, zones, resolver))?;
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        render(&report, &Paint::for_stdout())
    };
    crate::visit::print_out(&text)?;
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn diagnose(
    args: &DoctorArgs,
    zones: Vec<String>,
    resolver: Option<SocketAddr>,
) -> anyhow::Result<Report> {
    let lookup = Lookup::new(args.dns)?;
    let recursive = resolver.map(Lookup::new).transpose()?;
    let trust = match &args.cacert {
        Some(path) => hops::load_certs(path)?,
        None => Vec::new(),
    };
    let mut checks = Vec::new();
    // Flags the fix lines must repeat so they act on the same setup.
    let mut same = String::new();
    if args.stack.zones != Path::new(crate::cli::DEFAULT_ZONES) {
        same.push_str(&format!(" --zones {}", args.stack.zones.display()));
    }
    if args.dns.to_string() != crate::cli::DEFAULT_DNS {
        same.push_str(&format!(" --dns {}", args.dns));
    }
    if let Some(resolver) = args.resolver {
        same.push_str(&format!(" --resolver {resolver}"));
    }

    for zone in &zones {
        let check = |check, status, summary: String, fix: Option<String>| Check {
            check,
            zone: Some(zone.clone()),
            status,
            summary,
            fix,
        };

        // 1. onebox's DNS answers for the zone.
        let soa = lookup.ask(zone, Ask::Soa).await;
        let dns_ok = soa.is_ok();
        checks.push(match soa {
            Ok(answer) => {
                let serial = answer
                    .records
                    .iter()
                    .find(|r| r.rtype == "SOA")
                    .and_then(|r| r.data.split_whitespace().nth(2).map(str::to_string))
                    .unwrap_or_default();
                check(
                    "dns",
                    Status::Pass,
                    format!("{} answers SOA for {zone} (serial {serial})", args.dns),
                    None,
                )
            }
            Err(err) => {
                let (summary, fix) = dns_failure(&err, zone, args);
                check("dns", Status::Fail, summary, Some(fix))
            }
        });

        // 1b. The toy Internet: the resolver finds the zone from the root.
        if let (Some(recursive), Some(at)) = (&recursive, resolver) {
            checks.push(match recursive.ask(zone, Ask::Soa).await {
                Ok(_) => check(
                    "resolver",
                    Status::Pass,
                    format!("the resolver at {at} finds {zone} from the root"),
                    None,
                ),
                Err(err) => check(
                    "resolver",
                    Status::Fail,
                    format!("the resolver at {at} does not resolve {zone}: {err}"),
                    Some(format!(
                        "serve starts the resolver when the zones include a root: onebox serve --zones {} --dns {} (or give doctor the --resolver serve uses)",
                        args.stack.zones.display(),
                        args.dns
                    )),
                ),
            });
        }

        // The name a visitor types, and the address onebox's own records give it.
        // (`www` when the zone has it, else the apex.) With DNS down, don't wait again.
        let mut host = format!("www.{zone}");
        let mut want = Vec::new();
        if dns_ok {
            want = addresses(&lookup, &host).await;
            if want.is_empty() {
                host = zone.clone();
                want = addresses(&lookup, &host).await;
            }
        }

        // 2. The OS resolver reaches onebox.
        if !dns_ok || want.is_empty() {
            checks.push(check(
                "os_resolver",
                Status::Skip,
                format!(
                    "onebox's DNS gives no address for {host}, so there is nothing to compare with"
                ),
                None,
            ));
        } else {
            checks.push(os_resolver_check(zone, &host, &want, &same).await);
        }

        // 3. The web server at the addresses DNS gives.
        let http_addrs = web_addrs(args.stack.http, &want, crate::cli::DEFAULT_HTTP_PORT);
        match web_checks(Web::Http, zone, &host, &http_addrs, args.dns, &[]).await {
            Some(web) => checks.push(web),
            None => checks.push(check(
                "http",
                Status::Skip,
                format!("onebox's DNS gives no address for {host}, so there is no web server to try (give --http ADDR)"),
                None,
            )),
        }

        // 4. HTTPS, trusted through the CA the user says onebox uses.
        if !trust.is_empty() {
            let https_addrs = web_addrs(args.stack.https, &want, crate::cli::DEFAULT_HTTPS_PORT);
            match web_checks(Web::Https, zone, &host, &https_addrs, args.dns, &trust).await {
                Some(web) => checks.push(web),
                None => checks.push(check(
                    "https",
                    Status::Skip,
                    format!("onebox's DNS gives no address for {host} (give --https ADDR)"),
                    None,
                )),
            }
        }
    }

    if trust.is_empty() {
        checks.push(Check {
            check: "https",
            zone: None,
            status: Status::Skip,
            summary: "HTTPS not checked: give --cacert FILE (the \"ca\" path in serve's ready line) to check it is served and trusted".into(),
            fix: None,
        });
    }

    Ok(Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        dns: args.dns,
        resolver,
        zones,
        checks,
    })
}

/// The addresses onebox's records give `host`, AAAA and A, in the order a
/// client tries them (RFC 8305: IPv6 first, then alternating).
async fn addresses(lookup: &Lookup, host: &str) -> Vec<IpAddr> {
    let (v6, v4) = tokio::join!(lookup.ask(host, Ask::Aaaa), lookup.ask(host, Ask::A));
    let found: Vec<IpAddr> = [v6, v4]
        .into_iter()
        .flatten()
        .flat_map(|answer| answer.addresses)
        .collect();
    hops::happy_eyeballs_order(&found)
}

/// Where to try a web server: the address the user gave, else each address DNS
/// gives on the default `port`.
fn web_addrs(given: Option<SocketAddr>, want: &[IpAddr], port: u16) -> Vec<SocketAddr> {
    match given {
        Some(addr) => vec![addr],
        None => want.iter().map(|ip| SocketAddr::new(*ip, port)).collect(),
    }
}

/// [`web_check`] at each address in turn until one passes, as a browser moves
/// on to the next address: the passing check, or the first failure. `None` when
/// there is no address to try.
async fn web_checks(
    web: Web,
    zone: &str,
    host: &str,
    addrs: &[SocketAddr],
    dns: SocketAddr,
    trust: &[CertificateDer<'static>],
) -> Option<Check> {
    let mut first_failure = None;
    for addr in addrs {
        let check = web_check(web, zone, host, *addr, dns, trust).await;
        if check.status == Status::Pass {
            return Some(check);
        }
        first_failure.get_or_insert(check);
    }
    first_failure
}

fn dns_failure(err: &LookupError, zone: &str, args: &DoctorArgs) -> (String, String) {
    let dns = args.dns;
    match err {
        LookupError::Timeout => (
            format!(
                "nothing answered DNS at {dns} within {} s",
                lookup::TIMEOUT.as_secs()
            ),
            format!("start onebox: onebox serve --dns {dns}"),
        ),
        LookupError::Unreachable => (
            format!("nothing listens for DNS at {dns} (connection refused)"),
            format!("start onebox: onebox serve --dns {dns}"),
        ),
        LookupError::Refused => (
            format!("{dns} answers DNS but does not serve {zone} (REFUSED)"),
            format!(
                "serve the zone there: onebox serve --dns {dns} --zones {} (or give doctor the --zones and --dns that serve uses)",
                args.stack.zones.display()
            ),
        ),
        other => (
            format!("{dns} answered {other} for {zone} SOA"),
            format!(
                "check the zone file: onebox check {}/{zone}.zone",
                args.stack.zones.display()
            ),
        ),
    }
}

async fn os_resolver_check(zone: &str, host: &str, want: &[IpAddr], same: &str) -> Check {
    let fix = format!(
        "route {zone} to onebox: sudo onebox resolver install --yes{same} (see the files first with onebox resolver print{same})"
    );
    let name = host.to_string();
    // getaddrinfo blocks, so it runs on a blocking thread, bounded by our own wait.
    let asked = tokio::time::timeout(
        OS_RESOLVER_WAIT,
        tokio::task::spawn_blocking(move || {
            (name.as_str(), 80)
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
        }),
    )
    .await;
    let mut check = Check {
        check: "os_resolver",
        zone: Some(zone.to_string()),
        status: Status::Fail,
        summary: String::new(),
        fix: Some(fix),
    };
    let list = |ips: &[IpAddr]| {
        ips.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match asked {
        Err(_) => {
            check.summary = format!(
                "the system resolver (getaddrinfo) gave no answer for {host} within {} s",
                OS_RESOLVER_WAIT.as_secs()
            )
        }
        Ok(Err(e)) => check.summary = format!("getaddrinfo could not run: {e}"),
        Ok(Ok(Err(e))) => {
            check.summary = format!(
                "the system resolver (getaddrinfo) cannot resolve {host} ({e}): it does not ask onebox for {zone}"
            )
        }
        Ok(Ok(Ok(addrs))) => {
            let got: Vec<IpAddr> = addrs.iter().map(SocketAddr::ip).collect();
            if got.iter().any(|ip| want.contains(ip)) {
                check.status = Status::Pass;
                check.fix = None;
                check.summary = format!(
                    "the system resolver (getaddrinfo) gives {host} → {}, as onebox's records say",
                    list(&got)
                );
            } else {
                check.summary = format!(
                    "the system resolver gives {host} → {}, but onebox says {}: another DNS server or /etc/hosts answers for it",
                    list(&got),
                    list(want)
                );
                check.fix = check
                    .fix
                    .map(|f| format!("{f}, and remove any {host} line from /etc/hosts"));
            }
        }
    }
    check
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Web {
    Http,
    Https,
}

/// GET /healthz straight at `addr` (the DNS step was checked above) with the
/// site's name as Host (and SNI).
async fn web_check(
    web: Web,
    zone: &str,
    host: &str,
    addr: SocketAddr,
    dns: SocketAddr,
    trust: &[CertificateDer<'static>],
) -> Check {
    let (name, scheme, default_port) = match web {
        Web::Http => ("http", Scheme::Http, 80),
        Web::Https => ("https", Scheme::Https, 443),
    };
    let host_header = if addr.port() == default_port {
        host.to_string()
    } else {
        format!("{host}:{}", addr.port())
    };
    let target = Target {
        url: format!("{name}://{host_header}/healthz"),
        scheme,
        host: host.to_string(),
        port: addr.port(),
        path: "/healthz".into(),
        host_header,
        ip: Some(addr.ip()),
    };
    let limits = Limits {
        connect: Duration::from_secs(3),
        response: Duration::from_secs(5),
        body: Duration::from_secs(5),
    };
    let mut request = hops::Request::get(target, dns);
    request.trust = trust.to_vec();
    request.cacert_given = !trust.is_empty();
    let visit = hops::visit(&request, &limits).await;
    let asked = format!("{name}://{addr}/healthz with Host {host}");
    let mut check = Check {
        check: name,
        zone: Some(zone.to_string()),
        status: Status::Pass,
        summary: format!("{asked} answered"),
        fix: None,
    };
    let Some(failure) = &visit.error else {
        for step in &visit.steps {
            match &step.detail {
                Detail::Tls {
                    version: Some(v), ..
                } => check
                    .summary
                    .push_str(&format!(" over {v} (certificate trusted)")),
                Detail::Http(h) => check
                    .summary
                    .push_str(&format!(" {}", h.status.unwrap_or_default())),
                _ => {}
            }
        }
        return check;
    };
    check.status = Status::Fail;
    check.summary = format!("{asked}: {}", failure.message);
    let port = if web == Web::Http {
        crate::cli::DEFAULT_HTTP_PORT
    } else {
        crate::cli::DEFAULT_HTTPS_PORT
    };
    let flag = if web == Web::Http {
        "--http"
    } else {
        "--https"
    };
    check.fix = Some(match failure.kind {
        "connection_refused" | "connect_timeout" | "connect_error" => format!(
            "start onebox: onebox serve (it listens for {name} on the address of the zone's A or AAAA record, port {port}), or give doctor {flag} ADDR if it listens elsewhere"
        ),
        "tls_untrusted" => "pass the CA onebox serve uses (the \"ca\" path in its ready line) as --cacert; for browsers, add it to their trust store".to_string(),
        "tls_name_mismatch" => format!(
            "the certificate does not cover {host}: restart onebox serve so it issues one for the zone's names"
        ),
        "tls_expired" => "restart onebox serve so it renews its certificate (and check this machine's clock)".to_string(),
        "http_timeout" | "http_error" | "tls_timeout" | "tls_error" => format!(
            "something at {addr} accepts connections but does not answer {name}: see what listens there (ss -ltnp) and restart onebox serve"
        ),
        _ => "the web server answered with an error: read onebox serve's log on stderr".to_string(),
    });
    check
}

pub(crate) fn render(report: &Report, paint: &Paint) -> String {
    let mut out = format!(
        "onebox doctor: DNS {}, zones {}\n\n",
        report.dns,
        report.zones.join(", ")
    );
    let width = report
        .checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        let status = match c.status {
            Status::Pass => paint.green("pass"),
            Status::Fail => paint.red("FAIL"),
            Status::Skip => paint.dim("skip"),
        };
        out.push_str(&format!(
            "{status}  {}  {}\n",
            paint.bold(&format!("{:<width$}", c.check)),
            c.summary
        ));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{}fix: {fix}\n", " ".repeat(4 + 2 + width + 2)));
        }
    }
    let failed = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    out.push('\n');
    out.push_str(&match failed {
        0 => paint.green("all checks passed\n"),
        1 => paint.red("1 check failed\n"),
        n => paint.red(&format!("{n} checks failed\n")),
    });
    out
}
