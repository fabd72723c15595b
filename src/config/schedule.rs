//! The calendar's data files: the official yearly schedules, read with their own diagnostics.

use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use toml::de::DeTable;

use super::diag::{Diagnostics, Source};
use super::raw::*;
use super::reader::{At, Cx, Tbl};
use crate::calendar::{Calendar, CalendarSpec, DayEntry, Schedule};
use crate::tr;

/// The shipped official schedules, used when `[calendar] include` is not given.
const BUILTIN_SCHEDULES: &[(&str, &str)] = &[
    (
        "(built-in) calendar/vn-2025.toml",
        include_str!("../../config/calendar/vn-2025.toml"),
    ),
    (
        "(built-in) calendar/vn-2026.toml",
        include_str!("../../config/calendar/vn-2026.toml"),
    ),
];

pub(super) fn build_calendar(
    diags: &mut Diagnostics,
    src: &Source,
    raw: &RawCalendar,
    base: &Path,
    today: NaiveDate,
) -> Calendar {
    let mut schedules: Vec<Schedule> = Vec::new();
    let mut add = |diags: &mut Diagnostics,
                   path: PathBuf,
                   text: String,
                   span: Option<std::ops::Range<usize>>| {
        if let Some(s) = read_schedule(diags, path, text) {
            if let Some(prev) = schedules.iter().find(|p| p.year == s.year) {
                let msg = tr!(
                    "two official schedules for {year}: `{first}` and `{second}`",
                    year = s.year,
                    first = prev.file.display(),
                    second = s.file.display()
                );
                match span {
                    Some(sp) => diags.error(src, sp, msg),
                    None => diags.file_error(&s.file, msg),
                }
            } else {
                schedules.push(s);
            }
        }
    };
    match &raw.include {
        None => {
            for (name, text) in BUILTIN_SCHEDULES {
                add(diags, PathBuf::from(name), (*text).to_string(), None);
            }
        }
        Some(list) => {
            for inc in list {
                let path = rel(base, &inc.v);
                match std::fs::read_to_string(&path) {
                    Ok(text) => add(diags, path, text, Some(inc.span.clone())),
                    Err(e) => diags.error(
                        src,
                        inc.span.clone(),
                        tr!(
                            "cannot read calendar schedule `{file}`: {e} (looked at {path})",
                            file = inc.v,
                            e,
                            path = path.display()
                        ),
                    ),
                }
            }
        }
    }
    let local = |list: &[(At<NaiveDate>, Option<String>)], working: bool| -> Vec<DayEntry> {
        list.iter()
            .map(|(d, reason)| DayEntry {
                date: d.v,
                working,
                reason: reason.clone().unwrap_or_else(|| {
                    if working {
                        "ngày làm việc (cấu hình địa phương)".into()
                    } else {
                        "ngày nghỉ (cấu hình địa phương)".into()
                    }
                }),
                source: None,
            })
            .collect()
    };
    let mut local_days = local(&raw.days_off, false);
    local_days.extend(local(&raw.working_days, true));
    for (d, _) in &raw.days_off {
        if raw.working_days.iter().any(|(w, _)| w.v == d.v) {
            diags.error(
                src,
                d.span.clone(),
                tr!(
                    "{date} is listed both in `days_off` and `working_days`",
                    date = d.v
                ),
            );
        }
    }
    if raw.statutory {
        // A coming year with no announcement runs on the statutory estimate: say so.
        for year in [today.year(), today.year() + 1] {
            let within = NaiveDate::from_ymd_opt(year, 1, 1)
                .is_some_and(|jan1| (jan1 - today).num_days() <= 365);
            if within && !schedules.iter().any(|s| s.year == year) {
                diags.file_warning(
                    &src.path,
                    tr!(
                        "no official calendar schedule for {year}: its holidays are the statutory estimate (Tết, Quốc khánh and day swaps may differ); add `calendar/vn-{year}.toml` when the government announces it",
                        year
                    ),
                );
            }
        }
    }
    Calendar::new(CalendarSpec {
        weekend: raw.weekend,
        statutory: raw.statutory,
        schedules,
        local: local_days,
    })
}

