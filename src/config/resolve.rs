//! Pass 2: resolves names to indices and checks what the config means (docs/config.md).
//!
//! Every reference is checked even in a rule or unit that had other errors, so one run of
//! `check` shows them all. Lookups go through hash maps: a config with ten thousand units
//! loads in milliseconds (see `benches/plan.rs`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use super::diag::hint;
use super::raw::*;
use super::reader::{At, Cx};
use super::*;
use crate::calendar::Calendar;
use crate::tr;

/// What a name in a `units` list refers to.
#[derive(Clone, Copy)]
enum Name {
    All,
    Unit(usize),
    Group(usize),
}

/// The shared name space of units and groups, with where each was defined.
struct Names<'r> {
    map: HashMap<&'r str, (Name, Range<usize>)>,
    /// Unit ids in file order, for hints.
    units: Vec<&'r str>,
}

impl<'r> Names<'r> {
    fn build(cx: &mut Cx, raw: &'r Raw) -> Names<'r> {
        let mut map: HashMap<&str, (Name, Range<usize>)> = HashMap::new();
        map.insert("all", (Name::All, 0..0));
        let mut define = |cx: &mut Cx, id: &'r At<String>, name: Name| {
            if id.v == "all" {
                cx.error(
                    id.span.clone(),
                    tr!("`all` is reserved: it names every unit"),
                );
                return;
            }
            match map.get(id.v.as_str()) {
                Some((prev, first)) => {
                    let (line, _) = cx.src.line_col(first.start);
                    let msg = match (prev, name) {
                        (Name::Unit(_), Name::Unit(_)) => {
                            tr!(
                                "duplicate unit id `{id}` (first defined on line {line})",
                                id = id.v,
                                line
                            )
                        }
                        (Name::Group(_), Name::Group(_)) => {
                            tr!(
                                "duplicate group id `{id}` (first defined on line {line})",
                                id = id.v,
                                line
                            )
                        }
                        _ => tr!(
                            "`{id}` is already a unit (line {line}): units and groups share names",
                            id = id.v,
                            line
                        ),
                    };
                    cx.error(id.span.clone(), msg);
                }
                None => {
                    map.insert(&id.v, (name, id.span.clone()));
                }
            }
        };
        for (i, u) in raw.units.iter().enumerate() {
            define(cx, &u.id, Name::Unit(i));
        }
        for (i, g) in raw.groups.iter().enumerate() {
            define(cx, &g.id, Name::Group(i));
        }
        Names {
            map,
            units: raw.units.iter().map(|u| u.id.v.as_str()).collect(),
        }
    }

    /// A reference that must be a single unit (`escalate_to`, `submit_to`, a group member).
    fn unit(&self, cx: &mut Cx, r: &At<String>, role: &str) -> Option<usize> {
        match self.map.get(r.v.as_str()) {
            Some((Name::Unit(i), _)) => Some(*i),
            Some(_) => {
                cx.error(
                    r.span.clone(),
                    tr!("`{id}` is a group; {role} takes a unit", id = r.v, role),
                );
                None
            }
            None => {
                let h = hint(&r.v, self.units.iter().copied());
                cx.error(r.span.clone(), tr!("unknown unit `{id}`{h}", id = r.v, h));
                None
            }
        }
    }

    /// A reference in a rule's `units`: a unit, a group or `all`.
    fn any(&self, cx: &mut Cx, r: &At<String>) -> Option<Name> {
        match self.map.get(r.v.as_str()) {
            Some((n, _)) => Some(*n),
            None => {
                let mut known: Vec<&str> = self.map.keys().copied().collect();
                known.sort_unstable();
                let h = hint(&r.v, known);
                cx.error(
                    r.span.clone(),
                    tr!("unknown unit or group `{id}`{h}", id = r.v, h),
                );
                None
            }
        }
    }
}

