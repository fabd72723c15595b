//! `nhacviec plan`: the JSON of docs/config.md on the shipped config, the table, bad filters, and
//! the worked examples of docs/config.md.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveTime, Weekday};
use serde_json::Value;

use crate::support::{Test, assert_contains, date, lines, repo_toml};

/// `plan --format json` on the shipped config from the programme's date to the end of 2026.
fn shipped_plan() -> Vec<Value> {
    let out = Test::new()
        .shipped()
        .args(&[
            "plan",
            "--format",
            "json",
            "--from",
            "2025-08-28",
            "--to",
            "2026-12-31",
        ])
        .stderr("")
        .run();
    serde_json::from_str(&out.stdout).unwrap()
}

/// The occurrence `rule/period`, if the plan has it.
fn find<'a>(plan: &'a [Value], rule: &str, period: &str) -> Option<&'a Value> {
    plan.iter()
        .find(|o| o["rule"] == rule && o["period"] == period)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn instant(v: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(text(v)).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Working days per the shipped schedules (`config/calendar/vn-2025.toml`, `vn-2026.toml`),
/// read here independently of the binary, and Saturday–Sunday weekends.
struct WorkingDays {
    off: BTreeSet<NaiveDate>,
    work: BTreeSet<NaiveDate>,
}

impl WorkingDays {
    fn shipped() -> WorkingDays {
        let mut days = WorkingDays {
            // 2027 has no schedule; the only holiday the plan's steps can reach in it is
            // Tết Dương lịch (the 2026 annual report is chased in January 2027).
            off: BTreeSet::from([date("2027-01-01")]),
            work: BTreeSet::new(),
        };
        for file in [
            "config/calendar/vn-2025.toml",
            "config/calendar/vn-2026.toml",
        ] {
            let schedule = repo_toml(file);
            for (key, working) in [("off", false), ("work", true)] {
                for entry in schedule[key].as_array().unwrap() {
                    let day = |k: &str| entry.get(k).map(|v| date(v.as_str().unwrap()));
                    let span = match (day("date"), day("from"), day("to")) {
                        (Some(d), None, None) => vec![d],
                        (None, Some(from), Some(to)) => {
                            from.iter_days().take_while(|d| *d <= to).collect()
                        }
                        _ => panic!("{file}: odd entry {entry}"),
                    };
                    let set = if working {
                        &mut days.work
                    } else {
                        &mut days.off
                    };
                    set.extend(span);
                }
            }
        }
        days
    }

    fn is_working(&self, d: NaiveDate) -> bool {
        self.work.contains(&d)
            || !(self.off.contains(&d) || matches!(d.weekday(), Weekday::Sat | Weekday::Sun))
    }
}

#[test]
fn json_has_the_shape_of_design_section_9() {
    let plan = shipped_plan();
    assert!(plan.len() >= 10, "only {} occurrences", plan.len());
    let occurrence_keys = BTreeSet::from([
        "rule",
        "kind",
        "title",
        "period",
        "period_label",
        "deadline",
        "last_day",
        "obligations",
    ]);
    let mut previous_deadline = None;
    for o in &plan {
        assert_eq!(keys(o), occurrence_keys, "{o}");
        for k in ["rule", "title", "period", "period_label"] {
            assert!(!text(&o[k]).is_empty(), "empty {k} in {o}");
        }
        assert!(["report", "task"].contains(&text(&o["kind"])), "{o}");
        let deadline = instant(&o["deadline"]);
        assert_eq!(deadline.offset().local_minus_utc(), 7 * 3600, "{o}");
        let last_day = date(text(&o["last_day"]));
        assert!(last_day < deadline.date_naive(), "{o}");
        assert!(
            previous_deadline.is_none_or(|p| p <= deadline),
            "not sorted by deadline at {o}"
        );
        previous_deadline = Some(deadline);
        let obligations = o["obligations"].as_array().unwrap();
        assert!(!obligations.is_empty(), "{o}");
        for ob in obligations {
            assert_eq!(keys(ob), BTreeSet::from(["unit", "steps"]), "{ob}");
            assert!(!text(&ob["unit"]).is_empty());
            let steps = ob["steps"].as_array().unwrap();
            assert!(!steps.is_empty(), "{ob}");
            for s in steps {
                assert_eq!(keys(s), BTreeSet::from(["step", "at"]), "{s}");
                let name = text(&s["step"]);
                let offset = name
                    .strip_prefix("before-")
                    .or_else(|| name.strip_prefix("after-"));
                let well_formed = name == "due"
                    || offset.is_some_and(|o| {
                        let unit = o.trim_start_matches(|c: char| c.is_ascii_digit());
                        unit.len() < o.len() && ["d", "wd", "h", "m"].contains(&unit)
                    });
                assert!(well_formed, "step name {name}");
                instant(&s["at"]);
            }
        }
    }
}

#[test]
fn json_deadlines_of_the_periodic_reports() {
    let plan = shipped_plan();
    let reporters = [
        "vp",
        "kt",
        "hcc",
        "tram-y-te",
        "tt-van-hoa",
        "mn-dong-hai",
        "th-dong-hai",
        "thcs-dong-hai",
    ];
    for (rule, period, deadline, last_day) in [
        (
            "bao-cao-9-thang",
            "2025-9M",
            "2025-10-05T00:00:00+07:00",
            "2025-10-03",
        ),
        (
            "bao-cao-nam",
            "2025",
            "2026-01-05T00:00:00+07:00",
            "2025-12-31",
        ),
        // 04/07/2026 is a Saturday.
        (
            "bao-cao-6-thang",
            "2026-H1",
            "2026-07-05T00:00:00+07:00",
            "2026-07-03",
        ),
    ] {
        let o = find(&plan, rule, period).unwrap_or_else(|| panic!("no {rule}/{period}"));
        assert_eq!(o["kind"], "report");
        assert_eq!(o["deadline"], deadline, "{rule}/{period}");
        assert_eq!(o["last_day"], last_day, "{rule}/{period}");
        let units: Vec<&str> = o["obligations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ob| text(&ob["unit"]))
            .collect();
        assert_eq!(
            units, reporters,
            "{rule}/{period}: owed by the group don-vi-bao-cao"
        );
    }
}

#[test]
fn json_has_no_report_due_before_the_programme() {
    // `active = { from = "2025-08-28" }`: the six-month report due 05/07/2025 is not owed.
    let plan = shipped_plan();
    assert!(find(&plan, "bao-cao-6-thang", "2025-H1").is_none());
    let six_month: Vec<&str> = plan
        .iter()
        .filter(|o| o["rule"] == "bao-cao-6-thang")
        .map(|o| text(&o["period"]))
        .collect();
    assert_eq!(six_month, ["2026-H1"]);
}

#[test]
fn leadership_owes_nothing() {
    let plan = shipped_plan();
    let owing: Vec<String> = plan
        .iter()
        .filter(|o| {
            o["obligations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|ob| ob["unit"] == "lanh-dao")
        })
        .map(|o| format!("{}/{}", text(&o["rule"]), text(&o["period"])))
        .collect();
    assert_eq!(owing, Vec::<String>::new());
    Test::new()
        .shipped()
        .args(&[
            "plan",
            "--unit",
            "lanh-dao",
            "--from",
            "2025-08-28",
            "--to",
            "2026-12-31",
        ])
        .stdout("0 occurrences, 0 obligations from Thu 28/08/2025 to Thu 31/12/2026\n")
        .stderr("")
        .run();
}

#[test]
fn json_steps_fall_on_working_days_at_eight_in_order() {
    let plan = shipped_plan();
    let days = WorkingDays::shipped();
    // The schedules were read: a swapped Friday is off, its make-up Saturday a working day.
    assert!(!days.is_working(date("2026-01-02")));
    assert!(days.is_working(date("2026-01-10")));
    assert!(!days.is_working(date("2025-09-01")));
    let eight = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
    let mut count = 0;
    for o in &plan {
        let key = format!("{}/{}", text(&o["rule"]), text(&o["period"]));
        let deadline = instant(&o["deadline"]);
        let last_day = date(text(&o["last_day"]));
        assert!(
            days.is_working(last_day),
            "{key}: last day {last_day} is off"
        );
        for ob in o["obligations"].as_array().unwrap() {
            let mut previous: Option<DateTime<FixedOffset>> = None;
            for s in ob["steps"].as_array().unwrap() {
                let name = text(&s["step"]);
                let at = instant(&s["at"]);
                let what = format!("{key} {} {name} at {at}", text(&ob["unit"]));
                assert_eq!(at.offset().local_minus_utc(), 7 * 3600, "{what}");
                assert_eq!(at.time(), eight, "{what}");
                assert!(days.is_working(at.date_naive()), "{what}: a day off");
                assert!(previous.is_none_or(|p| p < at), "{what}: out of order");
                if name.starts_with("after-") {
                    assert!(at > deadline, "{what}: overdue notice before the deadline");
                } else {
                    assert!(at < deadline, "{what}: reminder after the deadline");
                }
                if name == "due" {
                    assert_eq!(at.date_naive(), last_day, "{what}");
                }
                previous = Some(at);
                count += 1;
            }
        }
    }
    assert!(count > 500, "only {count} steps");
}

#[test]
fn json_period_labels_are_vietnamese() {
    let plan = shipped_plan();
    for (rule, period, label) in [
        ("bao-cao-9-thang", "2025-9M", "9 tháng năm 2025"),
        ("bao-cao-nam", "2025", "năm 2025"),
        ("bao-cao-6-thang", "2026-H1", "6 tháng đầu năm 2026"),
        ("bao-cao-9-thang", "2026-9M", "9 tháng năm 2026"),
        (
            "hoc-tap-bai-bao-dan-van-2025",
            "2025-10-15",
            "hạn ngày 15/10/2025",
        ),
    ] {
        let o = find(&plan, rule, period).unwrap_or_else(|| panic!("no {rule}/{period}"));
        assert_eq!(o["period_label"], label, "{rule}/{period}");
    }
}

/// The steps of the 9-month report of 2025 under the default policy, as the table prints
/// them (the shipped config and the worked examples both have them).
const NINE_MONTH_STEPS: [&str; 8] = [
    "  steps     before-14d   Fri 19/09/2025 08:00",
    "            before-7d    Fri 26/09/2025 08:00",
    "            before-3wd   Tue 30/09/2025 08:00",
    "            before-1wd   Thu 02/10/2025 08:00",
    "            due          Fri 03/10/2025 08:00",
    "            after-1wd    Mon 06/10/2025 08:00",
    "            after-3wd    Wed 08/10/2025 08:00  + escalation",
    "            after-7wd    Tue 14/10/2025 08:00  + escalation",
];

#[test]
fn table_of_the_nine_month_report() {
    Test::new()
        .shipped()
        .args(&[
            "plan",
            "--rule",
            "bao-cao-9-thang",
            "--from",
            "2025-09-01",
            "--to",
            "2025-10-31",
        ])
        .stdout(&lines(&[
            "1 occurrence, 8 obligations from Mon 01/09/2025 to Fri 31/10/2025",
            "",
            "bao-cao-9-thang/2025-9M  report  9 tháng năm 2025",
            "  Báo cáo tình hình, kết quả thực hiện công tác dân vận chính quyền",
            "  deadline  before Sun 05/10/2025 (00:00)",
            "  last day  Fri 03/10/2025  (moved: Sat 04/10/2025 is off: weekend)",
            "  owed by   vp, kt, hcc, tram-y-te, tt-van-hoa, mn-dong-hai, th-dong-hai, thcs-dong-hai (8 units)",
        ]
        .iter()
        .chain(&NINE_MONTH_STEPS)
        .copied()
        .collect::<Vec<_>>()))
        .stderr("")
        .run();
}

#[test]
fn unknown_unit_filter_with_hint() {
    Test::new()
        .shipped()
        .args(&["plan", "--unit", "vhx", "--from", "2025-09-01"])
        .stdout("")
        .stderr("error: unknown unit `vhx`; did you mean `vhxh`?\n")
        .status(1)
        .run();
}

#[test]
fn unknown_rule_filter_with_hint() {
    Test::new()
        .shipped()
        .args(&["plan", "--rule", "bao-cao-9-thag", "--from", "2025-09-01"])
        .stdout("")
        .stderr("error: unknown rule `bao-cao-9-thag`; did you mean `bao-cao-9-thang`?\n")
        .status(1)
        .run();
}

/// The seed's three reports without `active` bounds, on the shipped calendar files.
fn worked_examples() -> Test {
    Test::new()
        .fixture("worked-examples.toml")
        .shipped_calendar()
}

#[test]
fn worked_examples_of_design_section_4() {
    let out = worked_examples()
        .args(&[
            "plan",
            "--format",
            "json",
            "--from",
            "2025-06-01",
            "--to",
            "2025-12-31",
        ])
        .stderr("")
        .run();
    let plan: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let got: Vec<(&str, &str, &str)> = plan
        .iter()
        .map(|o| {
            (
                text(&o["period"]),
                text(&o["deadline"]),
                text(&o["last_day"]),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("2025-H1", "2025-07-05T00:00:00+07:00", "2025-07-04"),
            ("2025-9M", "2025-10-05T00:00:00+07:00", "2025-10-03"),
            ("2025", "2026-01-05T00:00:00+07:00", "2025-12-31"),
        ]
    );
    let weekdays: Vec<Weekday> = got.iter().map(|(_, _, d)| date(d).weekday()).collect();
    assert_eq!(weekdays, [Weekday::Fri, Weekday::Fri, Weekday::Wed]);
}

#[test]
fn worked_examples_table_with_the_default_policy() {
    // No `[policy]` section: the built-in default is `policy.default` of docs/config.md.
    let before = [
        "3 occurrences, 3 obligations from Sun 01/06/2025 to Wed 31/12/2025",
        "",
        "bao-cao-6-thang/2025-H1  report  6 tháng đầu năm 2025",
        "  Báo cáo kết quả công tác dân vận chính quyền 6 tháng đầu năm",
        "  deadline  before Sat 05/07/2025 (00:00)",
        "  last day  Fri 04/07/2025",
        "  owed by   vp (1 unit)",
        "  steps     before-14d   Fri 20/06/2025 08:00",
        "            before-7d    Fri 27/06/2025 08:00",
        "            before-3wd   Tue 01/07/2025 08:00",
        "            before-1wd   Thu 03/07/2025 08:00",
        "            due          Fri 04/07/2025 08:00",
        "            after-1wd    Mon 07/07/2025 08:00",
        "            after-3wd    Wed 09/07/2025 08:00  + escalation",
        "            after-7wd    Tue 15/07/2025 08:00  + escalation",
        "",
        "bao-cao-9-thang/2025-9M  report  9 tháng năm 2025",
        "  Báo cáo kết quả công tác dân vận chính quyền 9 tháng",
        "  deadline  before Sun 05/10/2025 (00:00)",
        "  last day  Fri 03/10/2025  (moved: Sat 04/10/2025 is off: weekend)",
        "  owed by   vp (1 unit)",
    ];
    let after = [
        "",
        "bao-cao-nam/2025  report  năm 2025",
        "  Báo cáo tổng kết công tác dân vận chính quyền năm",
        "  deadline  before Mon 05/01/2026 (00:00)",
        "  last day  Wed 31/12/2025  (moved: Sun 04/01/2026 is off: nghỉ cuối tuần dịp Tết Dương lịch)",
        "  owed by   vp (1 unit)",
        "  steps     before-14d   Wed 17/12/2025 08:00",
        "            before-7d    Wed 24/12/2025 08:00",
        "            before-3wd   Fri 26/12/2025 08:00",
        "            before-1wd   Tue 30/12/2025 08:00",
        "            due          Wed 31/12/2025 08:00",
        "            after-1wd    Mon 05/01/2026 08:00",
        "            after-3wd    Wed 07/01/2026 08:00  + escalation",
        "            after-7wd    Mon 12/01/2026 08:00  + escalation",
    ];
    worked_examples()
        .args(&["plan", "--from", "2025-06-01", "--to", "2025-12-31"])
        .stdout(&lines(&[&before[..], &NINE_MONTH_STEPS, &after].concat()))
        .stderr("")
        .run();
}

#[test]
fn an_empty_window_is_refused_by_the_argument_parser() {
    let out = Test::new()
        .shipped()
        .args(&["plan", "--from", "2025-09-01", "--days", "0"])
        .status(2)
        .run();
    assert!(
        out.stderr.contains("--days") && out.stderr.contains("0 is not in 1.."),
        "{}",
        out.stderr
    );
}

#[test]
fn the_window_starts_on_the_clock_s_day() {
    let plan = |clock: &str, args: &[&str]| {
        Test::new()
            .shipped()
            .clock(clock)
            .args(&[&["plan", "--days", "30"], args].concat())
            .stderr("")
            .run()
            .stdout
    };
    let at_clock = plan("2025-09-29T10:00:00+07:00", &[]);
    assert_eq!(
        at_clock,
        plan(crate::support::CLOCK, &["--from", "2025-09-29"])
    );
    assert_ne!(at_clock, plan(crate::support::CLOCK, &[]));
    assert!(at_clock.contains("bao-cao-9-thang/2025-9M"), "{at_clock}");
}

/// Vietnamese admins write dates day first: `--from 01/09/2025 --to 31/10/2025` is the same
/// window as the ISO dates; anything else is refused with both forms shown.
#[test]
fn dates_day_first_are_accepted() {
    let nine_months = |from: &str, to: &str| {
        let args = [
            "plan",
            "--rule",
            "bao-cao-9-thang",
            "--from",
            from,
            "--to",
            to,
        ];
        Test::new().shipped().args(&args)
    };
    let iso = nine_months("2025-09-01", "2025-10-31").run();
    let vn = nine_months("01/09/2025", "31/10/2025").stderr("").run();
    assert_eq!(vn.stdout, iso.stdout);
    assert!(vn.stdout.starts_with("1 occurrence"), "{}", vn.stdout);
    let short = nine_months("1/9/2025", "31/10/2025").run();
    assert_eq!(short.stdout, iso.stdout);
    let bad = Test::new()
        .shipped()
        .args(&["plan", "--from", "31/02/2025"])
        .status(2)
        .run();
    assert_contains(
        &bad.stderr,
        &["`31/02/2025` is not a date: write it as 2026-12-01 or 01/12/2026 (day/month/year)"],
    );
}
