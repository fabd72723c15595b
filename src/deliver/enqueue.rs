//! From a plan step to outbox rows: who gets which message for one step of one occurrence.

use chrono::Utc;

use super::context::{self, Recipient};
use super::email;
use crate::config::Config;
use crate::plan::{Occurrence, Step};
use crate::store::{NewMessage, ObligationRecord, OccurrenceRecord, StepRows};
use crate::token::{self, TokenKey};

/// `rule/period/unit`.
pub fn obligation_key(cfg: &Config, occ: &Occurrence, unit: usize) -> String {
    format!("{}/{}", occ.key(cfg), cfg.units[unit].id)
}

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
        last_day: occ.last_day.to_string(),
    }
}

/// The rows for one step of `occ` for the given units: their obligations, and one email per
/// address of each unit, plus, for an escalated step, one per address of each unit it
/// escalates to. `skipped` records the messages without sending them (a step missed while
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
        let okey = obligation_key(cfg, occ, u);
        obligations.push(ObligationRecord {
            unit: cfg.units[u].id.clone(),
            key: okey.clone(),
            token_hash: token::hash(&key.token(&okey)),
        });
        let mut add = |to: Recipient, addr: &str| {
            messages.push(NewMessage {
                obligation: okey.clone(),
                step: step_name.clone(),
                channel: "email".into(),
                recipient: addr.to_string(),
                template: context::template_kind(step, to).into(),
                context: context::reminder(cfg, occ, u, step, to),
                message_id: email::message_id(&okey, &step_name, addr, &domain),
                not_before,
                skipped,
            });
        };
        for addr in &cfg.units[u].email {
            add(Recipient::Unit, addr);
        }
        if step.escalate {
            for &e in &cfg.units[u].escalate_to {
                for addr in &cfg.units[e].email {
                    add(Recipient::Escalation(e), addr);
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

/// The short notice to each escalation recipient when an escalated obligation is done: its
/// data is that of the escalated notice they got, with the time it was done.
pub fn done_notices(
    cfg: &Config,
    key: &str,
    escalated: &[(String, serde_json::Value)],
    done_at: chrono::DateTime<Utc>,
) -> Vec<NewMessage> {
    let domain = email::from_domain(cfg);
    let words = context::moment_words(done_at.with_timezone(&cfg.organization.timezone));
    escalated
        .iter()
        .map(|(addr, ctx)| {
            let mut c = ctx.clone();
            c["done_at"] = serde_json::Value::String(words.clone());
            NewMessage {
                obligation: key.to_string(),
                step: "done-notice".into(),
                channel: "email".into(),
                recipient: addr.clone(),
                template: "resolved".into(),
                context: c,
                message_id: email::message_id(key, "done-notice", addr, &domain),
                not_before: done_at,
                skipped: false,
            }
        })
        .collect()
}
