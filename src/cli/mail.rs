//! `send-test` and `preview`: a message on any channel from the command line.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::PreviewFormat;
use crate::config::diag::hint;
use crate::config::{Config, PeriodKind};
use crate::config::{is_chat_id, webhook_url_problem};
use crate::deliver::channel::{Outgoing, message_id};
use crate::deliver::context::{self, Recipient};
use crate::deliver::email::{self, Envelope};
use crate::deliver::templates::Templates;
use crate::deliver::{render, sender_for, telegram, webhook};
use crate::plan::{self, Period};
use crate::present;
use crate::state::{Channel, TemplateKind};
use crate::store::Store;
use crate::token::{self, TokenKey};
use crate::tr;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .with_context(|| tr!("cannot start the async runtime"))
}

/// Refuses an address that `channel` cannot take, saying what it takes.
fn check_address(channel: Channel, to: &str) -> Result<()> {
    match channel {
        Channel::Telegram if !is_chat_id(to) => bail!(
            "{}",
            tr!(
                "`{to}` is not a Telegram chat id: write a number (\"-1001234567\" for a group) or a public channel's \"@name\"",
                to
            )
        ),
        Channel::Webhook => match webhook_url_problem(to) {
            Some(why) => bail!("{}", tr!("webhook `{url}` {why}", url = to, why)),
            None => Ok(()),
        },
        Channel::Zalo if crate::config::normalise_phone(to).is_none() => bail!(
            "{}",
            tr!(
                "`{to}` is not a Vietnamese mobile number: write the 10 digits, starting 03, 05, 07, 08 or 09",
                to
            )
        ),
        _ => Ok(()),
    }
}

