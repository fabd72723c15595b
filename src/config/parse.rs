//! Walks the spanned TOML tree into a [`Config`], then resolves and checks references.
//!
//! Two passes: the first reads each section into raw items that still name each other by
//! string (with spans); the second resolves those names to indices, so an unknown unit in a
//! rule is reported where it is written, with the closest known name as a hint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate, Weekday};
use chrono_tz::Tz;
use toml::de::DeTable;

use super::diag::{Diagnostics, Source, hint};
use super::reader::{At, Cx, Tbl, int_of, str_of};
use super::*;
use crate::calendar::{Calendar, CalendarSpec, DayEntry, Schedule};

/// The shipped official schedules, used when `[calendar] include` is not given.
const BUILTIN_SCHEDULES: &[(&str, &str)] = &[
    (
        "(built-in) calendar/vn-2025.toml",
        include_str!("../../config/calendar/vn-2025.toml"),
    ),
    (
        "(built-in) calendar/vn-2026.toml",
        include_str!("../../config/calendar/vn-2026.toml"),
    ),
];

pub(super) fn load(path: &Path, today: NaiveDate) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, text, today),
        Err(e) => {
            let mut diags = Diagnostics::default();
            diags.file_error(
                path,
                format!(
                    "cannot read the config file: {e}; pass --config PATH or set NHACVIEC_CONFIG"
                ),
            );
            finish(None, diags)
        }
    }
}

fn finish(config: Option<Config>, diags: Diagnostics) -> Loaded {
    let ok = !diags.has_errors();
    Loaded {
        config: if ok { config } else { None },
        diagnostics: diags.into_vec(),
    }
}

/// Reports TOML syntax errors; true if there were any.
fn syntax_errors(src: &Source, diags: &mut Diagnostics, errs: Vec<toml::de::Error>) -> bool {
    let any = !errs.is_empty();
    for e in errs {
        let span = e.span().unwrap_or(0..0);
        diags.error(src, span, format!("TOML syntax: {}", e.message().trim()));
    }
    any
}

