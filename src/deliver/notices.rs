//! Messages that are not a step: the leadership's notice that an escalated obligation is
//! done, the admins' notice of a config that was not applied, and the one function that
//! records an acknowledgement (the ack page, the status page and `nhacviec ack` all call it).

use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::channel::message_id;
use super::email;
use crate::config::Config;
use crate::present;
use crate::state::{Channel, TemplateKind};
use crate::store::{AckOutcome, Message, NewAck, Store, StoreError};

/// How the admins are addressed.
pub const ADMIN_NAME: &str = "Quản trị hệ thống nhắc việc";

/// Records an acknowledgement of obligation `key` with everything it entails, in one
/// transaction: the new state, the queued reminders it silences skipped, and, when an
/// escalated obligation becomes done, one notice to each leadership address that got the
/// escalation. `None` if there is no such obligation.
pub fn record_ack(
    store: &Store,
    cfg: &Config,
    key: &str,
    ack: &NewAck<'_>,
) -> Result<Option<AckOutcome>, StoreError> {
    store.ack(key, ack, |escalated| {
        done_notices(cfg, key, escalated, ack.at)
    })
}

/// The short notice to each escalation recipient when an escalated obligation is done: its
/// data is that of the escalated notice they got, with the time it was done.
pub fn done_notices(
    cfg: &Config,
    key: &str,
    escalated: &[Message],
    done_at: DateTime<Utc>,
) -> Vec<Message> {
    let domain = email::from_domain(cfg);
    let words = present::moment_words(done_at.with_timezone(&cfg.organization.timezone));
    escalated
        .iter()
        .map(|m| {
            let mut c = m.context.clone();
            c["done_at"] = json!(words);
            Message::new(
                key.to_string(),
                "done-notice".into(),
                m.channel,
                m.recipient.clone(),
                TemplateKind::Resolved,
                c,
                message_id(key, "done-notice", m.channel, &m.recipient, &domain),
                done_at,
            )
        })
        .collect()
}

/// One message to each admin address (on every channel of an admin unit) about a config
/// version that failed to load (`hash` names the version: one notice per broken version).
pub fn config_rejected(
    cfg: &Config,
    path: &Path,
    hash: &str,
    errors: &[String],
    now: DateTime<Utc>,
) -> Vec<Message> {
    let key = format!("admin/config-error/{}", &hash[..hash.len().min(16)]);
    let ctx = json!({
        "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
        "path": path.display().to_string(),
        "at": present::moment_words(now.with_timezone(&cfg.organization.timezone)),
        "errors": errors,
        "recipient": {"name": ADMIN_NAME},
    });
    to_admins(cfg, &key, TemplateKind::ConfigError, &ctx, now)
}

/// One message to each admin address (not on Zalo: no ZNS template is approved for it) that
/// `channel` stopped until they act: Zalo refused the Official Account's refresh token.
/// One notice per day and channel.
pub fn channel_locked(
    cfg: &Config,
    channel: Channel,
    reason: &str,
    now: DateTime<Utc>,
) -> Vec<Message> {
    let tz = cfg.organization.timezone;
    let key = format!(
        "admin/{channel}-locked/{}",
        now.with_timezone(&tz).date_naive()
    );
    let ctx = json!({
        "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
        "at": present::moment_words(now.with_timezone(&tz)),
        "channel": channel,
        "app_id": cfg.channels.zalo.as_ref().map(|z| z.app_id.clone()),
        "reason": reason,
        "recipient": {"name": ADMIN_NAME},
    });
    to_admins(cfg, &key, TemplateKind::ChannelLocked, &ctx, now)
}

/// One `notice` message of `template` with `ctx` under `key` to each admin address.
fn to_admins(
    cfg: &Config,
    key: &str,
    template: TemplateKind,
    ctx: &serde_json::Value,
    now: DateTime<Utc>,
) -> Vec<Message> {
    let domain = email::from_domain(cfg);
    cfg.admin_addresses()
        .into_iter()
        .map(|(channel, a)| {
            Message::new(
                key.to_string(),
                "notice".into(),
                channel,
                a.to_string(),
                template,
                ctx.clone(),
                message_id(key, "notice", channel, a, &domain),
                now,
            )
        })
        .collect()
}
