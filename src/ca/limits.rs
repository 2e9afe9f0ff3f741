//! What the local CA may vouch for: the rule that picks its name constraints, and
//! the check that a CA found in the data folder is no wider than that.
//!
//! The rule: the CA may vouch for the **website names** onebox serves, and for
//! loopback. A website name is a zone apex that has an A or AAAA record, or a name
//! whose CNAME chain leads to one (`www`), and it has at least two labels: the
//! root (`.`) and single-label names (`com`) are never permitted, because a
//! constraint on them would cover every site below them. A zone that only
//! delegates (the root zone, a `com` zone) has no address at its apex, so it adds
//! nothing. A name below another website name adds nothing either: an X.509 DNS
//! constraint (RFC 5280 §4.2.1.10) covers a name and everything below it, so
//! `foobar.com` already covers `www.foobar.com`.
//!
//! RFC 5280 leaves a name *type* unconstrained when no permitted subtree of that
//! type is present, so a safe CA needs both a DNS subtree and an IP subtree. When
//! onebox serves no website, the DNS subtree is [`NO_NAME`], which matches nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The DNS constraint of a CA that may vouch for no name at all: `.invalid` is
/// reserved never to exist (RFC 6761 §6.4), so nothing real is below it.
pub(crate) const NO_NAME: &str = "invalid";

/// The website names a CA should be limited to, from the names that serve a site
/// (apexes with an address, and their aliases): lower case, without the trailing
/// dot, never `.` or a single label, none below another, sorted; a wildcard
/// `*.example.org` becomes `example.org`.
pub(crate) fn website_names(site_hosts: &[String]) -> Vec<String> {
    let mut names: Vec<String> = site_hosts
        .iter()
        .map(|host| host.trim_end_matches('.').to_ascii_lowercase())
        // A wildcard alias (`*.example.org CNAME foobar.com.`) serves the names
        // below example.org; a DNS constraint has no wildcard form, and the one
        // for example.org covers exactly those names and example.org itself.
        .map(|host| match host.strip_prefix("*.") {
            Some(parent) => parent.to_string(),
            None => host,
        })
        .filter(|host| host.contains('.') && !host.starts_with('.'))
        .collect();
    names.sort();
    names.dedup();
    let kept: Vec<String> = names
        .iter()
        .filter(|name| !names.iter().any(|other| is_below(name, other)))
        .cloned()
        .collect();
    kept
}

/// Whether `name` is strictly below `parent` (`www.foobar.com` below `foobar.com`).
fn is_below(name: &str, parent: &str) -> bool {
    name.len() > parent.len() + 1
        && name.ends_with(parent)
        && name.as_bytes()[name.len() - parent.len() - 1] == b'.'
}

/// Whether the constraint `name` stays inside one of `allowed` (equal or below).
fn inside(name: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .any(|website| name == website || is_below(name, website))
}

/// One permitted IP subtree: a network and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Subnet {
    pub(crate) addr: IpAddr,
    /// `None` when the mask is not a run of ones (a mask no sane CA uses).
    pub(crate) prefix: Option<u8>,
}

impl Subnet {
    /// From the encoding RFC 5280 gives an IP subtree: the address, then the mask
    /// (8 bytes for IPv4, 32 for IPv6). `None` for any other length.
    pub(crate) fn from_der(bytes: &[u8]) -> Option<Self> {
        let (addr, mask): (IpAddr, &[u8]) = match bytes.len() {
            8 => {
                let octets: [u8; 4] = bytes[..4].try_into().ok()?;
                (IpAddr::V4(Ipv4Addr::from(octets)), &bytes[4..])
            }
            32 => {
                let octets: [u8; 16] = bytes[..16].try_into().ok()?;
                (IpAddr::V6(Ipv6Addr::from(octets)), &bytes[16..])
            }
            _ => return None,
        };
        let ones: u32 = mask.iter().map(|b| b.count_ones()).sum();
        let contiguous = mask
            .iter()
            .flat_map(|b| (0..8).rev().map(move |i| b >> i & 1 == 1))
            .skip_while(|bit| *bit)
            .all(|bit| !bit);
        Some(Self {
            addr,
            prefix: contiguous.then_some(ones as u8),
        })
    }

    /// Whether every address of this subtree is a loopback address: inside
    /// 127.0.0.0/8, or exactly ::1.
    fn is_loopback(&self) -> bool {
        match (self.addr, self.prefix) {
            (IpAddr::V4(v4), Some(prefix)) => prefix >= 8 && v4.octets()[0] == 127,
            (IpAddr::V6(v6), Some(128)) => v6 == Ipv6Addr::LOCALHOST,
            _ => false,
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(prefix) => write!(f, "{}/{prefix}", self.addr),
            None => write!(f, "{} with a broken mask", self.addr),
        }
    }
}

/// A CA certificate's permitted subtrees, as far as TLS servers care: DNS names
/// and IP networks. `None` for a type with no subtree at all (unconstrained).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Permitted {
    pub(crate) names: Option<Vec<String>>,
    pub(crate) subnets: Option<Vec<Subnet>>,
}

