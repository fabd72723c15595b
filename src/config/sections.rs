//! The plain sections: `[organization]`, `[email]`, `[calendar]`.

use std::path::Path;

use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;

use super::diag::{did_you_mean_within, hint_or};
use super::raw::*;
use super::reader::{At, Cx, Tbl};
use super::*;
use crate::tr;

/// The message for a time zone chrono-tz does not know.
fn unknown_time_zone(name: &str) -> String {
    // An offset such as "UTC+7" or "+07:00" is not a zone; "UTC" would be 7 hours off.
    let offset_like = name.contains('+') || name.contains("-0") || name.contains("-1");
    if offset_like {
        return tr!(
            "`{name}` is an offset, not a time zone: write an IANA name (Vietnam, UTC+7, is `Asia/Ho_Chi_Minh`)",
            name
        );
    }
    // Time zone names are long and alike: only a near miss is worth a hint.
    let h = did_you_mean_within(name, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()), 2)
        .map(|k| tr!("; did you mean `{k}`?", k))
        .unwrap_or_default();
    tr!(
        "unknown time zone `{name}`{h} (an IANA name; Vietnam is `Asia/Ho_Chi_Minh`)",
        name,
        h
    )
}

pub(super) fn read_org(cx: &mut Cx, t: &mut Tbl) -> Option<RawOrg> {
    let name = t.req_line(cx, "name");
    let timezone = match t.str(cx, "timezone") {
        None => Some(chrono_tz::Asia::Ho_Chi_Minh),
        Some(tz) => match tz.v.parse::<Tz>() {
            Ok(z) => Some(z),
            Err(_) => {
                cx.error(tz.span, unknown_time_zone(&tz.v));
                None
            }
        },
    };
    let public_url = t.str(cx, "public_url").and_then(|u| {
        let ok = (u.v.starts_with("http://") || u.v.starts_with("https://"))
            && u.v.len() > "https://".len()
            && !u.v.contains(char::is_whitespace);
        if ok {
            Some(u.v.trim_end_matches('/').to_string())
        } else {
            cx.error(
                u.span,
                tr!(
                    "`{url}` is not a URL; write http://HOST[:PORT] or https://HOST",
                    url = u.v
                ),
            );
            None
        }
    });
    let coordinator = t.str(cx, "coordinator");
    // An address, or a unit: the unit is told on every channel it has.
    let (emails, admin_units): (Vec<_>, Vec<_>) = t
        .str_list(cx, "admins")
        .unwrap_or_default()
        .into_iter()
        .partition(|a| a.v.contains('@'));
    let admins = addresses_of(cx, emails);
    Some(RawOrg {
        name: name?.v,
        timezone: timezone?,
        public_url,
        coordinator,
        admins,
        admin_units,
        span: t.span.clone(),
    })
}

pub(super) fn read_email(
    cx: &mut Cx,
    t: &mut Tbl,
    base: &Path,
    e: &mut Email,
    secrets: &mut Vec<(At<String>, Secret)>,
) {
    if let Some(f) = t.str(cx, "from") {
        if valid_mailbox(&f.v) {
            e.from = f.v;
        } else {
            cx.error(
                f.span,
                tr!(
                    "`{from}` is not a mailbox; write \"Name <address@domain>\" or an address",
                    from = f.v
                ),
            );
        }
    }
    if let Some(r) = t.str(cx, "reply_to") {
        if valid_mailbox(&r.v) {
            e.reply_to = Some(r.v);
        } else {
            cx.error(
                r.span,
                tr!("`{address}` is not an email address", address = r.v),
            );
        }
    }
    if let Some(tr) = t.str(cx, "transport") {
        match tr.v.as_str() {
            "smtp" => e.transport = Transport::Smtp,
            "file" => e.transport = Transport::File,
            other => cx.error(
                tr.span,
                tr!(
                    "unknown transport `{other}`{h}",
                    other,
                    h = hint_or(other, ["smtp", "file"], &tr!("use \"smtp\" or \"file\""))
                ),
            ),
        }
    }
    if let Some(mut s) = t.table(cx, "smtp") {
        let host = s.req_str(cx, "host");
        let security = match s.str(cx, "security") {
            None => Some(Security::Starttls),
            Some(v) => match v.v.as_str() {
                "starttls" => Some(Security::Starttls),
                "tls" => Some(Security::Tls),
                "none" => Some(Security::None),
                other => {
                    cx.error(
                        v.span,
                        tr!(
                            "unknown security `{other}`{h}",
                            other,
                            h = hint_or(
                                other,
                                ["starttls", "tls", "none"],
                                &tr!("use \"starttls\", \"tls\" or \"none\"")
                            )
                        ),
                    );
                    None
                }
            },
        };
        let port = match s.int(cx, "port") {
            None => Some(match security {
                Some(Security::Tls) => 465,
                Some(Security::None) => 25,
                _ => 587,
            }),
            Some(p) => match u16::try_from(p.v) {
                Ok(v) if v > 0 => Some(v),
                _ => {
                    cx.error(
                        p.span,
                        tr!("port {port} is out of range (1-65535)", port = p.v),
                    );
                    None
                }
            },
        };
        let username = s.str(cx, "username").map(|u| u.v);
        let password = secret(cx, &mut s, "password_file", "password_env", base, secrets);
        if username.is_some() && password.is_none() {
            cx.error(
                s.span.clone(),
                tr!(
                    "`email.smtp.username` is set but no password: add `password_file` or `password_env`"
                ),
            );
        }
        let ca_file = s
            .str(cx, "ca_file")
            .map(|c| existing(cx, base, &c, "CA file", Path::is_file));
        let max_per_minute = per_minute(cx, &mut s, "email.smtp", 120);
        let timeout_seconds = match s.int(cx, "timeout_seconds") {
            None => 30,
            Some(n) if (1..=300).contains(&n.v) => u32::try_from(n.v).unwrap_or(30),
            Some(n) => {
                cx.error(
                    n.span,
                    tr!("`email.smtp.timeout_seconds` must be between 1 and 300"),
                );
                30
            }
        };
        if let (Some(Security::None), Some(h)) = (security, &host)
            && !super::rules::is_loopback(&h.v)
        {
            cx.error(
                h.span.clone(),
                tr!(
                    "`security = \"none\"` sends passwords and mail in clear: it is allowed only to 127.0.0.1 or localhost, not `{host}`",
                    host = h.v
                ),
            );
        }
        if let (Some(host), Some(port), Some(security)) = (host, port, security) {
            e.smtp = Some(Smtp {
                host: host.v,
                port,
                security,
                username,
                password,
                ca_file,
                max_per_minute,
                timeout_seconds,
            });
        }
        s.finish(cx);
    }
    if let Some(mut f) = t.table(cx, "file") {
        if let Some(d) = f.str(cx, "dir") {
            e.file_dir = rel(base, &d.v);
        }
        f.finish(cx);
    }
    if e.transport == Transport::Smtp && e.smtp.is_none() && !t.has("smtp") {
        cx.error(
            t.span.clone(),
            tr!("`transport = \"smtp\"` needs an `[email.smtp]` section with at least `host`"),
        );
    }
}

