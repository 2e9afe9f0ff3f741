//! PostgreSQL for the tests: a throwaway cluster ([`PgCluster`]) in a temp folder
//! on a free loopback port, fsync on, stopped with `pg_ctl stop -m immediate` on
//! drop; and the switch that runs the site suites against PostgreSQL instead of
//! redb ([`test_db`]): `ONEBOX_TEST_DB=postgres://USER@HOST:PORT` (a cluster
//! scripts/test.sh started) makes every `Onebox` get a database of its own there.
//!
//! `initdb` and `postgres` refuse to run as root, so under root the server runs
//! as the `postgres` system user (`runuser -u postgres --`), owning its folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{DEADLINE, TempDir, free_port, need, run_for};

/// The folder holding `pg_ctl`, `initdb`, `psql` (Debian keeps them per version,
/// off PATH): the one `onebox cluster` runs.
pub fn pg_bin() -> Option<PathBuf> {
    onebox::cluster::pg_bin()
}

/// Skips (or, under ONEBOX_TEST_STRICT=1, fails) a test when PostgreSQL's server
/// programs are not installed.
pub fn require_postgres() -> bool {
    need(
        pg_bin().is_some(),
        "PostgreSQL is not installed",
        "apt-get install postgresql",
    )
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A private PostgreSQL cluster. Dropping it stops the server (immediate mode:
/// no checkpoint, like a crash, which is all a throwaway cluster needs) and
/// removes its folder.
#[derive(Debug)]
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl PgCluster {
    /// initdb + start on a free loopback port; panics with the log on failure.
    pub fn start() -> Self {
        let cluster = Self::new("pg");
        cluster.run_as_owner(
            "initdb",
            &[
                "-D",
                &cluster.data_str(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-instructions",
            ],
        );
        // Replication to a standby (`replica`) needs WAL senders and a rule
        // allowing the replication connection; trust is fine on loopback.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(cluster.data().join("postgresql.conf"))
            .expect("open postgresql.conf");
        use std::io::Write;
        writeln!(
            conf,
            "fsync = on\nsynchronous_commit = on\nwal_level = replica\nmax_wal_senders = 4\nmax_connections = 200\nshared_buffers = 16MB"
        )
        .expect("write postgresql.conf");
        cluster.start_server();
        cluster
    }

    fn new(tag: &str) -> Self {
        let bin = pg_bin().expect("PostgreSQL is installed (check require_postgres first)");
        let dir = TempDir::new(tag);
        if is_root() {
            chown_postgres(dir.path());
        }
        PgCluster {
            dir,
            bin,
            port: free_port(),
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn data_str(&self) -> String {
        self.data().display().to_string()
    }

    /// Runs a PostgreSQL server program as the cluster's owner, bounded in time.
    fn run_as_owner(&self, program: &str, args: &[&str]) -> String {
        let path = self.bin.join(program);
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        command.args(args).current_dir(self.dir.path());
        let (status, stdout, stderr) = bounded(command, Duration::from_secs(60));
        assert!(
            status.success(),
            "{program} {args:?} failed:\n{stdout}\n{stderr}\n--- server log ---\n{}",
            self.log()
        );
        stdout
    }

    /// Starts (or restarts) the server and waits until it accepts connections.
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        self.run_as_owner(
            "pg_ctl",
            &[
                "-D",
                &self.data_str(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Turns TLS on with this certificate and key, and refuses every connection
    /// that is not TLS (`hostssl` only), then restarts the server.
    pub fn require_tls(&self, cert: &Path, key: &Path) {
        let data = self.data();
        std::fs::copy(cert, data.join("server.crt")).expect("copy the server certificate");
        std::fs::copy(key, data.join("server.key")).expect("copy the server key");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("chmod the key");
        if is_root() {
            chown_postgres(&data.join("server.crt"));
            chown_postgres(&data.join("server.key"));
        }
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        use std::io::Write;
        writeln!(
            conf,
            "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'"
        )
        .expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostssl replication all 127.0.0.1/32 trust\n",
        )
        .expect("write pg_hba.conf");
        self.run_as_owner(
            "pg_ctl",
            &["-D", &self.data_str(), "-m", "fast", "-w", "stop"],
        );
        self.start_server();
    }

    /// Stops the server at once (no checkpoint: like a crash).
    pub fn stop_server(&self) {
        self.run_as_owner(
            "pg_ctl",
            &["-D", &self.data_str(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Runs SQL through psql and returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql(&self.bin, &self.url(db), sql)
    }

    /// Creates an empty database and returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// A streaming replica of this cluster (`pg_basebackup -R`), started.
    pub fn replica(&self) -> PgCluster {
        let replica = Self::new("pg-replica");
        let port = self.port.to_string();
        replica.run_as_owner(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &replica.data_str(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        replica.start_server();
        replica
    }

    /// A streaming replica that every commit waits for: the primary names it in
    /// `synchronous_standby_names` (`'*'`: whichever standby streams), so with
    /// onebox's `synchronous_commit=remote_apply` an acknowledged write is
    /// already replayed on the replica. Returns once the primary reports it `sync`.
    pub fn synchronous_replica(&self) -> PgCluster {
        let replica = self.replica();
        self.psql(
            "postgres",
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
        );
        self.psql("postgres", "SELECT pg_reload_conf()");
        wait_until("the replica streams synchronously", || {
            self.psql("postgres", "SELECT sync_state FROM pg_stat_replication") == "sync"
        });
        replica
    }

    /// Makes a standby the primary.
    pub fn promote(&self) {
        self.run_as_owner("pg_ctl", &["-D", &self.data_str(), "-w", "promote"]);
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data().join("postmaster.pid").exists() {
            let path = self.bin.join("pg_ctl");
            let data = self.data_str();
            let mut command = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&path);
                c
            } else {
                Command::new(&path)
            };
            command.args(["-D", &data, "-m", "immediate", "-w", "stop"]);
            let _ = bounded(command, Duration::from_secs(30));
        }
    }
}

fn chown_postgres(path: &Path) {
    let status = Command::new("chown")
        .args(["postgres:postgres"])
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown postgres {}", path.display());
}

fn psql(bin: &Path, url: &str, sql: &str) -> String {
    let mut command = onebox::cluster::psql_command(bin, url, sql);
    command.stdin(Stdio::null());
    let (status, stdout, stderr) = bounded(command, Duration::from_secs(30));
    assert!(status.success(), "psql {sql:?} failed: {stderr}");
    stdout.trim().to_string()
}

/// [`run_for`] with stdin closed and both outputs captured.
fn bounded(mut command: Command, limit: Duration) -> (std::process::ExitStatus, String, String) {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run_for(command, limit)
}

/// The cluster the site suites run against, from `ONEBOX_TEST_DB`
/// (`postgres://USER@HOST:PORT`); `None` means redb, the default.
pub fn test_db() -> Option<String> {
    std::env::var("ONEBOX_TEST_DB")
        .ok()
        .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        .map(|url| url.trim_end_matches('/').to_string())
}

/// False (with a note) when the suite runs on PostgreSQL: for tests of redb's own
/// file (its lock, its format), which have no PostgreSQL counterpart. Not a skip
/// for a missing tool, so ONEBOX_TEST_STRICT does not turn it into a failure.
pub fn redb_only() -> bool {
    if test_db().is_none() {
        return true;
    }
    let current = std::thread::current();
    let test = current.name().unwrap_or("a test");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "not run on PostgreSQL: {test}: it tests redb's own file"
    );
    false
}

/// The engine name `Server-Timing` and the panel show for the backend under test.
pub fn db_name() -> &'static str {
    if test_db().is_some() {
        "PostgreSQL"
    } else {
        "redb"
    }
}

/// A database on the `ONEBOX_TEST_DB` cluster for one server: fresh for an
/// ephemeral server, or the same one for the same `--data` folder, so a test that
/// restarts onebox on its data finds its data again.
pub fn test_database(cluster: &str, data: Option<&Path>) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = match data {
        Some(dir) => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            dir.hash(&mut hasher);
            format!("onebox_d{:016x}", hasher.finish())
        }
        None => format!(
            "onebox_e{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
    };
    let bin = pg_bin().expect("ONEBOX_TEST_DB needs PostgreSQL's programs (psql)");
    let admin = format!("{cluster}/postgres");
    let exists = psql(
        &bin,
        &admin,
        &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
    );
    if exists.is_empty() {
        psql(&bin, &admin, &format!("CREATE DATABASE {name}"));
    }
    format!("{cluster}/{name}")
}

/// Polls `f` until it returns true; panics with `what` at the deadline.
pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
