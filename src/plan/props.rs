//! Property tests of deadlines, steps and plans (docs/config.md, "How deadlines are
//! computed"), over generated configs: random weekends, statutory holidays on or off, the
//! official schedules in or out, random local days off (single days, blocks of days, now and
//! then years of them) and working days, one to three random policies and rules, in random
//! years of the calendar's range (half the time around the official schedules' years), in
//! Vietnam's time zone or, now and then, one with daylight saving time.
//!
//! A generated config is TOML text read by the real loader (`testutil::config`, which fails
//! on any error), so every case is a config `check` accepts, and a failing case prints that
//! text: paste it into a file and run `nhacviec plan` on it. The properties read only what
//! the loaded config says (its policies, rules and calendar), never the generator's choices.
//!
//! Each property runs [`CASES`] cases in the normal suite (the costliest half as many);
//! `PROPTEST_CASES=2000 cargo test --lib plan::props` runs more. A failing case is saved beside this file
//! (`props.regressions`) and replayed first at the next run; a bug it found is fixed in the
//! product and pinned by a table test in `tests.rs`.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use chrono::{DateTime, Days, Duration, NaiveDate, NaiveTime};
use chrono_tz::Tz;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, TestCaseError};

use super::*;
use crate::config::{Config, Due, DueDay, OffsetUnit, OnDayOff};

/// Cases per property in the normal suite: each property takes about a second or less
/// (a debug build).
const CASES: u32 = 64;

/// `cases` cases, or `PROPTEST_CASES` when set (a longer hunt), with failures saved
/// beside this file.
fn proptest_config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// What a property runs on: a config's text and a window of days split in two.
#[derive(Clone)]
struct Scenario {
    /// The unit tests' ward with a generated `[calendar]`, policies and rules.
    toml: String,
    /// The window, `from..=to`, at least two days long.
    from: NaiveDate,
    to: NaiveDate,
    /// The last day of the window's first half: `from..=split`, then `split + 1..=to`.
    split: NaiveDate,
    /// A plan filter: one unit (index into the ward's four units) and/or one rule.
    unit: Option<usize>,
    rule: Option<usize>,
}

impl fmt::Debug for Scenario {
    /// The config as a file, so a failing case can be pasted into one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "window {}..={} split after {}, filter unit {:?} rule {:?}, config:",
            self.from, self.to, self.split, self.unit, self.rule
        )?;
        f.write_str(&self.toml)
    }
}

fn jan1(year: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, 1, 1).unwrap()
}

/// Days in the span that dates of a scenario fall in: the year before its base year to
/// the year after.
const SPAN: u64 = 3 * 366;

/// A string list as TOML.
fn list<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|x| format!("\"{x}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// `[calendar]`: a weekend (Saturday and Sunday half of the time, else any set but all
/// seven days), statutory holidays or none, the official schedules or none, blocks of
/// local days off (mostly up to 12 days, sometimes up to 1 000: longer than any search
/// once looked) and single local working days within `start + SPAN`.
fn calendar_section(start: NaiveDate) -> impl Strategy<Value = String> {
    let weekend = prop_oneof![Just(0b110_0000u8), 0u8..0b111_1111];
    (
        weekend,
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(
            (0..SPAN, prop_oneof![4 => 1u64..=12, 1 => 1u64..=1000]),
            0..6,
        ),
        prop::collection::vec(0..SPAN, 0..10),
    )
        .prop_map(move |(mask, statutory, official, blocks, working)| {
            const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
            let weekend = (0..7).filter(|i| mask & (1 << i) != 0).map(|i| NAMES[i]);
            let off: BTreeSet<NaiveDate> = blocks
                .iter()
                .flat_map(|&(at, len)| (at..at + len).map(|k| start + Days::new(k)))
                .collect();
            let working: BTreeSet<NaiveDate> = working
                .iter()
                .map(|&k| start + Days::new(k))
                .filter(|d| !off.contains(d))
                .collect();
            let mut s = format!("\n[calendar]\nweekend = {}\n", list(weekend));
            s += if statutory {
                "holidays = \"vn\"\n"
            } else {
                "holidays = \"none\"\n"
            };
            if !official {
                s += "include = []\n";
            }
            s += &format!(
                "days_off = {}\nworking_days = {}\n",
                list(off),
                list(working)
            );
            s
        })
}

/// A step offset: mostly small `d`, `wd`, `h`, `m`; now and then up to the limit of 1000
/// (`1000wd` reaches years away); `0` too (a warning, not an error).
fn offset() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (0u32..=30).prop_map(|n| format!("{n}d")),
        12 => (0u32..=20).prop_map(|n| format!("{n}wd")),
        8 => (0u32..=72).prop_map(|n| format!("{n}h")),
        4 => (0u32..=1000).prop_map(|n| format!("{n}m")),
        3 => (0u32..=1000, select(vec!["d", "wd", "h", "m"]))
            .prop_map(|(n, u)| format!("{n}{u}")),
    ]
}