pub(super) fn weekend_mask(days: &[Weekday]) -> [bool; 7] {
    let mut m = [false; 7];
    for d in days {
        m[d.num_days_from_monday() as usize] = true;
    }
    m
}

pub(super) fn read_calendar(cx: &mut Cx, t: &mut Tbl) -> RawCalendar {
    let mut weekend = weekend_mask(&[Weekday::Sat, Weekday::Sun]);
    if let Some(list) = t.str_list(cx, "weekend") {
        let mut days = Vec::new();
        for d in list {
            match d.v.parse::<Weekday>() {
                Ok(w) => days.push(w),
                Err(_) => cx.error(
                    d.span,
                    tr!(
                        "`{day}` is not a weekday; write mon, tue, wed, thu, fri, sat or sun",
                        day = d.v
                    ),
                ),
            }
        }
        weekend = weekend_mask(&days);
        if weekend.iter().all(|w| *w) {
            cx.error(
                t.span.clone(),
                tr!(
                    "`calendar.weekend` covers every day of the week: there would be no working day"
                ),
            );
            weekend = weekend_mask(&[Weekday::Sat, Weekday::Sun]);
        }
    }
    let statutory = match t.str(cx, "holidays") {
        None => true,
        Some(h) => match h.v.as_str() {
            "vn" => true,
            "none" => false,
            other => {
                cx.error(
                    h.span,
                    tr!(
                        "unknown holiday set `{other}`; use \"vn\" (Vietnamese statutory holidays) or \"none\"",
                        other
                    ),
                );
                true
            }
        },
    };
    let include = t.str_list(cx, "include");
    let days_off = day_list(cx, t, "days_off");
    let working_days = day_list(cx, t, "working_days");
    RawCalendar {
        weekend,
        statutory,
        include,
        days_off,
        working_days,
    }
}

/// `["2025-10-15", { date = "2025-10-16", reason = "…" }]`.
pub(super) fn day_list(
    cx: &mut Cx,
    t: &mut Tbl,
    key: &'static str,
) -> Vec<(At<NaiveDate>, Option<String>)> {
    let Some(v) = t.get(key) else {
        return Vec::new();
    };
    let name = t.key_name(key);
    let toml::de::DeValue::Array(items) = v.get_ref() else {
        cx.error(v.span(), tr!("`{name}` must be a list of dates", name));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items.iter() {
        if let toml::de::DeValue::Table(tb) = item.get_ref() {
            let mut e = Tbl::new(tb, item.span(), name.clone());
            let d = e.date(cx, "date");
            let reason = e.str(cx, "reason").map(|r| r.v);
            if !e.has("date") {
                e.missing(cx, "date");
            }
            e.finish(cx);
            if let Some(d) = d {
                out.push((d, reason));
            }
        } else if let Some(d) = super::reader::date_of(cx, item, &name) {
            out.push((d, None));
        }
    }
    out
}
