//! The SQLite store: the daemon's memory. All SQL lives here.
//!
//! One file, WAL journal (readers never block the writer), `busy_timeout` so a second process
//! (`nhacviec status`) waits instead of failing, foreign keys on, migrations embedded and
//! applied at open (`schema.rs`). Writes that belong together are one transaction. Nothing is
//! deleted: a message's life is a sequence of status changes on its row. Callers pass the
//! current time; the store never reads the clock.

mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// Why the store failed. The message says what to do where something can be done.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error("cannot open the database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite or the file system said.
        source: rusqlite::Error,
    },
    /// Its folder could not be created.
    #[error("cannot create the folder for the database {path}: {source}")]
    Folder {
        /// The database file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot update the database schema of {path}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        source: rusqlite_migration::Error,
    },
    /// A query failed (a full disk shows here as "database or disk is full").
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored value could not be read back.
    #[error("database holds an unreadable value: {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, StoreError>;

/// Milliseconds since the epoch, the stored form of an instant.
fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(v)
        .single()
        .ok_or_else(|| StoreError::Corrupt(format!("instant {v}")))
}

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
    /// The last (working) day, `YYYY-MM-DD`.
    pub last_day: String,
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

/// A message to put in the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage {
    /// The obligation key it is about (or another key for digests and notices).
    pub obligation: String,
    /// Step name (`before-7d`).
    pub step: String,
    /// `email`, `webhook`, `telegram`.
    pub channel: String,
    /// Address, URL or chat id.
    pub recipient: String,
    /// Template kind (`before`, `due`, `after`, `escalated`, …).
    pub template: String,
    /// The template's data (no secrets).
    pub context: Value,
    /// The Message-ID, fixed at enqueue so a resend carries the same one.
    pub message_id: String,
    /// When it may first be sent.
    pub not_before: DateTime<Utc>,
    /// `pending`, or `skipped` for a step missed during downtime (recorded, never sent).
    pub skipped: bool,
}

/// A message claimed for sending (now `sending`).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Row id.
    pub id: i64,
    /// The obligation key.
    pub obligation: String,
    /// Step name.
    pub step: String,
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// Template kind.
    pub template: String,
    /// Template data.
    pub context: Value,
    /// Message-ID.
    pub message_id: String,
    /// Attempts including this one.
    pub attempts: u32,
    /// When it was first attempted.
    pub first_attempt_at: DateTime<Utc>,
}

/// A message row as stored (for status pages and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    /// Row id.
    pub id: i64,
    /// The obligation key.
    pub obligation: String,
    /// Step name.
    pub step: String,
    /// Channel.
    pub channel: String,
    /// Recipient.
    pub recipient: String,
    /// pending, sending, sent, failed, skipped.
    pub status: String,
    /// Attempts so far.
    pub attempts: u32,
    /// Next attempt, when pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// The last error, kept after a retry or failure.
    pub last_error: Option<String>,
    /// Message-ID.
    pub message_id: String,
    /// The subject as last rendered.
    pub subject: Option<String>,
}

const OBLIGATION_COLUMNS: &str = "o.rule, o.period, o.title, o.period_label, o.deadline, \
     o.last_day, b.unit, b.key, b.state, b.seen_at, b.done_at";
const OBLIGATION_FROM: &str = "FROM obligations b JOIN occurrences o ON o.id = b.occurrence_id";

/// A row of [`OBLIGATION_COLUMNS`], instants still in milliseconds.
struct RawObligation {
    state: ObligationState,
    deadline: i64,
    seen_at: Option<i64>,
    done_at: Option<i64>,
}

fn obligation_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawObligation> {
    Ok(RawObligation {
        state: ObligationState {
            rule: r.get(0)?,
            period: r.get(1)?,
            title: r.get(2)?,
            period_label: r.get(3)?,
            deadline: DateTime::<Utc>::MIN_UTC,
            last_day: r.get(5)?,
            unit: r.get(6)?,
            key: r.get(7)?,
            state: r.get(8)?,
            seen_at: None,
            done_at: None,
        },
        deadline: r.get(4)?,
        seen_at: r.get(9)?,
        done_at: r.get(10)?,
    })
}

