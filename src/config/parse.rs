//! Pass 1: walks the spanned TOML tree into raw sections that still name each other by string.
//!
//! The sections are read in [`sections`](super::sections), units, policies and rules in
//! [`rules`](super::rules), calendar files in [`schedule`](super::schedule), all into the
//! types of [`raw`](super::raw); pass 2, [`resolve`](super::resolve), turns names into
//! indices and checks meaning. An unknown unit in a rule is thus reported where it is
//! written, with the closest known name as a hint. The readers import only `raw`, never
//! this module.

use std::net::SocketAddr;
use std::path::Path;

use chrono::{NaiveDate, Weekday};
use toml::de::DeTable;

use super::diag::{Diagnostics, Source};
use super::raw::*;
use super::reader::{At, Cx, Tbl};
use super::rules::{read_policy, read_rule, read_unit};
use super::sections::{read_calendar, read_email, read_org, weekend_mask};
use super::*;
use crate::tr;

pub(super) fn load(path: &Path, today: NaiveDate) -> Loaded {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, text, today),
        Err(e) => {
            let mut diags = Diagnostics::default();
            diags.file_error(path, tr!("cannot read the config file: {error}", error = e));
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
    // The spanned tree is the largest thing a load makes (tens of bytes per value): gone
    // before the config is built, so the two are never in memory together.
    drop(root);
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

/// `server.trusted_proxies`: each an IP address or a CIDR range. A range written with bits
/// past its prefix (`10.0.0.1/8`), or one that trusts every address (`0.0.0.0/0`: any client
/// could then choose the address it is counted by), is taken but warned about.
fn trusted_proxies(cx: &mut Cx, list: &[At<String>]) -> Vec<IpRange> {
    let mut out = Vec::new();
    for item in list {
        let Some(range) = IpRange::parse(&item.v) else {
            cx.error(
                item.span.clone(),
                tr!(
                    "`{value}` in `server.trusted_proxies` is not an IP address or a CIDR range; write e.g. \"127.0.0.1\", \"10.0.0.0/8\" or \"2001:db8::/32\"",
                    value = item.v
                ),
            );
            continue;
        };
        if range.prefix() == 0 {
            cx.warning(
                item.span.clone(),
                tr!(
                    "`{value}` in `server.trusted_proxies` trusts every address: any client could then choose the address it is counted and recorded by; list only the proxies in front of nhacviec",
                    value = item.v
                ),
            );
        } else if range != range.network() {
            cx.warning(
                item.span.clone(),
                tr!(
                    "`{value}` in `server.trusted_proxies` has bits set past its prefix length; it is read as `{network}`",
                    value = item.v,
                    network = range.network()
                ),
            );
        }
        out.push(range);
    }
    out
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
                    tr!("missing `[organization]`: it names the organization and its time zone"),
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
            timeout_seconds: 10,
            max_connections: 512,
            trusted_proxies: Vec::new(),
        };
        if let Some(mut t) = top.table(cx, "server") {
            if let Some(l) = t.str(cx, "listen") {
                match l.v.parse::<SocketAddr>() {
                    Ok(a) => s.listen = a,
                    Err(_) => cx.error(
                        l.span,
                        tr!(
                            "`{value}` is not a listen address; write IP:PORT, e.g. \"127.0.0.1:8080\"",
                            value = l.v
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
                    _ => cx.error(
                        n.span,
                        tr!("`server.ack_per_minute` must be a positive number"),
                    ),
                }
            }
            // English only for now: the Vietnamese catalogue gets these two with its next edit.
            if let Some(n) = t.int(cx, "timeout_seconds") {
                match u32::try_from(n.v) {
                    Ok(v) if (1..=300).contains(&v) => s.timeout_seconds = v,
                    _ => cx.error(
                        n.span,
                        tr!("`server.timeout_seconds` must be between 1 and 300"),
                    ),
                }
            }
            if let Some(n) = t.int(cx, "max_connections") {
                match u32::try_from(n.v) {
                    Ok(v) if (1..=100_000).contains(&v) => s.max_connections = v,
                    _ => cx.error(
                        n.span,
                        tr!("`server.max_connections` must be between 1 and 100000"),
                    ),
                }
            }
            if let Some(list) = t.str_list(cx, "trusted_proxies") {
                s.trusted_proxies = trusted_proxies(cx, &list);
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
            templates_dir = Some(existing(cx, base, &d, "templates folder", Path::is_dir));
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
                .map(|u| {
                    if let Some(why) = super::rules::webhook_url_problem(&u.v) {
                        cx.error(
                            u.span.clone(),
                            tr!("`api_url` `{url}` {why}", url = u.v, why),
                        );
                    }
                    u.v.trim_end_matches('/').to_string()
                })
                .unwrap_or_else(|| "https://api.telegram.org".into());
            let max_per_minute = per_minute(cx, &mut tg, "channels.telegram", 1800);
            match token {
                Some(bot_token) => {
                    channels.telegram = Some(Telegram {
                        bot_token,
                        api_url,
                        max_per_minute,
                    });
                }
                None => tg.missing(cx, "bot_token_file"),
            }
            tg.finish(cx);
        }
        if let Some(mut z) = t.table(cx, "zalo") {
            channels.zalo = super::zalo::read_zalo(cx, &mut z, base, &mut secrets);
            z.finish(cx);
        }
        if let Some(mut wh) = t.table(cx, "webhook") {
            let secrets = secret_list(
                cx,
                &mut wh,
                "secret_file",
                "secret_env",
                base,
                &mut secrets,
                2,
            );
            let max_per_minute = per_minute(cx, &mut wh, "channels.webhook", 600);
            let timeout_seconds = match wh.int(cx, "timeout_seconds") {
                None => 15,
                Some(n) if (1..=60).contains(&n.v) => u32::try_from(n.v).unwrap_or(15),
                Some(n) => {
                    cx.error(
                        n.span,
                        tr!("`channels.webhook.timeout_seconds` must be between 1 and 60"),
                    );
                    15
                }
            };
            if secrets.is_empty() {
                wh.missing(cx, "secret_file");
            } else {
                channels.webhook = Some(Webhook {
                    secrets,
                    max_per_minute,
                    timeout_seconds,
                });
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
                tr!(
                    "policy name `{name}` may hold only a-z, 0-9 and `-`",
                    name = name.v
                ),
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
            tr!("no `[[unit]]`: add at least one unit with an `id`, a `name` and an `email`"),
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
            tr!("no `[[rule]]`: add at least one rule saying what is owed, by whom and when"),
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
