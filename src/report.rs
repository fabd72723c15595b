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

/// The units × occurrences grid: one pass over the states, cells found through a map.
pub fn grid(
    cfg: &Config,
    states: &[ObligationState],
    now: DateTime<Utc>,
) -> (Vec<Column>, Vec<Row>) {
    use std::collections::HashMap;
    let tz = cfg.organization.timezone;
    let mut columns: Vec<Column> = Vec::new();
    let mut column_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut units_seen: HashMap<&str, ()> = HashMap::new();
    let mut cells: HashMap<(&str, usize), &ObligationState> = HashMap::new();
    for o in states {
        let next = columns.len();
        let c = *column_of.entry((&o.rule, &o.period)).or_insert(next);
        if c == next {
            columns.push(Column {
                key: format!("{}/{}", o.rule, o.period),
                title: o.title.clone(),
                period_label: o.period_label.clone(),
                once: NaiveDate::parse_from_str(&o.period, "%Y-%m-%d").is_ok(),
                deadline: context::stored_deadline_words(
                    o.deadline.with_timezone(&tz),
                    NaiveDate::parse_from_str(&o.last_day, "%Y-%m-%d").ok(),
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
            let name = cfg
                .unit_index(id)
                .map_or_else(|| id.to_string(), |i| cfg.units[i].name.clone());
            let cells = (0..columns.len())
                .map(|c| {
                    cells.get(&(id, c)).map(|o| {
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
            Row {
                id: id.to_string(),
                name,
                cells,
            }
        })
        .collect();
    (columns, rows)
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// The grid as an HTML table (`table#grid`), each cell not done with a form that marks it
/// done. Written directly rather than through a template: with a thousand cells a template
/// engine costs several milliseconds a page, and the status page must stay fast.
pub fn grid_html(columns: &[Column], rows: &[Row], csrf: &str) -> String {
    let mut h = String::with_capacity(256 + rows.len() * columns.len() * 320);
    let e = html_escape;
    h.push_str("<table id=\"grid\">\n<thead><tr><th>Đơn vị</th>");
    for c in columns {
        h.push_str("<th data-key=\"");
        e(&c.key, &mut h);
        h.push_str("\">");
        e(&c.title, &mut h);
        if !c.once {
            h.push(' ');
            e(&c.period_label, &mut h);
        }
        h.push_str("<br><span class=\"note\">");
        e(&c.deadline, &mut h);
        h.push_str("</span></th>");
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        h.push_str("<tr data-unit=\"");
        e(&r.id, &mut h);
        h.push_str("\"><th>");
        e(&r.name, &mut h);
        h.push_str("</th>");
        for cell in &r.cells {
            let Some(c) = cell else {
                h.push_str("<td><span class=\"note\">–</span></td>");
                continue;
            };
            h.push_str("<td data-key=\"");
            e(&c.key, &mut h);
            let _ = write!(
                h,
                "\" data-state=\"{s}\"><span class=\"state {s}\">{l}</span>",
                s = c.state,
                l = c.label
            );
            if let Some(at) = &c.at {
                h.push_str("<br><span class=\"note\">");
                e(at, &mut h);
                h.push_str("</span>");
            }
            if c.state != "done" {
                h.push_str("<form method=\"post\" action=\"/status/ack\"><input type=\"hidden\" name=\"obligation\" value=\"");
                e(&c.key, &mut h);
                h.push_str("\"><input type=\"hidden\" name=\"csrf\" value=\"");
                e(csrf, &mut h);
                h.push_str("\"><button type=\"submit\">Đánh dấu hoàn thành</button></form>");
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_html_escapes_and_has_a_form_per_open_cell() {
        let columns = vec![Column {
            key: "r/2025".into(),
            title: "Báo cáo <năm> & \"tổng kết\"".into(),
            period_label: "năm 2025".into(),
            once: false,
            deadline: "trước ngày 05/01/2026".into(),
        }];
        let cell = |key: &str, state: &'static str| {
            Some(Cell {
                key: key.into(),
                state,
                label: "x",
                at: None,
            })
        };
        let rows = vec![
            Row {
                id: "vp".into(),
                name: "Văn phòng".into(),
                cells: vec![cell("r/2025/vp", "done")],
            },
            Row {
                id: "kt".into(),
                name: "Kinh tế".into(),
                cells: vec![cell("r/2025/kt", "overdue")],
            },
            Row {
                id: "hcc".into(),
                name: "HCC".into(),
                cells: vec![None],
            },
        ];
        let h = grid_html(&columns, &rows, "abc");
        assert!(h.contains("Báo cáo &lt;năm&gt; &amp; &quot;tổng kết&quot; năm 2025"));
        assert_eq!(h.matches("<form").count(), 1, "only the open cell: {h}");
        assert!(h.contains("data-key=\"r/2025/kt\" data-state=\"overdue\""));
        assert!(h.contains("value=\"abc\""));
        assert!(
            h.contains("<tr data-unit=\"hcc\"><th>HCC</th><td><span class=\"note\">–</span></td>")
        );
    }
}