/// Reads an official yearly schedule file (`config/calendar/vn-2026.toml`).
pub(super) fn read_schedule(
    diags: &mut Diagnostics,
    path: PathBuf,
    text: String,
) -> Option<Schedule> {
    let src = Source::new(path.clone(), text);
    let (root, errs) = DeTable::parse_recoverable(&src.text);
    if syntax_errors(&src, diags, errs) {
        return None;
    }
    let mut cx = Cx { src: &src, diags };
    let mut t = Tbl::new(root.get_ref(), 0..0, "");
    let year = t.int(&mut cx, "year");
    if year.is_none() && !t.has("year") {
        t.missing(&mut cx, "year");
    }
    let source = t.str(&mut cx, "source").map(|s| s.v);
    let mut entries = Vec::new();
    for (key, working) in [("off", false), ("work", true)] {
        for mut e in t.tables(&mut cx, key) {
            let date = e.date(&mut cx, "date");
            let from = e.date(&mut cx, "from");
            let to = e.date(&mut cx, "to");
            let reason = e.req_str(&mut cx, "reason");
            let esource = e.str(&mut cx, "source").map(|s| s.v);
            let days: Vec<At<NaiveDate>> = match (date, from, to) {
                (Some(d), None, None) => vec![d],
                (None, Some(f), Some(t)) if f.v <= t.v => {
                    // A range stays within the schedule's year. Said once, at the end that
                    // leaves it: `to = "4052-01-04"` is one typo, not a diagnostic for each
                    // of its 740 000 days.
                    let outside = [&f, &t].into_iter().find_map(|d| {
                        let y = year.as_ref()?;
                        (i64::from(d.v.year()) != y.v).then_some((d, y.v))
                    });
                    match (outside, &year) {
                        (Some((d, y)), _) => {
                            cx.error(
                                d.span.clone(),
                                tr!(
                                    "{date} is not in {year}, the year of this schedule",
                                    date = d.v,
                                    year = y
                                ),
                            );
                            vec![]
                        }
                        // Without a year nothing is recorded (an error says why).
                        (None, None) => vec![],
                        (None, Some(_)) => {
                            f.v.iter_days()
                                .take_while(|d| *d <= t.v)
                                .map(|d| At::new(d, f.span.clone()))
                                .collect()
                        }
                    }
                }
                (None, Some(_), Some(t)) => {
                    cx.error(t.span, tr!("`to` is before `from`"));
                    vec![]
                }
                _ => {
                    cx.error(
                        e.span.clone(),
                        tr!(
                            "each `[[{key}]]` takes either `date`, or `from` and `to`",
                            key
                        ),
                    );
                    vec![]
                }
            };
            if let (Some(reason), Some(y)) = (reason, &year) {
                for d in days {
                    if i64::from(d.v.year()) != y.v {
                        cx.error(
                            d.span.clone(),
                            tr!(
                                "{date} is not in {year}, the year of this schedule",
                                date = d.v,
                                year = y.v
                            ),
                        );
                        continue;
                    }
                    entries.push(DayEntry {
                        date: d.v,
                        working,
                        reason: reason.v.clone(),
                        source: esource.clone().or_else(|| source.clone()),
                    });
                }
            }
            e.finish(&mut cx);
        }
    }
    t.finish(&mut cx);
    let year = i32::try_from(year?.v).ok()?;
    Some(Schedule {
        year,
        file: path,
        source,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzzer's finding: a range reaching two thousand years past its schedule's year
    /// took 14 s and a diagnostic for each of its days. Now one error, at the end outside.
    #[test]
    fn a_range_leaving_its_year_is_one_error_at_that_end() {
        let text = "year = 2026\nsource = \"x\"\n\n[[off]]\nfrom = \"2026-01-03\"\nto = \"4052-01-04\"\nreason = \"Tết\"\n\n[[off]]\nfrom = \"2025-12-31\"\nto = \"2026-01-01\"\nreason = \"Tết\"\n";
        let diags = crate::config::check_schedule(Path::new("vn-2026.toml"), text.into());
        let said: Vec<(String, Option<(usize, usize)>)> = diags
            .iter()
            .map(|d| (d.message.clone(), d.position))
            .collect();
        assert_eq!(
            said,
            [
                (
                    "4052-01-04 is not in 2026, the year of this schedule".to_string(),
                    Some((6, 6))
                ),
                (
                    "2025-12-31 is not in 2026, the year of this schedule".to_string(),
                    Some((10, 8))
                ),
            ]
        );
    }
}
