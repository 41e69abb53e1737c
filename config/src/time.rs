//! Calendar arithmetic on Asia/Shanghai time (UTC+8, no daylight saving since 1991).
//!
//! crossline judges validity, windows, daily caps and yearly person counts on Beijing calendar
//! days. Offline, "now" is the capture timestamp, so these functions take time as an argument.

/// Seconds east of UTC for Asia/Shanghai.
pub const SHANGHAI_OFFSET_SECS: i64 = 8 * 3600;

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

impl Date {
    /// A checked date; `None` when the day does not exist.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days(days: i64) -> Date {
        let (year, month, day) = civil_from_days(days);
        Date { year, month, day }
    }

    /// Day of week, 0 = Monday .. 6 = Sunday.
    pub fn weekday(self) -> u8 {
        // 1970-01-01 was a Thursday (3 when Monday = 0).
        (self.days_since_epoch() + 3).rem_euclid(7) as u8
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Whether `year` is a leap year.
pub fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in a month.
pub fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// Beijing local time of a Unix timestamp (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub date: Date,
    /// Seconds since local midnight, 0..86400.
    pub second_of_day: u32,
}

impl LocalTime {
    /// Minutes since local midnight.
    pub fn minute_of_day(self) -> u16 {
        (self.second_of_day / 60) as u16
    }

    /// Hour of the week, 0 = Monday 00:00-00:59 .. 167.
    pub fn hour_of_week(self) -> u16 {
        u16::from(self.date.weekday()) * 24 + (self.second_of_day / 3600) as u16
    }
}

/// Convert a Unix time in seconds to Asia/Shanghai local time.
pub fn shanghai(unix_secs: i64) -> LocalTime {
    let local = unix_secs + SHANGHAI_OFFSET_SECS;
    LocalTime {
        date: Date::from_days(local.div_euclid(86_400)),
        second_of_day: local.rem_euclid(86_400) as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_days() {
        for days in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn beijing_midnight() {
        // 2026-03-01T16:00:00Z is 2026-03-02 00:00:00 in Beijing, a Monday.
        let t = shanghai(1_772_380_800);
        assert_eq!(t.date, Date::new(2026, 3, 2).expect("valid"));
        assert_eq!(t.second_of_day, 0);
        assert_eq!(t.date.weekday(), 0);
        let t = shanghai(1_772_380_799);
        assert_eq!(t.date, Date::new(2026, 3, 1).expect("valid"));
        assert_eq!(t.second_of_day, 86_399);
    }
}
