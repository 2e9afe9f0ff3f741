//! The local certificate authority behind HTTPS, DNS over TLS and DNS over HTTPS.
//!
//! Browsers and TLS clients trust a server when a CA they trust signed its
//! certificate. Local-development CAs (mkcert and friends) can sign for *any* name,
//! so trusting one hands whoever holds its key the power to impersonate every site.
//! Ours carries X.509 **name constraints** (RFC 5280 §4.2.1.10): it can only vouch
//! for the websites onebox serves and the loopback addresses (`limits` gives
//! the rule), and a verifier that honours constraints (rustls/webpki, Chromium,
//! Firefox, OpenSSL) rejects anything else it signs. A CA found in the data folder
//! is checked against the same rule before it is used. The CA is made once and kept in the data folder; leaf
//! certificates are issued at start, renewed well before they expire, and re-issued
//! when the zones' names change.

pub mod command;
pub(crate) mod limits;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration as StdDuration;

use anyhow::{Context, bail};
use limits::{Permitted, Subnet};
use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};
use tokio_rustls::rustls::{
    self, server::ClientHello, server::ResolvesServerCert, sign::CertifiedKey,
};

pub(crate) const CA_FILE: &str = "ca.pem";
pub(crate) const CA_KEY_FILE: &str = "ca-key.pem";
/// Short enough that a leaked leaf key is soon worthless, long enough that a
/// fixture never sees one expire; renewed when a third of its life is left.
const LEAF_LIFETIME: Duration = Duration::days(30);
const RENEW_BEFORE: Duration = Duration::days(10);

/// The loopback addresses the CA may vouch for (the DoH endpoint is reached by IP).
fn loopback() -> [IpAddr; 2] {
    [
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ]
}

/// The CA: its certificate (what clients trust) and its key (kept private).
pub(crate) struct Ca {
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// The DNS names this CA's name constraints permit.
    permitted: Vec<String>,
    /// Every permitted subtree, as `limits` checks them.
    limits: Permitted,
    path: PathBuf,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("path", &self.path)
            .field("permitted", &self.permitted)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// Loads the CA from `dir`, or makes one and saves it there. Either way it is
    /// limited to the website names among `site_hosts` (see `limits`): a CA on
    /// disk that could vouch for more is refused.
    pub(crate) fn load_or_create(dir: &Path, site_hosts: &[String]) -> anyhow::Result<Self> {
        let websites = limits::website_names(site_hosts);
        let cert_path = dir.join(CA_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        if cert_path.exists() || key_path.exists() {
            let cert_pem = std::fs::read_to_string(&cert_path).with_context(|| {
                format!("failed to read the CA certificate {}", cert_path.display())
            })?;
            let key_pem = std::fs::read_to_string(&key_path)
                .with_context(|| format!("failed to read the CA key {}", key_path.display()))?;
            let ca = Self::from_pem(&cert_pem, &key_pem, cert_path.clone())
                .with_context(|| format!("the CA in {} is unusable (remove {CA_FILE} and {CA_KEY_FILE} to make a new one, then trust it again)", dir.display()))?;
            if let Err(wide) = ca.limits.check(Some(&websites)) {
                bail!(
                    "refusing the CA in {}: {wide}, and onebox only vouches for the websites it serves ({}) and loopback; remove {CA_FILE} and {CA_KEY_FILE} to make a new one, then trust it again",
                    dir.display(),
                    describe(&websites)
                );
            }
            for zone in &websites {
                if !ca.permits(zone) {
                    tracing::warn!(
                        "the CA in {} may not vouch for {zone} (its name constraints allow {}): HTTPS for {zone} will not be trusted; remove {CA_FILE} and {CA_KEY_FILE} to make a new CA and trust it again",
                        dir.display(),
                        ca.permitted.join(", ")
                    );
                }
            }
            return Ok(ca);
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let (cert_pem, key_pem) = Self::generate(&websites)?;
        write_private(&key_path, &key_pem)?;
        std::fs::write(&cert_path, &cert_pem).with_context(|| {
            format!("failed to write the CA certificate {}", cert_path.display())
        })?;
        tracing::info!(
            "made a local CA limited to {} and loopback: {}",
            describe(&websites),
            cert_path.display()
        );
        Self::from_pem(&cert_pem, &key_pem, cert_path)
    }

    /// A fresh CA for `websites` in PEM form: (certificate, private key).
    fn generate(websites: &[String]) -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate().context("failed to generate the CA key")?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, "onebox");
        name.push(
            DnType::CommonName,
            format!("onebox local CA for {}", describe(websites)),
        );
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + Duration::days(3650);
        // Some DNS subtree must be there even with no website: without one, RFC
        // 5280 leaves DNS names unconstrained.
        let names = if websites.is_empty() {
            vec![limits::NO_NAME.to_string()]
        } else {
            websites.to_vec()
        };
        let mut permitted: Vec<GeneralSubtree> =
            names.into_iter().map(GeneralSubtree::DnsName).collect();
        permitted.extend(loopback().map(|ip| {
            GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(
                ip,
                if ip.is_ipv4() { 32 } else { 128 },
            ))
        }));
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        });
        let cert = params
            .self_signed(&key)
            .context("failed to sign the CA certificate")?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    fn from_pem(cert_pem: &str, key_pem: &str, path: PathBuf) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(key_pem).context("bad CA key")?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).context("bad CA certificate")?;
        let cert_der = pem_to_der(cert_pem)?;
        let limits = permitted_subtrees(&cert_der)?;
        Ok(Self {
            cert_der,
            issuer,
            permitted: limits.names.clone().unwrap_or_default(),
            limits,
            path,
        })
    }

    /// Where the CA certificate is: what `--cacert`, `SSL_CERT_FILE` and friends take.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    #[cfg(test)]
    pub(crate) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Whether the name constraints allow `name` (the zone itself or a name below it).
    pub(crate) fn permits(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.permitted
            .iter()
            .any(|zone| name == *zone || name.ends_with(&format!(".{zone}")))
    }

    /// A leaf certificate for `names` (and the loopback addresses when `with_ips`),
    /// signed by this CA, as a rustls key ready to serve.
    pub(crate) fn issue(&self, names: &[String], with_ips: bool) -> anyhow::Result<Leaf> {
        let key = KeyPair::generate().context("failed to generate a certificate key")?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        // A CN that is no host name when there is no name: OpenSSL checks a
        // host-like CN against the DNS constraints.
        dn.push(
            DnType::CommonName,
            names
                .first()
                .cloned()
                .unwrap_or_else(|| "onebox loopback".into()),
        );
        params.distinguished_name = dn;
        for name in names {
            params.subject_alt_names.push(SanType::DnsName(
                name.clone()
                    .try_into()
                    .with_context(|| format!("{name} cannot go in a certificate"))?,
            ));
        }
        if with_ips {
            params
                .subject_alt_names
                .extend(loopback().map(SanType::IpAddress));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + LEAF_LIFETIME;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("failed to sign a certificate")?;
        let der_key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let certified = CertifiedKey::from_der(
            vec![cert.der().clone(), self.cert_der.clone()],
            der_key,
            &rustls::crypto::ring::default_provider(),
        )
        .context("failed to load a fresh certificate")?;
        Ok(Leaf {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
            key: Arc::new(certified),
            renew_at: params.not_after - RENEW_BEFORE,
        })
    }
}

