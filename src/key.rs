//! The commands around changing records while onebox runs: `onebox key print`
//! (the TSIG key that DNS UPDATE clients sign with, for `nsupdate -k`,
//! `knsupdate` and scripts), `onebox zone export` (a zone as served) and
//! `onebox zone log` (who changed it).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{KeyAction, KeyArgs, ZoneAction, ZoneArgs};
use crate::dns::tsig::TsigKey;

/// The file in the data folder that holds the fixture API's admin token.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Loads the admin token in `dir`, making it (owner-only, 0600) on first use: a
/// random 256-bit value in hex, sent as `Authorization: Bearer TOKEN`. `durable`
/// flushes a new file to disk before it is used: a token in a folder that outlives
/// the process must survive a crash; one in `--ephemeral`'s temporary folder, gone
/// at exit, need not wait for the disk (that wait was a quarter of the start time).
pub(crate) fn admin_token(
    dir: &std::path::Path,
    durable: bool,
) -> anyhow::Result<(String, std::path::PathBuf)> {
    use crate::private_file::{Secret, create_or_read};
    let path = dir.join(ADMIN_TOKEN_FILE);
    let token: String = rand::random::<[u8; 32]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let found = create_or_read(&path, format!("{token}\n").as_bytes(), durable)
        .with_context(|| format!("cannot create or read {}", path.display()))?;
    let token = match found {
        Secret::Created => token,
        Secret::Existing(text) => text.trim().to_string(),
    };
    if token.is_empty() {
        anyhow::bail!("{} is empty: delete it to make a new token", path.display());
    }
    Ok((token, path))
}

pub fn run(args: KeyArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        KeyAction::Print {
            json: _,
            admin: true,
        } => {
            std::fs::create_dir_all(&args.data)
                .with_context(|| format!("cannot create {}", args.data.display()))?;
            let (token, _) = admin_token(&args.data, true)?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{token}")?;
            stdout.flush()?;
        }
        KeyAction::Print { json, admin: false } => {
            // The same file the server makes on first start: printing before the
            // first start makes it, so the two can never disagree.
            std::fs::create_dir_all(&args.data)
                .with_context(|| format!("cannot create {}", args.data.display()))?;
            let (key, _) = TsigKey::load_or_create(&args.data, true)?;
            let text = if json {
                let mut line = serde_json::json!({
                    "name": key.name,
                    "algorithm": "hmac-sha256",
                    "secret": key.secret_base64(),
                })
                .to_string();
                line.push('\n');
                line
            } else {
                key.to_bind()
            };
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn zone(args: ZoneArgs) -> anyhow::Result<ExitCode> {
    let text = match args.action {
        ZoneAction::Export { zone, data, zones } => {
            crate::dns::journal::export(&zone, &zones, &data)?
        }
        ZoneAction::Log { zone, data, json } => crate::dns::journal::log(&zone, &data, json)?,
    };
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}
