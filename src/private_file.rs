//! Secrets written once into the data folder: owner-only files made on first use.
//!
//! The admin token and the TSIG key follow the same rule, so it lives here once:
//! make the file with `create_new` (two processes starting together cannot both
//! write it: exactly one wins and the other reads the winner's), owner-only
//! (0600), and flush it to disk before it is used only when the folder outlives
//! the process. A file in `--ephemeral`'s temporary folder, gone at exit, need not
//! wait for the disk: that wait was a quarter of the start time.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// What [`create_or_read`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Secret {
    /// The file did not exist; it now holds the bytes given.
    Created,
    /// The file already existed; this is its text, untouched.
    Existing(String),
}

/// Creates `path` (0600) holding `bytes`, or reads it if it already exists.
/// `durable` flushes a new file before returning. The error is the failing
/// step's own; callers add which file and what it is for.
pub(crate) fn create_or_read(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<Secret> {
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(bytes)?;
            if durable {
                file.sync_all()?;
            }
            Ok(Secret::Created)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).map(Secret::Existing)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_first_call_creates_an_owner_only_file_and_the_second_reads_it() {
        let dir = std::env::temp_dir().join(format!("onebox-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            create_or_read(&path, b"one\n", false).unwrap(),
            Secret::Created
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            create_or_read(&path, b"two\n", true).unwrap(),
            Secret::Existing("one\n".into())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