/// One served certificate.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
    renew_at: OffsetDateTime,
}

/// The certificates being served, chosen by SNI: the leaf for the zone the name
/// belongs to, or the loopback leaf when the client sent no name (an IP URL, like
/// the DoH endpoint `https://127.0.0.1:8443/dns-query`).
#[derive(Debug)]
pub(crate) struct Certificates {
    ca: Ca,
    zones: RwLock<Vec<String>>,
    leaves: RwLock<Vec<Leaf>>,
}

impl Certificates {
    /// Issues a leaf per zone (apex and every name below it) plus one for loopback.
    pub(crate) fn new(ca: Ca, zones: Vec<String>) -> anyhow::Result<Arc<Self>> {
        let leaves = issue_all(&ca, &zones)?;
        Ok(Arc::new(Self {
            ca,
            zones: RwLock::new(zones),
            leaves: RwLock::new(leaves),
        }))
    }

    pub(crate) fn ca(&self) -> &Ca {
        &self.ca
    }

    /// When the first served leaf expires, in Unix seconds (for monitoring: an
    /// alert fires when renewal has not happened in time).
    pub(crate) fn earliest_expiry(&self) -> Option<i64> {
        self.leaves
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|leaf| (leaf.renew_at + RENEW_BEFORE).unix_timestamp())
            .min()
    }

    /// Re-issues when a leaf nears its end or the zones changed. Returns whether it did.
    pub(crate) fn refresh(&self, zones: &[String]) -> anyhow::Result<bool> {
        let now = OffsetDateTime::now_utc();
        let same_zones = *self.zones.read().unwrap_or_else(|e| e.into_inner()) == zones;
        let fresh = self
            .leaves
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .all(|l| l.renew_at > now);
        if same_zones && fresh {
            return Ok(false);
        }
        let leaves = issue_all(&self.ca, zones)?;
        *self.leaves.write().unwrap_or_else(|e| e.into_inner()) = leaves;
        *self.zones.write().unwrap_or_else(|e| e.into_inner()) = zones.to_vec();
        tracing::info!("certificates issued for {}", zones.join(", "));
        Ok(true)
    }

    /// A rustls server configuration with these certificates and the given ALPN
    /// protocols: TLS 1.2 and 1.3 only, ring's safe default suites.
    pub(crate) fn server_config(
        self: &Arc<Self>,
        alpn: &[&[u8]],
    ) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("failed to set TLS versions")?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    #[cfg(test)]
    fn leaf_for(&self, sni: Option<&str>) -> Option<Leaf> {
        pick(&self.leaves.read().unwrap_or_else(|e| e.into_inner()), sni)
    }
}

