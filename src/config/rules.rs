//! `[policy.NAME]`, `[[unit]]` and `[[rule]]`.

use super::diag::hint_or;
use super::raw::*;
use super::reader::{At, Cx, Tbl, int_of, str_of};
use super::*;
use crate::tr;

pub(super) fn offsets(
    cx: &mut Cx,
    t: &mut Tbl,
    key: &'static str,
    default: &[Offset],
) -> Vec<Offset> {
    let Some(list) = t.str_list(cx, key) else {
        return default.to_vec();
    };
    let mut out: Vec<Offset> = Vec::new();
    for s in list {
        match Offset::parse(&s.v) {
            Ok(o) if out.contains(&o) => {
                cx.warning(
                    s.span,
                    tr!("step `{o}` is listed twice; it is sent once", o),
                );
            }
            Ok(o) => {
                if o.n == 0 {
                    let msg = if key == "before" {
                        tr!(
                            "step `{step}` falls on the last day: it is the same as `on_due` and never fires on its own",
                            step = s.v
                        )
                    } else {
                        tr!(
                            "step `{step}` falls on the last day, not after it: use `on_due = true` instead",
                            step = s.v
                        )
                    };
                    cx.warning(s.span.clone(), msg);
                }
                out.push(o);
            }
            Err(e) => cx.error(s.span, e),
        }
    }
    out
}

pub(super) fn read_policy(cx: &mut Cx, t: &mut Tbl, name: &str) -> Policy {
    let d = Policy::builtin_default();
    let before = offsets(cx, t, "before", &d.before);
    let after = offsets(cx, t, "after", &d.after);
    let on_due = t.bool(cx, "on_due").unwrap_or(d.on_due);
    let send_time = t.time(cx, "send_time").map_or(d.send_time, |x| x.v);
    let on_day_off = match t.str(cx, "on_day_off") {
        None => d.on_day_off,
        Some(v) => match v.v.as_str() {
            "earlier" => OnDayOff::Earlier,
            "later" => OnDayOff::Later,
            "keep" => OnDayOff::Keep,
            other => {
                cx.error(
                    v.span,
                    tr!(
                        "unknown `on_day_off = \"{other}\"`{h}",
                        other,
                        h = hint_or(
                            other,
                            ["earlier", "later", "keep"],
                            &tr!("use \"earlier\", \"later\" or \"keep\"")
                        )
                    ),
                );
                d.on_day_off
            }
        },
    };
    let escalate_from = match t.str(cx, "escalate_from") {
        None if t.has("after") => None,
        None => d.escalate_from.filter(|&i| i < after.len()),
        Some(s) => match Offset::parse(&s.v) {
            Err(e) => {
                cx.error(s.span, e);
                None
            }
            Ok(o) => match after.iter().position(|a| *a == o) {
                Some(i) => Some(i),
                None => {
                    let list: Vec<String> = after.iter().map(Offset::to_string).collect();
                    let msg = if list.is_empty() {
                        tr!(
                            "`escalate_from = \"{o}\"` is not one of policy `{name}`'s `after` steps (none)",
                            o,
                            name
                        )
                    } else {
                        tr!(
                            "`escalate_from = \"{o}\"` is not one of policy `{name}`'s `after` steps ({steps})",
                            o,
                            name,
                            steps = list.join(", ")
                        )
                    };
                    cx.error(s.span, msg);
                    None
                }
            },
        },
    };
    Policy {
        name: name.to_string(),
        before,
        on_due,
        after,
        escalate_from,
        send_time,
        on_day_off,
    }
}

