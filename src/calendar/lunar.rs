//! The Vietnamese lunisolar calendar (âm lịch): conversion between Gregorian
//! and lunar dates, and the two lunar holidays most reminders are about, Tết
//! and Giỗ Tổ Hùng Vương.
//!
//! Vietnam keeps the same rules as the Chinese calendar: a month begins on the
//! day of a new moon, month 11 is the one containing the winter solstice, and
//! in a year of 13 months the first month without a major solar term is the
//! leap (nhuận) month. What a "day" is, though, is decided at Vietnam's
//! meridian, UTC+7, not China's UTC+8. A new moon or solar term falling
//! between 16:00 and 17:00 UTC therefore lands on different dates in the two
//! calendars, which moves month starts, leap months and holidays: Tết 1985 was
//! on 21 January in Vietnam but 20 February in China. Every conversion takes
//! the time zone so the difference can be shown and tested; the plain versions
//! use [`VIETNAM_TZ`]. (Vietnam adopted UTC+7 for its calendar in 1968; for
//! earlier years this module still computes the UTC+7 calendar, which in a few
//! years differs by a day from the calendars printed at the time.)
//!
//! The algorithm is Hồ Ngọc Đức's ("Thuật toán tính âm lịch", published with
//! his amlich programs), built on the truncated series in Jean Meeus,
//! *Astronomical Algorithms*, for new moons and the sun's longitude. Its new
//! moons are good to a few minutes over 1900–2100, the range the unit tests
//! check against an independent table (`tests/data/lunar-vn-1900-2100.tsv`,
//! made by `tools/gen-lunar-table.py`). Far outside that range the functions
//! stay total but the astronomy, and so the dates, become meaningless.

use chrono::{Datelike, NaiveDate};

/// Vietnam's meridian, hours east of UTC.
pub const VIETNAM_TZ: f64 = 7.0;

/// A date in the lunisolar calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LunarDate {
    /// Lunar year, numbered like the Gregorian year in which it begins (lunar
    /// 2025 runs from Tết, 2025-01-29, to 2026-02-16).
    pub year: i32,
    /// Month 1–12; a leap month carries the number of the month it repeats.
    pub month: u32,
    /// Day of the month, 1–29 or 1–30.
    pub day: u32,
    /// Whether this is the leap (nhuận) month that follows the regular month
    /// of the same number.
    pub leap: bool,
}

/// Mean length of a synodic month (new moon to new moon), in days.
const SYNODIC_MONTH: f64 = 29.530588853;
/// Julian date of new moon number 0 of Hồ Ngọc Đức's count, the one on
/// 1900-01-01; new moons are numbered from it.
const NEW_MOON_ZERO: f64 = 2_415_021.076_998_695;
/// Julian day number of 1900-01-01.
const JDN_1900: i64 = 2_415_021;
/// Julian day number minus chrono's `num_days_from_ce` (which is 1 on
/// 0001-01-01, JDN 1 721 426).
const JDN_CE_OFFSET: i64 = 1_721_425;

/// Solar (Gregorian) date to lunar date for the given time zone.
///
/// `tz` is hours east of UTC (7.0 for Vietnam, 8.0 for China). Values are
/// clamped to the real range −12..=14 and NaN counts as UTC, so that even a
/// nonsensical offset cannot stall the new-moon search.
pub fn solar_to_lunar_tz(date: NaiveDate, tz: f64) -> LunarDate {
    let tz = sane_tz(tz);
    let day_number = jdn(date);
    let year = i64::from(date.year());
    let month_start = new_moon_on_or_before(day_number, tz);

    // The lunar year changes at month 11 (the solstice month) for this
    // bookkeeping: find the month-11 starts on either side of the date.
    let this_m11 = lunar_month_11(year, tz);
    let (mut lunar_year, a11, b11) = if this_m11 >= month_start {
        (year, lunar_month_11(year - 1, tz), this_m11)
    } else {
        (year + 1, this_m11, lunar_month_11(year + 1, tz))
    };

    // Months elapsed since month 11: every lunar month is 29 or 30 days, so
    // dividing by 29 counts them exactly over a year.
    let diff = (month_start - a11).div_euclid(29);
    let mut month = diff + 11;
    let mut leap = false;
    if b11 - a11 > 365 {
        // 13 new moons between the two solstice months: one of them is leap.
        let leap_diff = leap_month_offset(a11, tz);
        if diff >= leap_diff {
            month = diff + 10;
            leap = diff == leap_diff;
        }
    }
    let month = (month - 1).rem_euclid(12) + 1;
    // Months 11 and 12 that come right after a11 belong to the lunar year
    // that began before them.
    if month >= 11 && diff < 4 {
        lunar_year -= 1;
    }

    LunarDate {
        // A lunar year is within one of the Gregorian year, itself an i32.
        year: i32::try_from(lunar_year).unwrap_or(date.year()),
        // 1..=12 by the rem_euclid above.
        month: month as u32,
        // month_start <= day_number, so this is at least 1; it is at most the
        // month's length because the next new moon is after day_number.
        day: (day_number - month_start + 1) as u32,
        leap,
    }
}

