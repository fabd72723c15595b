//! iCalendar (RFC 5545) feeds: each unit's deadlines as all-day events, for a calendar
//! subscription (`GET /u/{token}.ics`, and the admin's `GET /status.ics`).
//!
//! Written here rather than with a crate: a feed needs a dozen properties, and the crates
//! at hand stamp `DTSTAMP` with the time of writing by default, which would change the feed's
//! `ETag` at every request and make every client download it again. What RFC 5545 asks of a
//! writer is done here: CRLF line ends, lines folded at 75 octets (never inside a UTF-8
//! character), and TEXT values escaped (`\\`, `;`, `,`, newlines).

use chrono::{DateTime, Duration, NaiveDate, Utc};

/// One all-day event: an obligation's last day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Globally unique and stable: `rule.period.unit@host`.
    pub uid: String,
    /// When the event last changed (recorded, seen, done).
    pub stamp: DateTime<Utc>,
    /// The day (DTSTART; DTEND is the next day, exclusive).
    pub day: NaiveDate,
    /// The title.
    pub summary: String,
    /// The details, several lines.
    pub description: String,
    /// The link (the ack page, or the read-only view).
    pub url: String,
    /// A reminder at this instant (DISPLAY), if any.
    pub alarm: Option<DateTime<Utc>>,
}

/// The calendar around the events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// X-WR-CALNAME.
    pub name: String,
    /// X-WR-TIMEZONE (an IANA name).
    pub timezone: String,
    /// How often clients should fetch it again.
    pub refresh: Duration,
    /// The events.
    pub events: Vec<Event>,
}

/// Escapes a TEXT value (RFC 5545 §3.3.11).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            // Other control characters are not allowed in a TEXT value.
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Appends one content line, folded so that no line is longer than 75 octets (§3.1): a
/// continuation starts with a space, and a fold never splits a character.
pub fn push_line(out: &mut String, line: &str) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn duration(d: Duration) -> String {
    let secs = d.num_seconds().max(60);
    if secs % 3600 == 0 {
        format!("PT{}H", secs / 3600)
    } else {
        format!("PT{}M", secs / 60)
    }
}

impl Feed {
    /// The feed as text.
    pub fn write(&self) -> String {
        let mut out = String::new();
        let mut line = |s: &str| push_line(&mut out, s);
        line("BEGIN:VCALENDAR");
        line("VERSION:2.0");
        line("PRODID:-//nhacviec//nhacviec//VI");
        line("CALSCALE:GREGORIAN");
        line("METHOD:PUBLISH");
        line(&format!("X-WR-CALNAME:{}", escape(&self.name)));
        line(&format!("X-WR-TIMEZONE:{}", escape(&self.timezone)));
        line(&format!(
            "REFRESH-INTERVAL;VALUE=DURATION:{}",
            duration(self.refresh)
        ));
        line(&format!("X-PUBLISHED-TTL:{}", duration(self.refresh)));
        for e in &self.events {
            line("BEGIN:VEVENT");
            line(&format!("UID:{}", escape(&e.uid)));
            line(&format!("DTSTAMP:{}", utc(e.stamp)));
            line(&format!("DTSTART;VALUE=DATE:{}", e.day.format("%Y%m%d")));
            let end = e.day.succ_opt().unwrap_or(e.day);
            line(&format!("DTEND;VALUE=DATE:{}", end.format("%Y%m%d")));
            line(&format!("SUMMARY:{}", escape(&e.summary)));
            line(&format!("DESCRIPTION:{}", escape(&e.description)));
            line(&format!("URL;VALUE=URI:{}", e.url));
            line("TRANSP:TRANSPARENT");
            line("CLASS:PRIVATE");
            if let Some(at) = e.alarm {
                line("BEGIN:VALARM");
                line("ACTION:DISPLAY");
                line(&format!("DESCRIPTION:{}", escape(&e.summary)));
                line(&format!("TRIGGER;VALUE=DATE-TIME:{}", utc(at)));
                line("END:VALARM");
            }
            line("END:VEVENT");
        }
        line("END:VCALENDAR");
        out
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape("a;b,c\\d\ne\r\u{7}"), "a\\;b\\,c\\\\d\\ne ");
    }

    #[test]
    fn lines_fold_at_75_octets_without_splitting_a_character() {
        let mut out = String::new();
        let long = format!("SUMMARY:{}", "Hạn nộp báo cáo ".repeat(12));
        push_line(&mut out, &long);
        for l in out.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(l.len() <= 75, "{} octets: {l:?}", l.len());
        }
        assert!(out.ends_with("\r\n"));
        let unfolded = out.trim_end_matches("\r\n").replace("\r\n ", "");
        assert_eq!(unfolded, long);
        let mut short = String::new();
        push_line(&mut short, "VERSION:2.0");
        assert_eq!(short, "VERSION:2.0\r\n");
    }

    #[test]
    fn an_all_day_event_ends_the_next_day() {
        let at = Utc.with_ymd_and_hms(2025, 9, 19, 1, 0, 0).unwrap();
        let feed = Feed {
            name: "Nhắc việc, Văn phòng".into(),
            timezone: "Asia/Ho_Chi_Minh".into(),
            refresh: Duration::hours(6),
            events: vec![Event {
                uid: "bc9.2025-9M.vp@example.invalid".into(),
                stamp: at,
                day: NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
                summary: "Hạn: Báo cáo".into(),
                description: "dòng 1\ndòng 2".into(),
                url: "https://example.invalid/a/x".into(),
                alarm: Some(at),
            }],
        };
        let text = feed.write();
        for want in [
            "X-WR-CALNAME:Nhắc việc\\, Văn phòng\r\n",
            "REFRESH-INTERVAL;VALUE=DURATION:PT6H\r\n",
            "X-PUBLISHED-TTL:PT6H\r\n",
            "DTSTART;VALUE=DATE:20251231\r\nDTEND;VALUE=DATE:20260101\r\n",
            "DESCRIPTION:dòng 1\\ndòng 2\r\n",
            "TRIGGER;VALUE=DATE-TIME:20250919T010000Z\r\n",
            "DTSTAMP:20250919T010000Z\r\n",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
        assert_eq!(text, feed.write(), "the same data, the same bytes");
    }
}
