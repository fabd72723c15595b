//! Rules → occurrences → obligations → steps. Pure: the heart of the product.
//!
//! For each rule and each of its periods this computes the deadline instant, the last day
//! (moved off a day off per the policy's `on_day_off`), and the reminder steps (docs/config.md, "How deadlines are computed").
//! Steps depend only on the rule and the period, so they are computed once per occurrence and
//! shared by its obligations (one per unit that owes it). `plan`, `check` and the daemon all
//! use this module; it reads no clock and touches no file.

pub mod due;
mod period;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Offset as _, TimeZone};
use chrono_tz::Tz;

use crate::calendar::{Calendar, days_in_month};
use crate::config::{Config, Due, DueDay, Offset, OffsetUnit, OnDayOff, Policy, Rule};
pub use period::Period;

pub use crate::state::StepKind;

/// The name of a step: `before-7d`, `due`, `after-3wd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepName {
    /// Before, due or after.
    pub kind: StepKind,
    /// The policy offset (none for `due`).
    pub offset: Option<crate::config::Offset>,
}

impl std::fmt::Display for StepName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.kind, self.offset) {
            (StepKind::Before, Some(o)) => write!(f, "before-{o}"),
            (StepKind::After, Some(o)) => write!(f, "after-{o}"),
            _ => f.write_str("due"),
        }
    }
}

/// One reminder of an occurrence, the same for each unit that owes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its name.
    pub name: StepName,
    /// When it is sent.
    pub at: DateTime<Tz>,
    /// From the policy's `escalate_from` on: escalation contacts are copied.
    pub escalate: bool,
}

/// One rule in one period, with one deadline.
#[derive(Debug, Clone)]
pub struct Occurrence {
    /// Index into `config.rules`.
    pub rule: usize,
    /// The period it covers.
    pub period: Period,
    /// The day the rule names ("trước ngày 05" → the 5th).
    pub due_day: NaiveDate,
    /// The deadline instant (after an `on_day_off = "later"` extension).
    pub deadline: DateTime<Tz>,
    /// The last calendar day before the deadline, moved per `on_day_off`.
    pub last_day: NaiveDate,
    /// The steps, in time order, merged where two fall on one instant.
    pub steps: Vec<Step>,
}

impl Occurrence {
    /// `rule/period`, e.g. `bao-cao-6-thang/2025-H1`.
    pub fn key(&self, cfg: &Config) -> String {
        format!("{}/{}", cfg.rules[self.rule].id, self.period)
    }

    /// The key of its obligation for unit `unit` (index into `config.units`):
    /// `rule/period/unit`, what the database and the acknowledgement tokens key on.
    pub fn obligation_key(&self, cfg: &Config, unit: usize) -> String {
        format!(
            "{}/{}/{}",
            cfg.rules[self.rule].id, self.period, cfg.units[unit].id
        )
    }
}

/// One occurrence for one unit: the thing that is reminded, acknowledged, done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Obligation {
    /// Index into [`Plan::occurrences`].
    pub occurrence: u32,
    /// Index into `config.units`.
    pub unit: u32,
}

/// Which occurrences a plan covers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Only this unit's obligations.
    pub unit: Option<usize>,
    /// Only this rule.
    pub rule: Option<usize>,
}

/// The occurrences and obligations that touch a window of days.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Sorted by deadline, then rule order.
    pub occurrences: Vec<Occurrence>,
    /// Grouped by occurrence, in unit order.
    pub obligations: Vec<Obligation>,
}

/// A local date and time as an instant. A time that does not exist (a DST change or a
/// zone's change of day skipped it) is read with the offset in force just before the
/// jump, as the clock would have shown it had it not jumped: it moves forward by the
/// length of the gap, 02:30 to 03:30 when the clock jumps from 02:00 to 03:00, and 08:00
/// on a day a zone skipped altogether (Samoa went from 29 to 31 December 2011) to 08:00
/// the next day; never back in time.
pub fn local(tz: Tz, date: NaiveDate, time: NaiveTime) -> DateTime<Tz> {
    let ndt = date.and_time(time);
    if let Some(at) = tz.from_local_datetime(&ndt).earliest() {
        return at;
    }
    // The last whole hour before the gap that exists gives the offset in force before it
    // (gaps are at most a day); past that, read the time as UTC.
    let before = (1..=48).find_map(|h| {
        tz.from_local_datetime(&(ndt - Duration::hours(h)))
            .earliest()
    });
    let offset = before.map_or(0, |b| b.offset().fix().local_minus_utc());
    tz.from_utc_datetime(&(ndt - Duration::seconds(i64::from(offset))))
}

