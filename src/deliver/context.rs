//! The data a reminder's templates see, built when its step is enqueued.
//!
//! It is stored with the message (so a retry renders the same facts) and holds no secret:
//! the acknowledgement link is added only when the message is rendered for sending.

use chrono::{DateTime, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde_json::{Value, json};

use crate::calendar::Calendar;
use crate::config::{Config, Kind};
use crate::plan::{Occurrence, Step, StepKind};
use crate::vi;

/// Who a reminder goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recipient {
    /// The unit that owes the obligation.
    Unit,
    /// A unit copied on an escalated notice (index into `config.units`).
    Escalation(usize),
}

/// The template kind of a step for a recipient: `before`, `due`, `after` or `escalated`.
pub fn template_kind(step: &Step, to: Recipient) -> &'static str {
    match (to, step.name.kind) {
        (Recipient::Escalation(_), _) => "escalated",
        (_, StepKind::Before) => "before",
        (_, StepKind::Due) => "due",
        (_, StepKind::After) => "after",
    }
}

/// "trước ngày 05/10/2025 (Chủ nhật)", "hết ngày 30/09/2025 (thứ Ba)" or
/// "17:00 ngày 15/10/2025 (thứ Tư)".
pub fn deadline_words(occ: &Occurrence) -> String {
    let local = occ.deadline.naive_local();
    let day = |d: NaiveDate| {
        format!(
            "{} ({})",
            vi::date(d),
            vi::weekday(chrono::Datelike::weekday(&d))
        )
    };
    if local.time() != NaiveTime::MIN {
        format!("{} ngày {}", local.format("%H:%M"), day(local.date()))
    } else if local.date() == occ.due_day {
        format!("trước ngày {}", day(occ.due_day))
    } else {
        let end = local.date().pred_opt().unwrap_or(local.date());
        format!("hết ngày {}", day(end))
    }
}

/// The deadline in words from its instant and last day alone (for pages and the digest,
/// which read them from the store): "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối:
/// thứ Sáu 03/10/2025", or "17:00 ngày 15/10/2025 (thứ Tư); …".
pub fn stored_deadline_words(deadline: DateTime<Tz>, last_day: Option<NaiveDate>) -> String {
    let local = deadline.naive_local();
    let day = |d: NaiveDate| {
        format!(
            "{} ({})",
            vi::date(d),
            vi::weekday(chrono::Datelike::weekday(&d))
        )
    };
    let head = if local.time() == NaiveTime::MIN {
        format!("trước ngày {}", day(local.date()))
    } else {
        format!("{} ngày {}", local.format("%H:%M"), day(local.date()))
    };
    match last_day {
        Some(d) => format!("{head}; hạn làm việc cuối: {}", vi::date_with_weekday(d)),
        None => head,
    }
}

/// Working days strictly after `from` up to and including `to` (0 if `to` is not later).
pub fn working_days_between(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> u32 {
    from.iter_days()
        .skip(1)
        .take_while(|d| *d <= to)
        .filter(|d| cal.is_working(*d))
        .count() as u32
}

fn day_json(d: NaiveDate) -> Value {
    json!({
        "words": vi::date_with_weekday(d),
        "date": vi::date(d),
        "weekday": vi::weekday(chrono::Datelike::weekday(&d)),
        "iso": d.to_string(),
    })
}

/// The template data of one reminder.
pub fn reminder(cfg: &Config, occ: &Occurrence, unit: usize, step: &Step, to: Recipient) -> Value {
    let rule = &cfg.rules[occ.rule];
    let u = &cfg.units[unit];
    let recipient_name = match to {
        Recipient::Unit => u.name.clone(),
        Recipient::Escalation(e) => cfg.units[e].name.clone(),
    };
    let step_day = step.at.date_naive();
    let (left, late) = match step.name.kind {
        StepKind::Before => (
            json!(working_days_between(&cfg.calendar, step_day, occ.last_day)),
            Value::Null,
        ),
        StepKind::Due => (json!(0), Value::Null),
        StepKind::After => (
            Value::Null,
            json!(working_days_between(&cfg.calendar, occ.last_day, step_day)),
        ),
    };
    let words = deadline_words(occ);
    json!({
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
            "words": words,
            "date": vi::date(occ.deadline.date_naive()),
            "weekday": vi::weekday(chrono::Datelike::weekday(&occ.deadline.date_naive())),
            "time": occ.deadline.format("%H:%M").to_string(),
            "iso": occ.deadline.to_rfc3339(),
        },
        "last_day": day_json(occ.last_day),
        "deadline_words": format!("{words}; hạn làm việc cuối: {}", vi::date_with_weekday(occ.last_day)),
        "submit_to": rule.submit_to.map(|s| cfg.units[s].name.clone()),
        "step": {"name": step.name.to_string(), "kind": template_kind(step, to)},
        "working_days_left": left,
        "working_days_late": late,
    })
}

/// The link a unit acknowledges from.
pub fn ack_url(cfg: &Config, token: &str) -> String {
    format!("{}/a/{token}", cfg.organization.public_url)
}

/// Adds the acknowledgement link to stored template data, for rendering.
pub fn with_ack_url(ctx: &Value, url: &str) -> Value {
    let mut ctx = ctx.clone();
    if let Some(map) = ctx.as_object_mut() {
        map.insert("ack_url".into(), Value::String(url.to_string()));
    }
    ctx
}

/// `08:00 thứ Sáu 03/10/2025`, for the test message.
pub fn moment_words(t: DateTime<Tz>) -> String {
    format!(
        "{} {}",
        t.format("%H:%M"),
        vi::date_with_weekday(t.date_naive())
    )
}
