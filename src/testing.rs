//! A fixture for Rust tests: a real onebox on loopback that stops on drop, and
//! calls that change its records while it runs.
//!
//! It runs the `onebox` binary (from `ONEBOX_BIN`, else `onebox` on `PATH`) with
//! `serve --ephemeral` on port 0, reads the ready line for the addresses, and
//! changes records through the fixture API (`/_onebox/api/records`) with the
//! admin token: the same path as DNS UPDATE, so what a test sets is what any
//! resolver sees.
//!
//! ```no_run
//! let onebox = onebox::testing::Onebox::start()?;
//! let serial = onebox.add_a("api.foobar.com", "192.0.2.10".parse()?)?;
//! onebox.add_txt("_acme-challenge.foobar.com", "token")?;
//! println!("ask {} for api.foobar.com (serial {serial})", onebox.dns());
//! # Ok::<(), anyhow::Error>(())
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// A running onebox; dropping it kills the process.
#[derive(Debug)]
pub struct Onebox {
    child: Child,
    dns: SocketAddr,
    http: SocketAddr,
    token: String,
    host: String,
}

impl Onebox {
    /// Starts an ephemeral onebox (built-in zone, or `./zones` if present) on
    /// free loopback ports and waits for its ready line.
    pub fn start() -> anyhow::Result<Self> {
        let program = std::env::var_os("ONEBOX_BIN").unwrap_or_else(|| "onebox".into());
        Self::start_binary(program)
    }

    /// [`Onebox::start`] with this `onebox` binary.
    pub fn start_binary(program: impl AsRef<std::ffi::OsStr>) -> anyhow::Result<Self> {
        let program = program.as_ref();
        let mut child = Command::new(program)
            .args([
                "serve",
                "--ephemeral",
                "--dns",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", program.to_string_lossy()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let ready: serde_json::Value = match read {
            Ok(n) if n > 0 => serde_json::from_str(&line).context("the ready line is not JSON")?,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("onebox exited before its ready line");
            }
        };
        let field = |key: &str| -> anyhow::Result<String> {
            ready[key]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("the ready line has no {key}"))
        };
        let token_file = field("admin_token_file")?;
        let token = std::fs::read_to_string(&token_file)
            .with_context(|| format!("cannot read {token_file}"))?
            .trim()
            .to_string();
        let zone = ready["zones"][0]
            .as_str()
            .unwrap_or("foobar.com")
            .to_string();
        Ok(Self {
            dns: field("dns")?.parse()?,
            http: field("http")?.parse()?,
            token,
            host: zone,
            child,
        })
    }

    /// Where to send DNS queries (UDP and TCP).
    pub fn dns(&self) -> SocketAddr {
        self.dns
    }

    /// The web server's address.
    pub fn http(&self) -> SocketAddr {
        self.http
    }

    /// Adds an A (or, for an IPv6 address, AAAA) record; returns the new serial.
    pub fn add_a(&self, name: &str, ip: IpAddr) -> anyhow::Result<u64> {
        let rtype = if ip.is_ipv4() { "A" } else { "AAAA" };
        self.change("POST", name, rtype, &ip.to_string())
    }

    /// Adds a TXT record (an ACME DNS-01 challenge, say); returns the new serial.
    pub fn add_txt(&self, name: &str, text: &str) -> anyhow::Result<u64> {
        self.change("POST", name, "TXT", text)
    }

    /// Adds a CNAME record; returns the new serial.
    pub fn add_cname(&self, name: &str, target: &str) -> anyhow::Result<u64> {
        self.change("POST", name, "CNAME", target)
    }

    /// Deletes one record (type and value as added); returns the new serial.
    pub fn delete(&self, name: &str, rtype: &str, value: &str) -> anyhow::Result<u64> {
        self.change("DELETE", name, rtype, value)
    }

    fn change(&self, method: &str, name: &str, rtype: &str, value: &str) -> anyhow::Result<u64> {
        let body =
            serde_json::json!({"name": name, "type": rtype, "value": value, "ttl": 60}).to_string();
        let mut stream = TcpStream::connect_timeout(&self.http, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} /_onebox/api/records HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.host,
            self.token,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response.split_whitespace().nth(1).unwrap_or("");
        let json = response.split("\r\n\r\n").nth(1).unwrap_or("");
        if status != "200" {
            bail!("{method} {name} {rtype}: HTTP {status}: {json}");
        }
        let value: serde_json::Value = serde_json::from_str(json).context("not JSON")?;
        value["serial"].as_u64().context("no serial in the answer")
    }
}

impl Drop for Onebox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
