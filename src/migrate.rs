//! `onebox db migrate --from A --to B`: copies every table from one backend to the
//! other (redb ⇄ PostgreSQL), then reads the target back and verifies row counts
//! and a SHA-256 checksum per table. pict-rs's migrate command is the model: the
//! copy is one transaction on the target, and a non-empty target is refused unless
//! `--force` says to replace it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::cli::DbMigrateArgs;
use crate::db::{Backend, Dump};

pub fn run(args: DbMigrateArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let result = runtime.block_on(migrate(&args));
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn migrate(args: &DbMigrateArgs) -> anyhow::Result<ExitCode> {
    let from = Backend::parse(&args.from).context("bad --from")?;
    let to = Backend::parse(&args.to).context("bad --to")?;
    if from == to {
        bail!("--from and --to name the same database");
    }
    let source = from.open().await.context("cannot open --from")?;
    let target = to.open().await.context("cannot open --to")?;
    let outcome = async {
        if !target.is_empty().await? && !args.force {
            bail!(
                "{} already has data: nothing was copied (add --force to replace it)",
                target.location()
            );
        }
        let dump = source.dump().await?;
        let want = summary(&dump);
        target.load(dump).await?;
        let got = summary(&target.dump().await?);
        println!(
            "copied {} ({}) to {} ({})",
            source.location(),
            source.backend(),
            target.location(),
            target.backend()
        );
        let mut ok = true;
        for ((table, count, sum), (_, got_count, got_sum)) in want.iter().zip(&got) {
            let verdict = if (count, sum) == (got_count, got_sum) {
                "ok"
            } else {
                ok = false;
                "MISMATCH"
            };
            println!(
                "{table:<9} {count:>8} rows  sha256 {sum}  target {got_count:>8} rows  sha256 {got_sum}  {verdict}"
            );
        }
        if !ok {
            bail!("the target does not match the source after the copy");
        }
        println!("verified: every table's count and checksum match");
        Ok(ExitCode::SUCCESS)
    }
    .await;
    source.close();
    target.close();
    outcome
}

/// (table, rows, SHA-256 of its rows in key order) for each table.
pub(crate) fn summary(dump: &Dump) -> Vec<(&'static str, usize, String)> {
    fn table<T>(
        name: &'static str,
        rows: &[T],
        encode: impl Fn(&T) -> Vec<String>,
    ) -> (&'static str, usize, String) {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for row in rows {
            // Each field is length-prefixed, so no two different rows encode alike.
            for field in encode(row) {
                ctx.update(&(field.len() as u64).to_le_bytes());
                ctx.update(field.as_bytes());
            }
        }
        (name, rows.len(), hex(ctx.finish().as_ref()))
    }
    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
    vec![
        table("users", &dump.users, |u| {
            vec![
                u.username.clone(),
                u.password_hash.clone(),
                u.created_at.to_string(),
            ]
        }),
        table("sessions", &dump.sessions, |(h, s)| {
            vec![
                hex(h),
                s.username.clone(),
                s.created_at.to_string(),
                s.expires_at.to_string(),
            ]
        }),
        table("posts", &dump.posts, |p| {
            vec![
                p.id.to_string(),
                p.author.clone(),
                p.body.clone(),
                p.created_at.to_string(),
            ]
        }),
        table("counters", &dump.counters, |(h, v)| {
            vec![h.clone(), v.to_string()]
        }),
    ]
}
