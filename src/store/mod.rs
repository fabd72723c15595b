//! The SQLite store: the daemon's memory. All SQL lives here.
//!
//! One file, WAL journal (readers never block the writer), `busy_timeout` so a second process
//! (`nhacviec ack`, an admin's `sqlite3`) waits instead of failing, foreign keys on,
//! migrations embedded and applied at open (`schema.rs`). Writes that belong together are one
//! transaction. Nothing is deleted: a message's life is a sequence of status changes on its
//! row. Callers pass the current time; the store never reads the clock.
//!
//! Two connections: one for writes and one for reads. In WAL mode a read never waits for a
//! writer, so the pages and `/healthz` answer while another process holds the write lock for
//! a while (a backup, an admin's `sqlite3`), even when the engine is itself waiting for that
//! lock on the write connection.
//!
//! The queries are in two rooms: `outbox.rs` (the messages) and `obligations.rs` (occurrences,
//! obligations, acknowledgements); this module opens the file and keeps the `meta` table and
//! the applied configs.

mod backup;
mod links;
mod obligations;
mod outbox;
mod schema;
mod zalo;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};

pub use backup::Copied;
pub use obligations::{
    AckOutcome, NewAck, Obligation, ObligationRecord, OccurrenceRecord, Registered, StepRows,
};
pub use outbox::{ChannelCount, Health, Message, OutboxCounts};
pub use zalo::ZaloTokens;

/// Why the store failed. The message says what to do where something can be done.
///
/// Each message holds the error beneath it (logs print only the message), so no variant
/// names it as its `source` too: an error chain printed whole (`{:#}`) would say SQLite's
/// words two or three times.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error("cannot open the database {path}: {error}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite or the file system said.
        error: rusqlite::Error,
    },
    /// Its folder could not be created.
    #[error("cannot create the folder for the database {path}: {error}")]
    Folder {
        /// The database file.
        path: PathBuf,
        /// What the file system said.
        error: std::io::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the database schema of {path}: {error}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        error: rusqlite_migration::Error,
    },
    /// A query failed (a full disk shows here as "database or disk is full").
    #[error("database error: {0}")]
    Sql(rusqlite::Error),
    /// A stored value could not be read back.
    #[error("database holds an unreadable value: {0}")]
    Corrupt(String),
    /// The file system will not let this process write the database (a read-only mount,
    /// a file or folder of another user, no space left): refused at open with what to do,
    /// rather than SQLite's "attempt to write a readonly database" at the first write.
    #[error("the database {path} cannot be written: {trouble}; {fix}", fix = trouble.fix())]
    NotWritable {
        /// The database file.
        path: PathBuf,
        /// What the file system says.
        trouble: Trouble,
    },
}

impl StoreError {
    /// SQLite's own error beneath this one, if any (the variants no longer name it as their
    /// `source`, so callers that ask what SQLite said ask here).
    pub fn sqlite(&self) -> Option<&rusqlite::Error> {
        match self {
            StoreError::Open { error, .. } | StoreError::Sql(error) => Some(error),
            StoreError::Migrate {
                error: rusqlite_migration::Error::RusqliteError { err, .. },
                ..
            } => Some(err),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sql(e)
    }
}

/// Below this much free space, a failed write is put down to a full file system.
const LOW_SPACE: u64 = 1 << 20;

/// What keeps the database from being written, as the file system tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The file system holding this folder is mounted read-only (by the admin, or by the
    /// kernel after an I/O error: `errors=remount-ro`).
    ReadOnly(PathBuf),
    /// This file or folder may not be written by the user the process runs as (uid).
    Permission(PathBuf, u32),
    /// The file system holding this folder has only this many bytes free for the process
    /// (`None`: it says it has more, but a write found none: a quota, or no inodes left).
    Full(PathBuf, Option<u64>),
    /// Writing a file in this folder fails with this error (a failing disk: EIO).
    Io(PathBuf, String),
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::ReadOnly(dir) => write!(
                f,
                "the file system holding {} is mounted read-only",
                dir.display()
            ),
            Trouble::Permission(p, uid) => write!(
                f,
                "{} is not writable by the user this process runs as (uid {uid})",
                p.display()
            ),
            Trouble::Full(dir, Some(free)) => write!(
                f,
                "the file system holding {} is full, {} KiB free",
                dir.display(),
                free / 1024
            ),
            Trouble::Full(dir, None) => write!(
                f,
                "the file system holding {} has no space left for this process: a quota, or no free inodes",
                dir.display()
            ),
            Trouble::Io(dir, e) => write!(f, "writing a file in {} fails: {e}", dir.display()),
        }
    }
}

