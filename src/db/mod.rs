//! The database box: redb, embedded and ACID, one file in the data folder.

use std::path::Path;

/// The site's database. (Placeholder until the site lands.)
#[derive(Debug, Clone)]
pub(crate) struct Db;

impl Db {
    pub(crate) fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Db)
    }

    pub(crate) fn in_memory() -> anyhow::Result<Self> {
        Ok(Db)
    }

    pub(crate) fn close(self) {}
}
