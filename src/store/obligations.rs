//! Occurrences, obligations and acknowledgements: what is owed, by whom, and what each unit
//! answered. An obligation is recorded ahead of its first message ([`Store::register`]: the
//! engine keeps the next 12 months recorded, so a unit can answer before it is reminded);
//! its state changes only through [`Store::ack`], which also skips the queued reminders the
//! new state makes moot and enqueues the leadership's notice, in one transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::outbox::{self, Message};
use super::{Result, Store, StoreError, from_ms, immediate, ms, opt_ms};
use crate::state::{AckAction, AckSource, ObligationState, Recorded, Shown, TemplateKind};

/// An occurrence as recorded when its first step is enqueued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OccurrenceRecord {
    /// Rule id.
    pub rule: String,
    /// Period id (`2025-9M`).
    pub period: String,
    /// `report` or `task`.
    pub kind: String,
    /// The rule's title.
    pub title: String,
    /// The Vietnamese period label.
    pub period_label: String,
    /// The deadline instant.
    pub deadline: DateTime<Utc>,
    /// The day the rule names (for the deadline in words).
    pub due_day: NaiveDate,
    /// The last (working) day.
    pub last_day: NaiveDate,
}

/// An obligation to record with its occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObligationRecord {
    /// Unit id.
    pub unit: String,
    /// `rule/period/unit`.
    pub key: String,
    /// SHA-256 of its ack token.
    pub token_hash: [u8; 32],
}

/// One step of one occurrence, ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRows {
    /// The occurrence.
    pub occurrence: OccurrenceRecord,
    /// Its obligations concerned by the step.
    pub obligations: Vec<ObligationRecord>,
    /// The messages of the step.
    pub messages: Vec<Message>,
}

/// One obligation with its occurrence and state, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obligation {
    /// Rule id.
    pub rule: String,
    /// Period id.
    pub period: String,
    /// Rule title.
    pub title: String,
    /// Period label.
    pub period_label: String,
    /// Deadline instant.
    pub deadline: DateTime<Utc>,
    /// The day the rule names; `None` in rows recorded before it was kept.
    pub due_day: Option<NaiveDate>,
    /// The last working day.
    pub last_day: NaiveDate,
    /// Unit id.
    pub unit: String,
    /// `rule/period/unit`.
    pub key: String,
    /// Its state.
    pub state: ObligationState,
    /// When first seen.
    pub seen_at: Option<DateTime<Utc>>,
    /// When done.
    pub done_at: Option<DateTime<Utc>>,
    /// Whether any message of one of its steps was enqueued (sent, queued or skipped).
    pub reminded: bool,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl Obligation {
    /// What it shows as at `now`: its state, overdue past the deadline, upcoming while
    /// pending and not reminded yet.
    pub fn shown(&self, now: DateTime<Utc>) -> Shown {
        Shown::of_reminded(self.state, now >= self.deadline, self.reminded)
    }

    /// A one-off occurrence's period is its date.
    pub fn once(&self) -> bool {
        NaiveDate::parse_from_str(&self.period, "%Y-%m-%d").is_ok()
    }

    /// When its current state was reached (`None` while pending).
    pub fn state_at(&self) -> Option<DateTime<Utc>> {
        match self.state {
            ObligationState::Done => self.done_at,
            ObligationState::Seen => self.seen_at,
            ObligationState::Pending => None,
        }
    }
}

/// An acknowledgement to record.
#[derive(Debug, Clone, Copy)]
pub struct NewAck<'a> {
    /// Seen or done.
    pub action: AckAction,
    /// When.
    pub at: DateTime<Utc>,
    /// From the unit's link, the CLI or the status page.
    pub source: AckSource,
    /// The client's address (web).
    pub ip: Option<&'a str>,
    /// The client's user agent (web).
    pub user_agent: Option<&'a str>,
    /// A note (CLI, status page).
    pub note: Option<&'a str>,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckOutcome {
    /// The state before.
    pub before: ObligationState,
    /// The state after.
    pub after: ObligationState,
}

impl AckOutcome {
    /// Whether it changed the state.
    pub fn changed(&self) -> bool {
        self.before != self.after
    }
}

