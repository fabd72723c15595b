//! The domain's words: one enum for each state, action, status and kind, stored in SQLite as
//! the text of [`as_str`](ObligationState::as_str) (through `ToSql`/`FromSql`), and the one
//! rule of what an acknowledgement silences ([`ObligationState::silences`]).
//!
//! No other module compares a state with a string: the store, the engine, the outbox, the
//! pages and the commands all speak these types.

use std::fmt;
use std::str::FromStr;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

/// An enum whose variants are stored and shown as fixed words.
macro_rules! words {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every variant, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored word.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownWord;
            fn from_str(s: &str) -> Result<Self, UnknownWord> {
                match s {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { what: stringify!($name), word: s.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str()?
                    .parse()
                    .map_err(|e: UnknownWord| FromSqlError::Other(Box::new(e)))
            }
        }
    };
}

/// A word that names no variant (a corrupt row, a typo on the command line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{word}` is not a {what}")]
pub struct UnknownWord {
    /// The type it should have been.
    pub what: &'static str,
    /// The word.
    pub word: String,
}

words! {
    /// An obligation's recorded state. What people see adds [`Shown::Overdue`].
    ObligationState {
        /// Nothing acknowledged yet.
        Pending = "pending",
        /// The unit has seen it ("Đã nhận").
        Seen = "seen",
        /// The unit has done it ("Đã hoàn thành / đã nộp").
        Done = "done",
    }
}

words! {
    /// What a unit answers.
    AckAction {
        /// "Đã nhận".
        Seen = "seen",
        /// "Đã hoàn thành / đã nộp".
        Done = "done",
    }
}

words! {
    /// Where an acknowledgement came from.
    AckSource {
        /// The unit's link (`/a/{token}`).
        Web = "web",
        /// `nhacviec ack`.
        Cli = "cli",
        /// The admin's status page.
        Status = "status",
    }
}

words! {
    /// Which kind of reminder a step is.
    StepKind {
        /// Before the last day.
        Before = "before",
        /// On the last day.
        Due = "due",
        /// An overdue notice.
        After = "after",
    }
}

words! {
    /// An outbox row's status: `pending` → `sending` → `sent` | `failed`, or `skipped`.
    MessageStatus {
        /// Waiting to be sent (a retry included).
        Pending = "pending",
        /// Claimed by a sender now (or cut off by a crash: sent again at the next start).
        Sending = "sending",
        /// Delivered to the server or the file.
        Sent = "sent",
        /// Given up on, with its reason.
        Failed = "failed",
        /// Recorded and never sent: a step missed while the daemon was down, or made moot by
        /// an acknowledgement.
        Skipped = "skipped",
    }
}

words! {
    /// Which templates a message is rendered from (`KIND.subject.j2`, …).
    TemplateKind {
        /// A reminder before the last day.
        Before = "before",
        /// The reminder on the last day.
        Due = "due",
        /// An overdue notice to the unit.
        After = "after",
        /// An overdue notice copied to the unit's leadership.
        Escalated = "escalated",
        /// To the leadership: an escalated obligation is done.
        Resolved = "resolved",
        /// The daily digest.
        Digest = "digest",
        /// To the admins: a new config was not applied.
        ConfigError = "config_error",
        /// To the admins: a channel stopped until they act (Zalo's refresh token refused).
        ChannelLocked = "channel_locked",
        /// `nhacviec send-test`.
        Test = "test",
    }
}

words! {
    /// How a message travels.
    Channel {
        /// Email (SMTP or the file transport).
        Email = "email",
        /// A signed HTTP POST.
        Webhook = "webhook",
        /// A Telegram chat.
        Telegram = "telegram",
        /// A Zalo Notification Service template message to a mobile number.
        Zalo = "zalo",
    }
}

impl TemplateKind {
    /// The kind of step a reminder is, for the reminders about an obligation (`before`,
    /// `due`, `after`, `escalated`); `None` for the other messages. Exactly these carry the
    /// obligation's acknowledgement link and are silenced by its acknowledgement.
    pub fn step_kind(self) -> Option<StepKind> {
        match self {
            TemplateKind::Before => Some(StepKind::Before),
            TemplateKind::Due => Some(StepKind::Due),
            TemplateKind::After | TemplateKind::Escalated => Some(StepKind::After),
            _ => None,
        }
    }

    /// The templates of a reminder of this step kind to the unit itself.
    pub fn of_step(kind: StepKind) -> TemplateKind {
        match kind {
            StepKind::Before => TemplateKind::Before,
            StepKind::Due => TemplateKind::Due,
            StepKind::After => TemplateKind::After,
        }
    }
}

