//! The outbox: one row per step, channel and recipient, and one type for it, [`Message`].
//!
//! A message is inserted `pending` (or `skipped`), claimed `sending` by a sender with one more
//! attempt, and ends `sent` or `failed`, or goes back to `pending` with its next attempt. A
//! crash leaves exactly the claimed messages `sending`; [`Store::recover_sending`] puts them
//! back at the next start (at least once, with the same Message-ID).

use chrono::{DateTime, Duration, Utc};
use rusqlite::{Connection, Transaction, params};
use serde_json::Value;

use super::{Result, Store, StoreError, immediate, ms, opt_ms};
use crate::state::{Channel, MessageStatus, ObligationState, TemplateKind};

/// One message: what the outbox inserts, what a sender claims, what the tests read back.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Row id; 0 until stored.
    pub id: i64,
    /// The obligation key it is about, or another key (`digest/2025-10-06`, `admin/…`).
    pub obligation: String,
    /// Step name (`before-7d`), or the message's role (`digest`, `notice`, `done-notice`).
    pub step: String,
    /// How it travels.
    pub channel: Channel,
    /// Address, URL or chat id.
    pub recipient: String,
    /// The templates it is rendered from.
    pub template: TemplateKind,
    /// The template's data, fixed when it was enqueued (it holds no secret; the ack link
    /// and the words that depend on the day it leaves are added when it is rendered).
    pub context: Value,
    /// The Message-ID, fixed at enqueue so a resend carries the same one.
    pub message_id: String,
    /// Where it is in its life.
    pub status: MessageStatus,
    /// Attempts so far (including the one in flight while `sending`).
    pub attempts: u32,
    /// When it may be sent next (`pending` only); for a new message, when it may first be.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was first attempted.
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// When it was last attempted.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
    /// The subject as last rendered.
    pub subject: Option<String>,
    /// The last error, kept after a retry or failure.
    pub last_error: Option<String>,
}

impl Message {
    /// A new `pending` message that may be sent from `not_before` on.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        obligation: String,
        step: String,
        channel: Channel,
        recipient: String,
        template: TemplateKind,
        context: Value,
        message_id: String,
        not_before: DateTime<Utc>,
    ) -> Message {
        Message {
            id: 0,
            obligation,
            step,
            channel,
            recipient,
            template,
            context,
            message_id,
            status: MessageStatus::Pending,
            attempts: 0,
            next_attempt_at: Some(not_before),
            first_attempt_at: None,
            last_attempt_at: None,
            sent_at: None,
            subject: None,
            last_error: None,
        }
    }

    /// The same message recorded `skipped` (a step missed during downtime: never sent).
    pub fn skipped(mut self) -> Message {
        self.status = MessageStatus::Skipped;
        self.next_attempt_at = None;
        self
    }
}

/// How many messages are in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Waiting to be sent (including retries).
    pub pending: u64,
    /// Being sent now (or cut off by a crash).
    pub sending: u64,
    /// Delivered to the server or file.
    pub sent: u64,
    /// Given up on.
    pub failed: u64,
    /// Missed during downtime or made moot by an ack: recorded and not sent.
    pub skipped: u64,
}

/// Messages of one channel in one status, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelCount {
    /// The channel.
    pub channel: Channel,
    /// The status.
    pub status: MessageStatus,
    /// How many.
    pub n: u64,
}

/// What `/healthz` watches in the outbox besides its counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// The counts per status.
    pub counts: OutboxCounts,
    /// How many messages are `sending` since before the instant asked about: a sender that
    /// never came back.
    pub stuck: u64,
    /// The one of them `sending` the longest.
    pub oldest_stuck: Option<Message>,
    /// How many messages failed for good since the instant asked about.
    pub failed: u64,
    /// The one of them that failed last.
    pub latest_failed: Option<Message>,
}

/// Why a reminder was not sent: the unit acknowledged `state` first.
pub(super) fn moot_reason(state: ObligationState) -> String {
    format!("not sent: the unit acknowledged {state} first")
}