impl fmt::Display for Permitted {
    /// `foobar.com, 127.0.0.1/32, ::1/128`: what the CA may vouch for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names.iter().flatten().map(ToString::to_string);
        let subnets = self.subnets.iter().flatten().map(ToString::to_string);
        let all: Vec<String> = names.chain(subnets).collect();
        f.write_str(&all.join(", "))
    }
}

/// Why a CA is refused: what it could vouch for that onebox does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("it could vouch for {}", .0.join(", "))]
pub(crate) struct TooWide(pub(crate) Vec<String>);

impl Permitted {
    /// Checks these constraints are no wider than `websites` (see
    /// [`website_names`]) and loopback. With `websites` `None` (the caller does
    /// not know what is served), any name of two labels or more passes, but
    /// never `.`, a single label, an unconstrained type or a non-loopback network.
    pub(crate) fn check(&self, websites: Option<&[String]>) -> Result<(), TooWide> {
        let mut wide = Vec::new();
        match &self.names {
            None => wide.push("every DNS name (no DNS name constraint)".to_string()),
            Some(names) => {
                for name in names {
                    let bare = name.trim_start_matches('.').trim_end_matches('.');
                    let fine = bare == NO_NAME
                        || (bare.contains('.')
                            && websites.is_none_or(|websites| inside(bare, websites)));
                    if !fine {
                        wide.push(match bare {
                            "" => "every DNS name (the root)".to_string(),
                            _ if !bare.contains('.') => format!("every name under {bare}"),
                            _ => format!("{bare} (not a website onebox serves)"),
                        });
                    }
                }
            }
        }
        match &self.subnets {
            None => wide.push("every IP address (no IP constraint)".to_string()),
            Some(subnets) => wide.extend(
                subnets
                    .iter()
                    .filter(|subnet| !subnet.is_loopback())
                    .map(|subnet| format!("{subnet} (not loopback)")),
            ),
        }
        if wide.is_empty() {
            Ok(())
        } else {
            Err(TooWide(wide))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn loopback() -> Vec<Subnet> {
        vec![
            Subnet::from_der(&[127, 0, 0, 1, 255, 255, 255, 255]).unwrap(),
            Subnet::from_der(&[[0; 15].as_slice(), &[1], &[255; 16]].concat()).unwrap(),
        ]
    }

    #[test]
    fn website_names_drop_the_root_tlds_and_names_below_another() {
        let hosts = strings(&[
            "foobar.com",
            "www.foobar.com",
            "",
            "com",
            "WWW.Example.Test.",
            "*.foobar.com",
            "*.org",
            "*.shop.example",
        ]);
        assert_eq!(
            website_names(&hosts),
            ["foobar.com", "shop.example", "www.example.test"],
            "an alias stands alone when its apex is no website name of ours"
        );
        assert!(website_names(&strings(&["", "com"])).is_empty());
    }

    #[test]
    fn subtrees_decode_from_their_der_form() {
        let zero = Subnet::from_der(&[0; 8]).unwrap();
        assert_eq!(zero.to_string(), "0.0.0.0/0");
        assert!(!zero.is_loopback());
        let [v4, v6] = loopback().try_into().unwrap();
        assert_eq!(
            (v4.to_string(), v6.to_string()),
            ("127.0.0.1/32".into(), "::1/128".into())
        );
        assert!(v4.is_loopback() && v6.is_loopback());
        assert!(
            Subnet::from_der(&[127, 0, 0, 0, 255, 0, 0, 0])
                .unwrap()
                .is_loopback()
        );
        let holey = Subnet::from_der(&[127, 0, 0, 1, 255, 0, 255, 255]).unwrap();
        assert_eq!(holey.prefix, None);
        assert!(!holey.is_loopback());
        assert_eq!(Subnet::from_der(&[1, 2, 3]), None);
    }

    #[test]
    fn only_website_names_and_loopback_pass() {
        let sites = strings(&["foobar.com"]);
        let ours = Permitted {
            names: Some(strings(&["foobar.com"])),
            subnets: Some(loopback()),
        };
        assert_eq!(ours.check(Some(&sites)), Ok(()));
        assert_eq!(ours.to_string(), "foobar.com, 127.0.0.1/32, ::1/128");
        let narrower = Permitted {
            names: Some(strings(&["www.foobar.com", NO_NAME])),
            ..ours.clone()
        };
        assert_eq!(narrower.check(Some(&sites)), Ok(()));

        let google = Permitted {
            names: Some(strings(&["google.com", "foobar.com"])),
            subnets: Some(vec![Subnet::from_der(&[0; 8]).unwrap()]),
        };
        let err = google.check(Some(&sites)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it could vouch for google.com (not a website onebox serves), 0.0.0.0/0 (not loopback)"
        );
        // Without the served names, google.com passes but 0.0.0.0/0 still fails.
        assert_eq!(
            google.check(None).unwrap_err().0,
            ["0.0.0.0/0 (not loopback)"]
        );

        for (names, said) in [
            (vec![""], "every DNS name (the root)"),
            (vec!["com"], "every name under com"),
            (vec!["com."], "every name under com"),
        ] {
            let wide = Permitted {
                names: Some(strings(&names)),
                ..ours.clone()
            };
            assert_eq!(wide.check(None).unwrap_err().0, [said]);
        }
        let unconstrained = Permitted::default();
        assert_eq!(unconstrained.check(Some(&sites)).unwrap_err().0.len(), 2);
    }
}
