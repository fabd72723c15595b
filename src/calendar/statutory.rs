//! The statutory layer: public holidays from the law, and their estimated compensation.
//!
//! Bộ luật Lao động 2019, Điều 112 names the holidays; the government fixes the exact Tết and
//! Quốc khánh days each year (Điều 112.3), and an official schedule file replaces this
//! estimate for its year. For a year with no announcement, the estimate follows the practice
//! of recent years (as the `holidays` package also encodes them):
//! the Quốc khánh adjacent day is 03/09 when 02/09 is a Monday, Thursday or Sunday and 01/09
//! otherwise; a Tết day on the first day of a weekend is compensated on the working day before
//! the Tết block, one on the second on the working day after it; any other holiday on a
//! weekend day is compensated on the next working day (Điều 111.3).

use std::collections::HashSet;

use chrono::{Datelike, Days, NaiveDate, Weekday};

use super::{DayEntry, lunar};

const LAW: &str = "Bộ luật Lao động 2019, Điều 112";
const CULTURE_DAY: &str =
    "Nghị quyết 80-NQ/TW (01/2026): Ngày Văn hóa Việt Nam là ngày nghỉ có hưởng lương";

fn md(year: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, m, d)
}

/// The statutory holidays of `year` and their compensatory days off, as day entries.
/// `weekend[i]` is true when weekday `i` (Monday = 0) is a weekly rest day.
pub fn estimate(year: i32, weekend: &[bool; 7]) -> Vec<DayEntry> {
    let is_weekend = |d: NaiveDate| weekend[d.weekday().num_days_from_monday() as usize];
    let entry = |date: NaiveDate, reason: String, source: &str| DayEntry {
        date,
        working: false,
        reason,
        source: Some(source.to_string()),
    };
    let mut holidays: Vec<DayEntry> = Vec::new();
    if let Some(d) = md(year, 1, 1) {
        holidays.push(entry(d, "Tết Dương lịch".into(), LAW));
    }
    let tet = lunar::tet(year);
    let tet_block: Vec<NaiveDate> = (0..5u64)
        .filter_map(|i| {
            tet.checked_sub_days(Days::new(1))?
                .checked_add_days(Days::new(i))
        })
        .collect();
    for (i, d) in tet_block.iter().enumerate() {
        let name = if i == 0 {
            "Tết Âm lịch (ngày cuối năm âm lịch)".to_string()
        } else {
            format!("Tết Âm lịch (mùng {i})")
        };
        holidays.push(entry(*d, name, LAW));
    }
    holidays.push(entry(
        lunar::gio_to(year),
        "Giỗ Tổ Hùng Vương (10/3 âm lịch)".into(),
        LAW,
    ));
    if let Some(d) = md(year, 4, 30) {
        holidays.push(entry(d, "Ngày Chiến thắng (30/4)".into(), LAW));
    }
    if let Some(d) = md(year, 5, 1) {
        holidays.push(entry(d, "Ngày Quốc tế Lao động (1/5)".into(), LAW));
    }
    if let Some(national) = md(year, 9, 2) {
        holidays.push(entry(national, "Quốc khánh (2/9)".into(), LAW));
        // Two days from 2021 (Bộ luật Lao động 2019 took effect on 01/01/2021).
        if year >= 2021 {
            let adjacent = match national.weekday() {
                Weekday::Mon | Weekday::Thu | Weekday::Sun => md(year, 9, 3),
                _ => md(year, 9, 1),
            };
            if let Some(a) = adjacent {
                holidays.push(entry(a, "Quốc khánh (ngày liền kề 2/9)".into(), LAW));
            }
        }
    }
    if let Some(d) = md(year, 11, 24).filter(|_| year >= 2026) {
        holidays.push(entry(
            d,
            "Ngày Văn hóa Việt Nam (24/11)".into(),
            CULTURE_DAY,
        ));
    }
    holidays.sort_by_key(|h| h.date);

    let mut off: HashSet<NaiveDate> = holidays.iter().map(|h| h.date).collect();
    let mut comps: Vec<DayEntry> = Vec::new();
    let mut comp = |off: &mut HashSet<NaiveDate>, from: NaiveDate, forward: bool, h: &DayEntry| {
        let mut d = from;
        for _ in 0..60 {
            let next = if forward { d.succ_opt() } else { d.pred_opt() };
            let Some(n) = next else { return };
            d = n;
            if !is_weekend(d) && !off.contains(&d) {
                off.insert(d);
                comps.push(entry(
                    d,
                    format!(
                        "nghỉ bù cho {}, {}",
                        h.reason,
                        crate::present::date_with_weekday(h.date)
                    ),
                    "Bộ luật Lao động 2019, Điều 111.3 (ước tính)",
                ));
                return;
            }
        }
    };
    let (first, last) = (tet_block[0], tet_block[tet_block.len() - 1]);
    for h in holidays.iter().filter(|h| is_weekend(h.date)) {
        let in_tet = h.date >= first && h.date <= last;
        if in_tet {
            // The first day of a weekend is made up before the block, the second after it.
            let next_is_weekend = h.date.succ_opt().is_some_and(is_weekend);
            if next_is_weekend {
                comp(&mut off, first, false, h);
            } else {
                comp(&mut off, last, true, h);
            }
        } else {
            comp(&mut off, h.date, true, h);
        }
    }
    holidays.extend(comps);
    holidays.sort_by_key(|h| h.date);
    holidays
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAT_SUN: [bool; 7] = [false, false, false, false, false, true, true];

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn off_weekdays(year: i32) -> Vec<String> {
        estimate(year, &SAT_SUN)
            .into_iter()
            .filter(|e| e.date.weekday().num_days_from_monday() < 5)
            .map(|e| e.date.to_string())
            .collect()
    }

    #[test]
    fn each_year_s_estimate_stays_in_its_year() {
        // The calendar computes a year's estimate when a day of that year is asked about:
        // a day off that fell in another year would be missed.
        for year in super::super::YEARS {
            for e in estimate(year, &SAT_SUN) {
                assert_eq!(e.date.year(), year, "{e:?}");
            }
        }
    }

    #[test]
    fn estimate_rules_table() {
        // (year, weekday dates off by the estimate), worked out by hand from the rules.
        let cases: &[(i32, &[&str])] = &[
            // Tết 2027: mùng 1 = Sat 06/02 → block Fri 05/02 – Tue 09/02; Sat made up Thu 04/02,
            // Sun made up Wed 10/02. Giỗ Tổ 16/04 Fri. 02/09 Thu → 03/09 Fri. 24/11 Wed.
            (
                2027,
                &[
                    "2027-01-01",
                    "2027-02-04",
                    "2027-02-05",
                    "2027-02-08",
                    "2027-02-09",
                    "2027-02-10",
                    "2027-04-16",
                    "2027-04-30",
                    "2027-05-03",
                    "2027-09-02",
                    "2027-09-03",
                    "2027-11-24",
                ],
            ),
        ];
        for (year, want) in cases {
            let got = off_weekdays(*year);
            assert_eq!(&got, want, "statutory estimate for {year}");
        }
    }

    #[test]
    fn weekend_holiday_compensated_on_next_working_day() {
        // 2027: 01/05 is a Saturday → Monday 03/05 (30/04 Friday is itself a holiday).
        let e = estimate(2027, &SAT_SUN);
        let comp = e.iter().find(|x| x.date == d("2027-05-03")).unwrap();
        assert!(
            comp.reason.starts_with("nghỉ bù cho Ngày Quốc tế Lao động"),
            "{}",
            comp.reason
        );
        // 2028: 30/04 Sun and 01/05 Mon → Tue 02/05.
        let e = estimate(2028, &SAT_SUN);
        assert!(
            e.iter()
                .any(|x| x.date == d("2028-05-02") && x.reason.starts_with("nghỉ bù"))
        );
    }

    #[test]
    fn quoc_khanh_adjacent_day() {
        // 02/09/2029 is a Sunday → 03/09; 02/09/2030 a Monday → 03/09; 02/09/2031 a Tuesday → 01/09.
        for (year, adj) in [
            (2029, "2029-09-03"),
            (2030, "2030-09-03"),
            (2031, "2031-09-01"),
        ] {
            let e = estimate(year, &SAT_SUN);
            assert!(
                e.iter()
                    .any(|x| x.date == d(adj) && x.reason.contains("liền kề")),
                "{year}: {adj}"
            );
        }
        // Before 2021 only one day.
        assert!(
            !estimate(2019, &SAT_SUN)
                .iter()
                .any(|x| x.reason.contains("liền kề"))
        );
    }

    #[test]
    fn culture_day_from_2026() {
        assert!(
            estimate(2026, &SAT_SUN)
                .iter()
                .any(|x| x.date == d("2026-11-24"))
        );
        assert!(
            !estimate(2025, &SAT_SUN)
                .iter()
                .any(|x| x.date == d("2025-11-24"))
        );
    }
}