/// Solar (Gregorian) date to lunar date in Vietnam (UTC+7).
pub fn solar_to_lunar(date: NaiveDate) -> LunarDate {
    solar_to_lunar_tz(date, VIETNAM_TZ)
}

/// Lunar date to solar; None if that lunar date does not exist (e.g. leap
/// month absent, day 30 of a 29-day month).
///
/// `tz` is hours east of UTC, treated as in [`solar_to_lunar_tz`]. Also None
/// for a month outside 1–12, a day outside 1–30, or a year outside what
/// [`NaiveDate`] can represent.
pub fn lunar_to_solar_tz(l: LunarDate, tz: f64) -> Option<NaiveDate> {
    if !(1..=12).contains(&l.month)
        || !(1..=30).contains(&l.day)
        || !(NaiveDate::MIN.year()..=NaiveDate::MAX.year()).contains(&l.year)
    {
        // The year bound also keeps the day arithmetic below far from i64
        // overflow, whatever the astronomy does at those years.
        return None;
    }
    let tz = sane_tz(tz);
    let year = i64::from(l.year);
    let month = i64::from(l.month);

    // Months 1..=10 of lunar year Y lie between the month-11 starts of
    // Gregorian years Y-1 and Y; months 11 and 12 after that of year Y.
    let (a11, b11) = if month < 11 {
        (lunar_month_11(year - 1, tz), lunar_month_11(year, tz))
    } else {
        (lunar_month_11(year, tz), lunar_month_11(year + 1, tz))
    };

    // Position of the month counted in new moons after month 11.
    let mut off = (month - 11).rem_euclid(12);
    if b11 - a11 > 365 {
        let leap_off = leap_month_offset(a11, tz);
        if l.leap && month != leap_month_number(leap_off) {
            return None;
        }
        if l.leap || off >= leap_off {
            off += 1;
        }
    } else if l.leap {
        return None;
    }

    let k = new_moon_index(a11);
    let start = new_moon_day(k + off, tz);
    let length = new_moon_day(k + off + 1, tz) - start;
    let day = i64::from(l.day);
    if day > length {
        return None;
    }
    date_from_jdn(start + day - 1)
}

/// Lunar date to solar in Vietnam (UTC+7); None if that lunar date does not
/// exist.
pub fn lunar_to_solar(l: LunarDate) -> Option<NaiveDate> {
    lunar_to_solar_tz(l, VIETNAM_TZ)
}

/// Mùng 1 tháng Giêng (Tết) of the lunar year that starts in Gregorian year
/// `year`, Vietnam.
///
/// Every lunar year has a regular first month, so this exists wherever the
/// algorithm is meaningful; only for years so far out that the result is not
/// a representable [`NaiveDate`] does it saturate to [`NaiveDate::MIN`] or
/// [`NaiveDate::MAX`].
pub fn tet(year: i32) -> NaiveDate {
    holiday(year, 1, 1)
}

/// 10/3 lunar (Giỗ Tổ Hùng Vương) in Gregorian year `year`, Vietnam (the
/// non-leap 3rd month).
///
/// When the year has a leap 3rd month the anniversary is kept in the regular
/// one, which comes first. Saturates like [`tet`] far outside the supported
/// range.
pub fn gio_to(year: i32) -> NaiveDate {
    holiday(year, 3, 10)
}

/// A day of a regular (non-leap) month in Vietnam, saturating instead of
/// failing: a regular month exists in every lunar year and has at least 29
/// days, so `lunar_to_solar` can only return None here when the date falls
/// outside chrono's range, and then the nearest end of that range is the
/// honest answer.
fn holiday(year: i32, month: u32, day: u32) -> NaiveDate {
    let l = LunarDate {
        year,
        month,
        day,
        leap: false,
    };
    lunar_to_solar(l).unwrap_or(if year < 0 {
        NaiveDate::MIN
    } else {
        NaiveDate::MAX
    })
}

