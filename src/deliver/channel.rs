//! The interface every channel's sender implements: send one rendered message to one
//! recipient, and answer sent, retry later, or failed for good with a reason that says what
//! to fix. The outbox worker knows channels only through it.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

use super::templates::Rendered;

/// How a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying: a 4xx answer, a network problem, a timeout, a full disk.
    #[error("{0}")]
    Transient(String),
    /// Not worth retrying: a 5xx answer, an address that cannot be used.
    #[error("{0}")]
    Permanent(String),
}

/// One message to send: rendered, addressed, named.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// The recipient's display name (a unit's name).
    pub to_name: Option<&'a str>,
    /// Address, URL or chat id.
    pub to: &'a str,
    /// The message's stable id (the same on every attempt): the email's Message-ID.
    pub message_id: &'a str,
    /// Subject and bodies.
    pub rendered: &'a Rendered,
    /// When it leaves.
    pub date: DateTime<Utc>,
}

/// A send in progress.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// A channel's sender.
pub trait Sender: Send + Sync {
    /// Sends one message. At least once: a send cut off after the other side took the
    /// message but before it answered is reported transient and sent again later, with the
    /// same id.
    fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Sending<'a>;

    /// What it sends through, for the log: "SMTP mail.example.invalid:587 (STARTTLS)".
    fn describe(&self) -> &str;
}
