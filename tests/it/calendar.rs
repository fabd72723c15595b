//! `nhacviec calendar`: the official schedules of 2025 and 2026 as shipped, and the statutory
//! estimate for a year without one. Every pinned line was checked against the government's
//! announcement its `source` names.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::{REPO, Test, read};

fn calendar(args: &[&str]) -> Test {
    Test::new().shipped().args(&[&["calendar"], args].concat())
}

/// `calendar --format json` for a year: each day with its entry, checking every entry's shape.
fn calendar_json(year: &str) -> BTreeMap<String, Value> {
    let out = calendar(&["--year", year, "--format", "json"])
        .stderr("")
        .run();
    let entries: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let mut days = BTreeMap::new();
    for e in entries {
        let date = e["date"]
            .as_str()
            .unwrap_or_else(|| panic!("{e}"))
            .to_string();
        assert!(date.starts_with(year), "{e}");
        assert!(e["working"].is_boolean(), "{e}");
        assert!(!e["reason"].as_str().unwrap_or_default().is_empty(), "{e}");
        assert!(
            ["statutory", "official", "local"].contains(&e["layer"].as_str().unwrap_or_default()),
            "{e}"
        );
        let previous = days.insert(date.clone(), e);
        assert!(previous.is_none(), "{date} listed twice");
    }
    days
}

fn state(days: &BTreeMap<String, Value>, date: &str) -> Option<(bool, String)> {
    days.get(date).map(|e| {
        (
            e["working"].as_bool().unwrap(),
            e["layer"].as_str().unwrap().to_string(),
        )
    })
}

/// The table of each year, line for line as pinned in `tests/data/calendar/YEAR.txt`: 2025
/// and 2026 as announced (every line checked against the announcement its source names),
/// 2027 the statutory estimate.
#[test]
fn each_year_as_pinned() {
    for year in ["2025", "2026", "2027"] {
        let pinned = Path::new(REPO).join(format!("tests/data/calendar/{year}.txt"));
        calendar(&["--year", year])
            .stdout(&read(&pinned))
            .stderr("")
            .run();
    }
}

#[test]
fn year_2026_as_json() {
    let days = calendar_json("2026");
    assert_eq!(days.len(), 16);
    for working in ["2026-01-10", "2026-08-22"] {
        assert_eq!(
            state(&days, working),
            Some((true, "official".into())),
            "{working}"
        );
    }
    for off in ["2026-01-02", "2026-08-31", "2026-11-24"] {
        assert_eq!(state(&days, off), Some((false, "official".into())), "{off}");
    }
    // A holiday on a Sunday (Giỗ Tổ, 26/04) is no deviation: its compensation (27/04) is.
    assert_eq!(state(&days, "2026-04-26"), None);
    assert_eq!(state(&days, "2026-04-27"), Some((false, "official".into())));
}

#[test]
fn year_without_a_schedule_is_the_statutory_estimate() {
    let days = calendar_json("2027");
    assert!(days.values().all(|e| e["layer"] == "statutory"), "{days:?}");
    // Tết 2027: mùng 1 is Saturday 06/02. Five days 05/02–09/02; the Saturday is compensated
    // on the working day before the block (Thu 04/02), the Sunday on the one after (Wed 10/02).
    let tet: Vec<&str> = days
        .iter()
        .filter(|(d, e)| d.starts_with("2027-02") && e["working"] == false)
        .map(|(d, _)| d.as_str())
        .collect();
    assert_eq!(
        tet,
        [
            "2027-02-04",
            "2027-02-05",
            "2027-02-08",
            "2027-02-09",
            "2027-02-10"
        ]
    );
}
