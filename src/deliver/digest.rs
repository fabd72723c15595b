//! The daily digest: each working day at `digest.time`, the open occurrences and, per unit,
//! done / seen / pending / overdue, and the messages that failed. Nothing when nothing is open.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

use super::email;
use crate::config::Config;
use crate::store::{NewMessage, ObligationState};
use crate::vi;

/// Occurrences stay in the digest this long after their deadline while a unit has not done.
pub const OPEN_FOR: Duration = Duration::days(30);

/// The unit's state as shown: done, seen, pending or overdue, with its label and colour.
pub fn shown_state(
    o: &ObligationState,
    now: DateTime<Utc>,
) -> (&'static str, &'static str, &'static str) {
    match o.state.as_str() {
        "done" => ("done", "Đã hoàn thành", "#15803d"),
        _ if now >= o.deadline => ("overdue", "Quá hạn", "#b91c1c"),
        "seen" => ("seen", "Đã nhận", "#1d4ed8"),
        _ => ("pending", "Chưa xác nhận", "#b45309"),
    }
}

fn at_words(cfg: &Config, t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| {
        let local = t.with_timezone(&cfg.organization.timezone);
        json!(format!(
            "{} {}",
            local.format("%H:%M"),
            vi::date(local.date_naive())
        ))
    })
}

/// The digest's data for `day`, or `None` when nothing is open.
pub fn context(
    cfg: &Config,
    rows: &[ObligationState],
    failed: &[(String, String, String, String)],
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Option<Value> {
    let mut by_occ: BTreeMap<(DateTime<Utc>, String, String), Vec<&ObligationState>> =
        BTreeMap::new();
    for r in rows {
        by_occ
            .entry((r.deadline, r.rule.clone(), r.period.clone()))
            .or_default()
            .push(r);
    }
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    let mut occurrences = Vec::new();
    for ((deadline, rule, period), units) in &by_occ {
        if units.iter().all(|u| u.state == "done") {
            continue;
        }
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut shown = Vec::new();
        for u in units {
            let (state, label, color) = shown_state(u, now);
            *counts.entry(state).or_default() += 1;
            *totals.entry(state).or_default() += 1;
            let name = cfg
                .unit_index(&u.unit)
                .map_or_else(|| u.unit.clone(), |i| cfg.units[i].name.clone());
            let at = match state {
                "done" => at_words(cfg, u.done_at),
                "seen" => at_words(cfg, u.seen_at),
                _ => Value::Null,
            };
            shown.push(
                json!({"id": u.unit, "name": name, "state": state, "state_label": label,
                              "color": color, "at": at}),
            );
        }
        let first = units[0];
        let last_day = NaiveDate::parse_from_str(&first.last_day, "%Y-%m-%d").ok();
        let local = deadline.with_timezone(&cfg.organization.timezone);
        let deadline_words = match last_day {
            Some(d) => format!(
                "{} {}; hạn làm việc cuối: {}",
                local.format("%H:%M"),
                vi::date_with_weekday(local.date_naive()),
                vi::date_with_weekday(d)
            ),
            None => vi::date_with_weekday(local.date_naive()),
        };
        occurrences.push(json!({
            "key": format!("{rule}/{period}"),
            "title": first.title,
            "period_label": first.period_label,
            "deadline_words": deadline_words,
            "overdue": now >= *deadline,
            "counts": {
                "done": counts.get("done").copied().unwrap_or(0),
                "seen": counts.get("seen").copied().unwrap_or(0),
                "pending": counts.get("pending").copied().unwrap_or(0),
                "overdue": counts.get("overdue").copied().unwrap_or(0),
            },
            "units": shown,
        }));
    }
    if occurrences.is_empty() {
        return None;
    }
    let failed: Vec<Value> = failed
        .iter()
        .map(|(ob, step, to, err)| json!({"recipient": to, "about": format!("{ob}, {step}"), "error": err}))
        .collect();
    Some(json!({
        "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
        "recipient": {"name": ""},
        "date": {"words": vi::date_with_weekday(day), "iso": day.to_string()},
        "totals": {
            "done": totals.get("done").copied().unwrap_or(0),
            "seen": totals.get("seen").copied().unwrap_or(0),
            "pending": totals.get("pending").copied().unwrap_or(0),
            "overdue": totals.get("overdue").copied().unwrap_or(0),
            "open": occurrences.len(),
        },
        "occurrences": occurrences,
        "failed": failed,
        "status_url": format!("{}/status", cfg.organization.public_url),
    }))
}

/// Who gets the digest: (name, address), the `digest.to` units' addresses and the admins,
/// each address once.
pub fn recipients(cfg: &Config) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for &u in &cfg.digest.to {
        for a in &cfg.units[u].email {
            if !out.iter().any(|(_, x)| x == a) {
                out.push((cfg.units[u].name.clone(), a.clone()));
            }
        }
    }
    for a in &cfg.organization.admins {
        if !out.iter().any(|(_, x)| x == a) {
            out.push(("Quản trị hệ thống nhắc việc".into(), a.clone()));
        }
    }
    out
}

/// The digest messages for `day`, one per recipient.
pub fn messages(cfg: &Config, ctx: &Value, day: NaiveDate, now: DateTime<Utc>) -> Vec<NewMessage> {
    let key = format!("digest/{day}");
    let domain = email::from_domain(cfg);
    recipients(cfg)
        .into_iter()
        .map(|(name, addr)| {
            let mut c = ctx.clone();
            c["recipient"] = json!({"name": name});
            NewMessage {
                obligation: key.clone(),
                step: "digest".into(),
                channel: "email".into(),
                message_id: email::message_id(&key, "digest", &addr, &domain),
                recipient: addr,
                template: "digest".into(),
                context: c,
                not_before: now,
                skipped: false,
            }
        })
        .collect()
}
