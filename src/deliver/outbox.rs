//! The outbox worker: claims due messages, renders and sends them, records each outcome.
//!
//! A step returns an [`Outcome`] so callers (the engine, tests, benchmarks) drive it to
//! completion. Each channel has its own lane: [`PARALLEL`] sends at a time, no faster than
//! its `max_per_minute`, so a slow webhook receiver never holds up the mail. Each outcome is
//! written as soon as it is known, so a crash leaves only the messages actually in flight
//! marked `sending`; the next start sends those again (at least once, with the same
//! Message-ID or `webhook-id`). A transient failure is retried with exponential backoff
//! from 1 minute to 1 hour, and not before the instant the other side named (`Retry-After`),
//! for 48 hours, then marked failed; a permanent one is failed at once. A render or send
//! that panics fails its message with the reason (it would panic again), and never leaves it
//! `sending`. Nothing is deleted and every error is kept on its row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::channel::{Outgoing, Receipt, SendError};
use super::limit::Limiter;
use super::{Applied, Current, context};
use crate::clock::Clock;
use crate::config::Config;
use crate::state::Channel;
use crate::store::{Message, Store, StoreError};
use crate::token::TokenKey;

/// How many messages one step sends at most (then the engine looks at the clock again).
pub const BATCH: usize = 64;
/// How many sends of one channel run at once (the SMTP pool holds up to 4 connections).
pub const PARALLEL: usize = 4;
/// How long one drain sends before it lets the engine look around.
pub const DRAIN_BUDGET: StdDuration = StdDuration::from_secs(45);
/// How long a lane takes new messages in one step (a rate-limit slot past it is left for
/// the next step): a step ends at most this long, plus the slowest send in flight (the
/// channel's timeout), after it began, so a stalled receiver on one channel slows the
/// others' next batch, never stops it.
pub const LANE_BUDGET: StdDuration = StdDuration::from_secs(10);
/// Retries stop this long after the first attempt.
pub const RETRY_FOR: Duration = Duration::hours(48);

/// The wait before attempt `attempts + 1`: 1, 2, 4, … minutes, at most an hour.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(6);
    Duration::minutes(1 << exp).min(Duration::hours(1))
}

/// What one step of the worker did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Delivered.
    pub sent: usize,
    /// Failed transiently, to be retried.
    pub retried: usize,
    /// Failed for good.
    pub failed: usize,
}

impl Outcome {
    /// Messages handled.
    pub fn total(&self) -> usize {
        self.sent + self.retried + self.failed
    }

    fn add(&mut self, o: Outcome) {
        self.sent += o.sent;
        self.retried += o.retried;
        self.failed += o.failed;
    }
}

/// Since when, and why, something keeps failing (the engine's wakes, the file transport's
/// writes): the first failure of a run with the latest error, empty once it succeeds
/// again. Shared between what fails and `/healthz`, which reports it while it lasts.
#[derive(Debug, Default)]
pub struct Failing(std::sync::Mutex<Option<(DateTime<Utc>, String)>>);

/// What one outcome did to a [`Failing`] (the caller logs the changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// The first failure after a success.
    Began,
    /// Failing still, with another error than before.
    Changed,
    /// Failing still, with the same error.
    Same,
    /// A success after failures since this instant.
    Ended(DateTime<Utc>),
    /// A success after a success.
    Fine,
}

impl Failing {
    /// Since when, and the latest error; `None` while things work.
    pub fn get(&self) -> Option<(DateTime<Utc>, String)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records an outcome at `now`: `Some(error)` for a failure, `None` for a success.
    pub fn record(&self, now: DateTime<Utc>, error: Option<String>) -> Run {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match (f.take(), error) {
            (None, None) => Run::Fine,
            (Some((since, _)), None) => Run::Ended(since),
            (None, Some(e)) => {
                *f = Some((now, e));
                Run::Began
            }
            (Some((since, old)), Some(e)) => {
                let run = if same_reason(&old, &e) {
                    Run::Same
                } else {
                    Run::Changed
                };
                *f = Some((since, e));
                run
            }
        }
    }
}

/// Two errors that differ only in their numbers ("full, 812 KiB free" and "full, 640 KiB
/// free") are the same reason: a changed figure is not a new line in the log.
fn same_reason(a: &str, b: &str) -> bool {
    let words = |s: &str| {
        s.chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
    };
    a == b || words(a) == words(b)
}

/// True while email goes to files (`email.transport = "file"`): then every transient
/// failure of the email channel is the local disk's (a full or read-only mail folder).
fn writes_files(cfg: &Config) -> bool {
    cfg.email.transport == crate::config::Transport::File
}