pub(super) fn resolve(cx: &mut Cx, raw: Raw, calendar: Calendar, path: &Path) -> Option<Config> {
    let names = Names::build(cx, &raw);

    let a_group = tr!("a group");
    let groups: Vec<Group> = raw
        .groups
        .iter()
        .map(|g| Group {
            id: g.id.v.clone(),
            units: g
                .units
                .iter()
                .filter_map(|m| names.unit(cx, m, &a_group))
                .collect(),
        })
        .collect();
    let units: Vec<Unit> = raw
        .units
        .iter()
        .map(|u| resolve_unit(cx, &names, &raw, u))
        .collect();

    let coordinator = raw
        .org
        .as_ref()
        .and_then(|o| o.coordinator.as_ref())
        .and_then(|c| names.unit(cx, c, "`coordinator`"));
    let admin_units: Vec<usize> = raw
        .org
        .iter()
        .flat_map(|o| &o.admin_units)
        .filter_map(|a| {
            if names.map.contains_key(a.v.as_str()) {
                return names.unit(cx, a, "`admins`");
            }
            let h = hint(&a.v, names.units.iter().copied());
            cx.error(
                a.span.clone(),
                tr!(
                    "`{id}` in `admins` is neither an email address (name@domain) nor a unit{h}",
                    id = a.v,
                    h
                ),
            );
            None
        })
        .collect();
    let digest_to = match &raw.digest_to {
        Some(list) => list
            .iter()
            .filter_map(|d| names.unit(cx, d, "`digest.to`"))
            .collect(),
        None => coordinator.into_iter().collect(),
    };

    let policy_names: Vec<&str> = raw.policies.iter().map(|p| p.name.v.as_str()).collect();
    let mut used = vec![false; raw.policies.len()];
    let mut rules: Vec<Rule> = Vec::new();
    let mut rule_ids: HashMap<&str, usize> = HashMap::new();
    for r in &raw.rules {
        if let Some(id) = &r.id {
            if let Some(first) = rule_ids.get(id.v.as_str()) {
                let (line, _) = cx.src.line_col(*first);
                cx.error(
                    id.span.clone(),
                    tr!(
                        "duplicate rule id `{id}` (first defined on line {line})",
                        id = id.v,
                        line
                    ),
                );
            } else {
                rule_ids.insert(&id.v, id.span.start);
            }
        }
        let label = r.id.as_ref().map_or("?", |i| i.v.as_str());
        let owed = owed_by(cx, &names, &groups, units.len(), r, label);
        let submit_to = match &r.submit_to {
            Some(s) => names.unit(cx, s, "`submit_to`"),
            None => coordinator,
        };
        let policy = match &r.policy {
            None => 0,
            Some(p) => policy_names
                .iter()
                .position(|&n| n == p.v)
                .unwrap_or_else(|| {
                    let h = hint(&p.v, policy_names.iter().copied());
                    cx.error(p.span.clone(), tr!("unknown policy `{id}`{h}", id = p.v, h));
                    0
                }),
        };
        used[policy] = true;
        let (Some(id), Some(core)) = (&r.id, &r.core) else {
            continue;
        };
        if let Due::Once { date, .. } = core.due {
            let outside =
                r.active_from.is_some_and(|f| date < f) || r.active_until.is_some_and(|u| date > u);
            if outside {
                cx.warning(
                    r.span.clone(),
                    tr!(
                        "rule `{id}` never fires: its date {date} is outside its `active` bounds",
                        id = id.v,
                        date
                    ),
                );
            }
        }
        rules.push(Rule {
            id: id.v.clone(),
            kind: core.kind,
            title: core.title.clone(),
            description: core.description.clone(),
            reference: core.reference.clone(),
            period: core.period,
            which: core.which.clone(),
            due: core.due,
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
                tr!("policy `{id}` is not used by any rule", id = p.name.v),
            );
        }
    }

    check_secrets(cx, &raw);
    if raw.server.admin_password_file.is_none() {
        cx.diags.file_warning(
            &cx.src.path,
            tr!("no `server.admin_password_file`: the status page /status is off"),
        );
    }
    let org = raw.org?;
    if org.admins.is_empty() && admin_units.is_empty() {
        cx.warning(
            org.span.clone(),
            tr!("no `organization.admins`: nobody will be told when the daemon itself has trouble"),
        );
    }
    let mail_setup = (
        raw.email.transport,
        raw.email_span.clone(),
        raw.server.listen,
    );
    let mut email = raw.email;
    if email.from.is_empty() {
        // The file transport sends nothing anywhere: a placeholder sender is enough.
        if email.transport == Transport::File {
            email.from = format!("{} <nhacviec@localhost.invalid>", org.name);
        } else {
            cx.error(
                raw.email_span.clone(),
                tr!("missing `from` in `[email]`: the SMTP transport needs a sender, e.g. \"Nhắc việc <nhacviec@example.vn>\""),
            );
        }
    }
    if email.reply_to.is_none() {
        email.reply_to = coordinator.and_then(|c| units[c].email.first().cloned());
    }
    let public_url = org
        .public_url
        .unwrap_or_else(|| format!("http://{}", raw.server.listen));
    check_reachable(cx, org.span.clone(), &public_url, mail_setup, &email.from);
    if cx.diags.has_errors() {
        return None;
    }
    Some(Config {
        path: path.to_path_buf(),
        organization: Organization {
            name: org.name,
            timezone: org.timezone,
            public_url,
            coordinator,
            admins: org.admins,
            admin_units,
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
        templates_dir: raw.templates_dir,
        policies: raw.policies.into_iter().map(|p| p.policy).collect(),
        unit_by_id: units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i))
            .collect(),
        units,
        groups,
        rules,
    })
}

