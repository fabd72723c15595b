//! The data a reminder's templates see: the facts, fixed when its step is enqueued, and the
//! words that depend on the day it leaves, computed when it is rendered for sending.
//!
//! The facts are stored with the message (so a retry renders the same facts) and hold no
//! secret: the acknowledgement link is added only when the message is rendered. The words
//! that depend on time ([`at_send`]) are computed again from the instant the message leaves:
//! a reminder caught up after downtime, or retried for hours, says how many working days are
//! left on the day it arrives, and one that can leave only after its deadline is worded as
//! the overdue notice it has become.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Value, json};

use crate::config::{Config, Kind};
use crate::plan::{Occurrence, Step};
use crate::present;
use crate::state::TemplateKind;

/// Who a reminder goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The unit that owes the obligation.
    Unit,
    /// A unit copied on an escalated notice (index into `config.units`).
    Escalation(usize),
}

/// The templates of a step for a recipient: `before`, `due`, `after` or `escalated`.
pub fn template_kind(step: &Step, to: Recipient) -> TemplateKind {
    match to {
        Recipient::Escalation(_) => TemplateKind::Escalated,
        Recipient::Unit => TemplateKind::of_step(step.name.kind),
    }
}

fn day_json(d: NaiveDate) -> Value {
    json!({
        "words": present::date_with_weekday(d),
        "date": present::date(d),
        "weekday": present::weekday(d.weekday()),
        "iso": d.to_string(),
    })
}

/// The template data of one reminder, with its time words as of its step's instant.
pub fn reminder(cfg: &Config, occ: &Occurrence, unit: usize, step: &Step, to: Recipient) -> Value {
    let rule = &cfg.rules[occ.rule];
    let u = &cfg.units[unit];
    let recipient_name = match to {
        Recipient::Unit => u.name.clone(),
        Recipient::Escalation(e) => cfg.units[e].name.clone(),
    };
    let deadline_day = occ.deadline.date_naive();
    let kind = template_kind(step, to);
    let ctx = json!({
        "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
        "unit": {"id": u.id, "name": u.name},
        "recipient": {"name": recipient_name, "escalation": matches!(to, Recipient::Escalation(_))},
        "rule": {
            "id": rule.id,
            "kind": rule.kind.as_str(),
            "kind_label": match rule.kind { Kind::Report => "báo cáo", Kind::Task => "nhiệm vụ" },
            "title": rule.title,
            "description": rule.description,
            "reference": rule.reference,
        },
        "period": {
            "id": occ.period.to_string(),
            "label": occ.period.label(),
            "once": matches!(occ.period, crate::plan::Period::Once(_)),
        },
        "deadline": {
            "words": present::deadline_words(occ.deadline, Some(occ.due_day), None),
            "date": present::date(deadline_day),
            "weekday": present::weekday(deadline_day.weekday()),
            "time": occ.deadline.format("%H:%M").to_string(),
            "iso": occ.deadline.to_rfc3339(),
        },
        "last_day": day_json(occ.last_day),
        "deadline_words": present::deadline_words(occ.deadline, Some(occ.due_day), Some(occ.last_day)),
        "submit_to": rule.submit_to.map(|s| cfg.units[s].name.clone()),
        "step": {"name": step.name.to_string(), "kind": kind.as_str()},
        "working_days_left": Value::Null,
        "working_days_late": Value::Null,
    });
    at_send(cfg, kind, &ctx, step.at.with_timezone(&Utc)).1
}

/// The templates and data of a reminder leaving at `now`: the working days left (or late)
/// counted from the day it leaves, and its wording when it can only leave late:
///
/// - before its last day: `before`, with the working days left;
/// - on its last day: `due` ("Hạn cuối hôm nay"), even for a `before` reminder held up;
/// - after its last working day but before the deadline (the days off in between): `before`
///   with no days left, which says the last day without claiming it is today;
/// - at or after the deadline: the overdue notice (`after`), with the working days late, even
///   for a `before` or `due` reminder that left late. It is sent rather than skipped because
///   a later step may not exist (a policy without overdue notices) or may be days away: a
///   message that says the truth is never wrong, one that vanishes may leave a unit with no
///   word at all.
///
/// Escalated copies stay escalated; messages that are not reminders are left as they are.
pub fn at_send(
    cfg: &Config,
    template: TemplateKind,
    ctx: &Value,
    now: DateTime<Utc>,
) -> (TemplateKind, Value) {
    let last_day = ctx
        .pointer("/last_day/iso")
        .and_then(Value::as_str)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
    let deadline = ctx
        .pointer("/deadline/iso")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
    let (Some(last_day), Some(deadline), Some(_)) = (last_day, deadline, template.step_kind())
    else {
        return (template, ctx.clone());
    };
    let cal = &cfg.calendar;
    let today = now.with_timezone(&cfg.organization.timezone).date_naive();
    let late = || json!(present::working_days_between(cal, last_day, today));
    let (kind, left, late) = match template {
        TemplateKind::Escalated => (template, Value::Null, late()),
        _ if now >= deadline => (TemplateKind::After, Value::Null, late()),
        TemplateKind::After => (template, Value::Null, late()),
        _ if today > last_day => (TemplateKind::Before, json!(0), Value::Null),
        _ if today == last_day => (TemplateKind::Due, json!(0), Value::Null),
        _ => (
            TemplateKind::Before,
            json!(present::working_days_between(cal, today, last_day)),
            Value::Null,
        ),
    };
    let mut ctx = ctx.clone();
    ctx["working_days_left"] = left;
    ctx["working_days_late"] = late;
    if let Some(step) = ctx.get_mut("step").and_then(Value::as_object_mut) {
        step.insert("kind".into(), json!(kind.as_str()));
    }
    (kind, ctx)
}

