//! The daemon's SQLite file as the tests read it (read-only, with a busy timeout), and the
//! rows they write into it to set a scene (an obligation whose deadline is long past).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use sha2::Digest as _;

use super::daemon::Daemon;

/// One outbox row, as the `messages` table holds it.
#[derive(Debug, Clone)]
pub struct Row {
    pub(crate) obligation: String,
    pub(crate) step: String,
    pub(crate) channel: String,
    pub(crate) recipient: String,
    pub(crate) template: String,
    pub(crate) status: String,
    pub(crate) attempts: i64,
    pub(crate) created_at: i64,
    pub(crate) next_attempt_at: Option<i64>,
    pub(crate) first_attempt_at: Option<i64>,
    pub(crate) last_attempt_at: Option<i64>,
    pub(crate) sent_at: Option<i64>,
    pub(crate) subject: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) message_id: String,
}

impl Row {
    /// The unit of an obligation key `rule/period/unit`.
    pub fn unit(&self) -> &str {
        self.obligation.rsplit('/').next().unwrap_or("")
    }
}

/// (obligation, step, recipient) of the rows of `template`, sorted.
pub fn addressed(rows: &[Row], template: &str) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = rows
        .iter()
        .filter(|r| r.template == template)
        .map(|r| (r.obligation.clone(), r.step.clone(), r.recipient.clone()))
        .collect();
    v.sort();
    v
}

/// One row of `acks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub(crate) action: String,
    pub(crate) at: i64,
    pub(crate) source: String,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) note: Option<String>,
    pub(crate) changed: bool,
}

/// `state`, `seen_at`, `done_at` of an obligation.
pub type State = (String, Option<i64>, Option<i64>);

/// An instant from the milliseconds the database stores.
pub fn at_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).unwrap()
}

/// 32 random lowercase hex digits: a token nobody issued.
pub fn random_token() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Daemon {
    /// The database file.
    pub fn db_path(&self) -> std::path::PathBuf {
        self.path("var/nhacviec.db")
    }

    /// The database, read-only; `None` before the daemon made it.
    pub fn try_db(&self) -> Option<Connection> {
        let path = self.db_path();
        if !path.exists() {
            return None;
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        conn.busy_timeout(Duration::from_secs(5)).ok()?;
        Some(conn)
    }

    /// The database, read-only.
    pub fn db(&self) -> Connection {
        self.try_db()
            .unwrap_or_else(|| panic!("no database yet\n{}", self.logs()))
    }

    /// The outbox rows in id order (none while there is no database or no schema yet).
    pub fn rows(&self) -> Vec<Row> {
        let Some(conn) = self.try_db() else {
            return Vec::new();
        };
        let Ok(mut st) = conn.prepare(
            "SELECT obligation, step, channel, recipient, template, status, attempts,
                    created_at, next_attempt_at, first_attempt_at, last_attempt_at,
                    sent_at, subject, last_error, message_id
               FROM messages ORDER BY id",
        ) else {
            return Vec::new();
        };
        st.query_map([], |r| {
            Ok(Row {
                obligation: r.get(0)?,
                step: r.get(1)?,
                channel: r.get(2)?,
                recipient: r.get(3)?,
                template: r.get(4)?,
                status: r.get(5)?,
                attempts: r.get(6)?,
                created_at: r.get(7)?,
                next_attempt_at: r.get(8)?,
                first_attempt_at: r.get(9)?,
                last_attempt_at: r.get(10)?,
                sent_at: r.get(11)?,
                subject: r.get(12)?,
                last_error: r.get(13)?,
                message_id: r.get(14)?,
            })
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// A value of the `meta` table, if the database and the value exist.
    pub fn meta(&self, key: &str) -> Option<String> {
        self.try_db()?
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ok()
            .flatten()
    }

    /// The engine's mark: every step up to it has been enqueued.
    pub fn mark(&self) -> Option<DateTime<Utc>> {
        self.meta("engine_until").map(|v| at_ms(v.parse().unwrap()))
    }

    /// The hashes in `config_versions`, oldest first.
    pub fn config_hashes(&self) -> Vec<String> {
        let conn = self.db();
        let mut st = conn
            .prepare("SELECT hash FROM config_versions ORDER BY id")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The state of the obligation `key`.
    pub fn state(&self, key: &str) -> State {
        self.db()
            .query_row(
                "SELECT state, seen_at, done_at FROM obligations WHERE key = ?1",
                params![key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap_or_else(|e| panic!("obligation {key}: {e}"))
    }

    /// Every obligation's key and state.
    pub fn states(&self) -> BTreeMap<String, State> {
        let conn = self.db();
        let mut st = conn
            .prepare("SELECT key, state, seen_at, done_at FROM obligations")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?))))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Every ack with its obligation's key, in order.
    pub fn all_acks(&self) -> Vec<(String, Ack)> {
        let conn = self.db();
        let mut st = conn
            .prepare(
                "SELECT b.key, a.action, a.at, a.source, a.ip, a.user_agent, a.note, a.changed
                   FROM acks a JOIN obligations b ON b.id = a.obligation_id ORDER BY a.id",
            )
            .unwrap();
        st.query_map([], |r| {
            let ack = Ack {
                action: r.get(1)?,
                at: r.get(2)?,
                source: r.get(3)?,
                ip: r.get(4)?,
                user_agent: r.get(5)?,
                note: r.get(6)?,
                changed: r.get::<_, i64>(7)? != 0,
            };
            Ok((r.get(0)?, ack))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    /// The acks of the obligation `key`, in order.
    pub fn acks(&self, key: &str) -> Vec<Ack> {
        self.all_acks()
            .into_iter()
            .filter(|(k, _)| k == key)
            .map(|(_, a)| a)
            .collect()
    }

    /// How many acks in all.
    pub fn ack_count(&self) -> i64 {
        self.db()
            .query_row("SELECT COUNT(*) FROM acks", [], |r| r.get(0))
            .unwrap()
    }

    /// Writes an occurrence of a one-off `rule` due at `deadline` and one obligation of it
    /// for `unit` straight into the database, its token being `token` (stored as its
    /// SHA-256, as the daemon does); returns the obligation's key.
    pub fn insert_obligation(
        &self,
        rule: &str,
        deadline: DateTime<Utc>,
        unit: &str,
        token: &str,
    ) -> String {
        let conn = Connection::open(self.db_path()).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let local = deadline
            .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
            .date_naive();
        let period = local.to_string();
        let now = self.now().timestamp_millis();
        conn.execute(
            "INSERT INTO occurrences
                 (rule, period, kind, title, period_label, deadline, due_day, last_day, created_at)
             VALUES (?1, ?2, 'task', ?3, ?4, ?5, ?2, ?6, ?7)",
            params![
                rule,
                period,
                format!("Nhiệm vụ {rule}"),
                format!("hạn ngày {}", local.format("%d/%m/%Y")),
                deadline.timestamp_millis(),
                (local - chrono::Duration::days(1)).to_string(),
                now
            ],
        )
        .unwrap();
        let key = format!("{rule}/{period}/{unit}");
        let hash: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        conn.execute(
            "INSERT INTO obligations (occurrence_id, unit, key, token_hash, created_at)
             VALUES ((SELECT id FROM occurrences WHERE rule = ?1 AND period = ?2), ?3, ?4, ?5, ?6)",
            params![rule, period, unit, key, &hash[..], now],
        )
        .unwrap();
        key
    }
}
