//! The schema, as embedded migrations applied at start (rusqlite_migration, `user_version`).
//!
//! Instants are integers, milliseconds since the Unix epoch (UTC), so they sort and compare
//! in SQL; calendar days are `YYYY-MM-DD` text. Tables are STRICT so a wrong type is an error,
//! not a silent conversion. A new version of the schema is a new entry at the end: never edit
//! one that has shipped.

use rusqlite_migration::{M, Migrations};

const V1: &str = r#"
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Each config the daemon applied: its hash, where it came from, when.
CREATE TABLE config_versions (
    id         INTEGER PRIMARY KEY,
    hash       TEXT NOT NULL,
    path       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT;

-- One rule in one period, as it was when first seen.
CREATE TABLE occurrences (
    id           INTEGER PRIMARY KEY,
    rule         TEXT NOT NULL,
    period       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    title        TEXT NOT NULL,
    period_label TEXT NOT NULL,
    deadline     INTEGER NOT NULL,
    last_day     TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (rule, period)
) STRICT;

-- One occurrence for one unit: what is reminded, acknowledged, done.
CREATE TABLE obligations (
    id            INTEGER PRIMARY KEY,
    occurrence_id INTEGER NOT NULL REFERENCES occurrences (id),
    unit          TEXT NOT NULL,
    key           TEXT NOT NULL UNIQUE,          -- rule/period/unit
    token_hash    BLOB NOT NULL UNIQUE,          -- SHA-256 of the ack token
    state         TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'seen', 'done')),
    seen_at       INTEGER,
    done_at       INTEGER,
    created_at    INTEGER NOT NULL,
    UNIQUE (occurrence_id, unit)
) STRICT;

-- The outbox: one row per step, channel and recipient. Rows are never deleted.
CREATE TABLE messages (
    id               INTEGER PRIMARY KEY,
    obligation       TEXT NOT NULL,              -- obligation key, or e.g. digest/2025-10-03
    obligation_id    INTEGER REFERENCES obligations (id),
    step             TEXT NOT NULL,
    channel          TEXT NOT NULL,
    recipient        TEXT NOT NULL,
    template         TEXT NOT NULL,
    context          TEXT NOT NULL,              -- JSON for the template; holds no secret
    message_id       TEXT NOT NULL UNIQUE,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    next_attempt_at  INTEGER,
    first_attempt_at INTEGER,
    last_attempt_at  INTEGER,
    sent_at          INTEGER,
    subject          TEXT,
    last_error       TEXT,
    UNIQUE (obligation, step, channel, recipient)
) STRICT;
CREATE INDEX messages_due ON messages (status, next_attempt_at);
CREATE INDEX messages_obligation ON messages (obligation_id);

-- Append-only record of every acknowledgement, whether or not it changed the state.
CREATE TABLE acks (
    id            INTEGER PRIMARY KEY,
    obligation_id INTEGER NOT NULL REFERENCES obligations (id),
    action        TEXT NOT NULL CHECK (action IN ('seen', 'done')),
    at            INTEGER NOT NULL,
    source        TEXT NOT NULL,                 -- web | cli | status
    ip            TEXT,
    user_agent    TEXT,
    note          TEXT,
    changed       INTEGER NOT NULL
) STRICT;
"#;

/// The day the rule names, kept so that pages word a deadline as its reminders do ("hết
/// ngày 15/10" rather than "trước ngày 16/10"); empty in rows recorded before it.
const V2: &str = "ALTER TABLE occurrences ADD COLUMN due_day TEXT;";

/// Zalo: the Official Account's tokens (one row: the live access token and its expiry, the
/// single-use refresh token and when it was issued, and why the channel is locked out if it
/// is), and each message's id at the other side (Zalo's `msg_id`, Telegram's
/// `message_id`). The tokens live in this table only: no other column holds a secret.
const V3: &str = r#"
CREATE TABLE zalo_tokens (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    access_token      TEXT,
    access_expires_at INTEGER,
    refresh_token     TEXT NOT NULL,
    refresh_issued_at INTEGER NOT NULL,
    locked            TEXT,
    updated_at        INTEGER NOT NULL
) STRICT;
ALTER TABLE messages ADD COLUMN remote_id TEXT;
"#;

/// Each unit's link generation (its page and calendar feed): the unit token is derived from
/// the unit id and this number, so bumping it (`nhacviec links --rotate`) makes the old
/// link a 404. A unit with no row is at generation 0.
const V4: &str = r#"
CREATE TABLE unit_links (
    unit       TEXT PRIMARY KEY,
    generation INTEGER NOT NULL,
    rotated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX acks_obligation ON acks (obligation_id);
"#;

/// All migrations, oldest first.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2), M::up(V3), M::up(V4)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        assert!(super::migrations().validate().is_ok());
    }
}
