//! The daemon loop: one timer, enqueue what fell due, send, sleep until the next thing.
//!
//! At each wake the engine reads the clock once, reloads the config if asked or if the file
//! changed (`reload.rs`), enqueues every step that fell due since its mark (what falls due is
//! decided purely by [`crate::plan::due`]; the mark is stored with the messages, in one
//! transaction) and the day's digest when its time has come, lets the outbox send, then
//! sleeps on its [`Clock`] until the earliest of: the next step, the next retry, the next
//! digest, or 60 s (so a clock step or a suspend is noticed). It wakes early when told (an
//! ack, a reload) and stops on shutdown. It has no other periodic work: an idle daemon wakes
//! once a minute.

mod reload;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use tokio::sync::Notify;

pub use reload::file_hash;

use crate::clock::Clock;
use crate::deliver::outbox::{Failing, Outbox, Run};
use crate::deliver::{Current, digest, enqueue};
use crate::plan::due::{self, Window};
use crate::store::{Store, StoreError};
use crate::token::TokenKey;

/// The longest sleep: a changed clock is noticed within this.
pub const MAX_SLEEP: Duration = Duration::seconds(60);

/// How long a shutdown waits for sends in flight before releasing them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// What one wake enqueued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Messages to send.
    pub pending: usize,
    /// Messages recorded as skipped (missed steps).
    pub skipped: usize,
}

/// What the engine shows the outside world (health, systemd status, the log).
#[derive(Debug, Default)]
pub struct Status {
    last_wake_ms: AtomicI64,
    next: Mutex<Option<due::Next>>,
    failing: Failing,
    mail_folder: Arc<Failing>,
}

impl Status {
    /// When the engine last woke.
    pub fn last_wake(&self) -> Option<DateTime<Utc>> {
        match self.last_wake_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Utc.timestamp_millis_opt(ms).single(),
        }
    }

    /// The next step: "before-7d of bao-cao-9-thang/2025-9M at Fri 26/09/2025 08:00".
    pub fn next(&self) -> Option<due::Next> {
        self.next.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Since when, and why, the engine's wakes fail (a full disk, a read-only or locked
    /// database; the error says what the file system shows): `None` once a wake succeeds
    /// again.
    pub fn failing(&self) -> Option<(DateTime<Utc>, String)> {
        self.failing.get()
    }

    /// Since when, and why, the file transport cannot write the messages that wait for it
    /// (the mail folder full or read-only): `None` once it can, or nothing waits.
    pub fn mail_folder(&self) -> Option<(DateTime<Utc>, String)> {
        self.mail_folder.get()
    }

    /// Records a wake; true if the next step changed, or at the first wake (so the log
    /// says where the engine stands at start, even when nothing is planned).
    fn set(&self, wake: DateTime<Utc>, next: Option<due::Next>) -> bool {
        let first = self
            .last_wake_ms
            .swap(wake.timestamp_millis(), Ordering::Relaxed)
            == 0;
        let mut old = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let changed = first || *old != next;
        *old = next;
        changed
    }
}