fn issue_all(ca: &Ca, zones: &[String]) -> anyhow::Result<Vec<Leaf>> {
    let mut leaves = Vec::new();
    for zone in zones.iter().filter(|z| ca.permits(z)) {
        leaves.push(ca.issue(&[zone.clone(), format!("*.{zone}")], false)?);
    }
    // The loopback leaf also names the first zone, so a client that sends no SNI
    // but checks the apex name still gets a usable certificate.
    let mut names: Vec<String> = zones
        .iter()
        .filter(|z| ca.permits(z))
        .take(1)
        .flat_map(|z| [z.clone(), format!("*.{z}")])
        .collect();
    if names.is_empty() && ca.permits("localhost") {
        names.push("localhost".into());
    }
    let mut loopback_leaf = ca.issue(&names, true)?;
    loopback_leaf.names.clear();
    leaves.push(loopback_leaf);
    Ok(leaves)
}

fn pick(leaves: &[Leaf], sni: Option<&str>) -> Option<Leaf> {
    if let Some(sni) = sni {
        let sni = sni.trim_end_matches('.').to_ascii_lowercase();
        let by_zone = leaves.iter().find(|leaf| {
            leaf.names.iter().any(|n| match n.strip_prefix("*.") {
                Some(zone) => {
                    sni.ends_with(&format!(".{zone}"))
                        && !sni[..sni.len() - zone.len() - 1].contains('.')
                }
                None => sni == *n,
            })
        });
        if let Some(leaf) = by_zone {
            return Some(leaf.clone());
        }
    }
    leaves.iter().find(|leaf| leaf.names.is_empty()).cloned()
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let leaves = self.0.leaves.read().unwrap_or_else(|e| e.into_inner());
        pick(&leaves, hello.server_name()).map(|leaf| leaf.key)
    }
}

/// Renews certificates in the background until `shutdown`.
pub(crate) async fn renew_loop(
    certs: Arc<Certificates>,
    zones: impl Fn() -> Vec<String> + Send + 'static,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(StdDuration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                if let Err(e) = certs.refresh(&zones()) {
                    tracing::error!("certificate renewal failed: {e:#}");
                }
            }
        }
    }
}

fn pem_to_der(pem: &str) -> anyhow::Result<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("bad PEM certificate: {e}"))
}

/// What a CA certificate's name constraints permit: DNS names and IP subtrees.
fn permitted_subtrees(der: &CertificateDer<'_>) -> anyhow::Result<Permitted> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| anyhow::anyhow!("bad CA certificate: {e}"))?;
    let Some(constraints) = cert
        .name_constraints()
        .map_err(|e| anyhow::anyhow!("bad name constraints: {e}"))?
    else {
        bail!("the CA certificate has no name constraints: onebox only uses constrained CAs");
    };
    let mut permitted = Permitted::default();
    for subtree in constraints.value.permitted_subtrees.iter().flatten() {
        match &subtree.base {
            GeneralName::DNSName(name) => permitted
                .names
                .get_or_insert_default()
                .push(name.to_ascii_lowercase()),
            GeneralName::IPAddress(bytes) => {
                let subnet = Subnet::from_der(bytes)
                    .ok_or_else(|| anyhow::anyhow!("bad IP name constraint: {bytes:02x?}"))?;
                permitted.subnets.get_or_insert_default().push(subnet);
            }
            // Other name types (mail, URI, directory names) only narrow what a
            // TLS server certificate may carry.
            _ => {}
        }
    }
    Ok(permitted)
}

/// Reads the CA certificate at `path` and checks it is no wider than `websites`
/// (see [`limits::website_names`]) and loopback, or, with `None`, no wider than
/// any set of websites could make it: what `onebox ca print|install` do before
/// handing it to a trust store. Returns what it permits.
pub(crate) fn check_file(path: &Path, websites: Option<&[String]>) -> anyhow::Result<Permitted> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read {}", path.display()))?;
    let limits = permitted_subtrees(&pem_to_der(&pem)?)
        .with_context(|| format!("refusing the CA {}", path.display()))?;
    match limits.check(websites) {
        Ok(()) => Ok(limits),
        Err(wide) => bail!(
            "refusing the CA {}: {wide}, and onebox only vouches for the websites it serves and loopback; remove it and its key, and let `onebox serve` make a new one",
            path.display()
        ),
    }
}