/// The day a rule names for a period ("day 5 of the month after the period").
pub fn due_day(rule: &Rule, period: &Period) -> Option<NaiveDate> {
    match rule.due {
        Due::Once { date, .. } => Some(date),
        Due::Periodic {
            months_after, day, ..
        } => {
            let (y, m) = period.last_month();
            let idx = y * 12 + (m as i32 - 1) + months_after as i32;
            let (y, m) = (idx.div_euclid(12), idx.rem_euclid(12) as u32 + 1);
            let last = days_in_month(y, m);
            let d = match day {
                DueDay::Last => last,
                DueDay::Day(n) => n.min(last),
            };
            NaiveDate::from_ymd_opt(y, m, d)
        }
    }
}

/// Computes one occurrence: deadline, last day and steps.
pub fn occurrence(cfg: &Config, rule_idx: usize, period: Period) -> Option<Occurrence> {
    let rule = &cfg.rules[rule_idx];
    let policy = &cfg.policies[rule.policy];
    let tz = cfg.organization.timezone;
    let cal = &cfg.calendar;
    let due_day = due_day(rule, &period)?;
    let (before, time) = match rule.due {
        Due::Once { before, time, .. } | Due::Periodic { before, time, .. } => (before, time),
    };
    let mut deadline = match (before, time) {
        (true, _) => local(tz, due_day, NaiveTime::MIN),
        (false, Some(t)) => local(tz, due_day, t),
        (false, None) => local(tz, due_day.succ_opt()?, NaiveTime::MIN),
    };
    // The last day is the last calendar day before the deadline.
    let mut last_day = (deadline - Duration::seconds(1)).date_naive();
    if !cal.is_working(last_day) {
        match policy.on_day_off {
            OnDayOff::Earlier => last_day = cal.prev_working(last_day),
            OnDayOff::Later => {
                last_day = cal.next_working(last_day);
                deadline = local(tz, last_day.succ_opt()?, NaiveTime::MIN);
            }
            OnDayOff::Keep => {}
        }
    }
    let steps = steps(cal, tz, policy, deadline, last_day);
    Some(Occurrence {
        rule: rule_idx,
        period,
        due_day,
        deadline,
        last_day,
        steps,
    })
}

/// The steps of an occurrence (docs/config.md, "How deadlines are computed"): day steps at `send_time` moved off days off
/// (earlier for before/due, later for after), `h`/`m` steps from the deadline instant; a
/// reminder at or after the deadline, or an overdue notice at or before it, is dropped; two
/// steps on one instant are one (the later step in policy order wins).
pub fn steps(
    cal: &Calendar,
    tz: Tz,
    policy: &Policy,
    deadline: DateTime<Tz>,
    last_day: NaiveDate,
) -> Vec<Step> {
    let at_day = |d: NaiveDate| local(tz, d, policy.send_time);
    // Day steps at `send_time` on a working day (the one before a day off for reminders,
    // the one after it for overdue notices); `h`/`m` steps from the deadline instant.
    let instant = |kind: StepKind, offset: Option<Offset>| -> Option<DateTime<Tz>> {
        let after = kind == StepKind::After;
        let working = |d: NaiveDate| {
            at_day(if after {
                cal.working_on_or_after(d)
            } else {
                cal.working_on_or_before(d)
            })
        };
        let Some(o) = offset else {
            return Some(working(last_day)); // the due step
        };
        let sign = if after { 1 } else { -1 };
        match o.unit {
            OffsetUnit::Days => {
                let days = chrono::Days::new(o.n.into());
                let d = if after {
                    last_day.checked_add_days(days)
                } else {
                    last_day.checked_sub_days(days)
                };
                d.map(working)
            }
            OffsetUnit::WorkingDays => Some(working(cal.shift_working(last_day, o.n, after))),
            OffsetUnit::Hours => Some(deadline + Duration::hours(sign * i64::from(o.n))),
            OffsetUnit::Minutes => Some(deadline + Duration::minutes(sign * i64::from(o.n))),
        }
    };
    // In policy order: the order decides which of two steps on one instant wins.
    let candidates = policy
        .before
        .iter()
        .map(|o| (StepKind::Before, Some(*o), false))
        .chain(policy.on_due.then_some((StepKind::Due, None, false)))
        .chain(policy.after.iter().enumerate().map(|(i, o)| {
            let escalate = policy.escalate_from.is_some_and(|e| i >= e);
            (StepKind::After, Some(*o), escalate)
        }));
    let mut out: Vec<(DateTime<Tz>, usize, Step)> = Vec::new();
    for (seq, (kind, offset, escalate)) in candidates.enumerate() {
        let Some(at) = instant(kind, offset) else {
            continue;
        };
        // A reminder at or after the deadline, or an overdue notice at or before it, is
        // dropped.
        let in_place = if kind == StepKind::After {
            at > deadline
        } else {
            at < deadline
        };
        if in_place {
            let name = StepName { kind, offset };
            out.push((at, seq, Step { name, at, escalate }));
        }
    }
    out.sort_by_key(|(at, seq, _)| (*at, *seq));
    // Keep the last of each run of equal instants: the later step's name wins.
    let mut merged: Vec<Step> = Vec::with_capacity(out.len());
    for (at, _, step) in out {
        match merged.last_mut() {
            Some(prev) if prev.at == at => *prev = step,
            _ => merged.push(step),
        }
    }
    merged
}

