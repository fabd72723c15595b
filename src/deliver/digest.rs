//! The daily digest: each working day at `digest.time`, to the `digest.to` units and the
//! admins, the open occurrences with each unit's state (done / seen / pending / overdue), and
//! the messages that failed in the last 7 days. Nothing when nothing is open and nothing
//! failed. Only today's digest is ever sent (a day the daemon was down is not made up).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::{Value, json};

use super::channel::message_id;
use super::email;
use crate::config::Config;
use crate::present;
use crate::state::{Channel, ObligationState, Shown, TemplateKind};
use crate::store::{Message, Obligation, Store, StoreError};

/// Occurrences stay in the digest this long after their deadline while a unit has not done.
pub const OPEN_FOR: Duration = Duration::days(30);

/// Failed messages are listed for this long.
pub const FAILED_FOR: Duration = Duration::days(7);

/// The `meta` key holding the day of the last digest enqueued.
const DONE_FOR: &str = "digest_date";

/// The digest instant of `day`.
fn at(cfg: &Config, day: NaiveDate) -> DateTime<Utc> {
    crate::plan::local(cfg.organization.timezone, day, cfg.digest.time).with_timezone(&Utc)
}

/// The next digest after `now`: today's if it is a working day and its time is ahead, else
/// the next working day's.
pub fn next(cfg: &Config, now: DateTime<Utc>) -> DateTime<Utc> {
    let today = now.with_timezone(&cfg.organization.timezone).date_naive();
    let mut day = cfg.calendar.working_on_or_after(today);
    if at(cfg, day) <= now {
        day = cfg.calendar.next_working(day);
    }
    at(cfg, day)
}

/// Enqueues today's digest once its time has come (once a day; nothing if nothing is open).
/// Returns how many messages.
pub fn enqueue(store: &Store, cfg: &Config, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let today = now.with_timezone(&cfg.organization.timezone).date_naive();
    if !cfg.calendar.is_working(today) || now < at(cfg, today) {
        return Ok(0);
    }
    let done_for = today.to_string();
    if store.meta(DONE_FOR)?.as_deref() == Some(done_for.as_str()) {
        return Ok(0);
    }
    let rows = store.obligations(now - OPEN_FOR)?;
    let failed = store.failed_since(now - FAILED_FOR)?;
    let n = match context(cfg, &rows, &failed, today, now) {
        Some(ctx) => store.enqueue_other(now, &messages(cfg, &ctx, today, now))?,
        None => 0,
    };
    store.set_meta(DONE_FOR, &done_for)?;
    Ok(n)
}

/// Counts per shown state.
#[derive(Debug, Default)]
struct Counts(BTreeMap<Shown, u64>);

impl Counts {
    fn add(&mut self, s: Shown) {
        *self.0.entry(s).or_default() += 1;
    }

    fn json(&self) -> serde_json::Map<String, Value> {
        [
            Shown::Done,
            Shown::Seen,
            Shown::Pending,
            Shown::Overdue,
            Shown::Upcoming,
        ]
        .into_iter()
        .map(|s| {
            (
                s.as_str().to_string(),
                json!(self.0.get(&s).copied().unwrap_or(0)),
            )
        })
        .collect()
    }
}

