//! The Vietnamese working-day calendar: which days are working days, and why not.
//!
//! Three layers, later wins (docs/config.md, "The calendar"): the statutory holidays of the labour code with an
//! estimate of their compensation ([`statutory`]), the official yearly schedules that replace
//! that estimate for their year (data files such as `config/calendar/vn-2026.toml`), and the
//! local `days_off` / `working_days`. Everything here is pure: the calendar is built once from
//! data and answers questions about dates.

pub mod lunar;
pub mod statutory;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

/// The years for which the statutory estimate is computed; outside them only weekends and
/// the local layer apply. The lunar calendar is tested over this range.
pub const YEARS: std::ops::RangeInclusive<i32> = 1900..=2100;

/// Which layer decided a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// The labour code's holidays and the estimate of their compensation.
    Statutory,
    /// An official yearly schedule file.
    Official,
    /// The config's `days_off` / `working_days`.
    Local,
}

impl Layer {
    /// The name shown by `calendar`.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Statutory => "statutory",
            Layer::Official => "official",
            Layer::Local => "local",
        }
    }
}

/// One day that a layer declares off or working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayEntry {
    /// The day.
    pub date: NaiveDate,
    /// True for a (make-up) working day, false for a day off.
    pub working: bool,
    /// Why, in Vietnamese ("Tết Dương lịch", "làm bù cho thứ Sáu 02/05/2025").
    pub reason: String,
    /// Where it comes from (a law, an announcement).
    pub source: Option<String>,
}

/// An official schedule for one year, read from a data file.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The year it covers: it replaces the statutory estimate for that year.
    pub year: i32,
    /// The file it was read from.
    pub file: PathBuf,
    /// The announcement(s) it is built from.
    pub source: Option<String>,
    /// Days off and make-up working days.
    pub entries: Vec<DayEntry>,
}

/// What the calendar is built from.
#[derive(Debug, Clone)]
pub struct CalendarSpec {
    /// `weekend[i]`: weekday `i` (Monday = 0) is a weekly rest day.
    pub weekend: [bool; 7],
    /// Apply the Vietnamese statutory holidays.
    pub statutory: bool,
    /// Official yearly schedules.
    pub schedules: Vec<Schedule>,
    /// Local days off and working days.
    pub local: Vec<DayEntry>,
}

#[derive(Debug, Clone)]
struct Day {
    working: bool,
    reason: Arc<str>,
    layer: Layer,
    source: Option<Arc<str>>,
}

/// A day that differs from the plain weekday/weekend rule, as `calendar` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deviation {
    /// The day.
    pub date: NaiveDate,
    /// Whether it is a working day.
    pub working: bool,
    /// Why.
    pub reason: String,
    /// Which layer decided it.
    pub layer: Layer,
    /// Where it comes from, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The working-day calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    weekend: [bool; 7],
    /// The days of the official schedules, then the local ones (which win).
    days: HashMap<NaiveDate, Day>,
    scheduled: Vec<i32>,
    /// The statutory estimate of each year of [`YEARS`] (`None` with `holidays = "none"`),
    /// computed the first time a day of that year is asked about: a daemon needs two or three
    /// years of the two hundred, and each costs lunar computations and a few kilobytes.
    estimates: Option<Arc<[OnceLock<Days>]>>,
    /// The first and last day a layer may speak of (the listed days, and the years of the
    /// statutory estimate); `None` when none can. Outside them the weekday rule alone
    /// decides, the same every week, which is what lets a working-day search know that it
    /// will find nothing.
    known: Option<(NaiveDate, NaiveDate)>,
}

/// The days of one layer, by date.
type Days = HashMap<NaiveDate, Day>;

