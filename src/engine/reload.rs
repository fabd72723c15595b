//! Reload: on SIGHUP, on `systemctl reload`, and when the config file changes (its time,
//! size or inode, looked at each wake: an editor that saves by renaming a new file into place
//! counts). The new config goes through exactly `check`; one that fails is not applied: the
//! daemon keeps the old one, logs each error, and each admin gets one notice per broken
//! version. A file written in place is applied once it has been still for [`SETTLE`] (one
//! renamed into place is whole at once): an editor or `cp` that truncates and then writes
//! must not be caught half way (an empty file read as a broken config, and a needless
//! notice to the admins). SIGHUP applies at once: whoever sends it has finished writing.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Engine;
use crate::checked;
use crate::config::Severity;
use crate::deliver::{Applied, notices};
use crate::store::StoreError;

/// The config file's identity, to notice an edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode,
    })
}

/// What the watch saw of the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    None,
    /// Written in place: maybe not finished yet.
    InPlace,
    /// Another file renamed over it, or it appeared or went away.
    Replaced,
}

/// How long a config file written in place must stay unchanged before the watch applies it.
pub const SETTLE: Duration = Duration::from_secs(1);

/// The config file the engine watches, with its last seen identity.
#[derive(Debug)]
pub(super) struct Watch {
    path: PathBuf,
    seen: Mutex<Option<Stamp>>,
    /// A change seen while the file was still being written, to apply once it settles.
    pending: AtomicBool,
}

impl Watch {
    pub(super) fn new(path: PathBuf) -> Watch {
        let seen = Mutex::new(stamp(&path));
        Watch {
            path,
            seen,
            pending: AtomicBool::new(false),
        }
    }

    /// True while the file was modified less than [`SETTLE`] ago.
    fn settling(&self) -> bool {
        std::fs::metadata(&self.path)
            .ok()
            .and_then(|m| crate::clock::modified_ago(&m))
            .is_some_and(|ago| ago < SETTLE)
    }

    /// What happened to the file since the last look: nothing, written in place, or
    /// replaced by another file (renamed into place, which is atomic: it is whole).
    fn changed(&self) -> Change {
        let current = stamp(&self.path);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let change = match (*seen, current) {
            (a, b) if a == b => Change::None,
            (Some(a), Some(b)) if a.inode == b.inode => Change::InPlace,
            _ => Change::Replaced,
        };
        *seen = current;
        change
    }
}

/// The SHA-256 of bytes, hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file, hex, as recorded for each applied config.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    Ok(sha256_hex(&std::fs::read(path)?))
}

impl Engine {
    /// Reloads the config if asked or if the file changed. A config that fails `check` is not
    /// applied: the errors are logged and the admins get one notice per broken version.
    pub fn maybe_reload(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let Some(watch) = &self.watch else {
            return Ok(());
        };
        let change = watch.changed();
        let pending = watch.pending.swap(false, Ordering::SeqCst);
        let asked = self.reload_requested.swap(false, Ordering::SeqCst);
        if change == Change::None && !pending && !asked {
            return Ok(());
        }
        let in_place = change == Change::InPlace || (pending && change == Change::None);
        if !asked && in_place && watch.settling() {
            // Looked at again at the next wake (within a minute).
            watch.pending.store(true, Ordering::SeqCst);
            return Ok(());
        }
        let path = &watch.path;
        let old = self.current.config();
        let today = now.with_timezone(&old.organization.timezone).date_naive();
        let checked = checked::load(path, today);
        // An unreadable file has no content hash: name the broken version by its errors.
        let hash = file_hash(path).unwrap_or_else(|_| {
            let errors: Vec<String> = checked
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect();
            sha256_hex(errors.join("\n").as_bytes())
        });
        let applied = match checked.ready {
            Some((cfg, templates)) => Applied::new(cfg, templates, Some(&self.store))
                .map_err(|e| vec![format!("{}: error: {e:#}", path.display())]),
            None => Err(checked
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(ToString::to_string)
                .collect()),
        };
        match applied {
            Ok(applied) => {
                let cfg = &applied.config;
                if cfg.storage.path != old.storage.path || cfg.server.listen != old.server.listen {
                    tracing::warn!(
                        "`storage.path` and `server.listen` take effect at the next start"
                    );
                }
                self.current.replace(applied);
                self.catch_up.store(true, Ordering::SeqCst);
                self.register_again();
                if self
                    .store
                    .record_config(&hash, &path.display().to_string(), now)?
                {
                    tracing::info!(config = %path.display(), hash = %hash, "config reloaded");
                } else {
                    tracing::info!(config = %path.display(), "config reloaded, unchanged");
                }
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!("{e}");
                }
                tracing::error!(
                    config = %path.display(),
                    errors = errors.len(),
                    "the new config was not applied; still running the previous one"
                );
                let notices = notices::config_rejected(&old, path, &hash, &errors, now);
                self.store.enqueue_other(now, &notices)?;
            }
        }
        Ok(())
    }
}