/// The outbox worker.
pub struct Outbox {
    stopping: Arc<std::sync::atomic::AtomicBool>,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    current: Arc<Current>,
    key: TokenKey,
    /// One rate limit per channel, in [`Channel::ALL`] order.
    limiters: Vec<(Channel, Arc<Limiter>)>,
    /// Since when the file transport cannot write its messages (a full disk, a read-only
    /// folder), while some wait for it.
    mail_folder: Arc<Failing>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// The time between two sends of `channel` under its `max_per_minute` (none for files).
fn interval(cfg: &Config, channel: Channel) -> StdDuration {
    let per_minute = match channel {
        Channel::Email if cfg.email.transport == crate::config::Transport::File => 0,
        Channel::Email => cfg.email.smtp.as_ref().map_or(0, |s| s.max_per_minute),
        Channel::Telegram => cfg
            .channels
            .telegram
            .as_ref()
            .map_or(0, |t| t.max_per_minute),
        Channel::Webhook => cfg
            .channels
            .webhook
            .as_ref()
            .map_or(0, |w| w.max_per_minute),
        Channel::Zalo => cfg.channels.zalo.as_ref().map_or(0, |z| z.max_per_minute),
    };
    if per_minute == 0 {
        StdDuration::ZERO
    } else {
        StdDuration::from_secs(60) / per_minute
    }
}

impl Outbox {
    /// A worker over `store`, sending with what is in force in `current` (each step reads
    /// the rate limits in force, so a reload's new `max_per_minute` applies at once).
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        current: Arc<Current>,
        key: TokenKey,
    ) -> Outbox {
        let cfg = current.config();
        let limiters = Channel::ALL
            .iter()
            .map(|&c| (c, Arc::new(Limiter::new(interval(&cfg, c)))))
            .collect();
        Outbox {
            stopping: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            store,
            clock,
            current,
            key,
            limiters,
            mail_folder: Arc::default(),
        }
    }

    /// Since when, and why, the file transport cannot write its messages: shown by
    /// `/healthz` while messages wait for it.
    pub fn mail_folder(&self) -> Arc<Failing> {
        self.mail_folder.clone()
    }

    /// Ends a run of mail-folder failures once no email waits for that folder any more
    /// (each was written, skipped by an ack, or given up), or email no longer goes to
    /// files (a reload): there is nothing left that it holds up.
    fn settle_mail_folder(&self, cfg: &Config) -> Result<(), StoreError> {
        if self.mail_folder.get().is_some()
            && (!writes_files(cfg) || self.store.next_attempt_on(Some(Channel::Email))?.is_none())
        {
            self.mail_folder.record(self.clock.now(), None);
        }
        Ok(())
    }

    /// Stops taking new messages (shutdown): a step in progress sends what it has claimed.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Sends up to [`BATCH`] due messages of each channel, each channel in its own lane, for
    /// up to [`LANE_BUDGET`]; returns what happened.
    pub async fn step(&self) -> Result<Outcome, StoreError> {
        self.settle_mail_folder(&self.current.config())?;
        if self
            .store
            .next_attempt_at()?
            .is_none_or(|t| t > self.clock.now())
        {
            return Ok(Outcome::default());
        }
        let applied = self.current.get();
        // Each unit's page link at its generation in force (`nhacviec links --rotate` bumps
        // one from another process).
        let generations = Arc::new(self.store.unit_generations()?);
        let mut lanes = JoinSet::new();
        for (channel, limiter) in &self.limiters {
            // The limit in force: a reload may have changed it.
            limiter
                .set_interval(interval(&applied.config, *channel))
                .await;
            let lane = Lane {
                channel: *channel,
                limiter: limiter.clone(),
                stopping: self.stopping.clone(),
                store: self.store.clone(),
                clock: self.clock.clone(),
                applied: applied.clone(),
                key: self.key.clone(),
                generations: generations.clone(),
                mail_folder: self.mail_folder.clone(),
            };
            lanes.spawn(lane.step());
        }
        let mut out = Outcome::default();
        let mut error = None;
        while let Some(joined) = lanes.join_next().await {
            match joined {
                Ok(Ok(o)) => out.add(o),
                Ok(Err(e)) => error = Some(e),
                Err(e) => tracing::error!(error = %e, "an outbox lane failed"),
            }
        }
        error.map_or(Ok(out), Err)
    }

