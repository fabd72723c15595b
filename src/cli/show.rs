//! What `plan` and `calendar` print: readable tables and the JSON of docs/config.md.

use std::fmt::Write as _;

use anyhow::Result;
use chrono::NaiveDate;
use serde::Serialize;

use super::counted;
use crate::config::Config;
use crate::plan::{self, Plan};
use crate::tr;

/// `Fri 03/10/2025` (English), `thứ Sáu 03/10/2025` (Vietnamese): the weekday in the
/// command's language, the date day first.
pub(super) fn day(d: NaiveDate) -> String {
    use chrono::{Datelike, Weekday};
    let weekday = match d.weekday() {
        Weekday::Mon => tr!("Mon"),
        Weekday::Tue => tr!("Tue"),
        Weekday::Wed => tr!("Wed"),
        Weekday::Thu => tr!("Thu"),
        Weekday::Fri => tr!("Fri"),
        Weekday::Sat => tr!("Sat"),
        Weekday::Sun => tr!("Sun"),
    };
    format!("{weekday} {}", d.format("%d/%m/%Y"))
}

/// `text` padded with spaces to `width` characters.
fn pad(text: &str, width: usize) -> String {
    format!("{text:<width$}")
}

/// "before Sun 05/10/2025 (00:00)" for a deadline at midnight, "end of Tue 30/09/2025
/// (24:00)" for one at 24:00, or the date and time: the words of
/// [`DeadlineForm`](crate::present::DeadlineForm) in the command's language.
fn deadline_words(occ: &plan::Occurrence) -> String {
    use crate::present::DeadlineForm;
    match DeadlineForm::of(occ.deadline, Some(occ.due_day)) {
        DeadlineForm::At(d, t) => format!("{} {}", day(d), t.format("%H:%M")),
        DeadlineForm::Before(d) => tr!("before {day} (00:00)", day = day(d)),
        DeadlineForm::EndOf(d) => tr!("end of {day} (24:00)", day = day(d)),
    }
}

pub(super) fn calendar_table(cfg: &Config, year: i32) -> String {
    let devs = cfg.calendar.deviations(year);
    let rows: Vec<[String; 4]> = devs
        .iter()
        .map(|d| {
            let state = if d.working {
                tr!("working")
            } else {
                tr!("off")
            };
            let layer = match d.layer {
                crate::calendar::Layer::Statutory => tr!("statutory"),
                crate::calendar::Layer::Official => tr!("official"),
                crate::calendar::Layer::Local => tr!("local"),
            };
            let reason = match &d.source {
                Some(src) => format!("{} [{src}]", d.reason),
                None => d.reason.clone(),
            };
            [day(d.date), state, layer, reason]
        })
        .collect();
    let head = [tr!("DATE"), tr!("STATE"), tr!("LAYER"), tr!("REASON")];
    let width = |i: usize, min: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head[i].chars().count(), min])
            .max()
            .unwrap_or(min)
    };
    let widths = [width(0, 16), width(1, 8), width(2, 10)];
    let mut s = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let _ = writeln!(
            s,
            "{} {} {} {}",
            pad(&r[0], widths[0]),
            pad(&r[1], widths[1]),
            pad(&r[2], widths[2]),
            r[3]
        );
    }
    let off = devs.iter().filter(|d| !d.working).count();
    let working = devs.len() - off;
    let basis = if cfg.calendar.has_schedule(year) {
        tr!("official schedule for {year}", year)
    } else {
        tr!(
            "no official schedule for {year}: statutory estimate, check it against the government's announcement",
            year
        )
    };
    let _ = writeln!(
        s,
        "{}",
        tr!(
            "{year}: {off}, {working}; {basis}",
            year,
            off = counted(off, tr!("1 weekday off"), tr!("{n} weekdays off", n = off)),
            working = counted(
                working,
                tr!("1 day working on a weekend day"),
                tr!("{n} days working on a weekend day", n = working)
            ),
            basis
        )
    );
    s
}

pub(super) fn plan_table(cfg: &Config, p: &Plan, from: NaiveDate, to: NaiveDate) -> String {
    let mut s = String::new();
    let (occurrences, obligations) = (p.occurrences.len(), p.obligations.len());
    let _ = writeln!(
        s,
        "{}",
        tr!(
            "{occurrences}, {obligations} from {from} to {to}",
            occurrences = counted(
                occurrences,
                tr!("1 occurrence"),
                tr!("{n} occurrences", n = occurrences)
            ),
            obligations = counted(
                obligations,
                tr!("1 obligation"),
                tr!("{n} obligations", n = obligations)
            ),
            from = day(from),
            to = day(to)
        )
    );
    let labels = [
        tr!("deadline"),
        tr!("last day"),
        tr!("owed by"),
        tr!("steps"),
    ];
    let lw = labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(8)
        .max(8);
    let label = |i: usize| format!("  {}  ", pad(&labels[i], lw));
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
        let _ = writeln!(s, "{}{}", label(0), deadline_words(occ));
        let natural = (occ.deadline - chrono::Duration::seconds(1)).date_naive();
        let moved = if occ.last_day == natural {
            String::new()
        } else {
            let why = match cfg.calendar.reason(natural) {
                Some(r) => r.to_string(),
                None => tr!("weekend"),
            };
            format!(
                "  {}",
                tr!("(moved: {day} is off: {why})", day = day(natural), why)
            )
        };
        let _ = writeln!(s, "{}{}{moved}", label(1), day(occ.last_day));
        let units: Vec<&str> = p
            .obligations
            .iter()
            .filter(|o| o.occurrence as usize == oi)
            .map(|o| cfg.units[o.unit as usize].id.as_str())
            .collect();
        let n = units.len();
        let _ = writeln!(
            s,
            "{}{} ({})",
            label(2),
            units.join(", "),
            counted(n, tr!("1 unit"), tr!("{n} units", n))
        );
        let escalation = tr!("+ escalation");
        for (i, st) in occ.steps.iter().enumerate() {
            let head = if i == 0 { label(3) } else { " ".repeat(lw + 4) };
            let _ = writeln!(
                s,
                "{head}{:<12} {} {}{}",
                st.name.to_string(),
                day(st.at.date_naive()),
                st.at.format("%H:%M"),
                if st.escalate {
                    format!("  {escalation}")
                } else {
                    String::new()
                }
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