/// Clamps a time-zone offset to the offsets in use on Earth. A NaN or
/// infinite offset would make every new-moon day the same integer and the
/// search in `new_moon_on_or_before` would never end.
fn sane_tz(tz: f64) -> f64 {
    if tz.is_nan() {
        0.0
    } else {
        tz.clamp(-12.0, 14.0)
    }
}

/// Julian day number of a date. chrono is proleptic Gregorian; Hồ Ngọc Đức
/// switches to the Julian calendar before 1582, which only matters far
/// outside the supported range.
fn jdn(date: NaiveDate) -> i64 {
    i64::from(date.num_days_from_ce()) + JDN_CE_OFFSET
}

/// Julian day number of 31 December of `year` (proleptic Gregorian), in
/// integer arithmetic so that years chrono cannot represent still work.
fn jdn_dec_31(year: i64) -> i64 {
    // The standard civil-to-JDN formula with the March-based month shift
    // already applied for December (m = 9, so (153 m + 2) / 5 = 275).
    let y = year + 4800;
    31 + 275 + 365 * y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) - 32045
}

fn date_from_jdn(jdn: i64) -> Option<NaiveDate> {
    i32::try_from(jdn - JDN_CE_OFFSET)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
}

/// Number of the new moon that begins on day `jdn` (or nearest to it).
fn new_moon_index(jdn: i64) -> i64 {
    ((jdn as f64 - NEW_MOON_ZERO) / SYNODIC_MONTH + 0.5).floor() as i64
}

/// Julian day number of the local day on which new moon number `k` falls
/// (k = 0 on 1900-01-01): Meeus's mean new moon plus its main periodic
/// terms, with time counted in centuries from 1900, as Hồ Ngọc Đức uses it.
fn new_moon_day(k: i64, tz: f64) -> i64 {
    let k = k as f64;
    let t = k / 1236.85; // Julian centuries since 1900-01-01.
    let t2 = t * t;
    let t3 = t2 * t;
    let dr = std::f64::consts::PI / 180.0;

    // Mean new moon, in Julian date.
    let mut jd = 2_415_020.759_33 + 29.530_588_68 * k + 0.000_117_8 * t2 - 0.000_000_155 * t3;
    jd += 0.00033 * ((166.56 + 132.87 * t - 0.009173 * t2) * dr).sin();
    // Sun's and moon's mean anomalies and the moon's argument of latitude.
    let m = (359.2242 + 29.105_356_08 * k - 0.000_033_3 * t2 - 0.000_003_47 * t3) * dr;
    let mpr = (306.0253 + 385.816_918_06 * k + 0.010_730_6 * t2 + 0.000_012_36 * t3) * dr;
    let f = (21.2964 + 390.670_506_46 * k - 0.001_652_8 * t2 - 0.000_002_39 * t3) * dr;
    // Periodic corrections from the true positions.
    let c1 = (0.1734 - 0.000393 * t) * m.sin() + 0.0021 * (2.0 * m).sin() - 0.4068 * mpr.sin()
        + 0.0161 * (2.0 * mpr).sin()
        - 0.0004 * (3.0 * mpr).sin()
        + 0.0104 * (2.0 * f).sin()
        - 0.0051 * (m + mpr).sin()
        - 0.0074 * (m - mpr).sin()
        + 0.0004 * (2.0 * f + m).sin()
        - 0.0004 * (2.0 * f - m).sin()
        - 0.0006 * (2.0 * f + mpr).sin()
        + 0.0010 * (2.0 * f - mpr).sin()
        + 0.0005 * (2.0 * mpr + m).sin();
    // ΔT (dynamical minus universal time), in days: the series gives
    // dynamical time, civil days follow the Earth's rotation.
    let delta_t = if t < -11.0 {
        0.001 + 0.000839 * t + 0.0002261 * t2 - 0.00000845 * t3 - 0.000000081 * t * t3
    } else {
        -0.000278 + 0.000265 * t + 0.000262 * t2
    };
    let jd_new = jd + c1 - delta_t;
    // Julian dates start at noon (+0.5 gives the civil day); shift to local.
    (jd_new + 0.5 + tz / 24.0).floor() as i64
}

