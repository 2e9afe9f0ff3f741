//! The control channel: how `onebox maintenance on|off` reaches the running server.
//!
//! A Unix socket in the data folder (`onebox.sock`), readable only by its owner,
//! speaking one line per command. It exists to make the second weakness of a
//! one-server design visible: to change the server you must take the site down.
//! In maintenance the web server answers 503 with `Retry-After` while DNS keeps
//! answering, so `onebox visit` shows exactly which box is down.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub(crate) const SOCKET_FILE: &str = "onebox.sock";

/// Whether the site is down for maintenance. Shared by the control channel (which
/// sets it) and the web server (which reads it on every request).
#[derive(Debug, Clone, Default)]
pub(crate) struct Maintenance(Arc<AtomicBool>);

impl Maintenance {
    pub(crate) fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }
}

/// Binds the control socket in `dir`, replacing a stale one left by a crash (the
/// data folder's lock already guarantees no other onebox is using it).
pub(crate) fn bind(dir: &Path) -> anyhow::Result<(UnixListener, PathBuf)> {
    let path = dir.join(SOCKET_FILE);
    if path.exists() {
        std::fs::remove_file(&path)
            .with_context(|| format!("failed to remove the stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("failed to bind the control socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("failed to restrict {}", path.display()))?;
    Ok((listener, path))
}

/// Answers control commands until `shutdown`.
pub(crate) async fn serve(
    listener: UnixListener,
    maintenance: Maintenance,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("control socket accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let maintenance = maintenance.clone();
        tokio::spawn(async move {
            let (reader, mut writer) = stream.into_split();
            let mut line = String::new();
            let read = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                BufReader::new(reader).read_line(&mut line),
            )
            .await;
            let reply = match read {
                Ok(Ok(_)) => execute(line.trim(), &maintenance),
                _ => return,
            };
            let _ = writer.write_all(format!("{reply}\n").as_bytes()).await;
        });
    }
}

fn execute(command: &str, maintenance: &Maintenance) -> String {
    match command {
        "maintenance on" => {
            maintenance.set(true);
            tracing::warn!("maintenance on: the site answers 503, DNS keeps answering");
            "ok: maintenance on".into()
        }
        "maintenance off" => {
            maintenance.set(false);
            tracing::info!("maintenance off: the site is back");
            "ok: maintenance off".into()
        }
        "maintenance status" | "status" => {
            format!(
                "ok: maintenance {}",
                if maintenance.is_on() { "on" } else { "off" }
            )
        }
        other => format!("error: unknown command {other:?} (try: maintenance on|off|status)"),
    }
}

/// `onebox maintenance on|off|status`.
pub fn run(args: crate::cli::MaintenanceArgs) -> anyhow::Result<std::process::ExitCode> {
    let socket = args.control.unwrap_or_else(|| args.data.join(SOCKET_FILE));
    let command = match args.state {
        crate::cli::MaintenanceState::On => "maintenance on",
        crate::cli::MaintenanceState::Off => "maintenance off",
        crate::cli::MaintenanceState::Status => "maintenance status",
    };
    println!("{}", send(&socket, command)?);
    Ok(std::process::ExitCode::SUCCESS)
}

/// Sends one command to a running server and returns its answer.
pub(crate) fn send(socket: &Path, command: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "no onebox is running with its control socket at {} (start `onebox serve`, or give --data DIR or --control PATH)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut reply = String::new();
    std::io::BufReader::new(stream)
        .read_line(&mut reply)
        .context("the server did not answer")?;
    let reply = reply.trim().to_string();
    match reply.strip_prefix("error: ") {
        Some(message) => bail!("{message}"),
        None => Ok(reply.trim_start_matches("ok: ").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_flip_the_flag() {
        let dir = std::env::temp_dir().join(format!("onebox-control-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (listener, path) = bind(&dir).unwrap();
        let maintenance = Maintenance::default();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve(listener, maintenance.clone(), shutdown.clone()));
        let ask = |cmd: &'static str| {
            let path = path.clone();
            tokio::task::spawn_blocking(move || send(&path, cmd))
        };
        assert_eq!(
            ask("maintenance on").await.unwrap().unwrap(),
            "maintenance on"
        );
        assert!(maintenance.is_on());
        assert_eq!(ask("status").await.unwrap().unwrap(), "maintenance on");
        assert_eq!(
            ask("maintenance off").await.unwrap().unwrap(),
            "maintenance off"
        );
        assert!(!maintenance.is_on());
        assert!(ask("reboot").await.unwrap().is_err());
        shutdown.cancel();
        server.await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
