//! The outbox worker: claims due messages, renders and sends them, records each outcome.
//!
//! A step returns an [`Outcome`] so callers (the engine, tests, benchmarks) drive it to
//! completion. Messages are sent a few at a time over the mailer's pooled connections, no
//! faster than `max_per_minute`, and each outcome is written as soon as it is known, so a
//! crash leaves only the messages actually in flight marked `sending`; the next start sends
//! those again (at least once, with the same Message-ID). A transient failure is retried
//! with exponential backoff from 1 minute to 1 hour for 48 hours, then marked failed; a
//! permanent one is failed at once. Nothing is deleted and every error is kept on its row.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use super::context;
use super::email::{self, Mailer, Outgoing, SendError};
use super::templates::Templates;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::{Claimed, Store, StoreError};
use crate::token::TokenKey;

/// How many messages one step sends at most (then the engine looks at the clock again).
pub const BATCH: usize = 64;
/// How many sends run at once (the SMTP pool holds up to 4 connections).
pub const PARALLEL: usize = 4;
/// How long one drain sends before it lets the engine look around.
pub const DRAIN_BUDGET: StdDuration = StdDuration::from_secs(45);
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
}

/// What the worker sends with; replaced as a whole on reload.
#[derive(Debug)]
pub struct Parts {
    /// The config (for addresses, links and names).
    pub config: Arc<Config>,
    /// The templates.
    pub templates: Arc<Templates>,
    /// The transport.
    pub mailer: Arc<Mailer>,
    /// The key ack tokens are derived from.
    pub key: TokenKey,
}

/// Spaces sends `interval` apart (the `max_per_minute` limit).
#[derive(Debug)]
struct Limiter {
    interval: StdDuration,
    next: Mutex<tokio::time::Instant>,
}

impl Limiter {
    async fn wait(&self) {
        let now = tokio::time::Instant::now();
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        // Not even a timer when no wait is needed: an idle wake stays one wake.
        if at > now {
            tokio::time::sleep_until(at).await;
        }
    }
}

/// The outbox worker.
pub struct Outbox {
    stopping: std::sync::atomic::AtomicBool,
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    parts: std::sync::RwLock<Arc<Parts>>,
    limiter: Arc<Limiter>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

fn interval(cfg: &Config) -> StdDuration {
    let per_minute = cfg.email.smtp.as_ref().map_or(0, |s| s.max_per_minute);
    if per_minute == 0 || cfg.email.transport == crate::config::Transport::File {
        StdDuration::ZERO
    } else {
        StdDuration::from_secs(60) / per_minute
    }
}

impl Outbox {
    /// A worker over `store`, sending with `parts`.
    pub fn new(store: Arc<Store>, clock: Arc<dyn Clock>, parts: Parts) -> Outbox {
        let limiter = Arc::new(Limiter {
            interval: interval(&parts.config),
            next: Mutex::new(tokio::time::Instant::now()),
        });
        Outbox {
            stopping: std::sync::atomic::AtomicBool::new(false),
            store,
            clock,
            parts: std::sync::RwLock::new(Arc::new(parts)),
            limiter,
        }
    }

    /// Stops taking new messages (shutdown): a step in progress sends what it has claimed.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Swaps in a new config, templates and mailer (after a reload).
    pub fn replace(&self, parts: Parts) {
        *self.parts.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(parts);
    }

    fn parts(&self) -> Arc<Parts> {
        self.parts.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sends up to [`BATCH`] due messages, [`PARALLEL`] at a time; returns what happened.
    /// A message is claimed (marked `sending`) only when a sender is free to take it, so at
    /// most [`PARALLEL`] rows are `sending` at any moment: exactly those in flight.
    pub async fn step(&self) -> Result<Outcome, StoreError> {
        if self
            .store
            .next_attempt_at()?
            .is_none_or(|t| t > self.clock.now())
        {
            return Ok(Outcome::default());
        }
        let parts = self.parts();
        let sem = Arc::new(Semaphore::new(PARALLEL));
        let mut tasks = JoinSet::new();
        let mut out = Outcome::default();
        for _ in 0..BATCH {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            // Wait for the rate limit first, so the attempt is recorded when it is made.
            self.limiter.wait().await;
            let Some(m) = self.store.claim_due(self.clock.now(), 1)?.pop() else {
                break;
            };
            let (store, clock, parts) = (self.store.clone(), self.clock.clone(), parts.clone());
            tasks.spawn(async move {
                let r = deliver(&store, &*clock, &parts, m).await;
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
            total.sent += o.sent;
            total.retried += o.retried;
            total.failed += o.failed;
        }
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
        // A panicking send leaves its message `sending`: the next start resends it.
        Err(e) => tracing::error!(error = %e, "a send task failed"),
    }
    Ok(())
}

enum Delivered {
    Sent,
    Retry,
    Failed,
}

/// The templates that are about an obligation, and so carry its ack link.
fn has_ack_link(template: &str) -> bool {
    matches!(template, "before" | "due" | "after" | "escalated")
}

async fn send_email(
    parts: &Parts,
    m: &Claimed,
    now: DateTime<Utc>,
) -> (Option<String>, Result<(), SendError>) {
    let cfg = &parts.config;
    let ctx = if has_ack_link(&m.template) {
        let url = context::ack_url(cfg, &parts.key.token(&m.obligation));
        context::with_ack_url(&m.context, &url)
    } else {
        m.context.clone()
    };
    let rendered = match parts.templates.render(&m.template, &ctx) {
        Ok(r) => r,
        Err(e) => return (None, Err(SendError::Permanent(e.to_string()))),
    };
    let name = ctx
        .pointer("/recipient/name")
        .and_then(Value::as_str)
        .unwrap_or(&m.recipient)
        .to_string();
    let out = Outgoing {
        to_name: Some(&name),
        to_addr: &m.recipient,
        message_id: &m.message_id,
        rendered: &rendered,
        date: now,
    };
    let subject = Some(rendered.subject.clone());
    match email::build(cfg, &out) {
        Ok(msg) => (subject, parts.mailer.send(msg).await),
        Err(e) => (subject, Err(e)),
    }
}

async fn deliver(
    store: &Store,
    clock: &dyn Clock,
    parts: &Parts,
    m: Claimed,
) -> Result<Delivered, StoreError> {
    let (subject, result) = match m.channel.as_str() {
        "email" => send_email(parts, &m, clock.now()).await,
        other => (
            None,
            Err(SendError::Permanent(format!(
                "channel `{other}` is not available in this version"
            ))),
        ),
    };
    let now = clock.now();
    let subject = subject.as_deref();
    let (obligation, step, channel) = (&m.obligation, &m.step, &m.channel);
    Ok(match result {
        Ok(()) => {
            store.mark_sent(m.id, now, subject)?;
            tracing::info!(%obligation, %step, %channel, attempts = m.attempts, "message sent");
            Delivered::Sent
        }
        Err(SendError::Transient(e)) if now - m.first_attempt_at < RETRY_FOR => {
            let next = now + backoff(m.attempts);
            store.mark_retry(m.id, next, &e, subject)?;
            tracing::warn!(%obligation, %step, %channel, attempts = m.attempts, error = %e,
                next_attempt = %next.to_rfc3339(), "message not sent; will retry");
            Delivered::Retry
        }
        Err(SendError::Transient(e)) => {
            let e = format!("gave up after {} h of retries: {e}", RETRY_FOR.num_hours());
            store.mark_failed(m.id, &e, subject)?;
            tracing::error!(%obligation, %step, %channel, attempts = m.attempts, error = %e, "message failed");
            Delivered::Failed
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