impl RawObligation {
    fn into_state(self) -> Result<ObligationState> {
        let mut s = self.state;
        s.deadline = from_ms(self.deadline)?;
        s.seen_at = self.seen_at.map(from_ms).transpose()?;
        s.done_at = self.done_at.map(from_ms).transpose()?;
        Ok(s)
    }
}

/// One obligation with its occurrence and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObligationState {
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
    /// Last day, `YYYY-MM-DD`.
    pub last_day: String,
    /// Unit id.
    pub unit: String,
    /// `rule/period/unit`.
    pub key: String,
    /// pending, seen or done.
    pub state: String,
    /// When first seen.
    pub seen_at: Option<DateTime<Utc>>,
    /// When done.
    pub done_at: Option<DateTime<Utc>>,
}

/// An acknowledgement to record.
#[derive(Debug, Clone, Copy)]
pub struct NewAck<'a> {
    /// `seen` or `done`.
    pub action: &'a str,
    /// When.
    pub at: DateTime<Utc>,
    /// `web`, `cli` or `status`.
    pub source: &'a str,
    /// The client's address (web).
    pub ip: Option<&'a str>,
    /// The client's user agent (web).
    pub user_agent: Option<&'a str>,
    /// A note (CLI, status page).
    pub note: Option<&'a str>,
}

/// What an acknowledgement did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckOutcome {
    /// The state before.
    pub before: String,
    /// The state after.
    pub after: String,
    /// Whether it changed.
    pub changed: bool,
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
    /// Missed during downtime, recorded and not sent.
    pub skipped: u64,
}

/// The store. Cheap calls; share it behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const MESSAGE_COLUMNS: &str = "id, obligation, step, channel, recipient, status, attempts, \
     next_attempt_at, sent_at, last_error, message_id, subject";

fn message_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(MessageRow, Option<i64>, Option<i64>)> {
    Ok((
        MessageRow {
            id: r.get(0)?,
            obligation: r.get(1)?,
            step: r.get(2)?,
            channel: r.get(3)?,
            recipient: r.get(4)?,
            status: r.get(5)?,
            attempts: r.get(6)?,
            next_attempt_at: None,
            sent_at: None,
            last_error: r.get(9)?,
            message_id: r.get(10)?,
            subject: r.get(11)?,
        },
        r.get(7)?,
        r.get(8)?,
    ))
}

/// One step of one occurrence, ready for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRows {
    /// The occurrence.
    pub occurrence: OccurrenceRecord,
    /// Its obligations concerned by the step.
    pub obligations: Vec<ObligationRecord>,
    /// The messages of the step.
    pub messages: Vec<NewMessage>,
}

fn insert_group(tx: &rusqlite::Transaction<'_>, now: DateTime<Utc>, g: &StepRows) -> Result<usize> {
    let o = &g.occurrence;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO occurrences
             (rule, period, kind, title, period_label, deadline, last_day, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        o.rule,
        o.period,
        o.kind,
        o.title,
        o.period_label,
        ms(o.deadline),
        o.last_day,
        ms(now)
    ])?;
    let occ_id: i64 = tx
        .prepare_cached("SELECT id FROM occurrences WHERE rule = ?1 AND period = ?2")?
        .query_row(params![o.rule, o.period], |r| r.get(0))?;
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO obligations (occurrence_id, unit, key, token_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for ob in &g.obligations {
        ins.execute(params![
            occ_id,
            ob.unit,
            ob.key,
            &ob.token_hash[..],
            ms(now)
        ])?;
    }
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO messages
             (obligation, obligation_id, step, channel, recipient, template, context,
              message_id, status, created_at, next_attempt_at)
         VALUES (?1, (SELECT id FROM obligations WHERE key = ?1), ?2, ?3, ?4, ?5, ?6,
                 ?7, ?8, ?9, ?10)",
    )?;
    // The state is read again here, inside the transaction: an ack committed by another
    // process (`nhacviec ack`) since the engine looked must still stop the reminders.
    let mut state_of = tx.prepare_cached("SELECT state FROM obligations WHERE key = ?1")?;
    let mut inserted = 0;
    for m in &g.messages {
        let state: Option<String> = state_of
            .query_row(params![m.obligation], |r| r.get(0))
            .optional()?;
        let moot = match state.as_deref() {
            Some("done") => true,
            Some("seen") => m.template == "before",
            _ => false,
        };
        let skipped = m.skipped || moot;
        let status = if skipped { "skipped" } else { "pending" };
        let next = (!skipped).then(|| ms(m.not_before));
        inserted += ins.execute(params![
            m.obligation,
            m.step,
            m.channel,
            m.recipient,
            m.template,
            m.context.to_string(),
            m.message_id,
            status,
            ms(now),
            next
        ])?;
    }
    Ok(inserted)
}