impl Calendar {
    /// Builds the calendar from its layers.
    pub fn new(spec: CalendarSpec) -> Calendar {
        let scheduled: Vec<i32> = spec.schedules.iter().map(|s| s.year).collect();
        let official = spec
            .schedules
            .into_iter()
            .flat_map(|s| s.entries)
            .map(|e| (e, Layer::Official));
        let local = spec.local.into_iter().map(|e| (e, Layer::Local));
        let days: HashMap<NaiveDate, Day> = official
            .chain(local)
            .map(|(e, layer)| day(e, layer))
            .collect();
        let estimates: Option<Arc<[OnceLock<Days>]>> = spec
            .statutory
            .then(|| YEARS.map(|_| OnceLock::new()).collect());
        let statutory = estimates.as_ref().and_then(|_| {
            let first = NaiveDate::from_ymd_opt(*YEARS.start(), 1, 1)?;
            Some((first, NaiveDate::from_ymd_opt(*YEARS.end(), 12, 31)?))
        });
        let known = days
            .keys()
            .map(|&d| (d, d))
            .chain(statutory)
            .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)));
        Calendar {
            weekend: spec.weekend,
            days,
            scheduled,
            estimates,
            known,
        }
    }

    /// What the layers say of `d`, if one does: local, then official, then the statutory
    /// estimate of a year without a schedule.
    fn day(&self, d: NaiveDate) -> Option<&Day> {
        if let Some(day) = self.days.get(&d) {
            return Some(day);
        }
        let year = d.year();
        if self.scheduled.contains(&year) {
            return None;
        }
        let slot = self
            .estimates
            .as_ref()?
            .get(usize::try_from(year - YEARS.start()).ok()?)?;
        slot.get_or_init(|| {
            statutory::estimate(year, &self.weekend)
                .into_iter()
                .map(|e| day(e, Layer::Statutory))
                .collect()
        })
        .get(&d)
    }

    /// The plain rule: is this a weekly rest day?
    pub fn is_weekend(&self, d: NaiveDate) -> bool {
        self.weekend[d.weekday().num_days_from_monday() as usize]
    }

    /// Is `d` a working day, all layers considered?
    pub fn is_working(&self, d: NaiveDate) -> bool {
        match self.day(d) {
            Some(day) => day.working,
            None => !self.is_weekend(d),
        }
    }

    /// Why `d` is not a working day (or is one despite being a weekend day), if a layer says.
    pub fn reason(&self, d: NaiveDate) -> Option<&str> {
        self.day(d).map(|day| &*day.reason)
    }

    /// True when an official schedule covers `year`.
    pub fn has_schedule(&self, year: i32) -> bool {
        self.scheduled.contains(&year)
    }

    /// The latest working day on or before `d`.
    pub fn working_on_or_before(&self, d: NaiveDate) -> NaiveDate {
        if self.is_working(d) {
            d
        } else {
            self.prev_working(d)
        }
    }

    /// The earliest working day on or after `d`.
    pub fn working_on_or_after(&self, d: NaiveDate) -> NaiveDate {
        if self.is_working(d) {
            d
        } else {
            self.next_working(d)
        }
    }

    /// The latest working day strictly before `d` (or `d` itself if there is none).
    pub fn prev_working(&self, d: NaiveDate) -> NaiveDate {
        self.shift_working(d, 1, false)
    }

    /// The earliest working day strictly after `d` (or `d` itself if there is none).
    pub fn next_working(&self, d: NaiveDate) -> NaiveDate {
        self.shift_working(d, 1, true)
    }

    /// The `n`-th working day after (`forward`) or before `d`; `n = 0` is `d` itself; `d`
    /// itself when there are not `n` (only with a weekend of all seven days, which `check`
    /// refuses, and too few listed working days that way).
    ///
    /// The search never gives up while a working day lies ahead, however long a run of days
    /// off the config lists (it once stopped after 400 days and returned the day off, so
    /// steps and last days fell on days off): it stops only after a whole week of days off
    /// beyond every day a layer speaks of, where that week would repeat forever.
    pub fn shift_working(&self, d: NaiveDate, n: u32, forward: bool) -> NaiveDate {
        let mut cur = d;
        let mut left = n;
        // Days off in a row just seen.
        let mut off = 0;
        while left > 0 {
            let next = if forward {
                cur.succ_opt()
            } else {
                cur.pred_opt()
            };
            let Some(next) = next else { return cur };
            cur = next;
            if self.is_working(cur) {
                left -= 1;
                off = 0;
            } else {
                off += 1;
                if off >= 7 && self.plain_beyond(cur, forward) {
                    return d;
                }
            }
        }
        cur
    }

    /// True when the week up to `d` (from `d` on, searching backwards) and every day past
    /// it in the search's direction are outside the days a layer speaks of: only the
    /// weekday rule decides there.
    fn plain_beyond(&self, d: NaiveDate, forward: bool) -> bool {
        let Some((first, last)) = self.known else {
            return true;
        };
        if forward {
            d.checked_sub_days(chrono::Days::new(6))
                .is_none_or(|start| start > last)
        } else {
            d.checked_add_days(chrono::Days::new(6))
                .is_none_or(|end| end < first)
        }
    }

    /// Every day of `year` that differs from the plain weekday/weekend rule.
    pub fn deviations(&self, year: i32) -> Vec<Deviation> {
        let Some(start) = NaiveDate::from_ymd_opt(year, 1, 1) else {
            return Vec::new();
        };
        start
            .iter_days()
            .take_while(|d| d.year() == year)
            .filter_map(|d| {
                let day = self.day(d)?;
                (day.working == self.is_weekend(d)).then(|| Deviation {
                    date: d,
                    working: day.working,
                    reason: day.reason.to_string(),
                    layer: day.layer,
                    source: day.source.as_deref().map(str::to_string),
                })
            })
            .collect()
    }
}

/// A day entry of a layer, keyed by its date.
fn day(e: DayEntry, layer: Layer) -> (NaiveDate, Day) {
    let day = Day {
        working: e.working,
        reason: e.reason.into(),
        layer,
        source: e.source.map(Into::into),
    };
    (e.date, day)
}

/// The number of days in a month.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(ny, nm, 1)
        .and_then(|d| d.pred_opt())
        .map_or(31, |d| d.day())
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
