//! The obligations' states as people read them: the status grid's data, CSV, JSON and a
//! table. Shared by `/status`, `/status.csv` and `nhacviec status`.

use std::fmt::Write as _;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::present;
use crate::state::Shown;
use crate::store::Obligation;
use crate::tr;

/// What the status views show: occurrences with a deadline from this long ago on.
pub const RECENT: Duration = Duration::days(60);

/// The status page's grid holds an occurrence nobody has been reminded of nor answered
/// only when its deadline is this close; later ones are listed below it, compactly.
pub const GRID_AHEAD: Duration = Duration::days(45);

/// Splits `states` (in deadline order) into the occurrences the status page's grid shows
/// (any obligation reminded or answered, or the deadline within [`GRID_AHEAD`]) and those
/// further ahead, recorded but not reminded yet.
pub fn split_ahead(
    states: Vec<Obligation>,
    now: DateTime<Utc>,
) -> (Vec<Obligation>, Vec<Obligation>) {
    use std::collections::HashSet;
    let current: HashSet<(String, String)> = states
        .iter()
        .filter(|o| {
            o.reminded
                || o.state != crate::state::ObligationState::Pending
                || o.deadline <= now + GRID_AHEAD
        })
        .map(|o| (o.rule.clone(), o.period.clone()))
        .collect();
    states
        .into_iter()
        .partition(|o| current.contains(&(o.rule.clone(), o.period.clone())))
}

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
    pub state: Shown,
    /// Its Vietnamese label.
    pub state_label: &'static str,
    /// When seen, RFC 3339.
    pub seen_at: Option<String>,
    /// When done, RFC 3339.
    pub done_at: Option<String>,
}

