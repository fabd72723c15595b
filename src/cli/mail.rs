//! `send-test` and `preview`: email from the command line.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::PreviewFormat;
use crate::config::diag::hint;
use crate::config::{Config, PeriodKind};
use crate::deliver::channel::{Outgoing, Sender};
use crate::deliver::context::{self, Recipient};
use crate::deliver::email::{self, Envelope, Mailer};
use crate::deliver::templates::Templates;
use crate::plan::{self, Period};
use crate::present;
use crate::state::TemplateKind;
use crate::token::{self, TokenKey};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `nhacviec send-test --to ADDRESS`: one test email through the configured transport.
pub(super) fn send_test(
    cfg: &Config,
    templates: &Templates,
    to: &str,
    now: DateTime<Utc>,
) -> Result<ExitCode> {
    let domain = email::from_domain(cfg);
    let id = email::message_id(
        &format!("test/{}", now.timestamp_millis()),
        "send-test",
        to,
        &domain,
    );
    // The pooled SMTP transport must live and die inside the runtime.
    let (result, describe) = runtime()?.block_on(async {
        let mailer = Mailer::new(cfg)?;
        let describe = mailer.describe().to_string();
        let ctx = json!({
            "org": {"name": cfg.organization.name, "public_url": cfg.organization.public_url},
            "sent_at": present::moment_words(now.with_timezone(&cfg.organization.timezone)),
            "transport": describe,
        });
        let rendered = templates.render(TemplateKind::Test, &ctx)?;
        let out = Outgoing {
            to_name: None,
            to,
            message_id: &id,
            rendered: &rendered,
            date: now,
        };
        let result = mailer.send(&out).await;
        anyhow::Ok((result, describe))
    })?;
    match result {
        Ok(()) => {
            println!("sent a test email to {to} via {describe}; Message-ID {id}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: the test email to {to} was not sent via {describe}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// An example period id for a rule's period kind, for error messages.
fn example_period(kind: PeriodKind) -> &'static str {
    match kind {
        PeriodKind::Month => "2025-07",
        PeriodKind::Quarter => "2025-Q3",
        PeriodKind::HalfYear => "2025-H1",
        PeriodKind::NineMonths => "2025-9M",
        PeriodKind::Year => "2025",
        PeriodKind::Once => "the rule's date, 2025-10-15",
    }
}

/// `nhacviec preview --obligation RULE/PERIOD/UNIT --step STEP`.
pub(super) fn preview(
    cfg: &Config,
    templates: &Templates,
    obligation: &str,
    step_name: &str,
    escalated: bool,
    format: PreviewFormat,
    now: DateTime<Utc>,
) -> Result<String> {
    let parts: Vec<&str> = obligation.split('/').collect();
    let [rule_id, period_id, unit_id] = parts[..] else {
        bail!("write the obligation as RULE/PERIOD/UNIT, e.g. bao-cao-9-thang/2025-9M/vp");
    };
    let ri = cfg.rule_index(rule_id).ok_or_else(|| {
        anyhow!(
            "unknown rule `{rule_id}`{}",
            hint(rule_id, cfg.rules.iter().map(|r| r.id.as_str()))
        )
    })?;
    let rule = &cfg.rules[ri];
    let period = Period::parse(rule.period, period_id).ok_or_else(|| {
        anyhow!(
            "`{period_id}` is not a period of rule `{rule_id}` (write it like {})",
            example_period(rule.period)
        )
    })?;
    let ui = cfg.unit_index(unit_id).ok_or_else(|| {
        anyhow!(
            "unknown unit `{unit_id}`{}",
            hint(unit_id, cfg.units.iter().map(|u| u.id.as_str()))
        )
    })?;
    if rule.units.binary_search(&ui).is_err() {
        bail!("unit `{unit_id}` does not owe rule `{rule_id}`");
    }
    let occ = plan::occurrence(cfg, ri, period)
        .filter(|o| !matches!(o.period, Period::Once(d) if d != o.due_day))
        .ok_or_else(|| anyhow!("rule `{rule_id}` has no occurrence `{period_id}`"))?;
    let step = occ
        .steps
        .iter()
        .find(|s| s.name.to_string() == step_name)
        .ok_or_else(|| {
            let names: Vec<String> = occ.steps.iter().map(|s| s.name.to_string()).collect();
            anyhow!(
                "`{step_name}` is not a step of {rule_id}/{period_id}; its steps are {}",
                names.join(", ")
            )
        })?;
    let to = if escalated {
        let Some(&e) = cfg.units[ui].escalate_to.first() else {
            bail!("unit `{unit_id}` has no `escalate_to`");
        };
        if !step.escalate {
            bail!(
                "step `{step_name}` is not escalated (the policy's `escalate_from` is later or unset)"
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
    let url = match TokenKey::load(&key_file)? {
        Some(key) => context::ack_url(cfg, &key.token(&okey)),
        None => {
            eprintln!(
                "note: {} does not exist yet (`nhacviec run` creates it), so the link below is a placeholder",
                key_file.display()
            );
            context::ack_url(cfg, "<ma-xac-nhan>")
        }
    };
    let ctx = context::with_ack_url(context::reminder(cfg, &occ, ui, step, to), &url);
    let rendered = templates.render(context::template_kind(step, to), &ctx)?;
    let to_addr = cfg.units[recipient_unit].email.first().ok_or_else(|| {
        anyhow!(
            "unit `{}` has no email address",
            cfg.units[recipient_unit].id
        )
    })?;
    let id = email::message_id(&okey, step_name, to_addr, &email::from_domain(cfg));
    let out = Outgoing {
        to_name: Some(&cfg.units[recipient_unit].name),
        to: to_addr,
        message_id: &id,
        rendered: &rendered,
        date: now,
    };
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
