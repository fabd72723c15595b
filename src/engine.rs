//! The daemon loop: one timer, enqueue what fell due, send, sleep until the next thing.
//!
//! At each wake the engine reads the clock once, reloads the config if asked (SIGHUP) or if
//! the file changed, enqueues every step that fell due since its mark (persisted with the
//! messages, in one transaction) and the day's digest when its time has come, lets the outbox
//! send, then sleeps until the earliest of: the next step, the next retry, the next digest,
//! or 60 s (so a clock step or a suspend is noticed). It wakes early when told (an ack, a
//! reload) and stops on shutdown. It has no other periodic work: an idle daemon wakes once a
//! minute.
//!
//! Catch-up (DESIGN §5): when several steps of one occurrence fell due since the mark (the
//! daemon was down), only the latest is sent; the earlier ones are recorded `skipped`.
//! Occurrences whose deadline passed before the database was created are never chased.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::checked;
use crate::clock::Clock;
use crate::config::{Config, Severity};
use crate::deliver::email::{self, Mailer};
use crate::deliver::outbox::{Outbox, Parts};
use crate::deliver::{context, digest, enqueue};
use crate::plan::{self, Filter};
use crate::store::{NewMessage, Store, StoreError};
use crate::token::TokenKey;

/// The longest sleep: a changed clock is noticed within this.
pub const MAX_SLEEP: Duration = Duration::seconds(60);

/// How long a shutdown waits for sends in flight before releasing them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// How far back the first wake looks for occurrences still open.
const FIRST_LOOKBACK_DAYS: i64 = 400;

/// How far ahead the engine looks for the next step to report in its status.
const STATUS_HORIZON_DAYS: i64 = 400;

/// What one wake enqueued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Messages to send.
    pub pending: usize,
    /// Messages recorded as skipped (missed steps).
    pub skipped: usize,
}

/// What the engine shows the outside world (health, systemd status).
#[derive(Debug, Default)]
pub struct Status {
    last_wake_ms: AtomicI64,
    next: Mutex<Option<String>>,
}

impl Status {
    /// When the engine last woke.
    pub fn last_wake(&self) -> Option<DateTime<Utc>> {
        match self.last_wake_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Utc.timestamp_millis_opt(ms).single(),
        }
    }

    /// "before-7d of bao-cao-9-thang/2025-9M at 2025-09-26T08:00:00+07:00".
    pub fn next(&self) -> Option<String> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, wake: DateTime<Utc>, next: Option<String>) {
        self.last_wake_ms
            .store(wake.timestamp_millis(), Ordering::Relaxed);
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = next;
    }
}

/// The config file's identity, to notice an edit (an editor that saves by renaming a new
/// file into place changes the inode as well as the time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
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

/// The SHA-256 of a file, hex, as recorded for each applied config.
pub fn file_hash(path: &std::path::Path) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The engine.
pub struct Engine {
    store: Arc<Store>,
    outbox: Arc<Outbox>,
    clock: Arc<dyn Clock>,
    config: RwLock<Arc<Config>>,
    key: TokenKey,
    wake: Arc<Notify>,
    status: Arc<Status>,
    /// The config file to watch, with its last seen identity.
    source: Option<(PathBuf, Mutex<Option<Stamp>>)>,
    reload_requested: AtomicBool,
    /// Set by a reload: the next wake catches up obligations the new config added.
    catch_up: AtomicBool,
    max_sleep: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over a store and an outbox.
    pub fn new(
        store: Arc<Store>,
        outbox: Arc<Outbox>,
        clock: Arc<dyn Clock>,
        config: Arc<Config>,
        key: TokenKey,
    ) -> Engine {
        Engine {
            store,
            outbox,
            clock,
            config: RwLock::new(config),
            key,
            wake: Arc::new(Notify::new()),
            status: Arc::new(Status::default()),
            source: None,
            reload_requested: AtomicBool::new(false),
            catch_up: AtomicBool::new(false),
            max_sleep: MAX_SLEEP,
        }
    }

    /// Changes the longest sleep (simulations of a whole year; the daemon keeps 60 s).
    pub fn with_max_sleep(mut self, d: Duration) -> Engine {
        self.max_sleep = d;
        self
    }