const COLUMNS: &str = "id, obligation, step, channel, recipient, template, context, message_id, \
     status, attempts, next_attempt_at, first_attempt_at, last_attempt_at, sent_at, subject, \
     last_error";

/// A row of [`COLUMNS`].
fn message_row(r: &rusqlite::Row<'_>) -> Result<Message> {
    let id: i64 = r.get(0)?;
    let context: String = r.get(6)?;
    Ok(Message {
        id,
        obligation: r.get(1)?,
        step: r.get(2)?,
        channel: r.get(3)?,
        recipient: r.get(4)?,
        template: r.get(5)?,
        context: serde_json::from_str(&context)
            .map_err(|e| StoreError::Corrupt(format!("context of message {id}: {e}")))?,
        message_id: r.get(7)?,
        status: r.get(8)?,
        attempts: r.get(9)?,
        next_attempt_at: opt_ms(r.get(10)?)?,
        first_attempt_at: opt_ms(r.get(11)?)?,
        last_attempt_at: opt_ms(r.get(12)?)?,
        sent_at: opt_ms(r.get(13)?)?,
        subject: r.get(14)?,
        last_error: r.get(15)?,
    })
}

fn select(conn: &Connection, filter: &str, p: impl rusqlite::Params) -> Result<Vec<Message>> {
    let sql = format!("SELECT {COLUMNS} FROM messages {filter}");
    let mut st = conn.prepare_cached(&sql)?;
    let mut rows = st.query(p)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(message_row(r)?);
    }
    Ok(out)
}

/// Inserts messages (one already there by its unique key is left as it is), linking each to
/// its obligation row if it has one; returns how many were new.
pub(super) fn insert(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    messages: &[Message],
) -> Result<usize> {
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO messages
             (obligation, obligation_id, step, channel, recipient, template, context,
              message_id, status, created_at, next_attempt_at)
         VALUES (?1, (SELECT id FROM obligations WHERE key = ?1), ?2, ?3, ?4, ?5, ?6,
                 ?7, ?8, ?9, ?10)",
    )?;
    let mut inserted = 0;
    for m in messages {
        inserted += ins.execute(params![
            m.obligation,
            m.step,
            m.channel,
            m.recipient,
            m.template,
            m.context.to_string(),
            m.message_id,
            m.status,
            ms(now),
            m.next_attempt_at.map(ms),
        ])?;
    }
    Ok(inserted)
}

impl Store {
    /// Enqueues messages that belong to no step (digest, notices), in one transaction.
    pub fn enqueue_other(&self, now: DateTime<Utc>, messages: &[Message]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let inserted = insert(&tx, now, messages)?;
        tx.commit()?;
        Ok(inserted)
    }

    /// Puts messages left `sending` by a crash back to `pending`, due now: they are sent
    /// again (at least once) with the same Message-ID. Returns how many.
    pub fn recover_sending(&self, now: DateTime<Utc>) -> Result<usize> {
        Ok(self.conn().execute(
            "UPDATE messages SET status = 'pending', next_attempt_at = ?1 WHERE status = 'sending'",
            params![ms(now)],
        )?)
    }

    /// Claims up to `limit` due messages: they become `sending` with one more attempt.
    ///
    /// On the way, a due message its obligation's state has made moot is skipped, with the
    /// reason: an ack recorded while the message was being sent (which a temporary failure
    /// or a restart then put back to `pending`) stops it here. A message that cannot be read
    /// back (a row edited by hand) is failed with the reason, not claimed again and again.
    pub fn claim_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Message>> {
        self.claim_due_on(now, None, limit)
    }