    /// Runs steps until nothing is due now, or for about [`DRAIN_BUDGET`]; returns the
    /// total. The budget keeps one wake short (the engine reloads, enqueues and tells the
    /// watchdog between wakes) when the server is slow or the rate limit is low: what is
    /// left is due, so the engine wakes again at once.
    pub async fn drain(&self) -> Result<Outcome, StoreError> {
        let started = tokio::time::Instant::now();
        let mut total = Outcome::default();
        loop {
            if started.elapsed() > DRAIN_BUDGET {
                return Ok(total);
            }
            let o = self.step().await?;
            if o.total() == 0 {
                return Ok(total);
            }
            total.add(o);
        }
    }
}

/// One channel's share of a step: its messages, its rate limit, its senders.
struct Lane {
    channel: Channel,
    limiter: Arc<Limiter>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    applied: Arc<Applied>,
    key: TokenKey,
    generations: Arc<HashMap<String, u32>>,
    mail_folder: Arc<Failing>,
}

impl Lane {
    /// Sends up to [`BATCH`] due messages of the lane's channel, [`PARALLEL`] at a time. A
    /// message is claimed (marked `sending`) only when a sender is free to take it, so at
    /// most [`PARALLEL`] rows of a channel are `sending` at any moment: exactly those in
    /// flight.
    async fn step(self) -> Result<Outcome, StoreError> {
        let started = tokio::time::Instant::now();
        let sem = Arc::new(Semaphore::new(PARALLEL));
        let mut tasks = JoinSet::new();
        let mut out = Outcome::default();
        let stopping = || self.stopping.load(std::sync::atomic::Ordering::SeqCst);
        for _ in 0..BATCH {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            if stopping() || started.elapsed() > LANE_BUDGET {
                break;
            }
            // Nothing of this channel due: no slot of its rate limit taken.
            if self
                .store
                .next_attempt_on(Some(self.channel))?
                .is_none_or(|t| t > self.clock.now())
            {
                break;
            }
            // Wait for the rate limit first, so the attempt is recorded when it is made; a
            // slot past the budget is left for the next round.
            if !self.limiter.wait_before(Some(started + LANE_BUDGET)).await || stopping() {
                break;
            }
            let Some(m) = self
                .store
                .claim_due_on(self.clock.now(), Some(self.channel), 1)?
                .pop()
            else {
                break;
            };
            let (store, clock, applied, keys, folder) = (
                self.store.clone(),
                self.clock.clone(),
                self.applied.clone(),
                (self.key.clone(), self.generations.clone()),
                self.mail_folder.clone(),
            );
            tasks.spawn(async move {
                let r = deliver(&store, clock, applied, keys, m, &folder).await;
                drop(permit);
                r
            });
            // Collect what has finished, so an error surfaces early.
            while let Some(joined) = tasks.try_join_next() {
                tally(&mut out, joined)?;
            }
        }
        while let Some(joined) = tasks.join_next().await {
            tally(&mut out, joined)?;
        }
        Ok(out)
    }
}

fn tally(
    out: &mut Outcome,
    joined: Result<Result<Delivered, StoreError>, tokio::task::JoinError>,
) -> Result<(), StoreError> {
    match joined {
        Ok(Ok(Delivered::Sent)) => out.sent += 1,
        Ok(Ok(Delivered::Retry)) => out.retried += 1,
        Ok(Ok(Delivered::Failed)) => out.failed += 1,
        Ok(Err(e)) => return Err(e),
        // Only recording the outcome runs here outside the guarded attempt; a store error
        // there leaves the row `sending` for the next start.
        Err(e) => tracing::error!(error = %e, "a send task failed"),
    }
    Ok(())
}

enum Delivered {
    Sent,
    Retry,
    Failed,
}

/// Renders `m` as it leaves at `now` and sends it; returns the subject rendered, if any,
/// and the outcome.
async fn attempt(
    applied: Arc<Applied>,
    key: TokenKey,
    generations: Arc<HashMap<String, u32>>,
    m: Message,
    now: DateTime<Utc>,
) -> (Option<String>, Result<Receipt, SendError>) {
    let cfg = &applied.config;
    let Some(sender) = applied.sender(m.channel) else {
        let e = format!(
            "the config in force has no `[channels.{0}]`, so nothing can be sent on {0}: set the channel up again, or take this address off the unit",
            m.channel
        );
        return (None, Err(SendError::Permanent(e)));
    };
    let (kind, mut ctx) = context::at_send(cfg, m.template, &m.context, now);
    if m.template.step_kind().is_some() {
        let unit = ctx
            .pointer("/unit/id")
            .and_then(Value::as_str)
            .unwrap_or("");
        let unit_token = context::unit_token(&key, &generations, unit);
        let tokens = context::LinkTokens {
            ack: &key.token(&m.obligation),
            unit: &unit_token,
        };
        ctx = context::with_links(cfg, ctx, kind, tokens);
    }
    let (ctx, rendered) = match super::render(cfg, &applied.templates, m.channel, kind, ctx) {
        Ok(r) => r,
        Err(e) => return (None, Err(SendError::Permanent(e.to_string()))),
    };
    let name = ctx.pointer("/recipient/name").and_then(Value::as_str);
    let out = Outgoing {
        channel: m.channel,
        key: &m.obligation,
        kind,
        context: &ctx,
        to_name: name,
        to: &m.recipient,
        message_id: &m.message_id,
        rendered: &rendered,
        date: now,
    };
    let result = sender.send(&out).await;
    (Some(rendered.subject.clone()), result)
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a panic said.
fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
        Err(e) => e.to_string(),
    }
}

