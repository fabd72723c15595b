//! The daemon's composition root: [`Daemon::open`] checks the config and opens the store and
//! the token key; [`Daemon::run`] serves HTTP on a given listener and runs the engine until a
//! given shutdown future completes. Signals, logging and systemd stay in `cli/daemon.rs`, so
//! tests start the whole daemon in-process with any [`Clock`], a port-0 listener and a
//! oneshot for shutdown.
//!
//! The HTTP server runs on a thread of its own (a single-threaded runtime, and a blocking
//! pool for its database calls): whatever the engine is doing, waiting for a database lock or
//! sending, `/healthz` and the ack pages answer. The engine keeps the calling thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use crate::checked;
use crate::clock::{Clock, ClockKind};
use crate::config::{Config, Severity};
use crate::deliver::{Applied, Current};
use crate::engine::{Engine, Status};
use crate::store::Store;
use crate::token::{self, TokenKey};
use crate::web;

/// The `meta` key of the token key's fingerprint.
const KEY_FINGERPRINT: &str = "key_fingerprint";

/// The `meta` key naming the kind of clock the database runs on: `system` or `set`.
const CLOCK_KIND: &str = "clock";

/// A database runs on one kind of clock for its life. A rehearsal (`NHACVIEC_CLOCK`) on the
/// real database would send the future's reminders now, for real, and move the engine's
/// mark past them; the real clock on a rehearsal's database would find that mark in the
/// future and send nothing until then. Both are refused, naming the database and what to do.
fn same_clock(store: &Store, db: &Path, kind: ClockKind) -> Result<()> {
    let ours = match kind {
        ClockKind::System => "system",
        ClockKind::Set { .. } | ClockKind::Manual => "set",
    };
    let theirs = match store.meta(CLOCK_KIND)? {
        Some(v) => v,
        // A database older than this record ran on the system clock: nothing else could.
        None if store.has_obligations()? => "system".to_string(),
        None => return Ok(store.set_meta(CLOCK_KIND, ours)?),
    };
    match (theirs.as_str(), ours) {
        (a, b) if a == b => Ok(()),
        ("system", _) => bail!(
            "NHACVIEC_CLOCK is set, but the database {} runs on the real clock: a rehearsal on it would send the reminders of the coming days now, for real; rehearse with a copy of the config whose `storage.path` names another database (and `email.transport = \"file\"`), or unset NHACVIEC_CLOCK",
            db.display()
        ),
        _ => bail!(
            "the database {} was made by a rehearsal (NHACVIEC_CLOCK was set): its reminders went out on a set clock, not the real one; point `storage.path` at the real database, or move this one away to start afresh",
            db.display()
        ),
    }
}