/// A Telegram chat id: a number (negative for groups and channels) or a public `@name`
/// (5 to 32 letters, digits and underscores, starting with a letter).
pub fn is_chat_id(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    s.strip_prefix('@').is_some_and(|n| {
        (5..=32).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_alphabetic())
            && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// Why a webhook URL cannot be used, if it cannot: it must parse (the WHATWG URL rules the
/// HTTP client uses: a port out of range is refused here, not at the first send), be
/// `https://`, or `http://` to a loopback address (a receiver on the same server).
///
/// The reason is a predicate in the command's language, to follow the URL's name:
/// "webhook `http://x/` {why}".
pub fn webhook_url_problem(url: &str) -> Option<String> {
    let not_a_url = || Some(tr!("is not a URL (write https://host/path)"));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return not_a_url();
    }
    let Ok(u) = reqwest::Url::parse(url) else {
        return not_a_url();
    };
    let Some(host) = u.host_str().filter(|h| !h.is_empty()) else {
        return not_a_url();
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match u.scheme() {
        "https" => None,
        "http" if is_loopback(host) => None,
        "http" => Some(tr!(
            "is not https: webhooks go over https, except to a receiver on this server (127.0.0.1, ::1, localhost)"
        )),
        _ => Some(tr!("is not an https URL")),
    }
}

/// How a webhook URL is shown where others may read it (`/healthz`, the digest, an error):
/// its scheme and host only, since such URLs often carry a secret in their path or user part.
pub fn webhook_shown(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match u.port() {
            Some(port) => format!("{}://{}:{port}/…", u.scheme(), u.host_str().unwrap_or("?")),
            None => format!("{}://{}/…", u.scheme(), u.host_str().unwrap_or("?")),
        },
        Err(_) => "(a webhook URL)".into(),
    }
}

/// `localhost` or a loopback address.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn read_unit(cx: &mut Cx, t: &mut Tbl) -> Option<RawUnit> {
    let id = id_field(cx, t, "unit");
    let name = t.req_line(cx, "name");
    let email_given = t.has("email");
    let email = addresses(cx, t, "email");
    let escalate_to = t.str_list(cx, "escalate_to").unwrap_or_default();
    let telegram = match t.get("telegram") {
        None => None,
        Some(v) => match (str_of(v), int_of(v)) {
            (Some(s), _) if is_chat_id(s) => Some(At::new(s.to_string(), v.span())),
            (None, Some(n)) => Some(At::new(n.to_string(), v.span())),
            _ => {
                cx.error(
                    v.span(),
                    tr!(
                        "`unit.telegram` must be a chat id (\"-1001234567\" for a group, a number for a person) or a public channel's \"@name\"; see docs/channels.md for how to find it"
                    ),
                );
                None
            }
        },
    };
    let webhook = t
        .str_list(cx, "webhook")
        .unwrap_or_default()
        .into_iter()
        .filter_map(|w| match webhook_url_problem(&w.v) {
            None => Some(w),
            Some(why) => {
                cx.error(w.span, tr!("webhook `{url}` {why}", url = w.v, why));
                None
            }
        })
        .collect();
    Some(RawUnit {
        id: id?,
        name: name.map(|n| n.v),
        email,
        email_given,
        escalate_to,
        telegram,
        webhook,
        zalo: super::zalo::read_phones(cx, t),
        span: t.span.clone(),
    })
}

pub(super) fn read_rule(cx: &mut Cx, t: &mut Tbl) -> RawRule {
    let id = id_field(cx, t, "rule");
    let kind = match t.req_str(cx, "kind") {
        None => None,
        Some(k) => match k.v.as_str() {
            "report" => Some(Kind::Report),
            "task" => Some(Kind::Task),
            other => {
                cx.error(
                    k.span,
                    tr!(
                        "unknown kind `{other}`{h}",
                        other,
                        h = hint_or(
                            other,
                            ["report", "task"],
                            &tr!("use \"report\" (báo cáo) or \"task\" (nhiệm vụ)")
                        )
                    ),
                );
                None
            }
        },
    };
    let title = t.req_line(cx, "title");
    let description = t.str(cx, "description").map(|d| d.v);
    let reference = t.str(cx, "reference").map(|r| r.v);
    const PERIODS: [&str; 6] = [
        "month",
        "quarter",
        "half-year",
        "nine-months",
        "year",
        "once",
    ];
    let period = match t.req_str(cx, "period") {
        None => None,
        Some(p) => match p.v.as_str() {
            "month" => Some(PeriodKind::Month),
            "quarter" => Some(PeriodKind::Quarter),
            "half-year" => Some(PeriodKind::HalfYear),
            "nine-months" => Some(PeriodKind::NineMonths),
            "year" => Some(PeriodKind::Year),
            "once" => Some(PeriodKind::Once),
            other => {
                cx.error(
                    p.span,
                    tr!(
                        "unknown period `{other}`{h}",
                        other,
                        h = hint_or(
                            other,
                            PERIODS,
                            &tr!(
                                "use one of {list}",
                                list = PERIODS.map(|p| format!("\"{p}\"")).join(", ")
                            )
                        )
                    ),
                );
                None
            }
        },
    };
    let which = read_which(cx, t, period);
    let due = read_due(cx, t, period);
    let units = t.str_list(cx, "units");
    if units.is_none() && t.get("units").is_none() {
        t.missing(cx, "units");
    }
    let submit_to = t.str(cx, "submit_to");
    let policy = t.str(cx, "policy");
    let (mut active_from, mut active_until) = (None, None);
    if let Some(mut a) = t.table(cx, "active") {
        let from = a.date(cx, "from");
        let until = a.date(cx, "until");
        if let (Some(f), Some(u)) = (&from, &until)
            && u.v < f.v
        {
            cx.error(
                u.span.clone(),
                tr!("`active.until` is before `active.from`"),
            );
        }
        active_from = from.map(|f| f.v);
        active_until = until.map(|u| u.v);
        a.finish(cx);
    }
    let core = match (kind, title, period, which, due) {
        (Some(kind), Some(title), Some(period), Some(which), Some(due)) => Some(RuleCore {
            kind,
            title: title.v,
            description,
            reference,
            period,
            which,
            due,
        }),
        _ => None,
    };
    RawRule {
        id,
        core,
        has_units_key: units.is_some(),
        units: units.unwrap_or_default(),
        submit_to,
        policy,
        active_from,
        active_until,
        span: t.span.clone(),
    }
}