/// True when an occurrence of `rule` with this due day is owed, per the rule's `active` bounds
/// (compared with the day the rule names).
fn active(rule: &Rule, due_day: NaiveDate) -> bool {
    rule.active_from.is_none_or(|f| due_day >= f) && rule.active_until.is_none_or(|u| due_day <= u)
}

/// The days an occurrence touches: from its first step (or its last day, if earlier) to
/// the later of its last step and its last day.
fn span(occ: &Occurrence) -> (NaiveDate, NaiveDate) {
    let first = occ
        .steps
        .first()
        .map_or(occ.last_day, |s| s.at.date_naive())
        .min(occ.last_day);
    let last = occ
        .steps
        .last()
        .map_or(occ.last_day, |s| s.at.date_naive())
        .max(occ.last_day);
    (first, last)
}

/// Every occurrence whose days touch `from..=to` (from its first step, or its last day if
/// earlier, to the later of its last step and its last day). Sorted by deadline, then
/// rule order.
///
/// A periodic rule's periods are walked out from the window year by year, backwards from
/// the year of `from` and forwards from the next, each way until two whole years of
/// occurrences lie beyond the window. An occurrence's days move forward with its period
/// (a later period has a later due day, so a last day and deadline no earlier than an
/// earlier period's, and the steps keep their offsets from them), so no year further out
/// can reach back in; the second year is a margin for the steps dropped next to the
/// deadline. A fixed span of years (two before, three after, once) missed the occurrences
/// that a long step brought into the window (`after = ["1000wd"]` is four years) or a
/// deadline moved by `on_day_off = "later"` past a long run of days off.
pub fn occurrences(
    cfg: &Config,
    from: NaiveDate,
    to: NaiveDate,
    filter: Filter,
) -> Vec<Occurrence> {
    let mut occurrences = Vec::new();
    for (ri, rule) in cfg.rules.iter().enumerate() {
        if filter.rule.is_some_and(|r| r != ri) {
            continue;
        }
        if filter
            .unit
            .is_some_and(|u| rule.units.binary_search(&u).is_err())
        {
            continue;
        }
        // Takes the periods' occurrences that touch the window; true when all of them lie
        // beyond it on the side `after` says (vacuously for a year without a period).
        let mut take = |periods: Vec<Period>, after: bool| -> bool {
            let mut beyond = true;
            for p in periods {
                let Some(occ) = occurrence(cfg, ri, p) else {
                    continue;
                };
                let (first, last) = span(&occ);
                beyond &= if after { first > to } else { last < from };
                if first <= to && last >= from && active(rule, occ.due_day) {
                    occurrences.push(occ);
                }
            }
            beyond
        };
        match rule.due {
            Due::Once { date, .. } => {
                take(vec![Period::Once(date)], true);
            }
            Due::Periodic { .. } => {
                let year = |y| Period::of_year(rule.period, y, &rule.which);
                for after in [false, true] {
                    let mut y = if after { from.year() + 1 } else { from.year() };
                    let mut quiet = 0;
                    // Ends: past the years chrono knows, a year has no occurrence.
                    while quiet < 2 {
                        quiet = if take(year(y), after) { quiet + 1 } else { 0 };
                        y += if after { 1 } else { -1 };
                    }
                }
            }
        }
    }
    occurrences.sort_by_key(|o| (o.deadline, o.rule));
    occurrences
}

/// Every occurrence whose days touch `from..=to`, with its obligations (see [`occurrences`]).
pub fn plan(cfg: &Config, from: NaiveDate, to: NaiveDate, filter: Filter) -> Plan {
    let occurrences = occurrences(cfg, from, to, filter);
    let mut obligations = Vec::new();
    for (oi, occ) in occurrences.iter().enumerate() {
        let units = &cfg.rules[occ.rule].units;
        match filter.unit {
            Some(u) => obligations.push(Obligation {
                occurrence: oi as u32,
                unit: u as u32,
            }),
            None => obligations.extend(units.iter().map(|&u| Obligation {
                occurrence: oi as u32,
                unit: u as u32,
            })),
        }
    }
    Plan {
        occurrences,
        obligations,
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