/// `HH:MM`.
fn time_of_day() -> impl Strategy<Value = String> {
    (0u32..24, 0u32..60).prop_map(|(h, m)| format!("{h:02}:{m:02}"))
}

/// `[policy.pI]` with every key given (offsets may repeat: a warning, sent once).
fn policy_section(i: usize) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(offset(), 0..6),
        any::<bool>(),
        prop::collection::vec(offset(), 0..5),
        prop::option::of(any::<prop::sample::Index>()),
        time_of_day(),
        select(vec!["earlier", "later", "keep"]),
    )
        .prop_map(move |(before, on_due, after, escalate, send_time, on_day_off)| {
            let mut s = format!(
                "\n[policy.p{i}]\nbefore = {}\non_due = {on_due}\nafter = {}\nsend_time = \"{send_time}\"\non_day_off = \"{on_day_off}\"\n",
                list(&before),
                list(&after)
            );
            if let Some(e) = escalate.filter(|_| !after.is_empty()) {
                s += &format!("escalate_from = \"{}\"\n", e.get(&after));
            }
            s
        })
}

/// The `due` table of a rule with periods of `period` (dates of a one-off within
/// `start + SPAN`): `before = true`, a `time`, or neither.
fn due(period: &'static str, start: NaiveDate) -> impl Strategy<Value = String> {
    let tail = prop_oneof![
        Just(String::new()),
        Just(", before = true".to_string()),
        time_of_day().prop_map(|t| format!(", time = \"{t}\"")),
    ];
    let head = if period == "once" {
        (0..SPAN)
            .prop_map(move |k| format!("date = \"{}\"", start + Days::new(k)))
            .boxed()
    } else {
        let month = prop_oneof![
            Just("\"last\"".to_string()),
            Just("\"next\"".to_string()),
            (0u32..=12).prop_map(|n| n.to_string()),
        ];
        let day = prop_oneof![
            Just("\"last\"".to_string()),
            (1u32..=31).prop_map(|n| n.to_string()),
        ];
        (month, day)
            .prop_map(|(m, d)| format!("month = {m}, day = {d}"))
            .boxed()
    };
    (head, tail).prop_map(|(h, t)| format!("due = {{ {h}{t} }}"))
}

/// A `[[rule]]` `r{i}`: any period, a random `which`, due day, units (some of the ward's,
/// or all), policy (one of `policies` generated ones, or the built-in default) and `active`
/// bounds within `start + SPAN`.
fn rule_section(i: usize, policies: usize, start: NaiveDate) -> impl Strategy<Value = String> {
    let period = select(vec![
        ("month", 12u32),
        ("quarter", 4),
        ("half-year", 2),
        ("nine-months", 0),
        ("year", 0),
        ("once", 0),
    ]);
    period
        .prop_flat_map(move |(period, max)| {
            let which = if max == 0 {
                Just(String::new()).boxed()
            } else {
                prop_oneof![
                    Just(String::new()),
                    subsequence((1..=max).collect::<Vec<u32>>(), 1..=max as usize)
                        .prop_map(|w| format!("which = {w:?}\n")),
                ]
                .boxed()
            };
            let units = prop_oneof![
                Just(list(["all"])),
                subsequence(vec!["vhxh", "vp", "kt", "lanh-dao"], 1..=4).prop_map(list),
            ];
            let policy = prop::option::of(0..policies);
            let day = move |k: u64| start + Days::new(k);
            let active = prop_oneof![
                2 => Just(String::new()),
                1 => (0..SPAN, 0..SPAN).prop_map(move |(a, b)| format!(
                    "active = {{ from = \"{}\", until = \"{}\" }}\n",
                    day(a.min(b)),
                    day(a.max(b))
                )),
                1 => (0..SPAN).prop_map(move |a| format!("active = {{ from = \"{}\" }}\n", day(a))),
                1 => (0..SPAN).prop_map(move |a| format!("active = {{ until = \"{}\" }}\n", day(a))),
            ];
            (
                Just(period),
                which,
                due(period, start),
                units,
                policy,
                active,
            )
        })
        .prop_map(move |(period, which, due, units, policy, active)| {
            let policy = policy.map(|p| format!("policy = \"p{p}\"\n")).unwrap_or_default();
            let fields =
                format!("period = \"{period}\"\n{which}{due}\nunits = {units}\n{policy}{active}");
            crate::testutil::rule(&format!("r{i}"), "Báo cáo", &fields)
        })
}