/// The digest's data for `day`, or `None` when nothing is open and nothing failed.
pub fn context(
    cfg: &Config,
    rows: &[Obligation],
    failed: &[Message],
    day: NaiveDate,
    now: DateTime<Utc>,
) -> Option<Value> {
    let tz = cfg.organization.timezone;
    let mut by_occ: BTreeMap<(DateTime<Utc>, &str, &str), Vec<&Obligation>> = BTreeMap::new();
    for r in rows {
        by_occ
            .entry((r.deadline, &r.rule, &r.period))
            .or_default()
            .push(r);
    }
    let mut totals = Counts::default();
    let mut occurrences = Vec::new();
    for ((deadline, rule, period), units) in &by_occ {
        // Nothing to report on an occurrence all done, or one nobody has been reminded of
        // yet while its deadline is ahead (recorded ahead: the status page lists those).
        // Past its deadline it is reported even if no reminder ever left (every unit said
        // "seen" early, and the policy has no due or overdue step).
        if units.iter().all(|u| u.state == ObligationState::Done)
            || (now < *deadline && !units.iter().any(|u| u.reminded))
        {
            continue;
        }
        let mut counts = Counts::default();
        let mut shown = Vec::new();
        for u in units {
            let state = u.shown(now);
            counts.add(state);
            totals.add(state);
            let at = match state {
                Shown::Done | Shown::Seen => u.state_at(),
                _ => None,
            };
            shown.push(json!({
                "id": u.unit,
                "name": cfg.unit_name(&u.unit),
                "state": state.as_str(),
                "state_label": state.label(),
                "color": state.color(),
                "at": at.map(|t| present::moment_short(t.with_timezone(&tz))),
            }));
        }
        let first = units[0];
        let deadline_words = present::deadline_words(
            deadline.with_timezone(&tz),
            first.due_day,
            Some(first.last_day),
        );
        occurrences.push(json!({
            "key": format!("{rule}/{period}"),
            "title": first.title,
            "period_label": first.period_label,
            "deadline_words": deadline_words,
            "overdue": now >= *deadline,
            "counts": counts.json(),
            "units": shown,
        }));
    }
    // Failed messages are reported even when nothing else is open.
    if occurrences.is_empty() && failed.is_empty() {
        return None;
    }
    let failed: Vec<Value> = failed
        .iter()
        .map(|m| {
            json!({
                "recipient": match m.channel {
                    Channel::Webhook => crate::config::webhook_shown(&m.recipient),
                    _ => m.recipient.clone(),
                },
                "about": format!("{}, {}", m.obligation, m.step),
                "error": m.last_error.as_deref().unwrap_or(""),
            })
        })
        .collect();
    let mut totals = totals.json();
    totals.insert("open".into(), json!(occurrences.len()));
    Some(json!({
        "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
        "recipient": {"name": ""},
        "date": {"words": present::date_with_weekday(day), "iso": day.to_string()},
        "totals": totals,
        "occurrences": occurrences,
        "failed": failed,
        "status_url": format!("{}/status", cfg.organization.public_url),
    }))
}

/// Who gets the digest: (name, channel, address), every address of the `digest.to` units on
/// each of their channels, and the admins, each address once.
pub fn recipients(cfg: &Config) -> Vec<(String, Channel, String)> {
    let mut out: Vec<(String, Channel, String)> = Vec::new();
    let mut add = |name: &str, channel: Channel, a: &str| {
        if !out.iter().any(|(_, c, x)| *c == channel && x == a) {
            out.push((name.to_string(), channel, a.to_string()));
        }
    };
    for &u in &cfg.digest.to {
        // No ZNS template is approved for the digest: not on Zalo.
        for (channel, a) in cfg.units[u].addresses() {
            if channel != Channel::Zalo {
                add(&cfg.units[u].name, channel, a);
            }
        }
    }
    for (channel, a) in cfg.admin_addresses() {
        add(super::notices::ADMIN_NAME, channel, a);
    }
    out
}