/// A daemon ready to run: config checked, store open, token key read.
pub struct Daemon {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    store: Arc<Store>,
    current: Arc<Current>,
    engine: Arc<Engine>,
    key: TokenKey,
    /// The limit on ack POSTs, one for the daemon's life: a reload changes its limit, not
    /// the clients' buckets.
    ack_limit: Arc<web::guard::RateLimit>,
    /// The throttle on failed `/status` logins, one for the daemon's life.
    logins: Arc<web::guard::LoginThrottle>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Asks a running daemon to reload its config (what SIGHUP does).
#[derive(Debug, Clone)]
pub struct Reloader(Arc<Engine>);

impl Reloader {
    /// Reloads at once.
    pub fn reload(&self) {
        self.0.request_reload();
    }
}

/// The token key of the database at `db`: the key file beside it, made only with a new
/// database. A database that has recorded obligations has sent links made with its key; a
/// new key would silently break every one of them, so a missing or different key file is
/// refused, naming the file and what to do.
fn token_key(store: &Store, db: &Path, loaded: Option<TokenKey>) -> Result<TokenKey> {
    let key_file = token::key_path(db);
    let fingerprint = store.meta(KEY_FINGERPRINT)?;
    let key = match loaded {
        Some(key) => key,
        None if fingerprint.is_some() || store.has_obligations()? => bail!(
            "the token key {} is missing, but the database {} has sent reminders whose links were made with it: restore the key file from the backup of this database and start again (a new key would break every link already sent; to start afresh with no history, move the database away too)",
            key_file.display(),
            db.display()
        ),
        None => TokenKey::create(&key_file)
            .with_context(|| format!("cannot create the token key {}", key_file.display()))?,
    };
    match fingerprint {
        Some(f) if f != key.fingerprint() => bail!(
            "the token key {} is not the one the database {} was made with: restore the key file from the backup of this database (links made with another key do not work)",
            key_file.display(),
            db.display()
        ),
        Some(_) => {}
        None => store.set_meta(KEY_FINGERPRINT, &key.fingerprint())?,
    }
    Ok(key)
}

/// Reads the token key file of the database at `db`, if there is one, before the database
/// is opened: a key that cannot be read is refused, naming the file and what to do, with
/// nothing written (not even SQLite's -wal and -shm files). A key the daemon's user may not
/// read (a copy restored as root, mode 0600) is a permission to fix, not a key to replace:
/// a new one would break every link already sent.
fn read_key(db: &Path) -> Result<Option<TokenKey>> {
    let key_file = token::key_path(db);
    match TokenKey::load(&key_file) {
        Ok(key) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => bail!(
            "the token key {0} cannot be read by the user this process runs as (uid {1}): permission denied; not started: give the key file to the user the daemon runs as, mode 0600 (`sudo chown nhacviec: {0} && sudo chmod 0600 {0}`); do not make a new key, it would break every link already sent",
            key_file.display(),
            rustix::process::geteuid().as_raw()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(e.into()),
        Err(e) => bail!(
            "cannot read the token key {}: {e}; not started: restore it from the backup of this database",
            key_file.display()
        ),
    }
}

/// Where `nhacviec backup DIR` keeps a database's backups by default, and where a refusal
/// to start looks for the latest: `backups/` beside the database.
pub fn backup_dir(db: &Path) -> std::path::PathBuf {
    db.parent()
        .unwrap_or_else(|| Path::new("."))
        .join("backups")
}

/// The backups (`nhacviec-*.db`) in `dir`, oldest first: their names carry the time. None
/// if the folder cannot be read.
pub fn backups_in(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nhacviec-") && n.ends_with(".db"))
        })
        .collect();
    found.sort();
    found
}