/// A whole scenario: a base year (any of the calendar's range, with a margin for the
/// window, or 2024–2027 around the official schedules), a time zone (mostly Vietnam's;
/// Berlin's DST at 02:00 and São Paulo's, which skipped midnight), the sections above, a
/// window starting in the base year (2 to 40 days, or up to 1 200), and a filter.
fn scenario() -> impl Strategy<Value = Scenario> {
    let base = prop_oneof![1901i32..=2096, 2024i32..=2027];
    let tz = prop_oneof![
        6 => Just("Asia/Ho_Chi_Minh"),
        1 => Just("Europe/Berlin"),
        1 => Just("America/Sao_Paulo"),
    ];
    (base, tz, 1usize..=3, 1usize..=3)
        .prop_flat_map(|(base, tz, policies, rules)| {
            let start = jan1(base - 1);
            let policy_sections: Vec<_> = (0..policies).map(policy_section).collect();
            let rule_sections: Vec<_> = (0..rules)
                .map(|i| rule_section(i, policies, start))
                .collect();
            (
                Just((base, tz)),
                calendar_section(start),
                policy_sections,
                rule_sections,
                (0u64..366, prop_oneof![1u64..40, 1u64..1200]),
                any::<prop::sample::Index>(),
                prop::option::of(0..4usize),
                prop::option::of(0..rules),
            )
        })
        .prop_map(
            |((base, tz), calendar, policies, rules, (from, len), split, unit, rule)| {
                let org = format!("timezone = \"{tz}\"");
                let extra = format!("{calendar}{}{}", policies.concat(), rules.concat());
                let from = jan1(base) + Days::new(from);
                Scenario {
                    toml: crate::testutil::ward(&org, &extra),
                    from,
                    to: from + Days::new(len),
                    split: from + Days::new(split.index(len as usize) as u64),
                    unit,
                    rule,
                }
            },
        )
}

/// Runs `check` on every occurrence of every rule whose days touch the scenario's window,
/// naming the occurrence in a failure.
fn each_occurrence(
    s: &Scenario,
    check: impl Fn(&Config, &Occurrence) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let cfg = crate::testutil::config(&s.toml);
    for occ in occurrences(&cfg, s.from, s.to, Filter::default()) {
        check(&cfg, &occ).map_err(|e| {
            let steps: Vec<String> = occ
                .steps
                .iter()
                .map(|x| format!("{} {}", x.name, x.at.to_rfc3339()))
                .collect();
            TestCaseError::fail(format!(
                "{} (deadline {}, last day {}, steps {steps:?}): {e}",
                occ.key(&cfg),
                occ.deadline.to_rfc3339(),
                occ.last_day
            ))
        })?;
    }
    Ok(())
}

/// The working days of `first..=last` (none when `last < first`).
fn working_days_in(cal: &crate::calendar::Calendar, first: NaiveDate, last: NaiveDate) -> usize {
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .filter(|d| cal.is_working(*d))
        .count()
}

/// The day at whose `send_time` (as [`local`] makes it an instant) `at` is, if any.
fn send_day(tz: Tz, send_time: NaiveTime, at: DateTime<Tz>) -> Option<NaiveDate> {
    let day = at.date_naive();
    // A send time that a DST change skips moves forward, possibly past midnight.
    [Some(day), day.pred_opt()]
        .into_iter()
        .flatten()
        .find(|&d| local(tz, d, send_time) == at)
}

/// Whether the step is sent on a day at `send_time` (`due`, `d`, `wd`), not at an instant
/// counted from the deadline (`h`, `m`).
fn is_day_step(name: StepName) -> bool {
    name.offset
        .is_none_or(|o| matches!(o.unit, OffsetUnit::Days | OffsetUnit::WorkingDays))
}

