//! `GET /healthz` and `GET /metrics`: how the daemon is doing, for monitors and people.
//!
//! `/healthz` answers 200 with `"status": "ok"` or `"degraded"` (with the reasons in
//! `problems`), and 503 only when the database does not answer. Degraded means a reminder
//! may be stuck in silence: the engine cannot write to the database (a full disk, a
//! read-only file system), the file transport cannot write the messages waiting for it,
//! a message `sending` for longer than [`STUCK_AFTER`] (a sender that never came back),
//! or one that failed for good within [`FAILED_WITHIN`]. Both pages
//! count messages per channel: every channel the config sets up, and any that has messages.
//! A webhook URL is shown by its host only (such URLs often carry a secret in their path).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use serde_json::json;

use super::AppState;
use crate::state::{AckAction, Channel, MessageStatus};
use crate::store::{ChannelCount, Message};

/// A message `sending` for longer than this is reported stuck.
pub const STUCK_AFTER: Duration = Duration::minutes(5);

/// A message that failed for good within this is reported.
pub const FAILED_WITHIN: Duration = Duration::days(1);

/// "bao-cao-9-thang/2025-9M/vp before-7d to vp@example.invalid" (an email), "… to
/// telegram -1001234567890", "… to webhook https://hooks.example.vn/…".
fn about(m: &Message) -> String {
    let to = match m.channel {
        Channel::Email => m.recipient.clone(),
        Channel::Webhook => format!("webhook {}", crate::config::webhook_shown(&m.recipient)),
        Channel::Telegram => format!("telegram {}", m.recipient),
        Channel::Zalo => format!("zalo {}", m.recipient),
    };
    format!("{} {} to {to}", m.obligation, m.step)
}

/// The channels to report: those the config sets up, and those with messages.
fn channels(s: &AppState, counts: &[ChannelCount]) -> Vec<Channel> {
    let applied = s.current.get();
    Channel::ALL
        .iter()
        .copied()
        .filter(|&c| applied.sender(c).is_some() || counts.iter().any(|n| n.channel == c))
        .collect()
}

/// How many messages of `channel` are in `status`.
fn count(counts: &[ChannelCount], channel: Channel, status: MessageStatus) -> u64 {
    counts
        .iter()
        .filter(|n| n.channel == channel && n.status == status)
        .map(|n| n.n)
        .sum()
}

/// `GET /healthz`.
pub(super) async fn healthz(State(s): State<AppState>) -> Response {
    let now = s.clock.now();
    let health = s
        .db(move |store| {
            store.ping()?;
            Ok((
                store.health(now, STUCK_AFTER, FAILED_WITHIN)?,
                store.counts_by_channel()?,
            ))
        })
        .await;
    let status = s.status.clone();
    let last_wake = status.last_wake().map(|t| t.to_rfc3339());
    let next = status.next();
    let clock = s.clock.kind().describe();
    let (h, by_channel) = match health {
        Ok(h) => h,
        Err(e) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({
                    "status": "error",
                    "database": e.to_string(),
                    "last_wake": last_wake,
                    "clock": clock,
                })),
            )
                .into_response();
        }
    };
    let mut problems = Vec::new();
    if let Some((since, error)) = status.failing() {
        problems.push(format!(
            "the engine cannot write to the database since {}: {error}; what falls due meanwhile is sent once it can, and acknowledgements are refused until then (the unit is asked to try again)",
            since.to_rfc3339()
        ));
    }
    // Only while email waits for the folder: an ack may have taken away the last message.
    let waiting = count(&by_channel, Channel::Email, MessageStatus::Pending);
    if let Some((since, error)) = status.mail_folder().filter(|_| waiting > 0) {
        problems.push(format!(
            "email cannot be written to files since {}: {error}; {waiting} message(s) wait and are written at their next attempt once the folder takes them (free space on its file system, or make it writable by the daemon's user)",
            since.to_rfc3339()
        ));
    }
    if let Some(oldest) = &h.oldest_stuck {
        problems.push(format!(
            "{} message(s) sending for more than {} minutes, the oldest {}: the sender did not come back; restart the daemon to send them again",
            h.stuck,
            STUCK_AFTER.num_minutes(),
            about(oldest)
        ));
    }
    if let Some(latest) = &h.latest_failed {
        problems.push(format!(
            "{} message(s) failed for good in the last {} hours, the latest {}: {}",
            h.failed,
            FAILED_WITHIN.num_hours(),
            about(latest),
            latest.last_error.as_deref().unwrap_or("no reason recorded")
        ));
    }
    let c = h.counts;
    let per_channel: serde_json::Map<String, serde_json::Value> = channels(&s, &by_channel)
        .into_iter()
        .map(|ch| {
            let n = |st| count(&by_channel, ch, st);
            (
                ch.to_string(),
                json!({
                    "pending": n(MessageStatus::Pending),
                    "sending": n(MessageStatus::Sending),
                    "sent": n(MessageStatus::Sent),
                    "failed": n(MessageStatus::Failed),
                }),
            )
        })
        .collect();
    (
        StatusCode::OK,
        axum::Json(json!({
            "status": if problems.is_empty() { "ok" } else { "degraded" },
            "problems": problems,
            "database": "ok",
            "last_wake": last_wake,
            "next": next.as_ref().map(|n| n.text.clone()),
            "next_at": next.as_ref().map(|n| n.at.to_rfc3339()),
            "clock": clock,
            "outbox": {"pending": c.pending, "sending": c.sending, "failed": c.failed},
            "channels": per_channel,
        })),
    )
        .into_response()
}

