//! `onebox resolver`: the OS hook between a browser and onebox's DNS.
//!
//! Browsers ask the operating system's resolver, and the system resolver only
//! knows port 53 (glibc silently drops a port in resolv.conf). Each platform has its
//! own way to send *some* names to another server, on any port: a systemd-resolved
//! routing domain (`Domains=~foobar.com`), a macOS `/etc/resolver/<zone>` file, a
//! NetworkManager dnsmasq `server=/zone/addr#port` line. The hook routes only our
//! zones, never a whole TLD, so every other name resolves exactly as before.
//!
//! In the toy Internet (the zones include a root, `--zones internet`) the hook
//! sends the website zones (`foobar.com`) to onebox's recursive resolver instead
//! (`--resolver`, by default 127.0.0.53 on the DNS port, as `serve` picks it), so
//! a browser's lookup walks root → com → foobar.com. The root and `com` are never
//! routed: that would send every .com name on the machine to the toy.
//!
//! `print` (the default) shows the exact files and commands and changes nothing;
//! `install --yes` writes them with a marker line, and `uninstall --yes` removes
//! only files bearing that marker.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::{ResolverAction, ResolverArgs, ResolverPlatform};
use crate::dns::lookup::zone_names;

/// The first line of every file install writes; uninstall removes nothing else.
pub(crate) const MARKER: &str =
    "# written by onebox resolver install; remove with onebox resolver uninstall";
/// Directories install had to create are listed after the marker, so uninstall
/// can remove them too (when empty) and leave the machine as it found it.
const CREATED_DIR: &str = "# onebox created directory: ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Platform {
    SystemdResolved,
    Macos,
    NetworkManager,
}

impl Platform {
    const ALL: [Platform; 3] = [
        Platform::SystemdResolved,
        Platform::Macos,
        Platform::NetworkManager,
    ];

    fn name(self) -> &'static str {
        match self {
            Platform::SystemdResolved => "systemd-resolved",
            Platform::Macos => "macos",
            Platform::NetworkManager => "networkmanager",
        }
    }

    /// Whether this machine runs it, judged by what the platform itself leaves behind.
    fn present(self) -> Result<(), String> {
        match self {
            Platform::SystemdResolved => folder_present(
                "/run/systemd/resolve",
                "systemd-resolved is not running on this machine",
            ),
            Platform::Macos => {
                if cfg!(target_os = "macos") {
                    Ok(())
                } else {
                    Err("this machine is not macOS".into())
                }
            }
            Platform::NetworkManager => folder_present(
                "/etc/NetworkManager",
                "NetworkManager is not installed on this machine",
            ),
        }
    }

    /// Where uninstall looks for files it may have written.
    fn candidates(self) -> Candidates {
        match self {
            Platform::SystemdResolved => Candidates::File(SYSTEMD_FILE.into()),
            Platform::Macos => Candidates::EveryFileIn(MACOS_DIR.into()),
            Platform::NetworkManager => Candidates::File(NM_FILE.into()),
        }
    }
}

/// `Ok` when the folder `dir` that a platform leaves behind exists; else `absent`,
/// naming the folder that was looked for.
fn folder_present(dir: &str, absent: &str) -> Result<(), String> {
    if Path::new(dir).is_dir() {
        Ok(())
    } else {
        Err(format!("{absent} (no {dir})"))
    }
}

enum Candidates {
    File(PathBuf),
    EveryFileIn(PathBuf),
}

const SYSTEMD_FILE: &str = "/etc/systemd/resolved.conf.d/onebox.conf";
const MACOS_DIR: &str = "/etc/resolver";
const NM_FILE: &str = "/etc/NetworkManager/dnsmasq.d/onebox.conf";