/// The deadline and the last day the rule names, before `on_day_off` moves anything: the
/// due day at 00:00 (`before = true`), at its `time`, or at its end; and the day before
/// that instant.
fn nominal(cfg: &Config, occ: &Occurrence) -> (DateTime<Tz>, NaiveDate) {
    let tz = cfg.organization.timezone;
    let (before, time) = match cfg.rules[occ.rule].due {
        Due::Once { before, time, .. } | Due::Periodic { before, time, .. } => (before, time),
    };
    let deadline = match (before, time) {
        (true, _) => local(tz, occ.due_day, NaiveTime::MIN),
        (false, Some(t)) => local(tz, occ.due_day, t),
        (false, None) => local(tz, occ.due_day + Days::new(1), NaiveTime::MIN),
    };
    (deadline, (deadline - Duration::seconds(1)).date_naive())
}

proptest! {
    #![proptest_config(proptest_config(CASES))]

    /// Every `due`, `d` and `wd` step is sent at `send_time` on a working day, and a `d`
    /// step on the working day nearest its nominal day (the last day minus or plus N
    /// calendar days) on the side away from the deadline: no working day lies between
    /// the two. Every `h` and `m` step is exactly N hours or minutes before or after the
    /// deadline instant.
    #[test]
    fn steps_land_on_working_days_at_send_time(s in scenario()) {
        each_occurrence(&s, |cfg, occ| {
            let policy = &cfg.policies[cfg.rules[occ.rule].policy];
            let (tz, cal) = (cfg.organization.timezone, &cfg.calendar);
            for step in &occ.steps {
                let after = step.name.kind == StepKind::After;
                if !is_day_step(step.name) {
                    let o = step.name.offset.unwrap();
                    let n = i64::from(o.n) * if after { 1 } else { -1 };
                    let delta = match o.unit {
                        OffsetUnit::Hours => Duration::hours(n),
                        _ => Duration::minutes(n),
                    };
                    prop_assert_eq!(step.at, occ.deadline + delta, "{}", step.name);
                    continue;
                }
                let day = send_day(tz, policy.send_time, step.at);
                prop_assert!(day.is_some(), "{} at {} is not at send time {}", step.name, step.at, policy.send_time);
                let day = day.unwrap();
                prop_assert!(cal.is_working(day), "{} on {day}, a day off", step.name);
                if let Some(o) = step.name.offset.filter(|o| o.unit == OffsetUnit::Days) {
                    let n = Days::new(o.n.into());
                    let (nearest, moved) = if after {
                        let nominal = occ.last_day + n;
                        (day >= nominal, working_days_in(cal, nominal, day - Days::new(1)))
                    } else {
                        let nominal = occ.last_day - n;
                        (day <= nominal, working_days_in(cal, day + Days::new(1), nominal))
                    };
                    prop_assert!(nearest && moved == 0, "{} on {day} skips a working day", step.name);
                }
            }
            Ok(())
        })?;
    }

    /// Reminders (`before` and `due`) come before the deadline and overdue notices
    /// (`after`) after it; steps are in strictly increasing time, each name once; only
    /// `after` steps from the policy's `escalate_from` on are escalated.
    #[test]
    fn steps_are_ordered_distinct_and_on_their_side(s in scenario()) {
        each_occurrence(&s, |cfg, occ| {
            let policy = &cfg.policies[cfg.rules[occ.rule].policy];
            for step in &occ.steps {
                if step.name.kind == StepKind::After {
                    prop_assert!(step.at > occ.deadline, "{} at {} is not after the deadline", step.name, step.at);
                    let index = policy.after.iter().position(|o| Some(*o) == step.name.offset);
                    prop_assert!(index.is_some(), "{} is not a step of the policy", step.name);
                    let escalate = policy.escalate_from.is_some_and(|e| index >= Some(e));
                    prop_assert_eq!(step.escalate, escalate, "{}", step.name);
                } else {
                    prop_assert!(step.at < occ.deadline, "{} at {} is not before the deadline", step.name, step.at);
                    prop_assert!(!step.escalate, "{} is escalated", step.name);
                }
            }
            for pair in occ.steps.windows(2) {
                prop_assert!(pair[0].at < pair[1].at, "{} then {}", pair[0].name, pair[1].name);
            }
            let names: HashSet<StepName> = occ.steps.iter().map(|x| x.name).collect();
            prop_assert_eq!(names.len(), occ.steps.len());
            Ok(())
        })?;
    }

    /// A `wd` step counts working days only: `before-Nwd` is on a working day with exactly
    /// N working days from it up to the last day (the last day excluded), `after-Nwd` on
    /// a working day with exactly N working days after the last day up to it; `0wd` is the
    /// last day, or the nearest working day on the step's side when the last day is off.
    #[test]
    fn working_day_offsets_count_working_days(s in scenario()) {
        each_occurrence(&s, |cfg, occ| {
            let policy = &cfg.policies[cfg.rules[occ.rule].policy];
            let (tz, cal, last) = (cfg.organization.timezone, &cfg.calendar, occ.last_day);
            for step in &occ.steps {
                let Some(o) = step.name.offset.filter(|o| o.unit == OffsetUnit::WorkingDays) else {
                    continue;
                };
                let day = send_day(tz, policy.send_time, step.at);
                prop_assert!(day.is_some(), "{} at {}", step.name, step.at);
                let day = day.unwrap();
                prop_assert!(cal.is_working(day), "{} on {day}, a day off", step.name);
                let after = step.name.kind == StepKind::After;
                let (on_side, counted) = if after {
                    (day >= last, working_days_in(cal, last + Days::new(1), day))
                } else {
                    (day <= last, working_days_in(cal, day, last - Days::new(1)))
                };
                prop_assert!(on_side, "{} on {day}, the wrong side of {last}", step.name);
                if o.n == 0 {
                    // The nearest working day: nothing working strictly between.
                    let between = if after {
                        working_days_in(cal, last, day - Days::new(1))
                    } else {
                        working_days_in(cal, day + Days::new(1), last)
                    };
                    prop_assert_eq!(between, 0, "{} on {}", step.name, day);
                } else {
                    prop_assert_eq!(counted, o.n as usize, "{} on {}", step.name, day);
                }
            }
            Ok(())
        })?;
    }

    /// The due day is the one the rule names (day N, clamped, or the last, of the month
    /// `months_after` the period's last month; a one-off's date). From it, `on_day_off`:
    /// `later` never moves the deadline or the last day earlier, and moves them only to the
    /// end of the first working day on or after the nominal last day; `earlier` keeps the
    /// deadline and never moves the last day later, only to the last working day on or
    /// before it; `keep` moves nothing.
    #[test]
    fn on_day_off_moves_only_its_way(s in scenario()) {
        each_occurrence(&s, |cfg, occ| {
            let rule = &cfg.rules[occ.rule];
            let policy = &cfg.policies[rule.policy];
            let (tz, cal) = (cfg.organization.timezone, &cfg.calendar);
            match rule.due {
                Due::Once { date, .. } => prop_assert_eq!(occ.due_day, date),
                Due::Periodic { months_after, day, .. } => {
                    let (y, m) = occ.period.last_month();
                    let month = jan1(y)
                        .checked_add_months(chrono::Months::new(m - 1 + months_after))
                        .unwrap();
                    let last = crate::calendar::days_in_month(month.year(), month.month());
                    let want = match day {
                        DueDay::Last => last,
                        DueDay::Day(n) => n.min(last),
                    };
                    prop_assert_eq!(occ.due_day, month.with_day(want).unwrap());
                }
            }
            let (deadline, last_day) = nominal(cfg, occ);
            match policy.on_day_off {
                OnDayOff::Keep => {
                    prop_assert_eq!(occ.deadline, deadline);
                    prop_assert_eq!(occ.last_day, last_day);
                }
                OnDayOff::Earlier => {
                    prop_assert_eq!(occ.deadline, deadline);
                    prop_assert!(occ.last_day <= last_day);
                    prop_assert!(cal.is_working(occ.last_day), "last day {} is off", occ.last_day);
                    let skipped = working_days_in(cal, occ.last_day + Days::new(1), last_day);
                    prop_assert_eq!(skipped, 0, "a working day after {}", occ.last_day);
                }
                OnDayOff::Later => {
                    prop_assert!(occ.deadline >= deadline, "deadline moved earlier than {}", deadline);
                    prop_assert!(occ.last_day >= last_day);
                    prop_assert!(cal.is_working(occ.last_day), "last day {} is off", occ.last_day);
                    let skipped = working_days_in(cal, last_day, occ.last_day - Days::new(1));
                    prop_assert_eq!(skipped, 0, "a working day before {}", occ.last_day);
                    if occ.last_day != last_day {
                        let end = local(tz, occ.last_day + Days::new(1), NaiveTime::MIN);
                        prop_assert_eq!(occ.deadline, end);
                    } else {
                        prop_assert_eq!(occ.deadline, deadline);
                    }
                }
            }
            Ok(())
        })?;
    }

    /// A plan over a window is the union of the plans over its two halves (split at any
    /// day): the same occurrences, with the same deadlines, last days and steps, and the
    /// same obligations, with or without a unit or rule filter; and it lists each
    /// occurrence once, by deadline then rule order.
    #[test]
    fn plan_of_a_window_is_the_union_of_its_halves(s in scenario()) {
        type Facts = (NaiveDate, DateTime<Tz>, NaiveDate, Vec<Step>);
        type Keyed = (BTreeMap<(usize, Period), Facts>, BTreeSet<(usize, Period, u32)>);
        let cfg = crate::testutil::config(&s.toml);
        let filter = Filter { unit: s.unit, rule: s.rule };
        let keyed = |p: &Plan| -> Keyed {
            let occurrences = p
                .occurrences
                .iter()
                .map(|o| {
                    let facts = (o.due_day, o.deadline, o.last_day, o.steps.clone());
                    ((o.rule, o.period), facts)
                })
                .collect();
            let obligations = p
                .obligations
                .iter()
                .map(|ob| {
                    let o = &p.occurrences[ob.occurrence as usize];
                    (o.rule, o.period, ob.unit)
                })
                .collect();
            (occurrences, obligations)
        };
        let whole = plan(&cfg, s.from, s.to, filter);
        let first = plan(&cfg, s.from, s.split, filter);
        let second = plan(&cfg, s.split + Days::new(1), s.to, filter);
        let (whole_occ, whole_obl) = keyed(&whole);
        let (mut union_occ, mut union_obl) = keyed(&first);
        let (second_occ, second_obl) = keyed(&second);
        union_occ.extend(second_occ);
        union_obl.extend(second_obl);
        prop_assert_eq!(whole_occ.len(), whole.occurrences.len(), "an occurrence listed twice");
        prop_assert_eq!(whole_obl.len(), whole.obligations.len(), "an obligation listed twice");
        let sort_keys: Vec<_> = whole.occurrences.iter().map(|o| (o.deadline, o.rule)).collect();
        prop_assert!(sort_keys.is_sorted(), "not sorted by deadline then rule");
        prop_assert_eq!(whole_occ, union_occ);
        prop_assert_eq!(whole_obl, union_obl);
    }
}