fn resolve_unit(cx: &mut Cx, names: &Names, raw: &Raw, u: &RawUnit) -> Unit {
    let escalate_to: Vec<usize> = u
        .escalate_to
        .iter()
        .filter_map(|e| names.unit(cx, e, "`escalate_to`"))
        .collect();
    if u.escalate_to.iter().any(|e| e.v == u.id.v) {
        cx.warning(
            u.span.clone(),
            tr!("unit `{id}` escalates to itself", id = u.id.v),
        );
    }
    if !u.email_given && u.telegram.is_none() && u.webhook.is_empty() && u.zalo.is_empty() {
        cx.error(
            u.span.clone(),
            tr!(
                "unit `{id}` has no way to reach it: give it an `email` (or `telegram`, `webhook`, `zalo`)",
                id = u.id.v
            ),
        );
    }
    if let (Some(tg), None) = (&u.telegram, &raw.channels.telegram) {
        cx.error(
            tg.span.clone(),
            tr!(
                "unit `{id}` has `telegram` but `[channels.telegram]` (the bot token) is not configured",
                id = u.id.v
            ),
        );
    }
    if let (Some(z), None) = (u.zalo.first(), &raw.channels.zalo) {
        cx.error(
            z.span.clone(),
            tr!(
                "unit `{id}` has `zalo` but `[channels.zalo]` (the Official Account's app and its ZNS templates) is not configured",
                id = u.id.v
            ),
        );
    }
    if let (Some(w), None) = (u.webhook.first(), &raw.channels.webhook) {
        cx.error(
            w.span.clone(),
            tr!(
                "unit `{id}` has `webhook` but `[channels.webhook]` (the signing secret) is not configured",
                id = u.id.v
            ),
        );
    }
    Unit {
        id: u.id.v.clone(),
        name: u.name.clone().unwrap_or_default(),
        email: u.email.clone(),
        escalate_to,
        telegram: u.telegram.as_ref().map(|t| t.v.clone()),
        webhook: u.webhook.iter().map(|w| w.v.clone()).collect(),
        zalo: u.zalo.iter().map(|z| z.v.clone()).collect(),
    }
}

/// The units that owe a rule, sorted and without duplicates.
fn owed_by(
    cx: &mut Cx,
    names: &Names,
    groups: &[Group],
    n_units: usize,
    r: &RawRule,
    label: &str,
) -> Vec<usize> {
    let mut owed: Vec<usize> = Vec::new();
    let mut unknown = false;
    for m in &r.units {
        match names.any(cx, m) {
            Some(Name::All) => owed.extend(0..n_units),
            Some(Name::Unit(i)) => owed.push(i),
            Some(Name::Group(g)) => owed.extend(&groups[g].units),
            None => unknown = true,
        }
    }
    owed.sort_unstable();
    owed.dedup();
    if r.units.is_empty() && r.has_units_key {
        cx.error(
            r.span.clone(),
            tr!(
                "rule `{label}` is owed by nobody: list units or groups in `units`",
                label
            ),
        );
    } else if owed.is_empty() && !r.units.is_empty() && !unknown {
        cx.error(
            r.span.clone(),
            tr!(
                "rule `{label}` is owed by nobody: its `units` name no unit",
                label
            ),
        );
    }
    owed
}

/// Secrets must exist where they are named; their content is read only when used. The SMTP
/// password is checked only when the SMTP transport is on.
/// The shortest status-page password `check` accepts.
const MIN_ADMIN_PASSWORD: usize = 8;