/// The addresses that were sent an escalated notice about the obligation `key`, with the
/// template data of that notice.
fn escalated_recipients(conn: &Connection, key: &str) -> Result<Vec<(String, Value)>> {
    let mut st = conn.prepare_cached(
        "SELECT recipient, MAX(context) FROM messages
          WHERE obligation = ?1 AND template = 'escalated' AND status = 'sent'
          GROUP BY recipient ORDER BY recipient",
    )?;
    let rows = st.query_map(params![key], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (to, ctx) = row?;
        let ctx = serde_json::from_str(&ctx)
            .map_err(|e| StoreError::Corrupt(format!("context of a message to {to}: {e}")))?;
        out.push((to, ctx));
    }
    Ok(out)
}

/// Inserts messages that belong to no obligation row (digest, notices), ignoring duplicates.
fn insert_messages(
    tx: &rusqlite::Transaction<'_>,
    now: DateTime<Utc>,
    messages: &[NewMessage],
) -> Result<usize> {
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO messages
             (obligation, obligation_id, step, channel, recipient, template, context, message_id,
              status, created_at, next_attempt_at)
         VALUES (?1, (SELECT id FROM obligations WHERE key = ?1), ?2, ?3, ?4, ?5, ?6, ?7,
                 'pending', ?8, ?9)",
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
            ms(now),
            ms(m.not_before)
        ])?;
    }
    Ok(inserted)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// `now` is recorded as the first start of a new database.
    pub fn open(path: &Path, now: DateTime<Utc>) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Folder {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        schema::migrations()
            .to_latest(&mut conn)
            .map_err(|source| StoreError::Migrate {
                path: path.to_path_buf(),
                source,
            })?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('first_start', ?1)",
            params![ms(now).to_string()],
        )?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing database for reading only (`nhacviec status`); it must have been
    /// created by `nhacviec run`.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions
        // roll back on drop), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// When this database was first opened: obligations whose deadline passed before it
    /// are not chased.
    pub fn first_start(&self) -> Result<DateTime<Utc>> {
        let v: String = self.conn().query_row(
            "SELECT value FROM meta WHERE key = 'first_start'",
            [],
            |r| r.get(0),
        )?;
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
        let conn = self.conn();
        let mut st = conn.prepare("SELECT hash FROM config_versions ORDER BY id")?;
        let rows = st.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

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
        let tx = conn.transaction()?;
        let mut inserted = 0;
        for g in groups {
            inserted += insert_group(&tx, now, g)?;
        }
        if let Some(t) = until {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('engine_until', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![ms(t).to_string()],
            )?;
        }
        tx.commit()?;
        Ok(inserted)
    }

    /// Up to when every step has been enqueued; `None` before the engine's first wake.
    pub fn engine_until(&self) -> Result<Option<DateTime<Utc>>> {
        let v: Option<String> = self
            .conn()
            .query_row(
                "SELECT value FROM meta WHERE key = 'engine_until'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        v.map(|v| {
            v.parse::<i64>()
                .map_err(|_| StoreError::Corrupt(format!("engine_until {v}")))
                .and_then(from_ms)
        })
        .transpose()
    }

    /// Enqueues messages that belong to no step (digest, notices, tests), in one transaction.
    pub fn enqueue_other(&self, now: DateTime<Utc>, messages: &[NewMessage]) -> Result<usize> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let inserted = insert_messages(&tx, now, messages)?;
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
    pub fn claim_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Claimed>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
            "UPDATE messages
                SET status = 'sending', attempts = attempts + 1, last_attempt_at = ?1,
                    first_attempt_at = COALESCE(first_attempt_at, ?1)
              WHERE id IN (SELECT id FROM messages
                            WHERE status = 'pending' AND next_attempt_at <= ?1
                            ORDER BY next_attempt_at, id LIMIT ?2)
             RETURNING id, obligation, step, channel, recipient, template, context, message_id,
                       attempts, first_attempt_at",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(params![ms(now), limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, u32>(8)?,
                r.get::<_, i64>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                obligation,
                step,
                channel,
                recipient,
                template,
                ctx,
                message_id,
                attempts,
                first,
            ) = row?;
            let context = serde_json::from_str(&ctx)
                .map_err(|e| StoreError::Corrupt(format!("context of message {id}: {e}")))?;
            out.push(Claimed {
                id,
                obligation,
                step,
                channel,
                recipient,
                template,
                context,
                message_id,
                attempts,
                first_attempt_at: from_ms(first)?,
            });
        }
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    /// Records a delivery.
    pub fn mark_sent(&self, id: i64, now: DateTime<Utc>, subject: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE messages SET status = 'sent', sent_at = ?2, next_attempt_at = NULL,
                    subject = COALESCE(?3, subject)
              WHERE id = ?1",
            params![id, ms(now), subject],
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
        let v: Option<i64> = self.conn().query_row(
            "SELECT MIN(next_attempt_at) FROM messages WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )?;
        v.map(from_ms).transpose()
    }

    /// Messages per state.
    pub fn outbox_counts(&self) -> Result<OutboxCounts> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT status, COUNT(*) FROM messages GROUP BY status")?;
        let mut c = OutboxCounts::default();
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            let n = u64::try_from(n).unwrap_or(0);
            match status.as_str() {
                "pending" => c.pending = n,
                "sending" => c.sending = n,
                "sent" => c.sent = n,
                "failed" => c.failed = n,
                _ => c.skipped = n,
            }
        }
        Ok(c)
    }

    /// Messages per channel and status, for metrics: (channel, status, count).
    pub fn counts_by_channel(&self) -> Result<Vec<(String, String, u64)>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT channel, status, COUNT(*) FROM messages GROUP BY channel, status ORDER BY 1, 2",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (c, s, n) = row?;
            out.push((c, s, u64::try_from(n).unwrap_or(0)));
        }
        Ok(out)
    }

    /// Acknowledgements recorded, per action: (action, count).
    pub fn ack_counts(&self) -> Result<Vec<(String, u64)>> {
        let conn = self.conn();
        let mut st =
            conn.prepare("SELECT action, COUNT(*) FROM acks GROUP BY action ORDER BY 1")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (a, n) = row?;
            out.push((a, u64::try_from(n).unwrap_or(0)));
        }
        Ok(out)
    }

    /// A value from the meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a value in the meta table.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    /// The obligations of occurrences whose deadline is at or after `since`, with their state,
    /// in deadline order (for the digest and the status views).
    pub fn obligation_states(&self, since: DateTime<Utc>) -> Result<Vec<ObligationState>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {OBLIGATION_COLUMNS} {OBLIGATION_FROM} WHERE o.deadline >= ?1
              ORDER BY o.deadline, o.rule, o.period, b.id"
        );
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(params![ms(since)], obligation_row)?;
        rows.map(|r| {
            r.map_err(StoreError::from)
                .and_then(RawObligation::into_state)
        })
        .collect()
    }

    /// Messages that failed at or after `since`: (obligation, step, recipient, error).
    pub fn failed_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, String, String, String)>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT obligation, step, recipient, COALESCE(last_error, '')
               FROM messages WHERE status = 'failed' AND last_attempt_at >= ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![ms(since)], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The state (`pending`, `seen`, `done`) of each recorded obligation among `keys`.
    pub fn states(&self, keys: &[String]) -> Result<std::collections::HashMap<String, String>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached("SELECT state FROM obligations WHERE key = ?1")?;
        let mut out = std::collections::HashMap::new();
        for k in keys {
            if let Some(state) = st
                .query_row(params![k], |r| r.get::<_, String>(0))
                .optional()?
            {
                out.insert(k.clone(), state);
            }
        }
        Ok(out)
    }

    /// Records an acknowledgement of the obligation `key` (append-only) and applies it: `seen`
    /// turns `pending` into `seen`; `done` turns anything into `done`; anything else changes
    /// nothing (acks are idempotent). When it makes the obligation `done` and escalated
    /// notices about it were sent, `notices` is given their recipients and template data and
    /// the messages it returns are enqueued. All in one transaction. `None` if no such
    /// obligation.
    pub fn ack(
        &self,
        key: &str,
        ack: &NewAck<'_>,
        notices: impl FnOnce(&[(String, Value)]) -> Vec<NewMessage>,
    ) -> Result<Option<AckOutcome>> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let row: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, state FROM obligations WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, before)) = row else {
            return Ok(None);
        };
        let after = match (ack.action, before.as_str()) {
            ("done", _) => "done",
            ("seen", "pending") => "seen",
            _ => before.as_str(),
        }
        .to_string();
        let changed = after != before;
        if changed {
            let col = if after == "done" {
                "done_at"
            } else {
                "seen_at"
            };
            tx.execute(
                &format!("UPDATE obligations SET state = ?2, {col} = ?3 WHERE id = ?1"),
                params![id, after, ms(ack.at)],
            )?;
            // Reminders already queued (a retry waiting, say) that the new state makes moot
            // are not sent: done stops them all, seen the ones before the last day.
            let moot = if after == "done" {
                "('before', 'due', 'after', 'escalated')"
            } else {
                "('before')"
            };
            tx.execute(
                &format!(
                    "UPDATE messages SET status = 'skipped', next_attempt_at = NULL,
                            last_error = 'not sent: the unit acknowledged ' || ?2 || ' first'
                      WHERE obligation_id = ?1 AND status = 'pending' AND template IN {moot}"
                ),
                params![id, after],
            )?;
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
                changed
            ],
        )?;
        if changed && after == "done" {
            let escalated = escalated_recipients(&tx, key)?;
            if !escalated.is_empty() {
                insert_messages(&tx, ack.at, &notices(&escalated))?;
            }
        }
        tx.commit()?;
        Ok(Some(AckOutcome {
            before,
            after,
            changed,
        }))
    }

    /// The obligation whose token has this SHA-256 hash, with its occurrence and state.
    pub fn obligation_by_token(&self, hash: &[u8; 32]) -> Result<Option<ObligationState>> {
        let conn = self.conn();
        let sql = format!("SELECT {OBLIGATION_COLUMNS} {OBLIGATION_FROM} WHERE b.token_hash = ?1");
        let mut st = conn.prepare_cached(&sql)?;
        st.query_row(params![&hash[..]], obligation_row)
            .optional()?
            .map(RawObligation::into_state)
            .transpose()
    }

    /// A trivial query: the database answers.
    pub fn ping(&self) -> Result<()> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    /// All messages, in id order.
    pub fn messages(&self) -> Result<Vec<MessageRow>> {
        let conn = self.conn();
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY id");
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([], message_row)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut m, next, sent) = row?;
            m.next_attempt_at = next.map(from_ms).transpose()?;
            m.sent_at = sent.map(from_ms).transpose()?;
            out.push(m);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