/// `GET /metrics`: Prometheus text format.
pub(super) async fn metrics(State(s): State<AppState>) -> Response {
    let counts = s
        .db(|store| {
            Ok((
                store.counts_by_channel()?,
                store.ack_counts()?,
                store.meta(crate::deliver::zalo::QUOTA_META)?,
            ))
        })
        .await;
    let Ok((by_channel, acks, quota)) = counts else {
        return (StatusCode::SERVICE_UNAVAILABLE, "database error\n").into_response();
    };
    let mut out = String::new();
    let shown = channels(&s, &by_channel);
    for (name, status, help) in [
        (
            "nhacviec_messages_sent_total",
            MessageStatus::Sent,
            "Messages delivered, by channel.",
        ),
        (
            "nhacviec_messages_failed_total",
            MessageStatus::Failed,
            "Messages given up on, by channel.",
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for &ch in &shown {
            let n = count(&by_channel, ch, status);
            let _ = writeln!(out, "{name}{{channel=\"{ch}\"}} {n}");
        }
    }
    let depth = |ch: Channel| {
        count(&by_channel, ch, MessageStatus::Pending)
            + count(&by_channel, ch, MessageStatus::Sending)
    };
    let total: u64 = Channel::ALL.iter().map(|&c| depth(c)).sum();
    let _ = writeln!(
        out,
        "# HELP nhacviec_outbox_depth Messages waiting to be sent (pending or sending).\n# TYPE nhacviec_outbox_depth gauge\nnhacviec_outbox_depth {total}"
    );
    let _ = writeln!(
        out,
        "# HELP nhacviec_channel_outbox_depth Messages waiting to be sent, by channel.\n# TYPE nhacviec_channel_outbox_depth gauge"
    );
    for &ch in &shown {
        let _ = writeln!(
            out,
            "nhacviec_channel_outbox_depth{{channel=\"{ch}\"}} {}",
            depth(ch)
        );
    }
    let _ = writeln!(
        out,
        "# HELP nhacviec_acks_total Acknowledgements recorded, by action.\n# TYPE nhacviec_acks_total counter"
    );
    for action in AckAction::ALL {
        let n = acks.get(action).copied().unwrap_or(0);
        let _ = writeln!(out, "nhacviec_acks_total{{action=\"{action}\"}} {n}");
    }
    // The last quota Zalo reported (ZNS answers carry it).
    if let Some(q) = quota.and_then(|q| serde_json::from_str::<serde_json::Value>(&q).ok()) {
        for (name, key, help) in [
            (
                "nhacviec_zalo_quota_daily",
                "daily",
                "The Zalo OA's daily ZNS quota, as last reported.",
            ),
            (
                "nhacviec_zalo_quota_remaining",
                "remaining",
                "ZNS messages left today, as last reported.",
            ),
        ] {
            if let Some(n) = q[key].as_i64() {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {n}");
            }
        }
    }
    if let Some(t) = s.status.last_wake() {
        let _ = writeln!(
            out,
            "# HELP nhacviec_last_wake_seconds When the engine last woke (Unix time).\n# TYPE nhacviec_last_wake_seconds gauge\nnhacviec_last_wake_seconds {}",
            t.timestamp()
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