/// One platform's hook: files to write, and the commands around them.
#[derive(Debug, Clone)]
pub(crate) struct Hook {
    pub(crate) platform: Platform,
    pub(crate) summary: String,
    pub(crate) files: Vec<HookFile>,
    /// Run after install (as root) so the resolver reads the files.
    pub(crate) apply: Vec<String>,
    /// Shows that the OS now asks onebox.
    pub(crate) check: String,
    pub(crate) notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookFile {
    /// The path on the real system, absolute.
    pub(crate) path: PathBuf,
    /// Exactly what install writes, marker line first.
    pub(crate) contents: String,
}

/// The hook for `platform` that sends `zones` to onebox at `dns`.
pub(crate) fn hook(platform: Platform, zones: &[String], dns: SocketAddr) -> Hook {
    let (ip, port) = (dns.ip(), dns.port());
    let list = zones.join(", ");
    let example = zones
        .first()
        .map(|z| format!("www.{z}"))
        .unwrap_or_default();
    match platform {
        Platform::SystemdResolved => {
            // `ip:port` in DNS= needs systemd 246 or later; IPv6 goes in brackets.
            let server = match ip {
                std::net::IpAddr::V4(_) => format!("{ip}:{port}"),
                std::net::IpAddr::V6(_) => format!("[{ip}]:{port}"),
            };
            // `~zone` is a routing-only domain: questions for the zone and names under
            // it go to this server, and this server gets no other questions.
            let domains: Vec<String> = zones.iter().map(|z| format!("~{z}")).collect();
            Hook {
                platform,
                summary: format!(
                    "systemd-resolved: send {list} (and names under it) to {dns}; every other name resolves as before"
                ),
                files: vec![HookFile {
                    path: SYSTEMD_FILE.into(),
                    contents: format!(
                        "{MARKER}\n[Resolve]\nDNS={server}\nDomains={}\n",
                        domains.join(" ")
                    ),
                }],
                apply: vec!["systemctl restart systemd-resolved".into()],
                check: format!("resolvectl query {example}"),
                notes: vec![
                    "DNS= with a port needs systemd 246 or later (systemctl --version)".into(),
                ],
            }
        }
        Platform::Macos => Hook {
            platform,
            summary: format!(
                "macOS: one /etc/resolver file per zone sends {list} to {dns}; every other name resolves as before"
            ),
            files: zones
                .iter()
                .map(|z| HookFile {
                    path: Path::new(MACOS_DIR).join(z),
                    contents: format!("{MARKER}\nnameserver {ip}\nport {port}\n"),
                })
                .collect(),
            // mDNSResponder watches /etc/resolver; flushing its cache drops old answers.
            apply: vec!["killall -HUP mDNSResponder".into()],
            check: format!("scutil --dns | grep -A3 '{}'", zones.first().map(String::as_str).unwrap_or_default()),
            notes: vec![
                "dig and nslookup read /etc/resolv.conf and ignore /etc/resolver: test with ping, curl or a browser".into(),
            ],
        },
        Platform::NetworkManager => {
            let lines: String = zones
                .iter()
                .map(|z| format!("server=/{z}/{ip}#{port}\n"))
                .collect();
            Hook {
                platform,
                summary: format!(
                    "NetworkManager (dnsmasq plugin): send {list} to {dns}; every other name resolves as before"
                ),
                files: vec![HookFile {
                    path: NM_FILE.into(),
                    contents: format!("{MARKER}\n{lines}"),
                }],
                apply: vec!["systemctl reload NetworkManager".into()],
                check: format!("getent hosts {example}"),
                notes: vec![
                    "needs NetworkManager's dnsmasq plugin: dns=dnsmasq under [main] in /etc/NetworkManager/NetworkManager.conf".into(),
                ],
            }
        }
    }
}

/// The platform this machine runs, if any we support.
fn detect() -> Option<Platform> {
    Platform::ALL.into_iter().find(|p| p.present().is_ok())
}

fn chosen(platform: Option<ResolverPlatform>) -> Option<Vec<Platform>> {
    platform.map(|p| match p {
        ResolverPlatform::SystemdResolved => vec![Platform::SystemdResolved],
        ResolverPlatform::Macos => vec![Platform::Macos],
        ResolverPlatform::Networkmanager => vec![Platform::NetworkManager],
        ResolverPlatform::All => Platform::ALL.to_vec(),
    })
}

/// `path` as seen under `--root`, or as is.
fn rooted(root: Option<&Path>, path: &Path) -> PathBuf {
    match root {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// The zones the OS sends to onebox, and the address it sends them to: `--dns`
/// for a plain zones folder; in the toy Internet, the website zones only (not the
/// root, not a TLD) and the recursive resolver.
fn routed(args: &ResolverArgs) -> anyhow::Result<(Vec<String>, SocketAddr)> {
    let names = zone_names(&args.zones)?;
    // zone_names gives the root as "" (its name without the trailing dot).
    if !names.iter().any(String::is_empty) {
        if let Some(resolver) = args.resolver {
            bail!(
                "--resolver {resolver}: the zones in {} include no root zone, so serve runs no resolver (try --zones internet)",
                args.zones.display()
            );
        }
        return Ok((names, args.dns));
    }
    let websites: Vec<String> = names.into_iter().filter(|n| n.contains('.')).collect();
    if websites.is_empty() {
        bail!(
            "the zones in {} have a root and TLDs but no website zone to route",
            args.zones.display()
        );
    }
    let resolver = args.resolver.unwrap_or(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)),
        args.dns.port(),
    ));
    if resolver.ip().is_unspecified() || resolver.port() == 0 {
        bail!("--resolver {resolver} is not an address a resolver can send questions to");
    }
    Ok((websites, resolver))
}