impl ObligationState {
    /// The one rule of what an acknowledgement silences (docs/operations.md): `done` stops every
    /// step; `seen` stops the reminders before the last day, not the due-day reminder nor
    /// the overdue notices.
    pub fn silences(self, step: StepKind) -> bool {
        match self {
            ObligationState::Done => true,
            ObligationState::Seen => step == StepKind::Before,
            ObligationState::Pending => false,
        }
    }

    /// Whether a message rendered from `template` is silenced in this state (only
    /// reminders about the obligation ever are).
    pub fn silences_template(self, template: TemplateKind) -> bool {
        template.step_kind().is_some_and(|k| self.silences(k))
    }

    /// The state after an acknowledgement: `seen` turns `pending` into `seen`, `done` turns
    /// anything into `done`, anything else changes nothing (acks are idempotent).
    pub fn after(self, action: AckAction) -> ObligationState {
        match (action, self) {
            (AckAction::Done, _) => ObligationState::Done,
            (AckAction::Seen, ObligationState::Pending) => ObligationState::Seen,
            (AckAction::Seen, s) => s,
        }
    }
}

/// An obligation's state as people see it: past its deadline, anything not done is overdue.
/// An obligation as the engine sees it when deciding what falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// Its state.
    pub state: ObligationState,
    /// Whether any message of one of its steps was enqueued.
    pub reminded: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shown {
    /// Done.
    Done,
    /// Seen, before the deadline.
    Seen,
    /// Nothing yet, before the deadline.
    Pending,
    /// Not done, past the deadline.
    Overdue,
    /// Nothing yet, and no reminder sent yet ("chưa đến hạn nhắc").
    Upcoming,
}

impl Shown {
    /// What a recorded state shows as, `overdue` saying whether the deadline has passed.
    pub fn of(state: ObligationState, overdue: bool) -> Shown {
        match state {
            ObligationState::Done => Shown::Done,
            _ if overdue => Shown::Overdue,
            ObligationState::Seen => Shown::Seen,
            ObligationState::Pending => Shown::Pending,
        }
    }

    /// Like [`Shown::of`], and `upcoming` for a pending obligation that has had no reminder
    /// yet (before its deadline).
    pub fn of_reminded(state: ObligationState, overdue: bool, reminded: bool) -> Shown {
        match Shown::of(state, overdue) {
            Shown::Pending if !reminded => Shown::Upcoming,
            s => s,
        }
    }

    /// `done`, `seen`, `pending`, `overdue` (CSS classes, JSON, CSV).
    pub fn as_str(self) -> &'static str {
        match self {
            Shown::Done => "done",
            Shown::Seen => "seen",
            Shown::Pending => "pending",
            Shown::Overdue => "overdue",
            Shown::Upcoming => "upcoming",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for s in MessageStatus::ALL {
            assert_eq!(s.as_str().parse::<MessageStatus>(), Ok(*s));
        }
        for t in TemplateKind::ALL {
            assert_eq!(t.to_string().parse::<TemplateKind>(), Ok(*t));
        }
        assert_eq!(
            "donee".parse::<ObligationState>().unwrap_err().to_string(),
            "`donee` is not a ObligationState"
        );
    }

    #[test]
    fn what_an_acknowledgement_silences() {
        use ObligationState::*;
        use StepKind::*;
        let table = [
            (Pending, [false, false, false]),
            (Seen, [true, false, false]),
            (Done, [true, true, true]),
        ];
        for (state, want) in table {
            let got = [Before, Due, After].map(|k| state.silences(k));
            assert_eq!(got, want, "{state}");
        }
        // Escalated copies go quiet with the unit's own overdue notices; the notice that an
        // escalated obligation is done is never silenced by it being done.
        assert!(Done.silences_template(TemplateKind::Escalated));
        assert!(!Done.silences_template(TemplateKind::Resolved));
        assert!(!Seen.silences_template(TemplateKind::Due));
    }

    #[test]
    fn acknowledgements_move_states_one_way() {
        use ObligationState::*;
        assert_eq!(Pending.after(AckAction::Seen), Seen);
        assert_eq!(Done.after(AckAction::Seen), Done);
        assert_eq!(Seen.after(AckAction::Done), Done);
        assert_eq!(Shown::of(Seen, true), Shown::Overdue);
        assert_eq!(Shown::of(Done, true), Shown::Done);
    }
}
