//! What `plan` and `calendar` print: readable tables and the JSON of docs/config.md.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::NaiveDate;
use serde::Serialize;

use super::plural;
use crate::config::Config;
use crate::plan::{self, Plan};

/// `Fri 03/10/2025`: English weekday (CLI text is English), Vietnamese date order.
fn day(d: NaiveDate) -> String {
    d.format("%a %d/%m/%Y").to_string()
}

/// "before Sun 05/10/2025 (00:00)" for a deadline at midnight, "end of Tue 30/09/2025
/// (24:00)" for one at 24:00, or the date and time: the English words of
/// [`DeadlineForm`](crate::present::DeadlineForm).
fn deadline_words(occ: &plan::Occurrence) -> String {
    use crate::present::DeadlineForm;
    match DeadlineForm::of(occ.deadline, Some(occ.due_day)) {
        DeadlineForm::At(d, t) => format!("{} {}", day(d), t.format("%H:%M")),
        DeadlineForm::Before(d) => format!("before {} (00:00)", day(d)),
        DeadlineForm::EndOf(d) => format!("end of {} (24:00)", day(d)),
    }
}

pub(super) fn calendar_table(cfg: &Config, year: i32) -> String {
    let devs = cfg.calendar.deviations(year);
    let mut s = String::new();
    let _ = writeln!(s, "{:<16} {:<8} {:<10} REASON", "DATE", "STATE", "LAYER");
    for d in &devs {
        let state = if d.working { "working" } else { "off" };
        let _ = write!(
            s,
            "{:<16} {:<8} {:<10} {}",
            day(d.date),
            state,
            d.layer.as_str(),
            d.reason
        );
        if let Some(src) = &d.source {
            let _ = write!(s, " [{src}]");
        }
        s.push('\n');
    }
    let off = devs.iter().filter(|d| !d.working).count();
    let working = devs.len() - off;
    let basis = if cfg.calendar.has_schedule(year) {
        format!("official schedule for {year}")
    } else {
        format!(
            "no official schedule for {year}: statutory estimate, check it against the government's announcement"
        )
    };
    let _ = writeln!(
        s,
        "{year}: {} off, {} working on a weekend day; {basis}",
        plural(off, "weekday"),
        plural(working, "day")
    );
    s
}

pub(super) fn plan_table(cfg: &Config, p: &Plan, from: NaiveDate, to: NaiveDate) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}, {} from {} to {}",
        plural(p.occurrences.len(), "occurrence"),
        plural(p.obligations.len(), "obligation"),
        day(from),
        day(to)
    );
    for (oi, occ) in p.occurrences.iter().enumerate() {
        let rule = &cfg.rules[occ.rule];
        let _ = writeln!(
            s,
            "\n{}  {}  {}",
            occ.key(cfg),
            rule.kind.as_str(),
            occ.period.label()
        );
        let _ = writeln!(s, "  {}", rule.title);
        let _ = writeln!(s, "  deadline  {}", deadline_words(occ));
        let natural = (occ.deadline - chrono::Duration::seconds(1)).date_naive();
        let moved = if occ.last_day == natural {
            String::new()
        } else {
            let why = cfg.calendar.reason(natural).unwrap_or("weekend");
            format!("  (moved: {} is off: {why})", day(natural))
        };
        let _ = writeln!(s, "  last day  {}{moved}", day(occ.last_day));
        let units: Vec<&str> = p
            .obligations
            .iter()
            .filter(|o| o.occurrence as usize == oi)
            .map(|o| cfg.units[o.unit as usize].id.as_str())
            .collect();
        let _ = writeln!(
            s,
            "  owed by   {} ({})",
            units.join(", "),
            plural(units.len(), "unit")
        );
        for (i, st) in occ.steps.iter().enumerate() {
            let head = if i == 0 { "  steps" } else { "" };
            let _ = writeln!(
                s,
                "{head:<12}{:<12} {} {}{}",
                st.name.to_string(),
                day(st.at.date_naive()),
                st.at.format("%H:%M"),
                if st.escalate { "  + escalation" } else { "" }
            );
        }
    }
    s
}

#[derive(Serialize)]
struct JsonStep {
    step: String,
    at: String,
}

#[derive(Serialize)]
struct JsonObligation<'a> {
    unit: &'a str,
    steps: &'a [JsonStep],
}

#[derive(Serialize)]
struct JsonOccurrence<'a> {
    rule: &'a str,
    kind: &'a str,
    title: &'a str,
    period: String,
    period_label: String,
    deadline: String,
    last_day: String,
    obligations: Vec<JsonObligation<'a>>,
}

pub(super) fn plan_json(cfg: &Config, p: &Plan) -> Result<String> {
    let steps: Vec<Vec<JsonStep>> = p
        .occurrences
        .iter()
        .map(|o| {
            o.steps
                .iter()
                .map(|s| JsonStep {
                    step: s.name.to_string(),
                    at: s.at.to_rfc3339(),
                })
                .collect()
        })
        .collect();
    let mut out: Vec<JsonOccurrence> = p
        .occurrences
        .iter()
        .map(|o| {
            let rule = &cfg.rules[o.rule];
            JsonOccurrence {
                rule: &rule.id,
                kind: rule.kind.as_str(),
                title: &rule.title,
                period: o.period.to_string(),
                period_label: o.period.label(),
                deadline: o.deadline.to_rfc3339(),
                last_day: o.last_day.to_string(),
                obligations: Vec::new(),
            }
        })
        .collect();
    for ob in &p.obligations {
        let oi = ob.occurrence as usize;
        out[oi].obligations.push(JsonObligation {
            unit: &cfg.units[ob.unit as usize].id,
            steps: &steps[oi],
        });
    }
    Ok(serde_json::to_string_pretty(&out)? + "\n")
}