/// `nhacviec send-test [--channel C] --to ADDRESS`: one test message through the
/// configured channel.
pub(super) fn send_test(
    cfg: &Config,
    templates: &Templates,
    channel: Channel,
    to: &str,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    check_address(channel, to)?;
    let normalised = crate::config::normalise_phone(to);
    let to = match (channel, &normalised) {
        (Channel::Zalo, Some(n)) => n.as_str(),
        _ => to,
    };
    let key = format!("test/{}", now.timestamp_millis());
    let id = message_id(&key, "send-test", channel, to, &email::from_domain(cfg));
    // The pooled SMTP transport must live and die inside the runtime.
    let (result, describe) = runtime()?.block_on(async {
        // Zalo's tokens are in the database.
        let store = match channel {
            Channel::Zalo if !cfg.storage.path.is_file() => bail!(
                "{}",
                tr!(
                    "no database at {path} yet: `nhacviec run` creates it and takes Zalo's first refresh token; start it first",
                    path = cfg.storage.path.display()
                )
            ),
            Channel::Zalo => Some(Arc::new(Store::open(&cfg.storage.path, now)?)),
            _ => None,
        };
        let sender = match (channel, &store) {
            // A command never renews Zalo's tokens: the daemon does.
            (Channel::Zalo, Some(store)) => {
                crate::deliver::zalo::ZaloSender::new(cfg, store.clone())?.map(|s| {
                    Arc::new(s.without_renewal()) as Arc<dyn crate::deliver::channel::Sender>
                })
            }
            _ => sender_for(cfg, channel, store.as_ref())?,
        };
        let Some(sender) = sender else {
            bail!(
                "{}",
                tr!(
                    "the config has no `[channels.{channel}]`: set it up (docs/channels.md) before sending on {channel}",
                    channel
                )
            );
        };
        let describe = sender.describe().to_string();
        let (kind, ctx) = match channel {
            // No ZNS template is approved for a test: the `before` one, on sample data.
            Channel::Zalo => (
                TemplateKind::Before,
                crate::deliver::templates::sample(TemplateKind::Before),
            ),
            _ => (
                TemplateKind::Test,
                json!({
                    "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
                    "sent_at": present::moment_words(now.with_timezone(&cfg.organization.timezone)),
                    "transport": describe,
                }),
            ),
        };
        let (ctx, rendered) = render(cfg, templates, channel, kind, ctx)?;
        let out = Outgoing {
            channel,
            key: &key,
            kind,
            context: &ctx,
            to_name: None,
            to,
            message_id: &id,
            rendered: &rendered,
            date: now,
        };
        let result = sender.send(&out).await;
        anyhow::Ok((result, describe))
    })?;
    let (what, id_name) = match channel {
        Channel::Email => (tr!("email"), "Message-ID"),
        Channel::Webhook => (tr!("webhook event"), "webhook-id"),
        _ => (tr!("{channel} message", channel), "id"),
    };
    match result {
        Ok(_) => {
            println!(
                "{}",
                tr!(
                    "sent a test {what} to {to} via {describe}; {id_name} {id}",
                    what,
                    to,
                    describe,
                    id_name,
                    id
                )
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            // Whether the daemon would try again: what an admin needs to know before
            // starting it with this setup.
            use crate::deliver::channel::SendError;
            let kind = match e {
                SendError::Permanent(_) => tr!("permanent: the daemon would not retry it"),
                SendError::Transient(_) | SendError::RetryAt(..) => {
                    tr!("temporary: the daemon would retry it for 48 hours")
                }
            };
            let detail = tr!(
                "the test {what} to {to} was not sent via {describe}: {e} [{kind}]",
                what,
                to,
                describe,
                e,
                kind
            );
            eprintln!("{}", tr!("error: {detail}", detail));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The planned obligation `RULE/PERIOD/UNIT`: its occurrence and the unit (an index), or
/// what is wrong with the name, with a hint.
pub(super) fn planned(cfg: &Config, obligation: &str) -> Result<(plan::Occurrence, usize)> {
    let parts: Vec<&str> = obligation.split('/').collect();
    let [rule_id, period_id, unit_id] = parts[..] else {
        bail!(
            "{}",
            tr!("write the obligation as RULE/PERIOD/UNIT, e.g. bao-cao-9-thang/2025-9M/vp")
        );
    };
    let ri = cfg.rule_index(rule_id).ok_or_else(|| {
        anyhow!(
            "{}",
            tr!(
                "unknown rule `{id}`{h}",
                id = rule_id,
                h = hint(rule_id, cfg.rules.iter().map(|r| r.id.as_str()))
            )
        )
    })?;
    let rule = &cfg.rules[ri];
    let period = Period::parse(rule.period, period_id).ok_or_else(|| {
        anyhow!(
            "{}",
            tr!(
                "`{period_id}` is not a period of rule `{rule_id}` (write it like {example})",
                period_id,
                rule_id,
                example = example_period(rule.period)
            )
        )
    })?;
    let ui = cfg.unit_index(unit_id).ok_or_else(|| {
        anyhow!(
            "{}",
            tr!(
                "unknown unit `{id}`{h}",
                id = unit_id,
                h = hint(unit_id, cfg.units.iter().map(|u| u.id.as_str()))
            )
        )
    })?;
    if rule.units.binary_search(&ui).is_err() {
        bail!(
            "{}",
            tr!(
                "unit `{unit_id}` does not owe rule `{rule_id}`",
                unit_id,
                rule_id
            )
        );
    }
    let occ = plan::occurrence(cfg, ri, period)
        .filter(|o| !matches!(o.period, Period::Once(d) if d != o.due_day))
        .ok_or_else(|| {
            anyhow!(
                "{}",
                tr!(
                    "rule `{rule_id}` has no occurrence `{period_id}`",
                    rule_id,
                    period_id
                )
            )
        })?;
    Ok((occ, ui))
}

/// An example period id for a rule's period kind, for error messages.
fn example_period(kind: PeriodKind) -> String {
    match kind {
        PeriodKind::Month => "2025-07".into(),
        PeriodKind::Quarter => "2025-Q3".into(),
        PeriodKind::HalfYear => "2025-H1".into(),
        PeriodKind::NineMonths => "2025-9M".into(),
        PeriodKind::Year => "2025".into(),
        PeriodKind::Once => tr!("the rule's date, 2025-10-15"),
    }
}

/// What `preview` shows.
#[derive(Debug)]
pub(super) struct Preview<'a> {
    /// RULE/PERIOD/UNIT.
    pub obligation: &'a str,
    /// The step's name.
    pub step: &'a str,
    /// The copy sent to the escalation units.
    pub escalated: bool,
    /// On which channel.
    pub channel: Channel,
    /// How an email is shown.
    pub format: PreviewFormat,
}

/// `nhacviec preview --obligation RULE/PERIOD/UNIT --step STEP [--channel C]`.
pub(super) fn preview(
    cfg: &Config,
    templates: &Templates,
    p: &Preview<'_>,
    now: DateTime<Utc>,
) -> Result<String> {
    let Preview {
        obligation,
        step: step_name,
        escalated,
        channel,
        format,
    } = *p;
    let (occ, ui) = planned(cfg, obligation)?;
    let (rule_id, period_id, unit_id) = (
        cfg.rules[occ.rule].id.as_str(),
        occ.period.to_string(),
        cfg.units[ui].id.as_str(),
    );
    let step = occ
        .steps
        .iter()
        .find(|s| s.name.to_string() == step_name)
        .ok_or_else(|| {
            let names: Vec<String> = occ.steps.iter().map(|s| s.name.to_string()).collect();
            anyhow!(
                "{}",
                tr!(
                    "`{step_name}` is not a step of {rule_id}/{period_id}; its steps are {names}",
                    step_name,
                    rule_id,
                    period_id,
                    names = names.join(", ")
                )
            )
        })?;
    let to = if escalated {
        let Some(&e) = cfg.units[ui].escalate_to.first() else {
            bail!("{}", tr!("unit `{unit_id}` has no `escalate_to`", unit_id));
        };
        if !step.escalate {
            bail!(
                "{}",
                tr!(
                    "step `{step_name}` is not escalated (the policy's `escalate_from` is later or unset)",
                    step_name
                )
            );
        }
        Recipient::Escalation(e)
    } else {
        Recipient::Unit
    };
    let recipient_unit = match to {
        Recipient::Unit => ui,
        Recipient::Escalation(e) => e,
    };
    let key_file = token::key_path(&cfg.storage.path);
    let okey = obligation.to_string();
    let (token, unit_token) = match TokenKey::load(&key_file)? {
        Some(key) => {
            // The unit's page at its generation in force; a database not created yet (or
            // not migrated yet) has every unit at the first.
            let generations = crate::store::Store::open_read_only(&cfg.storage.path)
                .and_then(|s| s.unit_generations())
                .unwrap_or_default();
            (
                key.token(&okey),
                context::unit_token(&key, &generations, unit_id),
            )
        }
        None => {
            eprintln!(
                "{}",
                tr!(
                    "note: {path} does not exist yet (`nhacviec run` creates it), so the links below are placeholders",
                    path = key_file.display()
                )
            );
            ("<ma-xac-nhan>".to_string(), "<ma-don-vi>".to_string())
        }
    };
    let kind = context::template_kind(step, to);
    let tokens = context::LinkTokens {
        ack: &token,
        unit: &unit_token,
    };
    let ctx = context::with_links(
        cfg,
        context::reminder(cfg, &occ, ui, step, to),
        kind,
        tokens,
    );
    let (ctx, rendered) = render(cfg, templates, channel, kind, ctx)?;
    let to_addr = cfg.units[recipient_unit]
        .addresses()
        .into_iter()
        .find(|(c, _)| *c == channel)
        .map(|(_, a)| a)
        .ok_or_else(|| {
            anyhow!(
                "{}",
                tr!(
                    "unit `{unit_id}` has no {channel} address",
                    unit_id = cfg.units[recipient_unit].id,
                    channel
                )
            )
        })?;
    let id = message_id(&okey, step_name, channel, to_addr, &email::from_domain(cfg));
    let out = Outgoing {
        channel,
        key: &okey,
        kind,
        context: &ctx,
        to_name: Some(&cfg.units[recipient_unit].name),
        to: to_addr,
        message_id: &id,
        rendered: &rendered,
        date: now,
    };
    match channel {
        Channel::Telegram => {
            let body = telegram::TelegramSender::body(&out)?;
            return Ok(format!("{}\n", serde_json::to_string_pretty(&body)?));
        }
        Channel::Webhook => {
            return Ok(format!(
                "{}\n",
                serde_json::to_string_pretty(&webhook::event(&out))?
            ));
        }
        Channel::Zalo => {
            let p = rendered.zalo.as_ref().map_or(Value::Null, Clone::clone);
            let body = json!({
                "phone": to_addr,
                "template_id": p["template_id"],
                "template_data": p["template_data"],
                "tracking_id": crate::deliver::zalo::tracking_id(&id),
            });
            return Ok(format!("{}\n", serde_json::to_string_pretty(&body)?));
        }
        Channel::Email => {}
    }
    let msg = Envelope::of(cfg)?.build(&out)?;
    Ok(match format {
        PreviewFormat::Eml => String::from_utf8_lossy(&msg.formatted()).into_owned(),
        PreviewFormat::Text => {
            let mut s = String::new();
            let _ = writeln!(s, "From: {}", cfg.email.from);
            let _ = writeln!(s, "To: {} <{to_addr}>", cfg.units[recipient_unit].name);
            if let Some(r) = &cfg.email.reply_to {
                let _ = writeln!(s, "Reply-To: {r}");
            }
            let _ = writeln!(s, "Subject: {}", rendered.subject);
            let _ = writeln!(s, "Message-ID: {id}");
            let _ = writeln!(s, "Sent: {}", step.at.format("%Y-%m-%d %H:%M %:z"));
            let _ = writeln!(s, "\n{}", rendered.text.trim_end());
            let _ = writeln!(s, "\n----- text/html -----\n{}", rendered.html.trim_end());
            s
        }
    })
}