pub(super) fn load_text(path: &Path, text: String, today: NaiveDate) -> Loaded {
    let src = Source::new(path, text);
    let mut diags = Diagnostics::default();
    let (root, errs) = DeTable::parse_recoverable(&src.text);
    if syntax_errors(&src, &mut diags, errs) {
        return finish(None, diags);
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let raw = {
        let mut cx = Cx {
            src: &src,
            diags: &mut diags,
        };
        let mut top = Tbl::new(root.get_ref(), 0..0, "");
        let raw = read_root(&mut cx, &mut top, &base);
        top.finish(&mut cx);
        raw
    };
    let calendar = build_calendar(&mut diags, &src, &raw.calendar, &base, today);
    let config = {
        let mut cx = Cx {
            src: &src,
            diags: &mut diags,
        };
        resolve(&mut cx, raw, calendar, path, today)
    };
    finish(config, diags)
}

// ---------------------------------------------------------------------------------------------
// Pass 1: raw sections.

struct RawOrg {
    name: String,
    timezone: Tz,
    public_url: Option<String>,
    coordinator: Option<At<String>>,
    admins: Vec<String>,
    span: std::ops::Range<usize>,
}

struct RawUnit {
    id: At<String>,
    name: String,
    email: Vec<String>,
    escalate_to: Vec<At<String>>,
    telegram: Option<At<String>>,
    webhook: Option<String>,
    span: std::ops::Range<usize>,
}

struct RawGroup {
    id: At<String>,
    units: Vec<At<String>>,
}

struct RawRule {
    id: At<String>,
    kind: Kind,
    title: String,
    description: Option<String>,
    reference: Option<String>,
    period: PeriodKind,
    which: Vec<u32>,
    due: Due,
    units: Vec<At<String>>,
    submit_to: Option<At<String>>,
    policy: Option<At<String>>,
    active_from: Option<NaiveDate>,
    active_until: Option<NaiveDate>,
    span: std::ops::Range<usize>,
}

struct RawCalendar {
    weekend: [bool; 7],
    statutory: bool,
    include: Option<Vec<At<String>>>,
    days_off: Vec<(At<NaiveDate>, Option<String>)>,
    working_days: Vec<(At<NaiveDate>, Option<String>)>,
}

struct RawPolicy {
    policy: Policy,
    name: At<String>,
    explicit: bool,
}

struct Raw {
    org: Option<RawOrg>,
    storage: Storage,
    server: Server,
    email: Email,
    email_span: std::ops::Range<usize>,
    calendar: RawCalendar,
    digest_time: chrono::NaiveTime,
    digest_to: Option<Vec<At<String>>>,
    channels: Channels,
    policies: Vec<RawPolicy>,
    units: Vec<RawUnit>,
    groups: Vec<RawGroup>,
    rules: Vec<RawRule>,
    secrets: Vec<(At<String>, Secret)>,
}

fn rel(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn id_field(cx: &mut Cx, t: &mut Tbl, what: &str) -> Option<At<String>> {
    let id = t.req_str(cx, "id")?;
    if !valid_id(&id.v) {
        cx.error(
            id.span.clone(),
            format!(
                "{what} id `{}` may hold only a-z, 0-9 and `-` (it is a stable key: the database uses it)",
                id.v
            ),
        );
        return None;
    }
    Some(id)
}

/// A basic shape check of an email address; the mailer parses it fully.
pub(crate) fn valid_address(s: &str) -> bool {
    let mut parts = s.splitn(2, '@');
    let (local, domain) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s
            .chars()
            .any(|c| c.is_whitespace() || "<>,;\"()[]\\".contains(c))
        && !domain.contains('@')
}

/// Accepts `address` or `Name <address>`.
fn valid_mailbox(s: &str) -> bool {
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => valid_address(&s[i + 1..s.len() - 1]),
        (None, false) => valid_address(s.trim()),
        _ => false,
    }
}

fn addresses(cx: &mut Cx, t: &mut Tbl, key: &'static str) -> Vec<String> {
    let list = t.str_list(cx, key).unwrap_or_default();
    let mut out = Vec::new();
    for a in list {
        if valid_address(&a.v) {
            out.push(a.v);
        } else {
            cx.error(
                a.span,
                format!("`{}` is not an email address (write name@domain)", a.v),
            );
        }
    }
    out
}

fn secret(
    cx: &mut Cx,
    t: &mut Tbl,
    file_key: &'static str,
    env_key: &'static str,
    base: &Path,
    secrets: &mut Vec<(At<String>, Secret)>,
) -> Option<Secret> {
    let file = t.str(cx, file_key);
    let env = t.str(cx, env_key);
    match (file, env) {
        (Some(f), Some(e)) => {
            cx.error(
                e.span,
                format!("give either `{file_key}` or `{env_key}`, not both"),
            );
            let _ = f;
            None
        }
        (Some(f), None) => {
            let s = Secret::File(rel(base, &f.v));
            secrets.push((f, s.clone()));
            Some(s)
        }
        (None, Some(e)) => {
            let s = Secret::Env(e.v.clone());
            secrets.push((e, s.clone()));
            Some(s)
        }
        (None, None) => None,
    }
}

fn read_root(cx: &mut Cx, top: &mut Tbl, base: &Path) -> Raw {
    let mut secrets = Vec::new();
    let org = match top.table(cx, "organization") {
        Some(mut t) => {
            let o = read_org(cx, &mut t);
            t.finish(cx);
            o
        }
        None => {
            if !top.has("organization") {
                cx.error(
                    0..0,
                    "missing `[organization]`: it names the organization and its time zone",
                );
            }
            None
        }
    };

    let storage = {
        let mut path = rel(base, "var/nhacviec.db");
        if let Some(mut t) = top.table(cx, "storage") {
            if let Some(p) = t.str(cx, "path") {
                path = rel(base, &p.v);
            }
            t.finish(cx);
        }
        Storage { path }
    };

    let server = {
        let mut s = Server {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_password_file: None,
            ack_per_minute: 30,
        };
        if let Some(mut t) = top.table(cx, "server") {
            if let Some(l) = t.str(cx, "listen") {
                match l.v.parse::<SocketAddr>() {
                    Ok(a) => s.listen = a,
                    Err(_) => cx.error(
                        l.span,
                        format!(
                            "`{}` is not a listen address; write IP:PORT, e.g. \"127.0.0.1:8080\"",
                            l.v
                        ),
                    ),
                }
            }
            if let Some(p) = t.str(cx, "admin_password_file") {
                let path = rel(base, &p.v);
                secrets.push((p, Secret::File(path.clone())));
                s.admin_password_file = Some(path);
            }
            if let Some(n) = t.int(cx, "ack_per_minute") {
                match u32::try_from(n.v) {
                    Ok(v) if v > 0 => s.ack_per_minute = v,
                    _ => cx.error(n.span, "`server.ack_per_minute` must be a positive number"),
                }
            }
            t.finish(cx);
        }
        s
    };

    let mut email_span = 0..0;
    let email = {
        let mut e = Email {
            from: String::new(),
            reply_to: None,
            transport: Transport::File,
            smtp: None,
            file_dir: rel(base, "var/mail"),
        };
        if let Some(mut t) = top.table(cx, "email") {
            email_span = t.span.clone();
            read_email(cx, &mut t, base, &mut e, &mut secrets);
            t.finish(cx);
        }
        e
    };

    let calendar = match top.table(cx, "calendar") {
        Some(mut t) => {
            let c = read_calendar(cx, &mut t);
            t.finish(cx);
            c
        }
        None => RawCalendar {
            weekend: weekend_mask(&[Weekday::Sat, Weekday::Sun]),
            statutory: true,
            include: None,
            days_off: Vec::new(),
            working_days: Vec::new(),
        },
    };

    let mut digest_time = chrono::NaiveTime::from_hms_opt(7, 30, 0).unwrap_or_default();
    let mut digest_to = None;
    if let Some(mut t) = top.table(cx, "digest") {
        if let Some(tm) = t.time(cx, "time") {
            digest_time = tm.v;
        }
        digest_to = t.str_list(cx, "to");
        t.finish(cx);
    }

    let mut channels = Channels::default();
    if let Some(mut t) = top.table(cx, "channels") {
        if let Some(mut tg) = t.table(cx, "telegram") {
            let token = secret(
                cx,
                &mut tg,
                "bot_token_file",
                "bot_token_env",
                base,
                &mut secrets,
            );
            let api_url = tg
                .str(cx, "api_url")
                .map(|u| u.v.trim_end_matches('/').to_string())
                .unwrap_or_else(|| "https://api.telegram.org".into());
            match token {
                Some(bot_token) => channels.telegram = Some(Telegram { bot_token, api_url }),
                None => tg.missing(cx, "bot_token_file"),
            }
            tg.finish(cx);
        }
        if let Some(mut wh) = t.table(cx, "webhook") {
            match secret(cx, &mut wh, "secret_file", "secret_env", base, &mut secrets) {
                Some(secret) => channels.webhook = Some(Webhook { secret }),
                None => wh.missing(cx, "secret_file"),
            }
            wh.finish(cx);
        }
        t.finish(cx);
    }

    let mut policies = vec![RawPolicy {
        policy: Policy::builtin_default(),
        name: At::new("default".into(), 0..0),
        explicit: false,
    }];
    for (name, mut t) in top.named_tables(cx, "policy") {
        if !valid_id(&name.v) {
            cx.error(
                name.span.clone(),
                format!("policy name `{}` may hold only a-z, 0-9 and `-`", name.v),
            );
        }
        let p = read_policy(cx, &mut t, &name.v);
        t.finish(cx);
        if name.v == "default" {
            policies[0] = RawPolicy {
                policy: p,
                name,
                explicit: true,
            };
        } else {
            policies.push(RawPolicy {
                policy: p,
                name,
                explicit: true,
            });
        }
    }

    let mut units = Vec::new();
    for mut t in top.tables(cx, "unit") {
        if let Some(u) = read_unit(cx, &mut t) {
            units.push(u);
        }
        t.finish(cx);
    }
    if units.is_empty() && !top.has("unit") {
        cx.error(
            0..0,
            "no `[[unit]]`: add at least one unit with an `id`, a `name` and an `email`",
        );
    }

    let mut groups = Vec::new();
    for mut t in top.tables(cx, "group") {
        let id = id_field(cx, &mut t, "group");
        let members = t.str_list(cx, "units");
        if members.is_none() && t.get("units").is_none() {
            t.missing(cx, "units");
        }
        if let Some(id) = id {
            groups.push(RawGroup {
                id,
                units: members.unwrap_or_default(),
            });
        }
        t.finish(cx);
    }

    let mut rules = Vec::new();
    for mut t in top.tables(cx, "rule") {
        if let Some(r) = read_rule(cx, &mut t) {
            rules.push(r);
        }
        t.finish(cx);
    }
    if rules.is_empty() && !top.has("rule") {
        cx.error(
            0..0,
            "no `[[rule]]`: add at least one rule saying what is owed, by whom and when",
        );
    }

    Raw {
        org,
        storage,
        server,
        email,
        email_span,
        calendar,
        digest_time,
        digest_to,
        channels,
        policies,
        units,
        groups,
        rules,
        secrets,
    }
}

fn read_org(cx: &mut Cx, t: &mut Tbl) -> Option<RawOrg> {
    let name = t.req_str(cx, "name");
    let timezone = match t.str(cx, "timezone") {
        None => Some(chrono_tz::Asia::Ho_Chi_Minh),
        Some(tz) => {
            match tz.v.parse::<Tz>() {
                Ok(z) => Some(z),
                Err(_) => {
                    let h = hint(&tz.v, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()));
                    cx.error(
                    tz.span,
                    format!("unknown time zone `{}`{h} (an IANA name; Vietnam is `Asia/Ho_Chi_Minh`)", tz.v),
                );
                    None
                }
            }
        }
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
                format!(
                    "`{}` is not a URL; write http://HOST[:PORT] or https://HOST",
                    u.v
                ),
            );
            None
        }
    });
    let coordinator = t.str(cx, "coordinator");
    let admins = addresses(cx, t, "admins");
    Some(RawOrg {
        name: name?.v,
        timezone: timezone?,
        public_url,
        coordinator,
        admins,
        span: t.span.clone(),
    })
}