    /// Watches `path` (the file the config came from) for changes, reloading at the next wake.
    pub fn watch(mut self, path: PathBuf) -> Engine {
        let s = stamp(&path);
        self.source = Some((path, Mutex::new(s)));
        self
    }

    /// A handle that wakes the engine early.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// What health checks and systemd see.
    pub fn status(&self) -> Arc<Status> {
        self.status.clone()
    }

    /// Asks for a reload at once (SIGHUP).
    pub fn request_reload(&self) {
        self.reload_requested.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The config in use.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Enqueues every step due in (mark, now], in one transaction with the new mark. After a
    /// reload, an obligation the new config adds (no row yet) is caught up like at a first
    /// start: its latest step already past is sent, earlier ones are recorded skipped.
    pub fn enqueue_due(&self, now: DateTime<Utc>) -> Result<Enqueued, StoreError> {
        let cfg = self.config();
        let tz = cfg.organization.timezone;
        let first_start = self.store.first_start()?;
        let mark = self.store.engine_until()?;
        let caught_up = self.catch_up.swap(false, Ordering::SeqCst);
        let catch_up = caught_up || mark.is_none();
        let today = now.with_timezone(&tz).date_naive();
        let from = match mark {
            Some(m) if !catch_up => m.with_timezone(&tz).date_naive(),
            _ => today - Duration::days(FIRST_LOOKBACK_DAYS),
        };
        let after_mark = |at: DateTime<Utc>| mark.is_none_or(|m| at > m);
        let mut groups = Vec::new();
        let mut out = Enqueued::default();
        for occ in plan::occurrences(&cfg, from.min(today), today, Filter::default()) {
            if occ.deadline.with_timezone(&Utc) <= first_start {
                continue;
            }
            let past: Vec<_> = occ
                .steps
                .iter()
                .filter(|s| s.at.with_timezone(&Utc) <= now)
                .collect();
            if !past.iter().any(|s| after_mark(s.at.with_timezone(&Utc))) && !catch_up {
                continue;
            }
            let units = &cfg.rules[occ.rule].units;
            let keys: Vec<String> = units
                .iter()
                .map(|&u| enqueue::obligation_key(&cfg, &occ, u))
                .collect();
            let states = match self.store.states(&keys) {
                Ok(s) => s,
                Err(e) => {
                    if caught_up {
                        self.catch_up.store(true, Ordering::SeqCst);
                    }
                    return Err(e);
                }
            };
            // Per unit, the steps due to it now: those after the mark, or, for an obligation
            // with no row yet while catching up, every past step. The latest is sent.
            let mut plan_for: Vec<Vec<usize>> = vec![Vec::new(); past.len()];
            let mut skip_for: Vec<Vec<usize>> = vec![Vec::new(); past.len()];
            for (k, &u) in units.iter().enumerate() {
                let state = states.get(&keys[k]).map(String::as_str);
                // Like a first start, a catch-up never chases a deadline already passed.
                let new = state.is_none() && catch_up && occ.deadline.with_timezone(&Utc) > now;
                let due: Vec<usize> = (0..past.len())
                    .filter(|&i| new || after_mark(past[i].at.with_timezone(&Utc)))
                    .filter(|&i| match state {
                        // Done stops everything; seen stops the reminders before the last day.
                        Some("done") => false,
                        Some("seen") => past[i].name.kind != crate::plan::StepKind::Before,
                        _ => true,
                    })
                    .collect();
                if let Some((&latest, earlier)) = due.split_last() {
                    plan_for[latest].push(u);
                    for &i in earlier {
                        skip_for[i].push(u);
                    }
                }
            }
            for (i, step) in past.iter().enumerate() {
                for (owing, skipped) in [(&skip_for[i], true), (&plan_for[i], false)] {
                    if owing.is_empty() {
                        continue;
                    }
                    let rows = enqueue::step_rows(&cfg, &self.key, &occ, step, owing, skipped);
                    if skipped {
                        out.skipped += rows.messages.len();
                    } else {
                        out.pending += rows.messages.len();
                    }
                    groups.push(rows);
                }
            }
        }
        if let Err(e) = self.store.enqueue(now, &groups, Some(now)) {
            // Keep the catch-up a reload asked for for the next wake.
            if caught_up {
                self.catch_up.store(true, Ordering::SeqCst);
            }
            return Err(e);
        }
        Ok(out)
    }

    /// The digest instant of `day`.
    fn digest_at(cfg: &Config, day: NaiveDate) -> DateTime<Utc> {
        plan::local(cfg.organization.timezone, day, cfg.digest.time).with_timezone(&Utc)
    }

    /// The next digest after `now`: today's if it is a working day and its time is ahead,
    /// else the next working day's.
    pub fn next_digest(cfg: &Config, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&cfg.organization.timezone).date_naive();
        let mut day = cfg.calendar.working_on_or_after(today);
        if Self::digest_at(cfg, day) <= now {
            day = cfg.calendar.next_working(day);
        }
        Self::digest_at(cfg, day)
    }

