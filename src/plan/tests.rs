//! Table-driven tests of deadlines and steps (docs/config.md, "How deadlines are computed"), on the shipped 2025–2026 calendar.
//! Every expected date was worked out by hand from the calendar; comments say how.

use chrono::NaiveDate;

use super::*;
use crate::config::Config;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The unit tests' ward with the given rule(s), policies and other sections.
fn cfg(extra: &str) -> Config {
    crate::testutil::ward_config("", extra)
}

fn rule(period: &str, due: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("policy = \"{p}\""))
        .unwrap_or_default();
    let fields = format!("period = \"{period}\"\ndue = {due}\nunits = [\"all\"]\n{policy}");
    crate::testutil::rule("r", "Báo cáo", &fields)
}

/// (step name, local "YYYY-MM-DD HH:MM", escalate)
fn steps_of(o: &Occurrence) -> Vec<(String, String, bool)> {
    o.steps
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                s.at.format("%Y-%m-%d %H:%M").to_string(),
                s.escalate,
            )
        })
        .collect()
}

fn expect(list: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    list.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
        .collect()
}

struct Case {
    name: &'static str,
    config: String,
    period: Period,
    deadline: &'static str,
    last_day: &'static str,
    steps: Option<Vec<(String, String, bool)>>,
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for c in cases {
        let config = cfg(&c.config);
        let o = occurrence(&config, 0, c.period).expect(c.name);
        let got_deadline = o.deadline.to_rfc3339();
        if got_deadline != c.deadline {
            failures.push(format!(
                "{}: deadline {got_deadline}, want {}",
                c.name, c.deadline
            ));
        }
        if o.last_day != d(c.last_day) {
            failures.push(format!(
                "{}: last day {}, want {}",
                c.name, o.last_day, c.last_day
            ));
        }
        if let Some(want) = c.steps {
            let got = steps_of(&o);
            if got != want {
                failures.push(format!(
                    "{}: steps\n  got  {got:?}\n  want {want:?}",
                    c.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

const NEXT_5_BEFORE: &str = r#"{ month = "next", day = 5, before = true }"#;

#[test]
fn worked_examples_of_the_design() {
    run(vec![
        Case {
            name: "bao-cao-6-thang/2025-H1",
            config: rule("half-year", NEXT_5_BEFORE, None),
            period: Period::Half(2025, 1),
            deadline: "2025-07-05T00:00:00+07:00",
            last_day: "2025-07-04",
            // 3wd back from Fri 04/07: Thu 03, Wed 02, Tue 01. 7wd after: 07,08,09,10,11,14,15.
            steps: Some(expect(&[
                ("before-14d", "2025-06-20 08:00", false),
                ("before-7d", "2025-06-27 08:00", false),
                ("before-3wd", "2025-07-01 08:00", false),
                ("before-1wd", "2025-07-03 08:00", false),
                ("due", "2025-07-04 08:00", false),
                ("after-1wd", "2025-07-07 08:00", false),
                ("after-3wd", "2025-07-09 08:00", true),
                ("after-7wd", "2025-07-15 08:00", true),
            ])),
        },
        Case {
            name: "bao-cao-9-thang/2025-9M (04/10 is a Saturday)",
            config: rule("nine-months", NEXT_5_BEFORE, None),
            period: Period::NineMonths(2025),
            deadline: "2025-10-05T00:00:00+07:00",
            last_day: "2025-10-03",
            steps: Some(expect(&[
                ("before-14d", "2025-09-19 08:00", false),
                ("before-7d", "2025-09-26 08:00", false),
                ("before-3wd", "2025-09-30 08:00", false),
                ("before-1wd", "2025-10-02 08:00", false),
                ("due", "2025-10-03 08:00", false),
                ("after-1wd", "2025-10-06 08:00", false),
                ("after-3wd", "2025-10-08 08:00", true),
                ("after-7wd", "2025-10-14 08:00", true),
            ])),
        },
        Case {
            name: "bao-cao-nam/2025 (01/01 holiday, 02/01 swapped, 03-04/01 weekend)",
            config: rule("year", NEXT_5_BEFORE, None),
            period: Period::Year(2025),
            deadline: "2026-01-05T00:00:00+07:00",
            last_day: "2025-12-31",
            // 7wd after Wed 31/12: 05,06,07,08,09, Sat 10/01 (make-up day), Mon 12/01.
            steps: Some(expect(&[
                ("before-14d", "2025-12-17 08:00", false),
                ("before-7d", "2025-12-24 08:00", false),
                ("before-3wd", "2025-12-26 08:00", false),
                ("before-1wd", "2025-12-30 08:00", false),
                ("due", "2025-12-31 08:00", false),
                ("after-1wd", "2026-01-05 08:00", false),
                ("after-3wd", "2026-01-07 08:00", true),
                ("after-7wd", "2026-01-12 08:00", true),
            ])),
        },
    ]);
}

const KEEP: &str = r#"
[policy.keep]
on_day_off = "keep"
[policy.later]
on_day_off = "later"
"#;

#[test]
fn days_off_around_the_last_day() {
    run(vec![
        Case {
            name: "last day a Saturday, earlier (default)",
            config: rule("half-year", NEXT_5_BEFORE, None),
            period: Period::Half(2026, 1),
            deadline: "2026-07-05T00:00:00+07:00",
            last_day: "2026-07-03",
            steps: None,
        },
        Case {
            name: "last day a Saturday, keep: due moves to Friday and merges with before-1wd",
            config: rule("half-year", NEXT_5_BEFORE, Some("keep")) + KEEP,
            period: Period::Half(2026, 1),
            deadline: "2026-07-05T00:00:00+07:00",
            last_day: "2026-07-04",
            steps: Some(expect(&[
                ("before-14d", "2026-06-19 08:00", false),
                ("before-7d", "2026-06-26 08:00", false),
                ("before-3wd", "2026-07-01 08:00", false),
                ("due", "2026-07-03 08:00", false),
                ("after-1wd", "2026-07-06 08:00", false),
                ("after-3wd", "2026-07-08 08:00", true),
                ("after-7wd", "2026-07-14 08:00", true),
            ])),
        },
        Case {
            name: "later (Điều 148.5): Saturday 04/10/2025 extends to Monday 06/10",
            config: rule("nine-months", NEXT_5_BEFORE, Some("later")) + KEEP,
            period: Period::NineMonths(2025),
            deadline: "2025-10-07T00:00:00+07:00",
            last_day: "2025-10-06",
            steps: Some(expect(&[
                ("before-14d", "2025-09-22 08:00", false),
                ("before-7d", "2025-09-29 08:00", false),
                ("before-3wd", "2025-10-01 08:00", false),
                ("before-1wd", "2025-10-03 08:00", false),
                ("due", "2025-10-06 08:00", false),
                ("after-1wd", "2025-10-07 08:00", false),
                ("after-3wd", "2025-10-09 08:00", true),
                ("after-7wd", "2025-10-15 08:00", true),
            ])),
        },
        Case {
            name: "later across the New Year 2026 holidays",
            config: rule("year", NEXT_5_BEFORE, Some("later")) + KEEP,
            period: Period::Year(2025),
            deadline: "2026-01-06T00:00:00+07:00",
            last_day: "2026-01-05",
            steps: None,
        },
        Case {
            name: "a deadline inside Tết 2026, earlier: back to Friday 13/02",
            config: rule("once", r#"{ date = "2026-02-18" }"#, None),
            period: Period::Once(d("2026-02-18")),
            deadline: "2026-02-19T00:00:00+07:00",
            last_day: "2026-02-13",
            steps: None,
        },
        Case {
            name: "a deadline inside Tết 2026, later: Monday 23/02",
            config: rule("once", r#"{ date = "2026-02-18" }"#, Some("later")) + KEEP,
            period: Period::Once(d("2026-02-18")),
            deadline: "2026-02-24T00:00:00+07:00",
            last_day: "2026-02-23",
            steps: None,
        },
    ]);
}

#[test]
fn working_day_offsets_across_holidays() {
    run(vec![
        Case {
            name: "the week after Tết 2026: 7d lands in Tết, moves to 13/02 and merges with 3wd",
            config: rule("once", r#"{ date = "2026-02-25" }"#, None),
            period: Period::Once(d("2026-02-25")),
            deadline: "2026-02-26T00:00:00+07:00",
            last_day: "2026-02-25",
            // 3wd back from Wed 25/02: Tue 24, Mon 23, Fri 13/02.
            steps: Some(expect(&[
                ("before-14d", "2026-02-11 08:00", false),
                ("before-3wd", "2026-02-13 08:00", false),
                ("before-1wd", "2026-02-24 08:00", false),
                ("due", "2026-02-25 08:00", false),
                ("after-1wd", "2026-02-26 08:00", false),
                ("after-3wd", "2026-03-02 08:00", true),
                ("after-7wd", "2026-03-06 08:00", true),
            ])),
        },
        Case {
            name: "the day before Tết 2026: overdue notices resume after it",
            config: rule("once", r#"{ date = "2026-02-13" }"#, None),
            period: Period::Once(d("2026-02-13")),
            deadline: "2026-02-14T00:00:00+07:00",
            last_day: "2026-02-13",
            steps: Some(expect(&[
                ("before-14d", "2026-01-30 08:00", false),
                ("before-7d", "2026-02-06 08:00", false),
                ("before-3wd", "2026-02-10 08:00", false),
                ("before-1wd", "2026-02-12 08:00", false),
                ("due", "2026-02-13 08:00", false),
                ("after-1wd", "2026-02-23 08:00", false),
                ("after-3wd", "2026-02-25 08:00", true),
                ("after-7wd", "2026-03-03 08:00", true),
            ])),
        },
        Case {
            name: "wd across Quốc khánh 2025 (30/08 – 02/09 off)",
            config: rule("once", r#"{ date = "2025-09-04" }"#, None),
            period: Period::Once(d("2025-09-04")),
            deadline: "2025-09-05T00:00:00+07:00",
            last_day: "2025-09-04",
            // 3wd back from Thu 04/09: Wed 03, Fri 29/08, Thu 28/08 = 7d before: merged.
            steps: Some(expect(&[
                ("before-14d", "2025-08-21 08:00", false),
                ("before-3wd", "2025-08-28 08:00", false),
                ("before-1wd", "2025-09-03 08:00", false),
                ("due", "2025-09-04 08:00", false),
                ("after-1wd", "2025-09-05 08:00", false),
                ("after-3wd", "2025-09-09 08:00", true),
                ("after-7wd", "2025-09-15 08:00", true),
            ])),
        },
    ]);
}

#[test]
fn due_day_rules() {
    run(vec![
        Case {
            name: "day 31 in June clamps to 30/06",
            config: rule("month", r#"{ month = "last", day = 31 }"#, None),
            period: Period::Month(2025, 6),
            deadline: "2025-07-01T00:00:00+07:00",
            last_day: "2025-06-30",
            steps: None,
        },
        Case {
            name: "day 31 in February clamps to 28/02",
            config: rule("month", r#"{ month = "last", day = 31 }"#, None),
            period: Period::Month(2025, 2),
            deadline: "2025-03-01T00:00:00+07:00",
            last_day: "2025-02-28",
            steps: None,
        },
        Case {
            name: "before day 31 of April: before 30/04, last day Tue 29/04",
            config: rule(
                "month",
                r#"{ month = "next", day = 31, before = true }"#,
                None,
            ),
            period: Period::Month(2025, 3),
            deadline: "2025-04-30T00:00:00+07:00",
            last_day: "2025-04-29",
            steps: None,
        },
        Case {
            name: "month = last, day = last: the quarter's last day",
            config: rule("quarter", r#"{ month = "last", day = "last" }"#, None),
            period: Period::Quarter(2025, 3),
            deadline: "2025-10-01T00:00:00+07:00",
            last_day: "2025-09-30",
            steps: None,
        },
        Case {
            name: "month = 2 months after December: 15/02/2026 is in Tết",
            config: rule("year", r#"{ month = 2, day = 15 }"#, None),
            period: Period::Year(2025),
            deadline: "2026-02-16T00:00:00+07:00",
            last_day: "2026-02-13",
            steps: None,
        },
    ]);
}

#[test]
fn one_off_with_a_time_and_hour_steps() {
    let policy = r#"
[policy.gio]
before = ["1wd", "2h"]
after = ["30m", "1wd"]
escalate_from = "1wd"
"#;
    run(vec![
        Case {
            name: "one-off at 17:00 with hour and minute steps",
            config: rule(
                "once",
                r#"{ date = "2025-10-15", time = "17:00" }"#,
                Some("gio"),
            ) + policy,
            period: Period::Once(d("2025-10-15")),
            deadline: "2025-10-15T17:00:00+07:00",
            last_day: "2025-10-15",
            steps: Some(expect(&[
                ("before-1wd", "2025-10-14 08:00", false),
                ("due", "2025-10-15 08:00", false),
                ("before-2h", "2025-10-15 15:00", false),
                ("after-30m", "2025-10-15 17:30", false),
                ("after-1wd", "2025-10-16 08:00", true),
            ])),
        },
        Case {
            name: "a deadline at 07:00: the 08:00 due reminder would be late and is dropped",
            config: rule("once", r#"{ date = "2025-10-15", time = "07:00" }"#, None),
            period: Period::Once(d("2025-10-15")),
            deadline: "2025-10-15T07:00:00+07:00",
            last_day: "2025-10-15",
            steps: Some(expect(&[
                ("before-14d", "2025-10-01 08:00", false),
                ("before-7d", "2025-10-08 08:00", false),
                ("before-3wd", "2025-10-10 08:00", false),
                ("before-1wd", "2025-10-14 08:00", false),
                ("after-1wd", "2025-10-16 08:00", false),
                ("after-3wd", "2025-10-20 08:00", true),
                ("after-7wd", "2025-10-24 08:00", true),
            ])),
        },
        Case {
            name: "hour steps are not moved off days off",
            config: rule(
                "once",
                r#"{ date = "2025-10-05", before = true }"#,
                Some("h"),
            ) + "[policy.h]\nbefore = [\"1h\"]\non_due = false\nafter = []\n",
            period: Period::Once(d("2025-10-05")),
            deadline: "2025-10-05T00:00:00+07:00",
            last_day: "2025-10-03",
            steps: Some(expect(&[("before-1h", "2025-10-04 23:00", false)])),
        },
    ]);
}

#[test]
fn send_time_and_time_zone() {
    let config = cfg(&(rule("nine-months", NEXT_5_BEFORE, Some("chieu"))
        + "[policy.chieu]\nsend_time = \"14:30\"\n"));
    let o = occurrence(&config, 0, Period::NineMonths(2025)).unwrap();
    assert!(
        o.steps
            .iter()
            .all(|s| s.at.format("%H:%M").to_string() == "14:30")
    );
    assert_eq!(o.steps[0].at.to_rfc3339(), "2025-09-19T14:30:00+07:00");
}

/// A local time that does not exist moves forward, never back: an hour a DST change
/// skips by that hour, and a day a zone skipped altogether (Samoa went from 29 to 31
/// December 2011) to the same time the next day. It was read as UTC then (found by
/// `plan::props`): 08:00 on 30/12/2011 became 22:00 on the 29th, a day early.
#[test]
fn local_times_that_do_not_exist_move_forward() {
    let at = |tz: Tz, day: &str, hm: (u32, u32)| {
        let time = NaiveTime::from_hms_opt(hm.0, hm.1, 0).unwrap();
        local(tz, d(day), time).to_rfc3339()
    };
    let berlin = chrono_tz::Europe::Berlin;
    assert_eq!(
        at(berlin, "2025-03-30", (2, 30)),
        "2025-03-30T03:30:00+02:00"
    );
    assert_eq!(
        at(berlin, "2025-10-26", (2, 30)),
        "2025-10-26T02:30:00+02:00"
    );
    let apia = chrono_tz::Pacific::Apia;
    assert_eq!(at(apia, "2011-12-29", (8, 0)), "2011-12-29T08:00:00-10:00");
    assert_eq!(at(apia, "2011-12-30", (8, 0)), "2011-12-31T08:00:00+14:00");
    assert_eq!(at(apia, "2011-12-31", (8, 0)), "2011-12-31T08:00:00+14:00");
}

fn plan_keys(config: &Config, from: &str, to: &str, filter: Filter) -> Vec<String> {
    plan(config, d(from), d(to), filter)
        .occurrences
        .iter()
        .map(|o| o.key(config))
        .collect()
}

/// A step years away from its period is planned in every window that holds it (found by
/// `plan::props`). The periods looked at were those of two years before the window to
/// three after, so the `before-1000wd` step (four years before, in 2021) and the
/// `after-1000wd` one (four years after, in 2030) of the 2025 report were in no plan: never
/// sent.
#[test]
fn steps_years_away_are_planned() {
    let policy = "[policy.xa]\nbefore = [\"1000wd\"]\non_due = false\nafter = [\"1000wd\"]\n";
    let c = cfg(&(rule("year", NEXT_5_BEFORE, Some("xa")) + policy));
    let o = occurrence(&c, 0, Period::Year(2025)).unwrap();
    let days: Vec<String> = o
        .steps
        .iter()
        .map(|s| s.at.date_naive().to_string())
        .collect();
    assert_eq!(days.len(), 2, "{days:?}");
    assert!(
        days[0].starts_with("2021-") && days[1].starts_with("2030-"),
        "{days:?}"
    );
    for day in &days {
        let keys = plan_keys(&c, day, day, Filter::default());
        assert!(keys.contains(&"r/2025".to_string()), "{day}: {keys:?}");
    }
}

#[test]
fn active_bounds_and_windows() {
    let base = rule("half-year", NEXT_5_BEFORE, None).replace("id = \"r\"", "id = \"h\"");
    let c = cfg(&format!(
        "{base}active = {{ from = \"2025-08-28\", until = \"2026-12-31\" }}\n"
    ));
    assert_eq!(
        plan_keys(&c, "2025-01-01", "2027-12-31", Filter::default()),
        ["h/2025-H2", "h/2026-H1"],
        "2025-H1 is due before `from`, 2026-H2 (05/01/2027) after `until`"
    );
    // An occurrence is in a window when any of its steps or its last day is.
    let c = cfg(&rule("nine-months", NEXT_5_BEFORE, None));
    assert_eq!(
        plan_keys(&c, "2025-09-19", "2025-09-19", Filter::default()),
        ["r/2025-9M"],
        "before-14d falls on 19/09"
    );
    assert_eq!(
        plan_keys(&c, "2025-10-14", "2025-10-14", Filter::default()),
        ["r/2025-9M"],
        "after-7wd falls on 14/10"
    );
    assert!(plan_keys(&c, "2025-10-15", "2026-09-04", Filter::default()).is_empty());
}

#[test]
fn obligations_and_filters() {
    let two = rule("year", NEXT_5_BEFORE, None)
        + &rule("quarter", r#"{ month = "next", day = 10 }"#, None)
            .replace("id = \"r\"", "id = \"q\"")
            .replace("units = [\"all\"]", "units = [\"kt\", \"g\"]")
        + "[[group]]\nid = \"g\"\nunits = [\"kt\"]\n";
    let c = cfg(&two);
    let p = plan(&c, d("2026-01-01"), d("2026-12-31"), Filter::default());
    let keys: Vec<String> = p.occurrences.iter().map(|o| o.key(&c)).collect();
    assert_eq!(
        keys,
        [
            "r/2025",
            "q/2025-Q4",
            "q/2026-Q1",
            "q/2026-Q2",
            "q/2026-Q3",
            "r/2026",
            "q/2026-Q4"
        ],
        "sorted by deadline; r/2026 is in the window by its before-14d on 22/12/2026"
    );
    // r is owed by all four units; q by kt only (listed twice, once through the group).
    let per: Vec<usize> = (0..p.occurrences.len())
        .map(|i| {
            p.obligations
                .iter()
                .filter(|o| o.occurrence as usize == i)
                .count()
        })
        .collect();
    assert_eq!(per, [4, 1, 1, 1, 1, 4, 1]);
    let only_vhxh = Filter {
        unit: Some(0),
        rule: None,
    };
    assert_eq!(
        plan_keys(&c, "2026-01-01", "2026-12-31", only_vhxh),
        ["r/2025", "r/2026"]
    );
    let only_q = Filter {
        unit: None,
        rule: Some(1),
    };
    assert_eq!(
        plan_keys(&c, "2026-01-01", "2026-03-31", only_q),
        ["q/2025-Q4", "q/2026-Q1"]
    );
}
