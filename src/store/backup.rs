//! Backups of the live database, and the integrity check at start.
//!
//! A backup is SQLite's online backup API run in one step: the copy is made under one read
//! transaction, so it is consistent while the daemon goes on writing (WAL readers do not
//! block the writer), then checked with `PRAGMA integrity_check`. The token key is copied
//! beside it by the command (`cli::state::backup`): without it, the links in mail already
//! sent stop working after a restore.

use std::path::Path;

use rusqlite::Connection;

use super::{Result, Store, StoreError};

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Obligations in the copy.
    pub obligations: u64,
    /// Messages (the outbox and its history) in the copy.
    pub messages: u64,
}

impl Store {
    /// Copies the database into `dst`, a file that must not exist yet, and checks the copy.
    pub fn backup_to(&self, dst: &Path) -> Result<Copied> {
        if dst.exists() {
            return Err(StoreError::Corrupt(format!(
                "{} exists; a backup never overwrites a file",
                dst.display()
            )));
        }
        let mut to = Connection::open(dst)?;
        {
            let from = self.reader();
            let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
            // Every page in one step: one read transaction, one consistent copy.
            backup.step(-1)?;
        }
        let problems = integrity(&to, "integrity_check")?;
        if let Some(p) = problems {
            return Err(StoreError::Corrupt(format!(
                "the copy {} does not pass SQLite's integrity check: {p}",
                dst.display()
            )));
        }
        let count = |table: &str| -> Result<u64> {
            let n: i64 =
                to.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(Copied {
            obligations: count("obligations")?,
            messages: count("messages")?,
        })
    }

    /// SQLite's quick integrity check of the database: `None` if it is sound, else what it
    /// found (its first lines).
    pub fn quick_check(&self) -> Result<Option<String>> {
        integrity(&self.reader(), "quick_check")
    }
}

/// Runs `PRAGMA {pragma}`; `None` when it answers "ok". A database too damaged to answer is
/// reported as such, not as an error of the check.
fn integrity(conn: &Connection, pragma: &str) -> Result<Option<String>> {
    let rows: rusqlite::Result<Vec<String>> = conn
        .prepare(&format!("PRAGMA {pragma}(20)"))
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect());
    match rows {
        Ok(rows) if rows == ["ok"] => Ok(None),
        Ok(rows) => Ok(Some(rows.join("; "))),
        Err(e) => Ok(Some(e.to_string())),
    }
}