/// The digest messages for `day`, one per recipient.
pub fn messages(cfg: &Config, ctx: &Value, day: NaiveDate, now: DateTime<Utc>) -> Vec<Message> {
    let key = format!("digest/{day}");
    let domain = email::from_domain(cfg);
    recipients(cfg)
        .into_iter()
        .map(|(name, channel, addr)| {
            let mut c = ctx.clone();
            c["recipient"] = json!({"name": name});
            Message::new(
                key.clone(),
                "digest".into(),
                channel,
                addr.clone(),
                TemplateKind::Digest,
                c,
                message_id(&key, "digest", channel, &addr, &domain),
                now,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cfg() -> Config {
        let org = "admins = [\"vhxh@example.invalid\", \"quantri@example.invalid\"]\n\
                   coordinator = \"vhxh\"\n[digest]\nto = [\"vhxh\", \"lanh-dao\"]";
        let fields = "period = \"year\"\ndue = { month = \"next\", day = 5, before = true }\nunits = [\"vp\"]";
        crate::testutil::ward_config(org, &crate::testutil::rule("r", "Báo cáo", fields))
    }

    fn row(unit: &str, state: ObligationState, deadline: DateTime<Utc>) -> Obligation {
        Obligation {
            rule: "bao-cao-9-thang".into(),
            period: "2025-9M".into(),
            title: "Báo cáo".into(),
            period_label: "9 tháng năm 2025".into(),
            deadline,
            due_day: None,
            last_day: NaiveDate::from_ymd_opt(2025, 10, 3).unwrap(),
            unit: unit.into(),
            key: format!("bao-cao-9-thang/2025-9M/{unit}"),
            state,
            seen_at: None,
            done_at: (state == ObligationState::Done).then_some(deadline - Duration::days(2)),
            reminded: true,
            recorded_at: deadline - Duration::days(20),
        }
    }

    #[test]
    fn states_totals_and_nothing_when_nothing_is_open() {
        let cfg = cfg();
        let deadline = Utc.with_ymd_and_hms(2025, 10, 4, 17, 0, 0).unwrap();
        let day = NaiveDate::from_ymd_opt(2025, 10, 6).unwrap();
        let after = deadline + Duration::days(2);
        let rows = [
            row("vp", ObligationState::Done, deadline),
            row("vhxh", ObligationState::Seen, deadline),
            row("lanh-dao", ObligationState::Pending, deadline),
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
        let all_done = [
            row("vp", ObligationState::Done, deadline),
            row("vhxh", ObligationState::Done, deadline),
        ];
        assert!(context(&cfg, &all_done, &[], day, after).is_none());
        assert!(context(&cfg, &[], &[], day, after).is_none());
        // Recorded ahead, nobody reminded yet: not in the digest.
        let ahead = rows.clone().map(|mut r| {
            r.reminded = false;
            r
        });
        assert!(context(&cfg, &ahead, &[], day, before).is_none());
        let ctx = context(&cfg, &ahead, &[], day, after).unwrap();
        assert_eq!(
            ctx["totals"]["overdue"], 2,
            "past its deadline, reported though nobody was reminded"
        );
        let mut one = ahead.clone();
        one[2].reminded = true;
        let ctx = context(&cfg, &one, &[], day, before).unwrap();
        assert_eq!(
            (
                ctx["totals"]["pending"].clone(),
                ctx["totals"]["upcoming"].clone()
            ),
            (json!(1), json!(0)),
            "one reminded: the occurrence is in, its others as they stand"
        );
        let mut failed = Message::new(
            "r/2025/vp".into(),
            "done-notice".into(),
            Channel::Email,
            "lanhdao@example.invalid".into(),
            TemplateKind::Resolved,
            json!({}),
            "<x@example.invalid>".into(),
            after,
        );
        failed.last_error = Some("550 5.1.1 Mailbox unavailable".into());
        let failed = [failed];
        let ctx = context(&cfg, &all_done, &failed, day, after).unwrap();
        assert_eq!(
            ctx["failed"][0]["error"], "550 5.1.1 Mailbox unavailable",
            "failures alone make a digest"
        );
    }

    #[test]
    fn each_address_once() {
        let got: Vec<String> = recipients(&cfg()).into_iter().map(|(_, _, a)| a).collect();
        assert_eq!(
            got,
            [
                "vhxh@example.invalid",
                "lanhdao@example.invalid",
                "quantri@example.invalid"
            ],
            "an admin who is also a recipient gets it once"
        );
    }
}
