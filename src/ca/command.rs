//! `onebox ca path|print|install|uninstall`: find the local CA, show how to use it,
//! and add it to (or remove it from) the trust stores, only when asked to.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

use crate::cli::{CaAction, CaArgs};

/// The nickname in NSS databases and the file name in the system store, so
/// uninstall removes exactly what install added.
const NICKNAME: &str = "onebox local CA";
const SYSTEM_FILE: &str = "onebox-local-ca.crt";

pub fn run(args: CaArgs) -> anyhow::Result<ExitCode> {
    let path = args.data.join(super::CA_FILE);
    if !path.exists() {
        bail!(
            "no CA in {} yet: `onebox serve --data {}` makes one on its first start",
            args.data.display(),
            args.data.display()
        );
    }
    let path = path.canonicalize().unwrap_or(path);
    let action = args.action.unwrap_or(CaAction::Path);
    // Printing or installing is how a CA comes to be trusted: refuse one that
    // could vouch for more than websites and loopback (a hand-made or tampered
    // ca.pem), checked against the website names of the same zones `serve`
    // reads (the built-in zone when the folder does not exist, as for `serve`).
    // `path` only says where the file is, so it checks nothing.
    let permitted = match action {
        CaAction::Print | CaAction::Install { .. } => {
            let websites = crate::dns::Zones::load(&args.zones, false)
                .with_context(|| format!("failed to read the zones in {}", args.zones.display()))?
                .site_hosts();
            Some(super::check_file(&path, Some(&websites))?)
        }
        _ => None,
    };
    match action {
        CaAction::Path => println!("{}", path.display()),
        CaAction::Print => {
            let pem = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            print!("{}", usage(&path));
            if let Some(permitted) = permitted {
                println!("# It may vouch for: {permitted}");
            }
            print!("{pem}");
        }
        CaAction::Install { yes, root } => {
            let steps = install_steps(&path, root.as_deref());
            if !yes {
                println!("onebox ca install changes what this machine trusts. It would:");
                for step in &steps {
                    println!("  {}", step.describe());
                }
                println!("Run `onebox ca install --yes` to do it.");
                return Ok(ExitCode::from(2));
            }
            return apply(&steps);
        }
        CaAction::Uninstall { root } => return apply(&uninstall_steps(root.as_deref())),
    }
    Ok(ExitCode::SUCCESS)
}

/// How to point common clients at the CA.
fn usage(path: &Path) -> String {
    let p = path.display();
    format!(
        "# onebox local CA: it can vouch only for the websites onebox serves and for loopback\n\
         # (X.509 name constraints), so trusting it cannot expose any other site.\n\
         #   curl --cacert {p} https://www.foobar.com:8443/\n\
         #   onebox visit --cacert {p} https://www.foobar.com:8443/\n\
         #   SSL_CERT_FILE={p}           (OpenSSL-based tools, Ruby, Rust native-tls)\n\
         #   REQUESTS_CA_BUNDLE={p}      (Python requests)\n\
         #   NODE_EXTRA_CA_CERTS={p}     (Node.js)\n\
         #   onebox ca install --yes     (system store and the NSS stores of Chromium and Firefox)\n"
    )
}

#[derive(Debug)]
enum Step {
    Copy {
        from: PathBuf,
        to: PathBuf,
    },
    Remove(PathBuf),
    Run(Vec<String>),
    /// Something we cannot do here: the exact command for the user.
    Tell(String),
}

impl Step {
    fn describe(&self) -> String {
        match self {
            Step::Copy { from, to } => format!("copy {} to {}", from.display(), to.display()),
            Step::Remove(path) => format!("remove {}", path.display()),
            Step::Run(argv) => format!("run: {}", argv.join(" ")),
            Step::Tell(text) => format!("(by hand) {text}"),
        }
    }
}

fn system_dir(root: Option<&Path>) -> PathBuf {
    let base = root.map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
    base.join("usr/local/share/ca-certificates")
}