const COLUMNS: &str = "o.rule, o.period, o.title, o.period_label, o.deadline, o.due_day, \
     o.last_day, b.unit, b.key, b.state, b.seen_at, b.done_at, \
     EXISTS (SELECT 1 FROM messages m WHERE m.obligation_id = b.id), b.created_at";
const FROM: &str = "FROM obligations b JOIN occurrences o ON o.id = b.occurrence_id";

fn day(v: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| StoreError::Corrupt(format!("day {v}")))
}

/// A row of [`COLUMNS`].
fn obligation_row(r: &rusqlite::Row<'_>) -> Result<Obligation> {
    let due_day: Option<String> = r.get(5)?;
    let last_day: String = r.get(6)?;
    Ok(Obligation {
        rule: r.get(0)?,
        period: r.get(1)?,
        title: r.get(2)?,
        period_label: r.get(3)?,
        deadline: from_ms(r.get(4)?)?,
        due_day: due_day.as_deref().map(day).transpose()?,
        last_day: day(&last_day)?,
        unit: r.get(7)?,
        key: r.get(8)?,
        state: r.get(9)?,
        seen_at: opt_ms(r.get(10)?)?,
        done_at: opt_ms(r.get(11)?)?,
        reminded: r.get(12)?,
        recorded_at: from_ms(r.get(13)?)?,
    })
}

/// What a [`Store::register`] changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registered {
    /// Occurrences recorded, or not reminded yet and brought up to a changed config.
    pub occurrences: usize,
    /// Obligations recorded.
    pub added: usize,
    /// Obligations withdrawn: never reminded nor answered, and no longer planned.
    pub withdrawn: usize,
}

impl Registered {
    /// Whether anything changed.
    pub fn any(&self) -> bool {
        self.occurrences + self.added + self.withdrawn > 0
    }
}