/// Opens the store and checks its integrity (`PRAGMA quick_check`): a damaged database is
/// refused, naming the latest backup to restore, rather than run on and make it worse.
fn open_sound(db: &Path, now: chrono::DateTime<chrono::Utc>) -> Result<Store> {
    let damaged = |why: String| {
        let dir = backup_dir(db);
        let restore = match backups_in(&dir).pop() {
            Some(b) => format!(
                "restore the latest backup, {} (and its key file beside it), as docs/operations.md#backups says",
                b.display()
            ),
            None => format!(
                "no backup found in {}: move the file away to start afresh (history and links already sent are lost)",
                dir.display()
            ),
        };
        anyhow::anyhow!(
            "the database {} is damaged ({why}); not started: {restore}",
            db.display()
        )
    };
    let store = match Store::open(db, now) {
        Ok(s) => s,
        Err(e) if is_corrupt(&e) => return Err(damaged(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    match store.quick_check()? {
        None => Ok(store),
        Some(problems) => Err(damaged(problems)),
    }
}

/// True for the errors SQLite gives for a file that is not (or no longer) a database.
fn is_corrupt(e: &crate::store::StoreError) -> bool {
    matches!(
        e.sqlite(),
        Some(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            )
    )
}

impl Daemon {
    /// Checks the config at `path` exactly as `check` does (its warnings and errors go to
    /// the log), opens the store (recording the config applied) and the token key, and puts
    /// back to `pending` the messages a crash left `sending`.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Daemon> {
        let now = clock.now();
        let checked = checked::load(path, checked::today(now));
        for d in &checked.diagnostics {
            match d.severity {
                Severity::Error => tracing::error!("{d}"),
                Severity::Warning => tracing::warn!("{d}"),
            }
        }
        let errors = checked.errors();
        let Some((cfg, templates)) = checked.ready else {
            bail!("the config has {errors} error(s); not started (`nhacviec check` lists them)");
        };
        let loaded = read_key(&cfg.storage.path)?;
        let store = Arc::new(open_sound(&cfg.storage.path, now)?);
        same_clock(&store, &cfg.storage.path, clock.kind())?;
        let key = token_key(&store, &cfg.storage.path, loaded)?;
        let recovered = store.recover_sending(now)?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "messages cut off by a stop are sent again (same Message-ID)"
            );
        }
        let hash = crate::engine::file_hash(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        store.record_config(&hash, &path.display().to_string(), now)?;
        let ack_limit = Arc::new(web::guard::RateLimit::new(
            cfg.server.ack_per_minute,
            web::guard::LimitClock::of(&clock),
        ));
        let current = Arc::new(Current::new(Applied::new(cfg, templates, Some(&store))?));
        let engine = Arc::new(
            Engine::new(store.clone(), clock.clone(), current.clone(), key.clone())
                .watch(path.to_path_buf()),
        );
        Ok(Daemon {
            path: path.to_path_buf(),
            clock,
            store,
            current,
            engine,
            key,
            ack_limit,
            logins: Arc::default(),
        })
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.current.config()
    }

    /// A handle that asks for a reload.
    pub fn reloader(&self) -> Reloader {
        Reloader(self.engine.clone())
    }

    /// The routes, with everything they need (tests call them in-process).
    pub fn router(&self) -> axum::Router {
        web::router(self.state())
    }

    /// What the handlers share (tests put routes of their own on it).
    pub(crate) fn state(&self) -> web::AppState {
        web::AppState {
            store: self.store.clone(),
            current: self.current.clone(),
            status: self.engine.status(),
            waker: self.engine.waker(),
            clock: self.clock.clone(),
            key: self.key.clone(),
            ack_limit: self.ack_limit.clone(),
            logins: self.logins.clone(),
            pages: Arc::default(),
        }
    }

    /// Serves HTTP on `listener` (on a thread of its own) and runs the engine until
    /// `shutdown` completes; `on_wake` sees the engine's status after each wake (systemd's
    /// watchdog and status line). Returns once both have stopped.
    pub async fn run(
        self,
        listener: std::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()>,
        on_wake: impl FnMut(&Status),
    ) -> Result<()> {
        let listen = listener
            .local_addr()
            .context("the listener has no address")?;
        listener
            .set_nonblocking(true)
            .context("cannot set up the listener")?;
        tracing::info!(
            config = %self.path.display(),
            units = self.config().units.len(),
            rules = self.config().rules.len(),
            transport = self.current.get().describe(),
            database = %self.store.path().display(),
            listen = %listen,
            "nhacviec started"
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let router = self.router();
        let limits = web::Limits::new(self.current.clone());
        let server = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || serve_http(listener, router, limits, stop_rx))
            .context("cannot start the HTTP thread")?;
        self.engine.run(shutdown, on_wake).await;
        let _ = stop_tx.send(true);
        // The HTTP thread finishes the requests in flight, then ends.
        match tokio::task::spawn_blocking(move || server.join()).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::error!(error = %e, "the HTTP server failed"),
            Ok(Err(_)) | Err(_) => tracing::error!("the HTTP thread panicked"),
        }
        tracing::info!("stopped");
        Ok(())
    }
}

impl Daemon {
    /// Its engine: tests and the fuzzer (`fuzz/`) drive it a wake at a time.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Its token key: tests and the fuzzer make the links a unit would get.
    pub fn key(&self) -> &TokenKey {
        &self.key
    }
}

#[cfg(test)]
impl Daemon {
    /// Its store.
    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.store
    }
}

/// The HTTP thread: its own single-threaded runtime, serving until `stop` is raised.
fn serve_http(
    listener: std::net::TcpListener,
    router: axum::Router,
    limits: web::Limits,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("http-blocking")
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)?;
        web::serve(listener, router, limits, async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await
    })
}
