//! The daemon loop: one timer, enqueue what fell due, send, sleep until the next thing.
//!
//! At each wake the engine reads the clock once, enqueues every step that fell due since its
//! mark (persisted in the store with the messages, in one transaction), lets the outbox send,
//! then sleeps until the earliest of: the next step, the next retry, or 60 s (so a clock step
//! or a suspend is noticed). It wakes early when told (an ack, a reload) and stops on
//! shutdown. It has no other periodic work, so an idle daemon wakes once a minute.
//!
//! Catch-up (DESIGN §5): when several steps of one occurrence fell due since the mark (the
//! daemon was down), only the latest is sent; the earlier ones are recorded `skipped`.
//! Occurrences whose deadline passed before the database was created are never chased.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Config;
use crate::deliver::enqueue;
use crate::deliver::outbox::Outbox;
use crate::plan::{self, Filter};
use crate::store::{Store, StoreError};
use crate::token::TokenKey;

/// The longest sleep: a changed clock is noticed within this.
pub const MAX_SLEEP: Duration = Duration::seconds(60);

/// How far back the first wake looks for occurrences still open.
const FIRST_LOOKBACK_DAYS: i64 = 400;

/// What one wake enqueued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enqueued {
    /// Messages to send.
    pub pending: usize,
    /// Messages recorded as skipped (missed steps).
    pub skipped: usize,
}

/// The engine.
pub struct Engine {
    store: Arc<Store>,
    outbox: Arc<Outbox>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    key: TokenKey,
    wake: Arc<Notify>,
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
            config,
            key,
            wake: Arc::new(Notify::new()),
        }
    }

    /// A handle that wakes the engine early.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Enqueues every step due in (mark, now], in one transaction with the new mark.
    pub fn enqueue_due(&self, now: DateTime<Utc>) -> Result<Enqueued, StoreError> {
        let cfg = &*self.config;
        let tz = cfg.organization.timezone;
        let first_start = self.store.first_start()?;
        let mark = self.store.engine_until()?;
        let today = now.with_timezone(&tz).date_naive();
        let from = match mark {
            Some(m) => m.with_timezone(&tz).date_naive(),
            None => today - Duration::days(FIRST_LOOKBACK_DAYS),
        };
        let p = plan::plan(cfg, from.min(today), today, Filter::default());
        let mut groups = Vec::new();
        let mut out = Enqueued::default();
        for occ in &p.occurrences {
            if occ.deadline.with_timezone(&Utc) <= first_start {
                continue;
            }
            let due: Vec<_> = occ
                .steps
                .iter()
                .filter(|s| {
                    let at = s.at.with_timezone(&Utc);
                    mark.is_none_or(|m| at > m) && at <= now
                })
                .collect();
            let units = &cfg.rules[occ.rule].units;
            for (i, step) in due.iter().enumerate() {
                let skipped = i + 1 < due.len();
                let rows = enqueue::step_rows(cfg, &self.key, occ, step, units, skipped);
                if skipped {
                    out.skipped += rows.messages.len();
                } else {
                    out.pending += rows.messages.len();
                }
                groups.push(rows);
            }
        }
        self.store.enqueue(now, &groups, Some(now))?;
        Ok(out)
    }

    /// When the engine must wake next, seen from `now`.
    pub fn next_wake(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, StoreError> {
        let cfg = &*self.config;
        let tz = cfg.organization.timezone;
        let today = now.with_timezone(&tz).date_naive();
        let cap = now + MAX_SLEEP;
        // Only a step within the cap matters: a later one is found at a later wake.
        let horizon = (cap.with_timezone(&tz).date_naive()).max(today);
        let next_step = plan::plan(cfg, today, horizon, Filter::default())
            .occurrences
            .iter()
            .flat_map(|o| o.steps.iter().map(|s| s.at.with_timezone(&Utc)))
            .filter(|at| *at > now)
            .min();
        let next_retry = self.store.next_attempt_at()?;
        Ok([Some(cap), next_step, next_retry]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(cap)
            .max(now))
    }

    /// One wake: enqueue, send, and say when to wake next.
    pub async fn wake_once(&self) -> Result<DateTime<Utc>, StoreError> {
        let now = self.clock.now();
        let e = self.enqueue_due(now)?;
        if e.pending + e.skipped > 0 {
            tracing::info!(pending = e.pending, skipped = e.skipped, "steps fell due");
        }
        self.outbox.drain().await?;
        self.next_wake(self.clock.now())
    }

    /// Runs until `shutdown` completes.
    pub async fn run(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let next = match self.wake_once().await {
                Ok(next) => next,
                Err(e) => {
                    // A full disk or a locked database: nothing is lost (the mark did not
                    // move), so try again at the next wake.
                    tracing::error!(error = %e, "engine wake failed; retrying within a minute");
                    self.clock.now() + MAX_SLEEP
                }
            };
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
}

#[cfg(test)]
mod tests;
