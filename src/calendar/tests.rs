//! Table-driven tests of the working-day calendar, built the way `run` builds it: from a
//! config with the shipped official schedules.

use chrono::NaiveDate;

use super::*;

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

fn calendar_with(extra: &str) -> Calendar {
    let fields = "period = \"year\"\ndue = { month = \"next\", day = 5 }\nunits = [\"all\"]";
    let rule = crate::testutil::rule("r", "Báo cáo", fields);
    crate::testutil::ward_config("", &format!("{extra}\n{rule}")).calendar
}

#[test]
fn official_schedules_2025_2026() {
    let cal = calendar_with("");
    // (date, working?, why)
    let cases = [
        ("2025-01-01", false, "Tết Dương lịch"),
        ("2025-01-27", false, "Tết 2025 block (Mon)"),
        ("2025-01-31", false, "Tết 2025 block (Fri)"),
        ("2025-02-03", true, "first day after Tết 2025"),
        ("2025-04-07", false, "Giỗ Tổ 2025"),
        ("2025-04-26", true, "make-up Saturday"),
        ("2025-04-30", false, "30/4"),
        ("2025-05-01", false, "1/5"),
        ("2025-05-02", false, "swapped Friday"),
        ("2025-05-05", true, "Monday after"),
        ("2025-09-01", false, "Quốc khánh"),
        ("2025-09-02", false, "Quốc khánh"),
        ("2025-09-03", true, "after Quốc khánh"),
        ("2025-10-04", false, "a Saturday"),
        ("2025-11-24", true, "Ngày Văn hóa only from 2026"),
        ("2026-01-01", false, "Tết Dương lịch"),
        ("2026-01-02", false, "swapped Friday"),
        ("2026-01-05", true, "Monday"),
        ("2026-01-10", true, "make-up Saturday"),
        ("2026-02-16", false, "Tết 2026"),
        ("2026-02-20", false, "Tết 2026"),
        ("2026-02-23", true, "after Tết 2026"),
        ("2026-04-27", false, "Giỗ Tổ compensation"),
        ("2026-04-30", false, "30/4"),
        ("2026-05-01", false, "1/5"),
        ("2026-08-22", true, "make-up Saturday"),
        ("2026-08-31", false, "swapped Monday"),
        ("2026-09-02", false, "Quốc khánh"),
        ("2026-09-03", true, "Thursday after"),
        ("2026-11-24", false, "Ngày Văn hóa Việt Nam"),
    ];
    for (date, working, why) in cases {
        assert_eq!(cal.is_working(d(date)), working, "{date}: {why}");
    }
}

#[test]
fn deviations_2026_are_exactly_the_official_ones() {
    let cal = calendar_with("");
    let got: Vec<(String, bool)> = cal
        .deviations(2026)
        .into_iter()
        .map(|x| {
            assert_eq!(x.layer, Layer::Official, "{}", x.date);
            (x.date.to_string(), x.working)
        })
        .collect();
    let want: Vec<(String, bool)> = [
        ("2026-01-01", false),
        ("2026-01-02", false),
        ("2026-01-10", true),
        ("2026-02-16", false),
        ("2026-02-17", false),
        ("2026-02-18", false),
        ("2026-02-19", false),
        ("2026-02-20", false),
        ("2026-04-27", false),
        ("2026-04-30", false),
        ("2026-05-01", false),
        ("2026-08-22", true),
        ("2026-08-31", false),
        ("2026-09-01", false),
        ("2026-09-02", false),
        ("2026-11-24", false),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), *b))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn statutory_estimate_for_a_year_without_schedule() {
    let cal = calendar_with("");
    assert!(!cal.has_schedule(2027));
    let off: Vec<String> = cal
        .deviations(2027)
        .into_iter()
        .filter(|x| !x.working)
        .map(|x| {
            assert_eq!(x.layer, Layer::Statutory);
            x.date.to_string()
        })
        .collect();
    // Exactly the statutory estimate's days off on weekdays (pinned date by date in
    // `statutory.rs`: Tết 2027 Thu 04/02 – Wed 10/02, Giỗ Tổ Fri 16/04, …).
    let weekend = [false, false, false, false, false, true, true];
    let estimate: Vec<String> = statutory::estimate(2027, &weekend)
        .into_iter()
        .filter(|e| !weekend[chrono::Datelike::weekday(&e.date).num_days_from_monday() as usize])
        .map(|e| e.date.to_string())
        .collect();
    assert_eq!(off, estimate);
    assert_eq!(off.len(), 12, "{off:?}");
    assert_eq!(lunar::gio_to(2027), d("2027-04-16"));
}