/// Attempts `m` and records the outcome. The attempt runs as its own task, so that a
/// panic in a template or a sender fails this message, with the reason, instead of leaving
/// it `sending` for ever (each restart would pick it up and panic again). An email written
/// to a file also tells `mail_folder` whether the folder took it.
async fn deliver(
    store: &Store,
    clock: Arc<dyn Clock>,
    applied: Arc<Applied>,
    (key, generations): (TokenKey, Arc<HashMap<String, u32>>),
    m: Message,
    mail_folder: &Failing,
) -> Result<Delivered, StoreError> {
    let to_file = m.channel == Channel::Email && writes_files(&applied.config);
    let job = tokio::spawn(attempt(applied, key, generations, m.clone(), clock.now()));
    // If this task is dropped (a shutdown's grace ran out), the attempt goes with it.
    let _abort = AbortOnDrop(job.abort_handle());
    let (subject, result) = match job.await {
        Ok(r) => r,
        Err(e) => {
            let why = format!(
                "rendering or sending this message crashed ({}); it is not tried again: report it to the developers",
                panic_text(e)
            );
            (None, Err(SendError::Permanent(why)))
        }
    };
    let now = clock.now();
    if to_file {
        let error = match &result {
            Ok(_) => None,
            Err(SendError::Transient(e) | SendError::RetryAt(e, _)) => Some(e.clone()),
            // Not the folder's doing (an address that cannot be used).
            Err(SendError::Permanent(_)) => mail_folder.get().map(|(_, e)| e),
        };
        if let Run::Ended(since) = mail_folder.record(now, error) {
            tracing::info!(since = %since.to_rfc3339(), "the mail folder takes messages again; those that waited are written at their next attempt");
        }
    }
    let subject = subject.as_deref();
    let (obligation, step, channel) = (&m.obligation, &m.step, m.channel);
    let first_attempt = m.first_attempt_at.unwrap_or(now);
    Ok(match result {
        Ok(receipt) => {
            store.mark_sent(m.id, now, subject, receipt.remote_id.as_deref())?;
            tracing::info!(%obligation, %step, %channel, attempts = m.attempts, "message sent");
            Delivered::Sent
        }
        Err(SendError::Transient(e) | SendError::RetryAt(e, _))
            if now - first_attempt >= RETRY_FOR =>
        {
            let e = format!("gave up after {} h of retries: {e}", RETRY_FOR.num_hours());
            store.mark_failed(m.id, &e, subject)?;
            tracing::error!(%obligation, %step, %channel, attempts = m.attempts, error = %e, "message failed");
            Delivered::Failed
        }
        Err(SendError::Transient(e)) => {
            let next = now + backoff(m.attempts);
            store.mark_retry(m.id, next, &e, subject)?;
            tracing::warn!(%obligation, %step, %channel, attempts = m.attempts, error = %e,
                next_attempt = %next.to_rfc3339(), "message not sent; will retry");
            Delivered::Retry
        }
        Err(SendError::RetryAt(e, at)) => {
            // The other side's instant, but never sooner than the backoff.
            let next = at.max(now + backoff(m.attempts));
            store.mark_retry(m.id, next, &e, subject)?;
            tracing::warn!(%obligation, %step, %channel, attempts = m.attempts, error = %e,
                next_attempt = %next.to_rfc3339(), "message not sent; will retry when asked");
            Delivered::Retry
        }
        Err(SendError::Permanent(e)) => {
            store.mark_failed(m.id, &e, subject)?;
            tracing::error!(%obligation, %step, %channel, attempts = m.attempts, error = %e, "message failed");
            Delivered::Failed
        }
    })
}

#[cfg(test)]
mod tests;
