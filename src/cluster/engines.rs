//! Finding the engines the cluster runs (HAProxy, Knot, NSD, PostgreSQL) before
//! anything starts, so a missing one is one clear message naming the Debian
//! package, not a half-started cluster.

use std::path::{Path, PathBuf};

/// The programs `cluster up` runs, found on this machine.
#[derive(Debug, Clone)]
pub(crate) struct Engines {
    pub(crate) haproxy: PathBuf,
    pub(crate) knotd: PathBuf,
    pub(crate) nsd: PathBuf,
    /// PostgreSQL's server programs (`postgres`, `initdb`, `pg_basebackup`,
    /// `pg_isready`, `psql`): Debian keeps them per version, off PATH.
    pub(crate) pg_bin: PathBuf,
}

/// Engines not found, each with the package that provides it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("missing engines for the cluster: {}; install with: apt-get install {}",
    .0.iter().map(|(program, _)| *program).collect::<Vec<_>>().join(", "),
    .0.iter().map(|(_, package)| *package).collect::<Vec<_>>().join(" "))]
pub(crate) struct Missing(pub(crate) Vec<(&'static str, &'static str)>);

impl Engines {
    /// Finds every engine, or names all the missing ones at once.
    pub(crate) fn find() -> Result<Self, Missing> {
        Self::find_with(&|program| on_path(program), pg_bin())
    }

    /// [`Engines::find`] with the lookups given, for the unit test.
    fn find_with(
        lookup: &dyn Fn(&str) -> Option<PathBuf>,
        pg_bin: Option<PathBuf>,
    ) -> Result<Self, Missing> {
        let mut missing = Vec::new();
        let mut need = |program: &'static str, package: &'static str| {
            let found = lookup(program);
            if found.is_none() {
                missing.push((program, package));
            }
            found.unwrap_or_default()
        };
        let haproxy = need("haproxy", "haproxy");
        let knotd = need("knotd", "knot");
        let nsd = need("nsd", "nsd");
        if pg_bin.is_none() {
            missing.push(("postgres", "postgresql"));
        }
        if !missing.is_empty() {
            return Err(Missing(missing));
        }
        Ok(Engines {
            haproxy,
            knotd,
            nsd,
            pg_bin: pg_bin.unwrap_or_default(),
        })
    }

    /// A PostgreSQL program by name.
    pub(crate) fn pg(&self, program: &str) -> PathBuf {
        self.pg_bin.join(program)
    }
}

/// `program` in PATH or in the sbin folders (daemons live there, and a non-root
/// PATH often lacks them).
fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The folder holding PostgreSQL's server programs: Debian keeps them per
/// version under /usr/lib/postgresql/NN/bin. The newest version wins.
pub fn pg_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// `psql` running one statement on `url`: no startup file, quiet, unaligned
/// and tuples-only output (just the values), the first error fatal.
pub fn psql_command(pg_bin: &Path, url: &str, sql: &str) -> std::process::Command {
    let mut command = std::process::Command::new(pg_bin.join("psql"));
    command.args([
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
        "-c",
        sql,
    ]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_missing_engine_is_named_with_its_package() {
        let only_nsd = |program: &str| (program == "nsd").then(|| PathBuf::from("/usr/sbin/nsd"));
        let err = Engines::find_with(&only_nsd, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "missing engines for the cluster: haproxy, knotd, postgres; install with: apt-get install haproxy knot postgresql"
        );
    }

    #[test]
    fn nothing_is_missing_when_every_engine_is_found() {
        let all = |program: &str| Some(PathBuf::from(format!("/usr/sbin/{program}")));
        let engines = Engines::find_with(&all, Some(PathBuf::from("/pg/bin"))).unwrap();
        assert_eq!(engines.knotd, PathBuf::from("/usr/sbin/knotd"));
        assert_eq!(engines.pg("psql"), PathBuf::from("/pg/bin/psql"));
    }
}
