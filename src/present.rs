//! Words people read, shared by the messages, the pages, the reports and the commands:
//! Vietnamese weekdays and dates, moments, deadlines in words, working days left or late, and
//! the states' labels and colours.
//!
//! Dates shown to people are `dd/mm/yyyy` with the weekday ("thứ Sáu 03/10/2025"); period
//! labels are the words of official reports ("9 tháng năm 2025", "quý III năm 2025").

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Weekday};
use chrono_tz::Tz;

use crate::calendar::Calendar;
use crate::state::Shown;

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

/// `08:00 thứ Sáu 03/10/2025`.
pub fn moment_words(t: DateTime<Tz>) -> String {
    format!(
        "{} {}",
        t.format("%H:%M"),
        date_with_weekday(t.date_naive())
    )
}

/// `08:00 03/10/2025`, where a table has no room for the weekday.
pub fn moment_short(t: DateTime<Tz>) -> String {
    format!("{} {}", t.format("%H:%M"), date(t.date_naive()))
}

/// How a deadline instant is said: "before day D" (00:00 of the day the rule names), "at the
/// end of day D" (24:00), or "at T on day D".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineForm {
    /// 00:00 of this day: "trước ngày 05/10/2025".
    Before(NaiveDate),
    /// 24:00 of this day: "hết ngày 30/09/2025".
    EndOf(NaiveDate),
    /// A time of day: "17:00 ngày 15/10/2025".
    At(NaiveDate, NaiveTime),
}

impl DeadlineForm {
    /// The form of `deadline` for a rule that names `due_day` (`None` for records that did
    /// not keep it: a midnight deadline then reads "before").
    pub fn of(deadline: DateTime<Tz>, due_day: Option<NaiveDate>) -> DeadlineForm {
        let local = deadline.naive_local();
        if local.time() != NaiveTime::MIN {
            DeadlineForm::At(local.date(), local.time())
        } else if due_day.is_none_or(|d| d == local.date()) {
            DeadlineForm::Before(local.date())
        } else {
            DeadlineForm::EndOf(local.date().pred_opt().unwrap_or(local.date()))
        }
    }
}

/// The deadline in words: "trước ngày 05/10/2025 (Chủ nhật)", "hết ngày 30/09/2025 (thứ
/// Ba)" or "17:00 ngày 15/10/2025 (thứ Tư)"; with the last working day when given:
/// "…; hạn làm việc cuối: thứ Sáu 03/10/2025".
pub fn deadline_words(
    deadline: DateTime<Tz>,
    due_day: Option<NaiveDate>,
    last_day: Option<NaiveDate>,
) -> String {
    let day = |d: NaiveDate| format!("{} ({})", date(d), weekday(d.weekday()));
    let head = match DeadlineForm::of(deadline, due_day) {
        DeadlineForm::Before(d) => format!("trước ngày {}", day(d)),
        DeadlineForm::EndOf(d) => format!("hết ngày {}", day(d)),
        DeadlineForm::At(d, t) => format!("{} ngày {}", t.format("%H:%M"), day(d)),
    };
    match last_day {
        Some(d) => format!("{head}; hạn làm việc cuối: {}", date_with_weekday(d)),
        None => head,
    }
}

/// Working days strictly after `from` up to and including `to` (0 if `to` is not later).
pub fn working_days_between(cal: &Calendar, from: NaiveDate, to: NaiveDate) -> u32 {
    let n = from
        .iter_days()
        .skip(1)
        .take_while(|d| *d <= to)
        .filter(|d| cal.is_working(*d))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Shown {
    /// Its Vietnamese label.
    pub fn label(self) -> &'static str {
        match self {
            Shown::Done => "Đã hoàn thành",
            Shown::Seen => "Đã nhận",
            Shown::Pending => "Chưa xác nhận",
            Shown::Overdue => "Quá hạn",
            Shown::Upcoming => "Chưa đến hạn nhắc",
        }
    }

    /// Its colour, as Vietnamese e-office systems show it: green done, blue seen, amber
    /// pending, red overdue; grey for what has not been reminded yet.
    pub fn color(self) -> &'static str {
        match self {
            Shown::Done => "#15803d",
            Shown::Seen => "#1d4ed8",
            Shown::Pending => "#b45309",
            Shown::Overdue => "#b91c1c",
            Shown::Upcoming => "#4b5563",
        }
    }
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn html_escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn dates_with_weekdays() {
        assert_eq!(date_with_weekday(d("2025-10-03")), "thứ Sáu 03/10/2025");
        assert_eq!(date_with_weekday(d("2025-10-05")), "Chủ nhật 05/10/2025");
        assert_eq!(date_with_weekday(d("2026-01-01")), "thứ Năm 01/01/2026");
    }

    #[test]
    fn deadlines_in_words() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let at = |s: &str, h| {
            tz.from_local_datetime(&d(s).and_hms_opt(h, 0, 0).unwrap())
                .unwrap()
        };
        let oct5 = at("2025-10-05", 0);
        assert_eq!(
            deadline_words(oct5, Some(d("2025-10-05")), Some(d("2025-10-03"))),
            "trước ngày 05/10/2025 (Chủ nhật); hạn làm việc cuối: thứ Sáu 03/10/2025"
        );
        // The same instant for a rule due at the end of the 4th.
        assert_eq!(
            deadline_words(oct5, Some(d("2025-10-04")), None),
            "hết ngày 04/10/2025 (thứ Bảy)"
        );
        assert_eq!(
            deadline_words(oct5, None, None),
            "trước ngày 05/10/2025 (Chủ nhật)"
        );
        assert_eq!(
            deadline_words(at("2025-10-15", 17), Some(d("2025-10-15")), None),
            "17:00 ngày 15/10/2025 (thứ Tư)"
        );
    }
}