    /// Enqueues today's digest once its time has come (once a day; nothing if nothing is
    /// open). Returns how many messages.
    pub fn enqueue_digest(&self, now: DateTime<Utc>) -> Result<usize, StoreError> {
        let cfg = self.config();
        let today = now.with_timezone(&cfg.organization.timezone).date_naive();
        if !cfg.calendar.is_working(today) || now < Self::digest_at(&cfg, today) {
            return Ok(0);
        }
        let done_for = today.to_string();
        if self.store.meta("digest_date")?.as_deref() == Some(done_for.as_str()) {
            return Ok(0);
        }
        let rows = self.store.obligation_states(now - digest::OPEN_FOR)?;
        let failed = self.store.failed_since(now - Duration::days(7))?;
        let n = match digest::context(&cfg, &rows, &failed, today, now) {
            Some(ctx) => {
                let msgs = digest::messages(&cfg, &ctx, today, now);
                self.store.enqueue_other(now, &msgs)?
            }
            None => 0,
        };
        self.store.set_meta("digest_date", &done_for)?;
        Ok(n)
    }

    /// Reloads the config if asked or if the file changed. A config that fails `check` is not
    /// applied: the errors are logged and the admins get one email per broken version.
    pub fn maybe_reload(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let Some((path, seen)) = &self.source else {
            return Ok(());
        };
        let current = stamp(path);
        let changed = {
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            let changed = *seen != current;
            *seen = current;
            changed
        };
        let asked = self.reload_requested.swap(false, Ordering::SeqCst);
        if !(changed || asked) {
            return Ok(());
        }
        let old = self.config();
        let today = now.with_timezone(&old.organization.timezone).date_naive();
        let checked = checked::load(path, today);
        // An unreadable file has no content hash: name the broken version by its errors.
        let hash = file_hash(path).unwrap_or_else(|_| {
            let errors: Vec<String> = checked
                .diagnostics
                .iter()
                .map(ToString::to_string)
                .collect();
            Sha256::digest(errors.join("\n").as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let applied = match checked.ready {
            Some((cfg, templates)) => match Mailer::new(&cfg) {
                Ok(mailer) => Ok((cfg, templates, mailer)),
                Err(e) => Err(vec![format!("{}: error: {e:#}", path.display())]),
            },
            None => Err(checked
                .diagnostics
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .map(ToString::to_string)
                .collect()),
        };
        match applied {
            Ok((cfg, templates, mailer)) => {
                if cfg.storage.path != old.storage.path || cfg.server.listen != old.server.listen {
                    tracing::warn!(
                        "`storage.path` and `server.listen` take effect at the next start"
                    );
                }
                let cfg = Arc::new(cfg);
                self.outbox.replace(Parts {
                    config: cfg.clone(),
                    templates: Arc::new(templates),
                    mailer: Arc::new(mailer),
                    key: self.key.clone(),
                });
                *self.config.write().unwrap_or_else(|e| e.into_inner()) = cfg;
                self.catch_up.store(true, Ordering::SeqCst);
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
                self.notify_admins(&old, path, &hash, &errors, now)?;
            }
        }
        Ok(())
    }

    /// One email to each admin about a config version that failed to load.
    fn notify_admins(
        &self,
        cfg: &Config,
        path: &std::path::Path,
        hash: &str,
        errors: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = format!("admin/config-error/{}", &hash[..hash.len().min(16)]);
        let domain = email::from_domain(cfg);
        let ctx = serde_json::json!({
            "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
            "path": path.display().to_string(),
            "at": context::moment_words(now.with_timezone(&cfg.organization.timezone)),
            "errors": errors,
            "recipient": {"name": "Quản trị hệ thống nhắc việc"},
        });
        let msgs: Vec<NewMessage> = cfg
            .organization
            .admins
            .iter()
            .map(|a| NewMessage {
                obligation: key.clone(),
                step: "notice".into(),
                channel: "email".into(),
                recipient: a.clone(),
                template: "config_error".into(),
                context: ctx.clone(),
                message_id: email::message_id(&key, "notice", a, &domain),
                not_before: now,
                skipped: false,
            })
            .collect();
        self.store.enqueue_other(now, &msgs)?;
        Ok(())
    }

    /// When the engine must wake next, seen from `now`, and a description of the next step.
    pub fn next_wake(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Option<String>), StoreError> {
        let cfg = self.config();
        let tz = cfg.organization.timezone;
        let today = now.with_timezone(&tz).date_naive();
        let horizon = today + Duration::days(STATUS_HORIZON_DAYS);
        let next_step = plan::occurrences(&cfg, today, horizon, Filter::default())
            .iter()
            .flat_map(|o| {
                o.steps
                    .iter()
                    .map(move |s| (s.at.with_timezone(&Utc), o, s))
            })
            .filter(|(at, _, _)| *at > now)
            .min_by_key(|(at, _, _)| *at)
            .map(|(at, o, s)| {
                let text = format!("{} of {} at {}", s.name, o.key(&cfg), s.at.to_rfc3339());
                (at, text)
            });
        let next_retry = self.store.next_attempt_at()?;
        let next_digest = Self::next_digest(&cfg, now);
        let cap = now + self.max_sleep;
        let wake = [
            Some(cap),
            next_step.as_ref().map(|n| n.0),
            next_retry,
            Some(next_digest),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(cap)
        .max(now);
        Ok((wake, next_step.map(|n| n.1)))
    }

    /// One wake: reload if needed, enqueue, send, and say when to wake next.
    pub async fn wake_once(&self) -> Result<DateTime<Utc>, StoreError> {
        let now = self.clock.now();
        self.maybe_reload(now)?;
        let e = self.enqueue_due(now)?;
        if e.pending + e.skipped > 0 {
            tracing::info!(pending = e.pending, skipped = e.skipped, "steps fell due");
        }
        let d = self.enqueue_digest(now)?;
        if d > 0 {
            tracing::info!(messages = d, "digest enqueued");
        }
        self.outbox.drain().await?;
        let (next, what) = self.next_wake(self.clock.now())?;
        self.status.set(now, what);
        Ok(next)
    }

    /// Runs until `shutdown` completes. On shutdown no new send starts; sends in flight get
    /// [`SHUTDOWN_GRACE`] to finish, and what is still unfinished then is put back to
    /// `pending` for the next start (at least once: it may have reached the server).
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()>,
        mut on_wake: impl FnMut(&Status),
    ) {
        tokio::pin!(shutdown);
        loop {
            let wake = self.wake_once();
            tokio::pin!(wake);
            let result = tokio::select! {
                r = &mut wake => r,
                () = &mut shutdown => {
                    self.stop(wake).await;
                    return;
                }
            };
            let next = match result {
                Ok(next) => next,
                Err(e) => {
                    // A full disk or a locked database: nothing is lost (the mark did not
                    // move), so try again at the next wake.
                    tracing::error!(error = %e, "engine wake failed; retrying within a minute");
                    // The sends of the failed wake were cancelled: put what they held back.
                    let _ = self.store.recover_sending(self.clock.now());
                    self.clock.now() + self.max_sleep.min(MAX_SLEEP)
                }
            };
            on_wake(&self.status);
            let wait = (next - self.clock.now()).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                () = &mut shutdown => {
                    tracing::info!("shutting down");
                    return;
                }
            }
        }
    }

    async fn stop(
        &self,
        wake: impl std::future::Future<Output = Result<DateTime<Utc>, StoreError>>,
    ) {
        tracing::info!("shutting down: finishing the sends in flight");
        self.outbox.stop();
        if tokio::time::timeout(SHUTDOWN_GRACE, wake).await.is_err() {
            tracing::warn!("sends still in flight after the grace period are released");
        }
        match self.store.recover_sending(self.clock.now()) {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                released = n,
                "messages put back to pending for the next start"
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot release the messages in flight; the next start will")
            }
        }
        tracing::info!("shutting down");
    }
}

#[cfg(test)]
mod tests;