/// The lines of `states`, in deadline order.
pub fn lines(cfg: &Config, states: &[Obligation], now: DateTime<Utc>) -> Vec<Line> {
    let tz = cfg.organization.timezone;
    let rfc3339 = |t: DateTime<Utc>| {
        t.with_timezone(&tz)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    states
        .iter()
        .map(|o| {
            let state = o.shown(now);
            Line {
                obligation: o.key.clone(),
                rule: o.rule.clone(),
                period: o.period.clone(),
                title: o.title.clone(),
                period_label: o.period_label.clone(),
                deadline: rfc3339(o.deadline),
                last_day: o.last_day.to_string(),
                unit: o.unit.clone(),
                unit_name: cfg.unit_name(&o.unit),
                state,
                state_label: state.label(),
                seen_at: o.seen_at.map(rfc3339),
                done_at: o.done_at.map(rfc3339),
            }
        })
        .collect()
}

/// One CSV field, quoted when it must be. A field a spreadsheet would take for a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return: a unit or rule named
/// `=HYPERLINK(…)` in the config) gets a `'` in front, inside the quotes, as OWASP advises
/// against CSV injection: the admin opening the file sees the text, and nothing runs.
fn csv_field(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("\"'{}\"", s.replace('"', "\"\""))
    } else if s.contains([',', '"', '\n', '\r']) {
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
            l.state.as_str(),
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
    let head = [tr!("OBLIGATION"), tr!("STATE"), tr!("SEEN"), tr!("DONE")];
    let rows: Vec<[String; 4]> = lines
        .iter()
        .map(|l| {
            [
                l.obligation.clone(),
                state_word(l.state),
                l.seen_at.clone().unwrap_or_else(|| "-".into()),
                l.done_at.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let width = |i: usize, min: usize| {
        rows.iter()
            .chain(std::iter::once(&head))
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(min)
            .max(min)
    };
    let w = [width(0, 10), width(1, 8), width(2, 25), width(3, 25)];
    let mut out = String::new();
    for r in std::iter::once(&head).chain(&rows) {
        let _ = writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = w[0],
            w1 = w[1],
            w2 = w[2],
            w3 = w[3]
        );
    }
    out
}

/// A state as the table of `nhacviec status` names it, in the command's language (JSON and
/// CSV keep [`Shown::as_str`]).
fn state_word(s: Shown) -> String {
    match s {
        Shown::Done => tr!("done"),
        Shown::Seen => tr!("seen"),
        Shown::Pending => tr!("pending"),
        Shown::Overdue => tr!("overdue"),
        Shown::Upcoming => tr!("upcoming"),
    }
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
    pub state: Shown,
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

/// The units × occurrences grid: one pass over the states, cells found through a map.
pub fn grid(cfg: &Config, states: &[Obligation], now: DateTime<Utc>) -> (Vec<Column>, Vec<Row>) {
    use std::collections::HashMap;
    let tz = cfg.organization.timezone;
    let mut columns: Vec<Column> = Vec::new();
    let mut column_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut units_seen: HashMap<&str, ()> = HashMap::new();
    let mut cells: HashMap<(&str, usize), &Obligation> = HashMap::new();
    for o in states {
        let next = columns.len();
        let c = *column_of.entry((&o.rule, &o.period)).or_insert(next);
        if c == next {
            columns.push(Column {
                key: format!("{}/{}", o.rule, o.period),
                title: o.title.clone(),
                period_label: o.period_label.clone(),
                once: o.once(),
                deadline: present::deadline_words(
                    o.deadline.with_timezone(&tz),
                    o.due_day,
                    Some(o.last_day),
                ),
            });
        }
        units_seen.insert(&o.unit, ());
        cells.insert((&o.unit, c), o);
    }
    // Units in config order, then any that left the config (in order of appearance).
    let mut unit_ids: Vec<&str> = cfg
        .units
        .iter()
        .map(|u| u.id.as_str())
        .filter(|id| units_seen.contains_key(id))
        .collect();
    for o in states {
        if cfg.unit_index(&o.unit).is_none() && !unit_ids.contains(&o.unit.as_str()) {
            unit_ids.push(&o.unit);
        }
    }
    let rows = unit_ids
        .into_iter()
        .map(|id| {
            let name = cfg.unit_name(id);
            let cells = (0..columns.len())
                .map(|c| {
                    cells.get(&(id, c)).map(|o| Cell {
                        key: o.key.clone(),
                        state: o.shown(now),
                        at: o
                            .state_at()
                            .map(|t| present::moment_words(t.with_timezone(&tz))),
                    })
                })
                .collect();
            Row {
                id: id.to_string(),
                name,
                cells,
            }
        })
        .collect();
    (columns, rows)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::state::ObligationState;

    fn ob(rule: &str, unit: &str, days: i64, reminded: bool, state: ObligationState) -> Obligation {
        let now = Utc.with_ymd_and_hms(2025, 10, 13, 2, 0, 0).unwrap();
        Obligation {
            rule: rule.into(),
            period: "2025".into(),
            title: rule.into(),
            period_label: "năm 2025".into(),
            deadline: now + Duration::days(days),
            due_day: None,
            last_day: NaiveDate::from_ymd_opt(2025, 12, 1).unwrap(),
            unit: unit.into(),
            key: format!("{rule}/2025/{unit}"),
            state,
            seen_at: None,
            done_at: None,
            reminded,
            recorded_at: now,
        }
    }

    #[test]
    fn csv_fields_a_spreadsheet_would_run_are_text() {
        for (field, want) in [
            (
                "=HYPERLINK(\"http://x.invalid\",\"bấm\")",
                "\"'=HYPERLINK(\"\"http://x.invalid\"\",\"\"bấm\"\")\"",
            ),
            ("+1", "\"'+1\""),
            ("-2+3", "\"'-2+3\""),
            ("@SUM(A1)", "\"'@SUM(A1)\""),
            ("\t=1", "\"'\t=1\""),
            ("\r=1", "\"'\r=1\""),
            ("Văn phòng", "Văn phòng"),
            ("a=b", "a=b"),
            ("Phòng Kinh tế, Hạ tầng", "\"Phòng Kinh tế, Hạ tầng\""),
            ("", ""),
        ] {
            assert_eq!(csv_field(field), want, "{field:?}");
        }
    }

    /// The grid holds what was reminded or answered, and what is due within 45 days; the
    /// rest waits below it, whole occurrences at a time.
    #[test]
    fn the_grid_holds_the_current_occurrences() {
        use ObligationState::{Pending, Seen};
        let now = Utc.with_ymd_and_hms(2025, 10, 13, 2, 0, 0).unwrap();
        let states = vec![
            ob("reminded", "vp", 3, true, Pending),
            ob("reminded", "kt", 3, false, Pending),
            ob("soon", "vp", 45, false, Pending),
            ob("answered", "vp", 100, false, Seen),
            ob("answered", "kt", 100, false, Pending),
            ob("later", "vp", 46, false, Pending),
            ob("later", "kt", 46, false, Pending),
        ];
        let (grid, later) = split_ahead(states, now);
        let keys = |v: &[Obligation]| v.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        assert_eq!(
            keys(&grid),
            [
                "reminded/2025/vp",
                "reminded/2025/kt",
                "soon/2025/vp",
                "answered/2025/vp",
                "answered/2025/kt"
            ]
        );
        assert_eq!(keys(&later), ["later/2025/vp", "later/2025/kt"]);
    }
}