fn read_email(
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
                format!(
                    "`{}` is not a mailbox; write \"Name <address@domain>\" or an address",
                    f.v
                ),
            );
        }
    }
    if let Some(r) = t.str(cx, "reply_to") {
        if valid_mailbox(&r.v) {
            e.reply_to = Some(r.v);
        } else {
            cx.error(r.span, format!("`{}` is not an email address", r.v));
        }
    }
    if let Some(tr) = t.str(cx, "transport") {
        match tr.v.as_str() {
            "smtp" => e.transport = Transport::Smtp,
            "file" => e.transport = Transport::File,
            other => cx.error(
                tr.span,
                format!(
                    "unknown transport `{other}`{}; use \"smtp\" or \"file\"",
                    hint(other, ["smtp", "file"])
                ),
            ),
        }
    }
    if let Some(mut s) = t.table(cx, "smtp") {
        let host = s.req_str(cx, "host");
        let security = match s.str(cx, "security") {
            None => Some(Security::Starttls),
            Some(v) => {
                match v.v.as_str() {
                    "starttls" => Some(Security::Starttls),
                    "tls" => Some(Security::Tls),
                    "none" => Some(Security::None),
                    other => {
                        cx.error(
                        v.span,
                        format!("unknown security `{other}`{}; use \"starttls\", \"tls\" or \"none\"", hint(other, ["starttls", "tls", "none"])),
                    );
                        None
                    }
                }
            }
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
                    cx.error(p.span, format!("port {} is out of range (1-65535)", p.v));
                    None
                }
            },
        };
        let username = s.str(cx, "username").map(|u| u.v);
        let password = secret(cx, &mut s, "password_file", "password_env", base, secrets);
        if username.is_some() && password.is_none() {
            cx.error(
                s.span.clone(),
                "`email.smtp.username` is set but no password: add `password_file` or `password_env`",
            );
        }
        let ca_file = s.str(cx, "ca_file").map(|c| {
            let p = rel(base, &c.v);
            if !p.is_file() {
                cx.error(
                    c.span.clone(),
                    format!(
                        "CA file `{}` does not exist (looked at {})",
                        c.v,
                        p.display()
                    ),
                );
            }
            p
        });
        let max_per_minute = match s.int(cx, "max_per_minute") {
            None => 120,
            Some(n) => u32::try_from(n.v)
                .ok()
                .filter(|&v| v > 0)
                .unwrap_or_else(|| {
                    cx.error(
                        n.span,
                        "`email.smtp.max_per_minute` must be a positive number",
                    );
                    120
                }),
        };
        if let (Some(Security::None), Some(h)) = (security, &host) {
            let local = h.v == "localhost"
                || h.v
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !local {
                cx.error(
                    h.span.clone(),
                    format!("`security = \"none\"` sends passwords and mail in clear: it is allowed only to 127.0.0.1 or localhost, not `{}`", h.v),
                );
            }
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
            "`transport = \"smtp\"` needs an `[email.smtp]` section with at least `host`",
        );
    }
}