/// The engine.
pub struct Engine {
    store: Arc<Store>,
    outbox: Outbox,
    clock: Arc<dyn Clock>,
    current: Arc<Current>,
    key: TokenKey,
    wake: Arc<Notify>,
    status: Arc<Status>,
    /// The config file to watch.
    watch: Option<reload::Watch>,
    reload_requested: AtomicBool,
    /// Set by a reload: the next wake catches up obligations the new config added.
    catch_up: AtomicBool,
    /// The local day of the last registration of the obligations ahead; `None` asks for one
    /// at the next wake (the first, and after a reload).
    registered: Mutex<Option<chrono::NaiveDate>>,
    /// Since when recording the obligations ahead fails (tried at every wake until it
    /// works; logged when that begins, changes and ends, not at every wake).
    ahead_failing: Failing,
    max_sleep: Duration,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine over a store, sending what is in force in `current`.
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        current: Arc<Current>,
        key: TokenKey,
    ) -> Engine {
        let outbox = Outbox::new(store.clone(), clock.clone(), current.clone(), key.clone());
        let status = Status {
            mail_folder: outbox.mail_folder(),
            ..Status::default()
        };
        Engine {
            store,
            outbox,
            clock,
            current,
            key,
            wake: Arc::new(Notify::new()),
            status: Arc::new(status),
            watch: None,
            reload_requested: AtomicBool::new(false),
            catch_up: AtomicBool::new(false),
            registered: Mutex::new(None),
            ahead_failing: Failing::default(),
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
        self.watch = Some(reload::Watch::new(path));
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

    /// Keeps the obligations of the next 12 months recorded ([`Store::register`]), so that
    /// units can answer before their first reminder and every view lists them: at the first
    /// wake, after a reload, and once a day.
    pub fn register_ahead(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        let cfg = self.current.config();
        let today = now.with_timezone(&cfg.organization.timezone).date_naive();
        let mut last = self.registered.lock().unwrap_or_else(|e| e.into_inner());
        if *last == Some(today) {
            return Ok(());
        }
        let planned = enqueue::planned_rows(&cfg, &self.key, now, self.store.first_start()?);
        let r = self.store.register(now, &planned)?;
        if r.any() {
            tracing::info!(
                added = r.added,
                occurrences = r.occurrences,
                withdrawn = r.withdrawn,
                "obligations ahead recorded"
            );
        }
        *last = Some(today);
        Ok(())
    }

    /// Asks for a registration at the next wake (after a reload).
    fn register_again(&self) {
        *self.registered.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Enqueues every step due in (mark, now], in one transaction with the new mark. After a
    /// reload, an obligation the new config adds (no row yet) is caught up like at a first
    /// start: its latest step already past is sent, earlier ones are recorded skipped.
    pub fn enqueue_due(&self, now: DateTime<Utc>) -> Result<Enqueued, StoreError> {
        let caught_up = self.catch_up.swap(false, Ordering::SeqCst);
        let result = self.enqueue_window(now, caught_up);
        if result.is_err() && caught_up {
            // Keep the catch-up a reload asked for for the next wake.
            self.catch_up.store(true, Ordering::SeqCst);
        }
        result
    }

    fn enqueue_window(&self, now: DateTime<Utc>, catch_up: bool) -> Result<Enqueued, StoreError> {
        let cfg = self.current.config();
        let w = Window {
            mark: self.store.engine_until()?,
            now,
            first_start: self.store.first_start()?,
            catch_up,
        };
        let occurrences = due::candidates(&cfg, &w);
        let keys: Vec<String> = occurrences
            .iter()
            .flat_map(|o| {
                let cfg = &cfg;
                cfg.rules[o.rule]
                    .units
                    .iter()
                    .map(move |&u| o.obligation_key(cfg, u))
            })
            .collect();
        let states = self.store.states(&keys)?;
        let due = due::due(&cfg, &occurrences, &w, |k| states.get(k).copied());
        let groups = enqueue::due_rows(&cfg, &self.key, &due);
        let mut out = Enqueued::default();
        for m in groups.iter().flat_map(|g| &g.messages) {
            match m.status {
                crate::state::MessageStatus::Skipped => out.skipped += 1,
                _ => out.pending += 1,
            }
        }
        // The mark never moves back: after the wall clock steps back (NTP correcting a fast
        // clock), the replayed time is already enqueued up to the old mark.
        let until = w.mark.map_or(now, |m| m.max(now));
        self.store.enqueue(now, &groups, Some(until))?;
        Ok(out)
    }

    /// When the engine must wake next, seen from `now`, and the next step.
    pub fn next_wake(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, Option<due::Next>), StoreError> {
        let cfg = self.current.config();
        let next_step = due::next(&cfg, now);
        let next_retry = self.store.next_attempt_at()?;
        let cap = now + self.max_sleep;
        let wake = [
            Some(cap),
            next_step.as_ref().map(|n| n.at),
            next_retry,
            Some(digest::next(&cfg, now)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(cap)
        .max(now);
        Ok((wake, next_step))
    }

    /// One wake: reload if needed, enqueue, send, and say when to wake next.
    pub async fn wake_once(&self) -> Result<DateTime<Utc>, StoreError> {
        let now = self.clock.now();
        if let Some(last) = self.status.last_wake()
            && now < last
        {
            tracing::warn!(
                by_seconds = (last - now).num_seconds(),
                "the wall clock went back; steps already enqueued are not sent again"
            );
        }
        self.maybe_reload(now)?;
        // What is recorded ahead is for the views and early answers; a failure to record
        // it (a full disk, a lock held too long) must not hold up the reminders due now.
        // Tried at every wake while it fails, but said once (and when the reason changes or
        // it works again): a full disk overnight is not a line a minute.
        let ahead = self
            .register_ahead(now)
            .err()
            .map(|e| self.store.explain(&e));
        match self.ahead_failing.record(now, ahead.clone()) {
            Run::Began | Run::Changed => tracing::warn!(
                error = ahead.unwrap_or_default(),
                "cannot record the obligations ahead; tried again at each wake (logged again \
                 when the reason changes)"
            ),
            Run::Same => tracing::debug!(
                error = ahead.unwrap_or_default(),
                "cannot record the obligations ahead, still"
            ),
            Run::Ended(since) => tracing::info!(
                since = %since.to_rfc3339(),
                "the obligations ahead are recorded again"
            ),
            Run::Fine => {}
        }
        let e = self.enqueue_due(now)?;
        if e.pending + e.skipped > 0 {
            tracing::info!(pending = e.pending, skipped = e.skipped, "steps fell due");
        }
        let d = digest::enqueue(&self.store, &self.current.config(), now)?;
        if d > 0 {
            tracing::info!(messages = d, "digest enqueued");
        }
        self.outbox.drain().await?;
        // Each channel's upkeep (Zalo's tokens); a failure is logged and tried next wake.
        let applied = self.current.get();
        for &channel in crate::state::Channel::ALL {
            if let Some(sender) = applied.sender(channel)
                && let Err(e) = sender.maintain(self.clock.now()).await
            {
                tracing::warn!(%channel, error = %e, "channel upkeep failed; tried again at the next wake");
            }
        }
        let (next, what) = self.next_wake(self.clock.now())?;
        if self.status.set(now, what.clone()) {
            match &what {
                Some(n) => tracing::info!("next: {}", n.text),
                None => tracing::info!("next: nothing planned within a year"),
            }
        }
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
            // The error with what the file system says about it (read-only, full, whose).
            let failing = result.as_ref().err().map(|e| self.store.explain(e));
            let run = self
                .status
                .failing
                .record(self.clock.now(), failing.clone());
            let next = match (result, failing) {
                (Ok(next), _) => {
                    if let Run::Ended(since) = run {
                        tracing::info!(since = %since.to_rfc3339(), "the engine's wakes succeed again; what fell due meanwhile is sent now");
                    }
                    next
                }
                (Err(_), error) => {
                    // A full disk or a locked database: nothing is lost (the mark did not
                    // move), so try again at the next wake. Said once per run of failures
                    // (and when the reason changes), not every minute: `/healthz` says
                    // it all along.
                    let error = error.unwrap_or_default();
                    match run {
                        Run::Same => tracing::debug!(%error, "engine wake failed again"),
                        _ => {
                            tracing::error!(%error, "engine wake failed; retrying every minute until it succeeds (reminders wait, nothing is lost)")
                        }
                    }
                    // The sends of the failed wake were cancelled: put what they held back.
                    let _ = self.store.recover_sending(self.clock.now());
                    self.clock.now() + self.max_sleep.min(MAX_SLEEP)
                }
            };
            on_wake(&self.status);
            tokio::select! {
                () = self.clock.sleep_until(next) => {}
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