impl Trouble {
    /// What the admin does about it.
    pub fn fix(&self) -> String {
        match self {
            Trouble::ReadOnly(_) => "remount it read-write (the kernel makes a file system read-only after a disk error: then check the disk and run fsck first), or move the database with its key file to a writable file system and point `storage.path` there".into(),
            Trouble::Permission(p, _) => {
                let dir = folder(p);
                format!(
                    "give the database, its -wal and -shm files, its key file and the folder {0} to the user the daemon runs as (`sudo chown -R nhacviec: {0}`; files 0600, folder 0700)",
                    dir.display()
                )
            }
            Trouble::Full(..) => "free space on it (old logs, backups already copied elsewhere)".into(),
            Trouble::Io(..) => "check the disk and its file system (`dmesg`, fsck)".into(),
        }
    }

    /// What, if anything, the file system says against writing the database at `path`: a
    /// read-only mount, then a file (the database, its -wal and -shm, or the folder) this
    /// process may not write, then too little free space, and last what writing a small
    /// file beside it says (removed at once): a file system the kernel turned read-only
    /// after a disk error can still call itself read-write, a quota can be full with the
    /// disk not. `None` when nothing shows (a lock held by another process, say): then
    /// SQLite's own error is all there is. Asked only after a write failed.
    pub fn of(path: &Path) -> Option<Trouble> {
        use rustix::fs::{Access, AtFlags, CWD, StatVfsMountFlags, accessat, statvfs};
        let dir = folder(path);
        let vfs = statvfs(&dir).ok();
        if vfs
            .as_ref()
            .is_some_and(|v| v.f_flag.contains(StatVfsMountFlags::RDONLY))
        {
            return Some(Trouble::ReadOnly(dir));
        }
        let uid = rustix::process::geteuid().as_raw();
        let files = [
            path.to_path_buf(),
            suffixed(path, "-wal"),
            suffixed(path, "-shm"),
            dir.clone(),
        ];
        for f in files {
            // The effective user's rights (setpriv, systemd's User=), not the real one's.
            if f.exists() && accessat(CWD, &f, Access::WRITE_OK, AtFlags::EACCESS).is_err() {
                return Some(Trouble::Permission(f, uid));
            }
        }
        let free = vfs.map(|v| v.f_bavail.saturating_mul(v.f_frsize));
        if let Some(free) = free.filter(|&n| n < LOW_SPACE) {
            return Some(Trouble::Full(dir, Some(free)));
        }
        // Unique within the process too: the engine and a request may ask at once.
        static PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = dir.join(format!(".nhacviec-write-probe-{}-{n}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"."));
        let e = match written {
            // Not ours (a probe of an earlier process with the same id): leave it.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return None,
            Err(e) => e,
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                return None;
            }
        };
        let _ = std::fs::remove_file(&probe);
        Some(
            match e.raw_os_error().map(rustix::io::Errno::from_raw_os_error) {
                Some(rustix::io::Errno::ROFS) => Trouble::ReadOnly(dir),
                Some(rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT) => {
                    Trouble::Full(dir, None)
                }
                Some(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => {
                    Trouble::Permission(dir, uid)
                }
                _ => Trouble::Io(dir, e.to_string()),
            },
        )
    }
}

/// The folder of a file: `.` for a bare name.
fn folder(path: &Path) -> PathBuf {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `nhacviec.db` + `-wal` = `nhacviec.db-wal`.
fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// True for the SQLite errors a file system that refuses writes gives: read-only, full,
/// cannot open, an I/O error.
fn refused_write(e: &StoreError) -> bool {
    let Some(sqlite) = e.sqlite() else {
        return false;
    };
    matches!(
        sqlite.sqlite_error_code(),
        Some(
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::SystemIoFailure
        )
    )
}

type Result<T> = std::result::Result<T, StoreError>;

/// How long a statement waits for another connection's lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Milliseconds since the epoch, the stored form of an instant.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {v}")))
}

fn opt_ms(v: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    v.map(from_ms).transpose()
}

/// The store. Cheap calls; share it behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    /// Writes (and the reads inside write transactions).
    conn: Mutex<Connection>,
    /// Reads that stand alone: never held up by a write waiting for its lock.
    read: Mutex<Connection>,
    path: PathBuf,
}

fn connect(path: &Path, flags: rusqlite::OpenFlags) -> Result<Connection> {
    let open_err = |error| StoreError::Open {
        path: path.to_path_buf(),
        error,
    };
    let conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// `now` is recorded as the first start of a new database.
    ///
    /// A database this process cannot write (a read-only mount, a file or folder of another
    /// user, a full file system) is refused with [`StoreError::NotWritable`], saying why
    /// and what to do, before anything is written. (SQLite itself would quietly open such a
    /// file read-only and fail at the first write with "attempt to write a readonly
    /// database", naming no file.)
    pub fn open(path: &Path, now: DateTime<Utc>) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| StoreError::Folder {
                path: path.to_path_buf(),
                error,
            })?;
        }
        Store::open_writable(path, now).map_err(|e| match Trouble::of(path) {
            Some(trouble) if refused_write(&e) => StoreError::NotWritable {
                path: path.to_path_buf(),
                trouble,
            },
            _ => e,
        })
    }

    fn open_writable(path: &Path, now: DateTime<Utc>) -> Result<Store> {
        let open_err = |error| StoreError::Open {
            path: path.to_path_buf(),
            error,
        };
        let mut conn = connect(path, rusqlite::OpenFlags::default())?;
        // SQLite falls back to reading only when the file cannot be opened for writing.
        if conn.is_readonly(rusqlite::MAIN_DB).map_err(open_err)? {
            return Err(StoreError::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
                Some("SQLite could open it for reading only".into()),
            )));
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        schema::migrations()
            .to_latest(&mut conn)
            .map_err(|error| StoreError::Migrate {
                path: path.to_path_buf(),
                error,
            })?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('first_start', ?1)",
            params![ms(now).to_string()],
        )?;
        let read = connect(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        Ok(Store {
            conn: Mutex::new(conn),
            read: Mutex::new(read),
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database for reading only (`nhacviec status`); it must have been
    /// created by `nhacviec run`.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        Ok(Store {
            conn: Mutex::new(connect(path, flags)?),
            read: Mutex::new(connect(path, flags)?),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An error of this store with what the file system says against writing the database,
    /// if anything: "database error: disk I/O error (the file system holding
    /// /var/lib/nhacviec is mounted read-only); remount it read-write, …". SQLite's own words
    /// rarely say which.
    ///
    /// The file system is asked (statvfs, access, a probe file) only for the errors a refused
    /// write gives, and that can block on a failing disk: call it off the async threads.
    pub fn explain(&self, e: &StoreError) -> String {
        match refused_write(e).then(|| Trouble::of(&self.path)).flatten() {
            Some(t) => format!("{e} ({t}); {}", t.fix()),
            None => e.to_string(),
        }
    }

    /// The write connection.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The read connection.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.read.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When this database was first opened: obligations whose deadline passed before it
    /// are not chased.
    pub fn first_start(&self) -> Result<DateTime<Utc>> {
        let v = self
            .meta("first_start")?
            .ok_or_else(|| StoreError::Corrupt("no first_start".into()))?;
        let n: i64 = v
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("first_start {v}")))?;
        from_ms(n)
    }

    /// Records an applied config unless it is the same as the last one; true if recorded.
    pub fn record_config(&self, hash: &str, path: &str, now: DateTime<Utc>) -> Result<bool> {
        let conn = self.conn();
        let last: Option<String> = conn
            .query_row(
                "SELECT hash FROM config_versions ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        if last.as_deref() == Some(hash) {
            return Ok(false);
        }
        conn.execute(
            "INSERT INTO config_versions (hash, path, applied_at) VALUES (?1, ?2, ?3)",
            params![hash, path, ms(now)],
        )?;
        Ok(true)
    }

    /// The hashes of the applied configs, oldest first.
    pub fn config_hashes(&self) -> Result<Vec<String>> {
        let conn = self.reader();
        let mut st = conn.prepare("SELECT hash FROM config_versions ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Up to when every step has been enqueued; `None` before the engine's first wake.
    pub fn engine_until(&self) -> Result<Option<DateTime<Utc>>> {
        self.meta("engine_until")?
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| StoreError::Corrupt(format!("engine_until {v}")))
                    .and_then(from_ms)
            })
            .transpose()
    }

    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a value in the meta table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        set_meta(&self.conn(), key, value)
    }

    /// Puts every committed transaction on the disk: syncs the write-ahead log (with
    /// `synchronous = NORMAL`, SQLite syncs it only at checkpoints). Any descriptor of a
    /// file syncs its pages, so this one needs no lock of SQLite's.
    pub fn sync_log(&self) -> Result<()> {
        let wal = suffixed(&self.path, "-wal");
        let synced = std::fs::File::open(&wal)
            .or_else(|_| std::fs::File::open(&self.path))
            .and_then(|f| f.sync_data());
        synced.map_err(|e| {
            StoreError::Sql(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                Some(format!("cannot sync {} to the disk: {e}", wal.display())),
            ))
        })
    }

    /// A trivial query on the read connection: the database answers.
    pub fn ping(&self) -> Result<()> {
        self.reader()
            .query_row("SELECT COUNT(*) FROM meta", [], |_| Ok(()))?;
        Ok(())
    }
}

/// A write transaction that takes the write lock at its start (`BEGIN IMMEDIATE`), waiting
/// for it up to the busy timeout. A deferred one that read first and then wrote could fail at
/// once with "database is locked" (SQLite does not wait when upgrading a read transaction),
/// which happened under load when the read connection briefly held the lock to read a WAL
/// index being updated.
fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
}

fn set_meta(conn: &Connection, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests;