    /// [`Store::claim_due`], of one channel only when one is given.
    pub fn claim_due_on(
        &self,
        now: DateTime<Utc>,
        channel: Option<Channel>,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let want = i64::try_from(limit - out.len()).unwrap_or(i64::MAX);
            let candidates = {
                let mut st = tx.prepare_cached(
                    "SELECT m.id, m.template, o.state FROM messages m
                       LEFT JOIN obligations o ON o.id = m.obligation_id
                      WHERE m.status = 'pending' AND m.next_attempt_at <= ?1
                        AND (?3 IS NULL OR m.channel = ?3)
                      ORDER BY m.next_attempt_at, m.id LIMIT ?2",
                )?;
                st.query_map(params![ms(now), want, channel], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?
            };
            if candidates.is_empty() {
                break;
            }
            for (id, template, state) in candidates {
                let template = template.parse::<TemplateKind>().ok();
                let state = state.and_then(|s| s.parse::<ObligationState>().ok());
                if let (Some(t), Some(s)) = (template, state)
                    && s.silences_template(t)
                {
                    tx.execute(
                        "UPDATE messages SET status = 'skipped', next_attempt_at = NULL,
                                last_error = ?2
                          WHERE id = ?1",
                        params![id, moot_reason(s)],
                    )?;
                    continue;
                }
                let claimed = tx.query_row(
                    &format!(
                        "UPDATE messages
                            SET status = 'sending', attempts = attempts + 1,
                                last_attempt_at = ?2,
                                first_attempt_at = COALESCE(first_attempt_at, ?2)
                          WHERE id = ?1
                         RETURNING {COLUMNS}"
                    ),
                    params![id, ms(now)],
                    |r| Ok(message_row(r)),
                )?;
                match claimed {
                    Ok(m) => out.push(m),
                    Err(e) => {
                        let why = format!(
                            "cannot read this message back from the database ({e}); it is not tried again"
                        );
                        tracing::error!(message = id, error = %e, "unreadable message failed");
                        tx.execute(
                            "UPDATE messages SET status = 'failed', next_attempt_at = NULL,
                                    last_error = ?2
                              WHERE id = ?1",
                            params![id, why],
                        )?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records a delivery, with the message's id at the other side if it gave one.
    pub fn mark_sent(
        &self,
        id: i64,
        now: DateTime<Utc>,
        subject: Option<&str>,
        remote_id: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET status = 'sent', sent_at = ?2, next_attempt_at = NULL,
                    subject = COALESCE(?3, subject), remote_id = ?4
              WHERE id = ?1",
            params![id, ms(now), subject, remote_id],
        )?;
        Ok(())
    }

    /// Records a transient failure: back to `pending`, next attempt at `next`.
    pub fn mark_retry(
        &self,
        id: i64,
        next: DateTime<Utc>,
        error: &str,
        subject: Option<&str>,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET status = 'pending', next_attempt_at = ?2, last_error = ?3,
                    subject = COALESCE(?4, subject)
              WHERE id = ?1",
            params![id, ms(next), error, subject],
        )?;
        Ok(())
    }

    /// Records a permanent failure (or retries given up): `failed`, error kept.
    pub fn mark_failed(&self, id: i64, error: &str, subject: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET status = 'failed', next_attempt_at = NULL, last_error = ?2,
                    subject = COALESCE(?3, subject)
              WHERE id = ?1",
            params![id, error, subject],
        )?;
        Ok(())
    }

    /// The earliest pending message's next attempt: when the worker has work again.
    pub fn next_attempt_at(&self) -> Result<Option<DateTime<Utc>>> {
        self.next_attempt_on(None)
    }

    /// The same, of one channel only when one is given.
    pub fn next_attempt_on(&self, channel: Option<Channel>) -> Result<Option<DateTime<Utc>>> {
        let v: Option<i64> = self.reader().query_row(
            "SELECT MIN(next_attempt_at) FROM messages
              WHERE status = 'pending' AND (?1 IS NULL OR channel = ?1)",
            params![channel],
            |r| r.get(0),
        )?;
        opt_ms(v)
    }

    /// How many messages of `channel` were delivered since `since`.
    pub fn sent_since(&self, channel: Channel, since: DateTime<Utc>) -> Result<u64> {
        let n: i64 = self.reader().query_row(
            "SELECT COUNT(*) FROM messages WHERE channel = ?1 AND status = 'sent' AND sent_at >= ?2",
            params![channel, ms(since)],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Messages per status.
    pub fn outbox_counts(&self) -> Result<OutboxCounts> {
        let mut c = OutboxCounts::default();
        for ChannelCount { status, n, .. } in self.counts_by_channel()? {
            *match status {
                MessageStatus::Pending => &mut c.pending,
                MessageStatus::Sending => &mut c.sending,
                MessageStatus::Sent => &mut c.sent,
                MessageStatus::Failed => &mut c.failed,
                MessageStatus::Skipped => &mut c.skipped,
            } += n;
        }
        Ok(c)
    }

    /// Messages per channel and status, for metrics.
    pub fn counts_by_channel(&self) -> Result<Vec<ChannelCount>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT channel, status, COUNT(*) FROM messages GROUP BY channel, status ORDER BY 1, 2",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ChannelCount {
                channel: r.get(0)?,
                status: r.get(1)?,
                n: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The outbox as `/healthz` sees it at `now`: its counts, the messages `sending` for
    /// longer than `stuck_after`, and those that failed within `failed_within`.
    pub fn health(
        &self,
        now: DateTime<Utc>,
        stuck_after: Duration,
        failed_within: Duration,
    ) -> Result<Health> {
        let counts = self.outbox_counts()?;
        let conn = self.reader();
        let (stuck_since, failed_since) = (ms(now - stuck_after), ms(now - failed_within));
        let count = |filter: &str, at: i64| -> Result<u64> {
            let n: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM messages {filter}"),
                params![at],
                |r| r.get(0),
            )?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        const STUCK: &str = "WHERE status = 'sending' AND last_attempt_at < ?1";
        const FAILED: &str = "WHERE status = 'failed' AND last_attempt_at >= ?1";
        Ok(Health {
            counts,
            stuck: count(STUCK, stuck_since)?,
            oldest_stuck: select(
                &conn,
                &format!("{STUCK} ORDER BY last_attempt_at, id LIMIT 1"),
                params![stuck_since],
            )?
            .pop(),
            failed: count(FAILED, failed_since)?,
            latest_failed: select(
                &conn,
                &format!("{FAILED} ORDER BY last_attempt_at DESC, id DESC LIMIT 1"),
                params![failed_since],
            )?
            .pop(),
        })
    }

    /// Messages that failed at or after `since`, oldest first.
    pub fn failed_since(&self, since: DateTime<Utc>) -> Result<Vec<Message>> {
        select(
            &self.reader(),
            "WHERE status = 'failed' AND last_attempt_at >= ?1 ORDER BY id",
            params![ms(since)],
        )
    }

    /// All messages, in id order.
    pub fn messages(&self) -> Result<Vec<Message>> {
        select(&self.reader(), "ORDER BY id", [])
    }
}

/// The escalated notices about obligation `id` that were sent or are being sent, one per
/// recipient: the leadership to tell when it is done. One in flight counts, as it most
/// likely arrives; if it does not, the done notice alone is still true.
pub(super) fn escalated_sent(conn: &Connection, obligation_id: i64) -> Result<Vec<Message>> {
    select(
        conn,
        "WHERE obligation_id = ?1 AND template = 'escalated' AND status IN ('sent', 'sending')
          AND id IN (SELECT MAX(id) FROM messages
                      WHERE obligation_id = ?1 AND template = 'escalated'
                        AND status IN ('sent', 'sending')
                      GROUP BY recipient)
          ORDER BY recipient",
        params![obligation_id],
    )
}

/// Skips the pending messages of obligation `id` that `silenced` says are moot; returns how
/// many.
pub(super) fn skip_moot(
    tx: &Transaction<'_>,
    obligation_id: i64,
    silenced: &[TemplateKind],
    why: &str,
) -> Result<usize> {
    let mut n = 0;
    let mut st = tx.prepare_cached(
        "UPDATE messages SET status = 'skipped', next_attempt_at = NULL, last_error = ?3
          WHERE obligation_id = ?1 AND status = 'pending' AND template = ?2",
    )?;
    for t in silenced {
        n += st.execute(params![obligation_id, t, why])?;
    }
    Ok(n)
}
