//! From a step that fell due to outbox rows: who gets which message for one step of one
//! occurrence.

use chrono::Utc;

use super::channel::message_id;
use super::context::{self, Recipient};
use super::email;
use crate::config::Config;
use crate::plan::due::DueStep;
use crate::plan::{Occurrence, Step};
use crate::state::Channel;
use crate::store::{Message, ObligationRecord, OccurrenceRecord, StepRows};
use crate::token::{self, TokenKey};

/// The occurrence as the store records it.
pub fn occurrence_record(cfg: &Config, occ: &Occurrence) -> OccurrenceRecord {
    let rule = &cfg.rules[occ.rule];
    OccurrenceRecord {
        rule: rule.id.clone(),
        period: occ.period.to_string(),
        kind: rule.kind.as_str().to_string(),
        title: rule.title.clone(),
        period_label: occ.period.label(),
        deadline: occ.deadline.with_timezone(&Utc),
        due_day: occ.due_day,
        last_day: occ.last_day,
    }
}

/// The rows for one step of `occ` for the given units: their obligations, and one message per
/// address of each unit on each of its channels, plus, for an escalated step, one per address
/// of each unit it escalates to. `skipped` records the messages without sending them (a step missed while
/// the daemon was down).
pub fn step_rows(
    cfg: &Config,
    key: &TokenKey,
    occ: &Occurrence,
    step: &Step,
    units: &[usize],
    skipped: bool,
) -> StepRows {
    let domain = email::from_domain(cfg);
    let step_name = step.name.to_string();
    let not_before = step.at.with_timezone(&Utc);
    let mut obligations = Vec::with_capacity(units.len());
    let mut messages = Vec::new();
    for &u in units {
        let okey = occ.obligation_key(cfg, u);
        obligations.push(obligation_record(cfg, key, occ, u));
        let mut add = |to: Recipient, channel: Channel, addr: &str| {
            let m = Message::new(
                okey.clone(),
                step_name.clone(),
                channel,
                addr.to_string(),
                context::template_kind(step, to),
                context::reminder(cfg, occ, u, step, to),
                message_id(&okey, &step_name, channel, addr, &domain),
                not_before,
            );
            messages.push(if skipped { m.skipped() } else { m });
        };
        for (channel, addr) in cfg.units[u].addresses() {
            add(Recipient::Unit, channel, addr);
        }
        if step.escalate {
            for &e in &cfg.units[u].escalate_to {
                for (channel, addr) in cfg.units[e].addresses() {
                    add(Recipient::Escalation(e), channel, addr);
                }
            }
        }
    }
    StepRows {
        occurrence: occurrence_record(cfg, occ),
        obligations,
        messages,
    }
}

/// How far ahead obligations are recorded before their first reminder.
pub const REGISTER_DAYS: i64 = 365;

/// Every obligation the engine keeps recorded ahead of its reminders ([`Store::register`]):
/// each occurrence whose deadline is after `now` (and after the database's first start) and
/// at most [`REGISTER_DAYS`] ahead, with its obligations and no message.
///
/// [`Store::register`]: crate::store::Store::register
pub fn planned_rows(
    cfg: &Config,
    key: &TokenKey,
    now: chrono::DateTime<Utc>,
    first_start: chrono::DateTime<Utc>,
) -> Vec<StepRows> {
    let tz = cfg.organization.timezone;
    let today = now.with_timezone(&tz).date_naive();
    let horizon = now + chrono::Duration::days(REGISTER_DAYS);
    let to = horizon.with_timezone(&tz).date_naive();
    crate::plan::occurrences(cfg, today, to, crate::plan::Filter::default())
        .into_iter()
        .filter(|o| {
            let d = o.deadline.with_timezone(&Utc);
            d > now && d > first_start && d <= horizon
        })
        .map(|occ| StepRows {
            obligations: cfg.rules[occ.rule]
                .units
                .iter()
                .map(|&u| obligation_record(cfg, key, &occ, u))
                .collect(),
            occurrence: occurrence_record(cfg, &occ),
            messages: Vec::new(),
        })
        .collect()
}

/// The record of unit `u`'s obligation in `occ`, with its token's hash.
pub fn obligation_record(
    cfg: &Config,
    key: &TokenKey,
    occ: &Occurrence,
    u: usize,
) -> ObligationRecord {
    let okey = occ.obligation_key(cfg, u);
    ObligationRecord {
        unit: cfg.units[u].id.clone(),
        token_hash: token::hash(&key.token(&okey)),
        key: okey,
    }
}

/// The rows of the steps that fell due: the skipped ones, then the sent ones, per step.
pub fn due_rows(cfg: &Config, key: &TokenKey, due: &[DueStep<'_>]) -> Vec<StepRows> {
    let mut groups = Vec::new();
    for d in due {
        for (units, skipped) in [(&d.skip, true), (&d.send, false)] {
            if !units.is_empty() {
                groups.push(step_rows(cfg, key, d.occurrence, d.step, units, skipped));
            }
        }
    }
    groups
}
