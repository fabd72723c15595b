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
        let deadline_words = super::context::stored_deadline_words(
            deadline.with_timezone(&cfg.organization.timezone),
            last_day,
        );
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
    // Failed messages are reported even when nothing else is open.
    if occurrences.is_empty() && failed.is_empty() {
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cfg() -> Config {
        let text = r#"
[organization]
name = "UBND phường Thử"
admins = ["quantri@example.invalid"]
coordinator = "vhxh"
[digest]
to = ["vhxh", "lanh-dao"]
[[unit]]
id = "vhxh"
name = "Phòng Văn hóa – Xã hội"
email = ["vhxh@example.invalid", "quantri@example.invalid"]
[[unit]]
id = "lanh-dao"
name = "Lãnh đạo"
email = ["lanhdao@example.invalid"]
[[unit]]
id = "vp"
name = "Văn phòng"
email = ["vp@example.invalid"]
[[rule]]
id = "r"
kind = "report"
title = "Báo cáo"
period = "year"
due = { month = "next", day = 5, before = true }
units = ["vp"]
"#;
        crate::config::load_str(
            std::path::Path::new("/nonexistent/x.toml"),
            text.into(),
            NaiveDate::from_ymd_opt(2025, 9, 1).unwrap(),
        )
        .config
        .unwrap()
    }

    fn row(unit: &str, state: &str, deadline: DateTime<Utc>) -> ObligationState {
        ObligationState {
            rule: "bao-cao-9-thang".into(),
            period: "2025-9M".into(),
            title: "Báo cáo".into(),
            period_label: "9 tháng năm 2025".into(),
            deadline,
            last_day: "2025-10-03".into(),
            unit: unit.into(),
            key: format!("bao-cao-9-thang/2025-9M/{unit}"),
            state: state.into(),
            seen_at: None,
            done_at: (state == "done").then_some(deadline - Duration::days(2)),
        }
    }

    #[test]
    fn states_totals_and_nothing_when_nothing_is_open() {
        let cfg = cfg();
        let deadline = Utc.with_ymd_and_hms(2025, 10, 4, 17, 0, 0).unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 10, 6).unwrap();
        let after = deadline + Duration::days(2);
        let rows = [
            row("vp", "done", deadline),
            row("vhxh", "seen", deadline),
            row("lanh-dao", "pending", deadline),
        ];
        let ctx = context(&cfg, &rows, &[], day, after).unwrap();
        assert_eq!(ctx["totals"]["done"], 1);
        assert_eq!(
            ctx["totals"]["overdue"], 2,
            "past the deadline, seen and pending are overdue"
        );
        let before = deadline - Duration::days(1);
        let ctx = context(&cfg, &rows, &[], day, before).unwrap();
        assert_eq!(ctx["totals"]["seen"], 1);
        assert_eq!(ctx["totals"]["pending"], 1);
        assert_eq!(
            ctx["occurrences"][0]["units"][0]["state_label"],
            "Đã hoàn thành"
        );
        let all_done = [row("vp", "done", deadline), row("vhxh", "done", deadline)];
        assert!(context(&cfg, &all_done, &[], day, after).is_none());
        assert!(context(&cfg, &[], &[], day, after).is_none());
        let failed = [(
            "r/2025/vp".to_string(),
            "done-notice".to_string(),
            "lanhdao@example.invalid".to_string(),
            "550 5.1.1 Mailbox unavailable".to_string(),
        )];
        let ctx = context(&cfg, &all_done, &failed, day, after).unwrap();
        assert_eq!(
            ctx["failed"][0]["error"], "550 5.1.1 Mailbox unavailable",
            "failures alone make a digest"
        );
    }

    #[test]
    fn each_address_once() {
        let got: Vec<String> = recipients(&cfg()).into_iter().map(|(_, a)| a).collect();
        assert_eq!(
            got,
            [
                "vhxh@example.invalid",
                "quantri@example.invalid",
                "lanhdao@example.invalid"
            ]
        );
    }
}