/// True if every user of the machine may read the file (mode `o+r`).
fn readable_by_all(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// What `check` says about a config that would run but not reach the units: links on a
/// loopback address with real mail going out, the example sender, a `public_url` on another
/// port of this machine than the one listened on.
fn check_reachable(
    cx: &mut Cx,
    span: Range<usize>,
    public_url: &str,
    (transport, email_span, listen): (Transport, Range<usize>, std::net::SocketAddr),
    from: &str,
) {
    let url = reqwest::Url::parse(public_url).ok();
    let host = url.as_ref().and_then(|u| u.host_str()).unwrap_or("");
    let ip: Option<std::net::IpAddr> = host.trim_matches(['[', ']']).parse().ok();
    let loopback = host.eq_ignore_ascii_case("localhost") || ip.is_some_and(|ip| ip.is_loopback());
    let real_mail = transport == Transport::Smtp;
    if real_mail && loopback {
        cx.warning(
            span.clone(),
            tr!(
                "`public_url` is {public_url}, this machine's own address: every link in the messages (the ack pages, the unit pages) would point at the reader's own computer; set it to the address the units reach the daemon at, e.g. https://nhacviec.your-ward.gov.vn behind a reverse proxy",
                public_url
            ),
        );
    }
    if real_mail && from.to_ascii_lowercase().contains("example.invalid") {
        cx.warning(
            email_span,
            tr!(
                "`from` is still the example sender ({from}): mail servers refuse or junk it; set the ward's own sending address",
                from
            ),
        );
    }
    // A public URL on an address of this machine must be the listener itself.
    let port = url.as_ref().and_then(|u| u.port_or_known_default());
    let same_machine = loopback || ip == Some(listen.ip());
    if same_machine && port.is_some_and(|p| p != listen.port()) {
        cx.warning(
            span,
            tr!(
                "`public_url` ({public_url}) names port {port} but the daemon listens on {listen}: the links reach it only through a reverse proxy forwarding that port; otherwise make the two agree",
                public_url,
                port = port.unwrap_or_default(),
                listen
            ),
        );
    }
}

fn check_secrets(cx: &mut Cx, raw: &Raw) {
    let smtp_password = raw.email.smtp.as_ref().and_then(|m| m.password.as_ref());
    for (at, s) in &raw.secrets {
        if raw.email.transport != Transport::Smtp && smtp_password == Some(s) {
            continue;
        }
        match s {
            Secret::File(p) if p.is_file() && readable_by_all(p) => cx.warning(
                at.span.clone(),
                tr!(
                    "secret file `{file}` is readable by every user of this machine; make it readable by root and the daemon only: `chmod 640` it, group `nhacviec`",
                    file = at.v
                ),
            ),
            Secret::File(p) if !p.is_file() => cx.error(
                at.span.clone(),
                tr!(
                    "secret file `{file}` does not exist (looked at {path}); create it holding only the secret, readable by the daemon's user",
                    file = at.v,
                    path = p.display()
                ),
            ),
            Secret::Env(var) if std::env::var_os(var).is_none() => cx.error(
                at.span.clone(),
                tr!(
                    "environment variable `{var}` is not set; set it to the secret before starting nhacviec",
                    var
                ),
            ),
            _ => {}
        }
    }
    // An empty status-page password lets anyone in as `admin:`.
    if let Some(path) = &raw.server.admin_password_file
        && let Some((at, _)) = raw
            .secrets
            .iter()
            .find(|(_, x)| matches!(x, Secret::File(p) if p == path))
        && let Ok(text) = std::fs::read_to_string(path)
        && text.trim().chars().count() < MIN_ADMIN_PASSWORD
    {
        cx.error(
            at.span.clone(),
            if text.trim().is_empty() {
                tr!(
                    "the status-page password in `{file}` is empty: anyone could log in; put a password of at least {min} characters there",
                    file = at.v,
                    min = MIN_ADMIN_PASSWORD
                )
            } else {
                tr!(
                    "the status-page password in `{file}` is too short: anyone could log in; put a password of at least {min} characters there",
                    file = at.v,
                    min = MIN_ADMIN_PASSWORD
                )
            },
        );
    }
    // A bot token or webhook secret that is there must also be one: `run` would refuse it.
    if let Some(tg) = &raw.channels.telegram
        && let Some((at, _)) = raw.secrets.iter().find(|(_, x)| *x == tg.bot_token)
        && let Ok(text) = tg.bot_token.read()
        && let Err(why) = super::telegram_token_problem(&text)
    {
        cx.error(
            at.span.clone(),
            format!("{why} ({})", tg.bot_token.origin()),
        );
    }
    for s in raw.channels.webhook.iter().flat_map(|w| &w.secrets) {
        let Some((at, _)) = raw.secrets.iter().find(|(_, x)| x == s) else {
            continue;
        };
        if let Ok(text) = s.read()
            && let Err(why) = super::decode_webhook_secret(&text)
        {
            cx.error(at.span.clone(), format!("{why} ({})", s.origin()));
        }
    }
}