/// Records a group's occurrence and obligations where they are new, and brings the facts
/// of an occurrence no unit has been reminded of yet (no message of any of its
/// obligations) up to the config in force; returns how many occurrences were recorded or
/// changed, and how many obligations were new.
fn record_obligations(
    tx: &Transaction<'_>,
    now: DateTime<Utc>,
    g: &StepRows,
) -> Result<(usize, usize)> {
    let o = &g.occurrence;
    let occurrences = tx
        .prepare_cached(
            "INSERT INTO occurrences
                 (rule, period, kind, title, period_label, deadline, due_day, last_day, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (rule, period) DO UPDATE SET
                 kind = excluded.kind, title = excluded.title,
                 period_label = excluded.period_label, deadline = excluded.deadline,
                 due_day = excluded.due_day, last_day = excluded.last_day
             WHERE (occurrences.kind, occurrences.title, occurrences.period_label,
                    occurrences.deadline, occurrences.due_day, occurrences.last_day)
                   IS NOT (excluded.kind, excluded.title, excluded.period_label,
                           excluded.deadline, excluded.due_day, excluded.last_day)
               AND NOT EXISTS (SELECT 1 FROM messages m JOIN obligations b
                                 ON m.obligation_id = b.id
                                WHERE b.occurrence_id = occurrences.id)",
        )?
        .execute(params![
            o.rule,
            o.period,
            o.kind,
            o.title,
            o.period_label,
            ms(o.deadline),
            o.due_day.to_string(),
            o.last_day.to_string(),
            ms(now)
        ])?;
    let occ_id: i64 = tx
        .prepare_cached("SELECT id FROM occurrences WHERE rule = ?1 AND period = ?2")?
        .query_row(params![o.rule, o.period], |r| r.get(0))?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO obligations (occurrence_id, unit, key, token_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut added = 0;
    for ob in &g.obligations {
        added += ins.execute(params![
            occ_id,
            ob.unit,
            ob.key,
            &ob.token_hash[..],
            ms(now)
        ])?;
    }
    Ok((occurrences, added))
}

fn insert_group(tx: &Transaction<'_>, now: DateTime<Utc>, g: &StepRows) -> Result<usize> {
    record_obligations(tx, now, g)?;
    // An ack committed by another process (`nhacviec ack`) since the engine read the states
    // is not looked for here: the claim checks every message against its obligation's state
    // before sending it (`Store::claim_due`).
    outbox::insert(tx, now, &g.messages)
}

impl Store {
    /// In one transaction: records each group's occurrence and obligations (if new), enqueues
    /// their messages (one already there, by its unique key, is left as it is) and, if given,
    /// moves the engine's mark to `until` (every step up to it has been enqueued). Returns how
    /// many messages were new.
    pub fn enqueue(
        &self,
        now: DateTime<Utc>,
        groups: &[StepRows],
        until: Option<DateTime<Utc>>,
    ) -> Result<usize> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let mut inserted = 0;
        for g in groups {
            inserted += insert_group(&tx, now, g)?;
        }
        if let Some(t) = until {
            super::set_meta(&tx, "engine_until", &ms(t).to_string())?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// The obligations of occurrences whose deadline is at or after `since`, with their state,
    /// in deadline order (for the digest and the status views).
    pub fn obligations(&self, since: DateTime<Utc>) -> Result<Vec<Obligation>> {
        self.unit_obligations(None, since)
    }

    /// The obligations of one unit (or of every unit) whose deadline is at or after
    /// `since`, in deadline order (a unit's page and calendar feed).
    pub fn unit_obligations(
        &self,
        unit: Option<&str>,
        since: DateTime<Utc>,
    ) -> Result<Vec<Obligation>> {
        let conn = self.reader();
        let sql = format!(
            "SELECT {COLUMNS} {FROM} WHERE o.deadline >= ?1 AND (?2 IS NULL OR b.unit = ?2)
              ORDER BY o.deadline, o.rule, o.period, b.id"
        );
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(params![ms(since), unit])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(obligation_row(r)?);
        }
        Ok(out)
    }

    /// The obligation `rule/period/unit`, with its occurrence and state.
    pub fn obligation_by_key(&self, key: &str) -> Result<Option<Obligation>> {
        let conn = self.reader();
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE b.key = ?1");
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(params![key])?;
        rows.next()?.map(obligation_row).transpose()
    }

    /// The obligation whose token has this SHA-256 hash, with its occurrence and state.
    pub fn obligation_by_token(&self, hash: &[u8; 32]) -> Result<Option<Obligation>> {
        let conn = self.reader();
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE b.token_hash = ?1");
        let mut st = conn.prepare_cached(&sql)?;
        let mut rows = st.query(params![&hash[..]])?;
        rows.next()?.map(obligation_row).transpose()
    }

    /// The state of each recorded obligation among `keys`, and whether it was reminded.
    pub fn states(&self, keys: &[String]) -> Result<HashMap<String, Recorded>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached(
            "SELECT b.state, EXISTS (SELECT 1 FROM messages m WHERE m.obligation_id = b.id)
               FROM obligations b WHERE b.key = ?1",
        )?;
        let mut out = HashMap::new();
        for k in keys {
            let row = st
                .query_row(params![k], |r| {
                    Ok(Recorded {
                        state: r.get(0)?,
                        reminded: r.get(1)?,
                    })
                })
                .optional()?;
            if let Some(rec) = row {
                out.insert(k.clone(), rec);
            }
        }
        Ok(out)
    }

    /// Keeps the obligations planned ahead recorded, in one transaction: `planned` is every
    /// occurrence (with its obligations, no messages) whose deadline is after `now` and
    /// within the engine's horizon. New ones are recorded; an occurrence no unit has been
    /// reminded of yet takes the facts of the config in force (title, period label,
    /// deadline, last day); an obligation with a deadline after `now` that is no longer
    /// planned, was never reminded and never answered is withdrawn (nobody was told of it, so
    /// nothing of it is history). Reminded or answered obligations are never touched.
    pub fn register(&self, now: DateTime<Utc>, planned: &[StepRows]) -> Result<Registered> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let mut out = Registered::default();
        for g in planned {
            let (occurrences, added) = record_obligations(&tx, now, g)?;
            out.occurrences += occurrences;
            out.added += added;
        }
        let keys: HashSet<&str> = planned
            .iter()
            .flat_map(|g| g.obligations.iter().map(|b| b.key.as_str()))
            .collect();
        let stale: Vec<(i64, String)> = {
            let mut st = tx.prepare_cached(
                "SELECT b.id, b.key FROM obligations b JOIN occurrences o ON o.id = b.occurrence_id
                  WHERE o.deadline > ?1
                    AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.obligation_id = b.id)
                    AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.obligation_id = b.id)",
            )?;
            let rows = st.query_map(params![ms(now)], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<(i64, String)>>>()?
        };
        for (id, key) in stale {
            if !keys.contains(key.as_str()) {
                tx.prepare_cached("DELETE FROM obligations WHERE id = ?1")?
                    .execute(params![id])?;
                out.withdrawn += 1;
            }
        }
        if out.withdrawn > 0 {
            tx.execute(
                "DELETE FROM occurrences WHERE deadline > ?1
                    AND NOT EXISTS (SELECT 1 FROM obligations b WHERE b.occurrence_id = occurrences.id)",
                params![ms(now)],
            )?;
        }
        if out.any() {
            tx.commit()?;
        }
        Ok(out)
    }

    /// Whether any obligation was ever recorded: links to acknowledge it may have been sent.
    pub fn has_obligations(&self) -> Result<bool> {
        Ok(self
            .reader()
            .query_row("SELECT EXISTS (SELECT 1 FROM obligations)", [], |r| {
                r.get(0)
            })?)
    }

    /// Records an acknowledgement of the obligation `key` (append-only) and applies it
    /// ([`ObligationState::after`]). When the state changes, the queued reminders the new
    /// state silences are skipped; when it becomes `done` and escalated notices about it were
    /// sent, `notices` is given those notices and the messages it returns are enqueued. All
    /// in one transaction. `None` if no such obligation.
    ///
    /// Its commit is on the disk before this returns: the unit is told its answer is
    /// recorded, so a disk error that turns the file system read-only, or a power cut,
    /// right after must not take it back. The other writes keep `synchronous = NORMAL`
    /// (durable across a crash of the daemon, not of the machine; what a machine's crash
    /// takes from them is done again: a step enqueued, a message sent once more). The
    /// write-ahead log is synced after the write lock is let go ([`Store::sync_log`]), so
    /// acks arriving together wait for the disk side by side, not one after the other.
    pub fn ack(
        &self,
        key: &str,
        ack: &NewAck<'_>,
        notices: impl FnOnce(&[Message]) -> Vec<Message>,
    ) -> Result<Option<AckOutcome>> {
        let outcome = Store::ack_in(&mut self.conn(), key, ack, notices)?;
        if outcome.is_some() {
            self.sync_log()?;
        }
        Ok(outcome)
    }

    fn ack_in(
        conn: &mut rusqlite::Connection,
        key: &str,
        ack: &NewAck<'_>,
        notices: impl FnOnce(&[Message]) -> Vec<Message>,
    ) -> Result<Option<AckOutcome>> {
        let tx = immediate(conn)?;
        let row: Option<(i64, ObligationState)> = tx
            .query_row(
                "SELECT id, state FROM obligations WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, before)) = row else {
            return Ok(None);
        };
        let outcome = AckOutcome {
            before,
            after: before.after(ack.action),
        };
        if outcome.changed() {
            let at_column = match outcome.after {
                ObligationState::Done => "done_at",
                _ => "seen_at",
            };
            tx.execute(
                &format!("UPDATE obligations SET state = ?2, {at_column} = ?3 WHERE id = ?1"),
                params![id, outcome.after, ms(ack.at)],
            )?;
            // Reminders already queued (a retry waiting, say) that the new state makes moot
            // are not sent.
            let silenced: Vec<TemplateKind> = TemplateKind::ALL
                .iter()
                .copied()
                .filter(|t| outcome.after.silences_template(*t))
                .collect();
            let why = outbox::moot_reason(outcome.after);
            outbox::skip_moot(&tx, id, &silenced, &why)?;
        }
        tx.execute(
            "INSERT INTO acks (obligation_id, action, at, source, ip, user_agent, note, changed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                ack.action,
                ms(ack.at),
                ack.source,
                ack.ip,
                ack.user_agent,
                ack.note,
                outcome.changed()
            ],
        )?;
        if outcome.changed() && outcome.after == ObligationState::Done {
            let escalated = outbox::escalated_sent(&tx, id)?;
            if !escalated.is_empty() {
                outbox::insert(&tx, ack.at, &notices(&escalated))?;
            }
        }
        tx.commit()?;
        Ok(Some(outcome))
    }

    /// Acknowledgements recorded, per action.
    pub fn ack_counts(&self) -> Result<HashMap<AckAction, u64>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT action, COUNT(*) FROM acks GROUP BY action")?;
        let rows = st.query_map([], |r| {
            Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
