//! Periods: the span an occurrence covers, its id (`2025-H1`) and its Vietnamese label.

use std::fmt;

use chrono::NaiveDate;

use crate::config::PeriodKind;
use crate::present;

/// One period of a rule: `2025-07`, `2025-Q3`, `2025-H1`, `2025-9M`, `2025`, or a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    /// A month (1–12).
    Month(i32, u32),
    /// A quarter (1–4).
    Quarter(i32, u32),
    /// A half-year (1–2).
    Half(i32, u32),
    /// January–September.
    NineMonths(i32),
    /// The calendar year.
    Year(i32),
    /// A one-off, named by its due date.
    Once(NaiveDate),
}

impl Period {
    /// The periods of `kind` in `year` selected by `which` (ignored for nine-months and year).
    pub fn of_year(kind: PeriodKind, year: i32, which: &[u32]) -> Vec<Period> {
        match kind {
            PeriodKind::Month => which.iter().map(|&m| Period::Month(year, m)).collect(),
            PeriodKind::Quarter => which.iter().map(|&q| Period::Quarter(year, q)).collect(),
            PeriodKind::HalfYear => which.iter().map(|&h| Period::Half(year, h)).collect(),
            PeriodKind::NineMonths => vec![Period::NineMonths(year)],
            PeriodKind::Year => vec![Period::Year(year)],
            PeriodKind::Once => Vec::new(),
        }
    }

    /// Parses a period id of a rule with periods of `kind` (the inverse of `Display`).
    pub fn parse(kind: PeriodKind, s: &str) -> Option<Period> {
        let (year, rest) = match s.split_once('-') {
            Some((y, r)) => (y.parse::<i32>().ok()?, Some(r)),
            None => (s.parse::<i32>().ok()?, None),
        };
        let num = |prefix: &str, max: u32| -> Option<u32> {
            let n: u32 = rest?.strip_prefix(prefix)?.parse().ok()?;
            (1..=max).contains(&n).then_some(n)
        };
        let p = match kind {
            PeriodKind::Month => Period::Month(year, num("", 12)?),
            PeriodKind::Quarter => Period::Quarter(year, num("Q", 4)?),
            PeriodKind::HalfYear => Period::Half(year, num("H", 2)?),
            PeriodKind::NineMonths => (rest? == "9M").then_some(Period::NineMonths(year))?,
            PeriodKind::Year => rest.is_none().then_some(Period::Year(year))?,
            PeriodKind::Once => Period::Once(NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?),
        };
        // Only the canonical spelling ("2025-07", not "2025-7").
        (p.to_string() == s).then_some(p)
    }

    /// The year and month of the period's last month.
    pub fn last_month(&self) -> (i32, u32) {
        match *self {
            Period::Month(y, m) => (y, m),
            Period::Quarter(y, q) => (y, q * 3),
            Period::Half(y, h) => (y, h * 6),
            Period::NineMonths(y) => (y, 9),
            Period::Year(y) => (y, 12),
            Period::Once(d) => {
                use chrono::Datelike;
                (d.year(), d.month())
            }
        }
    }

    /// The label used in messages: "6 tháng đầu năm 2025", "quý III năm 2025".
    pub fn label(&self) -> String {
        match *self {
            Period::Month(y, m) => format!("tháng {m} năm {y}"),
            Period::Quarter(y, q) => format!("quý {} năm {y}", present::roman(q)),
            Period::Half(y, 1) => format!("6 tháng đầu năm {y}"),
            Period::Half(y, _) => format!("6 tháng cuối năm {y}"),
            Period::NineMonths(y) => format!("9 tháng năm {y}"),
            Period::Year(y) => format!("năm {y}"),
            Period::Once(d) => format!("hạn ngày {}", present::date(d)),
        }
    }
}

impl fmt::Display for Period {
    /// The id used in obligation keys: `2025-07`, `2025-Q3`, `2025-H1`, `2025-9M`, `2025`, `2025-10-15`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Period::Month(y, m) => write!(f, "{y}-{m:02}"),
            Period::Quarter(y, q) => write!(f, "{y}-Q{q}"),
            Period::Half(y, h) => write!(f, "{y}-H{h}"),
            Period::NineMonths(y) => write!(f, "{y}-9M"),
            Period::Year(y) => write!(f, "{y}"),
            Period::Once(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_labels() {
        let d = NaiveDate::from_ymd_opt(2025, 10, 15).unwrap();
        let cases = [
            (Period::Half(2025, 1), "2025-H1", "6 tháng đầu năm 2025"),
            (Period::Half(2025, 2), "2025-H2", "6 tháng cuối năm 2025"),
            (Period::NineMonths(2025), "2025-9M", "9 tháng năm 2025"),
            (Period::Year(2025), "2025", "năm 2025"),
            (Period::Quarter(2025, 3), "2025-Q3", "quý III năm 2025"),
            (Period::Month(2025, 7), "2025-07", "tháng 7 năm 2025"),
            (Period::Once(d), "2025-10-15", "hạn ngày 15/10/2025"),
        ];
        for (p, id, label) in cases {
            assert_eq!(p.to_string(), id);
            assert_eq!(p.label(), label);
            let kind = match p {
                Period::Month(..) => PeriodKind::Month,
                Period::Quarter(..) => PeriodKind::Quarter,
                Period::Half(..) => PeriodKind::HalfYear,
                Period::NineMonths(_) => PeriodKind::NineMonths,
                Period::Year(_) => PeriodKind::Year,
                Period::Once(_) => PeriodKind::Once,
            };
            assert_eq!(Period::parse(kind, id), Some(p), "{id}");
        }
        for (kind, bad) in [
            (PeriodKind::Month, "2025-7"),
            (PeriodKind::Month, "2025-13"),
            (PeriodKind::Quarter, "2025-Q5"),
            (PeriodKind::HalfYear, "2025-9M"),
            (PeriodKind::Year, "2025-H1"),
            (PeriodKind::Once, "2025-02-30"),
        ] {
            assert_eq!(Period::parse(kind, bad), None, "{bad}");
        }
    }
}