proptest! {
    // Half as many cases: each computes the occurrences of 50 years.
    #![proptest_config(proptest_config(CASES / 2))]

    /// A plan lists exactly the occurrences whose days touch its window (from the first
    /// step, or the last day if earlier, to the later of the last step and the last day)
    /// and are owed by their `active` bounds, however far their period is from the window:
    /// checked against every period of the 25 years on either side, farther than any
    /// generated step reaches (1 000 working days of a one-day week are 19 years).
    #[test]
    fn plan_lists_every_occurrence_touching_its_window(s in scenario()) {
        let cfg = crate::testutil::config(&s.toml);
        let listed: BTreeSet<(usize, Period)> = occurrences(&cfg, s.from, s.to, Filter::default())
            .iter()
            .map(|o| (o.rule, o.period))
            .collect();
        let mut want = BTreeSet::new();
        for (ri, rule) in cfg.rules.iter().enumerate() {
            let periods = match rule.due {
                Due::Once { date, .. } => vec![Period::Once(date)],
                Due::Periodic { .. } => (s.from.year() - 25..=s.to.year() + 25)
                    .flat_map(|y| Period::of_year(rule.period, y, &rule.which))
                    .collect(),
            };
            for p in periods {
                let Some(occ) = occurrence(&cfg, ri, p) else { continue };
                let first = occ.steps.first().map_or(occ.last_day, |x| x.at.date_naive());
                let last = occ.steps.last().map_or(occ.last_day, |x| x.at.date_naive());
                let touches = first.min(occ.last_day) <= s.to && last.max(occ.last_day) >= s.from;
                let owed = rule.active_from.is_none_or(|f| occ.due_day >= f)
                    && rule.active_until.is_none_or(|u| occ.due_day <= u);
                if touches && owed {
                    want.insert((ri, p));
                }
            }
        }
        prop_assert_eq!(listed, want);
    }
}