#[test]
fn local_layer_wins() {
    let cal = calendar_with(
        r#"
[calendar]
days_off = ["2026-03-09", { date = "2026-03-10", reason = "Đại hội" }]
working_days = ["2026-02-20", "2026-03-14"]
"#,
    );
    assert!(!cal.is_working(d("2026-03-09")));
    assert_eq!(cal.reason(d("2026-03-10")), Some("Đại hội"));
    // An official Tết day made a working day locally.
    assert!(cal.is_working(d("2026-02-20")));
    assert!(cal.is_working(d("2026-03-14")));
    let local: Vec<_> = cal
        .deviations(2026)
        .into_iter()
        .filter(|x| x.layer == Layer::Local)
        .map(|x| x.date.to_string())
        .collect();
    // 20/02 is a Friday that works again: the plain weekday rule, so no deviation to show.
    assert_eq!(local, ["2026-03-09", "2026-03-10", "2026-03-14"]);
}

#[test]
fn other_weekends_and_no_holidays() {
    let cal = calendar_with(
        r#"
[calendar]
weekend = ["sun"]
holidays = "none"
include = []
"#,
    );
    assert!(
        cal.is_working(d("2026-01-03")),
        "Saturday works with a Sunday-only weekend"
    );
    assert!(!cal.is_working(d("2026-01-04")));
    assert!(cal.is_working(d("2026-01-01")), "no holidays");
    assert!(cal.deviations(2026).is_empty());
}

#[test]
fn working_day_arithmetic() {
    let cal = calendar_with("");
    let cases = [
        // (from, n, forward, want)
        ("2025-09-04", 3, false, "2025-08-28"), // back across 30/08 – 02/09
        ("2025-08-29", 1, true, "2025-09-03"),
        ("2026-02-13", 1, true, "2026-02-23"), // across Tết 2026
        ("2025-12-31", 1, true, "2026-01-05"),
        ("2026-01-09", 1, true, "2026-01-10"), // make-up Saturday counts
        ("2025-10-06", 0, true, "2025-10-06"),
    ];
    for (from, n, fwd, want) in cases {
        assert_eq!(
            cal.shift_working(d(from), n, fwd),
            d(want),
            "{from} {n} {fwd}"
        );
    }
    assert_eq!(cal.working_on_or_before(d("2025-10-04")), d("2025-10-03"));
    assert_eq!(cal.working_on_or_after(d("2025-10-04")), d("2025-10-06"));
    assert_eq!(cal.prev_working(d("2026-01-05")), d("2025-12-31"));
}

#[test]
fn days_in_month_table() {
    for (y, m, n) in [
        (2025, 2, 28),
        (2024, 2, 29),
        (2025, 4, 30),
        (2025, 12, 31),
        (2100, 2, 28),
    ] {
        assert_eq!(days_in_month(y, m), n, "{y}-{m}");
    }
}

/// Local days off of two and a half years in a row (found by `plan::props`): the
/// working-day searches look past them. They gave up after 400 days a step and returned
/// the day off itself, so a step or a last day fell on a day off, and the digest's "next
/// working day" was today again.
#[test]
fn searches_cross_any_run_of_days_off() {
    let off: Vec<String> = d("2025-01-01")
        .iter_days()
        .take_while(|x| *x <= d("2027-06-30"))
        .map(|x| format!("\"{x}\""))
        .collect();
    let cal = calendar_with(&format!("[calendar]\ndays_off = [{}]\n", off.join(", ")));
    // Thursday 01/07/2027 and Tuesday 31/12/2024 are the nearest working days.
    assert_eq!(cal.next_working(d("2025-01-01")), d("2027-07-01"));
    assert_eq!(cal.working_on_or_after(d("2026-03-01")), d("2027-07-01"));
    assert_eq!(cal.shift_working(d("2027-06-30"), 2, true), d("2027-07-02"));
    assert_eq!(cal.prev_working(d("2027-06-30")), d("2024-12-31"));
    assert_eq!(cal.working_on_or_before(d("2026-03-01")), d("2024-12-31"));
}

/// With no working weekday (a calendar built by hand: `check` refuses such a weekend), a
/// search finds a listed working day however far, and returns the day itself when there
/// is none that way.
#[test]
fn searches_without_working_weekdays() {
    let working = DayEntry {
        date: d("2027-05-05"),
        working: true,
        reason: "làm bù".into(),
        source: None,
    };
    let cal = Calendar::new(CalendarSpec {
        weekend: [true; 7],
        statutory: false,
        schedules: Vec::new(),
        local: vec![working],
    });
    assert_eq!(cal.next_working(d("2025-01-01")), d("2027-05-05"));
    assert_eq!(cal.prev_working(d("2029-01-01")), d("2027-05-05"));
    assert_eq!(cal.next_working(d("2027-05-05")), d("2027-05-05"));
    assert_eq!(cal.prev_working(d("2027-05-05")), d("2027-05-05"));
    assert_eq!(cal.shift_working(d("2025-01-01"), 2, true), d("2025-01-01"));
}
