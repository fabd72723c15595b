//! The interface every channel's sender implements: send one rendered message to one
//! recipient, and answer sent, retry later, or failed for good with a reason that says what
//! to fix. The outbox worker knows channels only through it.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::templates::Rendered;
use crate::state::{Channel, TemplateKind};

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: a network problem, a timeout, a full disk, an answer that says "later"
    /// (SMTP 4xx; HTTP 408, 425, 429, 5xx).
    #[error("{0}")]
    Transient(String),
    /// Worth retrying, but not before the instant the other side named (an HTTP
    /// `Retry-After`, Telegram's `retry_after`).
    #[error("{0}")]
    RetryAt(String, DateTime<Utc>),
    /// Not worth retrying: an answer that says "never" (SMTP 5xx; HTTP 410 and other 4xx),
    /// an address that cannot be used.
    #[error("{0}")]
    Permanent(String),
}

/// One message to send: rendered, addressed, named.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The channel it goes by.
    pub channel: Channel,
    /// The obligation key it is about (`rule/period/unit`), or another key
    /// (`digest/2025-10-06`, `admin/…`).
    pub key: &'a str,
    /// What it is (as worded when it leaves: a late reminder is an overdue notice).
    pub kind: TemplateKind,
    /// The data its templates saw, with the acknowledgement link: a webhook's event is
    /// built from it.
    pub context: &'a Value,
    /// The recipient's display name (a unit's name).
    pub to_name: Option<&'a str>,
    /// Address, URL or chat id.
    pub to: &'a str,
    /// The message's stable id (the same on every attempt): the email's Message-ID, the
    /// webhook's `webhook-id`.
    pub message_id: &'a str,
    /// Subject and bodies.
    pub rendered: &'a Rendered,
    /// When it leaves.
    pub date: DateTime<Utc>,
}

/// A message's stable id, the same on every attempt: `<rule.period.unit.step.r1a2b3c4@domain>`,
/// derived from the outbox key (the tag hashes the recipient, and the channel unless it is
/// email, so that ids of mail already sent stay what they were).
pub fn message_id(
    obligation: &str,
    step: &str,
    channel: Channel,
    recipient: &str,
    domain: &str,
) -> String {
    use sha2::{Digest, Sha256};
    let digest = match channel {
        Channel::Email => Sha256::digest(recipient.as_bytes()),
        _ => Sha256::digest(format!("{channel}:{recipient}").as_bytes()),
    };
    let tag: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let name: String = obligation
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{name}.{step}.r{tag}@{domain}>")
}

/// What the other side said of a message it took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Its id there (Zalo's `msg_id`, Telegram's `message_id`), kept on the row.
    pub remote_id: Option<String>,
}

/// A send in progress.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<Receipt, SendError>> + Send + 'a>>;

/// A channel's sender.
pub trait Sender: Send + Sync {
    /// Sends one message. At least once: a send cut off after the other side took the
    /// message but before it answered is reported transient and sent again later, with the
    /// same id.
    fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Sending<'a>;

    /// What it sends through, for the log: "SMTP mail.example.invalid:587 (STARTTLS)".
    fn describe(&self) -> &str;

    /// Keeps the channel able to send, at each wake of the engine (Zalo renews its refresh
    /// token before it lapses); nothing for most channels.
    fn maintain(&self, now: DateTime<Utc>) -> Upkeep<'_> {
        let _ = now;
        Box::pin(async { Ok(()) })
    }
}

/// A [`Sender::maintain`] in progress.
pub type Upkeep<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_name_the_message_and_are_stable() {
        let id = |channel, to| {
            message_id(
                "bao-cao-9-thang/2025-9M/vp",
                "before-7d",
                channel,
                to,
                "example.invalid",
            )
        };
        let a = id(Channel::Email, "vp@example.invalid");
        // The tag of an email is that of the versions before other channels existed:
        // the first 4 bytes of SHA-256("vp@example.invalid").
        assert_eq!(
            a,
            "<bao-cao-9-thang.2025-9M.vp.before-7d.r1acc390e@example.invalid>"
        );
        assert_eq!(a, id(Channel::Email, "vp@example.invalid"));
        assert_ne!(a, id(Channel::Email, "lanhdao@example.invalid"));
        assert_ne!(
            id(Channel::Webhook, "-100"),
            id(Channel::Telegram, "-100"),
            "the same recipient text on two channels"
        );
    }
}
