//! One onebox per data folder: an advisory `flock` on `DIR/onebox.pid`, which holds
//! the owner's pid so a second onebox can say who has the folder.
//!
//! A lock, not just a pid file: the kernel drops a `flock` when its process dies,
//! even on `kill -9`, so a stale pid file never blocks a restart.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail};

pub(crate) const LOCK_FILE: &str = "onebox.pid";

#[derive(Debug)]
pub(crate) struct DirLock {
    /// Closing the file releases the lock.
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("failed to open {}", path.display()))?;
        // std's `try_lock` is `flock(LOCK_EX | LOCK_NB)` on Unix: the same kernel
        // lock as before, without `unsafe`.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let owner = match text.trim() {
                    "" => "another onebox".to_string(),
                    pid => format!("pid {pid}"),
                };
                bail!(
                    "data dir {} in use by {owner}: stop it, or give another --data DIR (or --ephemeral)",
                    dir.display()
                );
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("failed to lock {}", path.display()));
            }
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(|_| ()))
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("failed to write {}", path.display()))?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_owner() {
        let dir = std::env::temp_dir().join(format!("onebox-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DirLock::acquire(&dir).unwrap();
        // flock locks belong to the open file description, so a second open in the
        // same process conflicts just as another process would.
        let err = DirLock::acquire(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("in use by pid {}", std::process::id())),
            "{err}"
        );
        drop(first);
        DirLock::acquire(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
