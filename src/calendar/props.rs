//! Property tests of the lunar calendar over random dates of the supported range
//! ([`YEARS`]), at Vietnam's meridian (UTC+7) and China's (UTC+8), the two the module
//! documents and the reference table pins.
//!
//! `lunar.rs`'s own tests walk every day of the range at both meridians; these state the
//! conversions' contract directly (both directions, validity, leap months, the lunar year)
//! and check it on random dates and random lunar dates, including ones that do not exist.
//! Each property runs [`CASES`] cases in the normal suite; `PROPTEST_CASES` runs more.

use chrono::{Datelike, Days, NaiveDate};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};

use super::YEARS;
use super::lunar::{LunarDate, VIETNAM_TZ, lunar_to_solar_tz, solar_to_lunar_tz, tet};

/// Cases per property in the normal suite (a conversion takes microseconds).
const CASES: u32 = 256;

/// [`CASES`] cases, or `PROPTEST_CASES` when set, with failures saved beside this file.
fn proptest_config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// The first and last supported days: from Tết of the first year of [`YEARS`] (the
/// lunar year before it began in the previous Gregorian year) to the end of the last.
fn range() -> (NaiveDate, NaiveDate) {
    let first = tet(*YEARS.start());
    let last = NaiveDate::from_ymd_opt(*YEARS.end(), 12, 31).unwrap();
    (first, last)
}

/// A day of the supported range.
fn date() -> impl Strategy<Value = NaiveDate> {
    let (first, last) = range();
    (0..=(last - first).num_days() as u64).prop_map(move |k| first + Days::new(k))
}

/// Vietnam's or China's meridian, hours east of UTC.
fn meridian() -> impl Strategy<Value = f64> {
    prop_oneof![Just(VIETNAM_TZ), Just(8.0)]
}

fn lunar(year: i32, month: u32, day: u32, leap: bool) -> LunarDate {
    LunarDate {
        year,
        month,
        day,
        leap,
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Solar → lunar → solar gives the same day back, and the lunar date is valid: month
    /// 1–12, day 1–30; its year is the Gregorian year from that year's Tết on, the year
    /// before until then; the next day is the next day of the same month or day 1 of the
    /// next month after a day 29 or 30.
    #[test]
    fn solar_to_lunar_round_trips_to_a_valid_date(date in date(), tz in meridian()) {
        let l = solar_to_lunar_tz(date, tz);
        prop_assert_eq!(lunar_to_solar_tz(l, tz), Some(date), "{:?}", l);
        prop_assert!((1..=12).contains(&l.month), "{:?}", l);
        prop_assert!((1..=30).contains(&l.day), "{:?}", l);
        let tet = lunar_to_solar_tz(lunar(date.year(), 1, 1, false), tz).unwrap();
        let year = if date >= tet { date.year() } else { date.year() - 1 };
        prop_assert_eq!(l.year, year, "{:?} (Tết {})", l, tet);
        let next = solar_to_lunar_tz(date + Days::new(1), tz);
        if next.day == 1 {
            prop_assert!(l.day >= 29, "month ends on day {} ({:?})", l.day, l);
        } else {
            prop_assert_eq!(next, lunar(l.year, l.month, l.day + 1, l.leap));
        }
    }

    /// Leap flags are consistent: a lunar year has at most one leap month; a leap month
    /// follows, right after, the regular month of its number (29 or 30 days earlier); and
    /// a date in a leap month has that regular month before it.
    #[test]
    fn leap_months_follow_their_regular_month(date in date(), tz in meridian()) {
        let l = solar_to_lunar_tz(date, tz);
        let leap_months: Vec<u32> = (1..=12)
            .filter(|&m| lunar_to_solar_tz(lunar(l.year, m, 1, true), tz).is_some())
            .collect();
        prop_assert!(leap_months.len() <= 1, "lunar year {} has leap months {:?}", l.year, leap_months);
        for &m in &leap_months {
            let regular = lunar_to_solar_tz(lunar(l.year, m, 1, false), tz);
            let leap = lunar_to_solar_tz(lunar(l.year, m, 1, true), tz);
            let gap = regular.zip(leap).map(|(r, x)| (x - r).num_days());
            prop_assert!(matches!(gap, Some(29 | 30)), "leap {} of {}: {:?} after {:?}", m, l.year, leap, regular);
        }
        if l.leap {
            prop_assert_eq!(leap_months, vec![l.month], "{:?}", l);
        }
    }

    /// Lunar → solar → lunar: a lunar date that exists converts back to itself; one that
    /// does not is a leap month the year lacks or a day 30 of a 29-day month: every day 1–29
    /// of a regular month exists.
    #[test]
    fn lunar_to_solar_round_trips_or_does_not_exist(
        year in *YEARS.start()..*YEARS.end(),
        month in 1u32..=12,
        day in prop_oneof![1u32..=30, Just(30)],
        leap in any::<bool>(),
        tz in meridian(),
    ) {
        let l = lunar(year, month, day, leap);
        match lunar_to_solar_tz(l, tz) {
            Some(solar) => prop_assert_eq!(solar_to_lunar_tz(solar, tz), l, "via {}", solar),
            None => prop_assert!(leap || day == 30, "{:?} does not exist", l),
        }
    }
}