pub(super) fn read_which(cx: &mut Cx, t: &mut Tbl, period: Option<PeriodKind>) -> Option<Vec<u32>> {
    let max = match period {
        Some(PeriodKind::Month) => 12,
        Some(PeriodKind::Quarter) => 4,
        Some(PeriodKind::HalfYear) => 2,
        Some(PeriodKind::NineMonths | PeriodKind::Year) => 1,
        Some(PeriodKind::Once) => 0,
        None => 12,
    };
    let Some(v) = t.get("which") else {
        return Some((1..=max).collect());
    };
    if max == 0 {
        cx.error(
            v.span(),
            tr!("`which` does not apply to `period = \"once\"`"),
        );
        return None;
    }
    let toml::de::DeValue::Array(items) = v.get_ref() else {
        cx.error(
            v.span(),
            tr!("`which` must be a list of numbers, e.g. [1, 3]"),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items.iter() {
        match int_of(item) {
            Some(n) if n >= 1 && n <= i64::from(max) => out.push(n as u32),
            _ => {
                ok = false;
                cx.error(
                    item.span(),
                    tr!(
                        "`which` holds period numbers from 1 to {max} for this period",
                        max
                    ),
                );
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    ok.then_some(out)
}

pub(super) fn read_due(cx: &mut Cx, t: &mut Tbl, period: Option<PeriodKind>) -> Option<Due> {
    if !t.has("due") {
        t.missing(cx, "due");
        return None;
    }
    let mut d = t.table(cx, "due")?;
    let before = d.bool(cx, "before").unwrap_or(false);
    let time = d.time(cx, "time");
    if let (true, Some(tm)) = (before, &time) {
        cx.error(
            tm.span.clone(),
            tr!(
                "`time` and `before = true` contradict each other: \"before the day\" ends at 00:00"
            ),
        );
    }
    let due = if period == Some(PeriodKind::Once) {
        for k in ["month", "day"] {
            if let Some(v) = d.get(if k == "month" { "month" } else { "day" }) {
                cx.error(
                    v.span(),
                    tr!(
                        "`due.{k}` is for periodic rules; a one-off takes `due = {{ date = \"YYYY-MM-DD\" }}`",
                        k
                    ),
                );
            }
        }
        let date = d.date(cx, "date");
        if !d.has("date") {
            d.missing(cx, "date");
        }
        date.map(|date| Due::Once {
            date: date.v,
            before,
            time: time.map(|t| t.v),
        })
    } else {
        if let Some(v) = d.get("date") {
            cx.error(
                v.span(),
                tr!("`due.date` is for `period = \"once\"`; periodic rules take `month` and `day`"),
            );
        }
        let months_after = match d.get("month") {
            None => Some(0),
            Some(v) => match (str_of(v).map(|s| s.as_ref()), int_of(v)) {
                (Some("last"), _) => Some(0),
                (Some("next"), _) => Some(1),
                (None, Some(n)) if (0..=12).contains(&n) => Some(n as u32),
                _ => {
                    cx.error(
                        v.span(),
                        tr!(
                            "`due.month` must be \"last\" (the period's last month), \"next\" (the month after), or a number of months after the period's last month (0-12)"
                        ),
                    );
                    None
                }
            },
        };
        let day = match d.get("day") {
            None => {
                d.missing(cx, "day");
                None
            }
            Some(v) => match (str_of(v).map(|s| s.as_ref()), int_of(v)) {
                (Some("last"), _) => Some(DueDay::Last),
                (None, Some(n)) if (1..=31).contains(&n) => Some(DueDay::Day(n as u32)),
                _ => {
                    cx.error(
                        v.span(),
                        tr!("`due.day` must be a day of the month (1-31) or \"last\""),
                    );
                    None
                }
            },
        };
        match (months_after, day) {
            (Some(months_after), Some(day)) => Some(Due::Periodic {
                months_after,
                day,
                before,
                time: time.map(|t| t.v),
            }),
            _ => None,
        }
    };
    d.finish(cx);
    due
}