fn weekend_mask(days: &[Weekday]) -> [bool; 7] {
    let mut m = [false; 7];
    for d in days {
        m[d.num_days_from_monday() as usize] = true;
    }
    m
}

fn read_calendar(cx: &mut Cx, t: &mut Tbl) -> RawCalendar {
    let mut weekend = weekend_mask(&[Weekday::Sat, Weekday::Sun]);
    if let Some(list) = t.str_list(cx, "weekend") {
        let mut days = Vec::new();
        for d in list {
            match d.v.parse::<Weekday>() {
                Ok(w) => days.push(w),
                Err(_) => cx.error(
                    d.span,
                    format!(
                        "`{}` is not a weekday; write mon, tue, wed, thu, fri, sat or sun",
                        d.v
                    ),
                ),
            }
        }
        weekend = weekend_mask(&days);
    }
    let statutory = match t.str(cx, "holidays") {
        None => true,
        Some(h) => match h.v.as_str() {
            "vn" => true,
            "none" => false,
            other => {
                cx.error(
                    h.span,
                    format!("unknown holiday set `{other}`; use \"vn\" (Vietnamese statutory holidays) or \"none\""),
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
fn day_list(cx: &mut Cx, t: &mut Tbl, key: &'static str) -> Vec<(At<NaiveDate>, Option<String>)> {
    let Some(v) = t.get(key) else {
        return Vec::new();
    };
    let name = t.key_name(key);
    let toml::de::DeValue::Array(items) = v.get_ref() else {
        cx.error(v.span(), format!("`{name}` must be a list of dates"));
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

fn offsets(cx: &mut Cx, t: &mut Tbl, key: &'static str, default: &[Offset]) -> Vec<Offset> {
    let Some(list) = t.str_list(cx, key) else {
        return default.to_vec();
    };
    let mut out: Vec<Offset> = Vec::new();
    for s in list {
        match Offset::parse(&s.v) {
            Ok(o) if out.contains(&o) => {
                cx.warning(
                    s.span,
                    format!("step `{o}` is listed twice; it is sent once"),
                );
            }
            Ok(o) => {
                if o.n == 0 {
                    let msg = if key == "before" {
                        format!(
                            "step `{}` falls on the last day: it is the same as `on_due` and never fires on its own",
                            s.v
                        )
                    } else {
                        format!(
                            "step `{}` falls on the last day, not after it: use `on_due = true` instead",
                            s.v
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

fn read_policy(cx: &mut Cx, t: &mut Tbl, name: &str) -> Policy {
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
                    format!("unknown `on_day_off = \"{other}\"`{}; use \"earlier\", \"later\" or \"keep\"", hint(other, ["earlier", "later", "keep"])),
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
                    cx.error(
                        s.span,
                        format!(
                            "`escalate_from = \"{o}\"` is not one of policy `{name}`'s `after` steps ({})",
                            if list.is_empty() { "none".to_string() } else { list.join(", ") }
                        ),
                    );
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

fn read_unit(cx: &mut Cx, t: &mut Tbl) -> Option<RawUnit> {
    let id = id_field(cx, t, "unit");
    let name = t.req_str(cx, "name");
    let email = addresses(cx, t, "email");
    let escalate_to = t.str_list(cx, "escalate_to").unwrap_or_default();
    let telegram = match t.get("telegram") {
        None => None,
        Some(v) => match (str_of(v), int_of(v)) {
            (Some(s), _) => Some(At::new(s.to_string(), v.span())),
            (None, Some(n)) => Some(At::new(n.to_string(), v.span())),
            _ => {
                cx.error(
                    v.span(),
                    "`unit.telegram` must be a chat id, e.g. \"-1001234567\"",
                );
                None
            }
        },
    };
    let webhook = t.str(cx, "webhook").and_then(|w| {
        if w.v.starts_with("https://") || w.v.starts_with("http://") {
            Some(w.v)
        } else {
            cx.error(w.span, format!("webhook `{}` is not an http(s) URL", w.v));
            None
        }
    });
    Some(RawUnit {
        id: id?,
        name: name?.v,
        email,
        escalate_to,
        telegram,
        webhook,
        span: t.span.clone(),
    })
}

fn read_rule(cx: &mut Cx, t: &mut Tbl) -> Option<RawRule> {
    let id = id_field(cx, t, "rule");
    let kind = match t.req_str(cx, "kind") {
        None => None,
        Some(k) => {
            match k.v.as_str() {
                "report" => Some(Kind::Report),
                "task" => Some(Kind::Task),
                other => {
                    cx.error(
                    k.span,
                    format!("unknown kind `{other}`{}; use \"report\" (báo cáo) or \"task\" (nhiệm vụ)", hint(other, ["report", "task"])),
                );
                    None
                }
            }
        }
    };
    let title = t.req_str(cx, "title");
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
                    format!(
                        "unknown period `{other}`{}; use one of {}",
                        hint(other, PERIODS),
                        PERIODS.map(|p| format!("\"{p}\"")).join(", ")
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
            cx.error(u.span.clone(), "`active.until` is before `active.from`");
        }
        active_from = from.map(|f| f.v);
        active_until = until.map(|u| u.v);
        a.finish(cx);
    }
    Some(RawRule {
        id: id?,
        kind: kind?,
        title: title?.v,
        description,
        reference,
        period: period?,
        which: which?,
        due: due?,
        units: units.unwrap_or_default(),
        submit_to,
        policy,
        active_from,
        active_until,
        span: t.span.clone(),
    })
}

fn read_which(cx: &mut Cx, t: &mut Tbl, period: Option<PeriodKind>) -> Option<Vec<u32>> {
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
        cx.error(v.span(), "`which` does not apply to `period = \"once\"`");
        return None;
    }
    let toml::de::DeValue::Array(items) = v.get_ref() else {
        cx.error(v.span(), "`which` must be a list of numbers, e.g. [1, 3]");
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
                    format!("`which` holds period numbers from 1 to {max} for this period"),
                );
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    ok.then_some(out)
}

fn read_due(cx: &mut Cx, t: &mut Tbl, period: Option<PeriodKind>) -> Option<Due> {
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
            "`time` and `before = true` contradict each other: \"before the day\" ends at 00:00",
        );
    }
    let due = if period == Some(PeriodKind::Once) {
        for k in ["month", "day"] {
            if let Some(v) = d.get(if k == "month" { "month" } else { "day" }) {
                cx.error(
                    v.span(),
                    format!("`due.{k}` is for periodic rules; a one-off takes `due = {{ date = \"YYYY-MM-DD\" }}`"),
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
                "`due.date` is for `period = \"once\"`; periodic rules take `month` and `day`",
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
                        "`due.month` must be \"last\" (the period's last month), \"next\" (the month after), or a number of months after the period's last month (0-12)",
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
                        "`due.day` must be a day of the month (1-31) or \"last\"",
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

// ---------------------------------------------------------------------------------------------
// The calendar: included schedule files are read here, with their own diagnostics.

fn build_calendar(
    diags: &mut Diagnostics,
    src: &Source,
    raw: &RawCalendar,
    base: &Path,
    today: NaiveDate,
) -> Calendar {
    let mut schedules: Vec<Schedule> = Vec::new();
    let mut add = |diags: &mut Diagnostics,
                   path: PathBuf,
                   text: String,
                   span: Option<std::ops::Range<usize>>| {
        if let Some(s) = read_schedule(diags, path, text) {
            if let Some(prev) = schedules.iter().find(|p| p.year == s.year) {
                let msg = format!(
                    "two official schedules for {}: `{}` and `{}`",
                    s.year,
                    prev.file.display(),
                    s.file.display()
                );
                match span {
                    Some(sp) => diags.error(src, sp, msg),
                    None => diags.file_error(&s.file, msg),
                }
            } else {
                schedules.push(s);
            }
        }
    };
    match &raw.include {
        None => {
            for (name, text) in BUILTIN_SCHEDULES {
                add(diags, PathBuf::from(name), (*text).to_string(), None);
            }
        }
        Some(list) => {
            for inc in list {
                let path = rel(base, &inc.v);
                match std::fs::read_to_string(&path) {
                    Ok(text) => add(diags, path, text, Some(inc.span.clone())),
                    Err(e) => diags.error(
                        src,
                        inc.span.clone(),
                        format!(
                            "cannot read calendar schedule `{}`: {e} (looked at {})",
                            inc.v,
                            path.display()
                        ),
                    ),
                }
            }
        }
    }
    let local = |list: &[(At<NaiveDate>, Option<String>)], working: bool| -> Vec<DayEntry> {
        list.iter()
            .map(|(d, reason)| DayEntry {
                date: d.v,
                working,
                reason: reason.clone().unwrap_or_else(|| {
                    if working {
                        "ngày làm việc (cấu hình địa phương)".into()
                    } else {
                        "ngày nghỉ (cấu hình địa phương)".into()
                    }
                }),
                source: None,
            })
            .collect()
    };
    let mut local_days = local(&raw.days_off, false);
    local_days.extend(local(&raw.working_days, true));
    for (d, _) in &raw.days_off {
        if raw.working_days.iter().any(|(w, _)| w.v == d.v) {
            diags.error(
                src,
                d.span.clone(),
                format!("{} is listed both in `days_off` and `working_days`", d.v),
            );
        }
    }
    if raw.statutory {
        // A coming year with no announcement runs on the statutory estimate: say so.
        for year in [today.year(), today.year() + 1] {
            let within = NaiveDate::from_ymd_opt(year, 1, 1)
                .is_some_and(|jan1| (jan1 - today).num_days() <= 365);
            if within && !schedules.iter().any(|s| s.year == year) {
                diags.file_warning(
                    &src.path,
                    format!(
                        "no official calendar schedule for {year}: its holidays are the statutory estimate (Tết, Quốc khánh and day swaps may differ); add `calendar/vn-{year}.toml` when the government announces it"
                    ),
                );
            }
        }
    }
    Calendar::new(CalendarSpec {
        weekend: raw.weekend,
        statutory: raw.statutory,
        schedules,
        local: local_days,
    })
}

/// Reads an official yearly schedule file (`config/calendar/vn-2026.toml`).
fn read_schedule(diags: &mut Diagnostics, path: PathBuf, text: String) -> Option<Schedule> {
    let src = Source::new(path.clone(), text);
    let (root, errs) = DeTable::parse_recoverable(&src.text);
    if syntax_errors(&src, diags, errs) {
        return None;
    }
    let mut cx = Cx { src: &src, diags };
    let mut t = Tbl::new(root.get_ref(), 0..0, "");
    let year = t.int(&mut cx, "year");
    if year.is_none() && !t.has("year") {
        t.missing(&mut cx, "year");
    }
    let source = t.str(&mut cx, "source").map(|s| s.v);
    let mut entries = Vec::new();
    for (key, working) in [("off", false), ("work", true)] {
        for mut e in t.tables(&mut cx, key) {
            let date = e.date(&mut cx, "date");
            let from = e.date(&mut cx, "from");
            let to = e.date(&mut cx, "to");
            let reason = e.req_str(&mut cx, "reason");
            let esource = e.str(&mut cx, "source").map(|s| s.v);
            let days: Vec<At<NaiveDate>> = match (date, from, to) {
                (Some(d), None, None) => vec![d],
                (None, Some(f), Some(t)) if f.v <= t.v => {
                    f.v.iter_days()
                        .take_while(|d| *d <= t.v)
                        .map(|d| At::new(d, f.span.clone()))
                        .collect()
                }
                (None, Some(_), Some(t)) => {
                    cx.error(t.span, "`to` is before `from`");
                    vec![]
                }
                _ => {
                    cx.error(
                        e.span.clone(),
                        format!("each `[[{key}]]` takes either `date`, or `from` and `to`"),
                    );
                    vec![]
                }
            };
            if let (Some(reason), Some(y)) = (reason, &year) {
                for d in days {
                    if i64::from(d.v.year()) != y.v {
                        cx.error(
                            d.span.clone(),
                            format!("{} is not in {}, the year of this schedule", d.v, y.v),
                        );
                        continue;
                    }
                    entries.push(DayEntry {
                        date: d.v,
                        working,
                        reason: reason.v.clone(),
                        source: esource.clone().or_else(|| source.clone()),
                    });
                }
            }
            e.finish(&mut cx);
        }
    }
    t.finish(&mut cx);
    let year = i32::try_from(year?.v).ok()?;
    Some(Schedule {
        year,
        file: path,
        source,
        entries,
    })
}

// ---------------------------------------------------------------------------------------------
// Pass 2: resolve names and check meaning.

fn resolve(
    cx: &mut Cx,
    raw: Raw,
    calendar: Calendar,
    path: &Path,
    _today: NaiveDate,
) -> Option<Config> {
    // Units and groups share one name space: rules list both.
    let mut names: HashMap<&str, (bool, std::ops::Range<usize>)> = HashMap::new();
    names.insert("all", (false, 0..0));
    for u in &raw.units {
        if u.id.v == "all" {
            cx.error(u.id.span.clone(), "`all` is reserved: it names every unit");
        } else if let Some((_, first)) = names.get(u.id.v.as_str()) {
            let (line, _) = cx.src.line_col(first.start);
            cx.error(
                u.id.span.clone(),
                format!(
                    "duplicate unit id `{}` (first defined on line {line})",
                    u.id.v
                ),
            );
        } else {
            names.insert(&u.id.v, (true, u.id.span.clone()));
        }
    }
    for g in &raw.groups {
        if g.id.v == "all" {
            cx.error(g.id.span.clone(), "`all` is reserved: it names every unit");
        } else if let Some((is_unit, first)) = names.get(g.id.v.as_str()) {
            let (line, _) = cx.src.line_col(first.start);
            let what = if *is_unit { "a unit" } else { "a group" };
            cx.error(
                g.id.span.clone(),
                format!(
                    "group id `{}` is already {what} (line {line}): units and groups share names",
                    g.id.v
                ),
            );
        } else {
            names.insert(&g.id.v, (false, g.id.span.clone()));
        }
    }
    let unit_ids: Vec<&str> = raw.units.iter().map(|u| u.id.v.as_str()).collect();
    let unit_index = |cx: &mut Cx, r: &At<String>, role: &str| -> Option<usize> {
        let found = unit_ids.iter().position(|&u| u == r.v);
        if found.is_none() {
            let is_group = raw.groups.iter().any(|g| g.id.v == r.v) || r.v == "all";
            let msg = if is_group {
                format!("`{}` is a group; {role} takes a unit", r.v)
            } else {
                format!(
                    "unknown unit `{}`{}",
                    r.v,
                    hint(&r.v, unit_ids.iter().copied())
                )
            };
            cx.error(r.span.clone(), msg);
        }
        found
    };

    let mut groups: Vec<Group> = Vec::new();
    for g in &raw.groups {
        let units: Vec<usize> = g
            .units
            .iter()
            .filter_map(|m| unit_index(cx, m, "a group"))
            .collect();
        groups.push(Group {
            id: g.id.v.clone(),
            units,
        });
    }
    let mut units: Vec<Unit> = Vec::new();
    for u in &raw.units {
        let escalate_to: Vec<usize> = u
            .escalate_to
            .iter()
            .filter_map(|e| unit_index(cx, e, "`escalate_to`"))
            .collect();
        if u.escalate_to.iter().any(|e| e.v == u.id.v) {
            cx.warning(
                u.span.clone(),
                format!("unit `{}` escalates to itself", u.id.v),
            );
        }
        let reachable = !u.email.is_empty() || u.telegram.is_some() || u.webhook.is_some();
        if !reachable {
            cx.error(
                u.span.clone(),
                format!("unit `{}` has no way to reach it: give it an `email` (or `telegram`, `webhook`)", u.id.v),
            );
        }
        if let (Some(tg), None) = (&u.telegram, &raw.channels.telegram) {
            cx.error(
                tg.span.clone(),
                format!("unit `{}` has `telegram` but `[channels.telegram]` (the bot token) is not configured", u.id.v),
            );
        }
        if u.webhook.is_some() && raw.channels.webhook.is_none() {
            cx.error(
                u.span.clone(),
                format!("unit `{}` has `webhook` but `[channels.webhook]` (the signing secret) is not configured", u.id.v),
            );
        }
        units.push(Unit {
            id: u.id.v.clone(),
            name: u.name.clone(),
            email: u.email.clone(),
            escalate_to,
            telegram: u.telegram.as_ref().map(|t| t.v.clone()),
            webhook: u.webhook.clone(),
        });
    }

    let org = raw.org.as_ref();
    let coordinator = org
        .and_then(|o| o.coordinator.as_ref())
        .and_then(|c| unit_index(cx, c, "`coordinator`"));

    let digest_to = match &raw.digest_to {
        Some(list) => list
            .iter()
            .filter_map(|d| unit_index(cx, d, "`digest.to`"))
            .collect(),
        None => coordinator.into_iter().collect(),
    };

    // Policies.
    let policy_names: Vec<&str> = raw.policies.iter().map(|p| p.name.v.as_str()).collect();
    let mut used = vec![false; raw.policies.len()];

    let mut rules: Vec<Rule> = Vec::new();
    let mut rule_ids: HashMap<&str, usize> = HashMap::new();
    let all_names: Vec<&str> = names.keys().copied().collect();
    for r in &raw.rules {
        if let Some(first) = rule_ids.get(r.id.v.as_str()) {
            let (line, _) = cx.src.line_col(*first);
            cx.error(
                r.id.span.clone(),
                format!(
                    "duplicate rule id `{}` (first defined on line {line})",
                    r.id.v
                ),
            );
        } else {
            rule_ids.insert(&r.id.v, r.id.span.start);
        }
        let mut owed: Vec<usize> = Vec::new();
        let mut unknown = false;
        for m in &r.units {
            if m.v == "all" {
                owed.extend(0..units.len());
            } else if let Some(i) = unit_ids.iter().position(|&u| u == m.v) {
                owed.push(i);
            } else if let Some(g) = groups.iter().find(|g| g.id == m.v) {
                owed.extend(&g.units);
            } else {
                unknown = true;
                let mut sorted = all_names.clone();
                sorted.sort_unstable();
                cx.error(
                    m.span.clone(),
                    format!("unknown unit or group `{}`{}", m.v, hint(&m.v, sorted)),
                );
            }
        }
        owed.sort_unstable();
        owed.dedup();
        if owed.is_empty() && !r.units.is_empty() && !unknown {
            cx.error(
                r.span.clone(),
                format!(
                    "rule `{}` is owed by nobody: its `units` name no unit",
                    r.id.v
                ),
            );
        } else if r.units.is_empty() {
            cx.error(
                r.span.clone(),
                format!(
                    "rule `{}` is owed by nobody: list units or groups in `units`",
                    r.id.v
                ),
            );
        }
        let submit_to = match &r.submit_to {
            Some(s) => unit_index(cx, s, "`submit_to`"),
            None => coordinator,
        };
        let policy = match &r.policy {
            None => 0,
            Some(p) => match policy_names.iter().position(|&n| n == p.v) {
                Some(i) => i,
                None => {
                    cx.error(
                        p.span.clone(),
                        format!(
                            "unknown policy `{}`{}",
                            p.v,
                            hint(&p.v, policy_names.iter().copied())
                        ),
                    );
                    0
                }
            },
        };
        used[policy] = true;
        if let Due::Once { date, .. } = r.due {
            let outside =
                r.active_from.is_some_and(|f| date < f) || r.active_until.is_some_and(|u| date > u);
            if outside {
                cx.warning(
                    r.span.clone(),
                    format!(
                        "rule `{}` never fires: its date {date} is outside its `active` bounds",
                        r.id.v
                    ),
                );
            }
        }
        rules.push(Rule {
            id: r.id.v.clone(),
            kind: r.kind,
            title: r.title.clone(),
            description: r.description.clone(),
            reference: r.reference.clone(),
            period: r.period,
            which: r.which.clone(),
            due: r.due,
            units: owed,
            submit_to,
            policy,
            active_from: r.active_from,
            active_until: r.active_until,
        });
    }
    for (p, used) in raw.policies.iter().zip(&used) {
        if p.explicit && !used {
            cx.warning(
                p.name.span.clone(),
                format!("policy `{}` is not used by any rule", p.name.v),
            );
        }
    }

    // Secrets must exist where they are named (their content is read only when used).
    let smtp_used = raw.email.transport == Transport::Smtp;
    for (at, s) in &raw.secrets {
        let is_smtp = raw
            .email
            .smtp
            .as_ref()
            .and_then(|m| m.password.as_ref())
            .is_some_and(|p| p == s);
        if is_smtp && !smtp_used {
            continue;
        }
        match s {
            Secret::File(p) => {
                if !p.is_file() {
                    cx.error(
                        at.span.clone(),
                        format!(
                            "secret file `{}` does not exist (looked at {}); create it holding only the secret, readable by the daemon's user",
                            at.v,
                            p.display()
                        ),
                    );
                }
            }
            Secret::Env(var) => {
                if std::env::var_os(var).is_none() {
                    cx.error(
                        at.span.clone(),
                        format!("environment variable `{var}` is not set; set it to the secret before starting nhacviec"),
                    );
                }
            }
        }
    }

    if raw.server.admin_password_file.is_none() {
        cx.diags.file_warning(
            &cx.src.path,
            "no `server.admin_password_file`: the status page /status is off",
        );
    }
    let org = raw.org?;
    if org.admins.is_empty() {
        cx.warning(
            org.span.clone(),
            "no `organization.admins`: nobody will be told when the daemon itself has trouble",
        );
    }
    let mut email = raw.email;
    if email.from.is_empty() {
        if raw.email_span.is_empty() && email.transport == Transport::File {
            email.from = format!("{} <nhacviec@localhost.invalid>", org.name);
        } else {
            cx.error(raw.email_span.clone(), "missing `from` in `[email]`");
        }
    }
    if email.reply_to.is_none() {
        email.reply_to = coordinator.and_then(|c| units[c].email.first().cloned());
    }
    let public_url = org
        .public_url
        .unwrap_or_else(|| format!("http://{}", raw.server.listen));
    if cx.diags.has_errors() {
        return None;
    }
    let policies = raw.policies.into_iter().map(|p| p.policy).collect();
    Some(Config {
        path: path.to_path_buf(),
        organization: Organization {
            name: org.name,
            timezone: org.timezone,
            public_url,
            coordinator,
            admins: org.admins,
        },
        storage: raw.storage,
        server: raw.server,
        email,
        calendar,
        digest: Digest {
            time: raw.digest_time,
            to: digest_to,
        },
        channels: raw.channels,
        policies,
        units,
        groups,
        rules,
    })
}
