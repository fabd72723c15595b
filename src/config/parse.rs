//! Pass 1: walks the spanned TOML tree into raw sections that still name each other by string.
//!
//! The sections are read in [`sections`](super::sections), units, policies and rules in
//! [`rules`](super::rules), calendar files in [`schedule`](super::schedule); pass 2,
//! [`resolve`](super::resolve), turns names into indices and checks meaning. An unknown unit
//! in a rule is thus reported where it is written, with the closest known name as a hint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, Weekday};
use chrono_tz::Tz;
use toml::de::DeTable;

use super::diag::{Diagnostics, Source};
use super::reader::{At, Cx, Tbl};
use super::rules::{read_policy, read_rule, read_unit};
use super::sections::{read_calendar, read_email, read_org, weekend_mask};
use super::*;

pub(super) fn load(path: &Path, today: NaiveDate) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, text, today),
        Err(e) => {
            let mut diags = Diagnostics::default();
            diags.file_error(path, format!("cannot read the config file: {e}"));
            finish(None, diags)
        }
    }
}

pub(super) fn finish(config: Option<Config>, diags: Diagnostics) -> Loaded {
    let ok = !diags.has_errors();
    Loaded {
        config: if ok { config } else { None },
        diagnostics: diags.into_vec(),
    }
}

/// Reports TOML syntax errors; true if there were any.
pub(super) fn syntax_errors(
    src: &Source,
    diags: &mut Diagnostics,
    errs: Vec<toml::de::Error>,
) -> bool {
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
    let calendar = super::schedule::build_calendar(&mut diags, &src, &raw.calendar, &base, today);
    let config = {
        let mut cx = Cx {
            src: &src,
            diags: &mut diags,
        };
        super::resolve::resolve(&mut cx, raw, calendar, path)
    };
    finish(config, diags)
}

// ---------------------------------------------------------------------------------------------
// Pass 1: raw sections.

pub(super) struct RawOrg {
    pub(super) name: String,
    pub(super) timezone: Tz,
    pub(super) public_url: Option<String>,
    pub(super) coordinator: Option<At<String>>,
    pub(super) admins: Vec<String>,
    pub(super) span: std::ops::Range<usize>,
}

pub(super) struct RawUnit {
    pub(super) id: At<String>,
    /// `None` when missing (already reported); the unit still resolves references.
    pub(super) name: Option<String>,
    pub(super) email: Vec<String>,
    /// `email` was written, even if no address in it was valid (those are reported).
    pub(super) email_given: bool,
    pub(super) escalate_to: Vec<At<String>>,
    pub(super) telegram: Option<At<String>>,
    pub(super) webhook: Option<String>,
    pub(super) span: std::ops::Range<usize>,
}

pub(super) struct RawGroup {
    pub(super) id: At<String>,
    pub(super) units: Vec<At<String>>,
}

/// What a rule is; `None` in [`RawRule`] when a part of it was wrong (already reported).
pub(super) struct RuleCore {
    pub(super) kind: Kind,
    pub(super) title: String,
    pub(super) description: Option<String>,
    pub(super) reference: Option<String>,
    pub(super) period: PeriodKind,
    pub(super) which: Vec<u32>,
    pub(super) due: Due,
}

/// A rule as read; kept even when broken so its references are still checked.
pub(super) struct RawRule {
    pub(super) id: Option<At<String>>,
    pub(super) core: Option<RuleCore>,
    pub(super) units: Vec<At<String>>,
    /// `units` was written (possibly as an empty list).
    pub(super) has_units_key: bool,
    pub(super) submit_to: Option<At<String>>,
    pub(super) policy: Option<At<String>>,
    pub(super) active_from: Option<NaiveDate>,
    pub(super) active_until: Option<NaiveDate>,
    pub(super) span: std::ops::Range<usize>,
}

pub(super) struct RawCalendar {
    pub(super) weekend: [bool; 7],
    pub(super) statutory: bool,
    pub(super) include: Option<Vec<At<String>>>,
    pub(super) days_off: Vec<(At<NaiveDate>, Option<String>)>,
    pub(super) working_days: Vec<(At<NaiveDate>, Option<String>)>,
}

pub(super) struct RawPolicy {
    pub(super) policy: Policy,
    pub(super) name: At<String>,
    pub(super) explicit: bool,
}

pub(super) struct Raw {
    pub(super) org: Option<RawOrg>,
    pub(super) storage: Storage,
    pub(super) server: Server,
    pub(super) email: Email,
    pub(super) email_span: std::ops::Range<usize>,
    pub(super) calendar: RawCalendar,
    pub(super) digest_time: chrono::NaiveTime,
    pub(super) digest_to: Option<Vec<At<String>>>,
    pub(super) channels: Channels,
    pub(super) templates_dir: Option<PathBuf>,
    pub(super) policies: Vec<RawPolicy>,
    pub(super) units: Vec<RawUnit>,
    pub(super) groups: Vec<RawGroup>,
    pub(super) rules: Vec<RawRule>,
    pub(super) secrets: Vec<(At<String>, Secret)>,
}

pub(super) fn rel(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(super) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn id_field(cx: &mut Cx, t: &mut Tbl, what: &str) -> Option<At<String>> {
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
pub(super) fn valid_address(s: &str) -> bool {
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
pub(super) fn valid_mailbox(s: &str) -> bool {
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => valid_address(&s[i + 1..s.len() - 1]),
        (None, false) => valid_address(s.trim()),
        _ => false,
    }
}

pub(super) fn addresses(cx: &mut Cx, t: &mut Tbl, key: &'static str) -> Vec<String> {
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

pub(super) fn secret(
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
        (Some(_), Some(e)) => {
            cx.error(
                e.span,
                format!("give either `{file_key}` or `{env_key}`, not both"),
            );
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

pub(super) fn read_root(cx: &mut Cx, top: &mut Tbl, base: &Path) -> Raw {
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

    let mut templates_dir = Some(rel(base, "templates")).filter(|d| d.is_dir());
    if let Some(mut t) = top.table(cx, "templates") {
        if let Some(d) = t.str(cx, "dir") {
            let dir = rel(base, &d.v);
            if !dir.is_dir() {
                cx.error(
                    d.span.clone(),
                    format!(
                        "templates folder `{}` does not exist (looked at {})",
                        d.v,
                        dir.display()
                    ),
                );
            }
            templates_dir = Some(dir);
        }
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
        rules.push(read_rule(cx, &mut t));
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
        templates_dir,
        policies,
        units,
        groups,
        rules,
        secrets,
    }
}
