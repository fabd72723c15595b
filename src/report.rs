//! The obligations' states as people read them: the status grid, CSV and JSON. Shared by
//! `/status`, `/status.csv` and `nhacviec status`.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::deliver::{context, digest};
use crate::store::ObligationState;

/// What the status views show: occurrences with a deadline from this long ago on.
pub const RECENT: Duration = Duration::days(60);

/// One obligation, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// `rule/period/unit`.
    pub obligation: String,
    /// Rule id.
    pub rule: String,
    /// Period id.
    pub period: String,
    /// Rule title.
    pub title: String,
    /// Period label.
    pub period_label: String,
    /// Deadline, RFC 3339.
    pub deadline: String,
    /// Last day.
    pub last_day: String,
    /// Unit id.
    pub unit: String,
    /// Unit name.
    pub unit_name: String,
    /// done, seen, pending or overdue.
    pub state: &'static str,
    /// Its Vietnamese label.
    pub state_label: &'static str,
    /// When seen, RFC 3339.
    pub seen_at: Option<String>,
    /// When done, RFC 3339.
    pub done_at: Option<String>,
}

/// The lines of `states`, in deadline order.
pub fn lines(cfg: &Config, states: &[ObligationState], now: DateTime<Utc>) -> Vec<Line> {
    let tz = cfg.organization.timezone;
    states
        .iter()
        .map(|o| {
            let (state, state_label, _) = digest::shown_state(o, now);
            Line {
                obligation: o.key.clone(),
                rule: o.rule.clone(),
                period: o.period.clone(),
                title: o.title.clone(),
                period_label: o.period_label.clone(),
                deadline: o
                    .deadline
                    .with_timezone(&tz)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                last_day: o.last_day.clone(),
                unit: o.unit.clone(),
                unit_name: cfg
                    .unit_index(&o.unit)
                    .map_or_else(|| o.unit.clone(), |i| cfg.units[i].name.clone()),
                state,
                state_label,
                seen_at: o.seen_at.map(|t| {
                    t.with_timezone(&tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
                done_at: o.done_at.map(|t| {
                    t.with_timezone(&tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
            }
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// CSV (RFC 4180) with a header line.
pub fn csv(lines: &[Line]) -> String {
    let mut out = String::from(
        "obligation,rule,period,title,period_label,deadline,last_day,unit,unit_name,state,seen_at,done_at\r\n",
    );
    for l in lines {
        let fields = [
            l.obligation.as_str(),
            &l.rule,
            &l.period,
            &l.title,
            &l.period_label,
            &l.deadline,
            &l.last_day,
            &l.unit,
            &l.unit_name,
            l.state,
            l.seen_at.as_deref().unwrap_or(""),
            l.done_at.as_deref().unwrap_or(""),
        ];
        let row: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        let _ = write!(out, "{}\r\n", row.join(","));
    }
    out
}

/// A readable table for the terminal.
pub fn table(lines: &[Line]) -> String {
    let mut out = String::new();
    let width = lines
        .iter()
        .map(|l| l.obligation.chars().count())
        .max()
        .unwrap_or(10)
        .max(10);
    let _ = writeln!(
        out,
        "{:<width$}  {:<8}  {:<25}  {:<25}",
        "OBLIGATION", "STATE", "SEEN", "DONE"
    );
    for l in lines {
        let _ = writeln!(
            out,
            "{:<width$}  {:<8}  {:<25}  {:<25}",
            l.obligation,
            l.state,
            l.seen_at.as_deref().unwrap_or("-"),
            l.done_at.as_deref().unwrap_or("-")
        );
    }
    out
}

/// One column of the grid: an occurrence.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    /// `rule/period`.
    pub key: String,
    /// Rule title.
    pub title: String,
    /// Period label.
    pub period_label: String,
    /// A one-off (its label repeats the date).
    pub once: bool,
    /// The deadline in words.
    pub deadline: String,
}

/// One cell: a unit's obligation.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// `rule/period/unit`.
    pub key: String,
    /// done, seen, pending, overdue.
    pub state: &'static str,
    /// Its label.
    pub label: &'static str,
    /// When acknowledged, in words.
    pub at: Option<String>,
}

/// One row: a unit.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Unit id.
    pub id: String,
    /// Unit name.
    pub name: String,
    /// One per column; `None` where the unit does not owe it.
    pub cells: Vec<Option<Cell>>,
}

/// The units × occurrences grid.
pub fn grid(
    cfg: &Config,
    states: &[ObligationState],
    now: DateTime<Utc>,
) -> (Vec<Column>, Vec<Row>) {
    let tz = cfg.organization.timezone;
    let mut columns: Vec<Column> = Vec::new();
    for o in states {
        let key = format!("{}/{}", o.rule, o.period);
        if !columns.iter().any(|c| c.key == key) {
            columns.push(Column {
                key,
                title: o.title.clone(),
                period_label: o.period_label.clone(),
                once: NaiveDate::parse_from_str(&o.period, "%Y-%m-%d").is_ok(),
                deadline: context::stored_deadline_words(
                    o.deadline.with_timezone(&tz),
                    NaiveDate::parse_from_str(&o.last_day, "%Y-%m-%d").ok(),
                ),
            });
        }
    }
    // Units in config order, then any that left the config.
    let mut unit_ids: Vec<String> = cfg
        .units
        .iter()
        .filter(|u| states.iter().any(|o| o.unit == u.id))
        .map(|u| u.id.clone())
        .collect();
    for o in states {
        if !unit_ids.contains(&o.unit) {
            unit_ids.push(o.unit.clone());
        }
    }
    let rows = unit_ids
        .into_iter()
        .map(|id| {
            let name = cfg
                .unit_index(&id)
                .map_or_else(|| id.clone(), |i| cfg.units[i].name.clone());
            let cells = columns
                .iter()
                .map(|c| {
                    states
                        .iter()
                        .find(|o| o.unit == id && format!("{}/{}", o.rule, o.period) == c.key)
                        .map(|o| {
                            let (state, label, _) = digest::shown_state(o, now);
                            let at = match o.state.as_str() {
                                "done" => o.done_at,
                                "seen" => o.seen_at,
                                _ => None,
                            };
                            Cell {
                                key: o.key.clone(),
                                state,
                                label,
                                at: at.map(|t| context::moment_words(t.with_timezone(&tz))),
                            }
                        })
                })
                .collect();
            Row { id, name, cells }
        })
        .collect();
    (columns, rows)
}
