//! The raw sections of a config as pass 1 reads them, still naming each other by string, and
//! the field readers every section reader shares. Pass 1 ([`parse`](super::parse) with
//! [`sections`](super::sections), [`rules`](super::rules) and [`schedule`](super::schedule))
//! writes these types; pass 2 ([`resolve`](super::resolve)) reads them.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::diag::{Diagnostics, Source};
use super::reader::{At, Cx, Tbl};
use super::*;
use crate::tr;

/// Reports TOML syntax errors; true if there were any.
pub(super) fn syntax_errors(
    src: &Source,
    diags: &mut Diagnostics,
    errs: Vec<toml::de::Error>,
) -> bool {
    let any = !errs.is_empty();
    for e in errs {
        let span = e.span().unwrap_or(0..0);
        diags.error(
            src,
            span,
            tr!("TOML syntax: {detail}", detail = e.message().trim()),
        );
    }
    any
}

pub(super) struct RawOrg {
    pub(super) name: String,
    pub(super) timezone: Tz,
    pub(super) public_url: Option<String>,
    pub(super) coordinator: Option<At<String>>,
    pub(super) admins: Vec<String>,
    /// Entries of `admins` without an `@`: units, resolved later.
    pub(super) admin_units: Vec<At<String>>,
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
    pub(super) webhook: Vec<At<String>>,
    pub(super) zalo: Vec<At<String>>,
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

/// The path a key names, relative to the config's folder; an error at the key if nothing of
/// the kind (`is`: a folder or a file) is there. `what` names it in the error: "templates
/// folder" or "CA file" (each has its own whole sentence in the catalogue), or any phrase
/// already in the command's language.
pub(super) fn existing(
    cx: &mut Cx,
    base: &Path,
    at: &At<String>,
    what: &str,
    is: fn(&Path) -> bool,
) -> PathBuf {
    let p = rel(base, &at.v);
    if !is(&p) {
        let (name, path) = (&at.v, p.display());
        let msg = match what {
            "templates folder" => tr!(
                "templates folder `{name}` does not exist (looked at {path})",
                name,
                path
            ),
            "CA file" => tr!(
                "CA file `{name}` does not exist (looked at {path})",
                name,
                path
            ),
            _ => tr!(
                "{what} `{name}` does not exist (looked at {path})",
                what,
                name,
                path
            ),
        };
        cx.error(at.span.clone(), msg);
    }
    p
}

pub(super) fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The `id` of a `[[unit]]`, `[[rule]]` or `[[group]]`; `what` is "unit", "rule" or "group"
/// (each has its own whole sentence in the catalogue), or any phrase already in the
/// command's language.
pub(super) fn id_field(cx: &mut Cx, t: &mut Tbl, what: &str) -> Option<At<String>> {
    let id = t.req_str(cx, "id")?;
    if !valid_id(&id.v) {
        let v = &id.v;
        let msg = match what {
            "unit" => tr!(
                "unit id `{id}` may hold only a-z, 0-9 and `-` (it is a stable key: the database uses it)",
                id = v
            ),
            "rule" => tr!(
                "rule id `{id}` may hold only a-z, 0-9 and `-` (it is a stable key: the database uses it)",
                id = v
            ),
            "group" => tr!(
                "group id `{id}` may hold only a-z, 0-9 and `-` (it is a stable key: the database uses it)",
                id = v
            ),
            _ => tr!(
                "{what} id `{id}` may hold only a-z, 0-9 and `-` (it is a stable key: the database uses it)",
                what,
                id = v
            ),
        };
        cx.error(id.span.clone(), msg);
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
    addresses_of(cx, list)
}

/// The email addresses of `list`; each one that is not one is an error.
pub(super) fn addresses_of(cx: &mut Cx, list: Vec<At<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for a in list {
        if valid_address(&a.v) {
            out.push(a.v);
        } else {
            cx.error(
                a.span,
                tr!(
                    "`{address}` is not an email address (write name@domain)",
                    address = a.v
                ),
            );
        }
    }
    out
}

/// Secrets given as a file, a list of files (a secret being rotated: the first is the new
/// one) or an environment variable; at most `max` of them.
pub(super) fn secret_list(
    cx: &mut Cx,
    t: &mut Tbl,
    file_key: &'static str,
    env_key: &'static str,
    base: &Path,
    secrets: &mut Vec<(At<String>, Secret)>,
    max: usize,
) -> Vec<Secret> {
    let files = t.str_list(cx, file_key);
    let env = t.str(cx, env_key);
    let keys = (file_key, env_key);
    secrets_of(cx, files, env, keys, base, secrets, max)
}

/// One secret, from a file or an environment variable.
pub(super) fn secret(
    cx: &mut Cx,
    t: &mut Tbl,
    file_key: &'static str,
    env_key: &'static str,
    base: &Path,
    secrets: &mut Vec<(At<String>, Secret)>,
) -> Option<Secret> {
    let file = t.str(cx, file_key).map(|f| vec![f]);
    let env = t.str(cx, env_key);
    let keys = (file_key, env_key);
    secrets_of(cx, file, env, keys, base, secrets, 1).pop()
}

/// The secrets named by `files` or `env` (not both), each recorded in `secrets` for `check`.
fn secrets_of(
    cx: &mut Cx,
    files: Option<Vec<At<String>>>,
    env: Option<At<String>>,
    (file_key, env_key): (&str, &str),
    base: &Path,
    secrets: &mut Vec<(At<String>, Secret)>,
    max: usize,
) -> Vec<Secret> {
    match (files, env) {
        (Some(_), Some(e)) => {
            cx.error(
                e.span,
                tr!(
                    "give either `{file_key}` or `{env_key}`, not both",
                    file_key,
                    env_key
                ),
            );
            Vec::new()
        }
        (Some(files), None) => {
            if files.len() > max {
                cx.error(
                    files[max].span.clone(),
                    tr!(
                        "`{file_key}` lists at most {max} files (the new secret and the old one while it is rotated)",
                        file_key,
                        max
                    ),
                );
            }
            files
                .into_iter()
                .take(max)
                .map(|f| {
                    let s = Secret::File(rel(base, &f.v));
                    secrets.push((f, s.clone()));
                    s
                })
                .collect()
        }
        (None, Some(e)) => {
            let s = Secret::Env(e.v.clone());
            secrets.push((e, s.clone()));
            vec![s]
        }
        (None, None) => Vec::new(),
    }
}

/// `max_per_minute` of a channel or of SMTP: a positive number, `default` when absent.
pub(super) fn per_minute(cx: &mut Cx, t: &mut Tbl, section: &str, default: u32) -> u32 {
    match t.int(cx, "max_per_minute") {
        None => default,
        Some(n) => u32::try_from(n.v)
            .ok()
            .filter(|&v| v > 0)
            .unwrap_or_else(|| {
                cx.error(
                    n.span,
                    tr!(
                        "`{section}.max_per_minute` must be a positive number",
                        section
                    ),
                );
                default
            }),
    }
}