/// `foobar.com, example.test`, or what an empty list means.
fn describe(websites: &[String]) -> String {
    if websites.is_empty() {
        "no website".to_string()
    } else {
        websites.join(", ")
    }
}

/// Writes a private key readable by its owner only.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::{ServerName, UnixTime};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("onebox-ca-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn verifier(ca: &Ca) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.cert_der().clone()).unwrap();
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn verify(ca: &Ca, leaf: &Leaf, name: &str) -> Result<(), rustls::Error> {
        let chain = &leaf.key.cert;
        verifier(ca)
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
    }

    #[test]
    fn ca_is_kept_and_constrained_to_the_zones() {
        let dir = temp_dir("keep");
        let ca = Ca::load_or_create(&dir, &["foobar.com".into()]).unwrap();
        assert_eq!(ca.permitted, ["foobar.com"]);
        assert!(ca.permits("www.foobar.com") && ca.permits("foobar.com."));
        assert!(!ca.permits("notfoobar.com") && !ca.permits("example.org"));
        let again = Ca::load_or_create(&dir, &["foobar.com".into()]).unwrap();
        assert_eq!(again.cert_der(), ca.cert_der(), "the CA survives restarts");
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join(CA_KEY_FILE))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_verifier_honouring_constraints_rejects_a_leaf_outside_the_zones() {
        let dir = temp_dir("verify");
        let ca = Ca::load_or_create(&dir, &["foobar.com".into()]).unwrap();
        let good = ca.issue(&["www.foobar.com".into()], true).unwrap();
        verify(&ca, &good, "www.foobar.com").unwrap();
        verify(&ca, &good, "127.0.0.1").unwrap();
        // The CA's key can sign anything; the constraint is what stops it counting.
        let evil = ca.issue(&["bank.example".into()], false).unwrap();
        let err = verify(&ca, &evil, "bank.example").unwrap_err();
        assert!(format!("{err:?}").contains("NameConstraint"), "{err:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn with_no_website_the_ca_permits_no_name_but_loopback_still_works() {
        let dir = temp_dir("none");
        // Only the root and a TLD: zones that delegate, no website.
        let zones: Vec<String> = vec!["".into(), "com".into()];
        let ca = Ca::load_or_create(&dir, &zones).unwrap();
        assert_eq!(ca.permitted, [limits::NO_NAME]);
        let certs = Certificates::new(ca, zones).unwrap();
        verify(certs.ca(), &certs.leaf_for(None).unwrap(), "127.0.0.1").unwrap();
        let evil = certs.ca().issue(&["www.google.com".into()], false).unwrap();
        let err = verify(certs.ca(), &evil, "www.google.com").unwrap_err();
        assert!(format!("{err:?}").contains("NameConstraint"), "{err:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_kept_ca_wider_than_the_websites_is_refused() {
        let dir = temp_dir("wide");
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = Ca::generate(&["foobar.com".into(), "google.com".into()]).unwrap();
        std::fs::write(dir.join(CA_FILE), cert).unwrap();
        write_private(&dir.join(CA_KEY_FILE), &key).unwrap();
        let err = Ca::load_or_create(&dir, &["foobar.com".into()]).unwrap_err();
        let said = format!("{err:#}");
        assert!(
            said.contains("google.com (not a website onebox serves)")
                && said.contains("remove ca.pem and ca-key.pem"),
            "{said}"
        );
        // The same CA is fine while google.com is one of the websites served.
        Ca::load_or_create(&dir, &["foobar.com".into(), "google.com".into()]).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn sni_picks_the_zone_leaf_and_no_sni_the_loopback_leaf() {
        let dir = temp_dir("sni");
        let ca = Ca::load_or_create(&dir, &["foobar.com".into()]).unwrap();
        let certs = Certificates::new(ca, vec!["foobar.com".into()]).unwrap();
        let zone_leaf = certs.leaf_for(Some("WWW.foobar.com")).unwrap();
        assert_eq!(zone_leaf.names, ["foobar.com", "*.foobar.com"]);
        assert!(certs.leaf_for(None).unwrap().names.is_empty());
        assert!(
            certs
                .leaf_for(Some("example.org"))
                .unwrap()
                .names
                .is_empty()
        );
        assert!(
            !certs.refresh(&["foobar.com".into()]).unwrap(),
            "nothing to renew yet"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