/// Which 30° sector (0..=11) of the ecliptic the sun is in at local midnight
/// starting day `jdn`. Sector boundaries are the major solar terms (trung
/// khí); sector 9 starts at the winter solstice (270°).
fn sun_longitude_sector(jdn: i64, tz: f64) -> i64 {
    // Local midnight of day `jdn` is JD jdn - 0.5 - tz/24; centuries from J2000.0.
    let t = (jdn as f64 - 2_451_545.5 - tz / 24.0) / 36525.0;
    let t2 = t * t;
    let dr = std::f64::consts::PI / 180.0;
    let m = 357.529_10 + 35_999.050_30 * t - 0.000_155_9 * t2 - 0.000_000_48 * t * t2;
    let l0 = 280.466_45 + 36_000.769_83 * t + 0.000_303_2 * t2;
    let dl = (1.914_600 - 0.004_817 * t - 0.000_014 * t2) * (dr * m).sin()
        + (0.019_993 - 0.000_101 * t) * (dr * 2.0 * m).sin()
        + 0.000_290 * (dr * 3.0 * m).sin();
    let tau = 2.0 * std::f64::consts::PI;
    let l = ((l0 + dl) * dr).rem_euclid(tau);
    // rem_euclid may round up to exactly tau, which is sector 0 again.
    ((l / std::f64::consts::PI * 6.0).floor() as i64) % 12
}

/// Julian day number of the first day of lunar month 11 around the end of
/// Gregorian `year`: the month that contains the December solstice.
fn lunar_month_11(year: i64, tz: f64) -> i64 {
    let off = jdn_dec_31(year) - JDN_1900;
    let k = (off as f64 / SYNODIC_MONTH).floor() as i64;
    let nm = new_moon_day(k, tz);
    // New moon k is the last one before about 31 December. If the sun is
    // already past the solstice when it begins, the solstice fell in the
    // month before, so that one is month 11.
    if sun_longitude_sector(nm, tz) >= 9 {
        new_moon_day(k - 1, tz)
    } else {
        nm
    }
}

/// In a 13-month year starting with month 11 at `a11`, the position (1 = the
/// month after month 11) of the leap month: the first month during which the
/// sun crosses no sector boundary, i.e. contains no major term.
fn leap_month_offset(a11: i64, tz: f64) -> i64 {
    let k = new_moon_index(a11);
    let mut i = 1;
    let mut arc = sun_longitude_sector(new_moon_day(k + i, tz), tz);
    loop {
        let last = arc;
        i += 1;
        arc = sun_longitude_sector(new_moon_day(k + i, tz), tz);
        // Month i-1 began and ended in the same sector: no major term. A
        // 13-month year always has one; the bound is a guard against
        // rounding at sector edges, as in the original.
        if arc == last || i >= 14 {
            return i - 1;
        }
    }
}

/// Number of the month a leap month repeats, from its position after month
/// 11 (1 → leap 11, 2 → leap 12, 3 → leap 1, …). The original computes
/// `leap_off - 2`, which names a leap month 12 "0"; that case does not occur
/// between 1900 and 2100 but is handled here all the same.
fn leap_month_number(leap_off: i64) -> i64 {
    (leap_off + 9).rem_euclid(12) + 1
}