pub fn run(args: ResolverArgs) -> anyhow::Result<ExitCode> {
    let action = args.action.unwrap_or(ResolverAction::Print);
    let root = args.root.as_deref();
    if args.dns.ip().is_unspecified() || args.dns.port() == 0 {
        // 0.0.0.0 and port 0 are for binding; a resolver needs where onebox answers.
        bail!(
            "--dns {} is not an address a resolver can send questions to: give the \"dns\" address from serve's ready line, e.g. --dns 127.0.0.1:1053",
            args.dns
        );
    }
    match action {
        ResolverAction::Print => {
            let (zones, to) = routed(&args)?;
            let (platforms, note) = match chosen(args.platform) {
                Some(p) => (p, None),
                None => match detect() {
                    Some(p) => (vec![p], None),
                    None => (
                        Platform::ALL.to_vec(),
                        Some(
                            "# no supported resolver found on this machine (systemd-resolved, macOS, NetworkManager): showing each\n\n",
                        ),
                    ),
                },
            };
            let mut same = String::new();
            if args.zones != Path::new("zones") {
                let _ = write!(same, " --zones {}", args.zones.display());
            }
            if args.dns.to_string() != "127.0.0.1:1053" {
                let _ = write!(same, " --dns {}", args.dns);
            }
            if let Some(resolver) = args.resolver {
                let _ = write!(same, " --resolver {resolver}");
            }
            let mut out = note.unwrap_or_default().to_string();
            for (i, platform) in platforms.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(&print(&hook(*platform, &zones, to), root, &same));
            }
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        ResolverAction::Install => {
            if !args.yes {
                bail!(
                    "install changes system files: see them with `onebox resolver print`, then run `onebox resolver install --yes`"
                );
            }
            let (zones, to) = routed(&args)?;
            let platforms = match chosen(args.platform) {
                Some(p) if p.len() > 1 && root.is_none() => bail!(
                    "--platform all installs hooks for three different systems: choose one, or use --root DIR to try them in a folder"
                ),
                Some(p) => p,
                None => vec![detect().context(
                    "no supported resolver found on this machine (systemd-resolved, macOS, NetworkManager): see `onebox resolver print --platform all` for the files to adapt",
                )?],
            };
            if root.is_none() {
                for platform in &platforms {
                    if let Err(why) = platform.present() {
                        bail!("{why}: nothing installed");
                    }
                }
            }
            let hooks: Vec<Hook> = platforms.iter().map(|p| hook(*p, &zones, to)).collect();
            let written = install(&hooks, root)?;
            for path in &written {
                println!("wrote {}", path.display());
            }
            for hook in &hooks {
                for cmd in &hook.apply {
                    println!("now apply it ({}): sudo {cmd}", hook.platform.name());
                }
                println!("check: {}", hook.check);
            }
            println!("undo: onebox resolver uninstall --yes{}", root_flag(root));
            Ok(ExitCode::SUCCESS)
        }
        ResolverAction::Uninstall => {
            if !args.yes {
                bail!(
                    "uninstall changes system files: run `onebox resolver uninstall --yes` to remove the files onebox wrote"
                );
            }
            // Without --platform, look everywhere: only marked files are removed.
            let platforms = chosen(args.platform).unwrap_or_else(|| Platform::ALL.to_vec());
            let report = uninstall(&platforms, root)?;
            for path in &report.removed {
                println!("removed {}", path.display());
            }
            for path in &report.kept {
                println!("kept {}: not written by onebox", path.display());
            }
            if report.removed.is_empty() {
                println!("nothing to remove: no file written by onebox resolver install was found");
            } else {
                for platform in &report.platforms {
                    for cmd in &hook(*platform, &[], args.dns).apply {
                        println!("now apply it ({}): sudo {cmd}", platform.name());
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn root_flag(root: Option<&Path>) -> String {
    root.map(|r| format!(" --root {}", r.display()))
        .unwrap_or_default()
}

/// The hook as a shell script: running it does what `install` does. `same` holds
/// the flags (`--zones`, `--dns`) the install line must repeat to write the same files.
pub(crate) fn print(hook: &Hook, root: Option<&Path>, same: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}", hook.summary);
    for file in &hook.files {
        let path = rooted(root, &file.path);
        if let Some(dir) = path.parent() {
            let _ = writeln!(out, "sudo mkdir -p {}", dir.display());
        }
        let _ = writeln!(out, "sudo tee {} > /dev/null <<'EOF'", path.display());
        out.push_str(&file.contents);
        out.push_str("EOF\n");
    }
    for cmd in &hook.apply {
        let _ = writeln!(out, "sudo {cmd}");
    }
    let _ = writeln!(out, "# check: {}", hook.check);
    for note in &hook.notes {
        let _ = writeln!(out, "# note: {note}");
    }
    let _ = writeln!(
        out,
        "# or let onebox do it: sudo onebox resolver install --platform {}{same} --yes{}",
        hook.platform.name(),
        root_flag(root)
    );
    let _ = writeln!(
        out,
        "# undo: sudo onebox resolver uninstall --platform {} --yes{}",
        hook.platform.name(),
        root_flag(root)
    );
    out
}

fn bears_marker(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.lines().next() == Some(MARKER))
}

/// Writes every hook's files, or none: all paths are checked before the first write.
/// Returns the paths written.
pub(crate) fn install(hooks: &[Hook], root: Option<&Path>) -> anyhow::Result<Vec<PathBuf>> {
    let files: Vec<(PathBuf, &HookFile)> = hooks
        .iter()
        .flat_map(|h| h.files.iter())
        .map(|f| (rooted(root, &f.path), f))
        .collect();
    for (path, _) in &files {
        if path.exists() && !bears_marker(path) {
            bail!(
                "refusing to overwrite {}: it was not written by onebox (move it away, or merge the lines from `onebox resolver print` into it by hand)",
                path.display()
            );
        }
    }
    let mut written = Vec::new();
    for (path, file) in files {
        let dir = path.parent().context("a hook file has no folder")?;
        // Note each directory created, outermost first, so uninstall can undo it.
        let mut missing = Vec::new();
        let mut probe = dir;
        while !probe.exists() {
            missing.push(probe.to_path_buf());
            match probe.parent() {
                Some(parent) => probe = parent,
                None => break,
            }
        }
        missing.reverse();
        let mut created: Vec<PathBuf> = missing.iter().map(|d| unrooted(root, d)).collect();
        // Reinstalling over our own file keeps its notes: those folders are still ours.
        if bears_marker(&path) {
            created.extend(created_dirs(
                &std::fs::read_to_string(&path).unwrap_or_default(),
            ));
        }
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let mut contents = file.contents.clone();
        if !created.is_empty() {
            // Right after the marker, so the file still starts with it.
            let listed: String = created
                .iter()
                .map(|d| format!("{CREATED_DIR}{}\n", d.display()))
                .collect();
            contents = contents.replacen(&format!("{MARKER}\n"), &format!("{MARKER}\n{listed}"), 1);
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("failed to write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The folders a file written by install says it created.
fn created_dirs(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.strip_prefix(CREATED_DIR))
        .map(PathBuf::from)
        .collect()
}

/// `path` with the `--root` prefix taken off: how it looks on the real system.
fn unrooted(root: Option<&Path>, path: &Path) -> PathBuf {
    match root.and_then(|r| path.strip_prefix(r).ok()) {
        Some(rest) => Path::new("/").join(rest),
        None => path.to_path_buf(),
    }
}

#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) removed: Vec<PathBuf>,
    /// Files where onebox would write, but not written by it: left alone.
    pub(crate) kept: Vec<PathBuf>,
    pub(crate) platforms: Vec<Platform>,
}

/// Removes the files install wrote for `platforms` (and the directories it created,
/// once empty). Files without the marker are reported and left alone.
pub(crate) fn uninstall(platforms: &[Platform], root: Option<&Path>) -> anyhow::Result<Removed> {
    let mut report = Removed::default();
    let mut created: Vec<PathBuf> = Vec::new();
    for platform in platforms {
        let paths: Vec<PathBuf> = match platform.candidates() {
            Candidates::File(path) => vec![rooted(root, &path)],
            Candidates::EveryFileIn(dir) => match std::fs::read_dir(rooted(root, &dir)) {
                Ok(entries) => {
                    let mut paths: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .collect();
                    paths.sort();
                    paths
                }
                Err(_) => Vec::new(),
            },
        };
        let mut any = false;
        for path in paths {
            if !path.exists() {
                continue;
            }
            if !bears_marker(&path) {
                // In /etc/resolver other files are someone else's business; a file
                // at our own fixed path is worth a mention.
                if matches!(platform.candidates(), Candidates::File(_)) {
                    report.kept.push(path);
                }
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            std::fs::remove_file(&path)
                .with_context(|| format!("failed to remove {}", path.display()))?;
            created.extend(created_dirs(&text).iter().map(|d| rooted(root, d)));
            report.removed.push(path);
            any = true;
        }
        if any {
            report.platforms.push(*platform);
        }
    }
    // Folders last, deepest first, once every file is gone. One someone else has
    // since put files in is not empty, so it stays.
    created.sort();
    created.dedup();
    created.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in created {
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<String> {
        vec!["foobar.com".into(), "example.test".into()]
    }

    #[test]
    fn each_platform_routes_only_our_zones() {
        let dns: SocketAddr = "127.0.0.1:1053".parse().unwrap();
        let sd = hook(Platform::SystemdResolved, &zones(), dns);
        assert_eq!(
            sd.files[0].contents,
            format!("{MARKER}\n[Resolve]\nDNS=127.0.0.1:1053\nDomains=~foobar.com ~example.test\n")
        );
        let mac = hook(Platform::Macos, &zones(), dns);
        assert_eq!(mac.files.len(), 2);
        assert_eq!(mac.files[1].path, Path::new("/etc/resolver/example.test"));
        assert_eq!(
            mac.files[0].contents,
            format!("{MARKER}\nnameserver 127.0.0.1\nport 1053\n")
        );
        let nm = hook(Platform::NetworkManager, &zones(), dns);
        assert_eq!(
            nm.files[0].contents,
            format!(
                "{MARKER}\nserver=/foobar.com/127.0.0.1#1053\nserver=/example.test/127.0.0.1#1053\n"
            )
        );
    }

    #[test]
    fn ipv6_server_syntax() {
        let dns: SocketAddr = "[::1]:5353".parse().unwrap();
        let sd = hook(Platform::SystemdResolved, &zones(), dns);
        assert!(sd.files[0].contents.contains("\nDNS=[::1]:5353\n"));
        let nm = hook(Platform::NetworkManager, &zones(), dns);
        assert!(
            nm.files[0]
                .contents
                .contains("server=/foobar.com/::1#5353\n")
        );
    }

    #[test]
    fn rooted_paths() {
        let root = Path::new("/tmp/x");
        let p = rooted(Some(root), Path::new("/etc/resolver/foobar.com"));
        assert_eq!(p, Path::new("/tmp/x/etc/resolver/foobar.com"));
        assert_eq!(
            unrooted(Some(root), &p),
            Path::new("/etc/resolver/foobar.com")
        );
    }
}
