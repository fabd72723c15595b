//! Vietnamese text shown to people: weekday names, dates, period labels.
//!
//! Dates shown to people are `dd/mm/yyyy` with the weekday ("thứ Sáu 03/10/2025"); period
//! labels are the words of official reports ("9 tháng năm 2025", "quý III năm 2025").

use chrono::{Datelike, NaiveDate, Weekday};

/// The weekday's name: "thứ Hai" … "thứ Bảy", "Chủ nhật".
pub fn weekday(w: Weekday) -> &'static str {
    match w {
        Weekday::Mon => "thứ Hai",
        Weekday::Tue => "thứ Ba",
        Weekday::Wed => "thứ Tư",
        Weekday::Thu => "thứ Năm",
        Weekday::Fri => "thứ Sáu",
        Weekday::Sat => "thứ Bảy",
        Weekday::Sun => "Chủ nhật",
    }
}

/// `03/10/2025`.
pub fn date(d: NaiveDate) -> String {
    d.format("%d/%m/%Y").to_string()
}

/// `thứ Sáu 03/10/2025`.
pub fn date_with_weekday(d: NaiveDate) -> String {
    format!("{} {}", weekday(d.weekday()), date(d))
}

/// Roman numerals for quarters: "I" … "IV".
pub fn roman(n: u32) -> &'static str {
    match n {
        1 => "I",
        2 => "II",
        3 => "III",
        4 => "IV",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_with_weekdays() {
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(date_with_weekday(d("2025-10-03")), "thứ Sáu 03/10/2025");
        assert_eq!(date_with_weekday(d("2025-10-05")), "Chủ nhật 05/10/2025");
        assert_eq!(date_with_weekday(d("2026-01-01")), "thứ Năm 01/01/2026");
    }
}