/// Day on which the lunar month containing day `day_number` began.
fn new_moon_on_or_before(day_number: i64, tz: f64) -> i64 {
    let mut k = ((day_number as f64 - NEW_MOON_ZERO) / SYNODIC_MONTH).floor() as i64 + 1;
    // The estimate is off by at most one in the supported range. The loops
    // still end anywhere chrono reaches: new-moon days grow by over 20 days
    // per k even where ΔT's polynomial runs wild (|T| ≈ 2600 centuries).
    while new_moon_day(k, tz) > day_number {
        k -= 1;
    }
    while new_moon_day(k + 1, tz) <= day_number {
        k += 1;
    }
    new_moon_day(k, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = include_str!("../../tests/data/lunar-vn-1900-2100.tsv");
    const CHINA_TZ: f64 = 8.0;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("valid test date")
    }

    fn lunar(year: i32, month: u32, day: u32, leap: bool) -> LunarDate {
        LunarDate {
            year,
            month,
            day,
            leap,
        }
    }

    #[test]
    fn matches_reference_table_1900_2100() {
        let mut rows = 0;
        let mut mismatches = Vec::new();
        for line in TABLE.lines() {
            if line.starts_with('#') || line.starts_with("year\t") || line.trim().is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 3, "bad table line {line:?}");
            let year: i32 = fields[0].parse().expect("year");
            let want_tet: NaiveDate = fields[1].parse().expect("tet date");
            let want_gio_to: NaiveDate = fields[2].parse().expect("gio_to date");
            if tet(year) != want_tet {
                mismatches.push(format!("{year} tet: got {}, table {want_tet}", tet(year)));
            }
            if gio_to(year) != want_gio_to {
                mismatches.push(format!(
                    "{year} gio_to: got {}, table {want_gio_to}",
                    gio_to(year)
                ));
            }
            rows += 1;
        }
        assert_eq!(rows, 201, "table should cover 1900..=2100");
        assert!(
            mismatches.is_empty(),
            "{} mismatches:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
    }

    #[test]
    fn tet_matches_spec_table() {
        let expected = [
            (1985, d(1985, 1, 21)),
            (2007, d(2007, 2, 17)),
            (2024, d(2024, 2, 10)),
            (2025, d(2025, 1, 29)),
            (2026, d(2026, 2, 17)),
            (2027, d(2027, 2, 6)),
            (2028, d(2028, 1, 26)),
            (2029, d(2029, 2, 13)),
            (2030, d(2030, 2, 2)),
            (2031, d(2031, 1, 23)),
            (2032, d(2032, 2, 11)),
            (2033, d(2033, 1, 31)),
            (2034, d(2034, 2, 19)),
            (2035, d(2035, 2, 8)),
        ];
        for (year, want) in expected {
            assert_eq!(tet(year), want, "Tết {year}");
            assert_eq!(solar_to_lunar(want), lunar(year, 1, 1, false));
        }
    }

    #[test]
    fn chinese_new_year_differs_at_utc8() {
        let new_year = |year| lunar_to_solar_tz(lunar(year, 1, 1, false), CHINA_TZ);
        assert_eq!(new_year(1985), Some(d(1985, 2, 20)));
        assert_eq!(new_year(2007), Some(d(2007, 2, 18)));
        assert_eq!(new_year(2030), Some(d(2030, 2, 3)));
        // And agrees where the calendars agree.
        assert_eq!(new_year(2025), Some(tet(2025)));
    }

    #[test]
    fn gio_to_known_years() {
        assert_eq!(gio_to(2025), d(2025, 4, 7));
        assert_eq!(gio_to(2026), d(2026, 4, 26));
    }

    #[test]
    fn gio_to_differs_between_utc7_and_utc8_in_2037_and_2038() {
        for (year, vn, cn) in [
            (2037, d(2037, 4, 24), d(2037, 4, 25)),
            (2038, d(2038, 4, 13), d(2038, 4, 14)),
        ] {
            let at_utc8 = lunar_to_solar_tz(lunar(year, 3, 10, false), CHINA_TZ);
            assert_ne!(Some(gio_to(year)), at_utc8, "{year}");
            assert_eq!(gio_to(year), vn);
            assert_eq!(at_utc8, Some(cn));
        }
    }

    #[test]
    fn leap_months() {
        // Each pair both ways: the first day of a leap month, and the month around it.
        let pairs = [
            // 2023: leap 2nd month from 2023-03-22 (same in China).
            (d(2023, 3, 22), lunar(2023, 2, 1, true)),
            (d(2023, 4, 20), lunar(2023, 3, 1, false)),
            // 2025: leap 6th month from 2025-07-25, after the common 6th.
            (d(2025, 7, 25), lunar(2025, 6, 1, true)),
            (d(2025, 6, 25), lunar(2025, 6, 1, false)),
            // 2033: the rare leap 11th month, which belongs to lunar year 2033.
            (d(2033, 12, 22), lunar(2033, 11, 1, true)),
            // 1985: leap 2nd month in Vietnam; China had a leap 10th in 1984 instead.
            (d(1985, 3, 21), lunar(1985, 2, 1, true)),
        ];
        for (solar, moon) in pairs {
            assert_eq!(solar_to_lunar(solar), moon, "{solar}");
            assert_eq!(lunar_to_solar(moon), Some(solar), "{moon:?}");
        }
        assert_eq!(solar_to_lunar(d(2023, 3, 21)), lunar(2023, 2, 30, false));
        assert_eq!(
            solar_to_lunar_tz(d(1985, 3, 21), CHINA_TZ),
            lunar(1985, 2, 1, false)
        );
        assert_eq!(lunar_to_solar_tz(lunar(1985, 2, 1, true), CHINA_TZ), None);
    }

    #[test]
    fn nonexistent_lunar_dates_are_none() {
        // No leap month in 2024, and 2025's leap month is the 6th.
        assert_eq!(lunar_to_solar(lunar(2024, 2, 1, true)), None);
        assert_eq!(lunar_to_solar(lunar(2025, 5, 1, true)), None);
        // 2025's 2nd month has 29 days (2025-02-28 ..= 2025-03-28).
        assert_eq!(
            lunar_to_solar(lunar(2025, 2, 29, false)),
            Some(d(2025, 3, 28))
        );
        assert_eq!(lunar_to_solar(lunar(2025, 2, 30, false)), None);
        // Out-of-range fields.
        assert_eq!(lunar_to_solar(lunar(2025, 0, 1, false)), None);
        assert_eq!(lunar_to_solar(lunar(2025, 13, 1, false)), None);
        assert_eq!(lunar_to_solar(lunar(2025, 1, 0, false)), None);
        assert_eq!(lunar_to_solar(lunar(2025, 1, 31, false)), None);
        assert_eq!(lunar_to_solar(lunar(i32::MAX, 1, 1, false)), None);
    }

    /// Every day from Tết 1900 to the end of 2100, at both UTC+7 and UTC+8:
    /// the lunar dates advance one day at a time through months of 29 or 30
    /// days, and each converts back to the same solar date.
    #[test]
    fn round_trip_and_continuity_1900_2100() {
        for tz in [VIETNAM_TZ, CHINA_TZ] {
            let mut prev = solar_to_lunar_tz(d(1900, 1, 30), tz);
            let mut leap_months = 0;
            for date in d(1900, 1, 31)
                .iter_days()
                .take_while(|x| *x <= d(2100, 12, 31))
            {
                let l = solar_to_lunar_tz(date, tz);
                assert_eq!(
                    lunar_to_solar_tz(l, tz),
                    Some(date),
                    "{date} -> {l:?} (tz {tz})"
                );
                if l.day == 1 {
                    assert!(
                        prev.day == 29 || prev.day == 30,
                        "{date}: month after {prev:?}"
                    );
                    if l.leap {
                        leap_months += 1;
                        assert_eq!((l.year, l.month), (prev.year, prev.month), "{date}");
                    } else if l.month == 1 {
                        assert_eq!((l.year, prev.month), (prev.year + 1, 12), "{date}");
                    } else {
                        assert_eq!((l.year, l.month), (prev.year, prev.month + 1), "{date}");
                    }
                } else {
                    let next_day = lunar(prev.year, prev.month, prev.day + 1, prev.leap);
                    assert_eq!(l, next_day, "{date}");
                }
                prev = l;
            }
            // 201 years hold 74 leap months (7 in 19 years).
            assert_eq!(leap_months, 74, "tz {tz}");
        }
    }

    #[test]
    fn leap_month_numbering() {
        assert_eq!(leap_month_number(1), 11);
        assert_eq!(leap_month_number(2), 12);
        assert_eq!(leap_month_number(3), 1);
        assert_eq!(leap_month_number(5), 3);
        assert_eq!(leap_month_number(12), 10);
    }

    #[test]
    fn julian_day_numbers() {
        assert_eq!(jdn(d(2000, 1, 1)), 2_451_545);
        assert_eq!(jdn(d(1900, 1, 1)), JDN_1900);
        for year in [-4000, -1, 0, 1, 1582, 1900, 2024, 2100, 9999] {
            assert_eq!(jdn_dec_31(i64::from(year)), jdn(d(year, 12, 31)), "{year}");
        }
        assert_eq!(date_from_jdn(2_451_545), Some(d(2000, 1, 1)));
        assert_eq!(date_from_jdn(i64::MAX), None);
    }

    #[test]
    fn total_far_outside_the_supported_range() {
        assert_eq!(tet(i32::MAX), NaiveDate::MAX);
        assert_eq!(tet(i32::MIN), NaiveDate::MIN);
        assert_eq!(gio_to(i32::MAX), NaiveDate::MAX);
        for date in [NaiveDate::MIN, NaiveDate::MAX, d(1, 1, 1), d(9999, 12, 31)] {
            let l = solar_to_lunar(date);
            assert!((1..=12).contains(&l.month), "{date}: {l:?}");
            assert!(l.day >= 1, "{date}: {l:?}");
        }
        for tz in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300] {
            let l = solar_to_lunar_tz(d(2025, 1, 29), tz);
            assert!((1..=12).contains(&l.month), "tz {tz}: {l:?}");
            assert!(lunar_to_solar_tz(lunar(2025, 1, 1, false), tz).is_some());
        }
    }
}