/// The link a unit acknowledges from.
pub fn ack_url(cfg: &Config, token: &str) -> String {
    format!("{}/a/{token}", cfg.organization.public_url)
}

/// The read-only view of an obligation, for the leadership: the SHA-256 of its ack token
/// (what the database stores), so the link shows the obligation but cannot record an ack,
/// and the ack token cannot be recovered from it.
pub fn view_url(cfg: &Config, token: &str) -> String {
    let hash: String = crate::token::hash(token)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}/v/{hash}", cfg.organization.public_url)
}

/// A unit's own page; its calendar feed is the same with `.ics`.
pub fn unit_url(cfg: &Config, unit_token: &str) -> String {
    format!("{}/u/{unit_token}", cfg.organization.public_url)
}

/// The tokens a reminder's links are made of: its obligation's ack token, and the unit
/// page's token of the unit that owes it.
#[derive(Debug, Clone, Copy)]
pub struct LinkTokens<'a> {
    /// The obligation's ack token.
    pub ack: &'a str,
    /// The unit's page token (its generation in force).
    pub unit: &'a str,
}

/// Adds the links a reminder carries, for rendering: for the unit, the acknowledgement link
/// and its own page ("Xem tất cả nhiệm vụ của đơn vị"); for the leadership's escalated copy,
/// the read-only view only (a leader's click must not record the unit's answer).
pub fn with_links(
    cfg: &Config,
    mut ctx: Value,
    template: TemplateKind,
    tokens: LinkTokens<'_>,
) -> Value {
    let links = if template == TemplateKind::Escalated {
        vec![("view_url", view_url(cfg, tokens.ack))]
    } else {
        vec![
            ("ack_url", ack_url(cfg, tokens.ack)),
            ("unit_url", unit_url(cfg, tokens.unit)),
        ]
    };
    if let Some(map) = ctx.as_object_mut() {
        for (name, url) in links {
            map.insert(name.into(), Value::String(url));
        }
    }
    ctx
}

/// The token of `unit`'s page at the generation in force (`generations` from
/// [`crate::store::Store::unit_generations`]).
pub fn unit_token(
    key: &crate::token::TokenKey,
    generations: &std::collections::HashMap<String, u32>,
    unit: &str,
) -> String {
    key.unit_token(unit, generations.get(unit).copied().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::plan::{self, Period};

    /// The shipped 9-month report: last day Fri 03/10/2025, deadline before Sun 05/10.
    fn setup() -> (Config, Occurrence) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nhacviec.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = crate::testutil::config_at(&path, &text);
        let ri = cfg.rule_index("bao-cao-9-thang").unwrap();
        let occ = plan::occurrence(&cfg, ri, Period::NineMonths(2025)).unwrap();
        (cfg, occ)
    }

    fn at(m: u32, d: u32, h: u32) -> DateTime<Utc> {
        chrono_tz::Asia::Ho_Chi_Minh
            .with_ymd_and_hms(2025, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// The templates and the days left / late of the `name` step leaving at `now`.
    fn leaving(name: &str, now: DateTime<Utc>) -> (TemplateKind, Value, Value) {
        let (cfg, occ) = setup();
        let step = occ
            .steps
            .iter()
            .find(|s| s.name.to_string() == name)
            .unwrap();
        let vp = cfg.unit_index("vp").unwrap();
        let kind = template_kind(step, Recipient::Unit);
        let stored = reminder(&cfg, &occ, vp, step, Recipient::Unit);
        let (k, ctx) = at_send(&cfg, kind, &stored, now);
        assert_eq!(ctx["step"]["kind"], k.as_str());
        (
            k,
            ctx["working_days_left"].clone(),
            ctx["working_days_late"].clone(),
        )
    }

    #[test]
    fn words_are_those_of_the_day_the_message_leaves() {
        use TemplateKind::*;
        let n = |v: u32| json!(v);
        let none = Value::Null;
        // On time: before-3wd (Tue 30/09) has 3 working days left (01, 02, 03/10).
        assert_eq!(
            leaving("before-3wd", at(9, 30, 8)),
            (Before, n(3), none.clone())
        );
        // Caught up on Thu 02/10 at 07:29: one working day left, not three.
        assert_eq!(
            leaving("before-3wd", at(10, 2, 7)),
            (Before, n(1), none.clone())
        );
        // Held up until the last day itself: it says today is the last day.
        assert_eq!(
            leaving("before-1wd", at(10, 3, 9)),
            (Due, n(0), none.clone())
        );
        // Saturday 04/10, between the last working day and the deadline.
        assert_eq!(leaving("due", at(10, 4, 9)), (Before, n(0), none.clone()));
        // The due reminder released a day late, Mon 06/10: past the deadline, overdue by 1.
        assert_eq!(leaving("due", at(10, 6, 8)), (After, none.clone(), n(1)));
        // An overdue notice retried until Wed 08/10 counts three working days late.
        assert_eq!(
            leaving("after-1wd", at(10, 8, 9)),
            (After, none.clone(), n(3))
        );
    }

    #[test]
    fn the_stored_data_has_the_words_of_its_step() {
        let (cfg, occ) = setup();
        let step = occ
            .steps
            .iter()
            .find(|s| s.name.to_string() == "before-7d")
            .unwrap();
        let ctx = reminder(&cfg, &occ, 0, step, Recipient::Unit);
        assert_eq!(ctx["working_days_left"], 5, "26/09 → 03/10");
        assert_eq!(
            ctx["deadline_words"],
            "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025"
        );
    }
}
