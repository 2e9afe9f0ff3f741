//! The commands around changing records while onebox runs: `onebox key print`
//! (the TSIG key that DNS UPDATE clients sign with, for `nsupdate -k`,
//! `knsupdate` and scripts) and `onebox zone export` (a zone as served).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{KeyAction, KeyArgs, ZoneAction, ZoneArgs};
use crate::dns::tsig::TsigKey;

pub fn run(args: KeyArgs) -> anyhow::Result<ExitCode> {
    match args.action {
        KeyAction::Print { json } => {
            // The same file the server makes on first start: printing before the
            // first start makes it, so the two can never disagree.
            std::fs::create_dir_all(&args.data)
                .with_context(|| format!("cannot create {}", args.data.display()))?;
            let (key, _) = TsigKey::load_or_create(&args.data)?;
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
    match args.action {
        ZoneAction::Export { zone, data, zones } => {
            let text = crate::dns::journal::export(&zone, &zones, &data)?;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