/// NSS databases: Chromium's shared one and each Firefox profile's.
fn nss_databases() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return Vec::new();
    };
    let mut dbs = vec![home.join(".pki/nssdb")];
    if let Ok(profiles) = std::fs::read_dir(home.join(".mozilla/firefox")) {
        dbs.extend(
            profiles
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join("cert9.db").exists()),
        );
    }
    dbs
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One `certutil` command line against the NSS database `db` (the `sql:` prefix
/// picks the cert9.db format Chromium and Firefox use).
fn certutil(db: &Path, args: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "certutil".to_string(),
        "-d".into(),
        format!("sql:{}", db.display()),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

fn install_steps(ca: &Path, root: Option<&Path>) -> Vec<Step> {
    let mut steps = Vec::new();
    let dir = system_dir(root);
    if dir.parent().is_some_and(Path::exists) {
        steps.push(Step::Copy {
            from: ca.to_path_buf(),
            to: dir.join(SYSTEM_FILE),
        });
        if root.is_none() {
            steps.push(if have("update-ca-certificates") {
                Step::Run(vec!["update-ca-certificates".into()])
            } else {
                Step::Tell("update-ca-certificates (from the ca-certificates package)".into())
            });
        }
    } else {
        steps.push(Step::Tell(format!(
            "add {} to your system's trust store (no {} here)",
            ca.display(),
            dir.display()
        )));
    }
    if root.is_none() {
        let ca = ca.display().to_string();
        for db in nss_databases() {
            // "C,," trusts it to issue server certificates only (not mail or code).
            let argv = certutil(&db, &["-A", "-t", "C,,", "-n", NICKNAME, "-i", &ca]);
            if have("certutil") {
                if !db.exists() {
                    steps.push(Step::Run(certutil(&db, &["-N", "--empty-password"])));
                }
                steps.push(Step::Run(argv));
            } else {
                steps.push(Step::Tell(format!(
                    "apt-get install libnss3-tools, then: {}",
                    argv.join(" ")
                )));
            }
        }
    }
    steps
}

fn uninstall_steps(root: Option<&Path>) -> Vec<Step> {
    let mut steps = Vec::new();
    let file = system_dir(root).join(SYSTEM_FILE);
    if file.exists() {
        steps.push(Step::Remove(file));
        if root.is_none() && have("update-ca-certificates") {
            steps.push(Step::Run(vec![
                "update-ca-certificates".into(),
                "--fresh".into(),
            ]));
        }
    }
    if root.is_none() && have("certutil") {
        for db in nss_databases().into_iter().filter(|db| db.exists()) {
            let listed = certutil(&db, &["-L", "-n", NICKNAME]);
            let listed = Command::new(&listed[0])
                .args(&listed[1..])
                .output()
                .is_ok_and(|o| o.status.success());
            if listed {
                steps.push(Step::Run(certutil(&db, &["-D", "-n", NICKNAME])));
            }
        }
    }
    steps
}

fn apply(steps: &[Step]) -> anyhow::Result<ExitCode> {
    let mut by_hand = false;
    if steps.is_empty() {
        println!("nothing to do: the onebox CA is not installed");
    }
    for step in steps {
        match step {
            Step::Copy { from, to } => {
                if let Some(dir) = to.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("failed to create {}", dir.display()))?;
                }
                std::fs::copy(from, to)
                    .with_context(|| format!("failed to copy the CA to {}", to.display()))?;
            }
            Step::Remove(path) => {
                std::fs::remove_file(path)
                    .with_context(|| format!("failed to remove {}", path.display()))?;
            }
            Step::Run(argv) => {
                let status = Command::new(&argv[0])
                    .args(&argv[1..])
                    .status()
                    .with_context(|| format!("failed to run {}", argv[0]))?;
                if !status.success() {
                    bail!("`{}` failed ({status})", argv.join(" "));
                }
            }
            Step::Tell(_) => by_hand = true,
        }
        println!("{}", step.describe());
    }
    Ok(if by_hand {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}
